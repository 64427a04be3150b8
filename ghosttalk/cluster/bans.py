"""The ban list every node enforces: a Redis set is the cluster's list, and each node's own file
(:class:`~ghosttalk.ops.bans.BanList`) mirrors it, so that a node keeps enforcing every ban while Redis is
unreachable, and the cluster gets its bans back should Redis lose them.

A ban or unban goes to Redis at once and is announced on ``ghosttalk:bans-changed``; every node reloads the set
when it hears that (and every few seconds regardless), so a ban made on one node refuses on all of them within
the second. A change made while Redis is unreachable is kept and written when it comes back. A node that starts
(or finds that Redis lost its data) adds its file's bans to the set, except the entries unbanned on purpose in
the meantime, which ``ghosttalk:unbanned`` remembers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from ghosttalk.cluster import keys
from ghosttalk.cluster.link import reply
from ghosttalk.ops.bans import BanList

logger = logging.getLogger(__name__)

# Set once the cluster's list holds the bans of the nodes' files; gone after Redis lost its data.
SEEDED = keys.BANS + ":seeded"


class ClusterBans:
    def __init__(self, redis: Redis, bans: BanList, added: Callable[[list[str]], Awaitable[None]]) -> None:
        """``added(entries)`` is awaited with the entries another node banned, to disconnect whoever they match
        on this node."""
        self._redis = redis
        self._bans = bans
        self._added = added
        self._pending: list[tuple[bool, str]] = []  # (banned?, entry) made here and not yet in Redis
        self._merged = False  # this node's file has gone into the cluster's list since it started
        # The tick, an announcement and an admin's change may all sync at once: one at a time, or a pending change
        # could be written twice and another dropped.
        self._lock = asyncio.Lock()

    @property
    def in_sync(self) -> bool:
        return self._merged and not self._pending

    def changed(self, banned: bool, entry: str) -> None:
        """A ban or unban made on this node (already in its file); :meth:`sync` writes it to Redis."""
        self._pending.append((banned, entry))

    async def sync(self) -> bool:
        """Write this node's changes, merge its file if Redis needs it, and mirror the cluster's list. Returns
        whether this node changed the cluster's list (the others are then told). Raises ``RedisError``."""
        async with self._lock:
            return await self._sync()

    async def _sync(self) -> bool:
        wrote = bool(self._pending)
        while self._pending:
            banned, entry = self._pending[0]
            async with self._redis.pipeline(transaction=True) as pipe:
                if banned:
                    pipe.sadd(keys.BANS, entry)
                    pipe.srem(keys.UNBANNED, entry)
                else:
                    pipe.srem(keys.BANS, entry)
                    pipe.sadd(keys.UNBANNED, entry)
                await pipe.execute()
            self._pending.pop(0)
        if not self._merged or not await reply(self._redis.exists(SEEDED)):
            unbanned = await reply(self._redis.smembers(keys.UNBANNED))
            mine = [entry for entry in self._bans.entries() if entry not in unbanned]
            async with self._redis.pipeline(transaction=True) as pipe:
                if mine:
                    pipe.sadd(keys.BANS, *mine)
                pipe.set(SEEDED, "1")
                await pipe.execute()
            self._merged = True
            wrote = wrote or bool(mine)
        cluster = sorted(await reply(self._redis.smembers(keys.BANS)))
        if cluster != sorted(self._bans.entries()):
            added = self._bans.replace(cluster)
            try:
                # In a thread: two fsyncs on a busy disk can take seconds, and a node whose loop stalls that long
                # misses its refreshes and is taken for dead.
                await asyncio.to_thread(self._bans.write, self._bans.entries())
            except OSError as exc:
                logger.warning("ban file %s: cannot write the cluster's bans (%s); enforcing them from memory",
                               self._bans.path, exc)
            if added:
                logger.info("bans from the cluster: %s", ", ".join(added))
                await self._added(added)
        return wrote
