"""The forwarding lines of one connection (``OutboundSlots``), on a real aiortc connection and no server.

The server's side is an ``RTCPeerConnection`` holding the slots; the receiving side is another one that
answers each offer, as a browser would or (refusing lines) as Pion does. Candidates are left out of both
descriptions, so nothing is ever sent: only what each negotiation says of each line matters here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from ghosttalk.media.forwarder import EgressSink, Forwarder, ForwardingCounters, Speaker
from ghosttalk.media.outbound import ForwardingLinesExhausted, OutboundSlots


def without_candidates(description: RTCSessionDescription) -> RTCSessionDescription:
    return RTCSessionDescription(re.sub(r"(?m)^a=candidate:.*\r\n", "", description.sdp), description.type)


@dataclass
class Connection:
    """The server's connection with its slots, and the receiver that answers its offers."""

    server: RTCPeerConnection
    receiver: RTCPeerConnection
    slots: OutboundSlots
    sink: EgressSink

    def lines(self) -> dict[str, str | None]:
        """mid -> the direction the last completed negotiation gave each of the server's lines."""
        return {t.mid or "": t.currentDirection for t in self.server.getTransceivers()}

    async def negotiate(self, refuse: Collection[str] = ()) -> bool:
        """One offer from the server and the receiver's answer, which makes lines ``refuse`` (mids) inactive;
        returns what ``answered()`` returns."""
        await self.server.setLocalDescription(await self.server.createOffer())
        self.slots.offered()
        await self.receiver.setRemoteDescription(without_candidates(self.server.localDescription))
        for transceiver in self.receiver.getTransceivers():
            if transceiver.mid in refuse:
                transceiver.direction = "inactive"
        await self.receiver.setLocalDescription(await self.receiver.createAnswer())
        await self.server.setRemoteDescription(without_candidates(self.receiver.localDescription))
        return self.slots.answered()

    def line_of(self, speaker_id: str) -> int:
        """The index of the line carrying ``speaker_id`` (a fresh line has no mid before it is offered)."""
        [index] = [
            i
            for i, t in enumerate(self.server.getTransceivers())
            if t.direction == "sendonly" and t.sender._stream_id == speaker_id
        ]
        return index

    def mid_of(self, speaker_id: str) -> str:
        return self.server.getTransceivers()[self.line_of(speaker_id)].mid or ""


@pytest.fixture
async def connection() -> AsyncIterator[Connection]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    server, receiver = RTCPeerConnection(), RTCPeerConnection()
    sink = EgressSink(Forwarder(transport), lambda packet: packet, ("127.0.0.1", 9))
    try:
        yield Connection(server, receiver, OutboundSlots(server, max_lines=4), sink)
    finally:
        await server.close()
        await receiver.close()
        transport.close()


def speaker() -> Speaker:
    return Speaker(ForwardingCounters())


async def test_each_speaker_gets_one_send_only_line(connection: Connection) -> None:
    slots = connection.slots
    ann = speaker()
    slots.assign("ann", ann)
    slots.assign("ann", ann)  # again: nothing new
    slots.assign("ben", speaker())
    assert len(slots) == 2 and slots.speaker_ids() == ["ann", "ben"]
    assert [t.direction for t in connection.server.getTransceivers()] == ["sendonly", "sendonly"]
    assert not await connection.negotiate()
    assert set(connection.lines().values()) == {"sendonly"}


async def test_a_line_streams_only_once_negotiated_and_stops_when_released(connection: Connection) -> None:
    slots, ann = connection.slots, speaker()
    slots.assign("ann", ann)
    slots.activate(connection.sink)
    assert slots.streams() == [] and ann.streams == [], "nothing flows before the receiver has answered"
    await connection.negotiate()
    slots.activate(connection.sink)
    slots.activate(connection.sink)  # twice: still one stream
    [stream] = slots.streams()
    assert ann.streams == [stream]
    assert slots.release("ann")
    assert not slots.release("ann")
    assert slots.streams() == [] and ann.streams == []
    assert connection.server.getTransceivers()[0].direction == "inactive"
    assert len(slots) == 0


async def test_a_released_line_is_reused_only_after_an_answer_that_saw_it_inactive(connection: Connection) -> None:
    slots = connection.slots
    slots.assign("ann", speaker())
    await connection.negotiate()
    slots.release("ann")
    slots.assign("ben", speaker())  # the receiver still thinks the line carries ann: a fresh line
    assert len(connection.server.getTransceivers()) == 2
    slots.release("ben")
    await connection.negotiate()  # ann's line offered inactive and answered
    cat = speaker()
    slots.assign("cat", cat)
    assert len(connection.server.getTransceivers()) == 2, "the pooled line is handed to cat"
    assert connection.line_of("cat") == 0
    slots.activate(connection.sink)
    assert cat.streams == [], "the receiver has not yet accepted the line for cat"
    await connection.negotiate()
    assert connection.lines()[connection.mid_of("cat")] == "sendonly"
    slots.activate(connection.sink)
    assert len(cat.streams) == 1


