"""Just enough RTP (RFC 3550) for forwarding: find the payload, write a fresh 12-byte header."""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_HEADER = struct.Struct("!BBHII")
RTP_VERSION_BITS = 0x80


@dataclass(slots=True)
class RtpView:
    """The fields a forwarder needs from one ingress packet; ``payload`` excludes extensions and padding."""

    marker: int
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(data: bytes) -> RtpView | None:
    """Parse a decrypted RTP packet; None when it is too short or inconsistent."""
    size = len(data)
    if size < 12:
        return None
    first, second, sequence_number, timestamp, ssrc = RTP_HEADER.unpack_from(data)
    if first & 0xC0 != RTP_VERSION_BITS:
        return None
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if offset + 4 > size:
            return None
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    end = size - data[-1] if first & 0x20 else size
    if offset > end:
        return None
    return RtpView(second & 0x80, second & 0x7F, sequence_number, timestamp, ssrc, data[offset:end])


def build_rtp(marker: int, payload_type: int, sequence_number: int, timestamp: int, ssrc: int, payload: bytes) -> bytes:
    return RTP_HEADER.pack(RTP_VERSION_BITS, marker | payload_type, sequence_number, timestamp, ssrc) + payload
