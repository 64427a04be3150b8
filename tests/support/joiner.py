"""``ghosttalk join`` (the headless command-line participant) in a child process.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.server import ROOT, ServerProcess


@contextlib.contextmanager
def child_joiner(server: ServerProcess, room: str, name: str, play: Path, log: Path) -> Iterator[
    subprocess.Popen[bytes]
]:
    """``ghosttalk join <room link> --play <wav>`` in a child process, killed at the end whatever happened."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ghosttalk", "join", f"{server.url}/r/{room}", "--name", name, "--play", str(play),
             "--seconds", "120"],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
