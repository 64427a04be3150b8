"""The one module that opens aiortc's and aioice's private parts.

GhostTalk forwards RTP without decoding and runs every peer's ICE on one UDP socket; neither is a public
feature of aiortc 1.16.0 / aioice 0.13.0, so this module reaches into them, and nothing else does:

* ICE: ``aioice.Connection.get_component_candidates`` binds a fresh UDP socket per connection. We replace
  it, per connection, with a version that returns host candidates on the shared socket and hands aioice a
  :class:`SharedSocketStunProtocol` (a ``StunProtocol`` subclass) that sends through that socket.
* Ingress RTP: ``RTCDtlsTransport._handle_rtp_data`` is replaced per instance, so any packet that still
  takes aiortc's path reaches our handler instead of the receiver's jitter buffer and decoder thread. The
  fast path (the shared socket calling :attr:`SharedSocketStunProtocol.srtp_handler`) skips aiortc's
  per-packet queue and task switch altogether, using the transport's SRTP sessions directly.
* Re-offers: ``RTCPeerConnection.createOffer`` resets every transceiver to aiortc's default payload types and
  header-extension ids. A browser that offered first negotiated its own (Opus 111, ``ssrc-audio-level`` on
  id 1, ...) and refuses an offer that renumbers them, or a BUNDLE group whose m-lines disagree, so our
  offers reuse what the first negotiation settled, on every audio m-line.
* RTCP: aiortc sends a report per stream every 0.5-1.5 s from a task per sender and receiver, a wake-up per
  stream per second that cost the server more than forwarding some of the streams. The server sends one
  compound report per connection instead (``ghosttalk.media.reports``), and :func:`skip_loops` replaces
  aiortc's loops (a sender's RTP loop too: the forwarder writes its packets) with coroutines that end at
  once. The loss and jitter those reports carry come from aiortc's ``StreamStatistics``, fed per packet by
  :class:`ReceiverStatistics`, which also records each speaker's last sender report (from incoming SRTCP,
  on the fast path too). The headless client keeps aiortc's loops and feeds its sender's counters
  (:func:`update_sender_report`) since it writes its own RTP.
* DTLS identity: aiortc makes a key, a certificate and an OpenSSL context for every connection (about
  120 kB and a millisecond of CPU each). The server uses one :class:`SharedDtlsIdentity` for all of them.
* Decoder threads: ``RTCRtpReceiver.receive`` starts a thread that decodes what the jitter buffer hands it.
  The forwarder never lets a packet get there, so :func:`skip_decoder_thread` stops it as soon as it starts.
  Every transceiver has a receiver, the send-only ones that forward a speaker too; what they would need to
  receive (queues and events, about 7 kB a line) is freed by :func:`release_unused_receiver`.

``tests/test_adapter_pins.py`` checks the pinned versions and every attribute used here, so an upgrade
fails loudly in the suite instead of silently falling back to decoding.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

import aioice
import aiortc
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol
from aiortc import (
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
    rtcpeerconnection,
)
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsFingerprint, RTCDtlsTransport, SRTPProtectionProfile
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtcpReceiverInfo
from OpenSSL import SSL

from ghosttalk.media.rtp import RTCP_PAYLOAD_TYPES
from ghosttalk.media.srtp import SRTP_ERRORS, fast_transform

PINNED_AIORTC = "1.16.0"
PINNED_AIOICE = "0.13.0"

Address = tuple[str, int]
SrtpHandler = Callable[[bytes], None]


def check_pinned_versions() -> None:
    """Refuse to run on aiortc/aioice versions whose internals this module has not been checked against."""
    found = (aiortc.__version__, aioice.__version__)
    if found != (PINNED_AIORTC, PINNED_AIOICE):
        raise RuntimeError(
            f"GhostTalk's media adapter is written for aiortc {PINNED_AIORTC} and aioice {PINNED_AIOICE}, "
            f"found aiortc {found[0]} and aioice {found[1]}; install the pinned versions"
        )


class SocketOwner(Protocol):
    """What :class:`SharedSocketStunProtocol` needs from the shared socket (see ``ghosttalk.media.icemux``)."""

    transport: asyncio.DatagramTransport
    port: int

    def claim(self, addr: Address, protocol: SharedSocketStunProtocol) -> None: ...

    def register(self, ufrag: str, protocol: SharedSocketStunProtocol) -> None: ...

    def release(self, protocol: SharedSocketStunProtocol) -> None: ...


class SharedSocketStunProtocol(StunProtocol):
    """aioice's per-candidate protocol object, speaking through the shared socket instead of its own."""

    def __init__(self, connection: Connection, owner: SocketOwner, candidate: Candidate) -> None:
        super().__init__(connection)
        self.owner = owner
        self.transport = owner.transport
        self.local_candidate = candidate
        # Set once DTLS-SRTP is up: the shared socket then hands SRTP packets straight to it.
        self.srtp_handler: SrtpHandler | None = None

    @property
    def connection(self) -> Connection:
        return self.receiver

    def send_stun(self, message: Any, addr: Address) -> None:
        # A connectivity check we send claims the address, so that its response finds us.
        self.owner.claim(addr, self)
        super().send_stun(message, addr)

    def deliver_data(self, data: bytes) -> None:
        """A non-STUN datagram for aiortc's own receive path (DTLS records, SRTCP)."""
        self.receiver.data_received(data, self.local_candidate.component)

    async def close(self) -> None:
        # Connection.close() closes each protocol: ours must leave the shared socket open.
        self.srtp_handler = None
        self.owner.release(self)


