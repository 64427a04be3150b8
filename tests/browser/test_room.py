"""Three Chromium browsers, each with its own tone as microphone, in one room of the real server: they hear
each other, read the server's RTCP reports, mute and set volumes, render cleanly, and notice who leaves."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright

from tests.browser.conftest import TONES
from tests.support.browser.chromium import ARTIFACTS, Person, join, open_page, raw_chromium
from tests.support.browser.probes import live_inbound, spectrum
from tests.support.eventually import eventually_sync
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

# A tone heard through Opus lands within a couple of FFT bins (5.9 Hz each) of where it was sent.
FREQ_TOLERANCE_HZ = 15.0
LOUD_DB = -50.0  # sent at -13 dBFS RMS; noise suppression takes some 20 dB off a steady tone
SILENT_DB = -70.0
VIEWPORTS = ({"width": 1280, "height": 720}, {"width": 390, "height": 844}, {"width": 360, "height": 740})


@pytest.fixture(scope="module")
def room() -> str:
    return f"trio-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def trio(
    shared_server: ServerProcess, browsers: dict[str, Browser], room: str
) -> Iterator[dict[str, Person]]:
    people = {name: join(browsers[name], shared_server.url, room, name) for name in TONES}
    eventually_sync(
        lambda: {name: (p.peer_count(), p.last_error()) for name, p in people.items()},
        15,
        what="everyone sees three (count, page's last error)",
        until=lambda seen: all(count == 3 for count, _ in seen.values()),
    )
    yield people
    for person in people.values():
        person.context.close()


def ids(trio: dict[str, Person]) -> dict[str, str]:
    return trio["Ann"].peer_ids()


def assert_hears(listener: Person, speakers: dict[str, str], ms: int = 1200) -> dict[str, dict[str, float]]:
    """listener hears each of speakers (name -> peer id) at that speaker's tone."""
    heard = spectrum(listener, ms)
    for name, peer_id in speakers.items():
        assert peer_id in heard, f"{listener.name} has no stream for {name}: {heard}"
        assert abs(heard[peer_id]["freq"] - TONES[name]) < FREQ_TOLERANCE_HZ, (listener.name, name, heard)
        assert heard[peer_id]["db"] > LOUD_DB, (listener.name, name, heard)
    return heard


def others(trio: dict[str, Person], name: str) -> dict[str, str]:
    return {other: peer_id for other, peer_id in ids(trio).items() if other != name}


def test_three_people_hear_each_other(trio: dict[str, Person]) -> None:
    everyone = ids(trio)
    assert sorted(everyone) == ["Ann", "Bob", "Cat"]
    for name, person in trio.items():
        assert person.peer_ids() == everyone
        assert person.self_id() == everyone[name]
        # Two inbound audio streams whose packet counters move, one per other person.
        eventually_sync(
            lambda p=person: (live_inbound(p), p.last_error()),
            15,
            what=f"{name}: two live inbound streams (count, page's last error)",
            until=lambda value: value[0] == 2,
        )
        eventually_sync(
            lambda p=person, n=name: _hears(p, others(trio, n)), 15, what=f"{name} hears the other two"
        )
        assert_hears(person, others(trio, name))


# What Chromium made of the server's RTCP: the round-trip time from our receiver reports (they echo its sender
# reports) and how many of its inbound streams our sender reports describe.
RTCP_SEEN_JS = """
async () => {
  const seen = { rtt: null, described: 0 };
  if (!window.__pc) return seen;
  (await window.__pc.getStats()).forEach((s) => {
    if (s.type === 'remote-inbound-rtp' && s.roundTripTime !== undefined) seen.rtt = s.roundTripTime;
    if (s.type === 'remote-outbound-rtp' && s.packetsSent > 0) seen.described += 1;
  });
  return seen;
}
"""


def test_chromium_reads_the_servers_rtcp_reports(trio: dict[str, Person]) -> None:
    """The server's compound reports (one per connection, every 2.5-7.5 s) parse in a real browser."""
    person = trio["Ann"]
    eventually_sync(
        lambda: person.page.evaluate(RTCP_SEEN_JS),
        30,
        interval=0.5,
        what="a round-trip time and sender reports for both inbound streams",
        until=lambda seen: seen["rtt"] is not None and seen["described"] == 2,
    )
    seen = person.page.evaluate(RTCP_SEEN_JS)
    assert 0 <= seen["rtt"] < 0.5, seen


