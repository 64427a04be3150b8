"""The aiohttp application factory: makes every long-lived object, puts each under its typed key, and
registers the routes. Each key is declared beside what it holds (``ROOMS`` in rooms.py, ``BANS`` in
ops/bans.py, the server's own state in lifecycle.py)."""

from __future__ import annotations

import secrets

from aiohttp import web

from ghosttalk.config import Config
from ghosttalk.media.description import Admission
from ghosttalk.media.peer import MediaLimits
from ghosttalk.media.plane import MediaPlane
from ghosttalk.media.selection import lines_heard_at_once
from ghosttalk.ops.bans import BANS, BanList
from ghosttalk.ops.eventlog import EVENTS, EventLog
from ghosttalk.ops.limits import KeyedRateLimiter
from ghosttalk.ops.metrics import METRICS, Metrics, setup_metrics
from ghosttalk.ops.security import security_headers
from ghosttalk.server.admin import ADMIN_KEY, setup_admin
from ghosttalk.server.lifecycle import CLUSTER, setup_lifecycle
from ghosttalk.server.overview import live_stats
from ghosttalk.server.pages import setup_pages
from ghosttalk.server.rooms import ROOMS, RoomManager
from ghosttalk.server.signaling import (
    CONNECTIONS,
    JOIN_RATE,
    REFUSAL_LOG,
    ConnectionCounter,
    join_rate_limiter,
    websocket_handler,
)


def media_plane(config: Config, metrics: Metrics) -> MediaPlane:
    """The shared socket, forwarder and DTLS identity, as configured (started with the application)."""

    def candidate_dropped(admission: Admission) -> None:
        metrics.candidates_dropped.labels(reason=admission.value).inc()

    limits = MediaLimits(
        heartbeat_interval=config.heartbeat_interval,
        heartbeat_timeout=config.heartbeat_timeout,
        connect_timeout=config.connect_timeout,
        offer_timeout=config.offer_timeout,
        max_live_lines=lines_heard_at_once(config.max_room_peers, config.max_forwarded_speakers),
    )
    return MediaPlane(
        bind=config.rtc_bind,
        port=config.rtc_udp_port,
        # A 1:1 NAT's public address replaces the interface addresses.
        advertise=(config.public_ip,) if config.public_ip else config.rtc_hosts,
        limits=limits,
        candidate_dropped=candidate_dropped,
    )


def create_app(config: Config) -> web.Application:
    """Build the application. Loading the ban list may raise ``BanFileError``, which stops startup."""
    app = web.Application(middlewares=[security_headers])
    node = config.node_name if config.redis_url else None
    events = EventLog(config.log_file, node=node)
    bans = BanList(config.ban_file)
    bans.load()
    rooms: RoomManager
    metrics = Metrics(live=lambda: live_stats(rooms, media), node=node)
    media = media_plane(config, metrics)
    rooms = RoomManager(config, events, metrics, media)
    if config.redis_url:
        # Only a clustered server loads redis-py and the cluster; on its own the server never imports them.
        from ghosttalk.cluster.node import ClusterFigures, ClusterNode
        from ghosttalk.server.clustering import NodeServer

        cluster = app[CLUSTER] = ClusterNode(config, bans, events, NodeServer(app))
        rooms.destroyed.append(cluster.room_closed)
        metrics.registry.register(ClusterFigures(cluster))

    app[EVENTS] = events
    app[BANS] = bans
    app[METRICS] = metrics
    app[ROOMS] = rooms
    app[CONNECTIONS] = ConnectionCounter()
    app[JOIN_RATE] = join_rate_limiter(config)
    app[REFUSAL_LOG] = KeyedRateLimiter(rate=1 / 60, burst=1)
    app[ADMIN_KEY] = config.admin_key or secrets.token_urlsafe(24)

    app.router.add_get("/ws", websocket_handler)
    setup_lifecycle(app, config, media)
    setup_pages(app)
    setup_admin(app)
    setup_metrics(app)
    return app
