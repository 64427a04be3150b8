"""Synthetic participants, many per worker process, each process on its own event loop.

Speakers send 50 packets per second whose payload starts with (client id, sequence, send time as a float64
from ``time.time()``); every client reads raw RTP (no jitter buffer, no decoding) and keeps, for packets
sent inside the measured window, the latency ``arrival - send time``. Work per received packet is one
struct unpack and one append: on a small machine the clients share the CPU with the server they measure.

A worker talks to the runner over a pipe:
runner -> worker ``("start", Window)`` then ``("stop",)``;
worker -> runner ``("joined", seconds)`` per client, ``("ready",)``, then ``("result", WorkerResult)``,
or ``("error", text)`` at any point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import time
from array import array
from collections.abc import Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from ghosttalk.client.participant import Client, ClientOptions, ReceivedPacket

# (client id, sequence number, send time): the start of every synthetic payload.
PROBE = struct.Struct("!IId")
PACKET_INTERVAL = 0.02
T = TypeVar("T")
# Packets still in flight when the speakers stop get this long to arrive.
DRAIN_SECONDS = 1.0


@dataclass(slots=True, frozen=True)
class ClientSpec:
    client_id: int
    room: str
    name: str
    speaker: bool
    # Where in each 20 ms period this speaker sends: speakers are spread evenly, as real ones are unaligned.
    phase: float
    # The audio level its packets carry (RFC 6464 -dBov; None: none): in a room past ten people the server
    # forwards only the loudest, so speakers get distinct levels and a known order.
    level: int | None = None


@dataclass(slots=True, frozen=True)
class WorkerPlan:
    url: str
    payload_bytes: int
    room_size: int
    join_concurrency: int
    clients: tuple[ClientSpec, ...]
    # The rooms' secret when they are end-to-end encrypted (each room derives its own keys from it).
    secret: str | None = None


@dataclass(slots=True, frozen=True)
class Window:
    """Wall-clock times: speakers start at ``start_at``; packets sent in [measure_from, measure_to) count."""

    start_at: float
    measure_from: float
    measure_to: float


@dataclass(slots=True)
class WorkerResult:
    sent: int = 0
    received: int = 0
    send_errors: int = 0
    latencies: bytes = b""  # array('d') of seconds, one per packet received from inside the window


def probe_payload(client_id: int, sequence: int, sent_at: float, size: int) -> bytes:
    return PROBE.pack(client_id, sequence, sent_at).ljust(size, b"\0")


@dataclass(slots=True)
class Probe:
    """What one worker's clients received; ``on_packet`` is the per-packet callback of every client."""

    measure_from: float = math.inf
    measure_to: float = -math.inf
    received: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))

    def on_packet(self, speaker_id: str, packet: ReceivedPacket) -> None:
        sent_at = PROBE.unpack_from(packet.payload)[2]
        if self.measure_from <= sent_at < self.measure_to:
            self.received += 1
            self.latencies.append(packet.arrival - sent_at)


