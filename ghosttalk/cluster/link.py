"""Whether this node can reach Redis right now, and for how long it has: every Redis call reports here."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import TypeVar, cast

T = TypeVar("T")

logger = logging.getLogger(__name__)


class RedisLink:
    """Up or down, and since when. An outage is logged once when it starts and once when it ends, however many
    calls fail in between."""

    def __init__(self, where: str) -> None:
        self._where = where  # host and port only: the URL may hold a password
        self.up = False
        self._up_since = 0.0
        self._reported_down = False

    def succeeded(self) -> None:
        if not self.up:
            if self._reported_down:
                logger.warning("redis %s: reachable again", self._where)
            self.up = True
            self._reported_down = False
            self._up_since = time.monotonic()

    def failed(self, error: BaseException) -> None:
        if not self._reported_down:
            logger.warning("redis %s: unreachable (%s); calls in progress go on, joins that need another node "
                           "are asked to try again", self._where, str(error) or type(error).__name__)
            self._reported_down = True
        self.up = False

    def steady_for(self, seconds: float) -> bool:
        """Up without a failure for at least ``seconds``: long enough to trust that a missing key is missing
        (and not lost in a Redis restart that the other nodes have not refreshed after yet)."""
        return self.up and time.monotonic() - self._up_since >= seconds


async def reply(command: Awaitable[T] | T) -> T:
    """A Redis command's answer. redis-py types each command for its blocking and its asyncio client at once;
    this node only ever has the asyncio one, whose commands are all awaitable."""
    return await cast(Awaitable[T], command)
