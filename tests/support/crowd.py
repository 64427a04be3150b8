"""Many headless people in one room from a child process (``python -m tests.support.crowd URL ROOM COUNT``), so
that a test can spread a room of 100 over a couple of processes (each aiortc connection costs CPU to set up).

The child joins COUNT people (a few at a time), each speaking a packet every 20 ms at a level set by its
index (or the first few playing tones, the rest silent), prints one JSON line once all are connected and
hear someone, waits for a line on stdin, then leaves and prints a last JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from ghosttalk.client.audio import tone
from ghosttalk.client.participant import Client, ClientOptions
from tests.support.server import ROOT, ServerProcess

JOINS_AT_ONCE = 5


class Crowd:
    """The parent's side: ``count`` people of ``room`` in a child process, until :meth:`leave`."""

    def __init__(
        self, server: ServerProcess, room: str, count: int, prefix: str, tones: Sequence[tuple[float, float]] = ()
    ) -> None:
        command = [sys.executable, "-m", "tests.support.crowd", server.url, room, str(count), "--prefix", prefix]
        command += [f"--tone={hz}:{amplitude}" for hz, amplitude in tones]
        self.log = server.data_dir / f"crowd-{prefix}.log"
        # Errors go to a file, not a pipe nobody reads (a chatty child must never block on it).
        with self.log.open("wb") as errors:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), text=True,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
            )

    def joined(self) -> dict[str, Any]:
        """Waits (the child gives up after 60 s) until all have joined and hear someone: their ids and lines."""
        return self._line()

    def leave(self, timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("leave\n")
        self.proc.stdin.flush()
        report = self._line()
        self.proc.wait(timeout)
        return report

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.kill()
            raise RuntimeError(f"crowd process failed: {self.log.read_text(errors='replace')[-3000:]}")
        return json.loads(line)  # type: ignore[no-any-return]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Crowd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


async def _crowd(url: str, room: str, count: int, prefix: str, tones: list[tuple[float, float]]) -> None:
    """``tones``: (Hz, amplitude) of the first members, who play that tone as Opus (with its level); the rest
    send a short payload every 20 ms at a level set by their index, or nothing if there are tones."""
    gate = asyncio.Semaphore(JOINS_AT_ONCE)
    members: dict[int, Client] = {}
    heard: set[int] = set()

    async def join(index: int) -> None:
        async with gate:
            client = Client(url, room, f"{prefix}{index}", ClientOptions(keep_packets=False))
            client.on_packet = lambda _owner, _packet: heard.add(index)
            await client.connect(timeout=60)
            client.audio_level = 30 + index % 60
            members[index] = client

    stop = asyncio.Event()

    async def speak() -> None:
        while not stop.is_set():
            for member in list(members.values()) if not tones else []:
                member.send_rtp(b"crowd" + bytes(40))
            await asyncio.sleep(0.02)

    async def play(client: Client, hz: float, amplitude: float) -> None:
        while True:
            await client.play(tone(hz, 10.0, amplitude))

    speaking = asyncio.create_task(speak())
    players: list[asyncio.Task[None]] = []
    try:
        await asyncio.gather(*(join(index) for index in range(count)))
        players = [asyncio.create_task(play(members[i], hz, amplitude)) for i, (hz, amplitude) in enumerate(tones)]
        await members[0].wait_for(lambda: len(heard) == count, 60)
        ordered = [members[index] for index in range(count)]
        report = {"ids": [m.self_id for m in ordered], "lines": [len(m.lines) for m in ordered]}
        print(json.dumps(report), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    finally:
        stop.set()
        for player in players:
            player.cancel()
        await asyncio.gather(speaking, *players, return_exceptions=True)
        await asyncio.gather(*(member.close() for member in members.values()), return_exceptions=True)
    print(json.dumps({"errors": [error for m in members.values() for error in m.errors]}), flush=True)


def _tone(text: str) -> tuple[float, float]:
    hz, amplitude = text.split(":")
    return float(hz), float(amplitude)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.crowd")
    parser.add_argument("url")
    parser.add_argument("room")
    parser.add_argument("count", type=int)
    parser.add_argument("--prefix", default="c")
    parser.add_argument("--tone", type=_tone, action="append", default=[], help="HZ:AMPLITUDE for the next member")
    args = parser.parse_args(argv)
    asyncio.run(_crowd(args.url, args.room, args.count, args.prefix, args.tone))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
