"""Just enough RTP and RTCP (RFC 3550) for forwarding: find the payload and the speaker's audio level (RFC
6464), write a fresh 12-byte header, and pick the sender reports out of a compound RTCP packet."""

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
# RFC 6464: the client-to-mixer audio level, in -dBov (0 loudest, 127 silence), as a header extension.
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
SILENT_LEVEL = 127
# A packet that carries no level (not negotiated, or the element is missing).
NO_LEVEL = -1


@dataclass(slots=True)
class RtpView:
    """The fields a forwarder needs from one ingress packet; ``payload`` excludes extensions and padding.
    ``level`` is the RFC 6464 audio level (0-127, -dBov) when asked for and present, else NO_LEVEL."""

    marker: int
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes
    level: int = NO_LEVEL


def parse_rtp(data: bytes, level_id: int = 0) -> RtpView | None:
    """Parse a decrypted RTP packet; None when it is too short or inconsistent. ``level_id`` is the one-byte
    header extension id the connection negotiated for the audio level (0: none)."""
    size = len(data)
    if size < 12:
        return None
    first, second, sequence_number, timestamp, ssrc = RTP_HEADER.unpack_from(data)
    if first & 0xC0 != RTP_VERSION_BITS:
        return None
    offset = 12 + 4 * (first & 0x0F)
    level = NO_LEVEL
    if first & 0x10:
        if offset + 4 > size:
            return None
        block = offset + 4
        offset = block + 4 * ((data[offset + 2] << 8) | data[offset + 3])
        # RFC 8285: browsers send the level in a block of one-byte elements (profile word 0xBEDE); two-byte
        # blocks (0x100x) are only for elements over 16 bytes or ids over 14, and are not read.
        if level_id and offset <= size and data[block - 4] == 0xBE and data[block - 3] == 0xDE:
            # Browsers put the level first: one look usually does, the walk is for anyone else.
            if block + 1 < offset and data[block] >> 4 == level_id:
                level = data[block + 1] & 0x7F
            else:
                level = _one_byte_element(data, block, offset, level_id)
    end = size - data[-1] if first & 0x20 else size
    if offset > end:
        return None
    return RtpView(second & 0x80, second & 0x7F, sequence_number, timestamp, ssrc, data[offset:end], level)


def _one_byte_element(data: bytes, start: int, end: int, wanted: int) -> int:
    """The level in the one-byte element ``wanted`` of the block data[start:end] (RFC 8285 section 4.2),
    NO_LEVEL if absent."""
    while start < end:
        header = data[start]
        element = header >> 4
        if element == wanted:
            # The top bit is V (voice activity, which we do not use); the level is the rest.
            return data[start + 1] & 0x7F if start + 1 < end else NO_LEVEL
        if element == 15:
            break  # reserved: the rest of the block must be ignored
        # A padding byte (0) is one byte; an element is its header plus length + 1 bytes of data.
        start += 1 if header == 0 else 2 + (header & 0x0F)
    return NO_LEVEL


def audio_level_extension(level_id: int, level: int) -> bytes:
    """A one-byte header-extension block holding only the audio level (for a client writing its own RTP)."""
    return bytes((0xBE, 0xDE, 0, 1, level_id << 4, level & 0x7F, 0, 0))


def build_rtp(
    marker: int,
    payload_type: int,
    sequence_number: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    extension: bytes = b"",
) -> bytes:
    """An RTP packet; ``extension`` is a whole header-extension block (profile and length words included)."""
    first = RTP_VERSION_BITS | 0x10 if extension else RTP_VERSION_BITS
    return RTP_HEADER.pack(first, marker | payload_type, sequence_number, timestamp, ssrc) + extension + payload


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
