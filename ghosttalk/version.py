"""Version and commit of the running code, shown at startup, in /healthz and in the page footer."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path


@cache
def version() -> str:
    try:
        return metadata.version("ghosttalk")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


@cache
def commit() -> str:
    """The build's commit: GHOSTTALK_COMMIT (set by the Docker build), else git when run from a checkout."""
    env = os.environ.get("GHOSTTALK_COMMIT", "").strip()
    if env:
        return env[:12]
    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / ".git").exists():
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=2,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"
