"""The connection's compound RTCP report (ghosttalk.media.reports), parsed back with aiortc's own parser."""

from __future__ import annotations

import time
from typing import Any, cast

from aiortc.rtp import RtcpPacket, RtcpReceiverInfo, RtcpRrPacket, RtcpSdesPacket, RtcpSrPacket

from ghosttalk.media.forwarder import EgressSink, OutboundStream, StreamPosition
from ghosttalk.media.reports import ReportSources, compound_report
from ghosttalk.media.rtp import NTP_UNIX_OFFSET


def stream(ssrc: int, packets: int, last_timestamp: int = 1000, age: float = 0.0) -> OutboundStream:
    position = StreamPosition(sequence_number=1, timestamp=last_timestamp, wall_time=time.monotonic() - age)
    outbound = OutboundStream(ssrc, 111, cast(EgressSink, None), position)
    outbound.packets, outbound.octets = packets, 80 * packets
    return outbound


def sources(streams: list[OutboundStream], blocks: list[RtcpReceiverInfo] | None = None) -> ReportSources:
    return ReportSources(rtcp_ssrc=7, cname="room-cname", receiver_blocks=lambda: blocks or [], streams=lambda: streams)


def test_one_receiver_report_then_a_sender_report_per_stream_that_sent_then_cnames() -> None:
    block = RtcpReceiverInfo(ssrc=99, fraction_lost=3, packets_lost=4, highest_sequence=5, jitter=6, lsr=7, dlsr=8)
    half_second_ago = stream(0xA, 50, last_timestamp=48000, age=0.5)
    packets: list[Any] = RtcpPacket.parse(compound_report(sources([half_second_ago, stream(0xB, 0)], [block])))
    rr, sr, sdes = packets
    assert isinstance(rr, RtcpRrPacket) and rr.ssrc == 7 and rr.reports == [block]
    assert isinstance(sr, RtcpSrPacket) and sr.ssrc == 0xA
    assert (sr.sender_info.packet_count, sr.sender_info.octet_count) == (50, 4000)
    # NTP and RTP timestamps describe the same instant: now, half a second after the last packet.
    assert abs(sr.sender_info.ntp_timestamp / 2**32 - NTP_UNIX_OFFSET - time.time()) < 0.1
    assert abs(sr.sender_info.rtp_timestamp - (48000 + 24000)) < 48000 * 0.1
    assert isinstance(sdes, RtcpSdesPacket)
    assert [(chunk.ssrc, chunk.items) for chunk in sdes.chunks] == [
        (7, [(1, b"room-cname")]),
        (0xA, [(1, b"room-cname")]),
    ]


def test_more_than_31_cnames_are_split_over_sdes_packets() -> None:
    packets: list[Any] = RtcpPacket.parse(compound_report(sources([stream(ssrc, 1) for ssrc in range(100, 140)])))
    sdes = [packet for packet in packets if isinstance(packet, RtcpSdesPacket)]
    assert [len(packet.chunks) for packet in sdes] == [31, 10]
    assert sum(isinstance(packet, RtcpSrPacket) for packet in packets) == 40
