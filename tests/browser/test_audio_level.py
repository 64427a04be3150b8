"""Chromium and the server agree on the RFC 6464 audio-level header extension, and the server reads the levels
Chromium writes into its packets (what a big room ranks its speakers by); in a room past ten people the page
plays each forwarded line as the person the server says it carries, and lights the tile of a speaker it
does not receive from the levels the server sends."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any, cast

import pytest
from playwright.sync_api import Browser

from tests.conftest import RELAXED_LIMITS
from tests.support.browser.chromium import Person, join
from tests.support.browser.probes import spectrum
from tests.support.crowd import Crowd
from tests.support.eventually import eventually_sync
from tests.support.probes import admin_json
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

# The extmap ids for the audio level in each description of the page's connection.
EXTMAP_JS = f"""
() => {{
  const ids = (sdp) => (sdp || '').split('\\r\\n')
    .filter((l) => l.startsWith('a=extmap:') && l.endsWith(' {AUDIO_LEVEL}'))
    .map((l) => l.slice(9).split(/[ /]/)[0]);
  const pc = window.__pc;
  return pc ? {{ local: ids(pc.localDescription?.sdp), remote: ids(pc.remoteDescription?.sdp) }} : null;
}}
"""


def levels_read(server: ServerProcess, room: str) -> int:
    rooms = cast(list[dict[str, Any]], admin_json(server, "rooms")["rooms"])
    return sum(peer["audio_levels"] for r in rooms if r["room"] == room for peer in r["peers"])


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


# Headless people for the big room: three loud tones, one quiet one (not forwarded, but speaking), six silent.
LOUD_TONES = (500.0, 700.0, 900.0)
QUIET_TONE = (1100.0, 0.01)  # about -43 dBov: above the page's -48 dB speaking threshold
HEADLESS = 10


# The people whose voice the page plays (one audio element each).
PLAYED_JS = "() => [...document.querySelectorAll('#audio-sinks audio[data-peer-id]')].map((e) => e.dataset.peerId)"


def speaking(person: Person, peer_id: str) -> bool:
    return bool(person.page.evaluate(
        "(id) => !!document.querySelector(`#people-list .person.is-speaking[data-peer-id='${id}']`)", peer_id
    ))


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("data"), [*RELAXED_LIMITS, "--max-room-peers", "20"]).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_a_page_in_a_big_room_hears_the_loudest_as_who_they_are_and_sees_the_others_speak(
    big_server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    room = f"big-{secrets.token_hex(4)}"
    tones = [(hz, 0.3) for hz in LOUD_TONES] + [QUIET_TONE]
    with Crowd(big_server, room, HEADLESS, "h", tones) as crowd:
        ids = crowd.joined()["ids"]
        person = join(browsers["Ann"], big_server.url, room, "Ann")
        try:
            loud = dict(zip(ids[:3], LOUD_TONES, strict=True))

            def heard() -> dict[str, float]:
                return {peer_id: probe["freq"] for peer_id, probe in spectrum(person, 800).items() if probe["db"] > -60}

            # The three lines play as the three loud people, each at their own tone.
            eventually_sync(
                heard, 20, what="the page plays the three loudest as themselves",
                until=lambda found: set(found) == set(loud)
                and all(abs(found[peer_id] - hz) < 15 for peer_id, hz in loud.items()),
            )
            # The quiet one is not forwarded, yet the page shows them speaking; a silent one is not.
            eventually_sync(lambda: speaking(person, ids[3]), 10, what="the quiet speaker's tile lights up")
            assert ids[3] not in person.page.evaluate(PLAYED_JS)
            assert not speaking(person, ids[5])
            assert not person.errors, person.errors
        finally:
            person.context.close()
