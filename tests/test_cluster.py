"""A cluster of real nodes on a real redis-server, with headless clients over real UDP: rooms are placed by load,
a page's signaling reaches its room from any node, bans and kicks reach every node, /admin, /healthz and
/metrics speak for the cluster. The browser's side of the same (pages on different nodes, a node killed, a node
draining) is tests/browser/test_cluster_pages.py; failures of nodes and of Redis are tests/test_cluster_faults.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import redis

from ghosttalk.client.participant import Client, ClientOptions, JoinError
from tests.support.adminapi import admin, closed, join_status, raw_join
from tests.support.calls import TalkingCall, assert_delivered
from tests.support.cluster import Cluster
from tests.support.eventually import eventually
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    with RedisServer(tmp / "redis") as redis, Cluster(tmp, redis, nodes=3) as started:
        yield started


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def room_nodes(http: aiohttp.ClientSession, node: ServerProcess) -> dict[str, str]:
    """Room -> node, as /admin on ``node`` lists every node's rooms."""
    status, body = await admin(http, node, action="rooms")
    assert status == 200, body
    assert body["unreachable"] == []
    return {room["room"]: room["node"] for room in body["rooms"]}


async def idle(http: aiohttp.ClientSession, cluster: Cluster) -> None:
    """Wait until every node reports no rooms (what earlier tests left has closed and been refreshed)."""

    async def loads() -> list[tuple[int, int]]:
        stats = (await admin(http, cluster.nodes[0], action="stats"))[1]
        return [(node["people"], node["rooms"]) for node in stats["nodes"]]

    await eventually(loads, 10, what="every node idle", until=lambda seen: seen == [(0, 0)] * len(cluster.nodes))