async def _shared_socket_candidates(
    connection: Connection,
    owner: SocketOwner,
    advertised: tuple[str, ...],
    component: int,
    addresses: list[str],
    timeout: int = 5,
) -> list[Candidate]:
    """Stands in for ``Connection.get_component_candidates``: host candidates on the shared port only."""
    del addresses, timeout  # aioice's own interface list and STUN/TURN timeout do not apply here
    candidates = []
    for host in advertised:
        candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=owner.port,
            type="host",
        )
        protocol = SharedSocketStunProtocol(connection, owner, candidate)
        connection._protocols.append(protocol)
        owner.register(connection.local_username, protocol)
        candidates.append(candidate)
    return candidates


def _ice_transports(pc: RTCPeerConnection) -> set[RTCIceTransport]:
    transports: set[RTCIceTransport] = getattr(pc, "_RTCPeerConnection__iceTransports")  # noqa: B009 (private)
    return transports


def gather_on_shared_socket(pc: RTCPeerConnection, owner: SocketOwner, advertised: tuple[str, ...]) -> None:
    """Make every not-yet-gathered ICE transport of ``pc`` use the shared socket. Call before each
    ``setLocalDescription``: aiortc creates transports lazily and gathers in ``setLocalDescription``."""
    for transport in _ice_transports(pc):
        connection = transport._connection
        if transport.iceGatherer.state == "new" and "get_component_candidates" not in vars(connection):
            gather = functools.partial(_shared_socket_candidates, connection, owner, advertised)
            setattr(connection, "get_component_candidates", gather)  # noqa: B010 (a per-instance override)


async def create_offer_keeping_negotiated(pc: RTCPeerConnection, reference: RTCRtpTransceiver) -> RTCSessionDescription:
    """``pc.createOffer()`` with ``reference``'s negotiated codecs and header extensions on every audio
    m-line. createOffer reads the module-level defaults and never awaits, so swapping them around the call
    cannot leak into any other connection."""
    module = vars(rtcpeerconnection)
    codecs, extensions = module["CODECS"], module["HEADER_EXTENSIONS"]
    module["CODECS"] = {**codecs, "audio": list(reference._codecs)}
    module["HEADER_EXTENSIONS"] = {**extensions, "audio": list(reference._headerExtensions)}
    try:
        return await pc.createOffer()
    finally:
        module["CODECS"], module["HEADER_EXTENSIONS"] = codecs, extensions


def shared_protocols(dtls: RTCDtlsTransport) -> list[SharedSocketStunProtocol]:
    return [p for p in dtls.transport._connection._protocols if isinstance(p, SharedSocketStunProtocol)]


def selected_remote_address(dtls: RTCDtlsTransport) -> Address | None:
    pair = dtls.transport._connection._nominated.get(1)
    return None if pair is None else pair.remote_addr


