"""The server's life: the settings it runs with, when it started, the media plane it starts and closes,
whether it is draining, and ``GET /healthz`` that reports all of it to a load balancer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from ghosttalk.config import Config
from ghosttalk.media.plane import MediaPlane
from ghosttalk.ops.eventlog import EVENTS
from ghosttalk.server.rooms import ROOMS
from ghosttalk.version import commit, version

if TYPE_CHECKING:
    # Only a clustered server loads the cluster (and redis-py): app.py makes the node when --redis-url is set.
    from ghosttalk.cluster.node import ClusterNode

# Declared here rather than beside Config: config.py stays free of aiohttp (``ghosttalk --help`` is fast).
CONFIG = web.AppKey("config", Config)
MEDIA = web.AppKey("media", MediaPlane)
# Set when SIGTERM arrives: /healthz answers 503 and new joins are refused while rooms drain.
SHUTTING_DOWN = web.AppKey("shutting_down", asyncio.Event)
STARTED_AT = web.AppKey("started_at", float)
# This server's node in a cluster; absent when it runs on its own.
CLUSTER: web.AppKey[ClusterNode] = web.AppKey("cluster")


async def healthz(request: web.Request) -> web.Response:
    cluster = request.app.get(CLUSTER)
    if request.app[SHUTTING_DOWN].is_set():
        status = "shutting down"
    elif not request.app[MEDIA].alive:
        status = "media socket closed"  # no call can carry audio: a load balancer must stop sending people here
    elif cluster is not None and cluster.draining:
        status = "draining"  # its calls go on; new people are better sent to another node
    else:
        status = "ok"
    body = {"status": status, "version": version(), "commit": commit()}
    if cluster is not None:
        # Redis away alone keeps 200: calls go on and this node's rooms still take joins.
        body |= {"node": cluster.id, "redis": "ok" if cluster.link.up else "unreachable"}
    return web.Response(body=orjson.dumps(body), status=200 if status == "ok" else 503, content_type="application/json")


async def _media(app: web.Application) -> AsyncIterator[None]:
    await app[MEDIA].start()
    cluster = app.get(CLUSTER)
    if cluster is not None:
        await cluster.start()
    yield
    await _close_media(app)
    app[EVENTS].close()


async def _on_shutdown(app: web.Application) -> None:
    # Runs before connections are torn down: refuse new joins and tell everyone while sockets still work.
    app[SHUTTING_DOWN].set()
    await _close_media(app)


async def _close_media(app: web.Application) -> None:
    """Every connection first (the rooms tell their members), then the socket they share. Shutdown and
    cleanup both get here, one after the other: the first one closes, the second finds it done. A cluster node
    leaves the room directory before its people are told to rejoin, so that they rejoin elsewhere."""
    cluster = app.get(CLUSTER)
    if cluster is not None:
        await cluster.leave()
    await app[ROOMS].close()
    if cluster is not None:
        await cluster.close()
    app[MEDIA].close()


def setup_lifecycle(app: web.Application, config: Config, media: MediaPlane) -> None:
    """The server's own state and /healthz; the media plane starts with the application and closes with it."""
    app[CONFIG] = config
    app[MEDIA] = media
    app[SHUTTING_DOWN] = asyncio.Event()
    app[STARTED_AT] = time.time()
    app.router.add_get("/healthz", healthz)
    app.cleanup_ctx.append(_media)
    app.on_shutdown.append(_on_shutdown)
