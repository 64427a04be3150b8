"""What the server's RTCP reports carry, in aiortc's own terms.

The loss and jitter of our receiver reports come from aiortc's ``StreamStatistics``, fed per packet by
:class:`ReceiverStatistics`, which also records each speaker's last sender report. The headless client keeps
aiortc's loops and feeds its sender's counters (:func:`update_sender_report`) since it writes its own RTP.
"""

from __future__ import annotations

import time

from aiortc import RTCRtpSender
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtcpReceiverInfo

# A browser sends one SSRC per track; a few more leave room for a track replaced mid-call.
MAX_REPORTED_SOURCES = 4


class ReceiverStatistics:
    """What our receiver reports say about one person's voice: aiortc's per-stream statistics (loss, jitter),
    fed without its jitter buffer, and their last sender report, as ``RTCRtpReceiver`` keeps them for its own
    (here quiet) report loop. One instance per ingress stream; it reuses a single packet view."""

    __slots__ = ("_clock_rate", "_lsr", "_lsr_time", "_streams", "sequence_number", "timestamp")

    def __init__(self, clock_rate: int) -> None:
        self._streams: dict[int, StreamStatistics] = {}
        self._lsr: dict[int, int] = {}
        self._lsr_time: dict[int, float] = {}
        self._clock_rate = clock_rate
        self.sequence_number = 0
        self.timestamp = 0

    def report_blocks(self) -> list[RtcpReceiverInfo]:
        """One receiver-report block per stream heard, built as aiortc's receiver loop builds them."""
        now = time.time()
        blocks = []
        for ssrc, stream in self._streams.items():
            lsr = self._lsr.get(ssrc, 0)
            delay = now - self._lsr_time.get(ssrc, now)
            blocks.append(
                RtcpReceiverInfo(
                    ssrc=ssrc,
                    fraction_lost=stream.fraction_lost,
                    packets_lost=stream.packets_lost,
                    highest_sequence=stream.max_seq or 0,
                    jitter=stream.jitter,
                    lsr=lsr,
                    dlsr=int(delay * 65536) if lsr and 0 < delay < 65536 else 0,
                )
            )
        return blocks

    def sender_report(self, ssrc: int, ntp_timestamp: int) -> None:
        """A sender report from the speaker: our next receiver report echoes it (LSR) with the delay (DLSR),
        from which the speaker computes its round-trip time. What aiortc's receiver records, for the sources
        we report on."""
        if ssrc not in self._streams:
            return
        self._lsr[ssrc] = (ntp_timestamp >> 16) & 0xFFFFFFFF
        self._lsr_time[ssrc] = time.time()

    def add(self, ssrc: int, sequence_number: int, timestamp: int) -> None:
        stats = self._streams.get(ssrc)
        if stats is None:
            if len(self._streams) >= MAX_REPORTED_SOURCES:
                # A peer cycling through SSRCs must not grow this (or our report past its 31 blocks).
                oldest = next(iter(self._streams))
                del self._streams[oldest]
                self._lsr.pop(oldest, None)
                self._lsr_time.pop(oldest, None)
            stats = self._streams[ssrc] = StreamStatistics(self._clock_rate)
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        # StreamStatistics reads only sequence_number and timestamp: this view stands in for an RtpPacket.
        stats.add(self)  # type: ignore[arg-type]


def update_sender_report(sender: RTCRtpSender, packets: int, octets: int, rtp_timestamp: int, ntp: int) -> None:
    """Keep what aiortc's RTCP task puts in this sender's reports true to what we forwarded."""
    setattr(sender, "_RTCRtpSender__packet_count", packets)  # noqa: B010 (private)
    setattr(sender, "_RTCRtpSender__octet_count", octets)  # noqa: B010
    setattr(sender, "_RTCRtpSender__rtp_timestamp", rtp_timestamp)  # noqa: B010
    setattr(sender, "_RTCRtpSender__ntp_timestamp", ntp)  # noqa: B010
