"""Where rooms live: one node per room, chosen and recorded in one atomic step inside Redis.

Each operation is a Lua script, so that two nodes racing to create the same room read and write the directory
as one step and agree on the answer; a node's registration (registry.py) carries the load figures the choice is
made by. Node keys are built inside the scripts from ``ghosttalk:node:``: the cluster runs on one Redis (or a
primary with replicas), never Redis Cluster, where that would not be allowed.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from ghosttalk.cluster import keys
from ghosttalk.cluster.link import reply

# KEYS: rooms hash, nodes set. ARGV: room, the asking node, the node key prefix.
# The owner stays the owner while it is registered (draining or not: calls in progress stay where they are).
# Otherwise the least-loaded live node that is not draining gets it: fewest people, then fewest rooms, then the
# asking node (its people need no bridge). Placing counts the room at once, so the next placement, a moment
# later and before the node's next refresh, already sees it.
_PLACE = """
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if owner then
  if redis.call('EXISTS', ARGV[3] .. owner) == 1 then return owner end
  redis.call('SREM', ARGV[3] .. owner .. ':rooms', ARGV[1])
end
local best, best_people, best_rooms
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local load = redis.call('HMGET', ARGV[3] .. id, 'people', 'rooms', 'draining')
  if load[1] and load[3] ~= '1' then
    local people, rooms = tonumber(load[1]), tonumber(load[2])
    if best == nil or people < best_people
        or (people == best_people and (rooms < best_rooms or (rooms == best_rooms and id == ARGV[2]))) then
      best, best_people, best_rooms = id, people, rooms
    end
  end
end
if best == nil then return false end
redis.call('HSET', KEYS[1], ARGV[1], best)
redis.call('SADD', ARGV[3] .. best .. ':rooms', ARGV[1])
redis.call('HINCRBY', ARGV[3] .. best, 'rooms', 1)
return best
"""

# KEYS: rooms hash. ARGV: room, node, prefix. Only the owner's own claim is removed.
_RELEASE = """
redis.call('SREM', ARGV[3] .. ARGV[2] .. ':rooms', ARGV[1])
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

# KEYS: rooms hash. ARGV: node, prefix, room ids... A node whose registration came back after Redis lost its
# data claims its rooms again; a room someone else has placed meanwhile is left to them (returned).
_CLAIM = """
local lost = {}
for i = 3, #ARGV do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[1]) == 1 or redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then
    redis.call('SADD', ARGV[2] .. ARGV[1] .. ':rooms', ARGV[i])
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""

# KEYS: rooms hash, nodes set. ARGV: prefix. Nodes whose registration expired: their rooms are released and
# they leave the set. Returns their ids (each is returned to exactly one caller: the one that removed it).
_REAP = """
local dead = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then
    for _, room in ipairs(redis.call('SMEMBERS', ARGV[1] .. id .. ':rooms')) do
      if redis.call('HGET', KEYS[1], room) == id then redis.call('HDEL', KEYS[1], room) end
    end
    redis.call('DEL', ARGV[1] .. id .. ':rooms')
    redis.call('SREM', KEYS[2], id)
    table.insert(dead, id)
  end
end
return dead
"""

# KEYS: rooms hash, nodes set. ARGV: node, prefix. A node leaving for good (the end of a drain): it stops being a
# candidate and every room it had is released at once, so that its people's pages rejoin elsewhere.
_LEAVE = """
for _, room in ipairs(redis.call('SMEMBERS', ARGV[2] .. ARGV[1] .. ':rooms')) do
  if redis.call('HGET', KEYS[1], room) == ARGV[1] then redis.call('HDEL', KEYS[1], room) end
end
redis.call('DEL', ARGV[2] .. ARGV[1] .. ':rooms', ARGV[2] .. ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""


def _texts(values: Any) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else str(value) for value in values or ()]


class Placement:
    """The room directory, as seen by node ``node_id``. Every method may raise redis' ``RedisError``."""

    def __init__(self, redis: Redis, node_id: str) -> None:
        self._node = node_id
        self._redis = redis
        self._place = redis.register_script(_PLACE)
        self._release = redis.register_script(_RELEASE)
        self._claim = redis.register_script(_CLAIM)
        self._reap = redis.register_script(_REAP)
        self._leave = redis.register_script(_LEAVE)

    async def place(self, room_id: str) -> str | None:
        """The node ``room_id`` lives on, placing it if it lives nowhere; None: no live node can take it."""
        owner = await self._place(keys=[keys.ROOMS, keys.NODES], args=[room_id, self._node, keys.NODE_PREFIX])
        return None if owner is None else _texts([owner])[0]

    async def release(self, room_id: str) -> None:
        await self._release(keys=[keys.ROOMS], args=[room_id, self._node, keys.NODE_PREFIX])

    async def claim(self, room_ids: list[str]) -> list[str]:
        """Claim this node's rooms again; returns those now placed elsewhere."""
        if not room_ids:
            return []
        return _texts(await self._claim(keys=[keys.ROOMS], args=[self._node, keys.NODE_PREFIX, *room_ids]))

    async def placed_here(self) -> set[str]:
        """The rooms the directory places on this node."""
        return set(_texts(await reply(self._redis.smembers(keys.node_rooms(self._node)))))

    async def reap(self) -> list[str]:
        return _texts(await self._reap(keys=[keys.ROOMS, keys.NODES], args=[keys.NODE_PREFIX]))

    async def leave(self) -> None:
        await self._leave(keys=[keys.ROOMS, keys.NODES], args=[self._node, keys.NODE_PREFIX])
