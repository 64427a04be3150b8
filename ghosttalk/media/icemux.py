"""One UDP socket for every peer's ICE, DTLS and SRTP.

Datagrams are routed to the right peer's aioice protocol object:

* a STUN binding request by its USERNAME attribute (``<our ufrag>:<their ufrag>``), which also claims the
  source address for that peer (aioice checks the message integrity, so a forged request gets nowhere);
* anything else by its source address, learnt from those requests and from the checks we send.

SRTP and SRTCP from a peer whose DTLS handshake is done go straight to its media handler: no queue, no task
switch. Mappings are removed when the peer's ICE connection closes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from typing import cast

import ifaddr

from ghosttalk.media.aiortc_adapter.ice import Address, SharedSocketStunProtocol

logger = logging.getLogger(__name__)

_STUN_BINDING_REQUEST = b"\x00\x01"
_STUN_MAGIC_COOKIE = b"\x21\x12\xa4\x42"
_STUN_USERNAME = 0x0006
_STUN_HEADER = 20
# Kernel buffers sized for bursts of many peers' packets arriving between two event-loop turns.
_SOCKET_BUFFER = 4 * 1024 * 1024


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


def stun_username(data: bytes) -> str | None:
    """The USERNAME of a STUN binding request, without a full parse (this runs for every check)."""
    if len(data) < _STUN_HEADER or data[0:2] != _STUN_BINDING_REQUEST or data[4:8] != _STUN_MAGIC_COOKIE:
        return None
    end = min(len(data), _STUN_HEADER + struct.unpack_from("!H", data, 2)[0])
    offset = _STUN_HEADER
    while offset + 4 <= end:
        kind, length = struct.unpack_from("!HH", data, offset)
        if offset + 4 + length > end:
            return None
        if kind == _STUN_USERNAME:
            try:
                return data[offset + 4 : offset + 4 + length].decode()
            except UnicodeDecodeError:
                return None
        offset += 4 + length + (-length % 4)
    return None


class IceMux(asyncio.DatagramProtocol):
    """The shared socket and its routing tables."""

    def __init__(self, advertised: tuple[str, ...]) -> None:
        self.advertised = advertised
        self.transport: asyncio.DatagramTransport
        self.port = 0
        self._by_ufrag: dict[str, SharedSocketStunProtocol] = {}
        self._by_addr: dict[Address, SharedSocketStunProtocol] = {}
        self.dropped_unknown = 0

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
        await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self.port = self.transport.get_extra_info("sockname")[1]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport quacks like asyncio's without subclassing it.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def close(self) -> None:
        self.transport.close()

    # Routing tables, driven by SharedSocketStunProtocol.

    def register(self, ufrag: str, protocol: SharedSocketStunProtocol) -> None:
        # A connection advertising several addresses registers several protocols; the first one answers.
        self._by_ufrag.setdefault(ufrag, protocol)

    def claim(self, addr: Address, protocol: SharedSocketStunProtocol) -> None:
        self._by_addr.setdefault(addr, protocol)

    def release(self, protocol: SharedSocketStunProtocol) -> None:
        for ufrag in [key for key, owner in self._by_ufrag.items() if owner is protocol]:
            del self._by_ufrag[ufrag]
        for addr in [key for key, owner in self._by_addr.items() if owner is protocol]:
            del self._by_addr[addr]

    def mapping_counts(self) -> tuple[int, int]:
        """(ufrags, addresses) currently routed: both return to zero when everyone has left."""
        return len(self._by_ufrag), len(self._by_addr)

    # Datagram handling.

    def datagram_received(self, data: bytes, addr: Address) -> None:
        protocol = self._by_addr.get(addr)
        first = data[0] if data else 0
        if protocol is not None and 127 < first < 192:
            handler = protocol.srtp_handler
            if handler is not None:
                handler(data)
            else:
                protocol.deliver_data(data)
            return
        if first < 2:
            username = stun_username(data)
            if username is not None:
                owner = self._by_ufrag.get(username.split(":", 1)[0])
                if owner is not None:
                    self._by_addr[addr] = owner
                    protocol = owner
        if protocol is None:
            self.dropped_unknown += 1
            return
        if first < 4:
            protocol.datagram_received(data, addr)
        else:
            protocol.deliver_data(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (a peer went away) surface here; ICE consent and heartbeats handle the peer.
        logger.debug("shared UDP socket: %s", exc)
