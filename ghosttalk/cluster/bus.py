"""The message bus between nodes, on Redis pub/sub: each node listens on its own inbox channel, and sends to
another node's inbox through one ordered mailer per destination.

Pub/sub keeps nothing for a listener that is not there, but ``PUBLISH`` says how many listened: a message that
reached nobody (the destination is reconnecting after a Redis restart) is sent again until it arrives or
``DELIVERY_SECONDS`` pass. One mailer per destination sends one message at a time, so each destination gets
this node's messages in the order they were sent, and a destination that is slow or gone holds up nobody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ghosttalk.cluster import CallFailed, keys
from ghosttalk.cluster.link import RedisLink

logger = logging.getLogger(__name__)

Message = dict[str, Any]

DELIVERY_SECONDS = 10.0
RETRY_SECONDS = 0.1
# Messages waiting for one destination: a few seconds of a busy node's signaling during a Redis restart.
MAILBOX_MESSAGES = 10_000
CALL_TIMEOUT_SECONDS = 2.0


class _Mailer:
    def __init__(self, redis: Redis, channel: str, link: RedisLink) -> None:
        self._redis = redis
        self._channel = channel
        self._link = link
        self._queue: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue(MAILBOX_MESSAGES)
        self.dropped = 0
        self.task = asyncio.get_running_loop().create_task(self._run())

    def post(self, payload: bytes) -> bool:
        try:
            self._queue.put_nowait((payload, time.monotonic() + DELIVERY_SECONDS))
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    async def emptied(self) -> None:
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            payload, deadline = await self._queue.get()
            try:
                while not await self._deliver(payload):
                    if time.monotonic() >= deadline:
                        self.dropped += 1
                        break
                    await asyncio.sleep(RETRY_SECONDS)
            finally:
                self._queue.task_done()

    async def _deliver(self, payload: bytes) -> bool:
        try:
            receivers = await self._redis.publish(self._channel, payload)
        except (RedisError, OSError) as exc:
            self._link.failed(exc)
            return False
        self._link.succeeded()
        return bool(receivers)


class Bus:
    """This node's inbox (``run``) and its mail to the others (``send``, ``call``)."""

    def __init__(self, redis: Redis, node_id: str, link: RedisLink, deliver: Callable[[str, Message], None]) -> None:
        """``deliver(channel, message)`` gets every message that arrives: the inbox's and ban changes."""
        self.node_id = node_id
        self._redis = redis
        self._link = link
        self._deliver = deliver
        self._mailers: dict[str, _Mailer] = {}
        self._forgotten_drops = 0  # dropped by mailers since forgotten, so that the count never goes down
        self._calls: dict[str, asyncio.Future[Any]] = {}

    @property
    def dropped(self) -> int:
        """Messages given up on: the destination did not take them within DELIVERY_SECONDS, or its mailbox was
        full."""
        return self._forgotten_drops + sum(mailer.dropped for mailer in self._mailers.values())

    def send(self, node_id: str, message: Message) -> bool:
        """Queue ``message`` for ``node_id``, signed ``from`` this node; False when its mailbox is full (the
        message is dropped)."""
        message["from"] = self.node_id
        mailer = self._mailers.get(node_id)
        if mailer is None:
            mailer = self._mailers[node_id] = _Mailer(self._redis, keys.inbox(node_id), self._link)
        return mailer.post(orjson.dumps(message))

    def destinations(self) -> list[str]:
        return list(self._mailers)

    def forget(self, node_id: str) -> None:
        """``node_id`` is gone: what is still queued for it is dropped."""
        mailer = self._mailers.pop(node_id, None)
        if mailer is not None:
            mailer.task.cancel()
            self._forgotten_drops += mailer.dropped + mailer.waiting

    async def publish(self, channel: str, message: Message) -> None:
        """One message to every node listening on ``channel``, now or never (raises ``RedisError``)."""
        await self._redis.publish(channel, orjson.dumps(message))

    async def call(self, node_id: str, method: str, args: Message, timeout: float = CALL_TIMEOUT_SECONDS) -> Any:
        """Ask ``node_id`` to run ``method`` (node.py answers) and return its result; raises ``CallFailed``."""
        call_id = secrets.token_hex(8)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        try:
            self.send(node_id, {"k": "call", "id": call_id, "m": method, "a": args})
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise CallFailed(f"node {node_id} did not answer {method} within {timeout:g} s") from None
        finally:
            self._calls.pop(call_id, None)

    def answer(self, message: Message) -> None:
        """A reply to one of this node's calls."""
        future = self._calls.get(str(message.get("id")))
        if future is not None and not future.done():
            future.set_result(message.get("r"))

    async def run(self) -> None:
        """Listen until cancelled, through any number of Redis outages."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            while True:
                try:
                    if not pubsub.subscribed:
                        await pubsub.subscribe(keys.inbox(self.node_id), keys.BANS_CHANGED)
                    raw = await pubsub.get_message(timeout=1.0)
                except (RedisError, OSError) as exc:
                    self._link.failed(exc)
                    await asyncio.sleep(RETRY_SECONDS * 5)
                    continue
                if raw is not None and raw.get("type") == "message":
                    self._receive(str(raw["channel"]), raw["data"])
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated

    def _receive(self, channel: str, data: str | bytes) -> None:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            # Only nodes write here; anything else is somebody else's traffic on our channel names.
            logger.warning("cluster: dropped a message on %s that is not a JSON object", channel)
            return
        self._deliver(channel, message)

    async def close(self, grace: float = 1.0) -> None:
        """Send what is queued (for up to ``grace`` seconds: the last closes of bridged sessions), then stop."""
        mailers = list(self._mailers.values())
        self._mailers.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(mailer.emptied() for mailer in mailers)), grace)
        for mailer in mailers:
            mailer.task.cancel()
        await asyncio.gather(*(mailer.task for mailer in mailers), return_exceptions=True)
