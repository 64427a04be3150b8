"""What a test measures inside a page, Chromium's or Firefox's: the JavaScript probes (FFT peak and level per
remote stream, inbound RTP statistics, people listed), and the tone files the fake microphones play."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any, Protocol

import numpy as np

SAMPLE_RATE = 48_000

PEOPLE_JS = (
    "[...document.querySelectorAll('#people-list .person')].map((e) => [e.dataset.name, e.dataset.peerId])"
)



# Test-side instrumentation (not a page hook): counts the WebSockets the page opens.
COUNT_SOCKETS_JS = """
window.__sockets = 0;
window.WebSocket = class extends window.WebSocket {
  constructor(...args) { super(...args); window.__sockets += 1; }
};
"""

# Test-side instrumentation (the page ships no hook): window.__pc is the page's current RTCPeerConnection,
# or null between connections (none made yet, or the last one closed). Runs before the page creates one.
PC_PROBE_JS = """
(() => {
  let current = null;
  window.RTCPeerConnection = new Proxy(window.RTCPeerConnection, {
    construct(target, args, newTarget) {
      current = Reflect.construct(target, args, newTarget);
      return current;
    },
  });
  Object.defineProperty(window, '__pc', {
    configurable: true,
    get: () => (current && current.signalingState !== 'closed' ? current : null),
  });
})();
"""

# How many people the page lists (itself included).
PEOPLE_COUNT_JS = "document.querySelectorAll('#people-list .person').length"

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



# The people whose voice the page plays (one audio element each).
PLAYED_JS = "() => [...document.querySelectorAll('#audio-sinks audio[data-peer-id]')].map((e) => e.dataset.peerId)"

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

# The extmap ids of the RFC 6464 audio level in each description of the page's connection (null before one).
EXTMAP_JS = f"""
() => {{
  const ids = (sdp) => (sdp || '').split('\\r\\n')
    .filter((l) => l.startsWith('a=extmap:') && l.endsWith(' {AUDIO_LEVEL_URI}'))
    .map((l) => l.slice(9).split(/[ /]/)[0]);
  const pc = window.__pc;
  return pc ? {{ local: ids(pc.localDescription?.sdp), remote: ids(pc.remoteDescription?.sdp) }} : null;
}}
"""


def played(person: OnPage) -> list[str]:
    return [str(peer_id) for peer_id in person.page.evaluate(PLAYED_JS)]


def heard_tones(person: OnPage, ms: int = 800, floor_db: float = -60.0) -> dict[str, float]:
    """Peer id -> the tone's frequency, of each remote stream the page plays louder than ``floor_db``."""
    return {peer_id: probe["freq"] for peer_id, probe in spectrum(person, ms).items() if probe["db"] > floor_db}


def speaking(person: OnPage, peer_id: str) -> bool:
    """The page shows ``peer_id``'s tile as speaking."""
    return bool(person.page.evaluate(
        "(id) => !!document.querySelector(`#people-list .person.is-speaking[data-peer-id='${id}']`)", peer_id
    ))


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

