"""Firefox ESR in a room with Chromium. One Firefox process (Marionette, a private PulseAudio null
sink as its sound device) serves the module; each Firefox person is a window of it, with its own fake
microphone tone. Chromium people come from the shared `browsers` fixture, each with a tone WAV."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import TONES
from tests.support.browser.chromium import ARTIFACTS, Person, join, new_room
from tests.support.browser.firefox import Firefox, FirefoxPerson, join_firefox, running_firefox
from tests.support.browser.probes import OnPage, inbound_totals, live_inbound, spectrum
from tests.support.cluster import Cluster
from tests.support.eventually import eventually_sync
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

# Firefox's fake microphone plays a sine at the pitch its pref names: apart from every Chromium tone.
TONES_FIREFOX = {"Fox": 1000.0, "Fay": 1250.0}
FOX_HZ = TONES_FIREFOX["Fox"]
FREQ_TOLERANCE_HZ = 15.0
LOUD_DB = -50.0
SILENT_DB = -70.0
# Opus in 20 ms frames: 50 packets a second; a stream carrying audio stays well above half of that.
MIN_PACKETS_PER_S = 25
NOTHING = "\N{EN DASH}"  # what the diagnostics panel shows for an empty value

Someone = Person | FirefoxPerson


def tone_of(name: str) -> float:
    return TONES_FIREFOX.get(name) or TONES[name]


def level(listener: OnPage, speaker_id: str, ms: int = 800) -> dict[str, float]:
    return spectrum(listener, ms).get(speaker_id) or {"freq": 0.0, "db": -200.0}


def loud_tone(heard: dict[str, float], speaker: str) -> bool:
    return abs(heard["freq"] - tone_of(speaker)) < FREQ_TOLERANCE_HZ and heard["db"] > LOUD_DB


def level_of(listener: Someone, speaker: str) -> dict[str, float]:
    return level(listener, listener.peer_ids().get(speaker, ""))


def hears(listener: Someone, speaker: str) -> bool:
    """listener plays a stream from whoever it lists as `speaker`, loud and at that speaker's tone."""
    return loud_tone(level_of(listener, speaker), speaker)


def wait_hears(listener: Someone, speaker: str, timeout: float = 10) -> None:
    eventually_sync(
        lambda: level_of(listener, speaker),
        timeout,
        what=f"{listener.name} hears {speaker} (page's last error: {listener.last_error()})",
        until=lambda heard: loud_tone(heard, speaker),
    )


def send_path(person: Someone) -> str:
    return str(person.page.get_attribute("[data-diag=audioPath]", "data-i18n"))


def connection_state(person: Someone) -> str:
    return str(person.page.evaluate("() => window.__pc ? window.__pc.connectionState : 'none'"))


def wait_count(people: list[Someone], count: int) -> None:
    eventually_sync(
        lambda: {p.name: (p.peer_count(), p.last_error()) for p in people},
        15,
        what=f"everyone lists {count} (count, page's last error)",
        until=lambda seen: all(n == count for n, _ in seen.values()),
    )


def received_rate(listener: Someone, window_s: float = 1.0) -> dict[str, float]:
    """Audio bytes and packets per second the listener's page received, from getStats inbound-rtp."""
    first = inbound_totals(listener)
    start = time.monotonic()
    listener.page.evaluate("(ms) => new Promise((resolve) => setTimeout(resolve, ms))", int(window_s * 1000))
    second = inbound_totals(listener)
    elapsed = time.monotonic() - start
    return {
        "bytes_total": second["bytes"],
        "packets_total": second["packets"],
        "bytes_per_s": (second["bytes"] - first["bytes"]) / elapsed,
        "packets_per_s": (second["packets"] - first["packets"]) / elapsed,
    }


@dataclass(slots=True)
class Pair:
    """Fox (Firefox) and Ann (Chromium) in one room."""

    room: str
    fox: FirefoxPerson
    ann: Person

    def __getitem__(self, name: str) -> Someone:
        people: dict[str, Someone] = {"Fox": self.fox, "Ann": self.ann}
        return people[name]


@pytest.fixture(scope="module")
def pair(firefox: Firefox, shared_server: ServerProcess, browsers: dict[str, Browser]) -> Iterator[Pair]:
    """One Firefox-Chromium pair for the rest of the module."""
    room = new_room("fox")
    fox = join_firefox(firefox, shared_server.url, room, "Fox", FOX_HZ)
    ann = join(browsers["Ann"], shared_server.url, room, "Ann")
    wait_count([fox, ann], 2)
    yield Pair(room, fox, ann)
    fox.leave()
    ann.context.close()
    assert ann.errors == []


