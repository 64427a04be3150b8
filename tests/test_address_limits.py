"""Per-address limits on joins against a real server process: who a client is (X-Forwarded-For only from a
trusted proxy), connections per address and per IPv6 /64, and the join rate per address and per /64."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.support.adminapi import admin, closed, join_status, logged, raw_join, settle_users
from tests.support.server import ServerProcess


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(http: aiohttp.ClientSession, tmp_path: Path) -> None:
    # Only 10.0.0.0/8 is trusted, so the test (on loopback) is an ordinary client forging the header.
    server = ServerProcess(tmp_path / "data", extra_args=["--trusted-proxies", "10.0.0.0/8"]).start()
    try:
        ws = await raw_join(http, server, "forged", "forger", forwarded_for="203.0.113.66")
        assert [e["ip"] for e in logged(server, "USER_JOIN")] == ["127.0.0.1"]
        _, rooms = await admin(http, server, action="rooms")
        assert rooms["rooms"][0]["peers"][0]["ip"] == "127.0.0.1"
        # Banning the forged address affects nobody; banning the real one does.
        assert (await admin(http, server, "POST", action="ban", ip="203.0.113.66"))[1]["disconnected"] == 0
        assert await join_status(http, server, "forged", "203.0.113.66") == 101
        await settle_users(http, server, 1)
        assert (await admin(http, server, "POST", action="ban", ip="127.0.0.1"))[1]["disconnected"] == 1
        await closed(ws)
        assert await join_status(http, server, "forged", "203.0.113.99") == 403
    finally:
        server.stop()


async def test_eleventh_connection_from_one_address_is_429(http: aiohttp.ClientSession, server: ServerProcess) -> None:
    # Spread over rooms, so that the room size limit (10) is not what refuses the 11th.
    sockets = [await raw_join(http, server, f"crowd{i}", "p", forwarded_for="203.0.113.50") for i in range(10)]
    try:
        assert await join_status(http, server, "crowd", "203.0.113.50") == 429
        # Another address is not affected, and a closed socket frees a slot.
        assert await join_status(http, server, "crowd", "203.0.113.51") == 101
        await sockets.pop().close()
        await settle_users(http, server, 9)
        assert await join_status(http, server, "crowd", "203.0.113.50") == 101
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


async def test_ipv6_connections_are_counted_per_slash_64(http: aiohttp.ClientSession, server: ServerProcess) -> None:
    """Sockets from different addresses of one IPv6 /64 count as one address against the limit of 10."""
    sockets = [await raw_join(http, server, f"v6crowd{i}", "p", forwarded_for=f"2001:db8:5:6::{i + 1:x}")
               for i in range(10)]
    try:
        for address in ("2001:db8:5:6::ff", "2001:db8:5:6:ffff:ffff:ffff:ffff", "[2001:db8:5:6::77]:4444"):
            assert await join_status(http, server, "v6crowd", address) == 429, address
        # The next /64 is someone else.
        assert await join_status(http, server, "v6crowd", "2001:db8:5:7::1") == 101
        await sockets.pop().close()
        await settle_users(http, server, 9)
        assert await join_status(http, server, "v6crowd", "2001:db8:5:6::1234") == 101
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    # Refusals are logged once a minute per /64, however many of its addresses knock.
    refusals = [e for e in logged(server, "LIMIT_EXCEEDED") if e["details"].get("limit") == "connections"]
    assert [e["ip"] for e in refusals] == ["2001:db8:5:6::ff"]


async def test_ipv6_join_rate_is_counted_per_slash_64(http: aiohttp.ClientSession, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", extra_args=["--join-burst", "3", "--join-rate", "1"]).start()
    try:
        for i in range(3):
            assert await join_status(http, server, "v6rate", f"2001:db8:9:9::{i + 1}") == 101
        for i in range(3):
            assert await join_status(http, server, "v6rate", f"2001:db8:9:9::{i + 100}") == 429
        assert await join_status(http, server, "v6rate", "2001:db8:9:a::1") == 101
        # IPv4 stays per address: a neighbour has its own budget.
        for _ in range(3):
            assert await join_status(http, server, "v4rate", "198.51.100.1") == 101
        assert await join_status(http, server, "v4rate", "198.51.100.1") == 429
        assert await join_status(http, server, "v4rate", "198.51.100.2") == 101
        refusals = [e for e in logged(server, "LIMIT_EXCEEDED") if e["details"].get("limit") == "join_rate"]
        assert [e["ip"] for e in refusals] == ["2001:db8:9:9::100", "198.51.100.1"]
    finally:
        server.stop()
