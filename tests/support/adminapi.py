"""The admin API and signaling seen by a test: admin requests with or without the key, signaling-only joins
that may claim any address through the trusted proxy (loopback), and the server's event log file."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from ghosttalk.client.participant import Client
from tests.support.eventually import eventually
from tests.support.server import TEST_ADMIN_KEY, ServerProcess

KEY = TEST_ADMIN_KEY


async def admin(
    http: aiohttp.ClientSession,
    server: ServerProcess,
    method: str = "GET",
    key: str | None = KEY,
    **params: str,
) -> tuple[int, Any]:
    headers = {"X-Admin-Key": key} if key is not None else {}
    async with http.request(method, f"{server.url}/admin", params=params, headers=headers) as response:
        body = await response.read()
        if response.content_type == "application/json":
            return response.status, json.loads(body)
        return response.status, body.decode()


async def raw_join(
    http: aiohttp.ClientSession, server: ServerProcess, room: str, name: str, forwarded_for: str | None = None
) -> aiohttp.ClientWebSocketResponse:
    """A signaling-only participant; through the default trusted proxy (loopback) it can claim any address."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    ws = await http.ws_connect(server.ws_url(room, name), headers=headers)
    first = await ws.receive_json(timeout=5)
    assert first["type"] == "room_state"
    return ws


async def join_status(
    http: aiohttp.ClientSession, server: ServerProcess, room: str, forwarded_for: str | None = None
) -> int:
    """The HTTP status a join gets: 101 when the upgrade succeeds."""
    try:
        ws = await raw_join(http, server, room, "probe", forwarded_for)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


async def closed(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """Read until the server closes the socket (within 5 s); returns the messages seen on the way."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        async for frame in ws:
            if frame.type == aiohttp.WSMsgType.TEXT:
                seen.append(json.loads(frame.data))
    return seen


async def settle_users(http: aiohttp.ClientSession, server: ServerProcess, users: int) -> None:
    """Wait (up to 5 s) until the server has processed closes and counts ``users`` people."""

    async def counted() -> int:
        return int((await admin(http, server, action="stats"))[1]["users"])

    await eventually(counted, 5, what=f"the server counts {users} users", until=lambda n: n == users)


def logged(server: ServerProcess, event: str) -> list[dict[str, Any]]:
    path = server.data_dir / "server.log"
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == event]


def is_closed(client: Client) -> bool:
    return client.closed_reason is not None
