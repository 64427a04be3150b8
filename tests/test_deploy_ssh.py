"""deploy_ssh.sh against a fake remote host: its help and refusals, and the commands it runs there in host
and bridge network modes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.scripts import clean_env, write_executable

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "scripts" / "deploy_ssh.sh"


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
