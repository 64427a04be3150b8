"""Offer and answer for one connection: the browser's first offer, our answers, and our re-offers.

The browser offers first (one send-receive audio transceiver, and the receive-only lines ``room_state`` asked
for) and we answer, already sending the room's speakers on those lines; afterwards we offer whenever
send-only transceivers come or go (bursts coalesced into one offer). We are the impolite side: a browser
offer that collides with ours is dropped, the browser rolls back and answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription

from ghosttalk.contract import SignalingError
from ghosttalk.media.aiortc_adapter.dtls import keep_dtls_roles
from ghosttalk.media.aiortc_adapter.ice import gather_on_shared_socket
from ghosttalk.media.aiortc_adapter.negotiation import (
    create_offer_keeping_negotiated,
    forget_what_aiortc_no_longer_reads,
    received_payload_types,
)
from ghosttalk.media.description import (
    CandidateFilter,
    check_answer_directions,
    check_offer_lines,
    parse_description,
)
from ghosttalk.media.forwarder import Speaker
from ghosttalk.media.icemux import IceMux
from ghosttalk.media.outbound import ForwardingLinesExhausted, OutboundSlots

logger = logging.getLogger(__name__)

# Joins that arrive within this window share one re-offer.
OFFER_COALESCE_SECONDS = 0.02
# The longest a connection that is up holds a re-offer back while others join (see Joining).
REOFFER_HOLD_SECONDS = 0.25

# Starts a task owned by the connection (cancelled when it closes; a failure removes the person).
Spawn = Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]


class Joining:
    """The connections on their way into one room: made, and their media not up yet. While there are any,
    the room's connections whose media is up hold their re-offers back (at most REOFFER_HOLD_SECONDS): each
    join makes everyone in the room re-offer, and those offers and the answers they bring back (eight of
    each in a room of nine) would otherwise take the event loop in the newcomer's way, between its offer and
    its DTLS handshake. The newcomer can send nothing before its media is up, so nobody misses a word."""

    __slots__ = ("_members", "_quiet")

    def __init__(self) -> None:
        self._members: set[object] = set()
        self._quiet = asyncio.Event()
        self._quiet.set()

    def begin(self, connection: object) -> None:
        self._members.add(connection)
        self._quiet.clear()

    def end(self, connection: object) -> None:
        self._members.discard(connection)
        if not self._members:
            self._quiet.set()

    async def quiet(self) -> None:
        """Return once nobody is joining, or after REOFFER_HOLD_SECONDS."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REOFFER_HOLD_SECONDS):
                await self._quiet.wait()


