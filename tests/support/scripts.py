"""Running the deployment scripts in tests: executables written on the fly, an environment without GhostTalk's
settings leaking in from outside, and waiting for a server a script started to answer /healthz."""

from __future__ import annotations

import os
import stat
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from ghosttalk.config import OPTIONS
from tests.support.eventually import eventually_sync


def write_executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any GhostTalk setting that could leak in from the outside."""
    names = {option.env for option in OPTIONS}
    names |= {"NETWORK_MODE", "UDP_PORT", "HTTP_BIND_HOST", "IMAGE_NAME", "CONTAINER_NAME", "SSH_OPTS"}
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(extra)
    return env


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    def healthy() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return http_status(f"{url}/healthz") == 200
        except OSError:
            return False

    eventually_sync(healthy, 20, what="/healthz answering 200", detail=log.read_text)
