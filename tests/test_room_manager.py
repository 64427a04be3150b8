"""The room manager on its own: who is where, what each person is told, the room limits, leaving, kicks and
bans, shutdown, and a reader too slow to keep. A real media plane is made (on 127.0.0.1) but nobody sends an
offer, so no packet is ever sent; the event log and the metrics are the real ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from ghosttalk.config import Config
from ghosttalk.contract import CloseCode
from ghosttalk.media import negotiation
from ghosttalk.ops.eventlog import EventLog
from ghosttalk.ops.metrics import LiveStats, Metrics
from ghosttalk.server.app import media_plane
from ghosttalk.server.rooms import JoinRefused, Peer, RoomManager
from tests.support.eventually import eventually


@dataclass
class Person:
    """A joined peer, with what it has been told and how its session was asked to end."""

    peer: Peer
    ended: list[tuple[str, CloseCode]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.peer.id

    def told(self) -> list[dict[str, Any]]:
        """Every message queued for this person so far (the queue is emptied, as its session would)."""
        messages = []
        while not self.peer.outbox.empty():
            messages.append(orjson.loads(self.peer.outbox.get_nowait()))
            self.peer.outbox.task_done()
        return messages


@dataclass
class Server:
    rooms: RoomManager
    events: EventLog
    metrics: Metrics

    def join(self, room: str, name: str, ip: str = "198.51.100.1") -> Person:
        person: Person

        def end(reason: str, code: CloseCode) -> None:
            person.ended.append((reason, code))

        person = Person(self.rooms.join(room, name, ip, end))
        return person

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [dict(e) for e in self.events.recent(1000) if e["event"] == event]


Start = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    made: list[tuple[Server, Any]] = []

    async def start_server(**settings: Any) -> Server:
        config = Config(rtc_bind="127.0.0.1", rtc_udp_port=0, rtc_hosts=("127.0.0.1",), **settings)
        metrics = Metrics(LiveStats)
        events = EventLog(tmp_path / f"events-{len(made)}.log")
        plane = media_plane(config, metrics)
        await plane.start()
        server = Server(RoomManager(config, events, metrics, plane), events, metrics)
        made.append((server, plane))
        return server

    yield start_server
    for server, plane in made:
        await server.rooms.close()
        plane.close()
        server.events.close()


async def test_a_joiner_learns_the_room_and_the_room_learns_of_the_joiner(start: Start) -> None:
    server = await start()
    ann = server.join("blue", "Ann")
    state, host = ann.told()
    assert state == {
        "type": "room_state", "self_id": ann.id, "peers": [{"id": ann.id, "name": "Ann", "muted": False}],
        "receive_lines": 0, "host": ann.id, "locked": False,
    }  # fmt: skip
    # The first one in hosts the room, and alone gets the token that proves it.
    assert host["type"] == "host" and host["peer_id"] == ann.id and len(host["token"]) == 22
    ben = server.join("blue", "Ben")
    assert ann.told() == [{"type": "peer_join", "peer": {"id": ben.id, "name": "Ben", "muted": False}}]
    [state] = ben.told()
    assert [p["name"] for p in state["peers"]] == ["Ann", "Ben"] and state["self_id"] == ben.id
    assert state["host"] == ann.id
    assert state["receive_lines"] == 1, "a line for Ann's voice in Ben's first offer"
    other = server.join("green", "Cat")
    assert ann.told() == [] and ben.told() == [], "another room's joins are not announced here"
    assert [p["id"] for p in other.told()[0]["peers"]] == [other.id]
    assert [e["room"] for e in server.logged("ROOM_CREATE")] == ["blue", "green"]
    assert [e["details"]["name"] for e in server.logged("USER_JOIN")] == ["Ann", "Ben", "Cat"]
    assert server.logged("USER_JOIN")[0]["ip"] == "198.51.100.1"
    assert len({ann.id, ben.id, other.id}) == 3


@pytest.mark.parametrize(
    ("settings", "rooms", "expected"),
    [
        ({"max_room_peers": 2}, ["blue", "blue", "blue"], "Room full"),
        ({"max_rooms": 2}, ["blue", "green", "red"], "Server full"),
        ({"max_peers": 2}, ["blue", "green", "blue"], "Server full"),
    ],
)
async def test_limits_refuse_a_join_and_leave_nothing_behind(
    start: Start, settings: dict[str, int], rooms: list[str], expected: str
) -> None:
    server = await start(**settings)
    for index, room in enumerate(rooms[:-1]):
        server.join(room, f"p{index}")
    before = (dict(server.rooms.rooms), dict(server.rooms.peers))
    with pytest.raises(JoinRefused, match=expected):
        server.join(rooms[-1], "late")
    assert (server.rooms.rooms, server.rooms.peers) == before
    assert len(server.logged("USER_JOIN")) == len(rooms) - 1


async def test_leaving_tells_the_others_and_an_empty_room_goes(start: Start) -> None:
    server = await start()
    ann, ben = server.join("blue", "Ann"), server.join("blue", "Ben")
    ann.told()
    await server.rooms.leave(ben.peer, "left")
    await server.rooms.leave(ben.peer, "left")  # twice: nothing more happens
    assert ann.told() == [{"type": "peer_leave", "peer_id": ben.id}]
    assert [e["details"]["reason"] for e in server.logged("USER_LEAVE")] == ["left"]
    assert "blue" in server.rooms.rooms
    await server.rooms.leave(ann.peer, "connection lost")
    assert server.rooms.rooms == {} and server.rooms.peers == {}
    assert [e["room"] for e in server.logged("ROOM_DESTROY")] == ["blue"]


async def test_joins_hold_back_renegotiation_in_their_own_room_only(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A join sets off re-offers in its own room, which wait for it (media.negotiation.Joining); people
    joining another room, or never finishing, hold nothing back here."""
    monkeypatch.setattr(negotiation, "REOFFER_HOLD_SECONDS", 60.0)
    server = await start()
    ann, ben = server.join("blue", "Ann"), server.join("blue", "Ben")
    server.join("green", "Cat")  # joining, and in this harness never connected
    blue, green = server.rooms.rooms["blue"].joining, server.rooms.rooms["green"].joining
    held = asyncio.create_task(green.quiet())
    for person in (ann, ben):
        await server.rooms.leave(person.peer, "left")
    await asyncio.wait_for(blue.quiet(), 1)  # nobody joins blue any more, whatever happens in green
    await asyncio.sleep(0.05)
    assert not held.done(), "Cat's join still holds green's re-offers"
    held.cancel()


