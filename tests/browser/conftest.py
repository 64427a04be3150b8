"""Fixtures for the Chromium tests: Playwright, tone WAVs as fake microphones, one browser per tone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.conftest import RELAXED_LIMITS
from tests.support.browser.chromium import launch
from tests.support.browser.firefox import Firefox, running_firefox
from tests.support.browser.probes import write_tone
from tests.support.headless import HeadlessPeople
from tests.support.server import ServerProcess

# One tone per person, far enough apart that an FFT peak names the speaker without doubt.
TONES = {"Ann": 440.0, "Bob": 660.0, "Cat": 880.0}


@pytest.fixture(scope="session")
def tone_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tones")
    return {name: write_tone(folder / f"{name}-{int(hz)}.wav", hz) for name, hz in TONES.items()}


@pytest.fixture(scope="module")
def pw() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browsers(pw: Playwright, tone_files: dict[str, Path]) -> Iterator[dict[str, Browser]]:
    """A Chromium process per person: the fake microphone file is a per-process flag."""
    launched = {name: launch(pw, wav) for name, wav in tone_files.items()}
    try:
        yield launched
    finally:
        for browser in launched.values():
            browser.close()


@pytest.fixture(scope="module")
def browser(pw: Playwright, tone_files: dict[str, Path]) -> Iterator[Browser]:
    """One Chromium (its fake microphone plays Ann's tone) for a module that needs no more."""
    chromium = launch(pw, tone_files["Ann"])
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that takes rooms past ten people (where each listener hears only its loudest few)."""
    proc = ServerProcess(tmp_path_factory.mktemp("data"), [*RELAXED_LIMITS, "--max-room-peers", "20"]).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def headless(server: ServerProcess) -> Iterator[HeadlessPeople]:
    """Headless participants for ``server`` (cheaper than a page each when only the server's view matters)."""
    with HeadlessPeople(server.url).running() as people:
        yield people


@pytest.fixture(scope="module")
def firefox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Firefox]:
    """One Firefox for a test module (Marionette, its audio into a PulseAudio null sink)."""
    with running_firefox(tmp_path_factory.mktemp("firefox")) as browser:
        yield browser
