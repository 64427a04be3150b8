"""A receiver that stops reading its socket costs only its own stream.

Three people talk while a fourth, a separate ``ghosttalk join`` process, is frozen with SIGSTOP: it reads
nothing, so the kernel queues and then drops what the server keeps sending it. The three others must get
every packet, no later than before the freeze.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ghosttalk.benchmark.workers import PROBE, probe_payload
from ghosttalk.client.participant import Client, ReceivedPacket
from tests.conftest import RELAXED_LIMITS
from tests.support.room import clients
from tests.support.server import ROOT, ServerProcess

ROOM = "slow-receiver"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", RELAXED_LIMITS).start()
    try:
        yield proc
    finally:
        proc.stop()


def udp_receive_state(pid: int) -> tuple[int, int]:
    """(bytes waiting, datagrams dropped) summed over the UDP sockets of process ``pid``."""
    inodes = {os.readlink(fd)[8:-1] for fd in Path(f"/proc/{pid}/fd").iterdir() if "socket:" in os.readlink(fd)}
    waiting = dropped = 0
    for table in ("udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                waiting += int(fields[4].split(":")[1], 16)
                dropped += int(fields[12])
    return waiting, dropped


class Listener:
    """Latency (arrival - send time in the payload) of everything one client hears."""

    def __init__(self, client: Client) -> None:
        self.latencies: list[float] = []
        client.on_packet = self.on_packet

    def on_packet(self, speaker_id: str, packet: ReceivedPacket) -> None:
        self.latencies.append(packet.arrival - PROBE.unpack_from(packet.payload)[2])


async def talk(speakers: list[Client], seconds: float) -> int:
    """Every speaker sends 50 packets per second, spread over the 20 ms period; returns packets each sent."""
    count = int(seconds * 50)
    for sequence in range(count):
        for index, speaker in enumerate(speakers):
            speaker.send_rtp(probe_payload(index, sequence, time.time(), 80))
            await asyncio.sleep(0.02 / len(speakers))
    await asyncio.sleep(0.5)  # the last packets land (some may be lost: no count to wait for)
    return count


async def test_a_frozen_receiver_does_not_slow_the_others(server: ServerProcess) -> None:
    async with clients(server, ROOM, ["ann", "ben", "cat"], keep_packets=False) as members:
        frozen = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ghosttalk", "join", f"{server.url}/r/{ROOM}", "--name", "frozen", "--seconds", "60",
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for member in members:
                await member.wait_for(lambda m=member: len(m.negotiated_speakers()) == 3, 20)
            # The frozen one answers the offer carrying the three voices; nothing outside it shows when.
            await asyncio.sleep(1.0)
            listeners = [Listener(m) for m in members]

            sent = await talk(members, 2.0)
            before = [list(listener.latencies) for listener in listeners]
            waiting, dropped_before = udp_receive_state(frozen.pid)
            assert dropped_before == 0, "still reading: nothing dropped yet"

            frozen.send_signal(signal.SIGSTOP)
            for listener in listeners:
                listener.latencies.clear()
            sent_frozen = await talk(members, 5.0)
            during = [list(listener.latencies) for listener in listeners]
            waiting, dropped = udp_receive_state(frozen.pid)
        finally:
            # Killed, not asked: a process thawed with seconds of backlog may take its time to leave.
            frozen.kill()
            await asyncio.wait_for(frozen.wait(), 10)

    # The server kept sending to the frozen receiver: its socket filled up and the kernel dropped the rest.
    assert waiting > 0 and dropped > 0, (waiting, dropped)
    for heard_before, heard_during in zip(before, during, strict=True):
        # Everyone else heard every packet of the two other speakers, before and during the freeze ...
        assert len(heard_before) == 2 * sent and len(heard_during) == 2 * sent_frozen
        # ... and no later (medians: robust against the odd scheduling hiccup of a shared machine).
        assert statistics.median(heard_during) < statistics.median(heard_before) * 3 + 0.002
