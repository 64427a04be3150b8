"""ICE on the shared UDP socket: aioice's candidate gathering replaced per connection, what the server reads
of the selected pair, and the client's datagram filter for fault injection.

``aioice.Connection.get_component_candidates`` binds a fresh UDP socket per connection. We replace it, per
connection, with a version that returns host candidates on the shared socket and hands aioice a
:class:`SharedSocketStunProtocol` (a ``StunProtocol`` subclass) that sends through that socket. Once
DTLS-SRTP is up, the shared socket hands SRTP straight to its :attr:`SharedSocketStunProtocol.srtp_handler`:
the fast path, without aiortc's per-packet queue and task switch.

The shared socket parses and authenticates STUN itself (``ghosttalk.media.icemux``) and hands aioice only
messages it has accepted (:meth:`SharedSocketStunProtocol.handle_stun`); every send goes through the shared
socket's guarded :meth:`SocketOwner.send`. :func:`guard_dtls_receive` keeps an exception in aiortc's DTLS,
SRTP or SCTP receive handling from ending the connection.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol, cast

from aioice import stun
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import CandidatePair, Connection, StunProtocol
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceTransport

Address = tuple[str, int]
SrtpHandler = Callable[[bytes], None]
# After this many exceptions in a row without one datagram handled cleanly, the DTLS transport is treated as
# broken (as aiortc itself would at the first): a guard must never turn a real failure into a busy loop.
DTLS_ERRORS_IN_A_ROW = 100


class SocketOwner(Protocol):
    """What :class:`SharedSocketStunProtocol` needs from the shared socket (see ``ghosttalk.media.icemux``)."""

    transport: asyncio.DatagramTransport
    port: int

    def send(self, data: bytes, addr: Address) -> None: ...

    def drop(self, reason: str, exc: BaseException | None = None) -> None: ...

    def expect(self, transaction_id: bytes, addr: Address, protocol: SharedSocketStunProtocol) -> None: ...

    def forget(self, transaction_id: bytes) -> None: ...

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
        # Remote addresses routed to this protocol -> when the peer last proved itself from there (an
        # authenticated check; see IceMux). Kept here so that release() need not scan the shared table.
        self.addresses: dict[Address, float] = {}

    @property
    def connection(self) -> Connection:
        return self.receiver

    @property
    def password(self) -> bytes:
        """The key of MESSAGE-INTEGRITY on checks sent to us (our local ICE password)."""
        return self.receiver.local_password.encode()

    def expects_username(self, remote_ufrag: str) -> bool:
        """Whether a check naming ``remote_ufrag`` as its sender is for this connection (the peer's ufrag is
        known once its description is, RFC 8445 section 7.3; until then any)."""
        expected = self.receiver.remote_username
        return expected is None or remote_ufrag == expected

    def handle_stun(self, message: stun.Message, addr: Address) -> None:
        """A STUN message the shared socket has parsed and accepted: an authenticated request for our ufrag,
        or a response to one of our transactions from the address it went to. aioice's own
        ``datagram_received`` would parse again and answer anything, forged or not."""
        if message.message_class == stun.Class.REQUEST:
            self.receiver.request_received(message, addr, self)
        else:
            transaction = self.transactions.get(message.transaction_id)
            if transaction is not None:
                transaction.response_received(message, addr)

    async def request(
        self,
        request: stun.Message,
        addr: Address,
        integrity_key: bytes | None = None,
        retransmissions: int | None = None,
    ) -> tuple[stun.Message, Address]:
        # A connectivity check we send: its response is routed back to us by transaction id, and only from
        # the address it went to. No address is claimed by sending (a candidate can name anyone's).
        self.owner.expect(request.transaction_id, addr, self)
        try:
            return await super().request(request, addr, integrity_key, retransmissions)
        finally:
            self.owner.forget(request.transaction_id)

    def send_stun(self, message: stun.Message, addr: Address) -> None:
        self.owner.send(bytes(message), addr)

    async def send_data(self, data: bytes, addr: Address) -> None:
        self.owner.send(data, addr)

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
    """Make every not-yet-gathered ICE transport of ``pc`` use the shared socket, and check without pacing
    (:func:`check_at_once`). Call before each ``setLocalDescription``: aiortc creates transports lazily and
    gathers in ``setLocalDescription``."""
    for transport in _ice_transports(pc):
        connection = transport._connection
        if transport.iceGatherer.state == "new" and "get_component_candidates" not in vars(connection):
            gather = functools.partial(_shared_socket_candidates, connection, owner, advertised)
            setattr(connection, "get_component_candidates", gather)  # noqa: B010 (a per-instance override)
    check_at_once(pc)
    for dtls in dtls_transports(pc):
        guard_dtls_receive(dtls, owner)


class _ChecksAtOnce:
    """Stands in for one connection's ``Connection._check_periodic``, which ``connect()`` calls every 20 ms
    (RFC 8445's Ta) to start the next check, for as long as it returns True. When the check list completes,
    ``connect()`` only notices at the next tick, and the DTLS handshake waits for ``connect()``: up to 20 ms
    per side on every join, for nothing on a list of a few pairs. So every pending check starts now and,
    once there is a pair at all, the loop ends: ``connect()`` then waits on the check list itself and returns
    the moment it completes. Pairs formed later (trickled candidates) are checked when the peer's own checks
    trigger them, as they are against an ICE-lite agent; with no pair yet, aioice's loop goes on."""

    __slots__ = ("connection", "paced")

    def __init__(self, connection: Connection, paced: Callable[[], bool]) -> None:
        self.connection = connection
        self.paced = paced

    def __call__(self) -> bool:
        pairs = self.connection._check_list
        if not pairs:
            return self.paced()
        for pair in pairs:
            if pair.state in (CandidatePair.State.FROZEN, CandidatePair.State.WAITING):
                self.connection.check_start_task(pair)
        return False


def check_at_once(pc: RTCPeerConnection) -> None:
    """Install :class:`_ChecksAtOnce` on every ICE connection of ``pc`` (idempotent). Call before the
    description that starts ICE (the server's answer; the client's offer) is applied."""
    for transport in _ice_transports(pc):
        connection = transport._connection
        if not isinstance(vars(connection).get("_check_periodic"), _ChecksAtOnce):
            checks = _ChecksAtOnce(connection, connection._check_periodic)
            setattr(connection, "_check_periodic", checks)  # noqa: B010 (a per-instance override)


def dtls_transports(pc: RTCPeerConnection) -> set[RTCDtlsTransport]:
    """Every DTLS transport of ``pc``: its transceivers' and its data channels' (one, under BUNDLE)."""
    transports = {transceiver.receiver.transport for transceiver in pc.getTransceivers()}
    if pc.sctp is not None:
        transports.add(pc.sctp.transport)
    return transports


class _GuardedReceive:
    """Stands in for one DTLS transport's ``_recv_next`` (one datagram through aiortc's DTLS, SRTP and SCTP
    handling): an exception there would end aiortc's receive task, and with it the connection. The datagram
    is dropped and counted instead; only the transport's own end (``ConnectionError``) and a run of
    :data:`DTLS_ERRORS_IN_A_ROW` failures go through."""

    __slots__ = ("errors", "owner", "receive_next")

    def __init__(self, receive_next: Callable[[], Coroutine[Any, Any, None]], owner: SocketOwner) -> None:
        self.receive_next = receive_next
        self.owner = owner
        self.errors = 0

    async def __call__(self) -> None:
        try:
            await self.receive_next()
        except ConnectionError:
            raise
        except Exception as exc:
            self.errors += 1
            if self.errors >= DTLS_ERRORS_IN_A_ROW:
                raise
            self.owner.drop("dtls_error", exc)
        else:
            self.errors = 0


def guard_dtls_receive(dtls: RTCDtlsTransport, owner: SocketOwner) -> None:
    """Install :class:`_GuardedReceive` on ``dtls`` (idempotent). aiortc's receive loop looks the method up
    on each datagram, so this works before and after the transport has started."""
    if not isinstance(vars(dtls).get("_recv_next"), _GuardedReceive):
        setattr(dtls, "_recv_next", _GuardedReceive(dtls._recv_next, owner))  # noqa: B010 (per-instance)


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
    """Sits between an ICE socket and aioice (see ``ghosttalk.client.netsim``): may drop, delay or pass datagrams."""

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
