"""Send-only transceivers on one receiver's connection, one per other speaker, reused as people come and go.

aiortc cannot remove an m-section, so a transceiver whose speaker left goes ``inactive`` and waits in a pool.
It is handed to a new speaker only after a negotiation that saw it inactive has completed: the browser then
fires a fresh ``track`` event with the new MediaStream id instead of silently re-labelling a live track.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import RTCPeerConnection, RTCRtpTransceiver

from ghosttalk.media.aiortc_adapter.endpoints import release_unused_receiver, skip_loops
from ghosttalk.media.aiortc_adapter.negotiation import negotiated_payload_type, sender_ssrc, set_stream_identity
from ghosttalk.media.forwarder import EgressSink, OutboundStream, Speaker, StreamPosition


@dataclass(slots=True)
class OutboundSlot:
    transceiver: RTCRtpTransceiver
    position: StreamPosition
    speaker_id: str | None = None
    speaker: Speaker | None = None
    stream: OutboundStream | None = None
    # The negotiation round after which an emptied slot may carry somebody else.
    reusable_after: int = 0

    def detach(self) -> None:
        if self.stream is not None and self.speaker is not None:
            self.position = self.stream.position()
            if self.stream in self.speaker.streams:
                self.speaker.streams.remove(self.stream)
        self.stream = None


class OutboundSlots:
    """The pool of forwarding transceivers of one connection."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self._pc = pc
        self._slots: list[OutboundSlot] = []
        # Incremented each time an answer to our offer is applied.
        self.round = 0

    def __len__(self) -> int:
        return sum(1 for slot in self._slots if slot.speaker_id is not None)

    def speaker_ids(self) -> list[str]:
        return [slot.speaker_id for slot in self._slots if slot.speaker_id is not None]

    def assign(self, speaker_id: str, speaker: Speaker) -> None:
        """Give ``speaker`` a send-only transceiver; it carries audio once negotiated and connected."""
        if any(slot.speaker_id == speaker_id for slot in self._slots):
            return
        slot = next(
            (s for s in self._slots if s.speaker_id is None and s.reusable_after < self.round),
            None,
        )
        if slot is None:
            # No track: the forwarder writes this sender's packets, the connection's report loop its RTCP.
            transceiver = self._pc.addTransceiver("audio", direction="sendonly")
            skip_loops(transceiver.sender)
            release_unused_receiver(transceiver.receiver)
            slot = OutboundSlot(transceiver, StreamPosition.random())
            self._slots.append(slot)
        slot.speaker_id, slot.speaker = speaker_id, speaker
        slot.transceiver.direction = "sendonly"
        set_stream_identity(slot.transceiver.sender, speaker_id, f"voice-{speaker_id}")

    def release(self, speaker_id: str) -> bool:
        for slot in self._slots:
            if slot.speaker_id == speaker_id:
                slot.detach()
                slot.speaker_id, slot.speaker = None, None
                slot.transceiver.direction = "inactive"
                slot.reusable_after = self.round
                return True
        return False

    def activate(self, sink: EgressSink) -> None:
        """Start forwarding on every assigned slot the receiver has accepted in a completed negotiation."""
        for slot in self._slots:
            if slot.speaker is None or slot.stream is not None:
                continue
            if slot.transceiver.currentDirection not in ("sendonly", "sendrecv"):
                continue
            payload_type = negotiated_payload_type(slot.transceiver)
            if payload_type is None:
                continue
            slot.stream = OutboundStream(sender_ssrc(slot.transceiver.sender), payload_type, sink, slot.position)
            slot.speaker.streams.append(slot.stream)

    def streams(self) -> list[OutboundStream]:
        """The streams being forwarded on this connection now (what its sender reports describe)."""
        return [slot.stream for slot in self._slots if slot.stream is not None]

    def close(self) -> None:
        for slot in self._slots:
            slot.detach()
            slot.speaker_id, slot.speaker = None, None
