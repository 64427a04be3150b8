"""Chromium driven by Playwright: each browser with its own tone as a fake microphone, pages joined to rooms,
and a Chromium we start ourselves so that a test can SIGKILL it."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

from tests.support.browser.probes import PC_PROBE_JS, PEOPLE_COUNT_JS, PEOPLE_JS
from tests.support.eventually import eventually_sync
from tests.support.server import ROOT

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


def new_room(label: str) -> str:
    """A room no other test (or earlier run against the same server) uses."""
    return f"{label}-{secrets.token_hex(4)}"


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("Debian's chromium is required for the browser tests (apt-get install chromium)")
    return path


def launch(pw: Playwright, wav: Path) -> Browser:
    return pw.chromium.launch(
        executable_path=chromium_path(),
        args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}"],
    )


@dataclass(slots=True)
class Person:
    """One page in a room, with the console errors it logged."""

    name: str
    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)

    def peer_count(self) -> int:
        return int(self.page.evaluate(PEOPLE_COUNT_JS))

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
    context.add_init_script(PC_PROBE_JS + init_script)
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
        eventually_sync(lambda: _devtools_up(endpoint), 15, what="chromium devtools endpoint")
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
