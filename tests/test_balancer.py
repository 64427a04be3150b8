"""The test load balancer (tests/support/balancer.py) against two tiny TCP servers: round robin, refused
backends skipped, WebSocket upgrades pinned to chosen backends, and closes passed through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from ghosttalk.benchmark.server import free_port
from tests.support.balancer import Balancer
from tests.support.eventually import eventually

WS_REQUEST = b"GET /ws?room=r HTTP/1.1\r\nHost: x\r\n\r\n"
PLAIN_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@dataclass(slots=True)
class TagServer:
    """Answers every chunk with ``<tag>:<chunk>``, so a client can tell which backend it reached."""

    tag: bytes
    server: asyncio.Server | None = None
    eofs: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> TagServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        while chunk := await reader.read(65536):
            writer.write(self.tag + b":" + chunk)
            await writer.drain()
        self.eofs += 1
        writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


@pytest.fixture
async def backends() -> AsyncIterator[tuple[TagServer, TagServer]]:
    one, two = await TagServer(b"one").start(), await TagServer(b"two").start()
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


async def ask(balancer: Balancer, request: bytes) -> bytes:
    """One connection through the balancer: send, read the tagged echo, close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()


def tag(answer: bytes) -> bytes:
    return answer.split(b":", 1)[0]


async def test_round_robin_and_byte_piping(backends: tuple[TagServer, TagServer]) -> None:
    one, two = backends
    with Balancer([one.port, two.port]) as balancer:
        answers = [await ask(balancer, PLAIN_REQUEST) for _ in range(4)]
        assert [tag(answer) for answer in answers] == [b"one", b"two", b"one", b"two"]
        assert answers[0] == b"one:" + PLAIN_REQUEST
        assert balancer.connections == {one.port: 2, two.port: 2}
        assert balancer.url == f"http://127.0.0.1:{balancer.port}"


async def test_refused_backend_is_skipped(backends: tuple[TagServer, TagServer]) -> None:
    one, _ = backends
    dead = free_port()
    with Balancer([dead, one.port, dead]) as balancer:
        assert [tag(await ask(balancer, PLAIN_REQUEST)) for _ in range(3)] == [b"one"] * 3
        assert balancer.connections == {one.port: 3}


async def test_websocket_upgrades_follow_the_route(backends: tuple[TagServer, TagServer]) -> None:
    one, two = backends
    dead = free_port()
    with Balancer([one.port, two.port]) as balancer:
        balancer.route_websockets([two.port])
        assert [tag(await ask(balancer, WS_REQUEST)) for _ in range(3)] == [b"two"] * 3
        assert balancer.websockets == {two.port: 3}
        # Other requests still go round robin.
        assert {tag(await ask(balancer, PLAIN_REQUEST)) for _ in range(2)} == {b"one", b"two"}
        # A dead first choice falls through to the next one in the route.
        balancer.route_websockets([dead, one.port, two.port])
        assert tag(await ask(balancer, WS_REQUEST)) == b"one"
        balancer.route_websockets([])
        assert {tag(await ask(balancer, WS_REQUEST)) for _ in range(2)} == {b"one", b"two"}


async def test_closes_pass_through_both_ways(backends: tuple[TagServer, TagServer]) -> None:
    one, _ = backends
    with Balancer([one.port]) as balancer:
        # The client hangs up: the backend sees the end of its stream.
        await ask(balancer, PLAIN_REQUEST)
        await eventually(lambda: one.eofs, 5, what="backend saw the client's close", until=lambda n: n == 1)
        # The backend goes away: the client sees the end of its stream.
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
        writer.write(PLAIN_REQUEST)
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        for backend_writer in one.writers:
            backend_writer.close()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_no_live_backend_closes_the_client() -> None:
    with Balancer([free_port()]) as balancer:
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
        writer.write(PLAIN_REQUEST)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert balancer.connections == {}
