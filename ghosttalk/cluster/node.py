"""One node of a cluster: its Redis client and everything it keeps there, its inbox, its bridged sessions, and
the one-second tick that keeps the cluster's picture current (registration, dead nodes, bans, events).

The node knows nothing of rooms and WebSockets beyond what :class:`LocalServer` (ghosttalk.server.clustering)
answers: the cluster sits below the server, which asks it where a room lives and hands it bridged sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections import Counter, deque
from collections.abc import Coroutine, Iterator
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ghosttalk.cluster import ClusterUnavailable, keys
from ghosttalk.cluster.bans import ClusterBans
from ghosttalk.cluster.bridge import BridgedSession, OpenRequest, RemoteSocket
from ghosttalk.cluster.bus import Bus, Message
from ghosttalk.cluster.link import RedisLink, reply
from ghosttalk.cluster.placement import Placement
from ghosttalk.cluster.registry import NODE_TTL_SECONDS, REFRESH_SECONDS, NodeInfo, NodeRegistry
from ghosttalk.config import Config
from ghosttalk.contract import CloseCode
from ghosttalk.ops.bans import BanList
from ghosttalk.ops.eventlog import EventLog
from ghosttalk.ops.limits import TokenBucket
from ghosttalk.version import version

logger = logging.getLogger(__name__)

# Redis calls fail fast while it is away: a join that needs it is told to try again rather than kept waiting.
REDIS_TIMEOUT_SECONDS = 2.0
# Leaving the cluster at shutdown takes at most this long per step, however Redis behaves.
LEAVE_SECONDS = 2 * REDIS_TIMEOUT_SECONDS
# The whole ban list is read again this often even without a change announced (a lost announcement).
BAN_SYNC_TICKS = 5
# Rooms placed here that never opened are looked for this often (and released when seen twice in a row).
ORPHAN_CHECK_TICKS = 3
EVENTS_KEPT = 1000
# A drain checks this often whether its calls have ended.
DRAIN_POLL_SECONDS = 0.5


class LocalServer(Protocol):
    """What a node needs of the server in its own process."""

    def load(self) -> tuple[int, int]:
        """People and rooms on this node."""
        ...

    def hosts(self, room_id: str) -> bool: ...

    def room_ids(self) -> list[str]: ...

    def snapshot(self) -> list[dict[str, Any]]: ...

    async def kick(self, peer_id: str) -> bool: ...

    async def disconnect_banned(self, entries: list[str]) -> int: ...

    async def evict(self, room_id: str, reason: str) -> None:
        """Tell everyone in ``room_id`` to rejoin (1001): the room lives on another node now."""
        ...

    async def serve(self, socket: RemoteSocket, request: OpenRequest) -> None:
        """Run a bridged page's signaling session here, as for a local page, until it ends."""
        ...


