from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ghosttalk.cli import MIN_ADMIN_KEY_CHARS, build_serve_parser, config_from_args
from tests.serverproc import ROOT

LONG_KEY = "k" * MIN_ADMIN_KEY_CHARS


def test_original_single_dash_flags_work() -> None:
    args = build_serve_parser().parse_args(["-port", "8081", "-admin-key", LONG_KEY, "-rtc-udp-port", "50001"])
    config = config_from_args(args)
    assert (config.port, config.admin_key, config.rtc_udp_port) == (8081, LONG_KEY, 50001)


def test_double_dash_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("ADMIN_KEY", "from-env-0123456789")
    monkeypatch.setenv("RTC_UDP_PORT", "40000")
    monkeypatch.setenv("TURN_SERVER", "turn:a.example:3478, turns:a.example:5349")
    monkeypatch.setenv("TURN_USER", "u")
    monkeypatch.setenv("TURN_PASS", "p")
    monkeypatch.setenv("DATA_DIR", "/tmp/gt-data")
    config = config_from_args(build_serve_parser().parse_args(["--port", "9001"]))
    assert config.port == 9001  # a flag beats the environment
    assert config.admin_key == "from-env-0123456789" and config.rtc_udp_port == 40000
    assert config.turn_servers == ("turn:a.example:3478", "turns:a.example:5349")
    assert (config.turn_user, config.turn_pass, config.data_dir) == ("u", "p", Path("/tmp/gt-data"))


@pytest.mark.parametrize("argv", [["-port", "70000"], ["--trusted-proxies", "not-a-net"], ["--max-room-peers", "0"]])
def test_bad_values_are_refused_with_a_reason(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_serve_parser().parse_args(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_help_lists_every_flag() -> None:
    result = subprocess.run([sys.executable, "-m", "ghosttalk", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0
    for flag in ("--port", "--admin-key", "--rtc-udp-port", "--rtc-host", "--public-ip", "--turn-server",
                 "--turn-secret", "--data-dir", "--max-room-peers", "--trusted-proxies", "join", "bench"):
        assert flag in result.stdout, flag


def test_join_help() -> None:
    command = [sys.executable, "-m", "ghosttalk", "join", "--help"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and "--record" in result.stdout and "--play" in result.stdout


def test_help_never_prints_secrets_from_the_environment() -> None:
    env = {**os.environ, "ADMIN_KEY": "key-from-env", "TURN_PASS": "pass-from-env", "TURN_SECRET": "secret-env"}
    result = subprocess.run([sys.executable, "-m", "ghosttalk", "--help"], cwd=ROOT, capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0
    for secret in ("key-from-env", "pass-from-env", "secret-env"):
        assert secret not in result.stdout


def test_a_bad_environment_value_is_refused_like_a_bad_flag(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RTC_UDP_PORT", "fifty")
    with pytest.raises(SystemExit):
        build_serve_parser().parse_args([])
    assert "'fifty' is not a whole number" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["", "K", "admin", "k" * (MIN_ADMIN_KEY_CHARS - 1)])
def test_short_admin_keys_are_refused_by_flag_and_environment(
    key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12, item 10: an operator key under 16 characters stops startup with a reason, never echoing it."""
    for argv in (["--admin-key", key], [f"-admin-key={key}"]):
        with pytest.raises(SystemExit) as exited:
            build_serve_parser().parse_args(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert f"is {len(key)} characters; it must be at least {MIN_ADMIN_KEY_CHARS}" in err
        assert "openssl rand" in err
    if key:  # an empty ADMIN_KEY means "unset": a random key is generated
        monkeypatch.setenv("ADMIN_KEY", key)
        with pytest.raises(SystemExit):
            build_serve_parser().parse_args([])
        err = capsys.readouterr().err
        assert "--admin-key or ADMIN_KEY" in err and f"is {len(key)} characters" in err
        assert f"'{key}'" not in err and f"{key!r}" not in err


def test_a_short_key_stops_the_server_before_it_listens() -> None:
    env = {**os.environ, "ADMIN_KEY": "hunter2"}
    # Loopback and free ports all the same, in case a regression lets it start.
    command = [sys.executable, "-m", "ghosttalk", "--host", "127.0.0.1", "--port", "0", "--rtc-bind", "127.0.0.1",
               "--rtc-udp-port", "0", "--data-dir", "/nonexistent/ghosttalk-test"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=20)
    assert result.returncode == 2
    assert "must be at least 16" in result.stderr and "hunter2" not in result.stderr + result.stdout


def test_an_empty_environment_key_means_unset_not_too_short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_KEY", "")
    assert config_from_args(build_serve_parser().parse_args([])).admin_key is None
