"""A bad network in user space: loss, delay, jitter and blackouts on a headless client's UDP traffic.

The kernel's ``netem`` is not available everywhere (not on our CI machines), so the client can impair its
own ICE sockets instead, in both directions; see ``filter_ice_datagrams`` in the media adapter.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ghosttalk.media.aiortc_adapter.ice import Address


@dataclass
class LinkConditions:
    """Mutable while in use: a test can start or end a blackout, or change the loss, at any time."""

    loss: float = 0.0  # probability that a datagram is dropped, each direction
    delay: float = 0.0  # seconds added to every datagram
    jitter: float = 0.0  # +/- seconds, uniformly distributed, on top of the delay
    blackout: bool = False  # drop everything
    rng: random.Random = field(default_factory=random.Random)
    dropped: int = 0
    passed: int = 0

    def _pass(self, data: bytes, addr: Address, forward: Callable[[bytes, Address], None]) -> None:
        if self.blackout or (self.loss and self.rng.random() < self.loss):
            self.dropped += 1
            return
        self.passed += 1
        wait = self.delay + (self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)
        if wait > 0:
            asyncio.get_running_loop().call_later(wait, forward, data, addr)
        else:
            forward(data, addr)

    def outgoing(self, data: bytes, addr: Address, send: Callable[[bytes, Address], None]) -> None:
        self._pass(data, addr, send)

    def incoming(self, data: bytes, addr: Address, deliver: Callable[[bytes, Address], None]) -> None:
        self._pass(data, addr, deliver)
