"""Debian's Firefox ESR driven through Marionette, with a private PulseAudio daemon as its sound device.

One Firefox process serves a whole test module; each person is a window of it. Firefox's fake microphone
(``media.navigator.streams.fake``) is a sine tone whose pitch is a pref, read when getUserMedia runs, so each
person can be given a tone of their own before joining.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marionette_driver.by import By
from marionette_driver.errors import MarionetteException
from marionette_driver.marionette import Marionette

from ghosttalk.benchmark.server import free_port
from tests.support.browser.probes import PC_PROBE_JS, PEOPLE_COUNT_JS, PEOPLE_JS
from tests.support.eventually import eventually_sync

FIREFOX_PREFS: dict[str, bool | int | str] = {
    # Media: a fake microphone without asking, and host candidates as plain addresses (the test server
    # listens on 127.0.0.1 only, which Firefox leaves out of ICE unless told to keep loopback).
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.peerconnection.ice.loopback": True,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    # Windows behind other windows keep full-speed timers: every person is a window of one process.
    "dom.min_background_timeout_value": 4,
    "dom.timeout.enable_budget_timer_throttling": False,
    "dom.disable_open_during_load": False,
    # No traffic of Firefox's own: updates, telemetry, captive portal, safe browsing, remote settings.
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.server": "",
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0,
    "network.trr.mode": 5,
    "network.proxy.type": 0,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "browser.safebrowsing.provider.google4.updateURL": "",
    "services.settings.server": "data:,#no-remote-settings",
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-manager.url": "",
    "browser.region.network.url": "",
    "browser.search.update": False,
    "geo.provider.network.url": "",
    "browser.newtabpage.enabled": False,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.shell.checkDefaultBrowser": False,
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.firstRunURL": "",
    "browser.discovery.enabled": False,
}


def require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise RuntimeError(f"{program} is required for the Firefox tests (apt-get install {package})")
    return path


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else ""


class PulseAudio:
    """A user PulseAudio daemon with one null sink, reachable only through a socket in its own runtime dir.

    Firefox's AudioContext only runs while it has an output device; a null sink is one that plays nowhere.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "native"
        self.log = folder / "pulseaudio.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> str:
        return f"unix:{self.socket}"

    def env(self) -> dict[str, str]:
        # Its own HOME and runtime dir: no cookie, config or socket shared with anything else on the machine.
        return dict(os.environ, HOME=str(self.folder), XDG_RUNTIME_DIR=str(self.folder), PULSE_SERVER=self.server)

    def start(self) -> PulseAudio:
        binary = require("pulseaudio", "pulseaudio")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "--daemonize=no",
                    "--use-pid-file=no",
                    "--exit-idle-time=-1",
                    "--disallow-exit",
                    "--disallow-module-loading",
                    "--log-target=stderr",
                    "-n",  # no default.pa: only the two modules below
                    "-L",
                    f"module-native-protocol-unix socket={self.socket} auth-anonymous=1",
                    "-L",
                    "module-null-sink sink_name=ghosttalk_null",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,
            )
        eventually_sync(self._answers, 10, what="PulseAudio ready", interval=0.05, detail=lambda: _log_tail(self.log))
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"PulseAudio exited with {self.proc.returncode}:\n{self.log.read_text()}")
        if not self.socket.exists():
            return False
        pactl = require("pactl", "pulseaudio-utils")
        done = subprocess.run([pactl, "info"], env=self.env(), capture_output=True, timeout=5, check=False)
        return done.returncode == 0

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# Errors Firefox reported about pages of `origin` (uncaught exceptions and rejections, CSP violations,
# failed module loads), read in the parent process, to which every content process forwards them: chrome
# context, allowed by --remote-allow-system-access. The page itself never calls console.error.
PAGE_ERRORS_JS = """
const [origin] = arguments;
const errors = [];
for (const message of Services.console.getMessageArray()) {
  if (!(message instanceof Ci.nsIScriptError) || message.isFromChromeContext) continue;
  if (message.flags & (Ci.nsIScriptError.warningFlag | Ci.nsIScriptError.infoFlag)) continue;
  if (String(message.sourceName).startsWith(origin)) errors.push(`${message.category}: ${message.errorMessage}`);
}
return errors;
"""


class Firefox:
    """One headless firefox-esr with a fresh profile, controlled over Marionette on a free loopback port."""

    def __init__(self, folder: Path, pulse: PulseAudio | None) -> None:
        self.folder = folder
        self.profile = folder / "profile"
        self.log = folder / "firefox.log"
        self.pulse = pulse
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: Marionette | None = None

    def start(self) -> Firefox:
        binary = require("firefox-esr", "firefox-esr")
        self.profile.mkdir(parents=True, exist_ok=True)
        prefs = {**FIREFOX_PREFS, "marionette.port": self.port}
        (self.profile / "user.js").write_text(
            "".join(f"user_pref({json.dumps(name)}, {json.dumps(value)});\n" for name, value in prefs.items())
        )
        env = self.pulse.env() if self.pulse else dict(os.environ)
        if self.pulse is None:
            # No sound server at all: the AudioContext cannot start (what the fallback test wants).
            env["PULSE_SERVER"] = f"unix:{self.folder / 'no-pulse'}"
        env.update(MOZ_HEADLESS="1", MOZ_CRASHREPORTER_DISABLE="1", HOME=str(self.folder))
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "--headless",
                    "--marionette",
                    "--remote-allow-system-access",
                    "--no-remote",
                    "--profile",
                    str(self.profile),
                    "about:blank",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            client = Marionette(host="127.0.0.1", port=self.port)
            client.start_session(timeout=60)
        except (MarionetteException, OSError) as exc:
            self.stop()
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"Firefox did not start a Marionette session: {exc}\n{tail}") from exc
        self.client = client
        client.timeout.script = 30
        client.timeout.page_load = 30
        return self

    @property
    def marionette(self) -> Marionette:
        assert self.client is not None, "Firefox is not running"
        return self.client

    def set_pref(self, name: str, value: bool | int | str) -> None:
        with self.marionette.using_context(self.marionette.CONTEXT_CHROME):
            self.marionette.set_pref(name, value)

    def page_errors(self, origin: str) -> list[str]:
        """Console errors and uncaught exceptions of pages served from `origin`, since Firefox started."""
        with self.marionette.using_context(self.marionette.CONTEXT_CHROME):
            return [str(text) for text in self.marionette.execute_script(PAGE_ERRORS_JS, script_args=[origin])]

    def new_window(self) -> str:
        handle = self.marionette.open(type="window")["handle"]
        return str(handle)

    def stop(self) -> None:
        if self.client is not None:
            # Firefox may already be gone (a crash is reported by the test that saw it, not here).
            with suppress(MarionetteException, OSError):
                self.client.delete_session()
            self.client = None
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


