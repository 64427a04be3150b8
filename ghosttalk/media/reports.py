"""RTCP reports for one connection: one compound packet every few seconds instead of one task per stream.

aiortc runs a report task for every sender and every receiver, each waking on its own timer and going through
its generic send path; a server with hundreds of forwarded streams spent more on those wake-ups than on
forwarding some of the streams. Here each connection sends, every 2.5-7.5 s (RFC 3550's 5 s minimum, randomised
over [0.5, 1.5] as the RFC asks), one SRTCP packet holding:

* a receiver report on the person's own voice (loss, jitter, and the LSR/DLSR echo of their last sender
  report from which their browser computes its round-trip time),
* a sender report for every stream we forward to them, from the forwarder's own counters, with NTP and RTP
  timestamps for the same instant (the moment of sending),
* an SDES chunk with the connection's CNAME for each of those SSRCs.

aiortc's own report loops do not run (``aiortc_adapter.endpoints.skip_loops``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiortc.rtp import (
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
)

from ghosttalk.media.forwarder import OPUS_CLOCK_RATE, OutboundStream
from ghosttalk.media.rtp import ntp_now

REPORT_INTERVAL_SECONDS = 5.0
_SDES_CNAME = 1
_MAX_COUNT = 31


def report_delay() -> float:
    return REPORT_INTERVAL_SECONDS * (0.5 + random.random())


@dataclass(slots=True)
class ReportSources:
    """What one connection's reports are made from (all read at the moment of sending)."""

    rtcp_ssrc: int
    cname: str
    receiver_blocks: Callable[[], list[RtcpReceiverInfo]]
    streams: Callable[[], Iterable[OutboundStream]]


def compound_report(sources: ReportSources) -> bytes:
    """The plain (not yet protected) compound RTCP packet for this moment."""
    now = time.monotonic()
    ntp = ntp_now()
    packets: list[RtcpRrPacket | RtcpSrPacket | RtcpSdesPacket] = [
        RtcpRrPacket(ssrc=sources.rtcp_ssrc, reports=sources.receiver_blocks())
    ]
    ssrcs = [sources.rtcp_ssrc]
    for stream in sources.streams():
        if stream.packets == 0:
            continue  # nothing sent yet: nothing to report
        elapsed = max(now - stream.last_wall_time, 0.0)
        rtp_timestamp = (stream.last_timestamp + int(elapsed * OPUS_CLOCK_RATE)) & 0xFFFFFFFF
        info = RtcpSenderInfo(
            ntp_timestamp=ntp,
            rtp_timestamp=rtp_timestamp,
            packet_count=stream.packets & 0xFFFFFFFF,
            octet_count=stream.octets & 0xFFFFFFFF,
        )
        packets.append(RtcpSrPacket(ssrc=stream.ssrc, sender_info=info))
        ssrcs.append(stream.ssrc)
    cname = sources.cname.encode()
    chunks = [RtcpSourceInfo(ssrc=ssrc, items=[(_SDES_CNAME, cname)]) for ssrc in ssrcs]
    # An SDES packet counts its chunks in 5 bits.
    packets.extend(RtcpSdesPacket(chunks=chunks[i : i + _MAX_COUNT]) for i in range(0, len(chunks), _MAX_COUNT))
    return b"".join(bytes(packet) for packet in packets)


async def send_reports(sources: ReportSources, send: Callable[[bytes], None]) -> None:
    """Runs for the life of the connection (its owner cancels it)."""
    while True:
        await asyncio.sleep(report_delay())
        send(compound_report(sources))