async def test_an_empty_room_waits_out_its_grace_and_a_rejoin_keeps_it(start: Start) -> None:
    server = await start(room_grace_seconds=1.0)
    ann = server.join("blue", "Ann")
    await server.rooms.leave(ann.peer)
    assert "blue" in server.rooms.rooms, "kept for the grace period"
    again = server.join("blue", "Ann again")  # cancels the pending destruction
    await asyncio.sleep(0.5)  # deliberate: so that the cancelled destruction would fall in the next grace
    await server.rooms.leave(again.peer)
    await asyncio.sleep(0.7)  # deliberate: past the first grace period, within the second
    assert "blue" in server.rooms.rooms and server.logged("ROOM_DESTROY") == []
    assert len(server.logged("ROOM_CREATE")) == 1
    await eventually(lambda: "blue" not in server.rooms.rooms, 5, what="the room destroyed after its grace")
    assert [e["room"] for e in server.logged("ROOM_DESTROY")] == ["blue"]


async def test_a_mute_is_told_to_everyone_in_the_room(start: Start) -> None:
    server = await start()
    ann, ben, cat = server.join("blue", "Ann"), server.join("blue", "Ben"), server.join("green", "Cat")
    for person in (ann, ben, cat):
        person.told()
    server.rooms.set_muted(ann.peer, True)
    update = {"type": "peer_update", "peer": {"id": ann.id, "name": "Ann", "muted": True}}
    assert ann.told() == [update] and ben.told() == [update] and cat.told() == []
    [state] = server.join("blue", "Dan").told()
    assert {p["name"]: p["muted"] for p in state["peers"]} == {"Ann": True, "Ben": False, "Dan": False}


async def test_a_kick_tells_the_person_why_and_ends_their_session(start: Start) -> None:
    server = await start()
    ann, ben = server.join("blue", "Ann"), server.join("blue", "Ben")
    ann.told(), ben.told()
    assert await server.rooms.kick(ben.id, "kicked by admin")
    assert not await server.rooms.kick(ben.id, "kicked by admin"), "gone already"
    assert not await server.rooms.kick("no-such-peer", "kicked by admin")
    assert ben.told() == [{"type": "error", "message": "kicked by admin"}]
    assert ben.ended == [("kicked by admin", CloseCode.KICKED)]
    assert ann.told() == [{"type": "peer_leave", "peer_id": ben.id}] and ann.ended == []
    assert list(server.rooms.peers) == [ann.id]


async def test_a_ban_ends_every_session_from_matching_addresses(start: Start) -> None:
    server = await start()
    near = [server.join("blue", "Ann", "203.0.113.5"), server.join("green", "Ben", "203.0.113.9")]
    far = server.join("blue", "Cat", "192.0.2.1")
    assert await server.rooms.disconnect_where(lambda ip: ip.startswith("203.0.113."), "banned") == 2
    assert all(p.ended == [("banned", CloseCode.BANNED)] for p in near)
    assert far.ended == [] and list(server.rooms.peers) == [far.id]
    assert await server.rooms.disconnect_where(lambda ip: ip.startswith("203.0.113."), "banned") == 0


async def test_shutdown_tells_everyone_once_and_leaves_nothing_running(start: Start) -> None:
    server = await start()
    people = [server.join("blue", "Ann"), server.join("blue", "Ben"), server.join("green", "Cat")]
    for person in people:
        person.told()
    # Shutdown and cleanup both ask, at the same time: once is all that happens.
    await asyncio.gather(server.rooms.close(), server.rooms.close())
    for person in people:
        assert person.told() == [{"type": "error", "message": "server shutting down"}], "and no peer_leave"
        assert person.ended == [("server shutting down", CloseCode.GOING_AWAY)]
    assert server.rooms.peers == {} and server.rooms.task_count == 0
    assert len(server.logged("USER_LEAVE")) == 3


async def test_a_person_who_reads_nothing_is_disconnected_not_buffered(start: Start) -> None:
    server = await start()
    ann, ben = server.join("blue", "Ann"), server.join("blue", "Ben")
    for _ in range(300):
        server.rooms.set_muted(ann.peer, True)
    assert ben.ended and ben.ended[0] == ("too slow reading messages", CloseCode.POLICY)
    assert ben.peer.outbox.qsize() <= 256
    assert ann.ended and ann.ended[0][0] == "too slow reading messages", "Ann reads nothing either"
