"""Whether one connection is still worth keeping: its first offer and its media arrive in time, and then
the browser answers the heartbeat channel's pings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiortc import RTCPeerConnection
from aiortc.rtcdatachannel import RTCDataChannel

WATCHDOG_TICK_SECONDS = 1.0


class Liveness:
    def __init__(
        self,
        *,
        offer_timeout: float,
        connect_timeout: float,
        heartbeat_interval: float,
        heartbeat_timeout: float,
        failed: Callable[[str], None],
    ) -> None:
        """``failed`` is told once, with the reason, when a deadline passes (the watchdog then ends)."""
        self._offer_timeout = offer_timeout
        self._connect_timeout = connect_timeout
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timeout = heartbeat_timeout
        self._failed = failed
        self._created_at = time.monotonic()
        self._offered = False
        self._channel: RTCDataChannel | None = None
        self._connected_at: float | None = None
        self._last_pong: float | None = None

    @property
    def connected(self) -> bool:
        return self._connected_at is not None

    def open_channel(self, pc: RTCPeerConnection) -> None:
        """The browser's first offer is in: the heartbeat channel goes into our answer."""
        self._offered = True
        self._channel = pc.createDataChannel("heartbeat")
        self._channel.on("message", self._on_message)

    def mark_connected(self) -> None:
        """Media flows: the heartbeat's silence is counted from now."""
        self._connected_at = time.monotonic()

    def _on_message(self, message: object) -> None:
        if message == "pong":
            self._last_pong = time.monotonic()

    async def run(self) -> None:
        """The watchdog (a task the connection owns): pings, and the offer, connect and heartbeat deadlines."""
        last_ping = 0.0
        while True:
            await asyncio.sleep(WATCHDOG_TICK_SECONDS)
            now = time.monotonic()
            if not self._offered and now - self._created_at > self._offer_timeout:
                self._failed(f"no offer within {self._offer_timeout:g} s")
                return
            if self._connected_at is None:
                if now - self._created_at > self._connect_timeout:
                    self._failed(f"media did not connect within {self._connect_timeout:g} s")
                    return
                continue
            channel = self._channel
            if channel is not None and channel.readyState == "open" and now - last_ping >= self._heartbeat_interval:
                channel.send("ping")
                last_ping = now
            if now - (self._last_pong or self._connected_at) > self._heartbeat_timeout:
                self._failed(f"no heartbeat for {self._heartbeat_timeout:g} s")
                return