async def test_a_line_released_after_its_offer_went_out_waits_for_one_more_answer(connection: Connection) -> None:
    slots = connection.slots
    slots.assign("ann", speaker())
    await connection.server.setLocalDescription(await connection.server.createOffer())
    slots.offered()  # the offer says: ann on this line
    slots.release("ann")
    await connection.receiver.setRemoteDescription(without_candidates(connection.server.localDescription))
    await connection.receiver.setLocalDescription(await connection.receiver.createAnswer())
    await connection.server.setRemoteDescription(without_candidates(connection.receiver.localDescription))
    assert not slots.answered()
    slots.assign("ben", speaker())
    assert len(connection.server.getTransceivers()) == 2, "the receiver never saw the line inactive"


async def test_a_reused_line_continues_the_numbering_where_it_stood(connection: Connection) -> None:
    slots = connection.slots
    slots.assign("ann", speaker())
    await connection.negotiate()
    slots.activate(connection.sink)
    [first] = slots.streams()
    first.last_sequence_number, first.last_timestamp = 1234, 987654
    slots.release("ann")
    await connection.negotiate()
    slots.assign("ben", speaker())
    await connection.negotiate()
    slots.activate(connection.sink)
    [second] = slots.streams()
    assert second is not first
    assert (second.last_sequence_number, second.last_timestamp) == (1234, 987654)
    assert second.ssrc == first.ssrc, "the same sender: the receiver sees one stream change its source"


async def test_a_refused_line_dies_and_its_speaker_moves_to_a_fresh_one(connection: Connection) -> None:
    slots = connection.slots
    slots.assign("ann", speaker())
    refused = "0"
    assert await connection.negotiate(refuse=[refused]), "the move needs an offer"
    assert slots.dead_lines == 1 and slots.speaker_ids() == ["ann"]
    assert connection.line_of("ann") == 1
    assert connection.server.getTransceivers()[0].direction == "inactive"
    assert not await connection.negotiate()
    assert connection.lines()[connection.mid_of("ann")] == "sendonly"
    # A dead line is never handed out again, even once an answer showed it inactive.
    slots.release("ann")
    await connection.negotiate()
    slots.assign("ben", speaker())
    assert connection.line_of("ben") == 1, "ann's line, pooled; never the dead one"


async def test_a_client_that_refuses_a_reused_line_gets_fresh_lines_from_then_on(connection: Connection) -> None:
    slots = connection.slots
    slots.assign("ann", speaker())
    slots.assign("ben", speaker())
    await connection.negotiate()
    slots.release("ann")
    await connection.negotiate()  # ann's line is in the pool
    slots.assign("cat", speaker())
    reused = connection.mid_of("cat")
    assert await connection.negotiate(refuse=[reused])  # as Pion does with a line it once saw inactive
    slots.release("ben")
    await connection.negotiate()  # ben's line would be in the pool, but reuse is over
    slots.assign("dan", speaker())
    assert connection.line_of("dan") == 3
    assert len(connection.server.getTransceivers()) == 4


async def test_lines_beyond_the_budget_end_the_connection(connection: Connection) -> None:
    slots = connection.slots
    for name in ("ann", "ben", "cat", "dan"):
        slots.assign(name, speaker())
    with pytest.raises(ForwardingLinesExhausted, match="all its 4 forwarding lines"):
        slots.assign("eve", speaker())
    assert slots.speaker_ids() == ["ann", "ben", "cat", "dan"]


async def test_a_dead_line_counts_against_the_budget(connection: Connection) -> None:
    slots = connection.slots
    for name in ("ann", "ben", "cat", "dan"):
        slots.assign(name, speaker())
    with pytest.raises(ForwardingLinesExhausted, match="refused to receive on 1"):
        await connection.negotiate(refuse=["0"])


async def test_close_stops_every_stream(connection: Connection) -> None:
    slots = connection.slots
    ann, ben = speaker(), speaker()
    slots.assign("ann", ann)
    slots.assign("ben", ben)
    await connection.negotiate()
    slots.activate(connection.sink)
    assert len(slots.streams()) == 2
    slots.close()
    assert slots.streams() == [] and ann.streams == [] and ben.streams == [] and len(slots) == 0