class Negotiation:
    """The offer/answer state machine of one connection. Every description goes through one lock, so that
    an answer, a browser offer and our coalesced re-offer never interleave."""

    def __init__(
        self,
        pc: RTCPeerConnection,
        inbound: RTCRtpTransceiver,
        slots: OutboundSlots,
        speaker: Speaker,
        mux: IceMux,
        candidate_filter: CandidateFilter,
        *,
        peer_id: str,
        receive_lines: int,
        hold: Callable[[], Awaitable[None]],
        spawn: Spawn,
        send: Callable[[dict[str, Any]], None],
        failed: Callable[[str], None],
        first_offer: Callable[[], None],
        answered: Callable[[], None],
    ) -> None:
        """``receive_lines``: how many receive-only lines the first offer may carry besides its voice;
        ``hold`` returns when a re-offer may go (see :class:`Joining`). ``first_offer`` runs once, when the
        browser's first offer is applied and before it is answered; ``answered`` after each answer to our
        offer has been applied (new lines may then forward)."""
        self._pc = pc
        self._inbound = inbound
        self._slots = slots
        self._speaker = speaker
        self._mux = mux
        self._candidate_filter = candidate_filter
        self._peer_id = peer_id
        self._max_receive_lines = receive_lines
        self._hold = hold
        self._spawn = spawn
        self._send = send
        self._failed = failed
        self._first_offer = first_offer
        self._answered = answered
        self._sdp_lock = asyncio.Lock()
        # Set once the browser's first offer is answered: candidates may go in, speakers get lines.
        self.remote_set = asyncio.Event()
        self._adopted = False
        # Speakers who arrived before that first offer, waiting for their lines.
        self._early_speakers: dict[str, Speaker] = {}
        self._lines_exhausted = False
        self._needs_offer = False
        # Our outstanding offer: mid -> direction of each audio line, and its text.
        self._offered: dict[str, str] = {}
        self._offer_sdp: str | None = None
        self._offer_task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def bundle_mid(self) -> str | None:
        """The m-line whose transport every line shares (BUNDLE): the browser's voice line."""
        return self._inbound.mid

    def close(self) -> None:
        """No description is applied or sent from now on."""
        self._closed = True

    # Speakers (called by the connection, which is still usable).

    def add_speaker(self, speaker_id: str, speaker: Speaker) -> None:
        if not self.remote_set.is_set():
            # Transceivers added before the browser's first offer would be matched to its m-line; wait.
            self._early_speakers[speaker_id] = speaker
            return
        if self._assign(speaker_id, speaker):
            self._request_offer()

    @property
    def waiting_speakers(self) -> int:
        """Speakers added before the first offer was answered, to be put on lines by it."""
        return len(self._early_speakers)

    def remove_speaker(self, speaker_id: str) -> None:
        if self._early_speakers.pop(speaker_id, None) is None and self._slots.release(speaker_id):
            self._request_offer()

    # Descriptions from the client.

    async def handle_offer(self, sdp: str) -> None:
        known = self.known_mids()
        receive_lines = 0 if self._adopted else self._max_receive_lines
        # The lines the connection has, a new voice line, the first offer's receive lines and a data channel
        # line: nothing else can pass.
        max_media = len(known) + 2 + receive_lines
        text, offer = parse_description(sdp, "offer", self._candidate_filter, max_media=max_media)
        check_offer_lines(offer, known, self._inbound.mid, receive_lines)
        async with self._sdp_lock:
            if self._closed:
                return
            # Transceivers added but not offered yet count as a collision too: aiortc cannot answer past them.
            pending = self.remote_set.is_set() and any(t.mid is None for t in self._pc.getTransceivers())
            if self._pc.signalingState == "have-local-offer" or pending:
                # Collision: we are impolite. The browser rolls back and answers our offer; whatever it
                # wanted to change it will offer again once stable.
                logger.debug("peer %s: dropped a colliding offer", self._peer_id)
                return
            first = not self._adopted
            await self._apply_remote(text, "offer")
            if first:
                self._adopted = True
                self._first_offer()
                self._adopt_receive_lines()
                self._speakers_onto_receive_lines()
            answer = await self._pc.createAnswer()
            gather_on_shared_socket(self._pc, self._mux, self._mux.advertised)
            await self._pc.setLocalDescription(answer)
            # The first exchange settles the DTLS role for good; no later answer's a=setup may change it.
            keep_dtls_roles(self._pc)
            if first:
                self._receive_lines_answered()
            self._refresh_payload_types()
            self.remote_set.set()
            self._send({"type": "answer", "sdp": self._pc.localDescription.sdp})
            forget_what_aiortc_no_longer_reads(self._pc)
            if first:
                # Speakers the receive lines could not take (they came after room_state, or the client
                # offered none) go on lines of their own, offered next; so does the heartbeat channel unless
                # the offer had a data channel line for it.
                for speaker_id, speaker in self._early_speakers.items():
                    if self._assign(speaker_id, speaker):
                        self._needs_offer = True
                self._early_speakers.clear()
                self._needs_offer = self._needs_offer or self._unnegotiated()
        if self._needs_offer:
            self._request_offer()

    async def handle_answer(self, sdp: str) -> None:
        text, answer = parse_description(sdp, "answer", self._candidate_filter)
        async with self._sdp_lock:
            if self._closed:
                return
            if self._pc.signalingState != "have-local-offer":
                raise SignalingError("answer without an outstanding offer")
            try:
                check_answer_directions(self._offered, answer)
                await self._apply_remote(text, "answer")
            except SignalingError:
                # We cannot roll back: repeat our offer so that a well-behaved client can answer again.
                self._send({"type": "offer", "sdp": self._offer_sdp or self._pc.localDescription.sdp})
                raise
            self._offer_sdp = None
            try:
                if self._slots.answered():
                    # A line the client would not receive on: its speaker is on a fresh line, offered now.
                    self._needs_offer = True
            except ForwardingLinesExhausted as exc:
                self._give_up_lines(exc)
            self._refresh_payload_types()
            self._answered()
            forget_what_aiortc_no_longer_reads(self._pc)
        if self._needs_offer:
            self._request_offer()

    def known_mids(self) -> dict[str, str]:
        """mid -> kind of every m-line the connection has negotiated or offered."""
        mids = {t.mid: t.kind for t in self._pc.getTransceivers() if t.mid is not None}
        if self._pc.sctp is not None and self._pc.sctp.mid is not None:
            mids[self._pc.sctp.mid] = "application"
        return mids

    # Internals.

    def _adopt_receive_lines(self) -> None:
        """The first offer's receive-only lines (aiortc made a transceiver for each) join our pool."""
        lines = [t for t in self._pc.getTransceivers() if t is not self._inbound and t.kind == "audio"]
        try:
            self._slots.adopt(lines)
        except ForwardingLinesExhausted as exc:
            self._give_up_lines(exc)

    def _speakers_onto_receive_lines(self) -> None:
        """The speakers already waiting go onto the first offer's receive lines, as many as there are, so that
        the answer sends them: one round trip, and the newcomer hears the room."""
        for speaker_id in list(self._early_speakers)[: self._slots.free_lines]:
            self._assign(speaker_id, self._early_speakers.pop(speaker_id))
        self._slots.offered()

    def _receive_lines_answered(self) -> None:
        """Our answer is set: its receive lines are negotiated (the empty ones join the pool)."""
        try:
            if self._slots.answered():
                self._needs_offer = True  # a line the client offered inactive: its speaker moved
        except ForwardingLinesExhausted as exc:
            self._give_up_lines(exc)

    def _unnegotiated(self) -> bool:
        """Whether a transceiver or the heartbeat channel's SCTP transport is not in a negotiation yet."""
        sctp = self._pc.sctp
        return any(t.mid is None for t in self._pc.getTransceivers()) or (sctp is not None and sctp.mid is None)

    def _assign(self, speaker_id: str, speaker: Speaker) -> bool:
        """A forwarding line for ``speaker``; False (and the session ends) once the connection has used up its
        budget of lines, which only a client that keeps refusing to receive can do."""
        if self._lines_exhausted:
            return False
        try:
            self._slots.assign(speaker_id, speaker)
        except ForwardingLinesExhausted as exc:
            self._give_up_lines(exc)
            return False
        return True

    def _give_up_lines(self, exc: ForwardingLinesExhausted) -> None:
        if not self._lines_exhausted:
            self._lines_exhausted = True
            logger.info("peer %s: %s", self._peer_id, exc)
            self._failed(str(exc))

    async def _apply_remote(self, sdp: str, kind: str) -> None:
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        except Exception as exc:  # aiortc raises a zoo of types for SDP it cannot use
            raise SignalingError(f"{kind} rejected: {exc}") from None

    def _refresh_payload_types(self) -> None:
        # Each negotiation may remap payload types; the forwarder accepts whatever is in force.
        self._speaker.payload_types = received_payload_types(self._inbound)

    def _request_offer(self) -> None:
        self._needs_offer = True
        if not self._closed and (self._offer_task is None or self._offer_task.done()):
            self._offer_task = self._spawn(self._offer_soon())

    async def _offer_soon(self) -> None:
        await asyncio.sleep(OFFER_COALESCE_SECONDS)
        await self._hold()
        async with self._sdp_lock:
            if (
                self._closed
                or not self._needs_offer
                or not self.remote_set.is_set()
                or self._pc.signalingState != "stable"
            ):
                return  # an answer or the first offer will call us again
            self._needs_offer = False
            # What the offer says of each line is fixed here: createOffer reads the transceivers without
            # awaiting. Recorded afterwards, a speaker placed on a pooled line meanwhile would count as
            # offered, and the answer (to an offer that showed the line inactive) as refusing that speaker.
            self._slots.offered()
            offer = await create_offer_keeping_negotiated(self._pc, self._inbound)
            # The direction the offer gives each audio line, kept to check the answer against without parsing
            # our own offer again (with every person's answer at each join, that parse was a good part of the
            # event loop's time): each is the transceiver's direction when createOffer read it.
            directions = {t: t.direction for t in self._pc.getTransceivers() if t.kind == "audio"}
            gather_on_shared_socket(self._pc, self._mux, self._mux.advertised)
            await self._pc.setLocalDescription(offer)
            self._offered = {t.mid: direction for t, direction in directions.items() if t.mid is not None}
            # Kept until answered, to repeat it should the answer be refused (the property writes it anew).
            self._offer_sdp = self._pc.localDescription.sdp
            self._send({"type": "offer", "sdp": self._offer_sdp})
