"""The DTLS role is settled by the first offer/answer exchange and never changes.

The server answers a joiner's offer ``a=setup:active`` (it is the DTLS client), then, to a joiner that offered
no receive lines (Pion; the clients here act so), re-offers ``actpass`` at once to add the heartbeat channel
and the other people's streams; to everyone it re-offers as people come and go. Firefox answers that
re-offer ``passive`` on its audio section but ``active`` on the new ``m=application`` section of the same
BUNDLE group; Pion answers ``active`` to every re-offer. aiortc applies each section's ``a=setup`` to the one
shared transport, the last winning, which made the server a DTLS server too. These tests play both stacks
with the headless client (its own connection keeps its real role; only the answer it sends is rewritten),
with the re-answer landing before, during and after the DTLS handshake, and want audio both ways and a
working heartbeat channel in the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from ghosttalk.client.participant import Client, ClientOptions
from ghosttalk.media.aiortc_adapter.ice import Address
from tests.support.room import hears, server_has_read_all
from tests.support.server import ServerProcess

Send = Callable[[bytes, Address], None]


def firefox_answer(sdp: str) -> str:
    """Firefox 153: its real role (passive) on the audio sections, ``active`` on the application section."""
    sections = re.split(r"(?m)^(?=m=)", sdp)
    return "".join(
        re.sub(r"a=setup:\w+", "a=setup:active", s) if s.startswith("m=application") else s for s in sections
    )


def pion_answer(sdp: str) -> str:
    """Pion 3.1: ``active`` on every section of every answer, whatever its role."""
    return re.sub(r"a=setup:\w+", "a=setup:active", sdp)


STACKS = {"firefox": firefox_answer, "pion": pion_answer}


@dataclass
class AnswerWriter:
    """The client's ``rewrite_answer``: rewrites every answer, and keeps them back while ``hold`` is set."""

    rewrite: Callable[[str], str]
    hold: bool = False
    held: list[str] = field(default_factory=list)

    def __call__(self, sdp: str) -> str | None:
        answer = self.rewrite(sdp)
        if self.hold:
            self.held.append(answer)
            return None
        return answer


def is_dtls(data: bytes) -> bool:
    return bool(data) and 19 < data[0] < 64  # RFC 7983 demultiplexing


class DtlsGate:
    """The client's UDP path with a hand on it: a blackout, or, from the first DTLS record the server sends,
    the client's own DTLS records held back until released (the handshake is then half done)."""

    def __init__(self, blackout: bool = False, hold_after_first_dtls: bool = False) -> None:
        self.blackout = blackout
        self._hold_after_first = hold_after_first_dtls
        self._holding = False
        self._held: list[tuple[bytes, Address, Send]] = []
        self.server_dtls_seen = False

    def outgoing(self, data: bytes, addr: Address, send: Send) -> None:
        if self.blackout:
            return
        if self._holding and is_dtls(data):
            self._held.append((data, addr, send))
            return
        send(data, addr)

    def incoming(self, data: bytes, addr: Address, deliver: Send) -> None:
        if self.blackout:
            return
        if is_dtls(data) and not self.server_dtls_seen:
            self.server_dtls_seen = True
            self._holding = self._hold_after_first
        deliver(data, addr)

    def release(self) -> None:
        self._holding = False
        held, self._held = self._held, []
        for data, addr, send in held:
            send(data, addr)


async def server_answer_to_a_new_offer(client: Client) -> str:
    """The client offers again, as a browser does when its tracks change; the server's answer."""
    assert client.pc is not None
    answered = sum(1 for m in client.messages if m.get("type") == "answer")
    await client.pc.setLocalDescription(await client.pc.createOffer())
    await client.send({"type": "offer", "sdp": client.pc.localDescription.sdp})
    await client.wait_for(lambda: sum(1 for m in client.messages if m.get("type") == "answer") > answered, 5)
    answer: str = [m for m in client.messages if m.get("type") == "answer"][-1]["sdp"]
    return answer


