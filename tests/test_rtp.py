from __future__ import annotations

import random
import struct

import pytest
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket, RtcpSdesPacket, RtcpSenderInfo, RtcpSourceInfo, RtcpSrPacket

from ghosttalk.media.rtp import NO_LEVEL, audio_level_extension, build_rtp, parse_rtp, sender_reports


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


def _with_extension(profile: int, elements: bytes, payload: bytes = b"opus") -> bytes:
    padded = elements + bytes(-len(elements) % 4)
    header = bytes([0x80 | 0x10, 111]) + struct.pack("!HII", 1, 2, 3)
    return header + struct.pack("!HH", profile, len(padded) // 4) + padded + payload


@pytest.mark.parametrize(
    ("elements", "level"),
    [
        (b"\x10\x85", 5),  # id 1 first, as browsers send it; the V bit is not part of the level
        (b"\x31\x00\x05\x10\x2a", 42),  # after a two-byte element (id 3, transport-wide sequence number)
        (b"\x00\x00\x10\x7f", 127),  # after padding bytes
        (b"\x31\x00\x05", NO_LEVEL),  # not there
        (b"\xf0\x10\x05", NO_LEVEL),  # id 15 ends the block
        (b"\x21\x00", NO_LEVEL),  # an element claiming more bytes than the block has, then nothing
    ],
)
def test_the_audio_level_is_read_from_its_one_byte_element(elements: bytes, level: int) -> None:
    view = parse_rtp(_with_extension(0xBEDE, elements), level_id=1)
    assert view is not None and view.payload == b"opus" and view.level == level


def test_no_level_without_its_id_or_in_a_two_byte_block() -> None:
    for data, level_id in ((_with_extension(0xBEDE, b"\x10\x05"), 0), (_with_extension(0x1000, b"\x01\x01\x05"), 1)):
        view = parse_rtp(data, level_id)
        assert view is not None and view.level == NO_LEVEL and view.payload == b"opus"


def test_a_client_writes_the_level_the_server_reads() -> None:
    data = build_rtp(0, 111, 7, 960, 0xCAFE, b"opus", audio_level_extension(3, 33))
    view = parse_rtp(data, level_id=3)
    assert view is not None and (view.sequence_number, view.payload, view.level) == (7, b"opus", 33)


def test_random_extension_blocks_never_raise() -> None:
    generator = random.Random(6464)
    for _ in range(20000):
        words = generator.randrange(4)
        block = bytes(generator.getrandbits(8) for _ in range(generator.randrange(4 * words + 6)))
        header = bytes([0x90 | generator.choice((0, 0x20)), 111]) + struct.pack("!HII", 1, 2, 3)
        profile = generator.choice((b"\xbe\xde", b"\x10\x00", b"\x00\x00"))
        data = header + profile + struct.pack("!H", words) + block
        view = parse_rtp(data, level_id=generator.randrange(16))
        assert view is None or -1 <= view.level <= 127
