"""Deployment artefacts: shell scripts, the Dockerfile, the entrypoint, the wheel, compose and deploy_ssh.sh.

No image registry is reachable here, so the image itself is not built; everything it is made of is tested:
every COPY source exists, the entrypoint turns the environment into a running server, and the wheel
installs into a clean virtual environment and serves the page from there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.serverproc import free_port

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "scripts" / "docker-entrypoint.sh"
DEPLOY = ROOT / "scripts" / "deploy_ssh.sh"
SECRETS = ("ADMIN_KEY", "TURN_PASS", "TURN_SECRET")


def write_executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any GhostTalk setting that could leak in from the outside."""
    # fmt: off
    names = {
        "HOST", "PORT", "RTC_UDP_PORT", "RTC_BIND", "RTC_HOST", "PUBLIC_IP", "STUN_SERVER", "TURN_SERVER",
        "TURN_USER", "TURN_PASS", "TURN_SECRET", "TURN_TTL", "DATA_DIR", "LOG_LEVEL", "LOG_FORMAT",
        "TRUSTED_PROXIES", "ALLOWED_ORIGINS", "MAX_ROOM_PEERS", "MAX_ROOMS", "MAX_PEERS", "MAX_CONNS_PER_IP",
        "ROOM_GRACE", "ADMIN_KEY", "NETWORK_MODE", "UDP_PORT", "HTTP_BIND_HOST", "IMAGE_NAME",
        "CONTAINER_NAME", "SSH_OPTS",
    }
    # fmt: on
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(extra)
    return env


# --- Static checks --------------------------------------------------------------------------------


