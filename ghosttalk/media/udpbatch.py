"""Many datagrams per system call on one IPv4 UDP socket: Linux's ``sendmmsg`` and ``recvmmsg``.

Reached through cffi's out-of-line ABI mode (libc opened at run time, declarations in
:mod:`ghosttalk.media.mmsg_declarations`: no compiler at install time, no C parser at run time). Every array the
kernel reads or fills (message headers, I/O vectors, addresses, packet buffers) is allocated once per batch,
so a datagram costs no cffi allocation: a packet is written, and SRTP-protected, in its slot's buffer, and
handed to the kernel with the others of its batch in one call.

:func:`load_libc` returns ``None`` wherever these calls are not to be had (not Linux, no cffi, a libc
without them): the shared socket then uses the event loop's own datagram transport, one datagram per call.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

try:
    # Declared out of line (ghosttalk.media.mmsg_declarations): no C parser is loaded at run time.
    from ghosttalk.media._mmsg_cffi import ffi as _DECLARED
except ImportError:  # pragma: no cover - cffi's backend comes with pylibsrtp
    _DECLARED = None

Address = tuple[str, int]
# libsrtp's in-place protect: (its session context, packet buffer, length cell) -> status; 0 is success.
ProtectFunction = Callable[[Any, Any, Any], int]

# Datagrams per sendmmsg/recvmmsg call. Sending, a batch is what one ingress packet makes (one per
# listener); it goes out when full too. Receiving, a wake-up reads until fewer than this arrive.
SEND_CAPACITY = 64
RECEIVE_CAPACITY = 32
# Packet buffer of a send slot: the largest RTP packet pylibsrtp handles, trailer included.
SEND_BUFFER_BYTES = 1500
SRTP_TRAILER_BYTES = 144
# Receive buffers: more than any datagram a browser or aiortc sends (DTLS flights are fragmented to the
# path MTU); a longer one arrives truncated, is flagged by the kernel and dropped by the caller.
RECEIVE_BUFFER_BYTES = 4096
# Source addresses seen lately, kept as the tuples the routing tables hold; cleared when it grows past this
# (spoofed sources cost a clear now and then, never memory).
ADDRESS_CACHE_SIZE = 4096

_SOCKADDR_IN_BYTES = 16
_MSG_TRUNC = 0x20  # <sys/socket.h> on Linux
_RETRY_LATER = frozenset({errno.EAGAIN, errno.EWOULDBLOCK})


class LibC:
    """The two calls and the cffi instance that declares their structures."""

    def __init__(self, ffi: Any) -> None:
        self.ffi = ffi
        lib = ffi.dlopen(None)
        # Looked up here, so that a libc without them fails now rather than on the first packet.
        self.sendmmsg: Callable[[int, Any, int, int], int] = lib.sendmmsg
        self.recvmmsg: Callable[[int, Any, int, int, Any], int] = lib.recvmmsg


def load_libc() -> LibC | None:
    """libc's sendmmsg and recvmmsg, or None where they are not to be had."""
    if not sys.platform.startswith("linux"):
        return None
    if _DECLARED is None:
        return None
    try:
        return LibC(_DECLARED)
    except (OSError, AttributeError):  # no libc to open, or one without the calls
        return None


def sockaddr_bytes(addr: Address) -> bytes | None:
    """``addr`` as a ``struct sockaddr_in``, or None if it is not an IPv4 literal and a port."""
    host, port = addr
    if type(port) is not int or not 0 <= port < 65536:
        return None
    try:
        packed = socket.inet_pton(socket.AF_INET, host)
    except (OSError, ValueError, TypeError):
        return None
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + packed + bytes(8)


@dataclass(slots=True)
class Destination:
    """One receiver as its batch sends to it."""

    batch: SendBatch
    protect: ProtectFunction
    context: Any
    # struct sockaddr_in, owned here: message headers point at it.
    sockaddr: Any
    addr: Address