def _hears(listener: Person, speakers: dict[str, str]) -> bool:
    try:
        assert_hears(listener, speakers, ms=600)
    except AssertionError:
        return False
    return True


def level(listener: Person, peer_id: str) -> float:
    return float(spectrum(listener, 800).get(peer_id, {"db": -200.0})["db"])


def test_mute_shows_the_icon_and_silences(trio: dict[str, Person]) -> None:
    ann_id = ids(trio)["Ann"]
    muted_icon = f"#people-list .person[data-peer-id='{ann_id}'] .muted-icon"
    trio["Ann"].page.click("#btn-mute")
    assert trio["Ann"].page.get_attribute("#btn-mute", "aria-pressed") == "true"
    for name in ("Bob", "Cat"):
        trio[name].page.wait_for_selector(muted_icon, state="visible", timeout=5000)
        eventually_sync(lambda n=name: level(trio[n], ann_id) < SILENT_DB, 8, what=f"{name}: Ann goes silent")
    # Muting one person leaves the others audible.
    assert_hears(trio["Bob"], {"Cat": ids(trio)["Cat"]})

    trio["Ann"].page.keyboard.press("m")  # the M key toggles too
    assert trio["Ann"].page.get_attribute("#btn-mute", "aria-pressed") == "false"
    for name in ("Bob", "Cat"):
        trio[name].page.wait_for_selector(muted_icon, state="hidden", timeout=5000)
        eventually_sync(lambda n=name: _hears(trio[n], {"Ann": ann_id}), 8, what=f"{name} hears Ann again")


def set_volume(listener: Person, peer_id: str, keys: list[str]) -> None:
    page = listener.page
    if page.get_attribute("#btn-mixer", "aria-expanded") != "true":
        page.click("#btn-mixer")
    slider = page.locator(f"#volume-list [data-peer-id='{peer_id}'] input[type=range]")
    slider.focus()
    for key in keys:
        page.keyboard.press(key)


def test_volume_zero_silences_one_person_for_one_listener(trio: dict[str, Person]) -> None:
    everyone = ids(trio)
    set_volume(trio["Bob"], everyone["Ann"], ["Home"])
    assert trio["Bob"].page.input_value(f"#volume-list [data-peer-id='{everyone['Ann']}'] input") == "0"
    eventually_sync(lambda: level(trio["Bob"], everyone["Ann"]) < SILENT_DB, 5, what="Bob no longer hears Ann")
    assert_hears(trio["Bob"], {"Cat": everyone["Cat"]})  # nobody else for Bob
    assert_hears(trio["Cat"], {"Ann": everyone["Ann"], "Bob": everyone["Bob"]})  # nothing for Cat
    remembered = trio["Bob"].page.evaluate("JSON.parse(localStorage.getItem('ghosttalk.volumes'))")
    assert remembered == {"Ann": 0}

    set_volume(trio["Bob"], everyone["Ann"], ["ArrowRight"] * 20)
    assert trio["Bob"].page.input_value(f"#volume-list [data-peer-id='{everyone['Ann']}'] input") == "100"
    eventually_sync(lambda: _hears(trio["Bob"], {"Ann": everyone["Ann"]}), 5, what="Bob hears Ann again")
    trio["Bob"].page.click("#btn-mixer")


def check_layout(person: Person, label: str) -> None:
    page = person.page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    assert size is not None
    page.screenshot(path=str(ARTIFACTS / f"{label}-{size['width']}x{size['height']}.png"))
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"{label} overflows horizontally at {size}: {scroll} > {inner}"


def test_screenshots_without_overflow_or_console_errors(
    trio: dict[str, Person], browsers: dict[str, Browser], shared_server: ServerProcess
) -> None:
    landing = open_page(browsers["Ann"], f"{shared_server.url}/", "landing")
    ann = trio["Ann"]
    for viewport in VIEWPORTS:
        landing.page.set_viewport_size(viewport)
        check_layout(landing, "landing")
        ann.page.set_viewport_size(viewport)
        ann.page.wait_for_timeout(300)  # the glow and the signal indicator settle
        check_layout(ann, "room-of-three")
    ann.page.set_viewport_size({"width": 1280, "height": 720})
    landing.context.close()
    for person in [landing, *trio.values()]:
        assert person.errors == [], f"{person.name}: console errors {person.errors}"


