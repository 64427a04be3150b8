"""One UDP socket for every peer's ICE, DTLS and SRTP.

Datagrams are routed to the right peer's aioice protocol object:

* a STUN request by its USERNAME attribute (``<our ufrag>:<their ufrag>``), and only once its
  MESSAGE-INTEGRITY holds under that connection's ICE password; only then is its source address bound to the
  peer. Anything else gets no answer at all, so a live ufrag and a dead one look alike from outside;
* a STUN response by its transaction id, from the address our check went to (sending a check claims
  nothing: a candidate may name anyone's address);
* anything else by its source address, bound as above.

Every datagram is checked before it goes further: too short, a kind no peer speaks (RFC 7983's first-byte
ranges), STUN that does not parse, an address nobody owns. Each such datagram and each exception on the
receive path is dropped and counted by reason (``/metrics``), and logged at most once a minute per reason.
Every send is checked too (:meth:`IceMux.send`): a destination the socket cannot take is dropped, because
plain asyncio closes a datagram transport on any ``sendto`` error other than ``OSError``.

SRTP and SRTCP from a peer whose DTLS handshake is done go straight to its media handler: no queue, no task
switch. Mappings are removed when the peer's ICE connection closes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections import Counter
from typing import cast

import ifaddr
from aioice import stun

from ghosttalk.media import udpbatch
from ghosttalk.media.aiortc_adapter.ice import Address, SharedSocketStunProtocol
from ghosttalk.media.batchtransport import BatchedDatagramTransport

logger = logging.getLogger(__name__)

# Kernel buffers sized for bursts of many peers' packets arriving between two event-loop turns.
_SOCKET_BUFFER = 4 * 1024 * 1024
# Nothing a peer sends is shorter: an RTP header is 12 bytes, a DTLS record header 13, a STUN header 20.
MIN_DATAGRAM = 12
# An address stays with the connection that last authenticated from it while that connection keeps
# checking from there (consent checks come every 5 s or so, RFC 7675); another connection's checks from the
# same address are refused meanwhile. Without this, anyone with credentials of their own could send checks
# with a spoofed source address and take a victim's address away.
ADDRESS_HOLD_SECONDS = 30.0
# Addresses one connection may have bound at once (host, server-reflexive and relayed candidates, and a NAT
# rebinding or two). A new one replaces the least recently checked, but only once that one has fallen silent
# for ADDRESS_HOLD_SECONDS: a peer checking from ever new ports cannot grow aioice's list of peer-reflexive
# candidates (and checks) faster than that.
MAX_ADDRESSES_PER_CONNECTION = 16
# Exceptions are logged once a minute per reason; the counters in /metrics have every one.
DROP_LOG_INTERVAL_SECONDS = 60.0
# Why a datagram was dropped (the reason label of ghosttalk_udp_datagrams_dropped_total), all present from
# the start so that dashboards see zeros rather than missing series.
DROP_REASONS = (
    "short",  # under MIN_DATAGRAM bytes
    "unknown_kind",  # a first byte that is neither STUN, DTLS nor RTP/RTCP (RFC 7983)
    "oversize",  # longer than a receive buffer of the batched socket (ghosttalk.media.udpbatch)
    "unknown_source",  # DTLS or RTP from an address no connection has authenticated from
    "stun_malformed",  # does not parse as STUN
    "stun_unknown_ufrag",  # a request for no live connection
    "stun_unauthenticated",  # a request whose MESSAGE-INTEGRITY fails (or is missing)
    "stun_address_taken",  # an authenticated request from an address another connection holds
    "stun_address_limit",  # an authenticated request from a new address while MAX_ADDRESSES_PER_CONNECTION are live
    "stun_unexpected_response",  # a response to no check of ours, or from elsewhere than it went to
    "stun_indication",  # indications (keepalives): nothing to do
    "dtls_error",  # aiortc's DTLS, SRTP or SCTP handling raised (ghosttalk.media.aiortc_adapter.ice)
    "error",  # anything else raised on the receive path: a bug, logged with its type
    "bad_destination",  # a send to an address the socket cannot take (port out of range, not an IPv4 literal)
    "send_error",  # a send that raised
)


def default_host_addresses() -> tuple[str, ...]:
    """Every non-loopback, non-link-local IPv4 interface address (the shared socket is IPv4)."""
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                continue
            address = ipaddress.ip_address(ip.ip)
            if not (address.is_loopback or address.is_link_local):
                found.append(ip.ip)
    return tuple(dict.fromkeys(found))


class IceMux(asyncio.DatagramProtocol):
    """The shared socket and its routing tables."""

    def __init__(self, advertised: tuple[str, ...]) -> None:
        self.advertised = advertised
        self.transport: asyncio.DatagramTransport
        self.port = 0
        self._family = socket.AF_INET
        self._by_ufrag: dict[str, SharedSocketStunProtocol] = {}
        self._by_addr: dict[Address, SharedSocketStunProtocol] = {}
        # Our outstanding connectivity checks: transaction id -> (the address it went to, its protocol).
        self._transactions: dict[bytes, tuple[Address, SharedSocketStunProtocol]] = {}
        # Datagrams dropped (received or to be sent), by reason: read by /metrics.
        self.dropped: Counter[str] = Counter(dict.fromkeys(DROP_REASONS, 0))
        self._logged_at: dict[str, float] = {}
        self._closed = False

    async def bind(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._family = sock.family
        libc = udpbatch.load_libc()
        if libc is not None:
            BatchedDatagramTransport(
                loop, sock, self, libc, truncated=self._truncated, refused=lambda exc: self.drop("send_error", exc)
            )
        else:  # one datagram per system call, through the event loop's own transport
            await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self.port = self.transport.get_extra_info("sockname")[1]

    def _truncated(self, count: int) -> None:
        self.dropped["oversize"] += count

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport quacks like asyncio's without subclassing it.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if exc is not None:
            # Every call is gone with it; /healthz now says so. Nothing we send should ever get here.
            logger.error("shared UDP socket closed: %r", exc)

    @property
    def alive(self) -> bool:
        """Bound and not closed (/healthz reports 503 otherwise)."""
        return hasattr(self, "transport") and not self._closed and not self.transport.is_closing()

    def close(self) -> None:
        self.transport.close()

    # Routing tables, driven by SharedSocketStunProtocol.

    def register(self, ufrag: str, protocol: SharedSocketStunProtocol) -> None:
        # A connection advertising several addresses registers several protocols; the first one answers.
        self._by_ufrag.setdefault(ufrag, protocol)

    def expect(self, transaction_id: bytes, addr: Address, protocol: SharedSocketStunProtocol) -> None:
        self._transactions[transaction_id] = (addr, protocol)

    def forget(self, transaction_id: bytes) -> None:
        self._transactions.pop(transaction_id, None)

    def release(self, protocol: SharedSocketStunProtocol) -> None:
        for ufrag in [key for key, owner in self._by_ufrag.items() if owner is protocol]:
            del self._by_ufrag[ufrag]
        for addr in protocol.addresses:
            if self._by_addr.get(addr) is protocol:
                del self._by_addr[addr]
        protocol.addresses.clear()
        for transaction_id in [key for key, (_, owner) in self._transactions.items() if owner is protocol]:
            del self._transactions[transaction_id]

    def mapping_counts(self) -> tuple[int, int]:
        """(ufrags, addresses) currently routed: both return to zero when everyone has left."""
        return len(self._by_ufrag), len(self._by_addr)

    def _bind_address(self, addr: Address, protocol: SharedSocketStunProtocol) -> str | None:
        """Route ``addr`` to ``protocol``, whose peer has just authenticated from there; or the reason it may
        not (see ADDRESS_HOLD_SECONDS and MAX_ADDRESSES_PER_CONNECTION)."""
        now = time.monotonic()
        current = self._by_addr.get(addr)
        if current is not None and current is not protocol:
            if now - current.addresses.get(addr, 0.0) < ADDRESS_HOLD_SECONDS:
                return "stun_address_taken"
            current.addresses.pop(addr, None)
        addresses = protocol.addresses
        if addr not in addresses and len(addresses) >= MAX_ADDRESSES_PER_CONNECTION:
            stale = min(addresses, key=addresses.__getitem__)
            if now - addresses[stale] < ADDRESS_HOLD_SECONDS:
                return "stun_address_limit"
            del addresses[stale]
            if self._by_addr.get(stale) is protocol:
                del self._by_addr[stale]
        addresses[addr] = now
        self._by_addr[addr] = protocol
        return None

    # Sending (everything but forwarded media, whose addresses come from real datagrams).

    def send(self, data: bytes, addr: Address) -> None:
        """Send ``data`` unless ``addr`` is something the socket cannot take (plain asyncio would close the
        socket on the OverflowError of a port over 65535, a host name would block on a DNS lookup)."""
        if not self._sendable(addr):
            self.drop("bad_destination")
            return
        if self._closed or self.transport.is_closing():
            return
        try:
            self.transport.sendto(data, addr)
        except Exception as exc:  # uvloop raises what asyncio would have closed the transport for
            self.drop("send_error", exc)

    def _sendable(self, addr: object) -> bool:
        if not isinstance(addr, tuple) or len(addr) != 2:
            return False
        host, port = addr
        if type(port) is not int or not 0 < port < 65536 or type(host) is not str:
            return False
        try:
            socket.inet_pton(self._family, host)
        except (OSError, ValueError):  # not an address literal of the socket's family; ValueError: a NUL
            return False
        return True

    # Datagram handling.

    def drop(self, reason: str, exc: BaseException | None = None) -> None:
        """Count a datagram that went no further; log an exception once a minute per reason."""
        self.dropped[reason] += 1
        if exc is None:
            return
        now = time.monotonic()
        if now - self._logged_at.get(reason, -DROP_LOG_INTERVAL_SECONDS) >= DROP_LOG_INTERVAL_SECONDS:
            self._logged_at[reason] = now
            logger.warning(
                "shared UDP socket: dropped a datagram (%s): %r; counted in ghosttalk_udp_datagrams_dropped_total, "
                "logged again in a minute at the earliest",
                reason,
                exc,
                # A hostile datagram is summed up by its exception; only our own bug deserves the traceback.
                exc_info=exc if reason == "error" else None,
            )

    def datagram_received(self, data: bytes, addr: Address) -> None:
        try:
            protocol = self._by_addr.get(addr)
            if len(data) < MIN_DATAGRAM:
                self.dropped["short"] += 1
                return
            first = data[0]
            if 127 < first < 192:  # RTP and RTCP: the hot path
                if protocol is None:
                    self.dropped["unknown_source"] += 1
                    return
                handler = protocol.srtp_handler
                if handler is not None:
                    handler(data)
                else:
                    protocol.deliver_data(data)
            elif first < 4:
                self._stun_received(data, addr)
            elif 19 < first < 64:  # DTLS
                if protocol is None:
                    self.dropped["unknown_source"] += 1
                else:
                    protocol.deliver_data(data)
            else:
                self.dropped["unknown_kind"] += 1
        except Exception as exc:  # a bug, or a datagram nobody foresaw: it must not reach asyncio's handler
            self.drop("error", exc)

    def _stun_received(self, data: bytes, addr: Address) -> None:
        try:
            message = stun.parse_message(data)
        except Exception as exc:  # aioice raises ValueError, struct.error, UnicodeDecodeError and more
            self.drop("stun_malformed", exc)
            return
        kind = message.message_class
        if kind == stun.Class.REQUEST:
            username = message.attributes.get("USERNAME")
            ours, _, theirs = username.partition(":") if isinstance(username, str) else ("", "", "")
            owner = self._by_ufrag.get(ours)
            # No answer either way: aioice would answer 400 or 401, telling a live ufrag from a dead one.
            if owner is None:
                self.dropped["stun_unknown_ufrag"] += 1
            elif not (message.check_message_integrity(owner.password) and owner.expects_username(theirs)):
                self.dropped["stun_unauthenticated"] += 1
            elif refused := self._bind_address(addr, owner):
                self.dropped[refused] += 1
            else:
                owner.handle_stun(message, addr)
        elif kind == stun.Class.RESPONSE or kind == stun.Class.ERROR:
            expected = self._transactions.get(message.transaction_id)
            if expected is None or expected[0] != addr:
                self.dropped["stun_unexpected_response"] += 1
            else:
                expected[1].handle_stun(message, addr)
        else:
            self.dropped["stun_indication"] += 1

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (a peer went away) surface here; ICE consent and heartbeats handle the peer.
        logger.debug("shared UDP socket: %s", exc)
