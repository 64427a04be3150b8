"""The aiohttp application factory: state, routes and the media lifecycle in one place."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import orjson
from aiohttp import web

from ghosttalk.config import Config
from ghosttalk.ops.bans import BanList
from ghosttalk.ops.eventlog import EventLog
from ghosttalk.ops.limits import KeyedRateLimiter
from ghosttalk.ops.metrics import Metrics, setup_metrics
from ghosttalk.ops.security import security_headers
from ghosttalk.server.admin import setup_admin
from ghosttalk.server.appkeys import ADMIN_KEY, BANS, CONFIG, EVENTS, METRICS, ROOMS, SHUTTING_DOWN, STARTED_AT
from ghosttalk.server.pages import setup_pages
from ghosttalk.server.rooms import RoomManager
from ghosttalk.server.signaling import (
    CONNECTIONS,
    JOIN_RATE,
    REFUSAL_LOG,
    ConnectionCounter,
    join_rate_limiter,
    websocket_handler,
)
from ghosttalk.version import commit, version


async def healthz(request: web.Request) -> web.Response:
    if request.app[SHUTTING_DOWN].is_set():
        status = "shutting down"
    elif not request.app[ROOMS].mux.alive:
        status = "media socket closed"  # no call can carry audio: a load balancer must stop sending people here
    else:
        status = "ok"
    body = {"status": status, "version": version(), "commit": commit()}
    return web.Response(body=orjson.dumps(body), status=200 if status == "ok" else 503, content_type="application/json")


async def _media(app: web.Application) -> AsyncIterator[None]:
    rooms = app[ROOMS]
    await rooms.start()
    yield
    await rooms.close()
    app[EVENTS].close()


async def _on_shutdown(app: web.Application) -> None:
    # Runs before connections are torn down: refuse new joins and tell everyone while sockets still work.
    app[SHUTTING_DOWN].set()
    await app[ROOMS].close()


def create_app(config: Config) -> web.Application:
    """Build the application. Loading the ban list may raise ``BanFileError``, which stops startup."""
    app = web.Application(middlewares=[security_headers])
    events = EventLog(config.log_file)
    bans = BanList(config.ban_file)
    bans.load()
    rooms: RoomManager
    metrics = Metrics(live=lambda: rooms.live_stats())
    rooms = RoomManager(config, events, metrics)

    app[CONFIG] = config
    app[EVENTS] = events
    app[BANS] = bans
    app[METRICS] = metrics
    app[ROOMS] = rooms
    app[CONNECTIONS] = ConnectionCounter()
    app[JOIN_RATE] = join_rate_limiter(config)
    app[REFUSAL_LOG] = KeyedRateLimiter(rate=1 / 60, burst=1)
    app[SHUTTING_DOWN] = asyncio.Event()
    app[STARTED_AT] = time.time()
    app[ADMIN_KEY] = config.admin_key or secrets.token_urlsafe(24)

    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/healthz", healthz)
    setup_pages(app)
    setup_admin(app)
    setup_metrics(app)
    app.cleanup_ctx.append(_media)
    app.on_shutdown.append(_on_shutdown)
    return app
