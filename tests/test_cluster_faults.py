"""A cluster when things go wrong, with real processes: a node killed with SIGKILL, a node told to stop
(SIGTERM: it drains), and Redis killed and restarted mid-call. Headless clients rejoin by themselves as a page
does (ClientOptions.rejoin); tests/browser/test_cluster_pages.py does the same with Chromium pages."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from ghosttalk.client.participant import Client, ClientOptions
from tests.support.adminapi import admin, join_status
from tests.support.calls import TalkingCall
from tests.support.cluster import Cluster
from tests.support.eventually import eventually
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess

REJOINING = ClientOptions(keep_packets=False, rejoin=True)


async def room_node(http: aiohttp.ClientSession, node: ServerProcess, room: str) -> str | None:
    body = (await admin(http, node, action="rooms"))[1]
    return next((found["node"] for found in body["rooms"] if found["room"] == room), None)


async def flowing(call: TalkingCall, more_than: list[int]) -> bool:
    """Every flow has delivered more than it had at ``more_than`` (the same order as ``call.flows``)."""
    return all(call.delivered(s, r) > before for (s, r), before in zip(call.flows, more_than, strict=True))


def counts(call: TalkingCall) -> list[int]:
    return [call.delivered(s, r) for s, r in call.flows]


async def talking(room: str, urls: list[str]) -> TalkingCall:
    """People joining ``room`` through ``urls``, each rejoining by itself as a page does, already heard."""
    members: list[Client] = []
    try:
        for index, url in enumerate(urls):
            members.append(await Client(url, room, f"m{index}", REJOINING).connect(20))
        call = TalkingCall(members)
        call.start()
        await eventually(lambda: flowing(call, [0] * len(call.flows)), 10, what="the call flows")
    except BaseException:
        await asyncio.gather(*(member.close() for member in members))
        raise
    return call


async def test_killed_node_people_talk_again_on_another_node(tmp_path: Path) -> None:
    """The room's node is killed (SIGKILL): within ten seconds the others declare it dead, tell the pages
    bridged to it to rejoin, and the room is placed anew on a live node, where its people hear each other."""
    with RedisServer(tmp_path / "redis") as redis, Cluster(tmp_path, redis, nodes=3) as cluster:
        doomed, second, third = cluster.nodes
        async with aiohttp.ClientSession() as http:
            anchor = await Client(doomed.url, "phoenix", "anchor", ClientOptions(keep_packets=False)).connect(20)
            call = await talking("phoenix", [second.url, third.url])
            try:
                await eventually(lambda: room_node(http, second, "phoenix"), 5, what="the room on node1",
                                 until=lambda node: node == "node1")
                doomed.stop(signal.SIGKILL)
                killed = time.monotonic()
                before = counts(call)
                await eventually(lambda: flowing(call, before), 10, what="the call flows again on a live node")
                recovered = time.monotonic() - killed
                assert await room_node(http, second, "phoenix") in ("node2", "node3")
                events = (await admin(http, third, action="logs", n="500"))[1]
                assert any(event["event"] == "NODE_DEAD" and event["details"]["dead_node"] == "node1"
                           for event in events)
                stats = (await admin(http, second, action="stats"))[1]
                assert [node["id"] for node in stats["nodes"]] == ["node2", "node3"]
                print(f"recovered {recovered:.1f} s after SIGKILL")
            finally:
                await call.close()
                await anchor.close()


async def test_sigterm_drains_then_sends_people_elsewhere(tmp_path: Path) -> None:
    """SIGTERM on the room's node: no new rooms go there, /healthz says draining (503), its call goes on; at
    --drain-timeout its people are told to rejoin (1001) and their room is placed on another node."""
    with (
        RedisServer(tmp_path / "redis") as redis,
        Cluster(tmp_path, redis, nodes=2, extra_args=["--drain-timeout", "3"]) as cluster,
    ):
        draining, other = cluster.nodes
        async with aiohttp.ClientSession() as http:
            # The first comes through a load balancer, so that its page can rejoin once node1 is gone.
            cluster.balancer.route_websockets([draining.port, other.port])
            call = await talking("drained", [cluster.balancer.url, other.url])
            members = call.members
            try:
                # node2 lists node1's room once it has read node1's registration (within its first second).
                await eventually(lambda: room_node(http, other, "drained"), 5, what="the room on node1",
                                 until=lambda node: node == "node1")
                assert draining.proc is not None
                draining.proc.send_signal(signal.SIGTERM)
                await eventually(lambda: _status(http, draining), 5, what="healthz says draining",
                                 until=lambda status: status == 503)
                # A new room is not placed on the draining node, even when asked there; the call goes on.
                assert await join_status(http, draining, "fresh") == 101
                assert await room_node(http, other, "fresh") in ("node2", None)
                before = counts(call)
                await eventually(lambda: flowing(call, before), 5, what="the call goes on while draining")
                assert members[0].rejoins == 0
                # After the drain: everyone rejoins and the call goes on on the other node.
                assert draining.proc.wait(timeout=15) == 0
                await eventually(lambda: room_node(http, other, "drained"), 10, what="the room moves to node2",
                                 until=lambda node: node == "node2")
                before = counts(call)
                await eventually(lambda: flowing(call, before), 10, what="the call flows on node2")
                assert all(member.rejoins >= 1 for member in members)
            finally:
                await call.close()


async def test_drain_ends_early_when_the_calls_do(tmp_path: Path) -> None:
    node = ServerProcess(tmp_path / "node", ["--drain-timeout", "600"])
    with RedisServer(tmp_path / "redis") as redis:
        node.extra_args += ["--redis-url", redis.url]
        node.start()
        client = await Client(node.url, "short", "a").connect(20)
        assert node.proc is not None
        node.proc.send_signal(signal.SIGTERM)
        async with aiohttp.ClientSession() as http:
            await eventually(lambda: _status(http, node), 5, what="draining", until=lambda status: status == 503)
        assert node.proc.poll() is None  # the call holds the node
        await client.close()
        assert node.proc.wait(timeout=10) == 0


async def _status(http: aiohttp.ClientSession, node: ServerProcess) -> int:
    async with http.get(f"{node.url}/healthz") as response:
        return response.status


async def test_redis_restart_mid_call(tmp_path: Path) -> None:
    """Redis killed mid-call and started again empty: the call (bridged signaling included) goes on; a room on
    the node that took the join still takes people, a new room is told to try again; nothing crashes, no ban
    is lost, and once Redis is back everything works as before."""
    with RedisServer(tmp_path / "redis") as redis, Cluster(tmp_path, redis, nodes=2) as cluster:
        first, second = cluster.nodes
        async with aiohttp.ClientSession() as http:
            assert (await admin(http, first, "POST", action="ban", ip="198.51.100.1"))[0] == 200
            call = await talking("steady", [first.url, second.url])
            members = call.members
            try:
                redis.kill()
                await eventually(lambda: _redis_state(http, second), 10, what="node2 sees Redis gone",
                                 until=lambda state: state == "unreachable")
                before = counts(call)
                await eventually(lambda: flowing(call, before), 5, what="the call goes on without Redis")
                assert await join_status(http, first, "steady") == 101  # node1's own room
                assert await join_status(http, second, "elsewhere") == 503  # would need the directory
                # A ban made during the outage is kept, and enforced here at once.
                assert (await admin(http, second, "POST", action="ban", ip="198.51.100.2"))[0] == 200
                assert await join_status(http, second, "steady", forwarded_for="198.51.100.2") == 403

                redis.start()  # the same port, nothing in it
                for node in (first, second):
                    await eventually(lambda n=node: _redis_state(http, n), 10, what="Redis back",
                                     until=lambda state: state == "ok")
                # Both bans are the cluster's again, from the nodes' own copies.
                for node in (first, second):
                    await eventually(lambda n=node: admin(http, n, action="bans"), 5, what="bans restored",
                                     until=lambda answer: {"198.51.100.1", "198.51.100.2"} <= set(answer[1]["bans"]))
                assert await join_status(http, first, "steady", forwarded_for="198.51.100.2") == 403
                # New joins work again, through either node (a new room once every node has had time to claim its
                # own again), and the room stays on the node that has it.
                await eventually(lambda: join_status(http, second, "elsewhere"), 10, what="a new room placed",
                                 until=lambda status: status == 101, interval=0.5)  # joins are rate-limited
                assert await join_status(http, second, "steady") == 101
                assert await room_node(http, second, "steady") == "node1"
                before = counts(call)
                await eventually(lambda: flowing(call, before), 5, what="the call still flows")
                assert all(member.rejoins == 0 for member in members)
                assert all(node.proc is not None and node.proc.poll() is None for node in cluster.nodes)
            finally:
                await call.close()


async def _redis_state(http: aiohttp.ClientSession, node: ServerProcess) -> str:
    async with http.get(f"{node.url}/healthz") as response:
        return str((await response.json()).get("redis"))


@pytest.mark.parametrize("flag", ["--workers", "--redis-url"])
def test_flags_are_documented_in_help(flag: str) -> None:
    from ghosttalk.cli import build_serve_parser

    assert flag in build_serve_parser().format_help()
