"""Room hosts and the lobby of a locked room, through a real server with headless clients: who hosts, what a
host can do (and nobody else can), who waits, who is let in or turned away, and who inherits the role."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from ghosttalk.client.participant import Client, ClientOptions, JoinError
from ghosttalk.contract import CloseCode, MessageType
from tests.conftest import RELAXED_LIMITS
from tests.support.adminapi import admin
from tests.support.eventually import eventually
from tests.support.room import hears
from tests.support.server import ServerProcess

REMOVE, ASK_MUTE, HAND_OVER = MessageType.REMOVE, MessageType.ASK_MUTE, MessageType.HAND_OVER
ADMIT, DECLINE = MessageType.ADMIT, MessageType.DECLINE


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("data"), [*RELAXED_LIMITS, "--lobby-wait", "3"]).start()
    try:
        yield proc
    finally:
        proc.stop()


class People:
    """Clients joined into one room, one after another, closed at the end."""

    def __init__(self, server: ServerProcess, room: str) -> None:
        self.server, self.room = server, room
        self.joined: list[Client] = []

    async def join(self, name: str, **options: object) -> Client:
        client = await Client(self.server.url, self.room, name, ClientOptions(**options)).connect()  # type: ignore[arg-type]
        self.joined.append(client)
        return client

    def knock(self, name: str) -> tuple[Client, asyncio.Task[Client]]:
        """A newcomer at a locked room's door: the client, and its join, which ends when it is let in."""
        client = Client(self.server.url, self.room, name)
        self.joined.append(client)
        return client, asyncio.create_task(client.connect(timeout=30))


@pytest.fixture
async def people(server: ServerProcess, request: pytest.FixtureRequest) -> AsyncIterator[People]:
    group = People(server, request.node.name[:40].replace("[", "-").replace("]", ""))
    try:
        yield group
    finally:
        await asyncio.gather(*(client.close() for client in group.joined), return_exceptions=True)


async def told(client: Client, check: object, what: str) -> None:
    await eventually(check, 5, what=what)  # type: ignore[arg-type]


async def test_the_first_in_hosts_and_the_longest_present_inherits(people: People) -> None:
    ann = await people.join("ann")
    ben, cat = await people.join("ben"), await people.join("cat")
    assert ann.host == ann.self_id and ann.host_token is not None
    assert ben.host == ann.self_id and ben.host_token is None
    await ann.close()
    await told(ben, lambda: ben.host == ben.self_id and cat.host == ben.self_id, "ben hosts after ann left")
    assert ben.host_token is not None and ben.host_token != ann.host_token


async def test_only_the_host_acts_and_only_on_someone_else_here(people: People) -> None:
    ann, ben = await people.join("ann"), await people.join("ben")
    await ben.host_action(REMOVE, ann.self_id or "")
    await ben.lock(True)
    await ann.host_action(REMOVE, ann.self_id or "")
    await ann.host_action(HAND_OVER, "0123456789abcdef")
    await ann.host_action(ADMIT, "0123456789abcdef")
    await told(ben, lambda: sum("only the room's host" in e for e in ben.errors) == 2, "ben refused twice")
    await told(ann, lambda: len(ann.errors) == 3, "ann refused three times")
    assert "is not someone else in the room" in ann.errors[0] and "nobody waits" in ann.errors[2]
    assert not ann.locked and not ben.locked
    await hears(ann, ben)  # nobody was removed


async def test_the_host_removes_someone_who_may_come_back(people: People) -> None:
    ann, ben = await people.join("ann"), await people.join("ben")
    await ann.host_action(REMOVE, ben.self_id or "")
    await told(ben, lambda: ben.close_code == CloseCode.REMOVED, "ben removed with 4007")
    assert "removed by the host" in ben.errors
    await told(ann, lambda: ben.self_id not in ann.peers, "ann sees ben gone")
    again = await people.join("ben")  # an unlocked room takes him back
    await hears(again, ann)


async def test_asking_to_mute_only_asks(people: People) -> None:
    ann, ben = await people.join("ann"), await people.join("ben")
    await ann.host_action(ASK_MUTE, ben.self_id or "")
    await told(ben, lambda: ben.mute_requests == 1, "ben asked to mute")
    assert not ann.peers[ben.self_id or ""].muted  # nobody mutes another person
    await hears(ann, ben)


async def test_handing_over_moves_the_role_and_the_token(people: People) -> None:
    ann, ben, cat = await people.join("ann"), await people.join("ben"), await people.join("cat")
    await ann.host_action(HAND_OVER, cat.self_id or "")
    await told(ann, lambda: all(c.host == cat.self_id for c in (ann, ben, cat)), "everyone sees cat host")
    assert cat.host_token is not None
    await ann.lock(True)
    await told(ann, lambda: any("only the room's host" in e for e in ann.errors), "ann no longer hosts")


