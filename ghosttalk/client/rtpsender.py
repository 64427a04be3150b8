"""The RTP a headless client sends on its one audio line, written as a browser writes it: its sender's SSRC,
the payload type and audio level extension id the answer agreed, a sequence number and a 20 ms timestamp step,
the counts its sender reports announce, and, in an end-to-end encrypted room, each frame sealed first."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ghosttalk.client.audio import FRAME_SAMPLES
from ghosttalk.client.e2ee import VoiceSealer
from ghosttalk.media.aiortc_adapter.negotiation import header_extension_id, negotiated_payload_type, sender_ssrc
from ghosttalk.media.aiortc_adapter.rtcp import update_sender_report
from ghosttalk.media.rtp import AUDIO_LEVEL_URI, audio_level_extension, build_rtp, ntp_now

DEFAULT_PAYLOAD_TYPE = 96


class RtpSender:
    def __init__(self) -> None:
        self._sender: Any = None  # aiortc's RTCRtpSender of this connection
        self._write: Callable[[bytes], None] | None = None
        self._ssrc = 0
        self._payload_type = DEFAULT_PAYLOAD_TYPE
        self._level_id = 0
        # Across connections, as a browser's would not restart them either.
        self._sequence_number = random.randrange(32768)
        self._timestamp = random.getrandbits(32)
        self._packets = 0
        self._octets = 0
        # Set for each join into an encrypted room: its peer id keys the frames.
        self.sealer: VoiceSealer | None = None

    @property
    def connected(self) -> bool:
        return self._write is not None

    def start(self, sender: Any) -> None:
        """A new connection: its sender's SSRC, and sender reports that count from zero."""
        self._sender, self._write = sender, None
        self._ssrc = sender_ssrc(sender)
        self._packets = self._octets = 0

    def negotiated(self, transceiver: Any) -> None:
        """What the answer agreed: the Opus payload type and the audio level extension's id (0: none)."""
        self._payload_type = negotiated_payload_type(transceiver) or self._payload_type
        self._level_id = header_extension_id(transceiver, AUDIO_LEVEL_URI)

    def connect(self, write: Callable[[bytes], None] | None) -> None:
        """SRTP keys in hand: ``write`` protects and sends (None: the connection has no keys after all)."""
        self._write = write

    def disconnect(self) -> None:
        self._write = None

    def send(self, payload: bytes, timestamp: int | None, marker: int, level: int | None) -> None:
        if self._write is None:
            raise RuntimeError("media is not connected")
        if self.sealer is not None:
            payload = self.sealer.seal(payload)
        self._timestamp = timestamp if timestamp is not None else (self._timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        extension = audio_level_extension(self._level_id, level) if level is not None and self._level_id else b""
        header = (marker, self._payload_type, self._sequence_number, self._timestamp, self._ssrc)
        self._write(build_rtp(*header, payload, extension))
        self._sequence_number = (self._sequence_number + 1) & 0xFFFF
        self._packets += 1
        self._octets += len(payload)
        update_sender_report(self._sender, self._packets, self._octets, self._timestamp, ntp_now())
