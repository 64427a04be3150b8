"""The admin panel's JSON API against a real server process: keys and their throttle, what each action
answers, kicks and bans (kept across restarts), and the per-address connection limits."""

from __future__ import annotations

import asyncio
from functools import partial

import aiohttp
import pytest

from ghosttalk.client.participant import Client
from ghosttalk.ops.limits import KeyedRateLimiter
from tests.support.adminapi import KEY, admin, logged
from tests.support.eventually import eventually
from tests.support.room import clients
from tests.support.server import ServerProcess


def lists_not(client: Client, peer_id: str | None) -> bool:
    return peer_id not in client.peers


async def test_wrong_or_missing_key_is_401_and_never_logged(http: aiohttp.ClientSession, server: ServerProcess) -> None:
    for key in (None, "", "wrong-key", KEY + "x", KEY[:-1], "ключ"):
        status, body = await admin(http, server, key=key, action="stats")
        assert status == 401, key
        assert body == {"error": "wrong or missing admin key"}
        status, _ = await admin(http, server, key=key)
        # Without any key the page itself is served (it holds no data and asks for the key).
        assert status == (200 if not key else 401), key
    async with http.get(f"{server.url}/admin", params={"key": "guess-123", "action": "bans"}) as response:
        assert response.status == 401
    # The right key works in the query string too.
    async with http.get(f"{server.url}/admin", params={"key": KEY, "action": "bans"}) as response:
        assert response.status == 200
        assert await response.json() == {"bans": []}
    status, events = await admin(http, server, action="logs", n="1000")
    assert status == 200
    assert any(e["event"] == "ADMIN_AUTH_FAILED" for e in events)
    server.stop()
    everything = server.console() + (server.data_dir / "server.log").read_text()
    for secret in (KEY, "wrong-key", "guess-123"):
        assert secret not in everything


