from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ghosttalk.cli import parse_settings
from ghosttalk.config import MIN_ADMIN_KEY_CHARS, OPTIONS

ROOT = Path(__file__).resolve().parent.parent

LONG_KEY = "k" * MIN_ADMIN_KEY_CHARS


def test_original_single_dash_flags_work() -> None:
    argv = ["-port", "8081", "-admin-key", LONG_KEY, "-rtc-udp-port", "50001", "-rtc-host", "127.0.0.1"]
    config = parse_settings(argv, environ={}).config
    assert (config.port, config.admin_key, config.rtc_udp_port, config.rtc_hosts) == (8081, LONG_KEY, 50001,
                                                                                       ("127.0.0.1",))


def test_double_dash_and_environment() -> None:
    environ = {"PORT": "9000", "ADMIN_KEY": "from-env-0123456789", "RTC_UDP_PORT": "40000",
               "TURN_SERVER": "turn:a.example:3478, turns:a.example:5349", "TURN_USER": "u", "TURN_PASS": "p",
               "DATA_DIR": "/tmp/gt-data"}  # fmt: skip
    config = parse_settings(["--port", "9001"], environ).config
    assert config.port == 9001  # a flag beats the environment
    assert config.admin_key == "from-env-0123456789" and config.rtc_udp_port == 40000
    assert config.turn_servers == ("turn:a.example:3478", "turns:a.example:5349")
    assert (config.turn_user, config.turn_pass, config.data_dir) == ("u", "p", Path("/tmp/gt-data"))


@pytest.mark.parametrize(
    ("argv", "reason"),
    [(["-port", "70000"], "argument -port/--port: port 70000 is outside 0-65535"),
     (["--trusted-proxies", "not-a-net"], "argument -trusted-proxies/--trusted-proxies: not a list of addresses"),
     (["--max-room-peers", "0"], "argument -max-room-peers/--max-room-peers: 0 must be greater than zero"),
     (["--join-rate", "nan"], "argument -join-rate/--join-rate: 'nan' is not a finite number"),
     (["--room-grace=-1"], "argument -room-grace/--room-grace: -1 must not be negative"),
     (["--log-level", "loud"], "argument -log-level/--log-level: 'loud' is not one of debug, info, warning, error")],
)  # fmt: skip
def test_bad_values_are_refused_with_a_reason(argv: list[str], reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings(argv, environ={})
    assert exited.value.code == 2
    assert f"error: {reason}" in capsys.readouterr().err


def test_help_lists_every_flag() -> None:
    result = subprocess.run([sys.executable, "-m", "ghosttalk", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0
    for option in OPTIONS:  # both spellings, and the environment variable in the help text
        assert re.search(rf"^  -{option.flag} \S+, --{option.flag} \S+$", result.stdout, re.M), option.flag
        assert f"env {option.env};" in " ".join(result.stdout.split()), option.env
    for flag in ("-config FILE, --config FILE", "--version", "'ghosttalk config'", "join", "bench"):
        assert flag in result.stdout, flag
    assert len(OPTIONS) >= 30


def test_join_help() -> None:
    command = [sys.executable, "-m", "ghosttalk", "join", "--help"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and "--record" in result.stdout and "--play" in result.stdout


def test_help_never_prints_secrets_from_the_environment() -> None:
    env = {**os.environ, "ADMIN_KEY": "key-from-env-0123456789", "TURN_PASS": "pass-from-env",
           "TURN_SECRET": "secret-env"}  # fmt: skip
    for command in (["--help"], ["config", "--help"]):
        result = subprocess.run([sys.executable, "-m", "ghosttalk", *command], cwd=ROOT, capture_output=True,
                                text=True, env=env)  # fmt: skip
        assert result.returncode == 0
        for secret in ("key-from-env-0123456789", "pass-from-env", "secret-env"):
            assert secret not in result.stdout


def test_a_bad_environment_value_is_refused_naming_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings([], environ={"RTC_UDP_PORT": "fifty"})
    assert exited.value.code == 2
    assert "error: environment variable RTC_UDP_PORT: 'fifty' is not a whole number" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["", "K", "admin", "k" * (MIN_ADMIN_KEY_CHARS - 1)])
def test_short_admin_keys_are_refused_by_flag_and_environment(key: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An operator key under 16 characters stops startup with a reason, never echoing it."""
    for argv in (["--admin-key", key], [f"-admin-key={key}"]):
        with pytest.raises(SystemExit) as exited:
            parse_settings(argv, environ={})
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert f"is {len(key)} characters; it must be at least {MIN_ADMIN_KEY_CHARS}" in err
        assert "openssl rand" in err
    if key:  # an empty ADMIN_KEY means "unset": a random key is generated
        with pytest.raises(SystemExit):
            parse_settings([], environ={"ADMIN_KEY": key})
        err = capsys.readouterr().err
        assert "ADMIN_KEY" in err and f"is {len(key)} characters" in err
        assert f"'{key}'" not in err and f"{key!r}" not in err


def test_a_short_key_stops_the_server_before_it_listens() -> None:
    env = {**os.environ, "ADMIN_KEY": "hunter2"}
    # Loopback and free ports all the same, in case a regression lets it start.
    command = [sys.executable, "-m", "ghosttalk", "--host", "127.0.0.1", "--port", "0", "--rtc-bind", "127.0.0.1",
               "--rtc-udp-port", "0", "--data-dir", "/nonexistent/ghosttalk-test"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=20)
    assert result.returncode == 2
    assert "must be at least 16" in result.stderr and "hunter2" not in result.stderr + result.stdout


def test_an_empty_environment_variable_means_unset() -> None:
    resolved = parse_settings([], environ={"ADMIN_KEY": "", "PORT": ""})
    assert resolved.config.admin_key is None and resolved.config.port == 8080
    assert resolved.sources["admin_key"] == resolved.sources["port"] == "default"


def test_a_flag_value_that_looks_like_an_option_is_taken_with_equals() -> None:
    # The benchmark starts servers with random keys, and token_urlsafe sometimes begins with "-".
    assert parse_settings(["--admin-key=-starts-like-an-option"], environ={}).config.admin_key == (
        "-starts-like-an-option")
