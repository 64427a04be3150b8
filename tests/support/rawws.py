"""A WebSocket client that speaks RFC 6455 by hand, so that a test can send what no well-behaved library would
(bad UTF-8 in a text frame, reserved bits, fragments, an abrupt TCP reset) and see exactly how the server closes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from tests.support.server import ServerProcess

# RFC 6455 opcodes.
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HandshakeRefused(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body.strip()}")
        self.status = status
        self.body = body


@dataclass
class RawWebSocket:
    """One client connection; frames from the server are collected by a reader task into ``messages``."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    closed_at: float | None = None  # time.monotonic() when the server's close (or EOF) arrived
    frozen: bool = False
    _task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def open(
        cls, host: str, port: int, room: str, name: str, headers: Mapping[str, str] | None = None, timeout: float = 10
    ) -> RawWebSocket:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET /ws?{urlencode({'room': room, 'name': name})} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            status = int(head.split(b" ", 2)[1])
            if status != 101:
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                body = await asyncio.wait_for(reader.readexactly(int(length.group(1))), timeout) if length else b""
                raise HandshakeRefused(status, body.decode(errors="replace"))
            accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
            assert f"Sec-WebSocket-Accept: {accept}".lower().encode() in head.lower(), head
        except BaseException:
            writer.transport.abort()
            raise
        ws = cls(reader, writer)
        ws._task = asyncio.create_task(ws._read())
        return ws

    @classmethod
    async def join(cls, server: ServerProcess, room: str, name: str, **kwargs: Any) -> RawWebSocket:
        return await cls.open("127.0.0.1", server.port, room, name, **kwargs)

    # Writing.

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> None:
        head = bytearray([(0x80 if fin else 0) | (rsv & 7) << 4 | opcode])
        size = len(payload)
        if size < 126:
            head.append(0x80 | size)
        elif size < 1 << 16:
            head += bytes([0x80 | 126]) + size.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        # XOR with the repeated mask as one big integer: fast enough for 100 KiB frames.
        stream = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")
        if not self.writer.is_closing():
            self.writer.write(bytes(head) + mask + masked)

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode())

    def send_json(self, message: object) -> None:
        self.send_text(json.dumps(message))

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def close(self, code: int = 1000, timeout: float = 5.0) -> None:
        """A clean close: our close frame, then wait for the server's."""
        self.send_frame(OP_CLOSE, code.to_bytes(2, "big"))
        with contextlib.suppress(TimeoutError):
            await self.wait_closed(timeout)
        self.abort()

    def freeze(self) -> None:
        """Stop reading and answering, with the connection left open (a frozen process, a dead network)."""
        self.frozen = True
        if self._task is not None:
            self._task.cancel()

    def abort(self) -> None:
        """Vanish: the TCP connection is reset, no close frame (a killed process, a dropped network)."""
        self.writer.transport.abort()
        if self._task is not None:
            self._task.cancel()

    # Reading.

    async def _read(self) -> None:
        try:
            while True:
                first, second = await self.reader.readexactly(2)
                size = second & 0x7F
                if size == 126:
                    size = int.from_bytes(await self.reader.readexactly(2), "big")
                elif size == 127:
                    size = int.from_bytes(await self.reader.readexactly(8), "big")
                payload = await self.reader.readexactly(size)
                opcode = first & 0x0F
                if opcode == OP_TEXT:
                    self.messages.append(json.loads(payload))
                elif opcode == OP_CLOSE:
                    self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    self.close_reason = payload[2:].decode(errors="replace")
                    self.send_frame(OP_CLOSE, payload[:2])  # the closing handshake's answer
                    return
                elif opcode == OP_PING:
                    self.send_frame(OP_PONG, payload)
                self._changed.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close_code = self.close_code or 1006
        finally:
            if not self.frozen:
                self.closed_at = time.monotonic()
            self._changed.set()

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met in {timeout} s; got {self.messages[-5:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    async def wait_count(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` messages have arrived or the socket is closed."""
        await self.wait_for(lambda: len(self.messages) >= count or self.closed, timeout)

    async def wait_closed(self, timeout: float = 10.0) -> None:
        await self.wait_for(lambda: self.closed, timeout)

    async def wait_message(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        await self.wait_for(lambda: bool(self.of_type(kind)) or self.closed, timeout)
        found = self.of_type(kind)
        if not found:
            raise AssertionError(f"closed ({self.close_code} {self.close_reason!r}) before a {kind!r} message")
        return found[0]
