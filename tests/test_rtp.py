from __future__ import annotations

import struct

from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket, RtcpSdesPacket, RtcpSenderInfo, RtcpSourceInfo, RtcpSrPacket

from ghosttalk.media.rtp import build_rtp, parse_rtp, sender_reports


def test_round_trip_keeps_every_field() -> None:
    data = build_rtp(0x80, 111, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"payload")
    view = parse_rtp(data)
    assert view is not None
    assert (view.marker, view.payload_type, view.sequence_number, view.timestamp, view.ssrc, view.payload) == (
        0x80,
        111,
        65535,
        0xFFFFFFFF,
        0xDEADBEEF,
        b"payload",
    )


def test_extensions_csrcs_and_padding_are_not_payload() -> None:
    header = bytes([0x80 | 0x20 | 0x10 | 0x02, 111]) + struct.pack("!HII", 1, 2, 3)
    csrcs = struct.pack("!II", 10, 11)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x10\xff\x00\x00"
    packet = header + csrcs + extension + b"opus" + b"\x00\x00\x03"
    view = parse_rtp(packet)
    assert view is not None and view.payload == b"opus"


def test_garbage_is_rejected_not_raised() -> None:
    truncated_extension = bytes([0x90, 111]) + b"\x00" * 10
    padding_past_header = bytes([0xA0, 1]) + b"\x00" * 9 + b"\xff"
    for data in (b"", b"\x80", b"\x00" * 12, truncated_extension, padding_past_header):
        assert parse_rtp(data) is None


def test_sender_reports_are_found_in_a_compound_packet_and_garbage_stops_the_walk() -> None:
    sr = RtcpSrPacket(
        ssrc=0xCAFE,
        sender_info=RtcpSenderInfo(ntp_timestamp=0x0102030405060708, rtp_timestamp=9, packet_count=1, octet_count=80),
    )
    sdes = RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=0xCAFE, items=[(1, b"cname")])])
    rr = RtcpRrPacket(
        ssrc=7,
        reports=[
            RtcpReceiverInfo(ssrc=1, fraction_lost=0, packets_lost=0, highest_sequence=5, jitter=0, lsr=0, dlsr=0)
        ],
    )
    compound = bytes(rr) + bytes(sr) + bytes(sdes)
    assert list(sender_reports(compound)) == [(0xCAFE, 0x0102030405060708)]
    assert list(sender_reports(bytes(rr) + bytes(sdes))) == []
    # A length running past the end, or a wrong version, ends the walk without raising.
    assert list(sender_reports(bytes(sr)[:-4])) == []
    assert list(sender_reports(b"\x00" + bytes(sr)[1:])) == []
    for data in (b"", b"\x80", b"\x80\xc8\x00", b"\x80\xc8\x00\x00"):
        assert list(sender_reports(data)) == []