def selected_candidate_type(dtls: RTCDtlsTransport, signalled: Mapping[Address, str]) -> str:
    """The type of the remote candidate that connected: host, srflx or relay; prflx while the remote side is
    known only from its connectivity check. A browser's check often arrives before the candidate it trickles
    for the same address, and aioice then ignores that candidate as a duplicate, so ``signalled`` (address ->
    type of every candidate the peer sent) is consulted too."""
    connection = dtls.transport._connection
    pair = connection._nominated.get(1)
    if pair is None:
        return "none"
    remote = pair.remote_candidate
    if remote.type != "prflx":
        return str(remote.type)
    address = (remote.host, remote.port)
    for candidate in connection.remote_candidates:
        if (candidate.host, candidate.port) == address and candidate.type != "prflx":
            return str(candidate.type)
    return signalled.get(address, "prflx")


def srtp_sessions(dtls: RTCDtlsTransport) -> tuple[Any, Any] | None:
    """(receive, transmit) pylibsrtp sessions once DTLS has completed, else None."""
    if dtls.state != "connected" or dtls._rx_srtp is None or dtls._tx_srtp is None:
        return None
    return dtls._rx_srtp, dtls._tx_srtp


def tap_rtp(dtls: RTCDtlsTransport, handler: Callable[[bytes], None]) -> None:
    """Route decrypted RTP that takes aiortc's own path (before the fast path is set) to ``handler``,
    never to the receiver's jitter buffer and decoder."""

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        handler(data)

    setattr(dtls, "_handle_rtp_data", handle_rtp_data)  # noqa: B010 (a per-instance override)


def sctp_dtls(pc: RTCPeerConnection) -> RTCDtlsTransport | None:
    sctp = pc.sctp
    return None if sctp is None else sctp.transport


def negotiated_payload_type(transceiver: RTCRtpTransceiver) -> int | None:
    codecs = transceiver._codecs
    return codecs[0].payloadType if codecs else None


def received_payload_types(transceiver: RTCRtpTransceiver) -> frozenset[int]:
    return frozenset(codec.payloadType for codec in transceiver._codecs if codec.payloadType is not None)


def sender_ssrc(sender: RTCRtpSender) -> int:
    ssrc: int = sender._ssrc
    return ssrc


def set_stream_identity(sender: RTCRtpSender, stream_id: str, track_id: str) -> None:
    """The msid the next SDP announces for this sender: the page maps stream id -> speaker."""
    sender._stream_id = stream_id
    sender._track_id = track_id


class _ReusableCertificate(RTCCertificate):
    """An ``RTCCertificate`` whose OpenSSL context is made once and shared by every DTLS connection using it.
    aiortc only reads the context (``SSL.Connection(ctx)``); the session cache is switched off because no
    connection can resume another's session and a shared cache would only grow."""

    def __init__(self, key: Any, cert: Any) -> None:
        super().__init__(key, cert)
        self._contexts: dict[tuple[bytes, ...], SSL.Context] = {}
        # SHA-256 alone: the hash the certificate is signed with, the one every browser sends and checks
        # (aiortc would add SHA-384 and SHA-512 to every m-line of every description, about 400 bytes each).
        self._fingerprints = [f for f in super().getFingerprints() if f.algorithm == "sha-256"]

    def getFingerprints(self) -> list[RTCDtlsFingerprint]:
        # aiortc asks for every m-line of every description and would hash the certificate each time; the
        # fingerprint of one certificate never changes, and nothing modifies it.
        return list(self._fingerprints)

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        profiles = tuple(profile.openssl_profile for profile in srtp_profiles)
        context = self._contexts.get(profiles)
        if context is None:
            context = super()._create_ssl_context(srtp_profiles)
            context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
            # Idle connections give their 16 kB read and write buffers back (the heartbeat wakes them rarely).
            context.set_mode(SSL.MODE_RELEASE_BUFFERS)
            self._contexts[profiles] = context
        return context


