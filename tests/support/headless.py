"""Headless participants (ghosttalk.client) for tests that drive a browser through Playwright's sync API: the
clients live on an event loop of their own thread, and the test calls into it with bounded waits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

from ghosttalk.client.audio import FRAME_SECONDS
from ghosttalk.client.participant import Client, ClientOptions

T = TypeVar("T")


class HeadlessPeople:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="headless-people", daemon=True)
        self._clients: list[Client] = []

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Runs ``coroutine`` on the clients' loop and returns its result (raises after ``timeout``)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def join(self, room: str, name: str, options: ClientOptions | None = None) -> Client:
        client = self.run(Client(self.base_url, room, name, options).connect())
        self._clients.append(client)
        return client

    def knock(self, room: str, name: str) -> tuple[Client, Future[Client]]:
        """A newcomer at a locked room's door: the client, and its join, which ends when it is let in (or raises
        :class:`JoinError` when it is turned away)."""
        client = Client(self.base_url, room, name)
        self._clients.append(client)
        return client, asyncio.run_coroutine_threadsafe(client.connect(timeout=30), self._loop)

    def lock(self, host: Client, locked: bool) -> None:
        """``host`` locks or unlocks its room, and the server has said so."""
        self.run(self._lock(host, locked))

    def mute(self, client: Client, muted: bool) -> None:
        self.run(client.mute(muted))

    def speak(self, client: Client, seconds: float, level: int = 30) -> None:
        """Sends ``seconds`` of packets carrying an RFC 6464 audio ``level``, 50 a second (blocks meanwhile)."""
        self.run(self._speak(client, seconds, level), timeout=seconds + 10)

    @contextmanager
    def running(self) -> Iterator[HeadlessPeople]:
        self._thread.start()
        try:
            yield self
        finally:
            # Everyone leaves before the loop stops, so that no socket or peer connection outlives the test.
            self.run(self._close_all())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    @staticmethod
    async def _lock(host: Client, locked: bool) -> None:
        await host.lock(locked)
        await host.wait_for(lambda: host.locked == locked)

    @staticmethod
    async def _speak(client: Client, seconds: float, level: int) -> None:
        client.audio_level = level
        packets = round(seconds / FRAME_SECONDS)
        start = time.monotonic()
        for index in range(packets):
            await asyncio.sleep(max(0.0, start + index * FRAME_SECONDS - time.monotonic()))
            # The server forwards the payload without decoding it: any bytes do.
            client.send_rtp(b"\xf8\xff\xfe")

    async def _close_all(self) -> None:
        await asyncio.gather(*(client.close() for client in self._clients), return_exceptions=True)
