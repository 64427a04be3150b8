"""A real GhostTalk server in a child process, for tests that talk to it over loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ghosttalk.benchmark.server import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
# The admin key of every test server unless a test picks another (keys under 16 characters are refused).
TEST_ADMIN_KEY = "test-admin-key-0123456789"


class ServerProcess:
    """``python -m ghosttalk`` on free loopback ports with its own data directory."""

    def __init__(self, data_dir: Path, extra_args: Sequence[str] = (), admin_key: str = TEST_ADMIN_KEY) -> None:
        self.data_dir = data_dir
        self.admin_key = admin_key
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.rtc_port = free_port(socket.SOCK_DGRAM)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "console.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, room: str, name: str) -> str:
        from urllib.parse import urlencode

        return f"ws://127.0.0.1:{self.port}/ws?{urlencode({'room': room, 'name': name})}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "ghosttalk",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--rtc-udp-port", str(self.rtc_port),
            "--rtc-host", "127.0.0.1",
            "--rtc-bind", "127.0.0.1",
            "--data-dir", str(self.data_dir),
            "--admin-key", self.admin_key,
            "--log-level", "info",
            *self.extra_args,
        ]

    def start(self, timeout: float = 20.0) -> ServerProcess:
        return self.launch().wait_healthy(timeout)

    def launch(self) -> ServerProcess:
        """Start the process without waiting for it (several servers boot in parallel, then wait_healthy)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        log.close()
        return self

    def wait_healthy(self, timeout: float = 20.0) -> ServerProcess:
        assert self.proc is not None, "launch() first"
        try:
            wait_until_healthy(self.proc, self.url, timeout, self.console)
        except RuntimeError:
            self.stop()
            raise
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def console(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        code = end_process(self.proc, sig, timeout)
        self.proc = None
        return code

    def restart(self) -> ServerProcess:
        """Stop and start again on the same ports and data directory."""
        self.stop()
        return self.start()


def end_process(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> int | None:
    """Send ``sig`` to a child still running, wait up to ``timeout`` (then SIGKILL); its exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
