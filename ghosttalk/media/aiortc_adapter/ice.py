"""ICE on the shared UDP socket: aioice's candidate gathering replaced per connection, what the server reads
of the selected pair, and the client's datagram filter for fault injection.

``aioice.Connection.get_component_candidates`` binds a fresh UDP socket per connection. We replace it, per
connection, with a version that returns host candidates on the shared socket and hands aioice a
:class:`SharedSocketStunProtocol` (a ``StunProtocol`` subclass) that sends through that socket. Once
DTLS-SRTP is up, the shared socket hands SRTP straight to its :attr:`SharedSocketStunProtocol.srtp_handler`:
the fast path, without aiortc's per-packet queue and task switch.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceTransport

Address = tuple[str, int]
SrtpHandler = Callable[[bytes], None]


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
