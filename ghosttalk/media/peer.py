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
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCDtlsTransport, RTCPeerConnection, RTCRtpSender
from aiortc.rtcconfiguration import RTCBundlePolicy

from ghosttalk.contract import Forwarding, IceCandidate, wire
from ghosttalk.media.aiortc_adapter.dtls import SharedDtlsIdentity, srtp_sessions, tap_rtp
from ghosttalk.media.aiortc_adapter.endpoints import skip_decoder_thread, skip_loops
from ghosttalk.media.aiortc_adapter.ice import selected_remote_address, shared_protocols
from ghosttalk.media.aiortc_adapter.negotiation import (
    connection_cname,
    header_extension_id,
    received_payload_types,
    sender_ssrc,
)
from ghosttalk.media.aiortc_adapter.rtcp import ReceiverStatistics
from ghosttalk.media.candidates import TrickledCandidates
from ghosttalk.media.description import CandidateFilter
from ghosttalk.media.forwarder import OPUS_CLOCK_RATE, EgressSink, Forwarder, Speaker
from ghosttalk.media.icemux import IceMux
from ghosttalk.media.liveness import Liveness
from ghosttalk.media.negotiation import Joining, Negotiation
from ghosttalk.media.outbound import OutboundSlots, max_forwarding_lines
from ghosttalk.media.reports import ReportSources, send_reports
from ghosttalk.media.rtp import AUDIO_LEVEL_URI
from ghosttalk.media.selection import line_label

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
    # The most lines one connection carries at once (selection.lines_heard_at_once): bounds the lines it may
    # ever have (see outbound.max_forwarding_lines).
    max_live_lines: int = 9


@dataclass(slots=True)
class LineHandover:
    """Lines that give way to others once those forward: make before break, so that nobody hears a gap
    while a room changes between one line per speaker and a few lines carrying the loudest."""

    retiring: list[str]
    taking_over: list[str]
    # What else to do once the retiring lines are gone.
    then: Callable[[], None] | None = None


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
        joining: Joining,
    ) -> None:
        """``joining``: the connections on their way into this one's room; this one is until its media is up."""
        self.peer_id = peer_id
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        identity.apply(self.pc)
        self.speaker = Speaker(forwarder.counters)
        self.speaker.on_flood = lambda: hooks.limit_exceeded("packet_rate")
        self.slots = OutboundSlots(self.pc, max_forwarding_lines(limits.max_live_lines))
        # In a big room (media.selection): the speaker each labelled line should carry, and the speaker that
        # never speaks, whose stream list holds the lines that carry nobody at the moment.
        self._routes: dict[str, Speaker] = {}
        self._nobody = Speaker(forwarder.counters)
        # A room crossing ten people changes everyone's lines; the old ones forward until the new ones do.
        self._handover: LineHandover | None = None
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
            receive_lines=limits.max_live_lines,
            hold=self._hold_for_joins,
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
        self._joining = joining

    async def _hold_for_joins(self) -> None:
        # A connection still joining itself offers at once: its offers are part of a join.
        if self._liveness.connected:
            await self._joining.quiet()

    def start(self) -> None:
        self._joining.begin(self)
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
        self._finish_handover()  # it may have been one the handover waited for

    @property
    def waiting_speakers(self) -> int:
        """Speakers added before the client's first offer, who wait for it to get their lines."""
        return self._negotiation.waiting_speakers

    def hear_loudest(self, lines: int, speaker_ids: Iterable[str]) -> None:
        """From now on the room's selection decides whom this connection hears, on ``lines`` lines labelled
        by position (``line-0``...); the lines of ``speaker_ids`` (one each until now) go once those forward."""
        labels = [line_label(index) for index in range(lines)]
        for label in labels:
            if label not in self._routes:
                self._routes[label] = self._nobody
                self.add_speaker(label, self._nobody)
        self._hand_over(LineHandover(list(speaker_ids), labels))

    def hear_everyone(self, speakers: Mapping[str, Speaker]) -> None:
        """Back to one line per speaker (the room has become small again). The labelled lines keep carrying
        whom they carry until the new ones forward; then they go, and the page is told."""
        for speaker_id, speaker in speakers.items():
            self.add_speaker(speaker_id, speaker)
        self._hand_over(LineHandover(list(self._routes), list(speakers), self._forget_routes))

    def _forget_routes(self) -> None:
        self._routes.clear()
        self._hooks.send(wire(Forwarding({})))

    def _hand_over(self, handover: LineHandover) -> None:
        # A newer handover replaces one still waiting: its lines to retire are the newer one's lines to keep.
        self._handover = handover
        self._finish_handover()

    def _finish_handover(self) -> None:
        """Retire the lines a handover replaces once every line taking over forwards (or before the
        connection is up at all: then there is nothing to interrupt)."""
        handover = self._handover
        if handover is None or (self.sink is not None and any(map(self.slots.pending, handover.taking_over))):
            return
        self._handover = None
        for line in handover.retiring:
            self._negotiation.remove_speaker(line)
        if handover.then is not None:
            handover.then()

    def route(self, line: int, speaker: Speaker | None) -> None:
        """Line ``line`` carries ``speaker`` (None: nobody) from now on; a line not yet negotiated takes it
        up once it is."""
        label = line_label(line)
        if label in self._routes:
            self._routes[label] = target = speaker if speaker is not None else self._nobody
            self.slots.route(label, target)

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
        self.speaker.level_id = header_extension_id(self._inbound, AUDIO_LEVEL_URI)
        self._liveness.open_channel(self.pc)

    def _activate_lines(self) -> None:
        if self.sink is not None:
            self._apply_routes()
            self.slots.activate(self.sink)
            self._finish_handover()

    def _apply_routes(self) -> None:
        # A labelled line made or moved since it was routed carries nobody until told again.
        for label, speaker in self._routes.items():
            self.slots.route(label, speaker)

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
        self._apply_routes()
        self.slots.activate(self.sink)
        self._finish_handover()
        self._liveness.mark_connected()
        self._joining.end(self)
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
        self._joining.end(self)
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
