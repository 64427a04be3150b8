"""ICE servers handed to browsers and clients: STUN URLs, and TURN with static or time-limited credentials.

Time-limited credentials follow coturn's ``use-auth-secret`` (the "TURN REST API"): the username is
``<expiry unix time>:<random id>`` and the password is base64(HMAC-SHA1(secret, username)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

from ghosttalk.config import Config


def rest_credentials(secret: str, ttl: int, now: float | None = None) -> tuple[str, str]:
    expiry = int(time.time() if now is None else now) + ttl
    username = f"{expiry}:{secrets.token_hex(8)}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(config: Config, now: float | None = None) -> list[dict[str, Any]]:
    """The RTCIceServer list for one page or client; fresh REST credentials on every call."""
    servers: list[dict[str, Any]] = []
    if config.stun_servers:
        servers.append({"urls": list(config.stun_servers)})
    if config.turn_servers:
        if config.turn_secret:
            username, credential = rest_credentials(config.turn_secret, config.turn_ttl, now)
        else:
            username, credential = config.turn_user or "", config.turn_pass or ""
        servers.append({"urls": list(config.turn_servers), "username": username, "credential": credential})
    return servers
