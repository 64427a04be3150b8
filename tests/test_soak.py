"""Soak: join/leave cycles of every kind, then nothing is left behind.

Kinds, in rotation: a clean join-talk-leave; a socket that vanishes (TCP reset) before offering; a client
killed before ICE completes (it offers, gets the answer, vanishes); a client killed mid-call (media up, then
its network goes dark and its socket is reset, as when a process dies); a raw socket closed cleanly with no
offer. Every 50th cycle a real ``ghosttalk join`` process is killed with SIGKILL mid-call. Two residents
keep talking in the main room throughout.

Afterwards, once the residents have left too, open file descriptors, UDP sockets (exactly 1), asyncio tasks,
peer connections and ICE address mappings are back to their baseline, RSS is within +10 MB of its level
after warm-up, and the residents heard each other the whole time.

``GHOSTTALK_SOAK_CYCLES`` overrides the count (default 100; the ``slow`` run does 500);
``GHOSTTALK_SOAK_PLOT=path.png`` draws RSS, tasks and descriptors per cycle.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ghosttalk.client.audio import tone, write_wav
from ghosttalk.client.participant import Client
from tests.conftest import RELAXED_LIMITS
from tests.support.calls import TalkingCall, assert_delivered
from tests.support.eventually import eventually
from tests.support.joiner import child_joiner
from tests.support.probes import admin_json, open_fds, rss_bytes, tracebacks, udp_drops, udp_sockets
from tests.support.rawpeer import RawPeer, dead_offer
from tests.support.rawws import RawWebSocket
from tests.support.server import ServerProcess

LANES = 3
RESIDENT_ROOM = "soak"
KINDS = ("clean", "vanish", "before-ice", "mid-call", "closed")
PROCESS_EVERY = 50
RSS_SLACK = 10 * 1024 * 1024
MAX_ROOM_PEERS = 10  # the server's default
LEAK_COUNTS = ("peer_media_alive", "ice_ufrags", "ice_addresses", "room_tasks", "asyncio_tasks")


@pytest.fixture
def soak_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", RELAXED_LIMITS).start()
    try:
        yield proc
    finally:
        proc.stop()


@dataclass(slots=True)
class Sample:
    cycle: int
    rss: int
    tasks: int
    fds: int
    peers: int


class Soak:
    def __init__(self, server: ServerProcess, tmp_path: Path) -> None:
        self.server = server
        self.tmp_path = tmp_path
        self.offer = ""
        self.wav = tmp_path / "tone.wav"
        self.kinds: dict[str, int] = dict.fromkeys([*KINDS, "process"], 0)

    async def cycle(self, index: int) -> None:
        room = RESIDENT_ROOM if index % 2 == 0 else f"soak-{index % 7}"
        name = f"c{index}"
        if index % PROCESS_EVERY == PROCESS_EVERY - 1:
            await self.killed_process(room, name)
            self.kinds["process"] += 1
            return
        kind = KINDS[index % len(KINDS)]
        self.kinds[kind] += 1
        if kind == "clean":
            client = await Client(self.server.url, room, name).connect(timeout=30)
            for _ in range(5):
                client.send_rtp(b"soak")
                await asyncio.sleep(0.02)
            await client.close()
        elif kind == "vanish":
            ws = await RawWebSocket.join(self.server, room, name)
            await ws.wait_message("room_state")
            ws.abort()
        elif kind == "before-ice":
            ws = await RawWebSocket.join(self.server, room, name)
            await ws.wait_message("room_state")
            ws.send_json({"type": "offer", "sdp": self.offer})
            await ws.wait_message("answer")
            ws.abort()
        elif kind == "mid-call":
            peer = await RawPeer.join(self.server, room, name)
            await peer.connected()
            await asyncio.sleep(0.1)  # deliberate: die a moment into the call, not at its first instant
            await peer.kill()
        else:
            ws = await RawWebSocket.join(self.server, room, name)
            await ws.wait_message("room_state")
            await ws.close()

    async def killed_process(self, room: str, name: str) -> None:
        with child_joiner(self.server, room, name, self.wav, self.tmp_path / f"{name}.log") as child:
            listener = await Client(self.server.url, room, f"l{name}").connect(timeout=30)
            try:
                await listener.wait_for(lambda: any(p.name == name for p in listener.peers.values()), 60)
                child_id = next(p.id for p in listener.peers.values() if p.name == name)
                await listener.wait_for(lambda: child_id in listener.speakers(), 30)
                child.send_signal(signal.SIGKILL)
                await listener.wait_for(lambda: child_id not in listener.peers, 20)
            finally:
                await listener.close()

    def sample(self, cycle: int) -> Sample:
        fds = open_fds(self.server.pid)
        internals = admin_json(self.server, "internals")
        return Sample(cycle, rss_bytes(self.server.pid), int(internals["asyncio_tasks"]),  # type: ignore[call-overload]
                      fds, int(internals["peer_media_alive"]))  # type: ignore[call-overload]


def plot(samples: list[Sample], warm: Sample, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cycles = [s.cycle for s in samples]
    figure, (memory, counts) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    memory.plot(cycles, [s.rss / 2**20 for s in samples], color="tab:blue", label="server RSS")
    memory.axhline(warm.rss / 2**20 + RSS_SLACK / 2**20, color="tab:red", linestyle="--", label="warm-up + 10 MB")
    memory.axvline(warm.cycle, color="grey", linestyle=":", label="end of warm-up")
    memory.set_ylabel("MB")
    memory.legend(loc="center right")
    memory.set_title(f"GhostTalk soak: {cycles[-1]} join/leave cycles, {LANES} at a time")
    counts.plot(cycles, [s.tasks for s in samples], label="asyncio tasks")
    counts.plot(cycles, [s.fds for s in samples], label="open file descriptors")
    counts.plot(cycles, [s.peers for s in samples], label="peer connections alive")
    counts.set_xlabel("cycles completed")
    counts.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


async def run_soak(server: ServerProcess, tmp_path: Path, cycles: int) -> None:
    soak = Soak(server, tmp_path)
    soak.offer = await dead_offer()
    write_wav(soak.wav, tone(330.0, 20.0))
    # One join first, so that what is opened once and kept (the event log file) is in the baseline.
    opener = await RawWebSocket.join(server, "warm", "w")
    await opener.wait_message("room_state")
    await opener.close()
    await eventually(lambda: admin_json(server, "stats")["users"] == 0, 10)
    # Descriptors are counted before each admin request: its own connection would otherwise be one of them.
    # The server closes the connections of the requests above a moment after answering; no count shows when.
    await asyncio.sleep(0.5)
    baseline_fds = open_fds(server.pid)
    baseline = admin_json(server, "internals")
    residents = await TalkingCall.join(server.url, RESIDENT_ROOM, ["res1", "res2"])
    try:
        residents.start()
        samples = [soak.sample(0)]
        slots = 0
        warm_up = max(LANES, cycles // 5)
        started = time.monotonic()
        for first in range(0, cycles, LANES):
            lane = range(first, min(first + LANES, cycles))
            await asyncio.wait_for(asyncio.gather(*(soak.cycle(i) for i in lane)), 120)
            samples.append(soak.sample(lane[-1] + 1))
            slots = max(slots, *(len(m.pc.getTransceivers()) for m in residents.members if m.pc is not None))
        took = time.monotonic() - started
        await residents.stop()
        report = {**residents.report(), "listener_kernel_drops": udp_drops(os.getpid())}
    finally:
        await residents.close()

    # Everyone has gone: everything is released (leaves finish asynchronously: give them a moment).
    def settled() -> bool:
        fds = open_fds(server.pid)
        now = admin_json(server, "internals")
        return fds == baseline_fds and all(now[key] == baseline[key] for key in LEAK_COUNTS)

    await eventually(
        settled,
        30,
        what="the server back to its baseline",
        interval=0.5,
        detail=lambda: f"now {admin_json(server, 'internals')} fds {open_fds(server.pid)}; "
        f"baseline {baseline} fds {baseline_fds}",
    )
    assert udp_sockets(server.pid) == 1
    await asyncio.sleep(0.5)  # as before the baseline: the admin requests' connections close
    final = soak.sample(cycles)
    samples.append(final)
    warm = next(s for s in samples if s.cycle >= warm_up)
    assert final.rss <= warm.rss + RSS_SLACK, (
        f"RSS grew {(final.rss - warm.rss) / 2**20:.1f} MB after warm-up: "
        + json.dumps([[s.cycle, round(s.rss / 2**20, 1)] for s in samples])
    )
    # The residents heard each other throughout, and the forwarding transceivers on their connections (pooled
    # for reuse as people come and go) stayed within what a full room needs.
    assert_delivered(report)
    assert slots <= MAX_ROOM_PEERS + 1, f"{slots} transceivers on a resident's connection"
    assert not tracebacks(server.console()), "\n\n".join(tracebacks(server.console()))
    print(f"\nsoak: {cycles} cycles {soak.kinds} in {took:.0f} s; RSS {samples[0].rss / 2**20:.1f} MB at start, "
          f"{warm.rss / 2**20:.1f} after warm-up, {max(s.rss for s in samples) / 2**20:.1f} peak, "
          f"{final.rss / 2**20:.1f} at the end; tasks {baseline['asyncio_tasks']} -> {max(s.tasks for s in samples)} "
          f"peak -> {final.tasks}; fds {baseline_fds} -> {final.fds}; resident transceivers up to {slots}; "
          f"residents {report['received']}/{report['expected']} packets")
    if os.environ.get("GHOSTTALK_SOAK_PLOT"):
        plot(samples, warm, Path(os.environ["GHOSTTALK_SOAK_PLOT"]))


async def test_soak(soak_server: ServerProcess, tmp_path: Path) -> None:
    await run_soak(soak_server, tmp_path, int(os.environ.get("GHOSTTALK_SOAK_CYCLES", "100")))


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_soak_full(soak_server: ServerProcess, tmp_path: Path) -> None:
    await run_soak(soak_server, tmp_path, int(os.environ.get("GHOSTTALK_SOAK_CYCLES", "500")))
