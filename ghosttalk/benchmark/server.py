"""The server under test: a ``python -m ghosttalk`` child on loopback, and what /proc says about it."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(slots=True, frozen=True)
class ProcessSample:
    """CPU time and memory of a process at one instant."""

    cpu_seconds: float
    system_seconds: float
    rss_mb: float
    peak_rss_mb: float


def sample_process(pid: int) -> ProcessSample:
    """utime + stime from /proc/<pid>/stat, VmRSS and VmHWM (peak) from /proc/<pid>/status."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces and parentheses: fields are counted from the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    user, system = int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS
    memory = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            memory[key] = int(value.split()[0]) / 1024
    return ProcessSample(user + system, system, memory.get("VmRSS", 0.0), memory.get("VmHWM", 0.0))


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A loopback port the kernel has just handed out (TCP or UDP), for a server started next."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(proc: subprocess.Popen[bytes], url: str, timeout: float, log_tail: Callable[[], str]) -> None:
    """Poll ``url``/healthz until it answers 200; RuntimeError with the console's tail if the process exits
    or ``timeout`` runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_tail()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not become healthy within {timeout:g} s:\n{log_tail()}")


class LocalServer:
    """A server on free loopback ports with limits raised so that the whole load fits from one address."""

    def __init__(self, room_size: int, peers: int, rooms: int) -> None:
        self.port = free_port(socket.SOCK_STREAM)
        self.rtc_port = free_port(socket.SOCK_DGRAM)
        self._limits = (room_size, peers, rooms)
        self._dir = tempfile.TemporaryDirectory(prefix="ghosttalk-bench-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def command(self) -> list[str]:
        room_size, peers, rooms = self._limits
        return [
            sys.executable, "-m", "ghosttalk",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--rtc-udp-port", str(self.rtc_port), "--rtc-host", "127.0.0.1", "--rtc-bind", "127.0.0.1",
            "--data-dir", str(Path(self._dir.name) / "data"),
            # One argument: a random key may begin with "-", which argparse would take for an option.
            f"--admin-key={secrets.token_urlsafe(16)}",
            "--log-level", "warning",
            # Every synthetic client comes from 127.0.0.1: the per-address limits must not bind.
            "--max-conns-per-ip", str(peers + 10),
            "--join-rate", str(60.0 * (peers + 10)), "--join-burst", str(peers + 10),
            "--max-room-peers", str(room_size), "--max-peers", str(peers + 10), "--max-rooms", str(rooms + 10),
        ]  # fmt: skip

    def log_tail(self, lines: int = 30) -> str:
        path = Path(self._dir.name) / "console.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def start(self, timeout: float = 30.0) -> None:
        env = dict(os.environ, PYTHONPATH=str(_PROJECT_ROOT), PYTHONUNBUFFERED="1")
        with (Path(self._dir.name) / "console.log").open("ab") as log:
            self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_until_healthy(self._proc, self.url, timeout, self.log_tail)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._dir.cleanup()