async def raw_admin_request(server: ServerProcess, head: bytes) -> tuple[int, bytes]:
    """Send request bytes as they are (aiohttp's client will not write a header that is not UTF-8)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head + b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(5):
            response = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest


async def test_an_admin_key_that_is_not_utf8_is_401_not_500(server: ServerProcess) -> None:
    """A key header that is not UTF-8 must not raise UnicodeEncodeError (a 500 and a traceback)."""
    for head in (
        b"GET /admin?action=stats HTTP/1.1\r\nX-Admin-Key: \xff\xfe\xc3(\r\n",
        b"GET /admin HTTP/1.1\r\nX-Admin-Key: \xed\xa0\x80key\r\n",
        b"GET /admin?action=stats&key=%FF%FE HTTP/1.1\r\n",
    ):
        status, rest = await raw_admin_request(server, head)
        assert status == 401, (head, rest)
    # The right key still works, and nothing was logged as a server error.
    async with aiohttp.ClientSession() as http:
        assert (await admin(http, server, action="stats"))[0] == 200
    assert "Traceback" not in server.console() and "Error handling request" not in server.console()


async def test_wrong_keys_are_throttled_per_address_then_429(
    http: aiohttp.ClientSession, server: ServerProcess
) -> None:
    """Ten wrong keys from one /64, then every attempt from it (the right key included) is
    429 with Retry-After; other addresses are not affected and a right key resets nothing."""

    async def attempt(address: str, key: str, **params: str) -> tuple[int, str | None]:
        headers = {"X-Admin-Key": key, "X-Forwarded-For": address}
        async with http.get(f"{server.url}/admin", params=params, headers=headers) as response:
            await response.read()
            return response.status, response.headers.get("Retry-After")

    # A right key in between resets nothing: the failures still add up to ten.
    for i in range(1, 11):
        assert await attempt(f"2001:db8:7:7::{i}", f"guess-{i}", action="stats") == (401, None)
        if i == 5:
            assert (await attempt("2001:db8:7:7::5", KEY, action="stats"))[0] == 200
    for address, key, params in (
        ("2001:db8:7:7::99", "guess-11", {"action": "stats"}),
        ("2001:db8:7:7::abcd", KEY, {"action": "stats"}),  # the right key too, during the lockout
        ("2001:db8:7:7::1", KEY, {}),  # and the page with a key
    ):
        status, retry_after = await attempt(address, key, **params)
        assert status == 429, (address, key)
        assert retry_after is not None and 1 <= int(retry_after) <= 12
    # Another /64, an IPv4 address and the proxy itself are not locked out.
    assert (await attempt("2001:db8:7:8::1", KEY, action="stats"))[0] == 200
    assert (await attempt("203.0.113.9", KEY, action="stats"))[0] == 200
    assert (await admin(http, server, action="stats"))[0] == 200
    # Logged as before: once per interval, with the count, never the keys.
    failures = logged(server, "ADMIN_AUTH_FAILED")
    assert failures and failures[0]["ip"] == "2001:db8:7:7::1"
    assert "guess-" not in (server.data_dir / "server.log").read_text()


async def test_ipv4_wrong_keys_are_throttled_per_address(http: aiohttp.ClientSession, server: ServerProcess) -> None:
    for _ in range(10):
        status, _ = await admin(http, server, key="wrong-key-1234567890", action="bans")
        assert status == 401
    assert (await admin(http, server, key="wrong-key-1234567890", action="bans"))[0] == 429
    assert (await admin(http, server, action="bans"))[0] == 429
    async with http.get(f"{server.url}/admin", headers={"X-Forwarded-For": "127.0.0.1"}) as response:
        # The key-less page is served all the same: it holds nothing and offers no guess.
        assert response.status == 200
    async with http.get(
        f"{server.url}/admin", params={"action": "bans"}, headers={"X-Admin-Key": KEY, "X-Forwarded-For": "127.0.0.2"}
    ) as response:
        assert response.status == 200  # the neighbouring IPv4 address is someone else


def test_failure_throttle_arithmetic_and_bounded_table() -> None:
    throttle = KeyedRateLimiter(rate=5 / 60, burst=10, max_keys=3)
    for _ in range(10):
        assert throttle.retry_after("a", now=0.0) == 0
        throttle.take("a", now=0.0)
    assert throttle.retry_after("a", now=0.0) == pytest.approx(12.0)  # one attempt back every 12 s
    assert throttle.retry_after("a", now=6.0) == pytest.approx(6.0)
    assert throttle.retry_after("a", now=12.0) == 0
    assert throttle.retry_after("b", now=0.0) == 0
    # A full table forgets buckets that have refilled, then the oldest: it never grows past max_keys.
    for index, key in enumerate(("b", "c", "d", "e", "f")):
        throttle.take(key, now=float(index))
        assert len(throttle) <= 3
    assert throttle.retry_after("f", now=4.0) == 0  # one failure of ten: not locked


async def test_state_changing_actions_need_post(http: aiohttp.ClientSession, shared_server: ServerProcess) -> None:
    for action, params in (
        ("ban", {"ip": "203.0.113.1"}),
        ("unban", {"ip": "203.0.113.1"}),
        ("kick", {"peer": "x"}),
    ):
        status, body = await admin(http, shared_server, action=action, **params)
        assert status == 405, action
        assert "POST" in body["error"]
    async with http.get(
        f"{shared_server.url}/admin",
        params={"action": "ban", "ip": "203.0.113.1"},
        headers={"X-Admin-Key": KEY},
    ) as response:
        assert response.headers["Allow"] == "POST"
    for action in ("stats", "logs", "rooms", "bans"):
        status, _ = await admin(http, shared_server, "POST", action=action)
        assert status == 405
    status, _ = await admin(http, shared_server, "POST")
    assert status == 405
    status, _ = await admin(http, shared_server, "PUT", action="ban", ip="203.0.113.1")
    assert status == 405
    # Nothing was banned by any of that.
    assert (await admin(http, shared_server, action="bans"))[1] == {"bans": []}


async def test_bad_input_is_400_with_a_reason(http: aiohttp.ClientSession, shared_server: ServerProcess) -> None:
    cases: list[tuple[str, dict[str, str], str]] = [
        ("GET", {"action": "nope"}, "unknown action"),
        ("GET", {"action": ""}, "unknown action"),
        ("GET", {"action": "logs", "n": "0"}, "from 1 to 1000"),
        ("GET", {"action": "logs", "n": "1001"}, "from 1 to 1000"),
        ("GET", {"action": "logs", "n": "ten"}, "from 1 to 1000"),
        ("GET", {"action": "logs", "n": "-5"}, "from 1 to 1000"),
        ("POST", {"action": "ban"}, "empty address"),
        ("POST", {"action": "ban", "ip": "not-an-ip"}, "not an IPv4 or IPv6 address"),
        ("POST", {"action": "ban", "ip": "300.1.1.1"}, "not an IPv4 or IPv6 address"),
        ("POST", {"action": "ban", "ip": "10.0.0.0/33"}, "not an IPv4 or IPv6 address"),
        ("POST", {"action": "ban", "ip": "0.0.0.0/0"}, "every address"),
        ("POST", {"action": "ban", "ip": "1" * 500}, "too long"),
        ("POST", {"action": "unban", "ip": "garbage"}, "not an IPv4 or IPv6 address"),
        ("POST", {"action": "kick"}, "peer must be a peer id"),
        ("POST", {"action": "kick", "peer": "../../etc"}, "peer must be a peer id"),
    ]
    for method, params, reason in cases:
        status, body = await admin(http, shared_server, method, **params)
        assert status == 400, (params, body)
        assert reason in body["error"], (params, body)
    status, body = await admin(http, shared_server, "POST", action="kick", peer="nobody-here")
    assert status == 404 and "nobody-here" in body["error"]
    status, body = await admin(http, shared_server, "POST", action="unban", ip="192.0.2.200")
    assert status == 404 and "not banned" in body["error"]
    # A form body works as well as the query string.
    async with http.post(
        f"{shared_server.url}/admin?action=ban", data={"ip": "bogus"}, headers={"X-Admin-Key": KEY}
    ) as response:
        assert response.status == 400
        assert "bogus" in (await response.json())["error"]
    # And the server is fine.
    assert (await admin(http, shared_server, action="stats"))[0] == 200


async def test_panel_html(http: aiohttp.ClientSession, shared_server: ServerProcess) -> None:
    async with http.get(f"{shared_server.url}/admin", params={"key": KEY}) as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        html = await response.text()
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert '<script type="module" src="/static/js/admin.js"></script>' in html
    assert "<script>" not in html and "style=" not in html
    assert KEY not in html
    for asset, kind in (("/static/js/admin.js", "javascript"), ("/static/css/admin.css", "text/css")):
        async with http.get(f"{shared_server.url}{asset}") as response:
            assert response.status == 200, asset
            assert kind in response.content_type


async def test_stats_rooms_and_logs_reflect_a_live_room(
    http: aiohttp.ClientSession, shared_server: ServerProcess
) -> None:
    async with clients(shared_server, "admin-live", ["ann", "ben"]) as (ann, ben):
        status, stats = await admin(http, shared_server, action="stats")
        assert status == 200
        assert stats["room_users"]["admin-live"] == 2
        assert stats["users"] >= 2 and stats["rooms"] >= 1
        assert stats["candidate_types"].get("host", 0) >= 2
        assert stats["uptime"] >= 0 and isinstance(stats["version"], str) and stats["commit"]
        status, rooms = await admin(http, shared_server, action="rooms")
        room = next(r for r in rooms["rooms"] if r["room"] == "admin-live")
        people = {p["name"]: p for p in room["peers"]}
        assert set(people) == {"ann", "ben"}
        assert people["ann"]["id"] == ann.self_id and people["ben"]["id"] == ben.self_id
        assert people["ann"]["ip"] == "127.0.0.1"
        assert people["ann"]["candidate_type"] == "host"
        assert people["ann"]["muted"] is False
        await ann.mute(True)

        async def muted() -> dict[str, bool]:
            _, rooms = await admin(http, shared_server, action="rooms")
            room = next(r for r in rooms["rooms"] if r["room"] == "admin-live")
            return {p["name"]: p["muted"] for p in room["peers"]}

        await eventually(muted, 5, what="ann shown muted", until=lambda m: m == {"ann": True, "ben": False})
    status, logs = await admin(http, shared_server, action="logs", n="1000")
    # A bare array of event objects, as the original answers (operators' scripts iterate it).
    assert status == 200 and isinstance(logs, list) and all(isinstance(e, dict) for e in logs)
    mine = [e for e in logs if e["room"] == "admin-live"]
    kinds = [e["event"] for e in mine]
    assert kinds[0] == "ROOM_CREATE"
    assert kinds.count("USER_JOIN") == 2 and kinds.count("ICE_CONNECTED") == 2
    assert all(e["details"]["candidate_type"] == "host" for e in mine if e["event"] == "ICE_CONNECTED")
    assert all(e["ip"] == "127.0.0.1" for e in mine if e["event"] == "USER_JOIN")
    # Newest last, and n limits from the end.
    _, last_two = await admin(http, shared_server, action="logs", n="2")
    assert last_two == logs[-2:]


async def test_kick_removes_a_person_and_the_others_are_told(
    http: aiohttp.ClientSession, shared_server: ServerProcess
) -> None:
    async with clients(shared_server, "admin-kick", ["ann", "ben", "cat"]) as (ann, ben, cat):
        status, body = await admin(http, shared_server, "POST", action="kick", peer=ben.self_id or "")
        assert status == 200 and body == {"ok": True, "kicked": ben.self_id}
        await ben.wait_for(lambda: ben.closed_reason is not None, 5)
        for other in (ann, cat):
            await other.wait_for(partial(lists_not, other, ben.self_id), 5)
            assert any(m == {"type": "peer_leave", "peer_id": ben.self_id} for m in other.messages)
        _, rooms = await admin(http, shared_server, action="rooms")
        room = next(r for r in rooms["rooms"] if r["room"] == "admin-kick")
        assert {p["name"] for p in room["peers"]} == {"ann", "cat"}
        # Kicking again: that peer is gone.
        status, _ = await admin(http, shared_server, "POST", action="kick", peer=ben.self_id or "")
        assert status == 404
    _, logs = await admin(http, shared_server, action="logs", n="1000")
    kick = next(e for e in logs if e["event"] == "ADMIN_KICK" and e["peer"] == ben.self_id)
    assert kick["room"] == "admin-kick" and kick["details"]["name"] == "ben"
