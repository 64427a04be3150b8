"""Chromium driven by Playwright, each browser with its own tone as a fake microphone, and the JavaScript
probes the tests run inside the page (FFT peak per remote stream, inbound RTP statistics); the probes run in
the Marionette-driven Firefox of tests/browser/firefox.py as well."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

SAMPLE_RATE = 48_000
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    # A backgrounded tab must keep its timers and audio running like a visible one.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("Debian's chromium is required for the browser tests (apt-get install chromium)")
    return path


def write_tone(path: Path, frequency: float, seconds: float = 4.0, amplitude: float = 0.3) -> Path:
    """48 kHz mono 16-bit sine; Chromium loops the file as the microphone."""
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    samples = (amplitude * np.sin(2 * np.pi * frequency * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    return path


def launch(pw: Playwright, wav: Path) -> Browser:
    return pw.chromium.launch(
        executable_path=chromium_path(),
        args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}"],
    )


PEOPLE_JS = (
    "[...document.querySelectorAll('#people-list .person')].map((e) => [e.dataset.name, e.dataset.peerId])"
)


@dataclass(slots=True)
class Person:
    """One page in a room, with the console errors it logged."""

    name: str
    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)

    def peer_count(self) -> int:
        return int(self.page.evaluate("window.__getPeerCount()"))

    def self_id(self) -> str:
        return str(self.page.get_attribute(".person.is-self", "data-peer-id"))

    def last_error(self) -> str:
        """What the page's diagnostics panel says went wrong last (for failure messages)."""
        return str(self.page.inner_text("[data-diag=lastError]"))

    def peer_ids(self) -> dict[str, str]:
        """name -> peer id of everyone this page lists."""
        return dict(self.page.evaluate(PEOPLE_JS))


def open_page(
    browser: Browser, url: str, name: str, viewport: dict[str, int] | None = None, init_script: str = ""
) -> Person:
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 720})
    context.grant_permissions(["microphone", "clipboard-read", "clipboard-write"], origin=url.split("/r/")[0])
    context.add_init_script("window.__E2E__ = true;" + init_script)
    page = context.new_page()
    person = Person(name=name, page=page, context=context)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            person.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: person.errors.append(f"pageerror: {error}"))
    page.goto(url)
    page.wait_for_selector("html[data-ready='true']")
    return person


def join(
    browser: Browser,
    base_url: str,
    room: str,
    name: str,
    viewport: dict[str, int] | None = None,
    init_script: str = "",
) -> Person:
    person = open_page(browser, f"{base_url}/r/{room}", name, viewport, init_script)
    person.page.fill("#nickname", name)
    person.page.click("#btn-join")
    person.page.wait_for_selector("#room-view:not(.hidden)")
    return person


def wait_until(
    probe: Any, timeout: float, interval: float = 0.2, message: str = "condition", until: Any = bool
) -> float:
    """Poll probe() until until(value) holds; returns the seconds it took. A timeout names the last value."""
    start = time.monotonic()
    last: Any = None
    while time.monotonic() - start < timeout:
        last = probe()
        if until(last):
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"{message} not reached within {timeout}s (last value: {last!r})")


# Test-side instrumentation (not a page hook): counts the WebSockets the page opens.
COUNT_SOCKETS_JS = """
window.__sockets = 0;
window.WebSocket = class extends window.WebSocket {
  constructor(...args) { super(...args); window.__sockets += 1; }
};
"""

# Listens to every remote person's stream as the page plays it (after the per-person volume) for `ms`
# milliseconds and returns, per peer id, the frequency of the strongest FFT bin and the RMS level in dBFS.
SPECTRUM_JS = """
async (ms) => {
  const ctx = new AudioContext();
  await ctx.resume();
  const probes = [...document.querySelectorAll('#audio-sinks audio[data-peer-id]')].map((el) => {
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 8192;
    analyser.smoothingTimeConstant = 0;
    ctx.createMediaStreamSource(el.srcObject).connect(analyser);
    return { id: el.dataset.peerId, analyser, power: new Float64Array(analyser.frequencyBinCount),
             energy: 0, samples: 0 };
  });
  const spectrum = new Float32Array(4096);
  const wave = new Float32Array(8192);
  const end = performance.now() + ms;
  while (performance.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (const probe of probes) {
      probe.analyser.getFloatFrequencyData(spectrum);
      for (let i = 0; i < spectrum.length; i += 1) probe.power[i] += 10 ** (spectrum[i] / 10);
      probe.analyser.getFloatTimeDomainData(wave);
      for (const s of wave) probe.energy += s * s;
      probe.samples += wave.length;
    }
  }
  const result = {};
  for (const probe of probes) {
    let best = 1;
    for (let i = 1; i < probe.power.length; i += 1) if (probe.power[i] > probe.power[best]) best = i;
    const rms = Math.sqrt(probe.energy / Math.max(1, probe.samples));
    result[probe.id] = { freq: best * ctx.sampleRate / probe.analyser.fftSize,
                         db: rms > 0 ? 20 * Math.log10(rms) : -200 };
  }
  await ctx.close();
  return result;
}
"""

