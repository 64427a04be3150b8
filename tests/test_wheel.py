"""The wheel: built from the checkout, installed into a fresh virtual environment (ghosttalk from the wheel
only), and serving every file of web/ from there."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import sysconfig
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ghosttalk.benchmark.server import free_port
from tests.support.scripts import clean_env, http_status, wait_healthy

ROOT = Path(__file__).resolve().parent.parent


# Run inside the new venv: prints each requirement of the installed ghosttalk that is missing or the wrong version.
UNMET_REQUIREMENTS = """
from importlib import metadata
from pip._vendor.packaging.requirements import Requirement

for line in metadata.requires("ghosttalk") or []:
    requirement = Requirement(line)
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        continue
    try:
        found = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        print(f"{requirement}: not installed")
        continue
    if not requirement.specifier.contains(found, prereleases=True):
        print(f"{requirement}: found {found}")
"""


@pytest.mark.timeout(300)
def test_wheel_installs_into_a_clean_venv_and_serves(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), str(ROOT)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = wheels.glob("ghosttalk-*.whl")
    venv = tmp_path / "venv"
    # The dependencies come from the packages of the interpreter running the tests (no network needed), made
    # visible through a .pth file; ghosttalk itself only from the wheel (a checkout installed in editable mode
    # there is ignored: its import hook lives in a .pth file, which is not read from an added path).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    venv_python = venv / "bin" / "python"
    site_dir = subprocess.run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    parent = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site_dir) / "parent_packages.pth").write_text("\n".join(sorted(parent)) + "\n")
    install = subprocess.run(
        [str(venv_python), "-m", "pip", "install", "--no-index", "--no-deps", "--force-reinstall",
         "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    # Every runtime requirement the wheel declares is met by what the venv sees.
    unmet = subprocess.run([str(venv_python), "-c", UNMET_REQUIREMENTS], capture_output=True, text=True, check=True)
    assert unmet.stdout == "", unmet.stdout
    port = free_port()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    env = clean_env(ADMIN_KEY="wheel-admin-key-01234567")
    env.pop("PYTHONPATH", None)
    log = tmp_path / "console.log"
    command = [str(venv / "bin" / "ghosttalk"), "--host", "127.0.0.1", "--port", str(port),
               "--rtc-udp-port", str(free_port(socket.SOCK_DGRAM)), "--rtc-bind", "127.0.0.1",
               "--rtc-host", "127.0.0.1", "--data-dir", str(tmp_path / "data")]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=elsewhere, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log)
        # Templates and static files came with the wheel, not from this checkout: every file of web/static is
        # served with the checkout's bytes, and the pages render from the templates.
        for path in ("/", "/r/wheel-room", "/admin?key=wheel-admin-key-01234567", "/metrics"):
            assert http_status(url + path) == 200, path
        static = ROOT / "web" / "static"
        files = [path for path in static.rglob("*") if path.is_file()]
        assert len(files) > 20
        for path in files:
            with urllib.request.urlopen(f"{url}/static/{path.relative_to(static).as_posix()}", timeout=5) as reply:
                assert reply.read() == path.read_bytes(), path
        where = subprocess.run(
            [str(venv_python), "-c", "import ghosttalk; print(ghosttalk.__file__)"],
            cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert where.stdout.startswith(str(venv)), where.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0, log.read_text()