class SharedDtlsIdentity:
    """The server's DTLS key and certificate, shared by every connection and renewed daily (aiortc's
    certificates are valid for 30 days; a connection keeps the one it started with). Browsers pin the
    fingerprint from the SDP, not a chain, so one identity per server process is as good as one per peer;
    it identifies the server, never a person."""

    def __init__(self, lifetime_seconds: float = 86400.0) -> None:
        self._lifetime = lifetime_seconds
        self._certificate = _ReusableCertificate.generateCertificate()
        self._created = time.monotonic()

    def certificate(self) -> RTCCertificate:
        if time.monotonic() - self._created > self._lifetime:
            self._certificate = _ReusableCertificate.generateCertificate()
            self._created = time.monotonic()
        return self._certificate

    def apply(self, pc: RTCPeerConnection) -> None:
        """Give a fresh ``pc`` this identity instead of its own; call before it creates any transport."""
        setattr(pc, "_RTCPeerConnection__certificates", [self.certificate()])  # noqa: B010 (private)


async def _loop_not_run(*_: object) -> None:
    """Runs instead of an aiortc loop whose work the server does itself: it ends at once."""


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


# stop() waits for each loop's start and exit events. For loops that end at once, one event set for good
# serves every sender and receiver: a set event is only ever read (waiting on it needs no event loop).
_LOOP_DONE = _set_event()


def skip_loops(endpoint: RTCRtpSender | RTCRtpReceiver) -> None:
    """Run none of aiortc's loops for this sender or receiver: the RTCP loop of each, and a sender's RTP loop,
    which pulls frames from its track. The forwarder writes the RTP and the connection's report loop the
    RTCP (``ghosttalk.media.reports``), so no task, timer or track waits per stream. Call before ``send()`` or
    ``receive()`` starts them."""
    prefix = f"_{type(endpoint).__name__}"
    for loop in ("rtp", "rtcp") if isinstance(endpoint, RTCRtpSender) else ("rtcp",):
        setattr(endpoint, f"_run_{loop}", _loop_not_run)  # a per-instance override
        setattr(endpoint, f"{prefix}__{loop}_started", _LOOP_DONE)
        setattr(endpoint, f"{prefix}__{loop}_exited", _LOOP_DONE)


def connection_cname(pc: RTCPeerConnection) -> str:
    """The CNAME ``pc`` puts in its SDP (``a=ssrc:... cname:``), which its RTCP must repeat."""
    return str(getattr(pc, "_RTCPeerConnection__cname"))  # noqa: B009 (private)


# What every RTCRtpReceiver makes for decoding (a thread-safe queue and a thread event, about 5 kB) and for
# its RTCP loop (two asyncio events, about 2 kB), whether or not it ever receives.
_DECODER_PLUMBING = ("_RTCRtpReceiver__decoder_queue", "_RTCRtpReceiver__decoder_error")
_RTCP_EVENTS = ("_RTCRtpReceiver__rtcp_started", "_RTCRtpReceiver__rtcp_exited")


def _release(receiver: RTCRtpReceiver, names: tuple[str, ...]) -> None:
    # None, not a shared stand-in: should aiortc ever touch one again, it fails loudly instead of mixing
    # two receivers' traffic.
    for name in names:
        setattr(receiver, name, None)


def skip_decoder_thread(receiver: RTCRtpReceiver) -> None:
    """Stop ``receiver``'s decoder thread as soon as ``receive()`` has started it, and drop what fed it:
    forwarded audio is never decoded, and an idle thread per person costs memory and an OS thread for
    nothing. (aiortc only reads the decoder queue and event while the thread runs, or when its own RTP
    handler runs, which :func:`tap_rtp` takes over.)"""
    receive = receiver.receive
    stop = getattr(receiver, "_RTCRtpReceiver__stop_decoder")  # noqa: B009 (private)

    async def receive_without_decoder(parameters: Any) -> None:
        await receive(parameters)
        stop()
        _release(receiver, _DECODER_PLUMBING)

    setattr(receiver, "receive", receive_without_decoder)  # noqa: B010 (a per-instance override)