def test_shell_scripts_are_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck is not None, "shellcheck is required: apt-get install shellcheck"
    scripts = sorted((ROOT / "scripts").glob("*.sh"))
    assert ENTRYPOINT in scripts and DEPLOY in scripts
    result = subprocess.run([shellcheck, "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for script in scripts:
        assert os.access(script, os.X_OK), f"{script.name} is not executable"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_every_dockerfile_copy_source_exists_and_is_not_dockerignored() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for keyword, rest in dockerfile_instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        words = rest.split()
        if any(word.startswith("--from") for word in words):
            continue  # from another build stage, not from the context
        paths = [word for word in words if not word.startswith("--")]
        sources.extend(paths[:-1])
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile COPY source {source} does not exist"
        for pattern in ignored:
            assert not Path(source).match(pattern.strip("/")), f"{source} is excluded by .dockerignore {pattern}"


def test_dockerfile_runs_unprivileged_with_data_volume_and_healthcheck() -> None:
    instructions = dockerfile_instructions()
    runtime = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    keywords = {k: r for k, r in runtime}
    assert "slim" in keywords["FROM"] or "PYTHON_IMAGE" in keywords["FROM"]
    assert re.search(r"python:3\.1[1-9]-slim", (ROOT / "Dockerfile").read_text())
    assert keywords["USER"] not in ("root", "0")
    assert "/data" in keywords["VOLUME"]
    assert set(keywords["EXPOSE"].split()) == {"8080/tcp", "50000/udp"}
    assert "healthcheck" in keywords["HEALTHCHECK"]
    assert "docker-entrypoint.sh" in keywords["ENTRYPOINT"]
    env = " ".join(r for k, r in runtime if k == "ENV")
    for name in ("PORT=8080", "RTC_UDP_PORT=50000", "DATA_DIR=/data"):
        assert name in env


def top_level_sections(text: str) -> dict[str, str]:
    """The blocks of a YAML file by top-level key (the file is plain block-style YAML)."""
    blocks = re.split(r"^(?=[A-Za-z])", text, flags=re.M)
    return {block.split(":", 1)[0]: block for block in blocks if re.match(r"[A-Za-z][\w-]*:", block)}


def test_compose_runs_ghosttalk_and_coturn_on_the_host_network() -> None:
    sections = top_level_sections((ROOT / "docker-compose.yml").read_text())
    assert {"services", "volumes"} <= set(sections)
    parts = re.split(r"^  (?=[a-z])", sections["services"], flags=re.M)[1:]
    services = {part.split(":", 1)[0]: part for part in parts}
    assert set(services) == {"ghosttalk", "coturn"}
    for service in services.values():
        assert re.search(r"^    network_mode: host$", service, re.M)
    assert "- ./turnserver.conf:/etc/coturn/turnserver.conf:ro" in services["coturn"]
    environment = re.findall(r"^      ([A-Z_]+): (.*)$", services["ghosttalk"], re.M)
    assert dict(environment)["ADMIN_KEY"].startswith("${ADMIN_KEY:?")  # required, no default key
    entrypoint = ENTRYPOINT.read_text()
    for name, _ in environment:
        # Every variable reaches ghosttalk: as a flag through the entrypoint, or read by ghosttalk (secrets).
        assert name in SECRETS or re.search(rf"^add [a-z-]+ {name}$", entrypoint, re.M), name
    assert len(environment) >= 10
    # No tabs, and every line indented by a multiple of two spaces: what docker compose requires of this file.
    for line in (ROOT / "docker-compose.yml").read_text().splitlines():
        assert "\t" not in line and (len(line) - len(line.lstrip(" "))) % 2 == 0, line


def test_turnserver_conf_is_accepted_by_coturn(tmp_path: Path) -> None:
    binary = shutil.which("turnserver")
    assert binary is not None, "coturn is required: apt-get install coturn"
    config = (ROOT / "turnserver.conf").read_text()
    required_lines = (
        "fingerprint",
        "no-cli",
        "no-multicast-peers",
        "use-auth-secret",
        "#lt-cred-mech",
        "denied-peer-ip=10.0.0.0-10.255.255.255",
        "denied-peer-ip=127.0.0.0-127.255.255.255",
    )
    for required in required_lines:
        assert re.search(rf"^{re.escape(required)}$", config, re.M), required
    assert not re.search(r"^allow-loopback-peers", config, re.M)
    # Start it for real on loopback (ports and files overridden on the command line) and see it answer.
    port = free_port(socket.SOCK_DGRAM)
    log = tmp_path / "turn.log"
    overrides = ["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", str(port)]
    overrides += [
        "--no-tls",
        "--no-dtls",
        "--userdb",
        str(tmp_path / "turndb"),
        "--pidfile",
        str(tmp_path / "pid"),
    ]
    with log.open("wb") as out:
        # The shipped config logs to stdout, as a container should.
        proc = subprocess.Popen(
            [binary, "-c", str(ROOT / "turnserver.conf"), *overrides], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        from tests.test_turn import _answers_stun

        deadline = time.monotonic() + 10
        while not _answers_stun(port):
            assert proc.poll() is None, f"coturn rejected turnserver.conf:\n{log.read_text()}"
            assert time.monotonic() < deadline, "coturn did not answer with turnserver.conf"
        assert "Default realm: turn.example.org" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(5)


# --- The entrypoint ---------------------------------------------------------------------------------


def fake_ghosttalk(bin_dir: Path) -> None:
    write_executable(
        bin_dir / "ghosttalk",
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"secrets = {SECRETS!r}\n"
        "print(json.dumps({'argv': sys.argv[1:], 'env': {k: os.environ.get(k) for k in secrets}}))\n",
    )


def run_entrypoint(tmp_path: Path, *args: str, **env: str) -> dict[str, Any]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake_ghosttalk(bin_dir)
    environment = clean_env(PATH=f"{bin_dir}:{os.environ['PATH']}", **env)
    result = subprocess.run([str(ENTRYPOINT), *args], env=environment, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    output: dict[str, Any] = json.loads(result.stdout)
    output["stderr"] = result.stderr
    return output


def test_entrypoint_turns_the_environment_into_flags_but_keeps_secrets_out_of_argv(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = run_entrypoint(
        tmp_path,
        "--log-level", "debug",
        HOST="0.0.0.0", PORT="9000", RTC_UDP_PORT="51000", PUBLIC_IP="203.0.113.10", DATA_DIR=str(data),
        TURN_SERVER="turn:t.example:3478,turns:t.example:5349", TURN_USER="ghost", TURN_TTL="600",
        TRUSTED_PROXIES="10.0.0.0/8", MAX_CONNS_PER_IP="20", LOG_FORMAT="json",
        ADMIN_KEY="k-secret", TURN_PASS="p-secret", TURN_SECRET="s-secret",
    )  # fmt: skip
    argv = out["argv"]
    pairs = dict(zip(argv[0:-2:2], argv[1:-2:2], strict=True))
    assert pairs == {
        "--host": "0.0.0.0",
        "--port": "9000",
        "--rtc-udp-port": "51000",
        "--public-ip": "203.0.113.10",
        "--turn-server": "turn:t.example:3478,turns:t.example:5349",
        "--turn-user": "ghost",
        "--turn-ttl": "600",
        "--data-dir": str(data),
        "--log-format": "json",
        "--trusted-proxies": "10.0.0.0/8",
        "--max-conns-per-ip": "20",
    }
    # Arguments given to `docker run` come last, so they win over the environment.
    assert argv[-2:] == ["--log-level", "debug"]
    for secret in ("k-secret", "p-secret", "s-secret"):
        assert secret not in " ".join(argv)
    assert out["env"] == {"ADMIN_KEY": "k-secret", "TURN_PASS": "p-secret", "TURN_SECRET": "s-secret"}
    assert data.is_dir()


def test_entrypoint_subcommands_and_other_commands(tmp_path: Path) -> None:
    out = run_entrypoint(tmp_path, "join", "http://x/r/a", "--name", "n", PORT="9000")
    assert out["argv"] == ["join", "http://x/r/a", "--name", "n"]
    out = run_entrypoint(tmp_path, "serve", "--port", "1", DATA_DIR=str(tmp_path / "d"))
    assert out["argv"] == ["--data-dir", str(tmp_path / "d"), "--port", "1"]
    out = run_entrypoint(tmp_path, DATA_DIR=str(tmp_path / "d"))
    assert out["argv"] == ["--data-dir", str(tmp_path / "d")]
    assert "ADMIN_KEY is not set" in out["stderr"]
    result = subprocess.run([str(ENTRYPOINT), "echo", "hello"], env=clean_env(), capture_output=True, text=True)
    assert result.stdout == "hello\n"


def test_entrypoint_refuses_an_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_ghosttalk(bin_dir)
    result = subprocess.run(
        [str(ENTRYPOINT)],
        env=clean_env(PATH=f"{bin_dir}:{os.environ['PATH']}", DATA_DIR=str(blocker / "data")),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "is not a writable directory" in result.stderr
    assert result.stdout == ""  # ghosttalk never started


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if http_status(f"{url}/healthz") == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"no /healthz:\n{log.read_text()}"
        time.sleep(0.1)


def test_entrypoint_runs_a_real_server_and_its_healthcheck(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # What `pip install` puts on PATH in the image, pointing at this checkout.
    write_executable(bin_dir / "ghosttalk", f'#!/bin/sh\nexec {sys.executable} -m ghosttalk "$@"\n')
    port = free_port()
    env = clean_env(
        PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=str(ROOT), HOST="127.0.0.1", PORT=str(port),
        RTC_UDP_PORT=str(free_port(socket.SOCK_DGRAM)), RTC_BIND="127.0.0.1", RTC_HOST="127.0.0.1",
        DATA_DIR=str(tmp_path / "data"), ADMIN_KEY="entrypoint-admin-key-0123",
    )  # fmt: skip
    log = tmp_path / "console.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(ENTRYPOINT)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log)
        # The admin key came through the environment.
        assert http_status(f"{url}/admin?action=stats&key=entrypoint-admin-key-0123") == 200
        assert http_status(f"{url}/admin?action=stats&key=wrong") == 401
        assert "entrypoint-admin-key-0123" not in " ".join(Path(f"/proc/{proc.pid}/cmdline").read_text().split("\0"))
        health = subprocess.run([str(ENTRYPOINT), "healthcheck"], env=env, capture_output=True, timeout=10)
        assert health.returncode == 0, health.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    down = subprocess.run([str(ENTRYPOINT), "healthcheck"], env=env, capture_output=True, text=True, timeout=10)
    assert down.returncode == 1
    assert "healthcheck:" in down.stderr


# --- The wheel ------------------------------------------------------------------------------------


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


# --- deploy_ssh.sh ----------------------------------------------------------------------------------


def fake_remote(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    """ssh that runs the remote command in a local "remote home", and docker that records what it is asked."""
    bin_dir = tmp_path / "bin"
    remote_bin = tmp_path / "remote-bin"
    home = tmp_path / "remote-home"
    for directory in (bin_dir, remote_bin, home):
        directory.mkdir()
    calls = tmp_path / "calls.jsonl"
    write_executable(
        bin_dir / "ssh",
        f"#!{sys.executable}\n"
        "import json, os, subprocess, sys\n"
        "args = sys.argv[1:]\n"
        "target = next(i for i, a in enumerate(args) if '@' in a)\n"
        f"with open({str(calls)!r}, 'a') as log:\n"
        "    log.write(json.dumps({'tool': 'ssh', 'argv': args}) + '\\n')\n"
        f"env = dict(os.environ, PATH={str(remote_bin)!r} + ':' + os.environ['PATH'])\n"
        "command = ' '.join(args[target + 1:])\n"
        f"sys.exit(subprocess.run(['bash', '-c', command], cwd={str(home)!r}, env=env).returncode)\n",
    )
    write_executable(
        remote_bin / "docker",
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"with open({str(calls)!r}, 'a') as log:\n"
        "    log.write(json.dumps({'tool': 'docker', 'argv': sys.argv[1:]}) + '\\n')\n"
        "if sys.argv[1] == 'inspect':\n"
        "    print('true')\n",
    )
    env = clean_env(PATH=f"{bin_dir}:{os.environ['PATH']}")
    return env, calls, home


def read_calls(calls: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in calls.read_text().splitlines()]


def test_deploy_ssh_help_and_refusals(tmp_path: Path) -> None:
    env, calls, _ = fake_remote(tmp_path)
    shown = subprocess.run([str(DEPLOY), "--help"], env=env, capture_output=True, text=True)
    assert shown.returncode == 0
    documented = "ADMIN_KEY PORT NETWORK_MODE UDP_PORT HTTP_BIND_HOST TURN_SERVER TURN_SECRET IMAGE_NAME"
    for name in [*documented.split(), "CONTAINER_NAME", "SSH_OPTS"]:
        assert name in shown.stdout
    refusals = [
        ({}, "ADMIN_KEY is required"),
        ({"ADMIN_KEY": "k", "NETWORK_MODE": "overlay"}, "NETWORK_MODE must be host or bridge"),
        ({"ADMIN_KEY": "k", "NETWORK_MODE": "bridge"}, "needs PUBLIC_IP"),
        ({"ADMIN_KEY": "k", "PORT": "http"}, "PORT must be a number"),
        ({"ADMIN_KEY": "k", "TURN_SECRET": "s", "TURN_PASS": "p"}, "not both"),
    ]
    for extra, reason in refusals:
        result = subprocess.run([str(DEPLOY), "me@host"], env={**env, **extra}, capture_output=True, text=True)
        assert result.returncode == 1, extra
        assert reason in result.stderr, (extra, result.stderr)
    assert subprocess.run([str(DEPLOY)], env=env, capture_output=True).returncode == 2
    assert not calls.exists(), "nothing may reach the server when the settings are wrong"


def test_deploy_ssh_host_mode(tmp_path: Path) -> None:
    env, calls, home = fake_remote(tmp_path)
    env.update(
        ADMIN_KEY="deploy-secret-key",
        TURN_SERVER="turn:turn.example.org:3478",
        TURN_SECRET="turn-secret",
        PORT="8443",
        UDP_PORT="50001",
        HTTP_BIND_HOST="127.0.0.1",
        SSH_OPTS="-p 2222 -o BatchMode=yes",
    )
    result = subprocess.run(
        [str(DEPLOY), "deploy@voice.example.org", "apps/gt"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "healthy" in result.stdout
    log = read_calls(calls)
    ssh = [c["argv"] for c in log if c["tool"] == "ssh"]
    assert all(argv[:4] == ["-p", "2222", "-o", "BatchMode=yes"] for argv in ssh)
    assert all(argv[4] == "deploy@voice.example.org" for argv in ssh)
    docker = [c["argv"] for c in log if c["tool"] == "docker"]
    build = next(argv for argv in docker if argv[0] == "build")
    assert build[-3:] == ["-t", "ghosttalk:latest", "apps/gt"]
    run = next(argv for argv in docker if argv[0] == "run")
    assert run[run.index("--name") + 1] == "ghosttalk"
    assert "--network" in run and run[run.index("--network") + 1] == "host"
    assert run[run.index("--env-file") + 1] == "apps/gt/ghosttalk.env"
    assert run[-1] == "ghosttalk:latest"
    assert ["rm", "-f", "ghosttalk"] in docker
    # The build context arrived, and the secrets only in a private env file, never in a command line.
    context = home / "apps" / "gt"
    for path in ("Dockerfile", "pyproject.toml", "ghosttalk/server/app.py", "scripts/docker-entrypoint.sh"):
        assert (context / path).exists(), path
    assert not list(context.rglob("__pycache__"))
    env_file = context / "ghosttalk.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert settings["ADMIN_KEY"] == "deploy-secret-key"
    assert settings["TURN_SECRET"] == "turn-secret"
    assert settings["HOST"] == "127.0.0.1" and settings["PORT"] == "8443" and settings["RTC_UDP_PORT"] == "50001"
    everything_run = json.dumps(log)
    assert "deploy-secret-key" not in everything_run and "turn-secret" not in everything_run


def test_deploy_ssh_bridge_mode_publishes_ports(tmp_path: Path) -> None:
    env, calls, home = fake_remote(tmp_path)
    env.update(ADMIN_KEY="k", NETWORK_MODE="bridge", PUBLIC_IP="203.0.113.10", HTTP_BIND_HOST="127.0.0.1",
               IMAGE_NAME="gt:test", CONTAINER_NAME="gt-test")  # fmt: skip
    result = subprocess.run([str(DEPLOY), "root@203.0.113.10"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    run = next(c["argv"] for c in read_calls(calls) if c["tool"] == "docker" and c["argv"][0] == "run")
    assert "--network" not in run
    published = [run[i + 1] for i, arg in enumerate(run) if arg == "-p"]
    assert published == ["127.0.0.1:8080:8080/tcp", "50000:50000/udp"]
    assert run[run.index("-v") + 1] == "gt-test-data:/data"
    assert run[-1] == "gt:test"
    settings = dict(line.split("=", 1) for line in (home / "ghosttalk" / "ghosttalk.env").read_text().splitlines())
    assert settings["HOST"] == "0.0.0.0" and settings["PUBLIC_IP"] == "203.0.113.10"