# Audio inbound-rtp streams whose packet counter grew over `ms` milliseconds.
LIVE_INBOUND_JS = """
async (ms) => {
  const count = async () => {
    const out = new Map();
    if (!window.__pc) return out;  // between connections
    (await window.__pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.set(s.ssrc, s.packetsReceived);
    });
    return out;
  };
  const before = await count();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = await count();
  let live = 0;
  for (const [ssrc, packets] of after) if (packets > (before.get(ssrc) ?? 0)) live += 1;
  return live;
}
"""


class Evaluates(Protocol):
    """A page the probes can run in: Playwright's Page, or a window of the Marionette-driven Firefox."""

    def evaluate(self, expression: str, arg: Any = None) -> Any: ...


class OnPage(Protocol):
    @property
    def page(self) -> Evaluates: ...


# Audio bytes and packets received, summed over the page's inbound-rtp streams (getStats).
INBOUND_TOTALS_JS = """
async () => {
  const totals = { bytes: 0, packets: 0 };
  if (!window.__pc) return totals;
  (await window.__pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
    totals.bytes += s.bytesReceived || 0;
    totals.packets += s.packetsReceived || 0;
  });
  return totals;
}
"""


def spectrum(person: OnPage, ms: int = 1200) -> dict[str, dict[str, float]]:
    return dict(person.page.evaluate(SPECTRUM_JS, ms))


def live_inbound(person: OnPage, ms: int = 1000) -> int:
    return int(person.page.evaluate(LIVE_INBOUND_JS, ms))


def inbound_totals(person: OnPage) -> dict[str, int]:
    return {key: int(value) for key, value in person.page.evaluate(INBOUND_TOTALS_JS).items()}


def heard(person: OnPage, speaker_id: str, ms: int = 1000) -> dict[str, float] | None:
    return spectrum(person, ms).get(speaker_id)


def dominant_frequency(path: Path) -> tuple[float, float]:
    """Frequency of the strongest FFT bin of a WAV file and its RMS level in dBFS."""
    with wave.open(str(path), "rb") as wav:
        channels, rate = wav.getnchannels(), wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64) / 32768
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    rms = float(np.sqrt(np.mean(data**2))) if data.size else 0.0
    spectrum_ = np.abs(np.fft.rfft(data * np.hanning(data.size)))
    freq = float(np.fft.rfftfreq(data.size, 1 / rate)[int(np.argmax(spectrum_[1:])) + 1])
    return freq, 20 * np.log10(rms) if rms > 0 else -200.0


class RawChromium:
    """A Chromium we start ourselves (and can SIGKILL), driven through the DevTools protocol."""

    def __init__(self, pw: Playwright, wav: Path, profile: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.proc = subprocess.Popen(
            [
                chromium_path(),
                "--headless=new",
                f"--remote-debugging-port={port}",
                f"--user-data-dir={profile}",
                *CHROMIUM_FLAGS,
                f"--use-file-for-fake-audio-capture={wav}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        endpoint = f"http://127.0.0.1:{port}"
        wait_until(lambda: _devtools_up(endpoint), 15, message="chromium devtools endpoint")
        self.browser = pw.chromium.connect_over_cdp(endpoint)

    def kill(self) -> None:
        """SIGKILL the whole process group: browser, renderers, network and audio services."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def _devtools_up(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/json/version", timeout=1) as response:
            return bool(json.load(response).get("webSocketDebuggerUrl"))
    except OSError:
        return False


@contextmanager
def raw_chromium(pw: Playwright, wav: Path, profile: Path) -> Iterator[RawChromium]:
    raw = RawChromium(pw, wav, profile)
    try:
        yield raw
    finally:
        raw.kill()