def release_unused_receiver(receiver: RTCRtpReceiver) -> None:
    """Free what the receiver of a transceiver that only sends would need to receive. aiortc gives every
    transceiver a receiver, ours that forward a speaker too, but only calls ``receive()`` on one whose
    negotiated direction receives, which an answer cannot give a line we offer ``sendonly`` or ``inactive``
    (``check_answer_directions``); ``stop()`` touches these only after ``receive()``."""
    if getattr(receiver, "_RTCRtpReceiver__started"):  # noqa: B009 (private)
        raise RuntimeError("the receiver has started")
    _release(receiver, _DECODER_PLUMBING + _RTCP_EVENTS)


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


def srtp_writer(dtls: RTCDtlsTransport) -> Callable[[bytes], None] | None:
    """A synchronous 'protect and send' on the selected candidate pair (plain UDP or a TURN relay), for the
    headless client, which writes its own RTP instead of running aiortc's encoder loop."""
    sessions = srtp_sessions(dtls)
    pair = dtls.transport._connection._nominated.get(1)
    if sessions is None or pair is None:
        return None
    protect = sessions[1].protect
    transport, addr = pair.protocol.transport, pair.remote_addr

    def write(packet: bytes) -> None:
        transport.sendto(protect(packet), addr)

    return write


def receive_rtp_directly(dtls: RTCDtlsTransport, handler: Callable[[bytes], None]) -> bool:
    """For the headless client, once DTLS is up: decrypt SRTP from the remote address in the socket's own
    callback and hand the RTP to ``handler``, as the server's shared socket does, instead of aioice's STUN
    parse attempt, queue and task switch and aiortc's receive loop (RTCP and DTLS still go that way). Works
    through a TURN relay too (aioice hands relayed datagrams to the same protocol object); not applied, and
    False returned, when something else (a simulated link) already wraps the protocol."""
    sessions = srtp_sessions(dtls)
    pair = dtls.transport._connection._nominated.get(1)
    if sessions is None or pair is None:
        return False
    protocol = pair.protocol
    if type(protocol) is not StunProtocol or "datagram_received" in vars(protocol):
        return False
    unprotect = fast_transform(sessions[0].unprotect)
    remote, original = pair.remote_addr, protocol.datagram_received

    def datagram_received(data: bytes, addr: Address) -> None:
        if addr == remote and len(data) >= 12 and 127 < data[0] < 192 and data[1] not in RTCP_PAYLOAD_TYPES:
            try:
                plain = unprotect(data)
            except SRTP_ERRORS:
                return  # a replay or a forgery: dropped, as aiortc would
            handler(plain)
        else:
            original(data, addr)

    setattr(protocol, "datagram_received", datagram_received)  # noqa: B010 (a per-instance override)
    return True


class DatagramFilter(Protocol):
    """Sits between an ICE socket and aioice (see ``ghosttalk.netsim``): may drop, delay or pass datagrams."""

    def outgoing(self, data: bytes, addr: Address, send: Callable[[bytes, Address], None]) -> None: ...

    def incoming(self, data: bytes, addr: Address, deliver: Callable[[bytes, Address], None]) -> None: ...


class _FilteredTransport:
    """Wraps an ICE socket's transport so that everything aioice and DTLS send passes the filter."""

    def __init__(self, transport: asyncio.DatagramTransport, link: DatagramFilter) -> None:
        self._transport = transport
        self._link = link

    def sendto(self, data: bytes, addr: Address) -> None:
        self._link.outgoing(data, addr, self._send_now)

    def _send_now(self, data: bytes, addr: Address) -> None:
        # A delayed datagram may come due after the connection closed its socket.
        if not self._transport.is_closing():
            self._transport.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def filter_ice_datagrams(pc: RTCPeerConnection, link: DatagramFilter) -> None:
    """Route every datagram of ``pc``'s ICE sockets through ``link`` in both directions (fault injection for
    the headless client). Call after ``setLocalDescription``, once the sockets exist."""
    for transport in _ice_transports(pc):
        for protocol in transport._connection._protocols:
            if isinstance(protocol.transport, _FilteredTransport):
                continue
            protocol.transport = cast(asyncio.DatagramTransport, _FilteredTransport(protocol.transport, link))
            incoming = functools.partial(link.incoming, deliver=protocol.datagram_received)
            setattr(protocol, "datagram_received", incoming)  # noqa: B010 (a per-instance override)
