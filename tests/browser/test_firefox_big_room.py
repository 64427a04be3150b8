"""Firefox ESR in a room past ten people: the server forwards it only the three loudest on labelled lines
(`line-0` ...) and says by signaling whom each carries (`forwarding`) and how loud the others are (`levels`).
The page must play each line as the person it carries, light a quiet unforwarded speaker's tile, and its own
packets must carry the RFC 6464 level the server ranks speakers by (Firefox writes it once negotiated)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.browser.firefox import Firefox, FirefoxPerson, join_firefox, running_firefox
from tests.support.browser.probes import EXTMAP_JS, heard_tones, played, speaking
from tests.support.crowd import Crowd
from tests.support.eventually import eventually_sync
from tests.support.probes import admin_json, levels_read
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

# Ten headless people: six speak, each a tone at a level of its own (three quiet but above the page's -48 dB
# speaking threshold: -37, -40 and -43 dBov; three loud), four are silent. The quietest loud one is 17 dB
# above the loudest quiet one, far past the 6 dB a speaker needs to take a line. The quiet ones join first,
# so that a selection blind to levels (which would keep the earliest) cannot pass for one that ranks.
LOUD = ((500.0, 0.3), (700.0, 0.2), (900.0, 0.14))
QUIET = ((1100.0, 0.02), (1300.0, 0.014), (1500.0, 0.01))
HEADLESS = 10
FOX_HZ = 1700.0  # Firefox's own fake microphone, apart from every headless tone
FREQ_TOLERANCE_HZ = 15.0


@dataclass(slots=True)
class BigRoom:
    room: str
    ids: list[str]  # the headless people's peer ids: QUIET's, LOUD's, then the silent ones
    fox: FirefoxPerson


@pytest.fixture(scope="module")
def firefox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Firefox]:
    with running_firefox(tmp_path_factory.mktemp("firefox")) as browser:
        yield browser


@pytest.fixture(scope="module")
def big_room(firefox: Firefox, big_server: ServerProcess) -> Iterator[BigRoom]:
    room = f"foxbig-{secrets.token_hex(4)}"
    with Crowd(big_server, room, HEADLESS, "h", [*QUIET, *LOUD]) as crowd:
        ids = crowd.joined()["ids"]
        fox = join_firefox(firefox, big_server.url, room, "Fox", FOX_HZ)
        try:
            yield BigRoom(room, ids, fox)
        finally:
            fox.leave()
        assert crowd.leave()["errors"] == []


@pytest.fixture(autouse=True)
def no_firefox_page_errors(firefox: Firefox, big_server: ServerProcess) -> Iterator[None]:
    yield
    assert firefox.page_errors(big_server.url) == []


def test_firefox_plays_the_three_loudest_as_who_they_are_and_sees_the_quiet_speak(big_room: BigRoom) -> None:
    fox, ids = big_room.fox, big_room.ids
    loud = {peer_id: hz for peer_id, (hz, _) in zip(ids[len(QUIET) :], LOUD, strict=False)}
    eventually_sync(
        lambda: heard_tones(fox),
        20,
        what=f"Firefox plays the three loudest as themselves (page's last error: {fox.last_error()})",
        until=lambda found: set(found) == set(loud)
        and all(abs(found[peer_id] - hz) < FREQ_TOLERANCE_HZ for peer_id, hz in loud.items()),
    )
    # Exactly three people play: the lines carry nobody else, and no line plays as a second person.
    assert sorted(played(fox)) == sorted(loud)
    # A quiet speaker is not forwarded, yet the page lights their tile from the server's `levels`.
    quiet = ids[0]
    eventually_sync(lambda: speaking(fox, quiet), 10, what="the quiet speaker's tile lights up in Firefox")
    assert quiet not in played(fox)
    assert not speaking(fox, ids[-1])  # silent


def test_the_server_reads_the_levels_firefox_writes(big_room: BigRoom, big_server: ServerProcess) -> None:
    fox = big_room.fox
    # Firefox offered the extension on every m-line (its voice and the three lines), and the server's answer
    # kept it on each, on Firefox's id. Read once the negotiation has settled: mid-renegotiation (a busy machine
    # stretches it) the page has a local description and no remote one yet.
    eventually_sync(
        lambda: fox.page.evaluate(EXTMAP_JS),
        10,
        what="the audio level extension on every line, both ways",
        until=lambda extmaps: extmaps and len(extmaps["local"]) == 1 + len(LOUD)
        and extmaps["remote"] == extmaps["local"],
    )
    fox_id = fox.self_id()
    eventually_sync(
        lambda: levels_read(big_server, big_room.room, fox_id),
        15,
        what="levels read from Firefox's packets",
        until=lambda n: n > 50,
    )
    # The level is Firefox's loud tone: the server ranks it loudly, so the headless people hear Firefox.
    rooms = admin_json(big_server, "rooms")["rooms"]
    assert isinstance(rooms, list)
    [room] = [r for r in rooms if r["room"] == big_room.room]
    assert room["selective"]
    [fox_seen] = [p for p in room["peers"] if p["id"] == fox_id]
    assert fox_seen["loudness"] > 0, fox_seen
