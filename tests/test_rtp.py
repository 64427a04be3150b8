from __future__ import annotations

import struct

from ghosttalk.media.icemux import stun_username
from ghosttalk.media.rtp import build_rtp, parse_rtp


def test_round_trip_keeps_every_field() -> None:
    data = build_rtp(0x80, 111, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"payload")
    view = parse_rtp(data)
    assert view is not None
    assert (view.marker, view.payload_type, view.sequence_number, view.timestamp, view.ssrc, view.payload) == (
        0x80, 111, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"payload"
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


def test_stun_username_finds_the_attribute_and_ignores_everything_else() -> None:
    username = b"abcd:wxyz"
    attribute = struct.pack("!HH", 0x0006, len(username)) + username + b"\x00" * (-len(username) % 4)
    request = struct.pack("!HH", 0x0001, len(attribute)) + b"\x21\x12\xa4\x42" + b"t" * 12 + attribute
    assert stun_username(request) == "abcd:wxyz"
    assert stun_username(request[:-4]) is None  # the attribute runs past the end
    assert stun_username(b"\x01\x01" + request[2:]) is None  # a response, not a request
    assert stun_username(b"\x80" * 40) is None
