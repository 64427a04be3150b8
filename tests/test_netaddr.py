"""Client address behind proxies and the Origin check, through real HTTP requests on loopback."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Sequence

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ghosttalk.config import LOOPBACK_NETWORKS, IPNetwork
from ghosttalk.ops.netaddr import client_ip, limit_key, origin_allowed

ORIGINS: web.AppKey[tuple[str, ...]] = web.AppKey("origins")
TRUSTED: web.AppKey[tuple[IPNetwork, ...]] = web.AppKey("trusted")


async def whoami(request: web.Request) -> web.Response:
    trusted = request.app[TRUSTED]
    return web.Response(text=client_ip(request, trusted))


async def origin(request: web.Request) -> web.Response:
    allowed = origin_allowed(request, request.app[ORIGINS], request.app[TRUSTED])
    return web.Response(text="yes" if allowed else "no")


async def make_client(
    trusted: Sequence[IPNetwork], origins: Sequence[str] = ()
) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    app[TRUSTED] = tuple(trusted)
    app[ORIGINS] = tuple(origins)
    app.router.add_get("/ip", whoami)
    app.router.add_get("/origin", origin)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def behind_proxy() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The test is the trusted proxy: loopback is trusted, as by default."""
    client = await make_client(LOOPBACK_NETWORKS)
    yield client
    await client.close()


