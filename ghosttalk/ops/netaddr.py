"""The network edge: who is really connecting, from which page, and what one "address" is for a limit.

Forwarding headers are believed only when the socket peer is one of the operator's ``--trusted-proxies``;
anyone else could write any address into them and dodge a ban or frame someone else. The original trusted
every private address, so anybody on a shared LAN or cloud network could forge their address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web
from yarl import URL

from ghosttalk.config import IPAddress, IPNetwork
from ghosttalk.ops.bans import parse_address


def _trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def _header_address(text: str) -> IPAddress | None:
    """An address from a forwarding header; accepts ``[v6]:port`` and ``v4:port`` forms proxies use."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return parse_address(text)
    except ValueError:
        return None


def client_ip(request: web.Request, trusted: Sequence[IPNetwork]) -> str:
    """The client's address: the socket peer, or what a trusted proxy in front of us says it is.

    ``X-Forwarded-For`` is read right to left, skipping hops that are themselves trusted proxies; the first
    untrusted hop is the client (everything to its left was written by the client and may be forged).
    ``X-Real-IP`` is used only when there is no ``X-Forwarded-For``: proxies append to the latter by default,
    while some pass a client-sent ``X-Real-IP`` through untouched.
    """
    peer_text = request.remote or ""
    try:
        peer = parse_address(peer_text)
    except ValueError:
        # Unix sockets and the like have no IP peer; nothing to trust.
        return peer_text
    if not _trusted(peer, trusted):
        return str(peer)
    hops = [hop for value in request.headers.getall("X-Forwarded-For", ()) for hop in value.split(",")]
    if hops:
        nearest = peer
        for hop in reversed(hops):
            address = _header_address(hop)
            if address is None:
                # A hop we cannot read ends the chain we can vouch for.
                return str(nearest)
            if not _trusted(address, trusted):
                return str(address)
            nearest = address
        return str(nearest)
    real_ip = request.headers.get("X-Real-IP")
    if real_ip is not None:
        address = _header_address(real_ip)
        if address is not None:
            return str(address)
    return str(peer)


# An IPv6 subscriber is routinely handed a whole /64 (SLAAC, privacy addresses), so one person can use 2^64
# addresses: per-address limits count the /64. IPv4 addresses are scarce and each one counts alone.
IPV6_LIMIT_PREFIX = 64


def limit_key(ip: str) -> str:
    """The unit per-address limits count: the address for IPv4, its /64 for IPv6 (``2001:db8:1:2::/64``).

    ``ip`` is what :func:`client_ip` returned; anything that is not an IP address (a Unix socket peer) is its
    own key."""
    try:
        address = parse_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    return str(ipaddress.IPv6Network((address, IPV6_LIMIT_PREFIX), strict=False))


def request_scheme(request: web.Request, trusted: Sequence[IPNetwork]) -> str:
    """``http`` or ``https`` as the browser used it: the socket's, or a trusted proxy's ``X-Forwarded-Proto``.

    A proxy that terminates TLS forwards plain HTTP, so only the proxy can say that the page was https. The
    right-most value is the one our nearest (trusted) proxy wrote; anything but http/https is ignored."""
    own = request.scheme
    try:
        peer = parse_address(request.remote or "")
    except ValueError:
        return own
    if not _trusted(peer, trusted):
        return own
    values = [item.strip().lower() for value in request.headers.getall("X-Forwarded-Proto", ())
              for item in value.split(",")]
    if values and values[-1] in ("http", "https"):
        return values[-1]
    return own


def _endpoint(url: URL) -> tuple[str, int | None]:
    return (url.host or "").lower().rstrip("."), url.port


def origin_allowed(request: web.Request, allowed_origins: Sequence[str], trusted: Sequence[IPNetwork]) -> bool:
    """Whether a WebSocket upgrade comes from our own page (or an origin the operator listed).

    Browsers always send ``Origin`` on WebSocket upgrades, so its absence means a non-browser client, which
    cross-site request forgery cannot involve. The own-origin check compares scheme, host and port with the
    request's: its scheme (see :func:`request_scheme`; behind a TLS-terminating proxy that is the proxy's
    ``X-Forwarded-Proto``) and its ``Host``, a missing port taking that scheme's default. An http page must
    not open the socket of the https site of the same name: it may be anyone's page on a hostile network.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    origin = origin.strip()
    try:
        url = URL(origin)
        if url.scheme not in ("http", "https") or not url.host:
            return False
        scheme = request_scheme(request, trusted)
        if url.scheme == scheme and _endpoint(url) == _endpoint(URL(f"{scheme}://{request.host}")):
            return True
    except ValueError:
        return False
    wanted = _origin_key(origin)
    return wanted is not None and any(_origin_key(allowed) == wanted for allowed in allowed_origins)


def _origin_key(origin: str) -> tuple[str, str, int | None] | None:
    """``scheme://host[:port]``, case-insensitive; an omitted default port equals an explicit one."""
    try:
        url = URL(origin.strip().rstrip("/"))
    except ValueError:
        return None
    if not url.host:
        return None
    return (url.scheme.lower(), *_endpoint(url))
