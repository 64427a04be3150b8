"""Bans through the admin API against a real server process: who is disconnected and refused, address ranges
and IPv6, bans kept across a restart, a corrupt ban file, and a banned speaker's audio stopping."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import aiohttp
import pytest

from ghosttalk.client.participant import Client, ClientOptions, JoinError
from tests.support.adminapi import admin, closed, is_closed, join_status, logged, raw_join
from tests.support.room import clients
from tests.support.server import ServerProcess


async def test_ban_disconnects_at_once_refuses_rejoin_and_unban_lifts_it(
    http: aiohttp.ClientSession, server: ServerProcess
) -> None:
    async with clients(server, "admin-ban", ["ann", "ben"]) as (ann, ben):
        status, body = await admin(http, server, "POST", action="ban", ip="127.0.0.1")
        assert status == 200
        assert body == {"ok": True, "banned": "127.0.0.1", "disconnected": 2}
        for person in (ann, ben):
            await person.wait_for(partial(is_closed, person), 5)
        with pytest.raises(JoinError, match="403"):
            await Client(server.url, "admin-ban", "ann").connect()
        status, stats = await admin(http, server, action="stats")
        assert stats["users"] == 0 and stats["bans"] == 1
    assert (await admin(http, server, action="bans"))[1] == {"bans": ["127.0.0.1"]}
    status, body = await admin(http, server, "POST", action="unban", ip="127.0.0.1")
    assert status == 200 and body == {"ok": True, "unbanned": "127.0.0.1"}
    again = await Client(server.url, "admin-ban", "ann").connect()
    await again.close()
    events = [e["event"] for e in logged(server, "ADMIN_BAN") + logged(server, "ADMIN_UNBAN")]
    assert events == ["ADMIN_BAN", "ADMIN_UNBAN"]
    assert logged(server, "ADMIN_BAN")[0]["details"]["disconnected"] == 2


async def test_cidr_ban_through_a_trusted_proxy_hits_only_that_range(
    http: aiohttp.ClientSession, server: ServerProcess
) -> None:
    # Loopback is a trusted proxy by default, so X-Forwarded-For decides who each socket is.
    inside = await raw_join(http, server, "cidr", "inside", forwarded_for="198.51.100.23")
    outside = await raw_join(http, server, "cidr", "outside", forwarded_for="192.0.2.9")
    joins = {e["details"]["name"]: e["ip"] for e in logged(server, "USER_JOIN")}
    assert joins == {"inside": "198.51.100.23", "outside": "192.0.2.9"}
    status, body = await admin(http, server, "POST", action="ban", ip="198.51.100.77/24")
    assert status == 200 and body["banned"] == "198.51.100.0/24" and body["disconnected"] == 1
    await closed(inside)
    assert not outside.closed
    assert await join_status(http, server, "cidr", "198.51.100.200") == 403
    assert await join_status(http, server, "cidr", "::ffff:198.51.100.1") == 403
    assert await join_status(http, server, "cidr", "198.51.101.1") == 101
    assert await join_status(http, server, "cidr") == 101  # the proxy's own address is not banned
    status, body = await admin(http, server, "POST", action="unban", ip="198.51.100.1/24")
    assert status == 200 and body["unbanned"] == "198.51.100.0/24"
    assert await join_status(http, server, "cidr", "198.51.100.200") == 101
    await outside.close()


async def test_ipv6_ban(http: aiohttp.ClientSession, server: ServerProcess) -> None:
    status, body = await admin(http, server, "POST", action="ban", ip="2001:DB8:0::/48")
    assert status == 200 and body["banned"] == "2001:db8::/48"
    assert await join_status(http, server, "v6", "2001:db8:0:1::5") == 403
    assert await join_status(http, server, "v6", "[2001:db8::1]:5555") == 403
    assert await join_status(http, server, "v6", "2001:db8:1::5") == 101


async def test_bans_survive_a_restart(http: aiohttp.ClientSession, server: ServerProcess) -> None:
    for spec in ("203.0.113.5", "2001:db8::/32", "198.51.100.0/24"):
        assert (await admin(http, server, "POST", action="ban", ip=spec))[0] == 200
    assert (await admin(http, server, "POST", action="unban", ip="203.0.113.5"))[0] == 200
    server.restart()
    assert (await admin(http, server, action="bans"))[1] == {"bans": ["2001:db8::/32", "198.51.100.0/24"]}
    assert await join_status(http, server, "restart", "198.51.100.1") == 403
    assert await join_status(http, server, "restart", "203.0.113.5") == 101


def test_corrupt_ban_file_stops_startup_with_a_clear_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "banned_ips.json").write_text('["203.0.113.5", ')
    server = ServerProcess(data)
    with pytest.raises(RuntimeError) as info:
        server.start(timeout=20)
    message = str(info.value)
    assert "exited with 2" in message
    assert str(data / "banned_ips.json") in message
    assert "not valid JSON" in message
    # The file is left as it was for the operator to fix: nothing was silently dropped.
    assert (data / "banned_ips.json").read_text() == '["203.0.113.5", '


async def test_a_banned_speaker_stops_reaching_the_room(http: aiohttp.ClientSession, server: ServerProcess) -> None:
    # The listener joins from loopback; the speaker is a headless client too, so both are 127.0.0.1:
    # ban a /32 the speaker alone claims through the proxy instead.
    listener = await Client(server.url, "banned-voice", "listener", ClientOptions()).connect()
    try:
        ws = await raw_join(http, server, "banned-voice", "heckler", forwarded_for="192.0.2.66")
        await listener.wait_for(lambda: any(p.name == "heckler" for p in listener.peers.values()), 5)
        status, body = await admin(http, server, "POST", action="ban", ip="192.0.2.66")
        assert status == 200 and body["disconnected"] == 1
        messages = await closed(ws)
        assert messages[-1]["type"] == "error"
        await listener.wait_for(lambda: all(p.name != "heckler" for p in listener.peers.values()), 5)
        assert listener.closed_reason is None
    finally:
        await listener.close()
