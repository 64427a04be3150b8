"""The server under test: a ``python -m ghosttalk`` child on loopback, and what /proc says about it."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
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
from typing import Any

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


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, theirs, ...), from the parent field of /proc/*/stat: no
    kernel option needed (/proc/<pid>/task/*/children is one)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdecimal():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited while we looked
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return sorted(found)


def sample_tree(pid: int) -> dict[int, ProcessSample]:
    """``pid`` and every process below it (a ``--workers`` supervisor and its nodes), each sampled; a process
    that exits meanwhile is left out."""
    samples = {pid: sample_process(pid)}
    for child in descendants(pid):
        try:
            samples[child] = sample_process(child)
        except (OSError, ValueError):
            continue
    return samples


def node_id_of(pid: int) -> str | None:
    """The ``--node-id`` a ``--workers`` supervisor gave this child (the last one on its command line wins, as
    in argparse), or None."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    found = None
    for index, arg in enumerate(args):
        if arg == b"--node-id" and index + 1 < len(args):
            found = args[index + 1].decode(errors="replace")
        elif arg.startswith(b"--node-id="):
            found = arg.partition(b"=")[2].decode(errors="replace")
    return found


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


def block_of_udp_ports(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive loopback UDP ports that are all free just now (``--workers`` nodes
    take rtc-udp-port, +1, ...)."""
    for _ in range(attempts):
        first = free_port(socket.SOCK_DGRAM)
        if first + count - 1 > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue  # one of them is taken: try another block
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError(f"found no {count} consecutive free UDP ports on 127.0.0.1")


class PrivateRedis:
    """Debian's ``redis-server`` on a free loopback port, in memory only, for the cluster under test."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "--server-workers needs redis-server, which is not installed (Debian: apt-get install redis-server)"
            )
        self.port = free_port(socket.SOCK_STREAM)
        self._command = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                         "--appendonly", "no", "--dir", str(directory), "--daemonize", "no"]  # fmt: skip
        self._log = directory / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, timeout: float = 10.0) -> None:
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(self._command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        tail = self._log.read_text(errors="replace")[-2000:] if self._log.exists() else ""
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}:\n{tail}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=2) as response:
        return json.loads(response.read())


def wait_for_nodes(url: str, admin_key: str, count: int, timeout: float, alive: Callable[[], str | None]) -> None:
    """Until the cluster's registry lists ``count`` live nodes, none draining, and each has answered /healthz on
    the shared port (the kernel spreads new connections over the nodes' listeners; a node not yet listening
    gets none). RuntimeError naming what was missing when ``timeout`` runs out, or when ``alive()`` reports a
    problem (the supervisor exited)."""
    deadline = time.monotonic() + timeout
    registered: list[str] = []
    answered: set[str] = set()
    while time.monotonic() < deadline:
        problem = alive()
        if problem is not None:
            raise RuntimeError(problem)
        try:
            stats = _get_json(f"{url}/admin?action=stats", {"X-Admin-Key": admin_key})
            registered = sorted(node["id"] for node in stats.get("nodes", []) if not node.get("draining"))
            # Each probe a new connection (urllib does not keep them), so each may land on another node.
            for _ in range(8):
                answered.add(str(_get_json(f"{url}/healthz").get("node")))
        except (OSError, ValueError):
            pass  # not all up yet
        if len(registered) == count and answered >= set(registered):
            return
        time.sleep(0.2)
    raise RuntimeError(
        f"the cluster did not come up within {timeout:g} s: {len(registered)} of {count} nodes registered "
        f"({', '.join(registered) or 'none'}), answered on the shared port: {', '.join(sorted(answered)) or 'none'}"
    )


class LocalServer:
    """A server on free loopback ports with limits raised so that the whole load fits from one address.

    With ``workers`` > 1, a cluster on this machine: a private Redis and ``ghosttalk --workers N`` (a supervisor
    whose N child nodes share the HTTP port and take consecutive UDP ports); ``pid`` is the supervisor's."""

    def __init__(self, room_size: int, peers: int, rooms: int, workers: int = 1) -> None:
        self.port = free_port(socket.SOCK_STREAM)
        self.workers = workers
        self.rtc_port = free_port(socket.SOCK_DGRAM) if workers == 1 else block_of_udp_ports(workers)
        self._limits = (room_size, peers, rooms)
        self._dir = tempfile.TemporaryDirectory(prefix="ghosttalk-bench-")
        self._proc: subprocess.Popen[bytes] | None = None
        self.admin_key = secrets.token_urlsafe(16)
        try:
            self.redis: PrivateRedis | None = PrivateRedis(Path(self._dir.name)) if workers > 1 else None
        except RuntimeError:
            self._dir.cleanup()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def command(self) -> list[str]:
        room_size, peers, rooms = self._limits
        command = [
            sys.executable, "-m", "ghosttalk",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--rtc-udp-port", str(self.rtc_port), "--rtc-host", "127.0.0.1", "--rtc-bind", "127.0.0.1",
            "--data-dir", str(Path(self._dir.name) / "data"),
            # One argument: a random key may begin with "-", which argparse would take for an option.
            f"--admin-key={self.admin_key}",
            "--log-level", "warning",
            # Every synthetic client comes from 127.0.0.1: the per-address limits must not bind.
            "--max-conns-per-ip", str(peers + 10),
            "--join-rate", str(60.0 * (peers + 10)), "--join-burst", str(peers + 10),
            "--max-room-peers", str(room_size), "--max-peers", str(peers + 10), "--max-rooms", str(rooms + 10),
        ]  # fmt: skip
        if self.redis is not None:
            # Each node gets these same limits; a short drain, as the bench's people have all left by the stop.
            command += ["--workers", str(self.workers), f"--redis-url={self.redis.url}", "--drain-timeout", "5"]
        return command

    def log_tail(self, lines: int = 30) -> str:
        path = Path(self._dir.name) / "console.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _exited(self) -> str | None:
        if self._proc is not None and self._proc.poll() is not None:
            return f"server exited with {self._proc.returncode}:\n{self.log_tail()}"
        return None

    def start(self, timeout: float = 30.0) -> None:
        env = dict(os.environ, PYTHONPATH=str(_PROJECT_ROOT), PYTHONUNBUFFERED="1")
        try:
            if self.redis is not None:
                self.redis.start()
            with (Path(self._dir.name) / "console.log").open("ab") as log:
                self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
            wait_until_healthy(self._proc, self.url, timeout, self.log_tail)
            if self.redis is not None:
                # Measuring before every node is up would put the whole load on the first one.
                wait_for_nodes(self.url, self.admin_key, self.workers, timeout, self._exited)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # The supervisor's nodes are in their own process groups: note them, so that none outlives a
            # supervisor that has to be killed.
            nodes = descendants(proc.pid)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                for node in nodes:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(node, signal.SIGKILL)
                proc.kill()
                proc.wait()
        if self.redis is not None:
            self.redis.stop()
        self._dir.cleanup()
