"""A private redis-server in a child process, for cluster tests (never the system one on 6379)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from ghosttalk.benchmark.server import free_port
from tests.support.server import end_process

# scripts/test.sh installs Debian's redis-server; the fixture's failure message points there.
INSTALL_HINT = "redis-server is not installed: run scripts/test.sh (it installs Debian's redis-server)"


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


class RedisServer:
    """``redis-server`` on a free loopback TCP port with its own directory.

    Persistence is off unless ``persistent=True`` (append-only file), so that a restart starts empty, which is
    what "Redis lost its data" tests want; ``persistent=True`` tests a Redis that keeps its data over a restart.
    """

    def __init__(self, directory: Path | None = None, persistent: bool = False) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        self.binary = binary
        self.persistent = persistent
        self._own_dir = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="ghosttalk-redis-")) if directory is None else directory
        self.port = free_port()
        self.log_path = self.directory / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            self.binary,
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--daemonize", "no",
        ]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        try:
            self._wait_for_ping(timeout)
        except RuntimeError:
            self.kill()
            raise
        return self

    def _wait_for_ping(self, timeout: float) -> None:
        assert self.proc is not None
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"redis-server did not answer PING within {timeout} s:\n{self.log()}")
                time.sleep(0.05)
        finally:
            client.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait (a persistent server flushes its append-only file); SIGKILL if it hangs."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL: the Redis machine vanishes without a word."""
        return self._end(signal.SIGKILL, 10.0)

    def _end(self, sig: int, timeout: float) -> int | None:
        code = end_process(self.proc, sig, timeout)
        self.proc = None
        return code

    def restart(self, timeout: float = 10.0) -> RedisServer:
        """Stop (if running) and start again on the SAME port, so clients' URLs stay valid."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop, and remove the directory if this object made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
