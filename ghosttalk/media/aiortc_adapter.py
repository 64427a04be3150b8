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
* RTCP interval: aiortc sends a report per stream every 0.5-1.5 s, a wake-up per stream per second that
  costs a server with hundreds of forwarded streams more than forwarding some of them. The server process
  stretches it to RFC 3550's 5 s minimum (randomised over 2.5-7.5 s) with :func:`use_rfc3550_rtcp_interval`.
* RTCP: receiver statistics (``RTCRtpReceiver.__remote_streams``) are fed so that receiver reports still
  reach the sender, and sender counters (``RTCRtpSender.__packet_count`` and friends) are kept so that
  sender reports describe what we really sent.

``tests/test_adapter_pins.py`` checks the pinned versions and every attribute used here, so an upgrade
fails loudly in the suite instead of silently falling back to decoding.
"""

from __future__ import annotations

import asyncio
import functools
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
    rtcrtpreceiver,
    rtcrtpsender,
)
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpreceiver import StreamStatistics

PINNED_AIORTC = "1.16.0"
PINNED_AIOICE = "0.13.0"

Address = tuple[str, int]
SrtpHandler = Callable[[bytes], None]


class _Rfc3550Interval:
    """Stands in for the ``random`` module inside aiortc's RTCP loops, which sleep ``0.5 + random.random()``
    seconds: this makes it 2.5-7.5 s, RFC 3550's 5 s minimum randomised by [0.5, 1.5] as the RFC asks."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def random(self) -> float:
        return 2.0 + 5.0 * float(self._module.random())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def use_rfc3550_rtcp_interval() -> None:
    """Sender and receiver reports every 2.5-7.5 s instead of 0.5-1.5 s, for this whole process (the server)."""
    for module in (rtcrtpsender, rtcrtpreceiver):
        current = vars(module)["random"]
        if not isinstance(current, _Rfc3550Interval):
            vars(module)["random"] = _Rfc3550Interval(current)


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


async def create_offer_keeping_negotiated(
    pc: RTCPeerConnection, reference: RTCRtpTransceiver
) -> RTCSessionDescription:
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


def set_stream_identity(sender: RTCRtpSender, stream_id: str, track_id: str) -> None:
    """The msid the next SDP announces for this sender: the page maps stream id -> speaker."""
    sender._stream_id = stream_id
    sender._track_id = track_id


class ReceiverStatistics:
    """Feeds one ``RTCRtpReceiver``'s RTCP statistics without its jitter buffer, so receiver reports keep
    going to the speaker. One instance per ingress stream; it reuses a single packet view."""

    __slots__ = ("_clock_rate", "_streams", "sequence_number", "timestamp")

    def __init__(self, receiver: RTCRtpReceiver, clock_rate: int) -> None:
        self._streams: dict[int, StreamStatistics] = getattr(receiver, "_RTCRtpReceiver__remote_streams")  # noqa: B009
        self._clock_rate = clock_rate
        self.sequence_number = 0
        self.timestamp = 0

    def add(self, ssrc: int, sequence_number: int, timestamp: int) -> None:
        stats = self._streams.get(ssrc)
        if stats is None:
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
