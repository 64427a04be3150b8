"""Signaling between a page whose WebSocket landed on one node and the room that lives on another.

On the node that holds the WebSocket, a :class:`BridgedSession` passes every frame the page sends to the
room's node and every frame the room's node answers back to the page, through the bus (bus.py), in order. On
the room's node, a :class:`RemoteSocket` looks to the signaling session like the page's WebSocket, so that the
very same session code runs for a bridged page as for a local one: the same validation, rates and limits, and
the same room. The page's media never takes this path: the answer the room's node writes offers its own UDP
port, and the browser sends its audio straight there.

Messages (all JSON objects, ``k`` says which):

* ``open`` (socket node -> room node): a new session, with the room, name, client address and key check;
* ``in`` (socket node -> room node): a frame from the page, ``t`` text (with ``d``) or binary (refused there);
* ``out`` (room node -> socket node): a frame for the page;
* ``end`` (either way): the page went away, or the room's node closed the session (``code``, ``reason``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from ghosttalk.cluster.bus import Bus, Message
from ghosttalk.contract import TOO_MANY_MESSAGES, CloseCode, ErrorMessage, wire
from ghosttalk.ops.limits import TokenBucket

# Frames for a page that has not read them yet: as many as a local session's outbox holds.
INBOUND_FRAMES = 256


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """What the room's node needs to run a bridged session."""

    origin: str  # the node that holds the WebSocket
    session: str
    room: str
    name: str
    ip: str
    key_check: str | None

    def message(self) -> Message:
        return {"k": "open", "s": self.session, "room": self.room, "name": self.name, "ip": self.ip,
                "key_check": self.key_check}

    @classmethod
    def parse(cls, message: Message) -> OpenRequest | None:
        fields = (message.get("from"), message.get("s"), message.get("room"), message.get("name"), message.get("ip"))
        key_check = message.get("key_check")
        if not all(isinstance(value, str) for value in fields) or not isinstance(key_check, str | None):
            return None
        origin, session, room, name, ip = (str(value) for value in fields)
        return cls(origin, session, room, name, ip, key_check)


class BridgedSession:
    """A page's WebSocket on this node, for a room on node ``remote``."""

    def __init__(self, ws: web.WebSocketResponse, bus: Bus, remote: str, session: str, messages: TokenBucket) -> None:
        self.ws = ws
        self.remote = remote
        self.session = session
        self._bus = bus
        # The same message rate as on the room's node, applied here too: a flood ends here, not in Redis.
        self._messages = messages
        self._inbound: asyncio.Queue[Message] = asyncio.Queue(INBOUND_FRAMES)
        self._ended: tuple[int, str] | None = None
        self._remote_ended = False
        self._stop = asyncio.Event()

    def receive(self, message: Message) -> None:
        """An ``out`` or ``end`` from the room's node."""
        try:
            self._inbound.put_nowait(message)
        except asyncio.QueueFull:
            self.end(CloseCode.POLICY, "too slow reading messages")

    def end(self, code: int, reason: str) -> None:
        """Close the page's socket with ``code`` (the room's node went away: 1001, and the page rejoins)."""
        if self._ended is None:
            self._ended = (code, reason)
            self._stop.set()

    async def run(self, request: OpenRequest) -> None:
        self._bus.send(self.remote, request.message())
        reader = asyncio.create_task(self._read())
        writer = asyncio.create_task(self._write())
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({reader, writer, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, writer, stop):
                task.cancel()
            await asyncio.gather(reader, writer, stop, return_exceptions=True)
        if not self._remote_ended:
            # The page went away, broke the rate, or the room's node is gone: the room's node (if it is still
            # there) takes them out of the room now rather than when their media times out.
            self._bus.send(self.remote, {"k": "end", "s": self.session})
        code, reason = self._ended or (WSCloseCode.OK, "left")
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.close(code=code, message=reason.encode()[:120])

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type == WSMsgType.ERROR:
                return
            if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            if not self._messages.take():
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.ws.send_str(orjson.dumps(wire(ErrorMessage(TOO_MANY_MESSAGES))).decode())
                self.end(CloseCode.POLICY, "limit exceeded: message_rate")
                return
            if frame.type == WSMsgType.TEXT:
                self._bus.send(self.remote, {"k": "in", "s": self.session, "t": "text", "d": frame.data})
            else:
                self._bus.send(self.remote, {"k": "in", "s": self.session, "t": "binary"})

    async def _write(self) -> None:
        while True:
            message = await self._inbound.get()
            if message.get("k") == "end":
                self._remote_ended = True
                code, reason = message.get("code"), message.get("reason")
                self.end(code if isinstance(code, int) else CloseCode.GOING_AWAY,
                         reason if isinstance(reason, str) else "the room's server ended the session")
                return
            data = message.get("d")
            if isinstance(data, str):
                try:
                    await self.ws.send_str(data)
                except (ConnectionError, RuntimeError):
                    return


class RemoteSocket:
    """A bridged page, as the room's node's signaling session sees it: frames come from the bus, frames and the
    close go back through it. Stands in for ``web.WebSocketResponse`` in ``SignalingSession``."""

    def __init__(self, send: Callable[[Message], Any]) -> None:
        self._send = send
        self._frames: asyncio.Queue[WSMessage | None] = asyncio.Queue()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def feed(self, message: Message) -> None:
        """An ``in`` or ``end`` from the page's node. Frames beyond the session's own rate are refused by the
        session itself (it reads them as fast as they come), so this queue holds at most a burst."""
        if message.get("k") == "end":
            self._frames.put_nowait(None)
        elif message.get("t") == "text" and isinstance(message.get("d"), str):
            self._frames.put_nowait(WSMessage(WSMsgType.TEXT, message["d"], None))
        else:
            self._frames.put_nowait(WSMessage(WSMsgType.BINARY, b"", None))

    def __aiter__(self) -> RemoteSocket:
        return self

    async def __anext__(self) -> WSMessage:
        if self._closed:
            raise StopAsyncIteration
        frame = await self._frames.get()
        if frame is None:
            self._closed = True
            raise StopAsyncIteration
        return frame

    async def send_str(self, data: str) -> None:
        if self._closed:
            raise ConnectionError("the bridged page has gone")
        self._send({"k": "out", "d": data})

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> bool:
        if self._closed:
            return False
        self._closed = True
        self._send({"k": "end", "code": int(code), "reason": message.decode(errors="replace")})
        self._frames.put_nowait(None)
        return True
