"""The node registry: each node's registration in Redis (who it is, where its media goes, how loaded it is),
refreshed every second with a TTL, and the view of the live nodes every node keeps from it.

A node that stops refreshing (killed, frozen, cut off) expires after ``NODE_TTL_SECONDS``; the next reap
(placement.py) releases its rooms within the second after that, so a dead node is declared dead within about
five seconds of its last refresh. A node never declares another dead while its own link to Redis is in doubt:
a registration it cannot read, or one Redis lost in a restart, is not a dead node.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from ghosttalk.cluster import keys
from ghosttalk.cluster.link import reply

REFRESH_SECONDS = 1.0
NODE_TTL_SECONDS = 4.0

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class NodeInfo:
    """One node's registration, as the admin panel shows it."""

    id: str
    boot: str  # random per process: a node that restarted under the same id is a new incarnation
    http: str
    media: tuple[str, ...]
    udp_port: int
    people: int = 0
    rooms: int = 0
    cpu: float = 0.0  # percent of one core over the last refresh interval
    draining: bool = False
    started: float = 0.0
    seen: float = 0.0  # when it last refreshed (Unix time)
    version: str = ""

    def fields(self) -> dict[str, str]:
        return {
            "id": self.id, "boot": self.boot, "http": self.http, "media": ",".join(self.media),
            "udp_port": str(self.udp_port), "people": str(self.people), "rooms": str(self.rooms),
            "cpu": f"{self.cpu:.1f}", "draining": "1" if self.draining else "0", "started": f"{self.started:.3f}",
            "seen": f"{self.seen:.3f}", "version": self.version,
        }  # fmt: skip

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> NodeInfo | None:
        """A registration read back, or None when it is not one (half-written, or not ours)."""
        try:
            return cls(
                id=raw["id"], boot=raw["boot"], http=raw.get("http", ""),
                media=tuple(item for item in raw.get("media", "").split(",") if item),
                udp_port=int(raw["udp_port"]), people=int(raw["people"]), rooms=int(raw["rooms"]),
                cpu=float(raw.get("cpu", "0")), draining=raw.get("draining") == "1",
                started=float(raw.get("started", "0")), seen=float(raw.get("seen", "0")),
                version=raw.get("version", ""),
            )  # fmt: skip
        except (KeyError, ValueError):
            return None

    def describe(self, self_id: str, now: float) -> dict[str, object]:
        return {
            "id": self.id, "self": self.id == self_id, "http": self.http, "media": list(self.media),
            "udp_port": self.udp_port, "people": self.people, "rooms": self.rooms, "cpu": round(self.cpu, 1),
            "draining": self.draining, "started": self.started, "seen": round(max(0.0, now - self.seen), 1),
            "version": self.version,
        }  # fmt: skip


class NodeRegistry:
    """This node's registration and the live nodes it last read. Methods may raise redis' ``RedisError``."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.live: dict[str, NodeInfo] = {}
        self._warned = False

    async def register(self, me: NodeInfo) -> bool:
        """Write (or refresh) this node's registration. True when it was missing: the first time, or after Redis
        lost it (restarted without persistence, or the key expired while this node could not reach it)."""
        me.seen = time.time()
        key = keys.node(me.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(key, "boot")
            pipe.hset(key, mapping=me.fields())
            pipe.pexpire(key, int(NODE_TTL_SECONDS * 1000))
            pipe.sadd(keys.NODES, me.id)
            boot, *_ = await pipe.execute()
        if boot is not None and boot != me.boot and not self._warned:
            # Two processes refreshing one registration would share rooms and each other's mail.
            logger.error("node id %s is in use by another running node: give each node its own --node-id", me.id)
            self._warned = True
        return boot is None

    async def deregister(self, node_id: str) -> None:
        await reply(self._redis.delete(keys.node(node_id)))
        await reply(self._redis.srem(keys.NODES, node_id))

    async def read(self) -> dict[str, NodeInfo]:
        """Every live node's registration (this one's included), and keep it as ``live``."""
        ids = sorted(await reply(self._redis.smembers(keys.NODES)))
        async with self._redis.pipeline(transaction=False) as pipe:
            for node_id in ids:
                pipe.hgetall(keys.node(node_id))
            raws = await pipe.execute()
        nodes = (NodeInfo.parse(raw) for raw in raws)
        self.live = {node.id: node for node in nodes if node is not None}
        return self.live
