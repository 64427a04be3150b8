"""Calls whose delivery is counted: headless clients in a room talk at 50 packets per second and a
:class:`TalkingCall` counts, per speaker and listener, what was sent, what arrived and the longest silence.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ghosttalk.client.participant import Client, ClientOptions, ReceivedPacket
from tests.support.eventually import eventually
from tests.support.room import negotiated
from tests.support.server import TEST_ADMIN_KEY

PACKETS_PER_SECOND = 50
PAYLOAD = struct.Struct("!HI")  # speaker index in the call, sequence number


@dataclass
class Flow:
    """What one speaker sent to one listener."""

    received: set[int] = field(default_factory=set)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic()

    def max_gap(self) -> float:
        """The longest silence between two arrivals, in seconds."""
        return max((b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)), default=0.0)


async def server_connected(url: str, room: str, count: int, timeout: float) -> None:
    """Wait until the server's side of every connection in ``room`` is up too. A client is connected once it
    has its own DTLS keys, but on a lossy link the server's last handshake flight may still be retransmitting
    for seconds, and a measurement started then counts that time as lost audio."""

    def connected() -> int:
        request = urllib.request.Request(f"{url}/admin?action=rooms", headers={"X-Admin-Key": TEST_ADMIN_KEY})
        with urllib.request.urlopen(request, timeout=5) as response:
            rooms = json.loads(response.read())["rooms"]
        return sum(1 for r in rooms if r["room"] == room for p in r["peers"] if p["candidate_type"] is not None)

    await eventually(
        lambda: asyncio.to_thread(connected), timeout, what=f"the server connected all {count} people in {room!r}",
        until=lambda n: n >= count,
    )


class TalkingCall:
    """Headless clients in one room, each sending ``PACKETS_PER_SECOND`` numbered packets to the others.

    A listener attributes a packet by the speaker index in its payload, not by stream, so counts stay right
    across renegotiation. ``stop()`` ends sending and leaves a moment for the packets in flight."""

    def __init__(self, members: Sequence[Client]) -> None:
        self.members = list(members)
        self.sent = [0] * len(members)
        self.sent_at: list[list[float]] = [[] for _ in members]  # wall clock, to line losses up with server logs
        self.flows: dict[tuple[int, int], Flow] = {
            (s, r): Flow() for s in range(len(members)) for r in range(len(members)) if s != r
        }
        self.other_packets: list[dict[str, int]] = [{} for _ in members]  # from people outside the call
        self._tasks: list[asyncio.Task[None]] = []
        for index, member in enumerate(self.members):
            member.on_packet = self._receiver(index)

    @classmethod
    async def join(
        cls, url: str, room: str, names: Sequence[str], options: Sequence[ClientOptions] | None = None
    ) -> TalkingCall:
        joined: list[Client] = []
        try:
            for index, name in enumerate(names):
                opts = options[index] if options else ClientOptions(keep_packets=False)
                joined.append(await Client(url, room, name, opts).connect(timeout=30))
            await negotiated(joined, timeout=30)
            await server_connected(url, room, len(joined), timeout=30)
        except BaseException:
            await asyncio.gather(*(c.close() for c in joined), return_exceptions=True)
            raise
        return cls(joined)

    def _receiver(self, listener: int) -> Callable[[str, ReceivedPacket], None]:
        def on_packet(owner: str, packet: ReceivedPacket) -> None:
            if len(packet.payload) >= PAYLOAD.size:
                speaker, sequence = PAYLOAD.unpack_from(packet.payload)
                flow = self.flows.get((speaker, listener))
                if flow is not None and packet.payload[PAYLOAD.size :] == b"call":
                    flow.received.add(sequence)
                    flow.arrivals.append(time.monotonic())
                    return
            counts = self.other_packets[listener]
            counts[owner] = counts.get(owner, 0) + 1

        return on_packet

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._speak(i)) for i in range(len(self.members))]

    async def _speak(self, index: int) -> None:
        member = self.members[index]
        start = time.monotonic()
        tick = 0
        while True:
            tick += 1
            await asyncio.sleep(max(0.0, start + tick / PACKETS_PER_SECOND - time.monotonic()))
            try:
                member.send_rtp(PAYLOAD.pack(index, self.sent[index]) + b"call")
            except RuntimeError:
                continue  # media not connected (a member that is rejoining): nothing was sent
            self.sent[index] += 1
            self.sent_at[index].append(time.time())

    async def stop(self, settle: float = 1.0) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.sleep(settle)

    async def close(self) -> None:
        await self.stop(settle=0)
        await asyncio.gather(*(m.close() for m in self.members), return_exceptions=True)

    def delivered(self, speaker: int, listener: int) -> int:
        return len(self.flows[speaker, listener].received)

    def _losses(self, speaker: int, flow: Flow, limit: int = 20) -> list[str]:
        """Runs of lost packets as "HH:MM:SS.mmm xN" (when the first was sent, how many), for failure messages."""
        runs: list[str] = []
        sequence = 0
        while sequence < self.sent[speaker] and len(runs) < limit:
            if sequence in flow.received:
                sequence += 1
                continue
            start = sequence
            while sequence < self.sent[speaker] and sequence not in flow.received:
                sequence += 1
            when = self.sent_at[speaker][start]
            clock = time.strftime("%H:%M:%S", time.localtime(when))
            runs.append(f"{clock}.{int(when % 1 * 1000):03d} x{sequence - start}")
        return runs

    def report(self) -> dict[str, Any]:
        """Totals and the longest gap between arrivals on any flow (``stop()`` first)."""
        expected = sum(self.sent[s] for (s, _r) in self.flows)
        received = sum(len(f.received) for f in self.flows.values())
        return {
            "sent": list(self.sent),
            "expected": expected,
            "received": received,
            "delivery": received / expected if expected else 0.0,
            "max_gap": max((f.max_gap() for f in self.flows.values()), default=0.0),
            "flows": {f"{s}->{r}": [self.sent[s], len(f.received)] for (s, r), f in self.flows.items()},
            "losses": {
                f"{s}->{r}": self._losses(s, f) for (s, r), f in self.flows.items() if len(f.received) < self.sent[s]
            },
            "ids": [m.self_id for m in self.members],
            "other_packets": self.other_packets,
        }



def assert_delivered(report: Mapping[str, Any], minimum: float = 0.999) -> None:
    """At least ``minimum`` of the packets arrived, not counting those the listeners' own kernel dropped."""
    allowed = report["expected"] * (1 - minimum) + report.get("listener_kernel_drops", 0)
    lost = report["expected"] - report["received"]
    assert lost <= allowed, json.dumps({k: v for k, v in report.items() if k != "flows"}, indent=1)
