"""scripts/serve.sh and scripts/bootstrap.sh: pip runs only when .venv is not yet installed from this
pyproject.toml with the extra asked for, so that a start with nothing changed works offline.

The scripts run in a copy of the repository's layout whose ``.venv/bin/python`` is a stand-in that records
every call (the real install is the suite's own venv, which must not be touched), with stand-ins for the
Debian tools and the package index pointed at a closed local port, so that a call that reached for the
network would fail rather than pass unnoticed.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Records its arguments; as pip, fails when FAIL_PIP is set (an install that broke half-way).
FAKE_PYTHON = """#!/usr/bin/env bash
echo "python $*" >>"$CALLS"
if [ "${1:-}" = -m ] && [ "${2:-}" = pip ] && [ -n "${FAIL_PIP:-}" ]; then exit 1; fi
"""
FAKE_GHOSTTALK = """#!/usr/bin/env bash
echo "ghosttalk${*:+ $*}" >>"$CALLS"
"""
# Every Debian package counts as installed; apt-get and sudo must not be reached.
FAKE_DPKG_QUERY = """#!/usr/bin/env bash
printf 'install ok installed'
"""
REFUSE = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >>"$CALLS"
exit 1
"""


def executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Checkout:
    """A repository copy with the real scripts and pyproject.toml and a stand-in .venv."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls = root / "calls.log"
        (root / "scripts").mkdir(parents=True)
        for script in ("bootstrap.sh", "serve.sh"):
            shutil.copy2(ROOT / "scripts" / script, root / "scripts" / script)
        shutil.copy2(ROOT / "pyproject.toml", root / "pyproject.toml")
        executable(root / ".venv" / "bin" / "python", FAKE_PYTHON)
        executable(root / ".venv" / "bin" / "ghosttalk", FAKE_GHOSTTALK)
        tools = root / "tools"
        executable(tools / "dpkg-query", FAKE_DPKG_QUERY)
        for name in ("apt-get", "sudo"):
            executable(tools / name, REFUSE)
        self.env = {
            **os.environ,
            "PATH": f"{tools}:{os.environ['PATH']}",
            "CALLS": str(self.calls),
            "PIP_INDEX_URL": f"http://127.0.0.1:{closed_port()}/simple",
        }

    def run(self, *command: str, **env: str) -> tuple[int, list[str]]:
        """Run a script; its exit status and the calls it made."""
        self.calls.write_text("")
        result = subprocess.run(
            [str(self.root / command[0]), *command[1:]],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.returncode, self.calls.read_text().splitlines()


def pip_calls(calls: list[str]) -> list[str]:
    return [call for call in calls if call.startswith("python -m pip")]


def test_serve_installs_once_and_then_starts_without_pip(tmp_path: Path) -> None:
    checkout = Checkout(tmp_path / "repo")
    status, calls = checkout.run("scripts/serve.sh", "-port", "9000")
    assert status == 0
    assert pip_calls(calls) == [
        "python -m pip install --quiet --upgrade pip",
        "python -m pip install --quiet -e .[fast]",
    ]
    assert calls[-1] == "ghosttalk -port 9000"
    for _ in range(2):
        status, calls = checkout.run("scripts/serve.sh", "-rtc-host", "127.0.0.1")
        assert status == 0
        assert calls == ["ghosttalk -rtc-host 127.0.0.1"]  # no pip, no apt-get


def test_a_changed_pyproject_or_another_extra_installs_again(tmp_path: Path) -> None:
    checkout = Checkout(tmp_path / "repo")
    assert pip_calls(checkout.run("scripts/bootstrap.sh", "test")[1])
    assert not pip_calls(checkout.run("scripts/bootstrap.sh", "test")[1])
    # Another extra has not been installed yet.
    assert pip_calls(checkout.run("scripts/bootstrap.sh", "fast")[1])
    assert not pip_calls(checkout.run("scripts/bootstrap.sh", "test")[1])
    # A new dependency (any change to pyproject.toml) is installed at the next start.
    with (checkout.root / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# a change\n")
    assert pip_calls(checkout.run("scripts/bootstrap.sh", "test")[1])
    assert not pip_calls(checkout.run("scripts/bootstrap.sh", "test")[1])


def test_a_failed_install_is_tried_again(tmp_path: Path) -> None:
    checkout = Checkout(tmp_path / "repo")
    for _ in range(2):
        status, calls = checkout.run("scripts/serve.sh", FAIL_PIP="1")
        assert status != 0 and pip_calls(calls) and not any(call.startswith("ghosttalk") for call in calls)
    status, calls = checkout.run("scripts/serve.sh")
    assert status == 0 and pip_calls(calls) and calls[-1] == "ghosttalk"
    assert checkout.run("scripts/serve.sh")[1] == ["ghosttalk"]
