"""Three nodes on one Redis behind a load balancer, two Chromium pages in one room whose signaling lands on
different nodes: they hear each other; when the room's node is killed (SIGKILL) or drained (SIGTERM) they hear
each other again on another node without anyone touching the page."""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright

from tests.browser.conftest import TONES
from tests.conftest import RELAXED_LIMITS
from tests.support.browser.chromium import Person, join, launch
from tests.support.browser.probes import spectrum
from tests.support.cluster import Cluster, admin_get, health
from tests.support.eventually import eventually_sync
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

FREQ_TOLERANCE_HZ = 15.0
LOUD_DB = -50.0
# Long enough to check, while it lasts, that the call goes on and the node says it is draining.
DRAIN_SECONDS = 5
# The bound for a page to be back in its call after its node died.
RECOVERY_SECONDS = 10


@pytest.fixture(scope="module")
def two_browsers(pw: Playwright, tone_files: dict[str, Path]) -> Iterator[dict[str, Browser]]:
    """Ann's and Bob's Chromium (a fake microphone is per process); a third would only cost memory."""
    launched = {name: launch(pw, tone_files[name]) for name in ("Ann", "Bob")}
    try:
        yield launched
    finally:
        for browser in launched.values():
            browser.close()


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    with Cluster(tmp_path, redis_server, 3, [*RELAXED_LIMITS, "--drain-timeout", str(DRAIN_SECONDS)]) as nodes:
        yield nodes


def hears(listener: Person, speaker: str) -> bool:
    """listener plays a stream from whoever the page lists as ``speaker``, at that speaker's tone."""
    peer_id = listener.peer_ids().get(speaker)
    heard = spectrum(listener, 600).get(peer_id or "")
    return bool(heard and abs(heard["freq"] - TONES[speaker]) < FREQ_TOLERANCE_HZ and heard["db"] > LOUD_DB)


def both_hear(ann: Person, bob: Person) -> bool:
    return hears(ann, "Bob") and hears(bob, "Ann")


def room_node(cluster: Cluster, room: str) -> ServerProcess:
    eventually_sync(lambda: cluster.room_node(room), 10, what=f"room {room} placed on a node")
    node_id = cluster.room_node(room)
    assert node_id is not None
    return cluster.node(node_id)


def call_across_nodes(cluster: Cluster, browsers: dict[str, Browser]) -> tuple[str, Person, Person, ServerProcess]:
    """Ann's WebSocket on node1 (which, all nodes being idle, takes the room), Bob's on a node that holds neither
    her socket nor the room (so his session is bridged); both pages came through the balancer and hear each
    other. Returns the room, the pages and the room's node."""
    room = f"cluster-{secrets.token_hex(4)}"
    balancer = cluster.balancer
    first = cluster.nodes[0]
    balancer.route_websockets([first.port])
    ann = join(browsers["Ann"], balancer.url, room, "Ann")
    eventually_sync(ann.peer_count, 10, what="Ann in the room", until=lambda count: count == 1)
    home = room_node(cluster, room)
    # Bob's signaling on a node that holds neither Ann's socket nor (if placement put it elsewhere) the room.
    second = next(node for node in cluster.nodes if node is not first and node is not home)
    balancer.route_websockets([second.port])
    bob = join(browsers["Bob"], balancer.url, room, "Bob")
    eventually_sync(
        lambda: (ann.peer_count(), bob.peer_count(), ann.last_error(), bob.last_error()),
        15,
        what="both see two (counts, pages' last errors)",
        until=lambda seen: seen[:2] == (2, 2),
    )
    assert dict(balancer.websockets) == {first.port: 1, second.port: 1}, "the pages share a node"
    eventually_sync(lambda: both_hear(ann, bob), 15, what="audio across two nodes")
    # Where the balancer sends a page that reconnects: anywhere but the room's node (as a real balancer would
    # after its health check; a killed node is skipped anyway because it refuses the connection).
    balancer.route_websockets([node.port for node in cluster.nodes if node is not home])
    return room, ann, bob, home


def rejoined_elsewhere(cluster: Cluster, room: str, ann: Person, bob: Person, old: dict[str, str], gone: str) -> bool:
    """Both pages in new sessions (new peer ids) in a room that now lives on another node, with audio both ways."""
    node = cluster.room_node(room)
    renewed = all(person.peer_ids().get(person.name) not in (None, old[person.name]) for person in (ann, bob))
    return node not in (None, gone) and renewed and both_hear(ann, bob)


def test_pages_on_different_nodes_hear_each_other(cluster: Cluster, two_browsers: dict[str, Browser]) -> None:
    room, ann, bob, home = call_across_nodes(cluster, two_browsers)
    # Every node lists the room once, on its node, with both people in it, wherever their sockets are.
    for node in cluster.nodes:
        listed = [r for r in admin_get(node, "rooms")["rooms"] if r["room"] == room]
        assert len(listed) == 1 and listed[0]["node"] == cluster.id_of(home), (node.url, listed)
        assert sorted(p["name"] for p in listed[0]["peers"]) == ["Ann", "Bob"]
    for person in (ann, bob):
        person.context.close()


def test_killed_room_node_pages_rejoin_elsewhere(cluster: Cluster, two_browsers: dict[str, Browser]) -> None:
    room, ann, bob, home = call_across_nodes(cluster, two_browsers)
    before = ann.peer_ids()
    home.stop(signal.SIGKILL)
    took = eventually_sync(
        lambda: rejoined_elsewhere(cluster, room, ann, bob, before, cluster.id_of(home)),
        RECOVERY_SECONDS,
        what=f"audio on another node within {RECOVERY_SECONDS} s of SIGKILL",
        detail=lambda: f"room on {cluster.room_node(room)}; Ann: {ann.last_error()}; Bob: {bob.last_error()}",
    )
    # Up to the end of the check that succeeded, which listens for a moment: an upper bound.
    print(f"\nthe pages heard each other on another node {took:.1f} s after SIGKILL")
    for person in (ann, bob):
        person.context.close()


def test_drained_room_node_keeps_the_call_then_hands_it_over(
    cluster: Cluster, two_browsers: dict[str, Browser]
) -> None:
    room, ann, bob, home = call_across_nodes(cluster, two_browsers)
    before = ann.peer_ids()
    assert home.proc is not None
    home.proc.send_signal(signal.SIGTERM)
    eventually_sync(lambda: health(home)[0], 3, what="healthz 503 while draining", until=lambda s: s == 503)
    assert health(home)[1].get("status") == "draining", health(home)
    # The call goes on during the drain: the same sessions (same peer ids), audio both ways.
    eventually_sync(lambda: both_hear(ann, bob), DRAIN_SECONDS, what="audio while the node drains")
    assert ann.peer_ids() == before
    assert home.proc.poll() is None, "the node quit before its drain timeout"
    assert home.proc.wait(DRAIN_SECONDS + 10) == 0, home.console()[-3000:]
    eventually_sync(
        lambda: rejoined_elsewhere(cluster, room, ann, bob, before, cluster.id_of(home)),
        RECOVERY_SECONDS,
        what="audio on another node after the drain",
        detail=lambda: f"room on {cluster.room_node(room)}; Ann: {ann.last_error()}; Bob: {bob.last_error()}",
    )
    for person in (ann, bob):
        person.context.close()