def _where(url: str) -> str:
    """The Redis URL without its password, for logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


class ClusterFigures(Collector):
    """The node's part in the cluster, on /metrics: read when scraped, like the media plane's figures."""

    def __init__(self, node: ClusterNode) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        node = self._node
        yield GaugeMetricFamily("ghosttalk_redis_up", "Whether this node reaches Redis now", value=int(node.link.up))
        yield GaugeMetricFamily("ghosttalk_cluster_nodes", "Live nodes this node knows of, itself included",
                                value=len(node.registry.live.keys() | {node.id}))
        yield GaugeMetricFamily("ghosttalk_bridged_sessions",
                                "Pages whose WebSocket is on this node and whose room lives on another",
                                value=node.bridged)
        yield CounterMetricFamily("ghosttalk_cluster_messages_dropped",
                                  "Messages to other nodes given up on (not taken within 10 s, or a full mailbox)",
                                  value=node.bus.dropped)


class ClusterNode:
    def __init__(self, config: Config, bans: BanList, events: EventLog, server: LocalServer) -> None:
        assert config.redis_url is not None
        self.id = config.node_name
        self.config = config
        self.redis: Redis = Redis.from_url(
            config.redis_url, decode_responses=True, socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )  # fmt: skip
        self.link = RedisLink(_where(config.redis_url))
        self.registry = NodeRegistry(self.redis)
        self.placement = Placement(self.redis, self.id)
        self.bus = Bus(self.redis, self.id, self.link, self._deliver)
        self.bans = ClusterBans(self.redis, bans, self._banned_elsewhere)
        self.events = events
        advertised = (config.public_ip,) if config.public_ip else config.rtc_hosts
        self.me = NodeInfo(
            id=self.id, boot=secrets.token_hex(6), http=f"{socket.gethostname()}:{config.port}",
            media=advertised, udp_port=config.rtc_udp_port, started=time.time(), version=version(),
        )  # fmt: skip
        self.server = server
        self._closed = False
        self.draining = False
        self._bridges: dict[str, BridgedSession] = {}
        self._remotes: dict[tuple[str, str], RemoteSocket] = {}
        self._sessions: Counter[str] = Counter()  # sessions on their way into each room on this node
        self._orphans: set[str] = set()  # rooms placed here, not open here, at the last check
        self._unsent_events: deque[dict[str, object]] = deque(maxlen=EVENTS_KEPT)
        self._ban_sync_wanted = True
        self._ticks = 0
        self._registered = False  # this process has registered once (a later re-registration: Redis lost it)
        self._settled_at = 0.0  # until then, after Redis lost its data, no room is placed anew
        self._cpu_mark = (time.monotonic(), time.process_time())
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        events.listeners.append(self._unsent_events.append)

    # Life.

    async def start(self) -> None:
        """Register and start listening; a Redis that is not there yet is waited for in the background."""
        self._loops = [asyncio.create_task(self.bus.run()), asyncio.create_task(self._tick_forever())]
        await self._tick()

    async def leave(self) -> None:
        """Stop taking part: no more ticks, and this node's registration and rooms are gone from the directory,
        so that pages told to rejoin find their rooms placed anew elsewhere. Safe to call more than once."""
        for task in self._loops:
            task.cancel()
        # Bounded, as every step of a shutdown: a Redis that hangs must not keep the process from exiting.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LEAVE_SECONDS):
                await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        try:
            async with asyncio.timeout(LEAVE_SECONDS):
                await self._flush_events()
                await self.placement.leave()
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            # Its registration expires by itself and the others reap its rooms within seconds.
            self.link.failed(exc)

    async def close(self) -> None:
        """After the rooms closed: every bridged page is told to rejoin (1001), what is queued for other nodes
        (the closes of their pages' sessions) is sent, and the connection to Redis closed. Once."""
        if self._closed:
            return
        self._closed = True
        await self.leave()
        for bridge in list(self._bridges.values()):
            bridge.end(CloseCode.GOING_AWAY, "server shutting down")
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.bus.close()
        await self.redis.aclose()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Where rooms live.

    async def route(self, room_id: str) -> str | None:
        """The node ``room_id`` lives on, None for this one (placing it if it lives nowhere). Raises
        :class:`ClusterUnavailable` when that cannot be known: a room already here is joined here regardless."""
        if self.server.hosts(room_id):
            return None
        if time.monotonic() < self._settled_at:
            raise ClusterUnavailable("the cluster is recovering from a Redis restart; try again in a moment")
        try:
            owner = await self.placement.place(room_id)
        except (RedisError, OSError) as exc:
            self.link.failed(exc)
            raise ClusterUnavailable("the cluster cannot be reached right now; try again in a moment") from None
        self.link.succeeded()
        if owner is None:
            raise ClusterUnavailable("no server can take a new room right now; try again in a moment")
        return None if owner == self.id else owner

    @contextlib.contextmanager
    def placed_while(self, room_id: str) -> Iterator[None]:
        """Keep ``room_id``'s place in the directory while sessions for it are here; once the last one ends,
        release it unless the room opened on this node (a room that never opened must not hold a place that
        nothing would ever give back)."""
        self._sessions[room_id] += 1
        try:
            yield
        finally:
            self._sessions[room_id] -= 1
            if not self._sessions[room_id]:
                del self._sessions[room_id]
                if not self.server.hosts(room_id):
                    self._spawn(self._release(room_id))

    def room_closed(self, room_id: str) -> None:
        """The room emptied and is gone from this node: it no longer lives anywhere."""
        self._spawn(self._release(room_id))

    async def _release(self, room_id: str) -> None:
        try:
            await self.placement.release(room_id)
        except (RedisError, OSError) as exc:
            # Its claim lapses with this node, or is taken over by whoever places the room next.
            self.link.failed(exc)

    # Bridged sessions: this node holds the page's WebSocket.

    async def bridge(
        self, ws: web.WebSocketResponse, owner: str, room_id: str, name: str, ip: str, key_check: str | None,
    ) -> None:
        session = secrets.token_hex(8)
        bridge = BridgedSession(ws, self.bus, owner, session,
                                TokenBucket(self.config.message_rate, self.config.message_burst))
        self._bridges[session] = bridge
        try:
            await bridge.run(OpenRequest(self.id, session, room_id, name, ip, key_check))
        finally:
            del self._bridges[session]

    @property
    def bridged(self) -> int:
        return len(self._bridges)

    # The inbox.

    def _deliver(self, channel: str, message: Message) -> None:
        if channel == keys.BANS_CHANGED:
            if message.get("from") != self.id:
                self._spawn(self._sync_bans())
            return
        kind, session = message.get("k"), message.get("s")
        if kind in ("out", "end") and isinstance(session, str) and session in self._bridges:
            self._bridges[session].receive(message)
        elif kind in ("in", "end") and isinstance(session, str):
            remote = self._remotes.get((str(message.get("from")), session))
            if remote is not None:
                remote.feed(message)
            elif kind == "in":
                # The session is not here (this node restarted since it opened): the page must rejoin.
                self.bus.send(str(message.get("from")), {"k": "end", "s": session, "code": int(CloseCode.GOING_AWAY),
                                                         "reason": "the room's server restarted"})
        elif kind == "open":
            request = OpenRequest.parse(message)
            if request is not None:
                self._open_remote(request)
        elif kind == "call":
            self._spawn(self._answer(message))
        elif kind == "reply":
            self.bus.answer(message)

    def _open_remote(self, request: OpenRequest) -> None:
        """Registered at once, before the session's task first runs: the page's next frames may already be on
        their way, right behind the ``open``."""
        origin, session = request.origin, request.session

        def send(message: Message) -> None:
            self.bus.send(origin, {**message, "s": session})

        socket = RemoteSocket(send)
        self._remotes[(origin, session)] = socket
        self._spawn(self._serve_remote(request, socket))

    async def _serve_remote(self, request: OpenRequest, socket: RemoteSocket) -> None:
        origin, session = request.origin, request.session
        try:
            with self.placed_while(request.room):
                await self._serve_owned(socket, request)
        finally:
            del self._remotes[(origin, session)]
            if not socket.closed:
                await socket.close(code=CloseCode.GOING_AWAY, message=b"left")

    async def _serve_owned(self, socket: RemoteSocket, request: OpenRequest) -> None:
        if not await self._owns(request.room):
            # The directory changed between the page's node asking and this node hearing: never open a second
            # copy of a room that lives elsewhere. The page rejoins and is sent to the right node.
            await socket.close(code=CloseCode.GOING_AWAY, message=b"the room moved to another server; rejoining")
            return
        await self.server.serve(socket, request)

    async def _owns(self, room_id: str) -> bool:
        try:
            return await self.route(room_id) is None
        except ClusterUnavailable:
            return False

    async def _answer(self, message: Message) -> None:
        method, args, origin = message.get("m"), message.get("a"), message.get("from")
        if not isinstance(origin, str) or not isinstance(args, dict):
            return
        result: object = None
        if method == "rooms":
            result = self.server.snapshot()
        elif method == "kick" and isinstance(args.get("peer"), str):
            result = await self.server.kick(args["peer"])
        self.bus.send(origin, {"k": "reply", "id": message.get("id"), "r": result})

    # What the admin panel sees of the cluster.

    def nodes(self) -> list[dict[str, object]]:
        """Every live node as last read (this one as it is now), with its load."""
        now = time.time()
        live = {**self.registry.live, self.id: self.me}
        return [node.describe(self.id, now) for _, node in sorted(live.items())]

    async def rooms(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Every node's rooms, each with its ``node``, and the nodes that did not answer."""
        others = [node_id for node_id in sorted(self.registry.live) if node_id != self.id]
        answers = await asyncio.gather(*(self.bus.call(node_id, "rooms", {}) for node_id in others),
                                       return_exceptions=True)
        rooms = [{**room, "node": self.id} for room in self.server.snapshot()]
        silent: list[str] = []
        for node_id, answer in zip(others, answers, strict=True):
            if isinstance(answer, list):
                rooms += [{**room, "node": node_id} for room in answer if isinstance(room, dict)]
            else:
                silent.append(node_id)
        return rooms, silent

    async def kick(self, node_id: str, peer_id: str) -> bool:
        """Kick ``peer_id`` on node ``node_id`` (another node: raises ``CallFailed`` if it does not answer)."""
        if node_id == self.id:
            return await self.server.kick(peer_id)
        return bool(await self.bus.call(node_id, "kick", {"peer": peer_id}))

    async def recent_events(self, n: int) -> list[dict[str, object]]:
        """The last ``n`` events of every node, oldest first; this node's own while Redis is unreachable."""
        try:
            await self._flush_events()
            raw = await reply(self.redis.lrange(keys.EVENTS, 0, n - 1))
        except (RedisError, OSError) as exc:
            self.link.failed(exc)
            return self.events.recent(n)
        merged = [event for event in (orjson.loads(item) for item in raw) if isinstance(event, dict)]
        return sorted(merged, key=lambda event: str(event.get("ts", "")))

    # Bans.

    def ban_changed(self, banned: bool, entry: str) -> None:
        """This node's admin banned or unbanned ``entry``: the cluster hears of it now (or once Redis is back)."""
        self.bans.changed(banned, entry)
        self._spawn(self._sync_bans())

    async def _sync_bans(self) -> None:
        try:
            if await self.bans.sync():
                await self.bus.publish(keys.BANS_CHANGED, {"from": self.id})
        except (RedisError, OSError) as exc:
            self.link.failed(exc)
            self._ban_sync_wanted = True

    async def _banned_elsewhere(self, entries: list[str]) -> None:
        await self.server.disconnect_banned(entries)

    # Draining.

    async def drain(self, timeout: float) -> None:
        """Stop taking new rooms and wait until this node's calls end, or ``timeout`` seconds; then leave the
        cluster, so that its people's pages, told to rejoin, find their rooms placed on other nodes."""
        self.draining = self.me.draining = True
        logger.info("draining: no new rooms here; calls may go on for up to %g s", timeout)
        with contextlib.suppress(RedisError, OSError):
            await self.registry.register(self.me)
        deadline = time.monotonic() + timeout
        # Polled: people leave by many paths (hang-up, kick, lost media), none of which should know of drains.
        while time.monotonic() < deadline and (self.server.load()[0] or self._bridges):  # noqa: ASYNC110
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        await self.leave()

    # The tick.

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            await self._tick()

    async def _tick(self) -> None:
        self._ticks += 1
        self.me.people, self.me.rooms = self.server.load()
        self.me.cpu = self._cpu_percent()
        try:
            if await self.registry.register(self.me):
                if self._registered:
                    # Redis lost every registration: until each node has had time to come back and claim its
                    # rooms, a room that is not here may still live on another node, and must not be placed anew.
                    self._settled_at = time.monotonic() + NODE_TTL_SECONDS
                self._registered = True
                for lost in await self.placement.claim(self.server.room_ids()):
                    # Placed elsewhere while this node was out of touch, and people are there now: one room must
                    # not go on in two places, so these people rejoin theirs.
                    logger.warning("room %s moved to another node while this one was out of touch", lost)
                    self._spawn(self.server.evict(lost, "the room moved to another server; rejoining"))
            for dead in await self.placement.reap():
                self.events.emit("NODE_DEAD", level="warning", dead_node=dead)
            await self.registry.read()
            if self._ban_sync_wanted or not self.bans.in_sync or self._ticks % BAN_SYNC_TICKS == 0:
                # Beside the tick, not in it: writing the ban file can wait on a slow disk, and the registration
                # must be refreshed every second regardless.
                self._ban_sync_wanted = False
                self._spawn(self._sync_bans())
            if self._ticks % ORPHAN_CHECK_TICKS == 0:
                await self._release_orphans()
            await self._flush_events()
        except (RedisError, OSError) as exc:
            self.link.failed(exc)
            return
        self.link.succeeded()
        self._end_sessions_of_gone_nodes()

    async def _release_orphans(self) -> None:
        """Rooms placed here that never opened here (the page's node placed it, then its upgrade failed or the
        page left before its ``open`` arrived) hold a place nothing else gives back: released once seen so at two
        checks in a row, with no session on its way in."""
        orphans = {room for room in await self.placement.placed_here()
                   if not self.server.hosts(room) and room not in self._sessions}  # fmt: skip
        for room in orphans & self._orphans:
            await self.placement.release(room)
        self._orphans = orphans - self._orphans

    def _end_sessions_of_gone_nodes(self) -> None:
        """Pages bridged to a node that is gone rejoin (and find their room placed anew); sessions bridged from a
        node that is gone end (their pages rejoin through another node). Judged only once this node has been in
        touch with Redis long enough that a missing registration is a dead node, not one Redis lost."""
        if not self.link.steady_for(NODE_TTL_SECONDS):
            return
        live = self.registry.live
        for bridge in list(self._bridges.values()):
            if bridge.remote not in live:
                bridge.end(CloseCode.GOING_AWAY, "the room's server went away; rejoining")
        for (origin, _), remote in list(self._remotes.items()):
            if origin not in live:
                remote.feed({"k": "end"})
        for node_id in self.bus.destinations():
            if node_id not in live:
                self.bus.forget(node_id)

    async def _flush_events(self) -> None:
        if not self._unsent_events:
            return
        batch = list(self._unsent_events)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(keys.EVENTS, *(orjson.dumps(event) for event in batch))
            pipe.ltrim(keys.EVENTS, 0, EVENTS_KEPT - 1)
            await pipe.execute()
        for _ in batch:
            self._unsent_events.popleft()

    def _cpu_percent(self) -> float:
        wall, cpu = time.monotonic(), time.process_time()
        then_wall, then_cpu = self._cpu_mark
        self._cpu_mark = (wall, cpu)
        return 100 * (cpu - then_cpu) / (wall - then_wall) if wall > then_wall else 0.0
