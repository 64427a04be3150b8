"""The forwarding path: one ingress parse per packet, fanned out to every receiver, never decoded.

Per ingress packet: SRTP unprotect, one header parse, then for each outbound stream a fresh 12-byte header
(the receiver's SSRC, payload type, sequence number and timestamp) in front of the unchanged payload bytes,
protected with the receiver's key and written to the shared socket there and then: no task switch, no
second loop turn. Only while the socket's own buffer is backed up do packets wait, in a bounded queue per
receiver (oldest dropped first) that is flushed once the socket drains. docs/PERFORMANCE.md has the costs.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

import pylibsrtp

from ghosttalk.media.aiortc_adapter.ice import Address
from ghosttalk.media.aiortc_adapter.rtcp import ReceiverStatistics
from ghosttalk.media.aiortc_adapter.srtp import SRTP_ERRORS, fast_transform, in_place_protect
from ghosttalk.media.batchtransport import BatchedDatagramTransport
from ghosttalk.media.rtp import (
    RTCP_PAYLOAD_TYPES,
    RTP_HEADER,
    RTP_VERSION_BITS,
    RtpView,
    parse_rtp,
    sender_reports,
)

# 64 packets is over a second of one speaker at 50 packets/s, and 7 packets of each of 9 speakers.
EGRESS_QUEUE_PACKETS = 64
# Above this many bytes waiting in the socket's user-space buffer, we stop writing for a moment and let
# the per-receiver queues absorb (and shed) the excess instead of growing one unbounded shared buffer.
SOCKET_BACKLOG_BYTES = 256 * 1024
OPUS_CLOCK_RATE = 48000
# Per-sender packet rate cap. Opus sends 50 packets/s at 20 ms and 100 at 10 ms; a second's window of 150
# leaves room for a burst (packets a network stall held back arrive together) without letting one sender
# multiply everyone's load. Packets over the cap are dropped and counted; a sender over it in more than
# FLOOD_SECONDS consecutive windows is flooding, and its session is closed: after FLOOD_SECONDS - 1 to
# FLOOD_SECONDS seconds of flood (the windows are whole seconds of the clock, so the first may be a sliver).
MAX_PACKETS_PER_SECOND = 150
FLOOD_SECONDS = 5


class _BufferedTransport(Protocol):
    # asyncio's and uvloop's datagram transports both have it; typeshed's DatagramTransport does not say so.
    def get_write_buffer_size(self) -> int: ...


@dataclass(slots=True)
class ForwardingCounters:
    """Plain counters on the hot path; metrics and the benchmark read them."""

    packets_in: int = 0
    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    packets_dropped: int = 0
    packets_rate_limited: int = 0


class Forwarder:
    """Owns the shared socket's writing side and the receivers whose packets had to wait."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self.transport = transport
        self.backlog = cast(_BufferedTransport, transport).get_write_buffer_size
        # Where sendmmsg is available (ghosttalk.media.batchtransport), media goes out in batches.
        self.batch = transport.send_batch if isinstance(transport, BatchedDatagramTransport) else None
        self.counters = ForwardingCounters()
        self._pending: list[EgressSink] = []
        self._flush_handle: asyncio.Handle | None = None

    def schedule(self, sink: EgressSink) -> None:
        self._pending.append(sink)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_handle = None
        if self.backlog() > SOCKET_BACKLOG_BYTES:
            self._flush_handle = asyncio.get_running_loop().call_later(0.002, self.flush)
            return
        pending, self._pending = self._pending, []
        for sink in pending:
            sink.scheduled = False
            queue, send = sink.queue, sink.send
            while queue:
                send(queue.popleft())

    def cancel(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None


class EgressSink:
    """Everything that leaves towards one receiving peer: its SRTP session, address and waiting queue."""

    __slots__ = (
        "addr",
        "backlog",
        "counters",
        "destination",
        "forwarder",
        "protect",
        "queue",
        "scheduled",
        "sendto",
    )

    def __init__(self, forwarder: Forwarder, protect: Callable[[bytes], bytes], addr: Address) -> None:
        self.forwarder = forwarder
        self.counters = forwarder.counters
        self.protect = fast_transform(protect)
        self.addr = addr
        self.sendto = forwarder.transport.sendto
        self.backlog = forwarder.backlog
        self.queue: deque[bytes] = deque(maxlen=EGRESS_QUEUE_PACKETS)
        self.scheduled = False
        # The batched path: protected straight into a send slot, handed to the kernel with the other
        # listeners' datagrams of the same ingress packet. Either part missing (no sendmmsg, a protect that
        # is not libsrtp's) means the plain path, one sendto per packet. self.protect holds the SRTP session
        # the in-place call uses.
        in_place = in_place_protect(protect)
        batch = forwarder.batch
        self.destination = (
            batch.destination(addr, in_place.function, in_place.context)
            if batch is not None and in_place is not None
            else None
        )

    def put(self, packet: bytes) -> None:
        """Send now, unless the socket is backed up or earlier packets of this receiver still wait."""
        if self.queue or self.backlog() > SOCKET_BACKLOG_BYTES:
            queue = self.queue
            if len(queue) == EGRESS_QUEUE_PACKETS:
                self.counters.packets_dropped += 1
            queue.append(packet)
            if not self.scheduled:
                self.scheduled = True
                self.forwarder.schedule(self)
            return
        self.send(packet)

    def send(self, packet: bytes) -> None:
        counters = self.counters
        destination = self.destination
        if destination is not None:
            size = destination.batch.add(packet, destination)
            if size < 0:
                counters.packets_dropped += 1
                return
        else:
            try:
                data = self.protect(packet)
            except SRTP_ERRORS:
                counters.packets_dropped += 1
                return
            self.sendto(data, self.addr)
            size = len(data)
        counters.packets_forwarded += 1
        counters.bytes_forwarded += size

    def send_report(self, protect_rtcp: Callable[[bytes], bytes]) -> Callable[[bytes], None]:
        """A writer for this receiver's RTCP (a few packets a minute: pylibsrtp's own call is fine), sent at
        once, whatever waits in the media queue."""

        def send(report: bytes) -> None:
            try:
                data = protect_rtcp(report)
            except SRTP_ERRORS:
                return
            self.sendto(data, self.addr)

        return send

    def close(self) -> None:
        self.queue.clear()


@dataclass(slots=True)
class StreamPosition:
    """Where an outbound stream's numbering stands, so that a new source continues it seamlessly."""

    sequence_number: int
    timestamp: int
    wall_time: float

    @classmethod
    def random(cls) -> StreamPosition:
        # Like aiortc, start sequence numbers in the lower half so SRTP's rollover logic has room.
        return cls(random.randrange(32768), random.getrandbits(32), time.monotonic())


class OutboundStream:
    """One speaker's voice towards one receiver, on a send-only transceiver of the receiver's connection.

    Sequence numbers and timestamps are the speaker's plus a constant offset, so losses and Opus DTX gaps
    keep their spacing; the offset is recomputed only when the source changes (a new speaker SSRC, or the
    transceiver reused for another person), continuing from where the stream stood.
    """

    __slots__ = (
        "last_sequence_number",
        "last_timestamp",
        "last_wall_time",
        "octets",
        "packets",
        "payload_type",
        "sequence_offset",
        "sink",
        "source_ssrc",
        "ssrc",
        "timestamp_offset",
    )

    def __init__(self, ssrc: int, payload_type: int, sink: EgressSink, start: StreamPosition) -> None:
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.sink = sink
        self.source_ssrc: int | None = None
        self.sequence_offset = 0
        self.timestamp_offset = 0
        self.last_sequence_number = start.sequence_number
        self.last_timestamp = start.timestamp
        self.last_wall_time = start.wall_time
        self.packets = 0
        self.octets = 0

    def position(self) -> StreamPosition:
        return StreamPosition(self.last_sequence_number, self.last_timestamp, self.last_wall_time)

    def new_source(self) -> None:
        """The stream is moved to another speaker: its next packet continues the numbering from here, even
        from a speaker it carried before (whose packets went on meanwhile)."""
        self.source_ssrc = None

    def _rebase(self, packet: RtpView, now: float) -> None:
        elapsed = max(now - self.last_wall_time, 0.02)
        self.sequence_offset = (self.last_sequence_number + 1 - packet.sequence_number) & 0xFFFF
        next_timestamp = self.last_timestamp + int(elapsed * OPUS_CLOCK_RATE)
        self.timestamp_offset = (next_timestamp - packet.timestamp) & 0xFFFFFFFF
        self.source_ssrc = packet.ssrc

    def forward(self, packet: RtpView, now: float) -> None:
        if packet.ssrc != self.source_ssrc:
            self._rebase(packet, now)
        sequence_number = (packet.sequence_number + self.sequence_offset) & 0xFFFF
        timestamp = (packet.timestamp + self.timestamp_offset) & 0xFFFFFFFF
        self.last_sequence_number = sequence_number
        self.last_timestamp = timestamp
        self.last_wall_time = now
        self.packets += 1
        self.octets += len(packet.payload)
        self.sink.put(
            RTP_HEADER.pack(RTP_VERSION_BITS, packet.marker | self.payload_type, sequence_number, timestamp, self.ssrc)
            + packet.payload
        )


class Speaker:
    """One peer's incoming audio and the outbound streams it feeds."""

    __slots__ = (
        "counters",
        "flood_streak",
        "level_id",
        "level_packets",
        "level_sum",
        "on_flood",
        "over_window",
        "payload_types",
        "statistics",
        "streams",
        "unprotect",
        "unprotect_rtcp",
        "window",
        "window_packets",
    )

    def __init__(self, counters: ForwardingCounters) -> None:
        self.counters = counters
        self.streams: list[OutboundStream] = []
        self.statistics: ReceiverStatistics | None = None
        self.payload_types: frozenset[int] = frozenset()
        self.unprotect: Callable[[bytes], bytes] | None = None
        self.unprotect_rtcp: Callable[[bytes], bytes] | None = None
        # Called once when the sender has been over MAX_PACKETS_PER_SECOND for more than FLOOD_SECONDS windows
        # in a row.
        self.on_flood: Callable[[], None] | None = None
        # The rate cap: packets in the current one-second window (whole seconds of the monotonic clock; an
        # integer compare and increment per packet, cheaper than a token bucket's float arithmetic), and the
        # run of consecutive windows that went over it.
        self.window = 0
        self.window_packets = 0
        self.over_window = -1
        self.flood_streak = 0
        # The RFC 6464 audio level: the header extension id this connection negotiated for it (0: none), and
        # running totals of the levels read and of the packets that carried one (two integer additions per
        # packet; media.selection reads the differences on its own timer).
        self.level_id = 0
        self.level_sum = 0
        self.level_packets = 0

    def bind(self, session: pylibsrtp.Session, statistics: ReceiverStatistics, payload_types: frozenset[int]) -> None:
        """Start accepting packets once the speaker's DTLS-SRTP (its receive session) and audio transceiver
        are ready."""
        self.unprotect = fast_transform(session.unprotect)
        self.unprotect_rtcp = fast_transform(session.unprotect_rtcp)
        self.statistics = statistics
        self.payload_types = payload_types

    def on_srtp(self, data: bytes) -> None:
        """Every SRTP and SRTCP datagram from this peer once DTLS is up (the shared socket calls it)."""
        unprotect = self.unprotect
        if unprotect is None or len(data) < 12:
            return
        if data[1] in RTCP_PAYLOAD_TYPES:
            self.on_srtcp(data)
            return
        try:
            plain = unprotect(data)
        except SRTP_ERRORS:
            self.counters.packets_dropped += 1
            return
        self.on_rtp(plain)

    def on_srtcp(self, data: bytes) -> None:
        """The peer's reports. All the server needs from them is the time of each sender report, echoed in
        our receiver reports; the rest (its receiver reports on our streams, SDES, NACK for audio we keep no
        history of) would only feed aiortc's statistics, which nobody reads."""
        unprotect_rtcp, statistics = self.unprotect_rtcp, self.statistics
        if unprotect_rtcp is None or statistics is None:
            return
        try:
            plain = unprotect_rtcp(data)
        except SRTP_ERRORS:
            return
        for ssrc, ntp_timestamp in sender_reports(plain):
            statistics.sender_report(ssrc, ntp_timestamp)

    def on_rtp(self, data: bytes) -> None:
        # Counted after SRTP authentication (a forger spoofing this peer's address cannot spend its budget).
        now = time.monotonic()
        second = int(now)
        if second != self.window:
            self.window, self.window_packets = second, 0
        self.window_packets += 1
        if self.window_packets > MAX_PACKETS_PER_SECOND:
            self._over_cap(second)
            return
        packet = parse_rtp(data, self.level_id)
        if packet is None or packet.payload_type not in self.payload_types:
            self.counters.packets_dropped += 1
            return
        self.counters.packets_in += 1
        level = packet.level
        if level >= 0:
            self.level_sum += level
            self.level_packets += 1
        statistics = self.statistics
        if statistics is not None:
            statistics.add(packet.ssrc, packet.sequence_number, packet.timestamp)
        streams = self.streams
        if streams:
            for stream in streams:
                stream.forward(packet, now)

    def _over_cap(self, second: int) -> None:
        self.counters.packets_rate_limited += 1
        if self.window_packets != MAX_PACKETS_PER_SECOND + 1:
            return  # this window has been counted towards the streak already
        self.flood_streak = self.flood_streak + 1 if self.over_window == second - 1 else 1
        self.over_window = second
        on_flood = self.on_flood
        if self.flood_streak > FLOOD_SECONDS and on_flood is not None:
            self.on_flood = None
            on_flood()

    def close(self) -> None:
        self.unprotect = self.unprotect_rtcp = None
        self.on_flood = None
        self.streams.clear()
