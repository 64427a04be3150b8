"""One person's WebRTC connection on the server: negotiation, trickled candidates, heartbeat, forwarding.

Negotiation follows DESIGN.md: the browser offers first (one send-receive audio transceiver) and we answer;
afterwards we offer whenever send-only transceivers come or go (bursts coalesced into one offer). We are
the impolite side: a browser offer that collides with ours is dropped, the browser rolls back and answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.sdp import SessionDescription, candidate_from_sdp

from ghosttalk.media.aiortc_adapter.dtls import SharedDtlsIdentity, keep_dtls_roles, srtp_sessions, tap_rtp
from ghosttalk.media.aiortc_adapter.endpoints import skip_decoder_thread, skip_loops
from ghosttalk.media.aiortc_adapter.ice import (
    gather_on_shared_socket,
    selected_candidate_type,
    selected_remote_address,
    shared_protocols,
)
from ghosttalk.media.aiortc_adapter.negotiation import (
    connection_cname,
    create_offer_keeping_negotiated,
    received_payload_types,
    sender_ssrc,
)
from ghosttalk.media.aiortc_adapter.rtcp import ReceiverStatistics
from ghosttalk.media.description import (
    MAX_CANDIDATES,
    Admission,
    CandidateFilter,
    SignalingError,
    check_answer_directions,
    check_offer_lines,
    parse_description,
)
from ghosttalk.media.forwarder import OPUS_CLOCK_RATE, EgressSink, Forwarder, Speaker
from ghosttalk.media.icemux import IceMux
from ghosttalk.media.outbound import ForwardingLinesExhausted, OutboundSlots, max_forwarding_lines
from ghosttalk.media.reports import ReportSources, send_reports

logger = logging.getLogger(__name__)

# Joins that arrive within this window share one re-offer.
OFFER_COALESCE_SECONDS = 0.02
WATCHDOG_TICK_SECONDS = 1.0
# How long ICE_CONNECTED waits for the trickled candidate behind a peer-reflexive address.
CANDIDATE_TYPE_SETTLE_SECONDS = 3.0
# Candidates remembered per peer for that (a browser sends a handful).
MAX_SIGNALLED_CANDIDATES = 64
# What every audio m-line negotiates: the forwarder relays Opus untouched to everyone, so a speaker's codec
# must be one every listener accepts. (The answer would otherwise carry G.722, PCMU and PCMA too, into every
# later offer and into the descriptions each connection keeps.)
OPUS_ONLY = [codec for codec in RTCRtpSender.getCapabilities("audio").codecs if codec.mimeType.lower() == "audio/opus"]


@dataclass(slots=True)
class MediaLimits:
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 8.0
    connect_timeout: float = 30.0
    offer_timeout: float = 15.0
    # Bounds the forwarding lines of one connection (see outbound.max_forwarding_lines).
    max_room_peers: int = 10


@dataclass(slots=True)
class MediaHooks:
    """How a connection talks back to its room (all synchronous; they must not block)."""

    send: Callable[[dict[str, Any]], None]
    connected: Callable[[str], None]
    failed: Callable[[str], None]
    # A bug in our media code (the peer is then removed through ``failed``).
    error: Callable[[BaseException], None]
    # The peer broke a media limit (``packet_rate``: see forwarder.Speaker); the room ends its session.
    limit_exceeded: Callable[[str], None]


class PeerMedia:
    def __init__(
        self,
        peer_id: str,
        mux: IceMux,
        forwarder: Forwarder,
        identity: SharedDtlsIdentity,
        hooks: MediaHooks,
        limits: MediaLimits,
        candidates: CandidateFilter,
    ) -> None:
        self.peer_id = peer_id
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        identity.apply(self.pc)
        self.speaker = Speaker(forwarder.counters)
        self.speaker.on_flood = lambda: hooks.limit_exceeded("packet_rate")
        self.slots = OutboundSlots(self.pc, max_forwarding_lines(limits.max_room_peers))
        self._lines_exhausted = False
        self.sink: EgressSink | None = None
        self.candidate_type: str | None = None
        self._mux = mux
        self._forwarder = forwarder
        self._hooks = hooks
        self._limits = limits
        self._candidate_filter = candidates
        # The browser's voice: its first offer's audio m-line takes this transceiver (the first without a mid),
        # made now so that the answer already carries our codec preference.
        self._inbound = self.pc.addTransceiver("audio", direction="recvonly")
        self._inbound.setCodecPreferences(OPUS_ONLY)
        skip_loops(self._inbound.sender)  # it never sends (its RTCP SSRC signs our reports)
        self._adopted = False
        self._early_speakers: dict[str, Speaker] = {}
        # Address -> type of every candidate the peer trickled (for the honest ICE_CONNECTED type).
        self._signalled: dict[tuple[str, int], str] = {}
        self._heartbeat: RTCDataChannel | None = None
        self._sdp_lock = asyncio.Lock()
        self._remote_set = asyncio.Event()
        self._needs_offer = False
        self._offer_task: asyncio.Task[None] | None = None
        # Candidates wait here for the first offer; the filter lets at most MAX_CANDIDATES in, ever.
        self._candidates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._created_at = time.monotonic()
        self._connected_at: float | None = None
        self._last_pong: float | None = None
        self._closed = False
        self.pc.on("connectionstatechange", self._on_connection_state)
        # aiortc closes a connection whose DTLS peer said goodbye; its signaling state says so first.
        self.pc.on("signalingstatechange", self._on_signaling_state)
        # The server opens the one channel a connection needs (heartbeat); a channel the client opens would
        # only hold memory on the server (a hostile client can open thousands), so it is closed at once.
        self.pc.on("datachannel", lambda channel: channel.close())

    def start(self) -> None:
        self._spawn(self._watchdog())
        self._spawn(self._candidate_worker())

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            logger.error("peer %s: media task failed", self.peer_id, exc_info=exc)
            self._hooks.error(exc)
            self._hooks.failed("internal media error")

    # Speakers (called by the room).

    @property
    def usable(self) -> bool:
        """Whether the connection can still carry media (aiortc refuses new transceivers once it is closed)."""
        return not self._closed and self.pc.signalingState != "closed" and self.pc.connectionState != "failed"

    def add_speaker(self, speaker_id: str, speaker: Speaker) -> None:
        if not self.usable:
            return  # on its way out of the room: nothing to negotiate any more
        if not self._remote_set.is_set():
            # Transceivers added before the browser's first offer would be matched to its m-line; wait.
            self._early_speakers[speaker_id] = speaker
            return
        if self._assign(speaker_id, speaker):
            self._request_offer()

    def remove_speaker(self, speaker_id: str) -> None:
        if self._early_speakers.pop(speaker_id, None) is None and self.slots.release(speaker_id):
            self._request_offer()

    # Client messages.

    async def handle_offer(self, sdp: object) -> None:
        known = self._known_mids()
        # The lines the connection has, a new voice line and a data channel line: nothing else can pass.
        text, offer = parse_description(sdp, "offer", self._candidate_filter, max_media=len(known) + 2)
        check_offer_lines(offer, known, self._inbound.mid)
        async with self._sdp_lock:
            if self._closed:
                return
            # Transceivers added but not offered yet count as a collision too: aiortc cannot answer past them.
            pending = self._remote_set.is_set() and any(t.mid is None for t in self.pc.getTransceivers())
            if self.pc.signalingState == "have-local-offer" or pending:
                # Collision: we are impolite. The browser rolls back and answers our offer; whatever it
                # wanted to change it will offer again once stable.
                logger.debug("peer %s: dropped a colliding offer", self.peer_id)
                return
            await self._apply_remote(text, "offer")
            if not self._adopted:
                self._adopt_inbound()
            answer = await self.pc.createAnswer()
            gather_on_shared_socket(self.pc, self._mux, self._mux.advertised)
            await self.pc.setLocalDescription(answer)
            # The first exchange settles the DTLS role for good; no later answer's a=setup may change it.
            keep_dtls_roles(self.pc)
            self._refresh_payload_types()
            self._remote_set.set()
            self._hooks.send({"type": "answer", "sdp": self.pc.localDescription.sdp})
            for speaker_id, speaker in self._early_speakers.items():
                self._assign(speaker_id, speaker)
            self._early_speakers.clear()
        if self._needs_offer:
            self._request_offer()

    async def handle_answer(self, sdp: object) -> None:
        text, answer = parse_description(sdp, "answer", self._candidate_filter)
        async with self._sdp_lock:
            if self._closed:
                return
            if self.pc.signalingState != "have-local-offer":
                raise SignalingError("answer without an outstanding offer")
            offer = self.pc.localDescription.sdp
            try:
                check_answer_directions(SessionDescription.parse(offer), answer)
                await self._apply_remote(text, "answer")
            except SignalingError:
                # We cannot roll back: repeat our offer so that a well-behaved client can answer again.
                self._hooks.send({"type": "offer", "sdp": offer})
                raise
            try:
                if self.slots.answered():
                    # A line the client would not receive on: its speaker is on a fresh line, offered now.
                    self._needs_offer = True
            except ForwardingLinesExhausted as exc:
                self._give_up_lines(exc)
            self._refresh_payload_types()
            if self.sink is not None:
                self.slots.activate(self.sink)
        if self._needs_offer:
            self._request_offer()

    def handle_candidate(self, candidate: object) -> None:
        if candidate is None:
            return  # end of candidates: aioice would then fail early; our connect timeout decides instead
        if not isinstance(candidate, dict):
            raise SignalingError("candidate must be an object or null")
        line = candidate.get("candidate")
        mid = candidate.get("sdpMid")
        index = candidate.get("sdpMLineIndex")
        if not isinstance(line, str) or not (mid is None or isinstance(mid, str)):
            raise SignalingError("candidate needs a 'candidate' string and an optional 'sdpMid' string")
        if not (index is None or (isinstance(index, int) and not isinstance(index, bool) and index >= 0)):
            raise SignalingError("sdpMLineIndex must be a non-negative integer")
        if not mid and index is None and line:
            raise SignalingError("candidate needs sdpMid or sdpMLineIndex")
        if not line:
            return
        line = line.removeprefix("candidate:")
        admission, parsed = self._candidate_filter.admit(line)  # refuses an invalid line, naming it
        if parsed is not None and len(self._signalled) < MAX_SIGNALLED_CANDIDATES:
            # Dropped ones too: a relay behind a private address connects as prflx, and is reported as relay.
            self._signalled[(str(parsed.address), parsed.port)] = parsed.type
        if admission is Admission.OVER_LIMIT:
            raise SignalingError(f"too many candidates: at most {MAX_CANDIDATES} per connection are checked")
        if admission is not Admission.CHECK:
            return
        self._candidates.put_nowait({"candidate": line, "sdpMid": mid, "sdpMLineIndex": index})

    # Negotiation internals.

    def _assign(self, speaker_id: str, speaker: Speaker) -> bool:
        """A forwarding line for ``speaker``; False (and the session ends) once the connection has used up its
        budget of lines, which only a client that keeps refusing to receive can do."""
        if self._lines_exhausted:
            return False
        try:
            self.slots.assign(speaker_id, speaker)
        except ForwardingLinesExhausted as exc:
            self._give_up_lines(exc)
            return False
        return True

    def _give_up_lines(self, exc: ForwardingLinesExhausted) -> None:
        if not self._lines_exhausted:
            self._lines_exhausted = True
            logger.info("peer %s: %s", self.peer_id, exc)
            self._hooks.failed(str(exc))

    async def _apply_remote(self, sdp: str, kind: str) -> None:
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        except Exception as exc:  # aiortc raises a zoo of types for SDP it cannot use
            raise SignalingError(f"{kind} rejected: {exc}") from None

    def _adopt_inbound(self) -> None:
        """The browser's first offer is in: its voice will arrive on ``_inbound``; our forwarding tracks follow."""
        self._adopted = True
        tap_rtp(self._inbound.receiver.transport, self.speaker.on_rtp)
        skip_decoder_thread(self._inbound.receiver)
        skip_loops(self._inbound.receiver)  # reported on by the connection's own loop, started once connected
        self._heartbeat = self.pc.createDataChannel("heartbeat")
        self._heartbeat.on("message", self._on_heartbeat_message)
        self._needs_offer = True

    def _refresh_payload_types(self) -> None:
        # Each negotiation may remap payload types; the forwarder accepts whatever is in force.
        self.speaker.payload_types = received_payload_types(self._inbound)

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
                or not self._remote_set.is_set()
                or self.pc.signalingState != "stable"
            ):
                return  # an answer or the first offer will call us again
            self._needs_offer = False
            # What the offer says of each line is fixed here: createOffer reads the transceivers without
            # awaiting. Recorded afterwards, a speaker placed on a pooled line meanwhile would count as
            # offered, and the answer (to an offer that showed the line inactive) as refusing that speaker.
            self.slots.offered()
            offer = await create_offer_keeping_negotiated(self.pc, self._inbound)
            gather_on_shared_socket(self.pc, self._mux, self._mux.advertised)
            await self.pc.setLocalDescription(offer)
            self._hooks.send({"type": "offer", "sdp": self.pc.localDescription.sdp})

    async def _candidate_worker(self) -> None:
        await self._remote_set.wait()
        while True:
            item = await self._candidates.get()
            mid, index = item["sdpMid"], item["sdpMLineIndex"]
            # Matched by sdpMid, else by sdpMLineIndex (Pion sends an empty mid with a valid index). Under
            # BUNDLE every m-line shares the first one's transport, so that is where every candidate goes.
            if mid not in self._known_mids() and (index is None or index >= len(self._known_mids())):
                where = f"sdpMid {mid!r}" + ("" if index is None else f" or sdpMLineIndex {index}")
                self._hooks.send({"type": "error", "message": f"candidate for unknown {where}"})
                continue
            candidate = candidate_from_sdp(item["candidate"])  # well-formed: the filter has parsed it
            candidate.sdpMid, candidate.sdpMLineIndex = self._inbound.mid, None
            try:
                await self.pc.addIceCandidate(candidate)
            except Exception as exc:
                self._hooks.send({"type": "error", "message": f"candidate rejected: {exc}"})

    def _known_mids(self) -> dict[str, str]:
        """mid -> kind of every m-line the connection has negotiated or offered."""
        mids = {t.mid: t.kind for t in self.pc.getTransceivers() if t.mid is not None}
        if self.pc.sctp is not None and self.pc.sctp.mid is not None:
            mids[self.pc.sctp.mid] = "application"
        return mids

    # Connection state, forwarding and liveness.

    def _on_signaling_state(self) -> None:
        if self.pc.signalingState == "closed" and not self._closed:
            self._hooks.failed("media connection closed")

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if self._closed:
            return
        if state == "closed":
            # The client closed its side (DTLS close_notify, after which aiortc closes the connection): leave
            # at once rather than at the heartbeat's timeout, while joins would meet a closed connection.
            self._hooks.failed("media connection closed")
        elif state == "failed":
            self._hooks.failed("ICE or DTLS failed")
        elif state == "connected" and self._connected_at is None:
            self._on_connected()

    def _on_connected(self) -> None:
        dtls = self._inbound.receiver.transport
        sessions = srtp_sessions(dtls)
        addr = selected_remote_address(dtls)
        if sessions is None or addr is None:
            self._hooks.failed("connected without SRTP keys")
            return
        receive, transmit = sessions
        self.sink = EgressSink(self._forwarder, transmit.protect, addr)
        statistics = ReceiverStatistics(OPUS_CLOCK_RATE)
        self.speaker.bind(receive, statistics, received_payload_types(self._inbound))
        sources = ReportSources(
            rtcp_ssrc=sender_ssrc(self._inbound.sender),
            cname=connection_cname(self.pc),
            receiver_blocks=statistics.report_blocks,
            streams=self.slots.streams,
        )
        self._spawn(send_reports(sources, self.sink.send_report(transmit.protect_rtcp)))
        for protocol in shared_protocols(dtls):
            protocol.srtp_handler = self.speaker.on_srtp
        self.slots.activate(self.sink)
        self._connected_at = time.monotonic()
        self.candidate_type = selected_candidate_type(dtls, self._signalled)
        if self.candidate_type == "prflx":
            self._spawn(self._settle_candidate_type())
        else:
            self._hooks.connected(self.candidate_type)

    async def _settle_candidate_type(self) -> None:
        """Media flows already; the report waits a moment for the trickled candidate behind a peer-reflexive
        address, so that the log says relay (say) rather than prflx for a TURN user."""
        dtls = self._inbound.receiver.transport
        deadline = time.monotonic() + CANDIDATE_TYPE_SETTLE_SECONDS
        while self.candidate_type == "prflx" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            self.candidate_type = selected_candidate_type(dtls, self._signalled)
        self._hooks.connected(self.candidate_type or "prflx")

    def _on_heartbeat_message(self, message: object) -> None:
        if message == "pong":
            self._last_pong = time.monotonic()

    async def _watchdog(self) -> None:
        last_ping = 0.0
        limits = self._limits
        while True:
            await asyncio.sleep(WATCHDOG_TICK_SECONDS)
            now = time.monotonic()
            if not self._adopted and now - self._created_at > limits.offer_timeout:
                self._hooks.failed(f"no offer within {limits.offer_timeout:g} s")
                return
            if self._connected_at is None:
                if now - self._created_at > limits.connect_timeout:
                    self._hooks.failed(f"media did not connect within {limits.connect_timeout:g} s")
                    return
                continue
            channel = self._heartbeat
            if channel is not None and channel.readyState == "open" and now - last_ping >= limits.heartbeat_interval:
                channel.send("ping")
                last_ping = now
            if now - (self._last_pong or self._connected_at) > limits.heartbeat_timeout:
                self._hooks.failed(f"no heartbeat for {limits.heartbeat_timeout:g} s")
                return

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.slots.close()
        self.speaker.close()
        if self.sink is not None:
            self.sink.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.pc.close()
