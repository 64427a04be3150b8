"""Headless clients in a room: join them as people do, wait until everyone's offer carries everyone else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial

from ghosttalk.client.participant import Client, ClientOptions
from tests.support.eventually import eventually
from tests.support.server import ServerProcess


@asynccontextmanager
async def clients(server: ServerProcess, room: str, names: list[str], **options: object) -> AsyncIterator[list[Client]]:
    """Join ``names`` one after another (as people do) and close them all at the end."""
    joined: list[Client] = []
    try:
        for name in names:
            joined.append(await Client(server.url, room, name, ClientOptions(**options)).connect())  # type: ignore[arg-type]
        await negotiated(joined)
        yield joined
    finally:
        await asyncio.gather(*(c.close() for c in joined), return_exceptions=True)


def _offered_all(client: Client, others: set[str | None]) -> bool:
    return others <= client.negotiated_speakers()


async def negotiated(members: list[Client], timeout: float = 10.0) -> None:
    """Every member has answered an offer carrying every other member's stream, and the server has had a
    moment to apply the answers (after which packets sent are forwarded)."""
    for client in members:
        others = {m.self_id for m in members if m is not client}
        await client.wait_for(partial(_offered_all, client, others), timeout)
    # No message tells a client that the server has applied its answer, so this one short pause stays; a test
    # that must not depend on it speaks until it is heard (``hear_each_other``).
    await asyncio.sleep(0.2)


async def hear_each_other(members: Sequence[Client], timeout: float = 5.0) -> None:
    """Everyone speaks, a packet each per poll, until everyone has heard everyone else. A packet sent before
    the server applied the listener's answer is not forwarded, so speaking again is how a person finds out."""

    def all_heard() -> bool:
        for member in members:
            member.send_rtp(b"hello from " + member.name.encode())
        return all({m.self_id for m in members if m is not member} <= member.speakers() for member in members)

    await eventually(all_heard, timeout, what="everyone hears everyone else", interval=0.2)


async def server_has_read_all(client: Client) -> None:
    """The server handles one client's messages in order: once it has echoed a mute sent after something,
    that something has been applied. (A caller that lets the client answer waits for that answer first.)"""

    def updates() -> int:
        return sum(1 for m in client.messages if m.get("type") == "peer_update" and m["peer"]["id"] == client.self_id)

    before = updates()
    await client.mute(False)
    await client.wait_for(lambda: updates() > before, 5)


async def hears(listener: Client, speaker: Client, timeout: float = 5.0) -> None:
    """``speaker`` sends a packet every 20 ms until ``listener`` has received ten, bit-exact."""
    tag = f"from {speaker.name} to {listener.name} ".encode()
    sent = 0

    def received() -> list[bytes]:
        return [p.payload for p in listener.received.get(speaker.self_id or "", []) if p.payload.startswith(tag)]

    def speak_and_count() -> int:
        nonlocal sent
        speaker.send_rtp(tag + str(sent).encode())
        sent += 1
        return len(received())

    await eventually(
        speak_and_count, timeout, what=f"{listener.name} hears ten from {speaker.name}", interval=0.02,
        until=lambda count: count >= 10,
    )
    assert all(p.startswith(tag) and p[len(tag) :].isdigit() for p in received())


async def assert_still_talking(server: ServerProcess, room: str, members: list[Client]) -> None:
    """A fresh client in the same room hears the others and they hear it."""
    fresh = await Client(server.url, room, "fresh", ClientOptions()).connect()
    try:
        everyone = [*members, fresh]
        for member in everyone:
            others = {m.self_id for m in everyone if m is not member}
            await member.wait_for(partial(_offered_all, member, others), 10)
        await hear_each_other(everyone)
    finally:
        await fresh.close()