async def test_a_locked_room_keeps_newcomers_in_its_lobby_until_the_host_decides(people: People) -> None:
    ann, ben = await people.join("ann"), await people.join("ben")
    await ann.lock(True)
    await told(ben, lambda: ben.locked and ann.locked, "everyone sees the lock")
    dan, dan_joins = people.knock("dan")
    eve, eve_joins = people.knock("eve")
    await told(ann, lambda: sorted(ann.lobby.values()) == ["dan", "eve"], "ann sees both waiting")
    assert dan.waiting and eve.waiting and not ben.lobby  # only the host sees the lobby
    [dan_id] = [i for i, n in ann.lobby.items() if n == "dan"]
    [eve_id] = [i for i, n in ann.lobby.items() if n == "eve"]
    await ann.host_action(ADMIT, dan_id)
    await dan_joins
    assert dan.self_id == dan_id and not dan.waiting
    await hears(dan, ann)
    await hears(ann, dan)
    await ann.host_action(DECLINE, eve_id)
    with pytest.raises(JoinError, match="the host did not let you in"):
        await eve_joins
    assert eve.close_code == CloseCode.DECLINED
    await told(ann, lambda: ann.lobby == {}, "the lobby is empty")


async def test_the_next_host_inherits_the_lobby_and_unlocking_lets_everyone_in(people: People) -> None:
    ann, ben = await people.join("ann"), await people.join("ben")
    await ann.lock(True)
    await told(ann, lambda: ann.locked, "locked")
    cat, cat_joins = people.knock("cat")
    await told(ann, lambda: list(ann.lobby.values()) == ["cat"], "cat waits")
    await ann.close()
    await told(ben, lambda: ben.host == ben.self_id and list(ben.lobby.values()) == ["cat"], "ben inherits cat")
    await ben.lock(False)
    await cat_joins  # unlocked: let in
    await hears(cat, ben)


async def test_a_wait_ends_and_a_room_that_empties_closes_its_lobby(people: People) -> None:
    ann = await people.join("ann")
    await ann.lock(True)
    await told(ann, lambda: ann.locked, "locked")
    patient, patient_joins = people.knock("patient")
    with pytest.raises(JoinError, match="nobody let you in in time"):
        await patient_joins  # the test server's --lobby-wait is 3 s
    assert patient.close_code == CloseCode.LOBBY_TIMEOUT
    late, late_joins = people.knock("late")
    await told(ann, lambda: list(ann.lobby.values()) == ["late"], "late waits")
    await ann.close()
    with pytest.raises(JoinError, match="everyone left the room"):
        await late_joins
    assert late.close_code == CloseCode.LOBBY_CLOSED
    # The lock went with the room: the next one in hosts a fresh, open room.
    fresh = await people.join("fresh")
    assert fresh.host == fresh.self_id and not fresh.locked


async def test_a_host_that_drops_out_takes_the_role_back_with_its_token(people: People) -> None:
    ann = await people.join("ann", rejoin=True)
    ben = await people.join("ben")
    first_id, token = ann.self_id, ann.host_token
    assert ann._ws is not None
    await ann._ws.close()  # the connection drops; the client rejoins by itself, as the page does
    await told(ann, lambda: ann.rejoins == 1 and ann.self_id != first_id, "ann rejoined")
    await told(ben, lambda: ben.host == ann.self_id, "ann hosts again")
    assert ann.host_token == token
    await ann.lock(True)
    await told(ben, lambda: ben.locked, "ann acts as host")


async def test_a_token_that_is_not_the_rooms_is_refused(people: People) -> None:
    ann, ben = await people.join("ann"), await people.join("ben")
    await ben.send({"type": "claim_host", "token": "A" * 22})
    await ben.send({"type": "claim_host", "token": "short"})
    await told(ben, lambda: len(ben.errors) == 2, "both refused")
    assert "not this room's" in ben.errors[0] and "'token'" in ben.errors[1]
    assert ben.host == ann.self_id


async def test_the_operator_sees_the_host_lock_and_lobby_and_can_turn_a_waiting_person_away(
    people: People, server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    ann = await people.join("ann")
    await ann.lock(True)
    await told(ann, lambda: ann.locked, "locked")
    dan, dan_joins = people.knock("dan")
    await told(ann, lambda: bool(ann.lobby), "dan waits")
    _, rooms = await admin(http, server, action="rooms")
    [room] = [r for r in rooms["rooms"] if r["room"] == people.room]
    assert (room["host"], room["locked"]) == (ann.self_id, True)
    assert [(w["id"], w["name"]) for w in room["lobby"]] == list(ann.lobby.items())
    status, _ = await admin(http, server, "POST", action="kick", peer=room["lobby"][0]["id"])
    assert status == 200
    with pytest.raises(JoinError, match="removed by the operator"):
        await dan_joins
    assert dan.close_code == CloseCode.KICKED
    await told(ann, lambda: ann.lobby == {}, "the lobby is empty")