def test_leave_close_and_kill_are_noticed(
    trio: dict[str, Person],
    browsers: dict[str, Browser],
    shared_server: ServerProcess,
    room: str,
    pw: Playwright,
    tone_files: dict[str, Path],
    tmp_path: Path,
) -> None:
    ann = trio["Ann"]
    with raw_chromium(pw, tone_files["Cat"], tmp_path / "profile") as killable:
        dan = join(browsers["Bob"], shared_server.url, room, "Dan")
        eve = join(browsers["Cat"], shared_server.url, room, "Eve")
        fay = join(killable.browser, shared_server.url, room, "Fay")
        eventually_sync(lambda: ann.peer_count() == 6, 15, what="Ann sees six")

        dan.page.click("#btn-leave")
        dan.page.click("#btn-leave-confirm")  # others are here: Leave asks first
        assert "hidden" in (dan.page.get_attribute("#room-view", "class") or "")
        eventually_sync(lambda: ann.peer_count() == 5, 2.0, interval=0.05, what="leave noticed")
        assert "Dan" not in ann.peer_ids()
        dan.context.close()

        eve.page.close()
        eventually_sync(lambda: ann.peer_count() == 4, 2.0, interval=0.05, what="closed tab noticed")
        assert "Eve" not in ann.peer_ids()
        eve.context.close()

        start = time.monotonic()
        killable.kill()
        eventually_sync(lambda: ann.peer_count() == 3, 20, interval=0.2, what="killed browser noticed")
        assert time.monotonic() - start <= 20
        assert fay.name not in ann.peer_ids()
    # The three who stayed still hear each other, and only their streams are played.
    assert_hears(ann, others(trio, "Ann"))
    assert set(spectrum(ann, 200)) == set(others(trio, "Ann").values())

    # A newcomer gets a transceiver that carried someone who left: the page follows the new stream id.
    gus = join(browsers["Cat"], shared_server.url, room, "Gus")
    eventually_sync(lambda: "Gus" in ann.peer_ids(), 10, what="Ann sees Gus")
    gus_id = ann.peer_ids()["Gus"]

    def ann_hears_gus() -> bool:
        heard = spectrum(ann, 600).get(gus_id)  # Gus speaks through Cat's browser, so at Cat's tone
        return bool(heard and abs(heard["freq"] - TONES["Cat"]) < FREQ_TOLERANCE_HZ and heard["db"] > LOUD_DB)

    eventually_sync(ann_hears_gus, 10, what="Ann hears Gus")
    gus.context.close()


# Test-side instrumentation: what the server told the page, by message type (offers, and room_state's
# receive_lines).
COUNT_SERVER_MESSAGES_JS = """
window.__told = [];
window.WebSocket = class extends window.WebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', (event) => window.__told.push(JSON.parse(event.data)));
  }
};
"""


def test_a_newcomer_hears_the_room_after_one_round_trip(
    shared_server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    """The page offers the receive lines room_state asks for, and the server's answer already sends the two
    people there on them: no offer from the server before (or after) the newcomer hears both."""
    room = f"one-trip-{secrets.token_hex(4)}"
    people = [join(browsers[name], shared_server.url, room, name) for name in ("Ann", "Bob")]
    newcomer = join(browsers["Cat"], shared_server.url, room, "Cat", init_script=COUNT_SERVER_MESSAGES_JS)
    try:
        eventually_sync(
            lambda: (live_inbound(newcomer), newcomer.last_error()),
            15,
            what="Cat: two live inbound streams (count, page's last error)",
            until=lambda value: value[0] == 2,
        )
        told = newcomer.page.evaluate("window.__told")
        kinds = [message["type"] for message in told]
        [state] = [message for message in told if message["type"] == "room_state"]
        assert state["receive_lines"] == 2
        assert "offer" not in kinds, kinds
        # Two receive lines besides its voice, and the heartbeat channel on the first offer's data channel line.
        assert newcomer.page.evaluate("window.__pc.getTransceivers().length") == 3
        assert_hears(newcomer, {"Ann": people[0].self_id(), "Bob": people[1].self_id()})
    finally:
        for person in [*people, newcomer]:
            person.context.close()
