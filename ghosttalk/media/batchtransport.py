"""The shared UDP socket's datagram transport where ``sendmmsg``/``recvmmsg`` are available.

It behaves as the event loop's own datagram transport does for the shared socket's protocol
(``datagram_received``, ``error_received``, ``connection_lost``; ``sendto``, a write buffer while the
kernel's is full, ``close``) with two differences that are the reason it exists:

* a wake-up reads everything waiting with ``recvmmsg`` (one call for a burst, instead of one per datagram
  plus the one that finds the socket empty), and
* the media datagrams one ingress packet makes (one per listener) go to the kernel together in one
  ``sendmmsg`` once that packet is handled (:class:`~ghosttalk.media.udpbatch.SendBatch`).
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable

from ghosttalk.media.udpbatch import Address, LibC, ReceiveBatch, SendBatch

# recvmmsg calls per wake-up at most: a flood cannot keep the loop from its other work.
MAX_READS_PER_WAKEUP = 8


class BatchedDatagramTransport(asyncio.DatagramTransport):
    """The shared socket's transport where libc's batched calls are available (see the module's docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.DatagramProtocol,
        libc: LibC,
        *,
        truncated: Callable[[int], None],
        refused: Callable[[OSError], None],
    ) -> None:
        """``truncated(n)``: n datagrams too long for a receive buffer were left out; ``refused(error)``: the
        kernel refused a batched datagram's destination (the rest of the batch went)."""
        super().__init__(extra={"socket": sock, "sockname": sock.getsockname()})
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._truncated = truncated
        # Datagrams the kernel would not take yet, written when the socket is writable again.
        self._buffer: deque[tuple[bytes, Address]] = deque()
        self._buffer_size = 0
        self._closing = False
        self._closed = False
        self._receiver = ReceiveBatch(libc, self._fd)
        self.send_batch = SendBatch(libc, self._fd, spill=self._queue, refused=refused, call_soon=loop.call_soon)
        loop.add_reader(self._fd, self._read_ready)
        protocol.connection_made(self)

    # Receiving.

    def _read_ready(self) -> None:
        receive, protocol, batch = self._receiver.receive, self._protocol, self.send_batch
        batch.holding = True
        try:
            for _ in range(MAX_READS_PER_WAKEUP):
                datagrams, truncated, error = receive()
                if truncated:
                    self._truncated(truncated)
                if error is not None:
                    protocol.error_received(error)
                    return
                for data, addr in datagrams:
                    protocol.datagram_received(data, addr)
                    # Out as soon as this packet is handled: the listeners of a packet early in a burst do not
                    # wait for the rest of the burst.
                    if batch.count:
                        batch.flush()
                if len(datagrams) + truncated < self._receiver.capacity:
                    return
        finally:
            batch.holding = False
            batch.flush()

    # Sending.

    def sendto(self, data: bytes | bytearray | memoryview, addr: Address | None = None) -> None:  # type: ignore[override]
        """Send now, or queue behind earlier datagrams the kernel has not taken yet. An ``OSError`` for the
        destination goes to the protocol's ``error_received``; a destination the socket cannot parse raises
        (``TypeError``, ``OverflowError``...), as the loop's own transports do."""
        if not data or self._closing:
            return
        if addr is None:
            raise ValueError("the shared socket is not connected: a destination is required")
        if not self._buffer:
            try:
                self._sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                self._protocol.error_received(exc)
                return
        self._queue(bytes(data), addr)

    def _queue(self, data: bytes, addr: Address) -> None:
        if not self._buffer:
            self._loop.add_writer(self._fd, self._write_ready)
            self.send_batch.blocked = True
        self._buffer.append((data, addr))
        self._buffer_size += len(data)

    def _write_ready(self) -> None:
        buffer = self._buffer
        while buffer:
            data, addr = buffer[0]
            try:
                self._sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
            buffer.popleft()
            self._buffer_size -= len(data)
        self._loop.remove_writer(self._fd)
        self.send_batch.blocked = False
        if self._closing:
            self._finish_close()

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    # Closing.

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop reading; close the socket once the datagrams still queued have gone."""
        if self._closing:
            return
        self._closing = True
        self.send_batch.flush()
        self._loop.remove_reader(self._fd)
        if not self._buffer:
            self._finish_close()

    def abort(self) -> None:
        """Close now: what is still queued is dropped."""
        if self._buffer:
            self._loop.remove_writer(self._fd)
            self._buffer.clear()
            self._buffer_size = 0
            self.send_batch.blocked = False
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._fd)
        self._finish_close()

    def _finish_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._sock.close()
        self._loop.call_soon(self._protocol.connection_lost, None)
