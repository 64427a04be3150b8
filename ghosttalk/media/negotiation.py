"""Offer and answer for one connection: the browser's first offer, our answers, and our re-offers.

The browser offers first (one send-receive audio transceiver) and we answer; afterwards we offer whenever
send-only transceivers come or go (bursts coalesced into one offer). We are the impolite side: a browser
offer that collides with ours is dropped, the browser rolls back and answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.sdp import SessionDescription

from ghosttalk.contract import SignalingError
from ghosttalk.media.aiortc_adapter.dtls import keep_dtls_roles
from ghosttalk.media.aiortc_adapter.ice import gather_on_shared_socket
from ghosttalk.media.aiortc_adapter.negotiation import create_offer_keeping_negotiated, received_payload_types
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

# Starts a task owned by the connection (cancelled when it closes; a failure removes the person).
Spawn = Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]


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
        spawn: Spawn,
        send: Callable[[dict[str, Any]], None],
        failed: Callable[[str], None],
        first_offer: Callable[[], None],
        answered: Callable[[], None],
    ) -> None:
        """``first_offer`` runs once, when the browser's first offer is applied and before it is answered;
        ``answered`` after each answer to our offer has been applied (new lines may then forward)."""
        self._pc = pc
        self._inbound = inbound
        self._slots = slots
        self._speaker = speaker
        self._mux = mux
        self._candidate_filter = candidate_filter
        self._peer_id = peer_id
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

    def remove_speaker(self, speaker_id: str) -> None:
        if self._early_speakers.pop(speaker_id, None) is None and self._slots.release(speaker_id):
            self._request_offer()

    # Descriptions from the client.

    async def handle_offer(self, sdp: str) -> None:
        known = self.known_mids()
        # The lines the connection has, a new voice line and a data channel line: nothing else can pass.
        text, offer = parse_description(sdp, "offer", self._candidate_filter, max_media=len(known) + 2)
        check_offer_lines(offer, known, self._inbound.mid)
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
            await self._apply_remote(text, "offer")
            if not self._adopted:
                self._adopted = True
                self._first_offer()
                self._needs_offer = True
            answer = await self._pc.createAnswer()
            gather_on_shared_socket(self._pc, self._mux, self._mux.advertised)
            await self._pc.setLocalDescription(answer)
            # The first exchange settles the DTLS role for good; no later answer's a=setup may change it.
            keep_dtls_roles(self._pc)
            self._refresh_payload_types()
            self.remote_set.set()
            self._send({"type": "answer", "sdp": self._pc.localDescription.sdp})
            for speaker_id, speaker in self._early_speakers.items():
                self._assign(speaker_id, speaker)
            self._early_speakers.clear()
        if self._needs_offer:
            self._request_offer()

    async def handle_answer(self, sdp: str) -> None:
        text, answer = parse_description(sdp, "answer", self._candidate_filter)
        async with self._sdp_lock:
            if self._closed:
                return
            if self._pc.signalingState != "have-local-offer":
                raise SignalingError("answer without an outstanding offer")
            offer = self._pc.localDescription.sdp
            try:
                check_answer_directions(SessionDescription.parse(offer), answer)
                await self._apply_remote(text, "answer")
            except SignalingError:
                # We cannot roll back: repeat our offer so that a well-behaved client can answer again.
                self._send({"type": "offer", "sdp": offer})
                raise
            try:
                if self._slots.answered():
                    # A line the client would not receive on: its speaker is on a fresh line, offered now.
                    self._needs_offer = True
            except ForwardingLinesExhausted as exc:
                self._give_up_lines(exc)
            self._refresh_payload_types()
            self._answered()
        if self._needs_offer:
            self._request_offer()

    def known_mids(self) -> dict[str, str]:
        """mid -> kind of every m-line the connection has negotiated or offered."""
        mids = {t.mid: t.kind for t in self._pc.getTransceivers() if t.mid is not None}
        if self._pc.sctp is not None and self._pc.sctp.mid is not None:
            mids[self._pc.sctp.mid] = "application"
        return mids

    # Internals.

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
            gather_on_shared_socket(self._pc, self._mux, self._mux.advertised)
            await self._pc.setLocalDescription(offer)
            self._send({"type": "offer", "sdp": self._pc.localDescription.sdp})
