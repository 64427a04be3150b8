"""Send-only transceivers on one receiver's connection, one per other speaker, reused as people come and go.

aiortc cannot remove an m-section, so a transceiver whose speaker left goes ``inactive`` and waits in a pool.
It is handed to a new speaker only after a negotiation that saw it inactive has completed: the browser then
fires a fresh ``track`` event with the new MediaStream id instead of silently re-labelling a live track.

Some stacks (Pion) stop a transceiver for good once an offer makes it inactive, and answer ``inactive`` when
it is offered ``sendonly`` again. A line that an answer leaves unable to carry the speaker it was offered
with is dead: it stays inactive for the connection's life, its speaker moves to a fresh line at once, and a
client that refused a reused line gets fresh lines from then on. Dead lines cannot be removed either, so a
connection has a budget of lines (:func:`max_forwarding_lines`); past it the connection has to end.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import RTCPeerConnection, RTCRtpTransceiver

from ghosttalk.media.aiortc_adapter.endpoints import release_unused_receiver, skip_loops
from ghosttalk.media.aiortc_adapter.negotiation import (
    keep_codec,
    negotiated_payload_type,
    sender_ssrc,
    set_stream_identity,
)
from ghosttalk.media.forwarder import EgressSink, OutboundStream, Speaker, StreamPosition

SENDING = ("sendonly", "sendrecv")
OPUS_MIME_TYPE = "audio/opus"


def max_forwarding_lines(live_lines: int) -> int:
    """Forwarding lines a connection may ever have, when it carries at most ``live_lines`` at once (a full
    room of ten needs nine); twice as many again covers the lines a stack that stops inactive transceivers
    leaves behind (one each time a speaker it heard leaves) through a long call, and still bounds a client
    that refuses every line."""
    return 3 * max(live_lines, 1)


class ForwardingLinesExhausted(Exception):
    """The connection would need a forwarding line beyond its budget."""


@dataclass(slots=True)
class OutboundSlot:
    transceiver: RTCRtpTransceiver
    position: StreamPosition
    speaker_id: str | None = None
    speaker: Speaker | None = None
    stream: OutboundStream | None = None
    # What our outstanding offer says of this line: offered at all, and the speaker it carries (None: inactive).
    in_offer: bool = False
    offered_speaker: str | None = None
    # Emptied, and an answer to an offer that showed it inactive is in: it may carry somebody else.
    free: bool = False
    # Taken from the pool rather than made for its speaker.
    reused: bool = False
    # The client refused to receive on it: inactive for good, never reused.
    dead: bool = False

    def detach(self) -> None:
        if self.stream is not None and self.speaker is not None:
            self.position = self.stream.position()
            if self.stream in self.speaker.streams:
                self.speaker.streams.remove(self.stream)
        self.stream = None

    def empty(self) -> None:
        self.detach()
        self.speaker_id, self.speaker = None, None
        self.free = False
        self.transceiver.direction = "inactive"


class OutboundSlots:
    """The pool of forwarding transceivers of one connection, at most ``max_lines`` of them ever."""

    def __init__(self, pc: RTCPeerConnection, max_lines: int) -> None:
        self._pc = pc
        self._slots: list[OutboundSlot] = []
        self._max_lines = max_lines
        # Until the client refuses a line it has seen inactive (then it stops such lines, as Pion does).
        self._reuse = True

    def __len__(self) -> int:
        return sum(1 for slot in self._slots if slot.speaker_id is not None)

    @property
    def dead_lines(self) -> int:
        """Lines the client refused to receive on."""
        return sum(1 for slot in self._slots if slot.dead)

    @property
    def free_lines(self) -> int:
        """Lines that may carry a speaker without an offer making them: pooled, or the first offer's."""
        return sum(1 for slot in self._slots if slot.free) if self._reuse else 0

    def pending(self, speaker_id: str) -> bool:
        """Whether ``speaker_id`` has a line that does not forward yet (not negotiated, or not connected)."""
        return any(slot.speaker_id == speaker_id and slot.stream is None for slot in self._slots)

    def speaker_ids(self) -> list[str]:
        return [slot.speaker_id for slot in self._slots if slot.speaker_id is not None]

    def assign(self, speaker_id: str, speaker: Speaker) -> None:
        """Give ``speaker`` a send-only transceiver; it carries audio once negotiated and connected.
        Raises :class:`ForwardingLinesExhausted` if that needs a line beyond the budget."""
        if any(slot.speaker_id == speaker_id for slot in self._slots):
            return
        slot = next((s for s in self._slots if s.free), None) if self._reuse else None
        self._place(speaker_id, speaker, slot)

    def adopt(self, transceivers: list[RTCRtpTransceiver]) -> None:
        """Take the transceivers aiortc made for the receive-only lines of the client's first offer into the
        pool, free: speakers go onto them before the answer is written, which then already sends them. aiortc
        gave them every codec the offer shares with it; like every line, they keep Opus alone."""
        for transceiver in transceivers:
            if any(slot.transceiver is transceiver for slot in self._slots):
                continue
            self._check_budget()
            transceiver.direction = "inactive"
            keep_codec(transceiver, OPUS_MIME_TYPE)
            skip_loops(transceiver.sender)
            release_unused_receiver(transceiver.receiver)
            self._slots.append(OutboundSlot(transceiver, StreamPosition.random(), free=True))

    def _check_budget(self) -> None:
        if len(self._slots) >= self._max_lines:
            raise ForwardingLinesExhausted(
                f"the connection has used all its {self._max_lines} forwarding lines "
                f"(it refused to receive on {self.dead_lines}); join again"
            )

    def _place(self, speaker_id: str, speaker: Speaker, slot: OutboundSlot | None) -> None:
        if slot is None:
            self._check_budget()
            # No track: the forwarder writes this sender's packets, the connection's report loop its RTCP.
            transceiver = self._pc.addTransceiver("audio", direction="sendonly")
            skip_loops(transceiver.sender)
            release_unused_receiver(transceiver.receiver)
            slot = OutboundSlot(transceiver, StreamPosition.random())
            self._slots.append(slot)
        else:
            slot.free, slot.reused = False, True
        slot.speaker_id, slot.speaker = speaker_id, speaker
        slot.transceiver.direction = "sendonly"
        set_stream_identity(slot.transceiver.sender, speaker_id, f"voice-{speaker_id}")

    def route(self, speaker_id: str, speaker: Speaker) -> None:
        """Let the line assigned to ``speaker_id`` carry ``speaker``'s voice from now on (a big room's lines
        are labelled by position, and carry whoever is loudest): its stream, if forwarding already, moves to
        ``speaker`` and continues its sequence numbers and timestamps."""
        slot = next((s for s in self._slots if s.speaker_id == speaker_id), None)
        if slot is None or slot.speaker is speaker:
            return
        if slot.stream is not None:
            if slot.speaker is not None and slot.stream in slot.speaker.streams:
                slot.speaker.streams.remove(slot.stream)
            slot.stream.new_source()
            speaker.streams.append(slot.stream)
        slot.speaker = speaker

    def release(self, speaker_id: str) -> bool:
        for slot in self._slots:
            if slot.speaker_id == speaker_id:
                slot.empty()
                return True
        return False

    def offered(self) -> None:
        """Our offer has been set as the local description: remember what it says of every line."""
        for slot in self._slots:
            slot.in_offer, slot.offered_speaker = True, slot.speaker_id

    def answered(self) -> bool:
        """The answer to our offer has been applied. Lines it showed inactive join the pool; a line offered
        with a speaker that the answer left unable to carry it dies, and the speaker moves to a fresh line.
        True if that happened (the move needs an offer now). Raises :class:`ForwardingLinesExhausted`."""
        moved = False
        for slot in list(self._slots):
            if not slot.in_offer:
                continue  # added after our offer went out: the next one carries it
            slot.in_offer = False
            if slot.dead:
                continue
            speaker_id, speaker = slot.speaker_id, slot.speaker
            if speaker_id is None or speaker is None:
                slot.free = slot.offered_speaker is None
            elif speaker_id == slot.offered_speaker and slot.transceiver.currentDirection not in SENDING:
                slot.empty()
                slot.dead = True
                if slot.reused:
                    self._reuse = False
                self._place(speaker_id, speaker, None)
                moved = True
        return moved

    def activate(self, sink: EgressSink) -> None:
        """Start forwarding on every assigned slot the receiver has accepted in a completed negotiation."""
        for slot in self._slots:
            if slot.speaker is None or slot.stream is not None:
                continue
            if slot.transceiver.currentDirection not in SENDING:
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
