"""Settings written once: Config's field metadata makes the flags, the environment names, the config file's
keys, `ghosttalk config` and the README's table, with the precedence flag > environment > file > default."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ghosttalk.benchmark.server import free_port, wait_until_healthy
from ghosttalk.cli import MASK, config_main, flags_table, main, parse_settings
from ghosttalk.config import OPTIONS, Config, Source

ROOT = Path(__file__).resolve().parent.parent

KEY_FILE, KEY_ENV, KEY_FLAG = "file-key-0123456789", "env-key-0123456789", "flag-key-0123456789"


# (flag, value in the TOML file, environment text, flag text, and the value each of those three parses to)
LAYERS: list[tuple[str, str, str, str, tuple[Any, Any, Any]]] = [
    ("port", "1001", "1002", "1003", (1001, 1002, 1003)),
    ("join-rate", "12.5", "13", "14.25", (12.5, 13.0, 14.25)),
    ("rtc-host", '["192.0.2.1", "192.0.2.2"]', "192.0.2.3", "192.0.2.4,192.0.2.5",
     (("192.0.2.1", "192.0.2.2"), ("192.0.2.3",), ("192.0.2.4", "192.0.2.5"))),
    ("trusted-proxies", '"10.0.0.0/8"', "172.16.0.0/12", "2001:db8::/32",
     ((ipaddress.ip_network("10.0.0.0/8"),), (ipaddress.ip_network("172.16.0.0/12"),),
      (ipaddress.ip_network("2001:db8::/32"),))),
    ("log-level", '"warning"', "error", "debug", ("warning", "error", "debug")),
    ("data-dir", '"/srv/file"', "/srv/env", "/srv/flag", (Path("/srv/file"), Path("/srv/env"), Path("/srv/flag"))),
    ("public-ip", '"198.51.100.1"', "198.51.100.2", "198.51.100.3", ("198.51.100.1", "198.51.100.2", "198.51.100.3")),
    ("admin-key", f'"{KEY_FILE}"', KEY_ENV, KEY_FLAG, (KEY_FILE, KEY_ENV, KEY_FLAG)),
]  # fmt: skip

BY_FLAG = {option.flag: option for option in OPTIONS}


@pytest.mark.parametrize(("flag", "in_file", "in_env", "as_flag", "parsed"), LAYERS, ids=[row[0] for row in LAYERS])
def test_precedence_is_flag_then_environment_then_file_then_default(
    flag: str, in_file: str, in_env: str, as_flag: str, parsed: tuple[Any, Any, Any], tmp_path: Path
) -> None:
    option = BY_FLAG[flag]
    toml = tmp_path / "ghosttalk.toml"
    toml.write_text(f"{flag} = {in_file}\n")
    file_value, env_value, flag_value = parsed
    cases = [
        ([], {}, option.default, Source.DEFAULT),
        (["--config", str(toml)], {}, file_value, Source.FILE),
        (["--config", str(toml)], {option.env: in_env}, env_value, Source.ENV),
        (["--config", str(toml), f"--{flag}", as_flag], {option.env: in_env}, flag_value, Source.FLAG),
        ([f"-{flag}", as_flag], {option.env: in_env}, flag_value, Source.FLAG),  # the original's spelling
    ]
    for argv, environ, expected, source in cases:
        resolved = parse_settings(argv, environ)
        assert getattr(resolved.config, option.name) == expected, (argv, environ)
        assert resolved.sources[option.name] is source, (argv, environ)
        # Nothing else moved: every other setting is still its default.
        others = {o.name for o in OPTIONS} - {option.name}
        assert all(resolved.sources[name] is Source.DEFAULT for name in others)


def test_layers_mix_setting_by_setting(tmp_path: Path) -> None:
    toml = tmp_path / "g.toml"
    toml.write_text('port = 7001\nmax-room-peers = 4\nstun-server = "stun:a.example:3478"\n')
    resolved = parse_settings(["-config", str(toml), "--max-room-peers", "6"], {"PORT": "7002"})
    config = resolved.config
    assert (config.port, config.max_room_peers, config.stun_servers) == (7002, 6, ("stun:a.example:3478",))
    assert (resolved.sources["port"], resolved.sources["max_room_peers"], resolved.sources["stun_servers"]) == (
        Source.ENV, Source.FLAG, Source.FILE)
    assert resolved.file == toml


def _refusal(argv: list[str], capsys: pytest.CaptureFixture[str], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(SystemExit) as exited:
        parse_settings(argv, environ or {})
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" not in err  # the message names the file or variable; the flag list would bury it
    return err


def test_an_unknown_key_is_refused_naming_the_key_and_the_file(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "ghosttalk.toml"
    toml.write_text("port = 8080\nmax_room_peers = 10\n")
    err = _refusal(["--config", str(toml)], capsys)
    assert f"config file {toml}: unknown key 'max_room_peers' (did you mean 'max-room-peers'?)" in err
    toml.write_text("prot = 8080\n")
    assert "unknown key 'prot' (did you mean 'port'?)" in _refusal(["--config", str(toml)], capsys)
    toml.write_text("[server]\nport = 8080\n")
    assert "unknown key 'server'" in _refusal(["--config", str(toml)], capsys)


@pytest.mark.parametrize(
    ("line", "reason"),
    [("port = 70000", "port: port 70000 is outside 0-65535"),
     ('port = "8080"', "port: expected a whole number, not a TOML string"),
     ("port = true", "port: expected a whole number, not a TOML boolean"),
     ("join-rate = 0", "join-rate: 0 must be greater than zero"),
     ("log-format = 'xml'", "log-format: 'xml' is not one of text, json"),
     ("rtc-host = [1, 2]", "rtc-host: expected a list of strings without commas"),
     ("trusted-proxies = ['10.0.0.0/8', 'nope']", "trusted-proxies: not a list of addresses or CIDR ranges"),
     ("admin-key = 1234567890123456789", "admin-key: expected a string, not a TOML integer")],
)  # fmt: skip
def test_a_bad_value_in_the_file_is_refused_naming_the_file_and_key(
    line: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "ghosttalk.toml"
    toml.write_text(line + "\n")
    assert f"error: config file {toml}: {reason}" in _refusal(["--config", str(toml)], capsys)


def test_secrets_in_a_bad_file_are_never_echoed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "ghosttalk.toml"
    toml.write_text('admin-key = "short-secret"\n')
    err = _refusal(["--config", str(toml)], capsys)
    assert "admin-key: the admin key (--admin-key or ADMIN_KEY) is 12 characters" in err
    assert "short-secret" not in err
    toml.write_text('turn-pass = ["a-secret-list"]\n')
    assert "a-secret-list" not in _refusal(["--config", str(toml)], capsys)


def test_unreadable_and_malformed_files_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.toml"
    assert f"cannot read config file {missing}: No such file or directory" in _refusal(["--config", str(missing)],
                                                                                       capsys)
    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    assert f"config file {broken} is not valid TOML" in _refusal(["--config", str(broken)], capsys)


def test_the_file_is_checked_whole_even_where_a_flag_wins(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "ghosttalk.toml"
    toml.write_text("port = -1\n")
    assert "port: port -1 is outside 0-65535" in _refusal(["--config", str(toml), "--port", "80"], capsys)


def test_a_list_is_an_array_or_one_comma_separated_string(tmp_path: Path) -> None:
    toml = tmp_path / "ghosttalk.toml"
    toml.write_text('turn-server = ["turn:a:3478", "turns:a:5349"]\nallowed-origins = "https://a, https://b"\n')
    config = parse_settings(["--config", str(toml)], {}).config
    assert config.turn_servers == ("turn:a:3478", "turns:a:5349")
    assert config.allowed_origins == ("https://a", "https://b")


def test_a_server_runs_from_a_config_file(tmp_path: Path) -> None:
    port = free_port()
    toml = tmp_path / "ghosttalk.toml"
    toml.write_text(
        f'host = "127.0.0.1"\nport = {port}\nrtc-bind = "127.0.0.1"\nrtc-udp-port = {free_port(socket.SOCK_DGRAM)}\n'
        f'rtc-host = ["127.0.0.1"]\ndata-dir = "{tmp_path / "data"}"\nlog-format = "json"\n'
        'admin-key = "key-from-the-file-0123"\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in {o.env for o in OPTIONS}}
    log = tmp_path / "console.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ghosttalk", "--config", str(toml)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_until_healthy(proc, f"http://127.0.0.1:{port}", 20, log.read_text)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/admin?action=stats",
                                         headers={"X-Admin-Key": "key-from-the-file-0123"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200  # the admin key came from the file
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    messages = [json.loads(line)["message"] for line in log.read_text().splitlines()]
    assert f"settings from flags, the environment and {toml} (ghosttalk config shows each)" in messages
    assert "no admin key configured" not in log.read_text()


# --- ghosttalk config ---------------------------------------------------------------------------------------


def _secret_environment(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    toml = tmp_path / "ghosttalk.toml"
    toml.write_text('turn-pass = "pass-from-the-file"\nmax-rooms = 7\n')
    environ = {"ADMIN_KEY": "key-from-the-environment", "TURN_USER": "ghost"}
    return ["--config", str(toml), "--port", "9009"], environ


def test_config_prints_one_line_per_setting_with_its_source_and_secrets_masked(tmp_path: Path) -> None:
    argv, environ = _secret_environment(tmp_path)
    out = io.StringIO()
    assert config_main(argv, out, environ) == 0
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == [option.flag for option in OPTIONS]
    rows = {line.split()[0]: line.split(maxsplit=1)[1] for line in lines}
    assert re.fullmatch(r"9009 +flag", rows["port"])
    assert re.fullmatch(rf"{re.escape(MASK)} +env ADMIN_KEY", rows["admin-key"])
    assert re.fullmatch(r"ghost +env TURN_USER", rows["turn-user"])
    assert re.fullmatch(rf"{re.escape(MASK)} +file {re.escape(argv[1])}", rows["turn-pass"])
    assert re.fullmatch(rf"7 +file {re.escape(argv[1])}", rows["max-rooms"])
    assert re.fullmatch(r"unset +default", rows["turn-secret"])
    assert re.fullmatch(r"127\.0\.0\.0/8,::1/128 +default", rows["trusted-proxies"])
    assert "key-from-the-environment" not in out.getvalue() and "pass-from-the-file" not in out.getvalue()


def test_config_json(tmp_path: Path) -> None:
    argv, environ = _secret_environment(tmp_path)
    out = io.StringIO()
    assert config_main([*argv, "--json"], out, environ) == 0
    document = json.loads(out.getvalue())
    assert document["config_file"] == argv[1]
    settings = document["settings"]
    assert list(settings) == [option.flag for option in OPTIONS]
    assert settings["port"] == {"value": 9009, "source": "flag", "env": "PORT"}
    assert settings["admin-key"] == {"value": MASK, "source": "env", "env": "ADMIN_KEY"}
    assert settings["turn-pass"] == {"value": MASK, "source": "file", "env": "TURN_PASS"}
    assert settings["turn-secret"] == {"value": None, "source": "default", "env": "TURN_SECRET"}
    assert settings["trusted-proxies"]["value"] == ["127.0.0.0/8", "::1/128"]
    assert settings["data-dir"]["value"] == "data" and settings["join-rate"]["value"] == 60.0
    assert "key-from-the-environment" not in out.getvalue() and "pass-from-the-file" not in out.getvalue()


def test_ghosttalk_config_is_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--json", "--max-peers", "77"]) == 0
    assert json.loads(capsys.readouterr().out)["settings"]["max-peers"]["value"] == 77


# --- One description, everywhere ----------------------------------------------------------------------------


def test_every_config_field_is_a_setting_or_a_deliberate_internal_timing() -> None:
    internal = {"heartbeat_interval", "ws_ping_interval", "ws_read_timeout"}
    described = {option.name for option in OPTIONS}
    assert described | internal == {f.name for f in dataclasses.fields(Config)}
    assert not described & internal
    assert len({o.flag for o in OPTIONS}) == len({o.env for o in OPTIONS}) == len(OPTIONS)
    assert "config" not in {o.flag for o in OPTIONS}  # --config names the file


def test_the_readme_table_is_generated_from_the_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- settings table:[^\n]*-->\n(.*?)<!-- end of settings table -->", readme, re.S)
    assert match, "README.md lost the settings table markers"
    assert match.group(1) == flags_table(), (
        "README.md's settings table is stale: replace the lines between its markers with the output of "
        "`python -m ghosttalk config --markdown`"
    )