@contextmanager
def running_firefox(folder: Path, with_sound: bool = True) -> Iterator[Firefox]:
    pulse = PulseAudio(folder / "pulse").start() if with_sound else None
    try:
        firefox = Firefox(folder / "firefox", pulse).start()
        try:
            yield firefox
        finally:
            firefox.stop()
    finally:
        if pulse:
            pulse.stop()


@dataclass(slots=True)
class FirefoxTab:
    """One window of the shared Firefox, with the little of Playwright's Page the tests use."""

    firefox: Firefox
    handle: str

    def _focus(self) -> Marionette:
        client = self.firefox.marionette
        if client.current_window_handle != self.handle:
            client.switch_to_window(self.handle, focus=False)
        return client

    def goto(self, url: str) -> None:
        self._focus().navigate(url)
        self.wait_for("() => document.documentElement.dataset.ready === 'true'", 15, "page ready")

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        """Runs `expression` in the page: the source of a (possibly async) function of one argument, or an
        expression, like Playwright's Page.evaluate. Run without Marionette's sandbox, so the globals
        the probes set in the page (window.__pc) are visible."""
        client = self._focus()
        result = client.execute_async_script(
            "const [arg, resolve] = arguments;"
            f"const value = ({expression});"
            "Promise.resolve(typeof value === 'function' ? value(arg) : value)"
            ".then((out) => resolve({ ok: out === undefined ? null : out }),"
            " (error) => resolve({ error: String((error && error.stack) || error) }));",
            script_args=[arg],
            sandbox=None,
        )
        if "error" in result:
            raise RuntimeError(f"page script failed: {result['error']}")
        return result["ok"]

    def wait_for(self, predicate: str, timeout: float, what: str) -> None:
        eventually_sync(lambda: self.evaluate(predicate), timeout, what=f"{what} in Firefox")

    def click(self, selector: str) -> None:
        """A real (trusted) click, which counts as a user gesture for autoplay and AudioContext."""
        self._focus().find_element(By.CSS_SELECTOR, selector).click()

    def fill(self, selector: str, text: str) -> None:
        element = self._focus().find_element(By.CSS_SELECTOR, selector)
        element.clear()
        element.send_keys(text)

    def get_attribute(self, selector: str, name: str) -> str | None:
        value = self.evaluate(
            "([s, n]) => { const el = document.querySelector(s); return el && el.getAttribute(n); }", [selector, name]
        )
        return None if value is None else str(value)

    def inner_text(self, selector: str) -> str:
        return str(self.evaluate("(s) => document.querySelector(s).innerText", selector))

    def close(self) -> None:
        client = self._focus()
        remaining = client.close()
        if remaining:
            client.switch_to_window(remaining[0], focus=False)


@dataclass(slots=True)
class FirefoxPerson:
    """A person in a room through a Firefox window."""

    name: str
    page: FirefoxTab

    def peer_ids(self) -> dict[str, str]:
        """name -> peer id of everyone this page lists."""
        return dict(self.page.evaluate(f"() => {PEOPLE_JS}"))

    def peer_count(self) -> int:
        return int(self.page.evaluate(f"() => {PEOPLE_COUNT_JS}"))

    def self_id(self) -> str:
        return str(self.page.get_attribute(".person.is-self", "data-peer-id"))

    def last_error(self) -> str:
        return self.page.inner_text("[data-diag=lastError]")

    def leave(self) -> None:
        self.page.close()


def join_firefox(firefox: Firefox, base_url: str, room: str, name: str, tone_hz: float) -> FirefoxPerson:
    """Opens a window, gives its fake microphone `tone_hz` (read when the page asks for the microphone) and
    joins `room` as `name`."""
    firefox.set_pref("media.navigator.audio.fake_frequency", int(tone_hz))
    tab = FirefoxTab(firefox, firefox.new_window())
    tab.goto(f"{base_url}/r/{room}")
    # Before joining, so that the probes find the RTCPeerConnection the page is about to make.
    tab.evaluate(f"() => {{ {PC_PROBE_JS} }}")
    tab.fill("#nickname", name)
    tab.click("#btn-join")
    tab.wait_for("() => !document.getElementById('room-view').classList.contains('hidden')", 10, "room view")
    return FirefoxPerson(name=name, page=tab)
