"""Counted calls in a child process (``python -m tests.support.callprocess call ...``), so that what a test does
in its own event loop (fuzzing, flooding) cannot delay the call it measures.
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

from tests.support.calls import TalkingCall
from tests.support.probes import udp_drops
from tests.support.server import ROOT, ServerProcess


class CallProcess:
    """Three-person calls in rooms ``rooms`` of ``server``, run by a child process until ``finish()``."""

    def __init__(self, server: ServerProcess, rooms: Sequence[str], members: int = 3) -> None:
        self.url = server.url
        self.log = server.data_dir / "calls.log"
        self.rooms = list(rooms)
        self.members = members
        self.proc: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}

    def start(self) -> CallProcess:
        """Returns once every call is negotiated; the child gives up by itself if joining takes over 30 s."""
        command = [sys.executable, "-m", "tests.support.callprocess", "call", self.url, *self.rooms]
        command += ["--members", str(self.members)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        # Its errors go to a file, not a pipe: a chatty child must never block on a pipe nobody reads.
        with self.log.open("wb") as errors:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the child prints one line once every call is negotiated
        if not line:
            raise RuntimeError(f"call process failed to start: {self._stderr()}")
        self.ready = json.loads(line)
        return self

    def finish(self, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """Stop talking, wait for the packets in flight, and return each room's ``TalkingCall.report()``."""
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        self.proc.wait(timeout)
        if not line:
            raise RuntimeError(f"call process ended without a report: {self._stderr()}")
        return json.loads(line)  # type: ignore[no-any-return]

    def _stderr(self) -> str:
        self.kill()
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> CallProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


async def _run_calls(url: str, rooms: Sequence[str], members: int) -> None:
    calls = [await TalkingCall.join(url, room, [f"{room[:8]}-{i}" for i in range(members)]) for room in rooms]
    for call in calls:
        call.start()
    print(json.dumps({room: call.report()["ids"] for room, call in zip(rooms, calls, strict=True)}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    for call in calls:
        await call.stop(settle=0)
    await asyncio.sleep(1.0)  # the packets in flight land (a lost one never would: nothing to wait for)
    drops = udp_drops(os.getpid())  # every call of this process shares the count
    reports = {room: {**call.report(), "listener_kernel_drops": drops} for room, call in zip(rooms, calls, strict=True)}
    print(json.dumps(reports), flush=True)
    for call in calls:
        await call.close()



def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.callprocess")
    sub = parser.add_subparsers(dest="command", required=True)
    call = sub.add_parser("call", help="run counted calls until a line arrives on stdin, then print a report")
    call.add_argument("url")
    call.add_argument("rooms", nargs="+")
    call.add_argument("--members", type=int, default=3)
    args = parser.parse_args(argv)
    asyncio.run(_run_calls(args.url, args.rooms, args.members))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
