"""A loopback TCP load balancer for cluster tests, in its own thread so sync (Playwright) and async tests can
both use it.

Each new client connection goes to the next backend in round-robin order; a backend that refuses the connection
is skipped (the way a real balancer's health check would), so a page that reconnects after its node died lands
on a live one. A test can pin WebSocket upgrades (first request line ``GET /ws``) to an ordered list of backends
with ``route_websockets`` to put two pages of one room on different nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Sequence
from types import TracebackType

# Enough to hold a request line; the balancer reads no further before choosing a backend.
PEEK_BYTES = 4096
# A client that sends nothing within this long is routed as plain HTTP (it may be waiting for the server).
PEEK_TIMEOUT = 2.0
CONNECT_TIMEOUT = 2.0
CHUNK = 65536


class Balancer:
    """``Balancer([port, ...])`` listens on a free loopback port at once; ``stop()`` closes everything."""

    def __init__(self, backends: Sequence[int]) -> None:
        if not backends:
            raise ValueError("a balancer needs at least one backend")
        self.backends = list(backends)
        # Connections piped to each backend port since start (or the last reset_counts()), and the WebSocket
        # upgrades among them: where a page's signaling landed, whatever HTTP requests went round robin.
        self.connections: Counter[int] = Counter()
        self.websockets: Counter[int] = Counter()
        self._next = 0
        self._ws_route: list[int] = []
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-balancer", daemon=True)
        self._thread.start()
        self._server: asyncio.Server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route_websockets(self, ports: Sequence[int]) -> None:
        """From now on, WebSocket upgrades try ``ports`` in this order (then the rest, round robin) instead of
        plain round robin. An empty list restores round robin."""
        with self._lock:
            self._ws_route = list(ports)

    def reset_counts(self) -> None:
        with self._lock:
            self.connections.clear()
            self.websockets.clear()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Tracked so that stop() can cancel live pipes: a half-open pipe would keep a dead test's sockets open.
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # Only stop() cancels these; the streams module logs a cancelled connection task as an error, so the
        # task ends normally instead.
        with contextlib.suppress(asyncio.CancelledError):
            await self._handle(reader, writer)

    def _candidates(self, websocket: bool) -> list[int]:
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.backends)
            order = self.backends[start:] + self.backends[:start]
            if websocket and self._ws_route:
                order = self._ws_route + [port for port in order if port not in self._ws_route]
        return order

    async def _connect(self, first_bytes: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        websocket = first_bytes.startswith(b"GET /ws")
        for port in self._candidates(websocket):
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), CONNECT_TIMEOUT)
            except (OSError, TimeoutError):
                continue
            with self._lock:
                self.connections[port] += 1
                if websocket:
                    self.websockets[port] += 1
            return reader, writer
        return None

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            try:
                first = await asyncio.wait_for(client_reader.read(PEEK_BYTES), PEEK_TIMEOUT)
            except TimeoutError:
                first = b""
            except OSError:
                return
            backend = await self._connect(first)
            if backend is None:
                return
            server_reader, server_writer = backend
            try:
                if first:
                    server_writer.write(first)
                await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
            finally:
                server_writer.close()
        finally:
            client_writer.close()

    def stop(self) -> None:
        if not self._loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def __enter__(self) -> Balancer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes until EOF or an error, then close ``writer`` so the other side learns at once (a killed
    node must look like a dropped connection to the page, not a silent one)."""
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
