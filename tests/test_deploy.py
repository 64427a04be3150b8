"""Deployment artefacts: shell scripts, the Dockerfile, compose, coturn's configuration and the entrypoint
(the wheel is tested in test_wheel.py, deploy_ssh.sh in test_deploy_ssh.py).

No image registry is reachable here, so the image itself is not built; everything it is made of is tested:
every COPY source exists and the entrypoint runs a server configured by its environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ghosttalk.benchmark.server import free_port
from ghosttalk.config import OPTIONS
from tests.support.scripts import clean_env, http_status, wait_healthy, write_executable

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "scripts" / "docker-entrypoint.sh"
DEPLOY = ROOT / "scripts" / "deploy_ssh.sh"
SECRETS = tuple(option.env for option in OPTIONS if option.secret)


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
    settings = {option.env for option in OPTIONS}
    for name, _ in environment:
        # ghosttalk reads every setting's variable itself: a misspelt one would be silently ignored.
        assert name in settings, name
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


def test_entrypoint_passes_arguments_as_given_and_settings_through_the_environment(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = run_entrypoint(
        tmp_path, "--log-level", "debug", "--config", "/etc/ghosttalk.toml",
        PORT="9000", TURN_USER="ghost", DATA_DIR=str(data), ADMIN_KEY="k-secret", TURN_PASS="p-secret",
        TURN_SECRET="s-secret",
    )  # fmt: skip
    # No setting becomes a flag: ghosttalk reads each variable itself, so a secret never reaches argv.
    assert out["argv"] == ["--log-level", "debug", "--config", "/etc/ghosttalk.toml"]
    assert out["env"] == {"ADMIN_KEY": "k-secret", "TURN_PASS": "p-secret", "TURN_SECRET": "s-secret"}
    assert data.is_dir()


def test_entrypoint_subcommands_and_other_commands(tmp_path: Path) -> None:
    out = run_entrypoint(tmp_path, "join", "http://x/r/a", "--name", "n", PORT="9000")
    assert out["argv"] == ["join", "http://x/r/a", "--name", "n"]
    out = run_entrypoint(tmp_path, "config", "--json")
    assert out["argv"] == ["config", "--json"]
    out = run_entrypoint(tmp_path, "serve", "--port", "1", DATA_DIR=str(tmp_path / "d"))
    assert out["argv"] == ["--port", "1"]
    out = run_entrypoint(tmp_path, DATA_DIR=str(tmp_path / "d"))
    assert out["argv"] == []
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


def test_entrypoint_runs_a_real_server_and_its_healthcheck(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # What `pip install` puts on PATH in the image, pointing at this checkout.
    write_executable(bin_dir / "ghosttalk", f'#!/bin/sh\nexec {sys.executable} -m ghosttalk "$@"\n')
    port = free_port()
    env = clean_env(
        PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=str(ROOT), HOST="127.0.0.1", PORT=str(port),
        RTC_UDP_PORT=str(free_port(socket.SOCK_DGRAM)), RTC_BIND="127.0.0.1", RTC_HOST="127.0.0.1",
        DATA_DIR=str(tmp_path / "data"), ADMIN_KEY="entrypoint-admin-key-0123", LOG_FORMAT="json",
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
    # LOG_FORMAT reached ghosttalk too: its console is JSON lines stamped in UTC.
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert any("listening on" in entry["message"] for entry in entries)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"]) for entry in entries)
