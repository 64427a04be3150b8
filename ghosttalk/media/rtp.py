"""Just enough RTP and RTCP (RFC 3550) for forwarding: find the payload, write a fresh 12-byte header, and
pick the sender reports out of a compound RTCP packet."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

RTP_HEADER = struct.Struct("!BBHII")
RTP_VERSION_BITS = 0x80
# RFC 5761 demultiplexing, as aiortc does it: the second byte of RTCP is a payload type in 192-208.
RTCP_PAYLOAD_TYPES = range(192, 209)
RTCP_SENDER_REPORT = 200
_RTCP_HEADER = struct.Struct("!BBH")
# Seconds from the NTP epoch (1900) to the Unix epoch, for sender reports.
NTP_UNIX_OFFSET = 2208988800
# After the header: sender SSRC and 64-bit NTP timestamp, the part of a sender report we use.
_SENDER_REPORT_PREFIX = struct.Struct("!IQ")


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


def ntp_now() -> int:
    """64-bit NTP time as aiortc's sender reports want it (what ``aiortc.clock.current_ntp_time`` returns,
    without building a datetime for every packet)."""
    return int((time.time() + NTP_UNIX_OFFSET) * 4294967296.0)


def sender_reports(data: bytes) -> Iterator[tuple[int, int]]:
    """(sender SSRC, NTP timestamp) of every sender report in a decrypted compound RTCP packet; stops at the
    first packet that is malformed, as a receiver should."""
    offset, size = 0, len(data)
    while offset + _RTCP_HEADER.size <= size:
        first, packet_type, words = _RTCP_HEADER.unpack_from(data, offset)
        end = offset + 4 * (words + 1)
        if first & 0xC0 != RTP_VERSION_BITS or end > size:
            return
        if packet_type == RTCP_SENDER_REPORT and end - offset >= _SENDER_REPORT_PREFIX.size:
            ssrc, ntp_timestamp = _SENDER_REPORT_PREFIX.unpack_from(data, offset + _RTCP_HEADER.size)
            yield ssrc, ntp_timestamp
        offset = end