class SendBatch:
    """Datagrams waiting to go to the kernel in one ``sendmmsg``.

    A datagram goes out with its batch when the batch is flushed: by the shared socket once it has handled
    the ingress packet that made it (``holding`` is set while the socket reads), when the batch is full, and
    otherwise on the next loop turn. ``spill`` takes the datagrams the kernel would not take yet (EAGAIN:
    its buffer is full), to be written when the socket drains; ``refused`` hears of each one it will never
    take (an error for that destination), and the rest of the batch still goes.
    """

    __slots__ = (
        "_addrs",
        "_fd",
        "_ffi",
        "_flush_later",
        "_messages",
        "_scheduled",
        "_sendmmsg",
        "_slots",
        "blocked",
        "capacity",
        "count",
        "holding",
        "refused",
        "spill",
    )

    def __init__(
        self,
        libc: LibC,
        fd: int,
        *,
        spill: Callable[[bytes, Address], None],
        refused: Callable[[OSError], None],
        call_soon: Callable[[Callable[[], None]], object],
        capacity: int = SEND_CAPACITY,
    ) -> None:
        ffi = self._ffi = libc.ffi
        self._sendmmsg = libc.sendmmsg
        self._fd = fd
        self.capacity = capacity
        self.spill = spill
        self.refused = refused
        self._flush_later = call_soon
        self._messages = ffi.new("struct mmsghdr[]", capacity)
        iovecs = ffi.new("struct iovec[]", capacity)
        # Per slot: packet buffer, its Python view, libsrtp's length cell, the I/O vector and message header
        # (element handles made once: indexing a cffi array on the hot path would allocate one each time).
        self._slots: list[tuple[Any, Any, Any, Any, Any]] = []
        for index in range(capacity):
            buffer = ffi.new("char[]", SEND_BUFFER_BYTES)
            iovec = iovecs[index]
            iovec.iov_base = buffer
            header = self._messages[index].msg_hdr
            header.msg_iov = iovecs + index
            header.msg_iovlen = 1
            header.msg_namelen = _SOCKADDR_IN_BYTES
            self._slots.append((buffer, ffi.buffer(buffer), ffi.new("int *"), iovec, header))
        # The arrays are referenced from each other only through raw pointers: keep them alive here.
        self._slots.append((iovecs, None, None, None, None))
        self._addrs: list[Address] = [("", 0)] * capacity
        self.count = 0
        self.holding = False
        # Set while spilled datagrams wait: later ones queue behind them rather than overtake them.
        self.blocked = False
        self._scheduled = False

    def destination(self, addr: Address, protect: ProtectFunction, context: Any) -> Destination | None:
        """A receiver's address in the kernel's form and its SRTP protect (``protect(context, buffer,
        length)``, libsrtp's in-place call), made once per receiver; None if ``addr`` is not IPv4."""
        raw = sockaddr_bytes(addr)
        if raw is None:
            return None
        return Destination(self, protect, context, self._ffi.new("char[]", raw), addr)

    def add(self, packet: bytes, destination: Destination) -> int:
        """Protect ``packet`` into the next slot, bound for ``destination``; the protected size, or -1 if SRTP
        failed (nothing is queued then)."""
        index = self.count
        size = len(packet)
        if size > SEND_BUFFER_BYTES - SRTP_TRAILER_BYTES:
            return -1
        buffer, view, length, iovec, header = self._slots[index]
        view[0:size] = packet
        length[0] = size
        if destination.protect(destination.context, buffer, length) != 0:
            return -1
        protected: int = length[0]
        iovec.iov_len = protected
        header.msg_name = destination.sockaddr
        self._addrs[index] = destination.addr
        self.count = index + 1
        if index + 1 == self.capacity:
            self.flush()
        elif not (self.holding or self._scheduled):
            self._scheduled = True
            self._flush_later(self._flush_soon)
        return protected

    def _flush_soon(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Hand every waiting datagram to the kernel."""
        count = self.count
        if not count:
            return
        self.count = 0
        if self.blocked:  # earlier datagrams still wait for the kernel: these queue behind them
            self._spill(0, count)
            return
        start = 0
        while start < count:
            sent = self._sendmmsg(self._fd, self._messages + start, count - start, 0)
            if sent > 0:
                start += sent
                continue
            code = self._ffi.errno if sent < 0 else errno.EIO
            if code == errno.EINTR:
                continue
            if code in _RETRY_LATER:
                self._spill(start, count)
                return
            # The kernel stops a batch at its first refusal and reports it only when that datagram comes first.
            self.refused(OSError(code, os.strerror(code)))
            start += 1

    def _spill(self, start: int, end: int) -> None:
        for index in range(start, end):
            _, view, _, iovec, _ = self._slots[index]
            self.spill(view[0 : iovec.iov_len], self._addrs[index])


class ReceiveBatch:
    """Up to ``capacity`` datagrams per ``recvmmsg`` call, as (data, source address) pairs."""

    __slots__ = ("_addresses", "_ffi", "_messages", "_recvmmsg", "_slots", "_timeout", "capacity", "fd")

    def __init__(self, libc: LibC, fd: int, capacity: int = RECEIVE_CAPACITY) -> None:
        ffi = self._ffi = libc.ffi
        self._recvmmsg = libc.recvmmsg
        self.fd = fd
        self.capacity = capacity
        self._timeout = ffi.NULL
        self._messages = ffi.new("struct mmsghdr[]", capacity)
        iovecs = ffi.new("struct iovec[]", capacity)
        # Per slot: views of the packet buffer and of the source address, the message and its header (handles
        # made once), and what owns the memory they point at.
        self._slots: list[tuple[Any, Any, Any, Any, Any]] = []
        for index in range(capacity):
            buffer = ffi.new("char[]", RECEIVE_BUFFER_BYTES)
            name = ffi.new("char[]", _SOCKADDR_IN_BYTES)
            iovecs[index].iov_base = buffer
            iovecs[index].iov_len = RECEIVE_BUFFER_BYTES
            message = self._messages[index]
            header = message.msg_hdr
            header.msg_iov = iovecs + index
            header.msg_iovlen = 1
            header.msg_name = name
            header.msg_namelen = _SOCKADDR_IN_BYTES
            self._slots.append((ffi.buffer(buffer), ffi.buffer(name), message, header, (buffer, name)))
        self._slots.append((None, None, None, None, iovecs))
        self._addresses: dict[bytes, Address] = {}

    def receive(self) -> tuple[list[tuple[bytes, Address]], int, OSError | None]:
        """What is waiting, without blocking: (datagrams, how many arrived truncated and were left out, the
        socket's error if the call failed). Fewer than ``capacity`` datagrams means the socket is drained."""
        received = self._recvmmsg(self.fd, self._messages, self.capacity, 0, self._timeout)
        if received < 0:
            code = self._ffi.errno
            if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return [], 0, None
            return [], 0, OSError(code, os.strerror(code))
        datagrams = []
        truncated = 0
        addresses = self._addresses
        for index in range(received):
            view, name, message, header, _ = self._slots[index]
            header.msg_namelen = _SOCKADDR_IN_BYTES  # the kernel wrote the source's length there
            if header.msg_flags & _MSG_TRUNC:
                truncated += 1
                continue
            key = name[2:8]  # port and IPv4 address, network order
            addr = addresses.get(key)
            if addr is None:
                if len(addresses) >= ADDRESS_CACHE_SIZE:
                    addresses.clear()
                addr = addresses[key] = (socket.inet_ntoa(key[2:]), key[0] << 8 | key[1])
            datagrams.append((view[0 : message.msg_len], addr))
        return datagrams, truncated, None