async def check_call(talker: Client, joiner: Client) -> None:
    await hears(talker, joiner)
    await hears(joiner, talker)
    # The heartbeat channel runs on SCTP, whose stream ids follow the DTLS role.
    await joiner.wait_for(lambda: joiner.pings > 0, 5)
    # The role the server states is still the one it plays (the DTLS client): a browser refuses an answer
    # that claims the other role for a transport that is up.
    answer = await server_answer_to_a_new_offer(joiner)
    assert set(re.findall(r"a=setup:(\w+)", answer)) == {"active"}
    await hears(talker, joiner)


@contextlib.asynccontextmanager
async def joining_in_background(joiner: Client, talker: Client) -> AsyncIterator[asyncio.Task[Client]]:
    """``joiner.connect()`` as a task the test steers around; both clients are closed afterwards."""
    joining = asyncio.create_task(joiner.connect(timeout=10))
    try:
        yield joining
    finally:
        joining.cancel()
        await asyncio.gather(joining, return_exceptions=True)
        await asyncio.gather(joiner.close(), talker.close())


@pytest.mark.parametrize("stack", sorted(STACKS))
async def test_a_reanswer_before_the_handshake_keeps_the_role(shared_server: ServerProcess, stack: str) -> None:
    room = f"role-before-{stack}"
    talker = await Client(shared_server.url, room, "talker").connect()
    gate = DtlsGate(blackout=True)
    writer = AnswerWriter(STACKS[stack])
    options = ClientOptions(network=gate, rewrite_answer=writer, receive_lines=False)
    joiner = Client(shared_server.url, room, stack, options)
    async with joining_in_background(joiner, talker) as joining:
        # No datagram passes until the rewritten re-answer has been applied by the server.
        await talker.wait_for(lambda: joiner.answers_sent > 0 or joining.done(), 10)
        await server_has_read_all(joiner)
        gate.blackout = False
        await joining
        await check_call(talker, joiner)


@pytest.mark.parametrize("stack", sorted(STACKS))
async def test_a_reanswer_during_the_handshake_keeps_the_role(shared_server: ServerProcess, stack: str) -> None:
    room = f"role-during-{stack}"
    talker = await Client(shared_server.url, room, "talker").connect()
    gate = DtlsGate(hold_after_first_dtls=True)
    writer = AnswerWriter(STACKS[stack], hold=True)
    options = ClientOptions(network=gate, rewrite_answer=writer, receive_lines=False)
    joiner = Client(shared_server.url, room, stack, options)
    async with joining_in_background(joiner, talker) as joining:
        # The server (the DTLS client) has sent its ClientHello, the client's reply is held, and so is the
        # client's answer to the re-offer: the server's handshake is under way when the answer lands.
        await talker.wait_for(lambda: (gate.server_dtls_seen and bool(writer.held)) or joining.done(), 10)
        writer.hold = False
        await joiner.send({"type": "answer", "sdp": writer.held.pop(0)})
        await server_has_read_all(joiner)
        gate.release()
        await joining
        await check_call(talker, joiner)


@pytest.mark.parametrize("stack", sorted(STACKS))
async def test_a_reanswer_after_the_handshake_keeps_the_role(shared_server: ServerProcess, stack: str) -> None:
    room = f"role-after-{stack}"
    talker = await Client(shared_server.url, room, "talker").connect()
    writer = AnswerWriter(STACKS[stack], hold=True)
    options = ClientOptions(rewrite_answer=writer, receive_lines=False)
    joiner = await Client(shared_server.url, room, stack, options).connect()
    try:
        # The talker hears the joiner: the server has finished its handshake and derived its SRTP keys.
        await hears(talker, joiner)
        await joiner.wait_for(lambda: bool(writer.held), 5)
        writer.hold = False
        await joiner.send({"type": "answer", "sdp": writer.held.pop(0)})
        await server_has_read_all(joiner)
        await check_call(talker, joiner)
    finally:
        await asyncio.gather(joiner.close(), talker.close())
