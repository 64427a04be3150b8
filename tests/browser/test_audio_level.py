"""Chromium and the server agree on the RFC 6464 audio-level header extension, and the server reads the levels
Chromium writes into its packets (what a big room ranks its speakers by); in a room past ten people the page
plays each forwarded line as the person the server says it carries, and lights the tile of a speaker it
does not receive from the levels the server sends."""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Browser

from tests.support.browser.chromium import join
from tests.support.browser.probes import EXTMAP_JS, heard_tones, played, speaking
from tests.support.crowd import Crowd
from tests.support.eventually import eventually_sync
from tests.support.probes import levels_read
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser


def test_chromium_negotiates_the_audio_level_and_the_server_reads_it(
    shared_server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    room = f"level-{secrets.token_hex(4)}"
    person = join(browsers["Ann"], shared_server.url, room, "Ann")
    try:
        eventually_sync(
            lambda: person.page.evaluate(EXTMAP_JS),
            15,
            what="the page's connection has both descriptions",
            until=lambda seen: bool(seen and seen["local"] and seen["remote"]),
        )
        extmaps = person.page.evaluate(EXTMAP_JS)
        # The server's answer keeps the extension, on the id Chromium offered.
        assert extmaps["remote"][0] == extmaps["local"][0], extmaps
        # The fake microphone's tone is in the packets' levels, which the server counts as it reads them.
        eventually_sync(
            lambda: levels_read(shared_server, room), 15, what="levels read by the server", until=lambda n: n > 50
        )
    finally:
        person.context.close()


# Headless people for the big room: one quiet tone (not forwarded, but speaking), three loud ones, six silent.
# The quiet one joins first: a server that read no levels would keep the earliest joiners, and fail here.
LOUD_TONES = (500.0, 700.0, 900.0)
QUIET_TONE = (1100.0, 0.01)  # about -43 dBov: above the page's -48 dB speaking threshold
HEADLESS = 10


def test_a_page_in_a_big_room_hears_the_loudest_as_who_they_are_and_sees_the_others_speak(
    big_server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    room = f"big-{secrets.token_hex(4)}"
    tones = [QUIET_TONE] + [(hz, 0.3) for hz in LOUD_TONES]
    with Crowd(big_server, room, HEADLESS, "h", tones) as crowd:
        ids = crowd.joined()["ids"]
        person = join(browsers["Ann"], big_server.url, room, "Ann")
        try:
            quiet, loud = ids[0], dict(zip(ids[1:4], LOUD_TONES, strict=True))
            # The three lines play as the three loud people, each at their own tone.
            eventually_sync(
                lambda: heard_tones(person), 20, what="the page plays the three loudest as themselves",
                until=lambda found: set(found) == set(loud)
                and all(abs(found[peer_id] - hz) < 15 for peer_id, hz in loud.items()),
            )
            # The quiet one is not forwarded, yet the page shows them speaking; a silent one is not.
            eventually_sync(lambda: speaking(person, quiet), 10, what="the quiet speaker's tile lights up")
            assert quiet not in played(person)
            assert not speaking(person, ids[5])
            assert not person.errors, person.errors
        finally:
            person.context.close()