@pytest.fixture(autouse=True)
def no_firefox_page_errors(firefox: Firefox, shared_server: ServerProcess) -> Iterator[None]:
    """Checked after every test: Firefox keeps only its latest few hundred console messages."""
    yield
    assert firefox.page_errors(shared_server.url) == []


def test_firefox_joins_a_room(firefox: Firefox, shared_server: ServerProcess) -> None:
    fox = join_firefox(firefox, shared_server.url, new_room("alone"), "Fox", FOX_HZ)
    try:
        wait_count([fox], 1)
        assert list(fox.peer_ids()) == ["Fox"]
        assert fox.self_id() == fox.peer_ids()["Fox"]
        eventually_sync(
            lambda: connection_state(fox),
            10,
            what=f"Firefox connected ({fox.last_error()})",
            until=lambda state: state == "connected",
        )
        # With a sound device Firefox's AudioContext starts (some 0.6 s after the click): the page sends
        # through its audio graph.
        eventually_sync(
            lambda: send_path(fox), 5, what="Firefox on the graph path", until=lambda path: path == "diag_path_graph"
        )
        assert fox.last_error() == NOTHING
    finally:
        fox.leave()


def test_firefox_and_chromium_hear_each_other(pair: Pair, firefox: Firefox) -> None:
    fox, ann = pair.fox, pair.ann
    wait_hears(ann, "Fox")
    wait_hears(fox, "Ann")
    rates = {"firefox_to_chromium": received_rate(ann), "chromium_to_firefox": received_rate(fox)}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "firefox-audio.json").write_text(json.dumps(rates, indent=2))
    print(f"\nFirefox <-> Chromium audio: {json.dumps(rates)}")
    for way, rate in rates.items():
        assert rate["packets_per_s"] > MIN_PACKETS_PER_S, (way, rates)
        assert rate["bytes_per_s"] > MIN_PACKETS_PER_S * 20, (way, rates)


def test_a_third_person_joins_and_leaves(pair: Pair, firefox: Firefox, shared_server: ServerProcess) -> None:
    """Fay is a second window of the same Firefox, with a tone of her own: Firefox hears Firefox too."""
    fox, ann = pair.fox, pair.ann
    fay = join_firefox(firefox, shared_server.url, pair.room, "Fay", TONES_FIREFOX["Fay"])
    try:
        wait_count([fox, ann, fay], 3)
        for listener, speaker in ((fox, "Fay"), (fay, "Fox"), (ann, "Fay"), (fay, "Ann")):
            wait_hears(listener, speaker)
        assert hears(ann, "Fox") and hears(fox, "Ann")
        eventually_sync(lambda: live_inbound(fox), 5, what="two live streams at Fox", until=lambda n: n == 2)
    finally:
        fay.leave()
    wait_count([fox, ann], 2)
    assert "Fay" not in fox.peer_ids() and "Fay" not in ann.peer_ids()
    eventually_sync(lambda: live_inbound(fox), 5, what="one live stream at Fox", until=lambda n: n == 1)
    assert hears(fox, "Ann") and hears(ann, "Fox")


def muted_shown(viewer: Someone, peer_id: str) -> bool:
    selector = f"#people-list .person[data-peer-id='{peer_id}']"
    return bool(viewer.page.evaluate("(s) => !!document.querySelector(s)?.classList.contains('is-muted')", selector))


@pytest.mark.parametrize(("muter", "viewer"), [("Fox", "Ann"), ("Ann", "Fox")])
def test_mute_is_seen_and_silences(pair: Pair, muter: str, viewer: str) -> None:
    who, other = pair[muter], pair[viewer]
    peer_id = other.peer_ids()[muter]
    wait_hears(other, muter)

    who.page.click("#btn-mute")
    eventually_sync(lambda: muted_shown(other, peer_id), 5, what=f"{viewer} sees {muter} muted")
    eventually_sync(
        lambda: level(other, peer_id)["db"], 5, what=f"{muter} silent at {viewer}", until=lambda db: db < SILENT_DB
    )
    who.page.click("#btn-mute")
    eventually_sync(lambda: not muted_shown(other, peer_id), 5, what=f"{viewer} sees {muter} unmuted")
    wait_hears(other, muter, 5)


