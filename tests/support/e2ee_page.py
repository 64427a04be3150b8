"""What the browser tests of end-to-end encrypted rooms read off a page (Chromium's or Firefox's): the
room's mode and safety code as shown, the voice transform's counts from the Diagnostics panel, who the page
hears at which tone, and a Playwright recorder of everything a page sends."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from playwright.sync_api import BrowserContext, Request, WebSocket

from tests.support.browser.probes import OnPage, spectrum
from tests.support.eventually import eventually_sync

FREQ_TOLERANCE_HZ = 15.0
LOUD_DB = -50.0

# Init scripts that take the Encoded Transform APIs away before the page runs, as older browsers lack them.
NO_SCRIPT_TRANSFORM_JS = "delete window.RTCRtpScriptTransform;"
NO_ENCODED_TRANSFORM_JS = NO_SCRIPT_TRANSFORM_JS + "delete RTCRtpSender.prototype.createEncodedStreams;"


class InRoom(OnPage, Protocol):
    """A Chromium Person or a FirefoxPerson."""

    name: str

    def peer_ids(self) -> dict[str, str]: ...

    def peer_count(self) -> int: ...

    def last_error(self) -> str: ...


def crypto_stats(person: OnPage) -> dict[str, float]:
    """The voice transform's counts (frames, summed microseconds) as the page's Diagnostics row holds them;
    empty before the worker reported any."""
    raw = person.page.evaluate("() => document.querySelector('[data-diag=e2ee]').dataset.stats || '{}'")
    return {key: float(value) for key, value in json.loads(str(raw)).items()}


def wait_stats(person: InRoom, *, sealed: int = 50, opened: int = 50, timeout: float = 10) -> dict[str, float]:
    """Waits until the page has sealed and opened this many voice frames; its counts then."""
    eventually_sync(
        lambda: crypto_stats(person),
        timeout,
        what=f"{person.name} seals and opens voice frames ({person.last_error()})",
        until=lambda s: s.get("encrypted", 0) >= sealed and s.get("decrypted", 0) >= opened,
    )
    return crypto_stats(person)


def shown(person: OnPage, selector: str) -> str:
    return str(person.page.evaluate("(s) => document.querySelector(s).textContent.trim()", selector))


def mode(person: OnPage) -> str:
    """The join view's notice: plain, encrypted, damaged or unsupported."""
    return str(person.page.evaluate("() => document.getElementById('e2ee-mode').dataset.mode"))


def safety_code(person: OnPage) -> str:
    return shown(person, "#safety-code")


def tone_heard(listener: InRoom, speaker: str) -> dict[str, float]:
    return spectrum(listener, 800).get(listener.peer_ids().get(speaker, ""), {"freq": 0.0, "db": -200.0})


def wait_hears(listener: InRoom, speaker: str, hz: float, timeout: float = 15) -> None:
    """The listener plays `speaker`'s stream loud and at `speaker`'s tone."""
    eventually_sync(
        lambda: tone_heard(listener, speaker),
        timeout,
        what=f"{listener.name} hears {speaker} at {hz} Hz (page's last error: {listener.last_error()})",
        until=lambda heard: abs(heard["freq"] - hz) < FREQ_TOLERANCE_HZ and heard["db"] > LOUD_DB,
    )


def wait_count(people: list[InRoom], count: int, timeout: float = 15) -> None:
    eventually_sync(
        lambda: {p.name: (p.peer_count(), p.last_error()) for p in people},
        timeout,
        what=f"everyone lists {count} (count, page's last error)",
        until=lambda seen: all(n == count for n, _ in seen.values()),
    )


@dataclass(slots=True)
class Outgoing:
    """Everything the pages of one browser context send: each request's URL, headers and body, each
    WebSocket's URL and every frame sent on it."""

    sent: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> Outgoing:
        # Lambdas, not bound methods: Playwright tags a handler it is given, which slots do not allow.
        context.on("request", lambda request: self._request(request))
        context.on("page", lambda page: page.on("websocket", lambda ws: self._websocket(ws)))
        return self

    def _request(self, request: Request) -> None:
        self.sent.append(f"{request.method} {request.url}")
        self.sent.extend(f"{name}: {value}" for name, value in request.all_headers().items())
        body = request.post_data_buffer
        if body:
            self.sent.append(body.decode("latin-1"))

    def _websocket(self, ws: WebSocket) -> None:
        self.sent.append(f"WS {ws.url}")
        ws.on(
            "framesent",
            lambda payload: self.sent.append(payload if isinstance(payload, str) else payload.decode("latin-1")),
        )

    def containing(self, needle: str) -> list[str]:
        return [item for item in self.sent if needle in item]
