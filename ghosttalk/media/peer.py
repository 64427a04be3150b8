"""One person's WebRTC connection on the server: the RTCPeerConnection, the parts it is made of, the tasks
it owns, and the forwarding it sets up once connected.

Its parts each hold one concern: :mod:`~ghosttalk.media.negotiation` (offers and answers, see DESIGN.md),
:mod:`~ghosttalk.media.candidates` (what the browser trickles) and :mod:`~ghosttalk.media.liveness` (the
offer, connect and heartbeat deadlines). Every task they run is started here and belongs to the connection:
:meth:`PeerMedia.close` cancels them all, and one that fails removes the person.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCDtlsTransport, RTCPeerConnection, RTCRtpSender
from aiortc.rtcconfiguration import RTCBundlePolicy

from ghosttalk.contract import IceCandidate
from ghosttalk.media.aiortc_adapter.dtls import SharedDtlsIdentity, srtp_sessions, tap_rtp
from ghosttalk.media.aiortc_adapter.endpoints import skip_decoder_thread, skip_loops
from ghosttalk.media.aiortc_adapter.ice import selected_remote_address, shared_protocols
from ghosttalk.media.aiortc_adapter.negotiation import connection_cname, received_payload_types, sender_ssrc
from ghosttalk.media.aiortc_adapter.rtcp import ReceiverStatistics
from ghosttalk.media.candidates import TrickledCandidates
from ghosttalk.media.description import CandidateFilter
from ghosttalk.media.forwarder import OPUS_CLOCK_RATE, EgressSink, Forwarder, Speaker
from ghosttalk.media.icemux import IceMux
from ghosttalk.media.liveness import Liveness
from ghosttalk.media.negotiation import Negotiation
from ghosttalk.media.outbound import OutboundSlots, max_forwarding_lines
from ghosttalk.media.reports import ReportSources, send_reports

logger = logging.getLogger(__name__)

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
    # A candidate line inside a description was refused (the rest of it was applied): the text says which.
    refused: Callable[[str], None]


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
        self.sink: EgressSink | None = None
        self._forwarder = forwarder
        self._hooks = hooks
        # The browser's voice: its first offer's audio m-line takes this transceiver (the first without a mid),
        # made now so that the answer already carries our codec preference.
        self._inbound = self.pc.addTransceiver("audio", direction="recvonly")
        self._inbound.setCodecPreferences(OPUS_ONLY)
        skip_loops(self._inbound.sender)  # it never sends (its RTCP SSRC signs our reports)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._negotiation = Negotiation(
            self.pc,
            self._inbound,
            self.slots,
            self.speaker,
            mux,
            candidates,
            peer_id=peer_id,
            spawn=self._spawn,
            send=hooks.send,
            failed=hooks.failed,
            first_offer=self._adopt_inbound,
            answered=self._activate_lines,
        )
        self._candidates = TrickledCandidates(self.pc, self._negotiation, candidates, hooks.send)
        self._liveness = Liveness(
            offer_timeout=limits.offer_timeout,
            connect_timeout=limits.connect_timeout,
            heartbeat_interval=limits.heartbeat_interval,
            heartbeat_timeout=limits.heartbeat_timeout,
            failed=hooks.failed,
        )
        self.pc.on("connectionstatechange", self._on_connection_state)
        # aiortc closes a connection whose DTLS peer said goodbye; its signaling state says so first.
        self.pc.on("signalingstatechange", self._on_signaling_state)
        # The server opens the one channel a connection needs (heartbeat); a channel the client opens would
        # only hold memory on the server (a hostile client can open thousands), so it is closed at once.
        self.pc.on("datachannel", lambda channel: channel.close())

    def start(self) -> None:
        self._spawn(self._liveness.run())
        self._spawn(self._candidates.run())

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

    @property
    def candidate_type(self) -> str | None:
        """The type of the remote candidate the connection uses, once connected."""
        return self._candidates.connected_type

    # Speakers (called by the room).

    @property
    def usable(self) -> bool:
        """Whether the connection can still carry media (aiortc refuses new transceivers once it is closed)."""
        return not self._closed and self.pc.signalingState != "closed" and self.pc.connectionState != "failed"

    def add_speaker(self, speaker_id: str, speaker: Speaker) -> None:
        if not self.usable:
            return  # on its way out of the room: nothing to negotiate any more
        self._negotiation.add_speaker(speaker_id, speaker)

    def remove_speaker(self, speaker_id: str) -> None:
        self._negotiation.remove_speaker(speaker_id)

    # Client messages.

    async def handle_offer(self, sdp: str) -> None:
        await self._negotiation.handle_offer(sdp)

    async def handle_answer(self, sdp: str) -> None:
        await self._negotiation.handle_answer(sdp)

    def handle_candidate(self, candidate: IceCandidate | None) -> None:
        self._candidates.handle(candidate)

    # Forwarding.

    def _adopt_inbound(self) -> None:
        """The browser's first offer is in: its voice will arrive on ``_inbound``; our forwarding tracks follow."""
        tap_rtp(self._inbound.receiver.transport, self.speaker.on_rtp)
        skip_decoder_thread(self._inbound.receiver)
        skip_loops(self._inbound.receiver)  # reported on by the connection's own loop, started once connected
        self._liveness.open_channel(self.pc)

    def _activate_lines(self) -> None:
        if self.sink is not None:
            self.slots.activate(self.sink)

    # Connection state.

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
        elif state == "connected" and not self._liveness.connected:
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
        self._liveness.mark_connected()
        candidate_type = self._candidates.identify(dtls)
        if candidate_type == "prflx":
            self._spawn(self._report_connected(dtls))
        else:
            self._hooks.connected(candidate_type)

    async def _report_connected(self, dtls: RTCDtlsTransport) -> None:
        self._hooks.connected(await self._candidates.settle(dtls))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._negotiation.close()
        self.slots.close()
        self.speaker.close()
        if self.sink is not None:
            self.sink.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.pc.close()