def test_firefox_returns_after_a_server_restart(
    firefox: Firefox, server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    room = new_room("restart")
    fox = join_firefox(firefox, server.url, room, "Fox", FOX_HZ)
    cat = join(browsers["Cat"], server.url, room, "Cat")
    try:
        wait_count([fox, cat], 2)
        wait_hears(fox, "Cat")
        wait_hears(cat, "Fox")
        first_ids = fox.peer_ids()

        server.stop()
        fox.page.wait_for(
            "() => document.querySelector(\"#status[data-i18n='reconnecting']\") !== null",
            5,
            "Firefox says it is reconnecting",
        )
        assert "hidden" not in (fox.page.get_attribute("#room-view", "class") or "")
        server.start()
        back = time.monotonic()
        eventually_sync(
            lambda: hears(fox, "Cat") and hears(cat, "Fox"),
            10,
            interval=0.1,
            what="audio both ways within 10 s of the restart",
        )
        assert time.monotonic() - back <= 10
        assert fox.peer_ids().keys() == first_ids.keys() and fox.peer_ids() != first_ids
    finally:
        fox.leave()
        cat.context.close()


def test_without_a_sound_device_firefox_sends_the_microphone_directly(
    tmp_path: Path, shared_server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    """No PulseAudio: Firefox's AudioContext cannot start, so the page sends the bare microphone."""
    room = new_room("nosound")
    with running_firefox(tmp_path, with_sound=False) as silent_firefox:
        fox = join_firefox(silent_firefox, shared_server.url, room, "Fox", FOX_HZ)
        cat = join(browsers["Cat"], shared_server.url, room, "Cat")
        try:
            wait_count([fox, cat], 2)
            wait_hears(cat, "Fox")
            assert send_path(fox) == "diag_path_direct"
            assert "suspended" in fox.page.inner_text("[data-diag=audioPath]")
            assert silent_firefox.page_errors(shared_server.url) == []
        finally:
            cat.context.close()


def test_a_firefox_newcomer_waits_in_the_lobby_until_the_chromium_host_admits_it(
    firefox: Firefox, shared_server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    """Hosts in Firefox: the lobby's wait, admission by the host's page, and the crown, across browsers."""
    room = new_room("fox-lobby")
    ann = join(browsers["Ann"], shared_server.url, room, "Ann")
    try:
        ann.page.wait_for_selector("#btn-lock:not(.hidden)", timeout=10_000)
        ann.page.click("#btn-lock")
        ann.page.wait_for_selector("#lock-badge:not(.hidden)", timeout=5_000)
        fox = join_firefox(firefox, shared_server.url, room, "Fox", FOX_HZ)
        fox.page.wait_for("() => !document.getElementById('lobby-wait').classList.contains('hidden')", 10,
                          "Fox waits in the lobby")
        ann.page.get_by_role("button", name="Admit Fox").click()
        fox.page.wait_for("() => document.getElementById('lobby-wait').classList.contains('hidden')", 10,
                          "Fox is let in")
        wait_hears(fox, "Ann")
        wait_hears(ann, "Fox")
        # Fox's page crowns Ann, the host, and offers Fox no host's menu.
        fox.page.wait_for(
            "() => [...document.querySelectorAll('#people-list .person')].some((row) => "
            "row.querySelector('.crown')?.checkVisibility() && row.textContent.includes('Ann'))",
            5, "Fox sees Ann's crown",
        )
        menus = "() => [...document.querySelectorAll('#people-list .person-menu')].filter((b) => b.checkVisibility())"
        assert fox.page.evaluate(f"() => ({menus})().length") == 0
        fox.leave()
    finally:
        ann.context.close()



def test_firefox_bridged_through_another_cluster_node_hears_chromium(
    firefox: Firefox, browsers: dict[str, Browser], tmp_path: Path
) -> None:
    """A cluster of two nodes: Ann's page reaches node1, where the room is placed; Fox's reaches node2, which
    carries its signaling to node1 through Redis while Firefox sends its media straight to node1's UDP port."""
    with RedisServer(tmp_path / "redis") as redis, Cluster(tmp_path, redis, nodes=2) as cluster:
        room = new_room("foxes")
        ann = join(browsers["Ann"], cluster.nodes[0].url, room, "Ann")
        fox = join_firefox(firefox, cluster.nodes[1].url, room, "Fox", FOX_HZ)
        try:
            wait_count([fox, ann], 2)
            assert cluster.room_node(room) == "node1"
            wait_hears(ann, "Fox")
            wait_hears(fox, "Ann")
        finally:
            fox.leave()
            ann.context.close()
        assert firefox.page_errors(cluster.nodes[1].url) == []
        assert ann.errors == []