class SyntheticSpeaker:
    """Sends on a fixed 20 ms cadence from ``Window.start_at + phase`` until stopped."""

    def __init__(self, client: Client, spec: ClientSpec, payload_bytes: int) -> None:
        self._client = client
        client.audio_level = spec.level
        self._spec = spec
        self._payload_bytes = payload_bytes
        self._loop = asyncio.get_running_loop()
        self._sequence = 0
        self._next = 0.0
        self._clock_offset = 0.0
        self._window = Window(0.0, 0.0, 0.0)
        self._handle: asyncio.TimerHandle | None = None
        self.sent = 0
        self.send_errors = 0

    def start(self, window: Window) -> None:
        self._window = window
        # call_at wants loop time; the cadence is planned in wall time, shared with the other processes.
        self._clock_offset = time.time() - self._loop.time()
        self._next = window.start_at + self._spec.phase
        self._handle = self._loop.call_at(self._next - self._clock_offset, self._tick)

    def _tick(self) -> None:
        sent_at = time.time()
        try:
            self._client.send_rtp(probe_payload(self._spec.client_id, self._sequence, sent_at, self._payload_bytes))
        except RuntimeError:
            self.send_errors += 1  # media dropped: the missing packets show up as lost
        else:
            if self._window.measure_from <= sent_at < self._window.measure_to:
                self.sent += 1
        self._sequence += 1
        self._next += PACKET_INTERVAL
        self._handle = self._loop.call_at(self._next - self._clock_offset, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def quiet_logging() -> None:
    # aiortc and aioice log at warning when a peer goes away at the end of a run; that is expected here.
    logging.basicConfig(level=logging.ERROR)


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when it is installed (the server does too), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def worker_main(conn: Connection, plan: WorkerPlan) -> None:
    """Entry point of a worker process (multiprocessing, spawn)."""
    quiet_logging()
    try:
        run_event_loop(_work(conn, plan))
    except Exception as exc:  # reported to the runner, which stops the run with this message
        with contextlib.suppress(OSError):
            conn.send(("error", f"worker failed: {exc!r}"))
    finally:
        conn.close()


async def _work(conn: Connection, plan: WorkerPlan) -> None:
    inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    reader = asyncio.create_task(_read_commands(conn, inbox))
    probe = Probe()
    clients: list[Client] = []
    try:
        await _join_all(conn, plan, probe, clients)
        others = plan.room_size - 1
        await asyncio.gather(*(c.wait_for(lambda c=c: _hears_all_it_will(c, others), 60.0) for c in clients))  # type: ignore[misc]
        conn.send(("ready",))
        message = await inbox.get()
        if message[0] != "start":
            return
        window: Window = message[1]
        speakers = [
            SyntheticSpeaker(client, spec, plan.payload_bytes)
            for client, spec in zip(clients, plan.clients, strict=True)
            if spec.speaker
        ]
        probe.measure_from, probe.measure_to = window.measure_from, window.measure_to
        for speaker in speakers:
            speaker.start(window)
        await inbox.get()  # stop
        for speaker in speakers:
            speaker.stop()
        await asyncio.sleep(DRAIN_SECONDS)
        conn.send((
            "result",
            WorkerResult(
                sent=sum(s.sent for s in speakers),
                received=probe.received,
                send_errors=sum(s.send_errors for s in speakers),
                latencies=probe.latencies.tobytes(),
            ),
        ))
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        reader.cancel()


def _hears_all_it_will(client: Client, others: int) -> bool:
    """A line for every other person, or in a room past ten people every one of its few lines carrying
    someone (the server says whom in ``forwarding``)."""
    lines = client.lines
    return len(client.negotiated_speakers()) >= others or (bool(lines) and None not in lines.values())


async def _read_commands(conn: Connection, inbox: asyncio.Queue[tuple[Any, ...]]) -> None:
    """Blocking reads in a thread (see ``runner._Workers``), until "stop" or the runner goes away."""
    while True:
        try:
            message: tuple[Any, ...] = await asyncio.to_thread(conn.recv)
        except (EOFError, OSError):
            message = ("stop",)
        inbox.put_nowait(message)
        if message[0] == "stop":
            return


async def _join_all(conn: Connection, plan: WorkerPlan, probe: Probe, clients: list[Client]) -> None:
    """Join every client, a few at a time, in plan order (``clients`` ends up in that order)."""
    slots = asyncio.Semaphore(plan.join_concurrency)
    joined: list[Client | None] = [None] * len(plan.clients)

    async def join(index: int, spec: ClientSpec) -> None:
        async with slots:
            client = Client(plan.url, spec.room, spec.name, ClientOptions(keep_packets=False, secret=plan.secret))
            client.on_packet = probe.on_packet
            started = time.monotonic()
            await client.connect(timeout=60.0)
            joined[index] = client
            conn.send(("joined", time.monotonic() - started))

    try:
        # A TaskGroup: when one join fails, the others are cancelled instead of left running.
        async with asyncio.TaskGroup() as group:
            for index, spec in enumerate(plan.clients):
                group.create_task(join(index, spec))
    finally:
        clients.extend(c for c in joined if c is not None)
