"""Security headers on every HTTP response.

The page and the admin panel load only their own scripts and styles (no inline code), so a strict
Content-Security-Policy costs nothing and turns any injected markup into inert text. The headers are
harmless on JSON, static files and errors, so they go everywhere rather than on a list of routes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

# Host header values that may go into the policy as they are; anything else falls back to 'self' alone.
_SAFE_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def content_security_policy(host: str) -> str:
    # 'self' covers same-host ws:/wss: in current browsers; older Safari needs them spelled out.
    connect = "'self'"
    if _SAFE_HOST.match(host):
        connect = f"'self' ws://{host} wss://{host}"
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect}",
            "media-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def _apply(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", content_security_policy(request.host))
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Permissions-Policy", "microphone=(self), camera=(), geolocation=()")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _apply(request, exc)
        raise
    # A WebSocket (or any streamed response) has already sent its headers.
    if not response.prepared:
        _apply(request, response)
    return response
