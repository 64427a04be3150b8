"""Rejoining and the "Room full" stop: the page rejoins by itself after a server restart, and
stops (without retrying) when the server says the room is full."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import TONES
from tests.support.browser.chromium import Person, join, open_page
from tests.support.browser.probes import COUNT_SOCKETS_JS, spectrum
from tests.support.eventually import eventually_sync
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

FREQ_TOLERANCE_HZ = 15.0
LOUD_DB = -50.0


def hears(listener: Person, speaker: str) -> bool:
    """listener plays a stream from whoever the page lists as `speaker`, at that speaker's tone."""
    peer_id = listener.peer_ids().get(speaker)
    heard = spectrum(listener, 600).get(peer_id or "")
    return bool(heard and abs(heard["freq"] - TONES[speaker]) < FREQ_TOLERANCE_HZ and heard["db"] > LOUD_DB)


def test_page_rejoins_after_a_server_restart(server: ServerProcess, browsers: dict[str, Browser]) -> None:
    ann = join(browsers["Ann"], server.url, "restart", "Ann")
    bob = join(browsers["Bob"], server.url, "restart", "Bob")
    eventually_sync(lambda: hears(ann, "Bob") and hears(bob, "Ann"), 15, what="audio before the restart")
    first_ids = ann.peer_ids()

    server.stop()
    for person in (ann, bob):
        person.page.wait_for_selector("#status[data-i18n='reconnecting']", state="visible", timeout=5000)
        # Still in the room as far as the person is concerned: no trip back to the join form.
        assert "hidden" not in (person.page.get_attribute("#room-view", "class") or "")
    server.start()
    back = time.monotonic()
    eventually_sync(
        lambda: hears(ann, "Bob") and hears(bob, "Ann"), 10, interval=0.1, what="audio within 10 s of restart"
    )
    assert time.monotonic() - back <= 10
    # A new server session: new peer ids, same names, and the banner is gone.
    assert ann.peer_ids().keys() == first_ids.keys()
    assert ann.peer_ids() != first_ids
    assert ann.page.is_hidden("#status")
    for person in (ann, bob):
        person.context.close()


def test_room_full_is_said_and_not_retried(tmp_path: Path, browsers: dict[str, Browser]) -> None:
    small = ServerProcess(tmp_path / "data", extra_args=["--max-room-peers", "1"]).start()
    try:
        ann = join(browsers["Ann"], small.url, "tiny", "Ann")
        eventually_sync(lambda: ann.peer_count() == 1, 10, what="Ann in the room")
        # Not join(): the room view may show for only a moment before "Room full" hides it again.
        bob = open_page(browsers["Bob"], f"{small.url}/r/tiny", "Bob", init_script=COUNT_SOCKETS_JS)
        bob.page.fill("#nickname", "Bob")
        bob.page.click("#btn-join")
        bob.page.wait_for_selector("#join-error[data-i18n='err_room_full']", state="visible", timeout=10_000)
        assert "full" in bob.page.inner_text("#join-error")
        assert "hidden" in (bob.page.get_attribute("#room-view", "class") or "")
        time.sleep(3)  # longer than the first few reconnect delays
        assert bob.page.evaluate("window.__sockets") == 1, "the page retried a full room"
        assert ann.peer_count() == 1
        for person in (ann, bob):
            person.context.close()
    finally:
        small.stop()