@pytest.fixture
async def direct() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The test is an ordinary client: only a network it is not in is trusted."""
    client = await make_client((ipaddress.ip_network("10.0.0.0/8"),))
    yield client
    await client.close()


async def ip_of(client: TestClient[web.Request, web.Application], **headers: str) -> str:
    response = await client.get("/ip", headers={k.replace("_", "-"): v for k, v in headers.items()})
    assert response.status == 200
    return await response.text()


async def test_without_headers_the_socket_peer_is_the_client(
    direct: TestClient[web.Request, web.Application],
) -> None:
    assert await ip_of(direct) == "127.0.0.1"


async def test_forged_headers_from_an_untrusted_peer_are_ignored(
    direct: TestClient[web.Request, web.Application],
) -> None:
    assert await ip_of(direct, X_Forwarded_For="203.0.113.7") == "127.0.0.1"
    assert await ip_of(direct, X_Real_IP="203.0.113.7") == "127.0.0.1"
    assert await ip_of(direct, X_Forwarded_For="203.0.113.7, 10.1.1.1", X_Real_IP="10.2.2.2") == "127.0.0.1"


async def test_a_trusted_proxy_is_believed(behind_proxy: TestClient[web.Request, web.Application]) -> None:
    assert await ip_of(behind_proxy, X_Real_IP="203.0.113.7") == "203.0.113.7"
    assert await ip_of(behind_proxy, X_Forwarded_For="203.0.113.7") == "203.0.113.7"
    assert await ip_of(behind_proxy, X_Forwarded_For="2001:db8::7") == "2001:db8::7"
    assert await ip_of(behind_proxy, X_Forwarded_For="[2001:db8::7]:4711") == "2001:db8::7"
    assert await ip_of(behind_proxy, X_Forwarded_For="203.0.113.7:4711") == "203.0.113.7"
    assert await ip_of(behind_proxy, X_Forwarded_For="::ffff:203.0.113.7") == "203.0.113.7"


async def test_the_right_most_untrusted_hop_wins(
    behind_proxy: TestClient[web.Request, web.Application],
) -> None:
    # The client wrote "1.1.1.1" itself; our proxy appended the address it really saw.
    assert await ip_of(behind_proxy, X_Forwarded_For="1.1.1.1, 203.0.113.7") == "203.0.113.7"
    # A chain of trusted proxies (loopback here) is skipped.
    assert await ip_of(behind_proxy, X_Forwarded_For="1.1.1.1, 203.0.113.7, 127.0.0.2") == "203.0.113.7"
    # Several header lines are one list.
    response = await behind_proxy.get(
        "/ip", headers=[("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "203.0.113.9")]
    )
    assert await response.text() == "203.0.113.9"
    # X-Forwarded-For wins over X-Real-IP, which some proxies pass through from the client.
    assert await ip_of(behind_proxy, X_Forwarded_For="203.0.113.7", X_Real_IP="1.1.1.1") == "203.0.113.7"


async def test_unreadable_hops_stop_at_the_last_vouched_address(
    behind_proxy: TestClient[web.Request, web.Application],
) -> None:
    assert await ip_of(behind_proxy, X_Forwarded_For="garbage") == "127.0.0.1"
    assert await ip_of(behind_proxy, X_Forwarded_For="203.0.113.7, unknown, 127.0.0.3") == "127.0.0.3"
    assert await ip_of(behind_proxy, X_Real_IP="not an address") == "127.0.0.1"
    # Only trusted hops: the furthest one is the best we know.
    assert await ip_of(behind_proxy, X_Forwarded_For="127.0.0.5, 127.0.0.6") == "127.0.0.5"


async def origin_ok(client: TestClient[web.Request, web.Application], headers: dict[str, str]) -> bool:
    response = await client.get("/origin", headers=headers)
    return await response.text() == "yes"


async def test_origin_rules() -> None:
    client = await make_client(LOOPBACK_NETWORKS, origins=("https://Chat.Example.org", "http://localhost:3000/"))
    try:
        own = f"127.0.0.1:{client.port}"
        assert await origin_ok(client, {})  # no Origin: not a browser
        assert await origin_ok(client, {"Origin": f"http://{own}"})
        assert not await origin_ok(client, {"Origin": "http://127.0.0.1:1"})
        assert not await origin_ok(client, {"Origin": "https://evil.example"})
        assert not await origin_ok(client, {"Origin": "null"})
        assert not await origin_ok(client, {"Origin": "file://"})
        assert not await origin_ok(client, {"Origin": "http://[::1"})
        assert await origin_ok(client, {"Origin": "https://chat.example.org"})
        assert await origin_ok(client, {"Origin": "https://chat.example.org:443"})
        assert not await origin_ok(client, {"Origin": "http://chat.example.org"})
        assert await origin_ok(client, {"Origin": "http://localhost:3000"})
        assert not await origin_ok(client, {"Origin": "http://localhost:3001"})
        # The Host header decides what "our own" host is, default ports included.
        https = {"X-Forwarded-Proto": "https"}
        assert await origin_ok(client, {"Host": "voice.example.net", "Origin": "http://voice.example.net"})
        assert await origin_ok(client, {"Host": "voice.example.net", "Origin": "https://voice.example.net", **https})
        assert await origin_ok(
            client, {"Host": "voice.example.net:443", "Origin": "https://VOICE.example.net", **https}
        )
        assert not await origin_ok(
            client, {"Host": "voice.example.net:8443", "Origin": "https://voice.example.net", **https}
        )
        assert await origin_ok(client, {"Host": "[::1]:8080", "Origin": "http://[::1]:8080"})
    finally:
        await client.close()


async def test_origin_scheme_must_match_the_request() -> None:
    """An http page may not open the socket of the https site of the same name."""
    client = await make_client(LOOPBACK_NETWORKS)
    try:
        own = f"127.0.0.1:{client.port}"
        # A plain-http request: an https page of the same host and port is someone else's.
        assert not await origin_ok(client, {"Origin": f"https://{own}"})
        # Behind a TLS-terminating trusted proxy the request is http, and X-Forwarded-Proto says what it was.
        assert await origin_ok(client, {"Origin": f"https://{own}", "X-Forwarded-Proto": "https"})
        assert await origin_ok(client, {"Origin": f"https://{own}", "X-Forwarded-Proto": "HTTPS"})
        assert not await origin_ok(client, {"Origin": f"http://{own}", "X-Forwarded-Proto": "https"})
        # The nearest proxy's value (right-most) counts; junk is ignored and the socket's scheme stands.
        assert await origin_ok(client, {"Origin": f"https://{own}", "X-Forwarded-Proto": "http, https"})
        assert not await origin_ok(client, {"Origin": f"https://{own}", "X-Forwarded-Proto": "https, http"})
        assert not await origin_ok(client, {"Origin": f"https://{own}", "X-Forwarded-Proto": "gopher"})
        assert await origin_ok(client, {"Origin": f"http://{own}", "X-Forwarded-Proto": "gopher"})
        # The default ports follow the scheme: https://host is port 443, not the http default.
        elsewhere = {"Host": "voice.example.net:80", "Origin": "https://voice.example.net"}
        assert not await origin_ok(client, {**elsewhere, "X-Forwarded-Proto": "https"})
    finally:
        await client.close()
    untrusted = await make_client((ipaddress.ip_network("10.0.0.0/8"),))
    try:
        own = f"127.0.0.1:{untrusted.port}"
        # Only a trusted proxy may say the request was https.
        assert not await origin_ok(untrusted, {"Origin": f"https://{own}", "X-Forwarded-Proto": "https"})
        assert await origin_ok(untrusted, {"Origin": f"http://{own}", "X-Forwarded-Proto": "https"})
    finally:
        await untrusted.close()


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::1", "::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("unix-socket", "unix-socket"),
        ("", ""),
    ],
)
def test_limits_count_ipv4_addresses_and_ipv6_slash_64s(ip: str, key: str) -> None:
    assert limit_key(ip) == key