async def test_rooms_spread_across_nodes_by_load(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    await idle(http, cluster)
    first = cluster.nodes[0]
    clients = []
    try:
        # Each join goes through the first node; each new room goes to the node with the least on it.
        for index in range(3):
            clients.append(await Client(first.url, f"spread-{index}", f"p{index}").connect(timeout=20))
        placed = await room_nodes(http, first)
        assert sorted(placed[f"spread-{index}"] for index in range(3)) == cluster.node_ids()
        # Once every node has one person, the next new room stays where its first person came in.
        await eventually(
            lambda: admin(http, first, action="stats"), 5, what="each node counts its person",
            until=lambda answer: [node["people"] for node in answer[1]["nodes"]] == [1, 1, 1],
        )
        clients.append(await Client(first.url, "spread-3", "p3").connect(timeout=20))
        assert (await room_nodes(http, first))["spread-3"] == "node1"
    finally:
        await asyncio.gather(*(client.close() for client in clients))


async def test_people_on_different_nodes_talk_in_one_room(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """Three people whose signaling lands on three nodes: the room lives on one, the other two are bridged, and
    everyone hears everyone (their media goes straight to the room's node)."""
    urls = [node.url for node in cluster.nodes]
    members = []
    try:
        for index, url in enumerate(urls):
            members.append(await Client(url, "bridged", f"m{index}", ClientOptions(keep_packets=False)).connect(30))
        # One node holds the room, so two of the three reach it through a bridge.
        assert (await room_nodes(http, cluster.nodes[1]))["bridged"] in cluster.node_ids()
        call = TalkingCall(members)
        call.start()
        await eventually(lambda: min(call.delivered(s, r) for s, r in call.flows), 10, what="every flow delivers",
                         until=lambda least: least >= 50)
        await call.stop()
        assert_delivered(call.report(), minimum=0.95)
        # Everyone sees everyone, however their signaling travels.
        assert all(len(member.peers) == 3 for member in members)
        muted = members[2]
        await muted.mute(True)
        await eventually(lambda: members[0].peers[muted.self_id or ""].muted, 5, what="a bridged mute is seen")
    finally:
        await asyncio.gather(*(member.close() for member in members))


async def test_bridged_session_keeps_the_rooms_limits(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """The room's node applies its own rules to a bridged page: a full room refuses, a bad message is answered
    with an error, and the room's key check holds."""
    first, second = cluster.nodes[0], cluster.nodes[1]
    host = await raw_join(http, first, "limits", "host")
    try:
        ws = await raw_join(http, second, "limits", "guest")
        await ws.send_str('{"type": "offer", "sdp": 5}')
        answer = await ws.receive_json(timeout=5)
        while answer["type"] != "error":
            answer = await ws.receive_json(timeout=5)
        assert "sdp" in answer["message"]
        await ws.send_bytes(b"\x00")
        answer = await ws.receive_json(timeout=5)
        while answer["type"] != "error":
            answer = await ws.receive_json(timeout=5)
        assert "binary" in answer["message"]
        await ws.close()
        # An encrypted room refuses a plain join through another node with the same close code as locally.
        secret_room = f"{second.url.replace('http', 'ws')}/ws?room=sealed&name=a&key_check=" + "A" * 22
        sealed = await http.ws_connect(secret_room)
        await sealed.receive_json(timeout=5)
        plain = await http.ws_connect(cluster.nodes[2].ws_url("sealed", "b"))
        await closed(plain)
        assert plain.close_code == 4004
        await sealed.close()
    finally:
        await host.close()


async def test_frames_right_behind_the_join_reach_the_room(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """A bridged page that sends before its room_state arrives: nothing it sent is lost or refused."""
    host = await raw_join(http, cluster.nodes[0], "eager", "host")
    try:
        eager = await http.ws_connect(cluster.nodes[1].ws_url("eager", "eager"))
        for muted in (True, False, True):
            await eager.send_str(f'{{"type": "mute", "muted": {str(muted).lower()}}}')
        seen = []
        async with asyncio.timeout(5):
            while len([m for m in seen if m["type"] == "peer_update"]) < 3:
                seen.append(await eager.receive_json())
        assert seen[0]["type"] == "room_state"
        assert [m["peer"]["muted"] for m in seen if m["type"] == "peer_update"] == [True, False, True]
        await eager.close()
    finally:
        await host.close()


async def test_ban_on_one_node_refuses_on_every_node(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    first, second, third = cluster.nodes
    victim = await raw_join(http, second, "banned-room", "victim", forwarded_for="203.0.113.7")
    bystander = await raw_join(http, second, "banned-room", "bystander", forwarded_for="203.0.113.8")
    try:
        status, body = await admin(http, first, "POST", action="ban", ip="203.0.113.7")
        assert status == 200, body
        banned_at = time.monotonic()
        # Within the second (give or take a loaded test machine): the victim's socket on another node is closed
        # as banned, and every node refuses them from now on; the bystander stays.
        async with asyncio.timeout(3):
            await closed(victim)
        assert victim.close_code == 4003
        for node in (second, third):
            await eventually(lambda n=node: join_status(http, n, "banned-room", forwarded_for="203.0.113.7"), 3,
                             what=f"{node.url} refuses the banned address", until=lambda status: status == 403,
                             interval=0.2)
        print(f"every node refused the banned address {time.monotonic() - banned_at:.2f} s after the ban")
        assert not bystander.closed
        listed = (await admin(http, third, action="bans"))[1]["bans"]
        assert "203.0.113.7" in listed
        # Each node's own file mirrors the cluster's list (what it enforces should Redis be away at its restart).
        await eventually(lambda: (third.data_dir / "banned_ips.json").read_text(), 3, what="node3's ban file",
                         until=lambda text: "203.0.113.7" in text)
        status, _ = await admin(http, third, "POST", action="unban", ip="203.0.113.7")
        assert status == 200
        await eventually(lambda: join_status(http, first, "banned-room", forwarded_for="203.0.113.7"), 2,
                         what="the unban reaches every node", until=lambda code: code == 101)
    finally:
        await bystander.close()


async def test_admin_on_one_node_lists_and_kicks_on_another(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    first, second, third = cluster.nodes
    await raw_join(http, first, "seed", "seed")  # keeps node1 the busiest: the next room goes elsewhere
    guest = await Client(third.url, "elsewhere", "guest").connect(timeout=20)
    try:
        # node1 asks every node it has read the registration of (within the second of its start).
        await eventually(lambda: room_nodes(http, first), 5, what="node1 lists the room",
                         until=lambda rooms: "elsewhere" in rooms)
        placed = (await room_nodes(http, first))["elsewhere"]
        assert placed != "node1"
        status, body = await admin(http, first, action="rooms")
        room = next(room for room in body["rooms"] if room["room"] == "elsewhere")
        assert [peer["name"] for peer in room["peers"]] == ["guest"]
        status, body = await admin(http, first, "POST", action="kick", peer=guest.self_id or "")
        assert status == 200, body
        await eventually(lambda: guest.close_code, 5, what="the guest is kicked", until=lambda code: code == 4001)
        status, body = await admin(http, first, "POST", action="kick", peer="0123456789abcdef")
        assert status == 404
        # Every node's events, in one list (each node adds its own within the second): the kick happened on one
        # node, the guest's leave on another, and a third shows both.
        async def logged() -> set[tuple[str, str]]:
            events = (await admin(http, second, action="logs", n="200"))[1]
            return {(event["event"], event["node"]) for event in events}

        await eventually(logged, 5, what="the kick and the leave in node2's list",
                         until=lambda kinds: {("ADMIN_KICK", "node1"), ("USER_LEAVE", placed)} <= kinds)
    finally:
        await guest.close()


async def test_stats_healthz_and_metrics_speak_for_the_node(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    second = cluster.nodes[1]
    async with http.get(f"{second.url}/healthz") as response:
        assert response.status == 200
        health: dict[str, Any] = await response.json()
    assert health["node"] == "node2"
    assert health["redis"] == "ok"
    # Each node reads the others' registrations every second.
    await eventually(lambda: admin(http, second, action="stats"), 5, what="node2 lists every node",
                     until=lambda answer: len(answer[1]["nodes"]) == 3)
    stats = (await admin(http, second, action="stats"))[1]
    assert [node["id"] for node in stats["nodes"]] == cluster.node_ids()
    assert [node["self"] for node in stats["nodes"]] == [False, True, False]
    assert all(node["udp_port"] == server.rtc_port for node, server in zip(stats["nodes"], cluster.nodes, strict=True))
    async with http.get(f"{second.url}/metrics") as response:
        text = await response.text()
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert series
    assert all('node="node2"' in line for line in series)
    assert 'ghosttalk_redis_up{node="node2"} 1.0' in series
    assert 'ghosttalk_cluster_nodes{node="node2"} 3.0' in series


async def test_a_new_room_waits_when_no_node_can_take_it(tmp_path: Path) -> None:
    """A node whose Redis is not there at all: a new room cannot be placed, and the join is told to try again
    (503 before the upgrade: pages retry it by themselves)."""
    redis = RedisServer(tmp_path / "redis")  # never started: its port refuses
    node = ServerProcess(tmp_path / "node", ["--redis-url", redis.url, "--node-id", "lonely"]).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{node.url}/healthz") as response:
                assert response.status == 200
                assert (await response.json())["redis"] == "unreachable"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(node.ws_url("nowhere", "a"))
            assert refused.value.status == 503
        with pytest.raises(JoinError, match="try again"):
            await Client(node.url, "nowhere", "b").connect(timeout=10)
    finally:
        node.stop()


async def test_a_room_that_never_opens_gives_its_place_back(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    """A request for a room that places it and then never becomes a session (here: no WebSocket upgrade at all)
    must not leave the room in the directory for ever: the node that took the request gives the place back when
    it holds it, the node it was placed on when it is another (within a few seconds)."""
    directory = redis.Redis.from_url(cluster.redis.url, decode_responses=True)
    try:
        for index in range(3):  # spread by load, so that some land on a node other than the one asked
            async with http.get(f"{cluster.nodes[1].url}/ws", params={"room": f"phantom{index}", "name": "x"}) as got:
                assert got.status == 400  # not an upgrade: refused after the room was placed
        await eventually(lambda: directory.hgetall("ghosttalk:rooms"), 15, what="every place given back",
                         until=lambda placed: not any(room.startswith("phantom") for room in placed))
        # A real room keeps its place while it is open, and gives it back when it closes.
        member = await Client(cluster.nodes[1].url, "real", "m").connect(timeout=20)
        assert directory.hget("ghosttalk:rooms", "real") is not None
        await member.close()
        await eventually(lambda: directory.hget("ghosttalk:rooms", "real"), 5, what="the room's place given back",
                         until=lambda owner: owner is None)
    finally:
        directory.close()
