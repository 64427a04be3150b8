"""``ghosttalk bench`` end to end: the JSON line's shape and delivery, never a timing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

import orjson
import pytest

from ghosttalk.benchmark.command import main
from ghosttalk.benchmark.plot import plot_sweep
from ghosttalk.benchmark.report import NodeReport, RunReport, capacity, median_report
from ghosttalk.benchmark.server import LocalServer, PrivateRedis
from ghosttalk.cli import build_serve_parser
from tests.support.server import ROOT

FIELDS = typing.get_type_hints(RunReport)


def check_shape(line: dict[str, object]) -> None:
    assert set(line) == set(FIELDS), "every field, and nothing else"
    for name, hint in FIELDS.items():
        allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        value = line[name]
        # JSON has one number type: an integral float (e.g. 3.0 s) may come back as an int.
        ok = any(
            (kind is type(None) and value is None)
            or (kind is float and isinstance(value, int | float) and not isinstance(value, bool))
            or (kind is int and isinstance(value, int) and not isinstance(value, bool))
            or (kind is bool and isinstance(value, bool))
            or (typing.get_origin(kind) is list and isinstance(value, list))
            for kind in allowed
        )
        assert ok, f"{name}={value!r} is not {hint}"


def test_smoke_run_prints_one_complete_json_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ghosttalk", "bench", "--rooms", "1", "--per-room", "3", "--speakers", "3",
         "--seconds", "3", "--warmup", "1", "--late-joiners", "2", "--join-burst", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    report = orjson.loads(lines[0])
    check_shape(report)
    assert (report["rooms"], report["peers"], report["speakers"], report["streams"]) == (1, 3, 3, 6)
    assert report["packets_sent"] > 0
    assert report["packets_expected"] == 2 * report["packets_sent"]
    assert report["delivery_ratio"] >= 0.99, result.stderr
    # Measured from the server's side too: its own counter and its own process.
    assert report["server_packets_forwarded"] > 0
    assert report["server_cpu_seconds"] is not None and report["server_rss_peak_mb"] > 0
    # Every late joiner and everyone in the burst heard every speaker, and each step of a join was seen.
    assert (report["late_joiners"], report["late_join_heard_all"]) == (2, 2), result.stderr
    assert report["late_join_p50_ms"] is not None and report["late_join_p99_ms"] is not None
    steps = ["welcome", "offer_sent", "answer", "ice", "dtls"]
    assert all(report[f"late_join_{step}_ms"] is not None for step in steps), report
    assert report["late_join_server_offers"] is not None
    assert (report["join_burst"], report["join_burst_heard_all"]) == (2, 2), result.stderr
    assert report["join_burst_all_ms"] is not None and report["join_burst_p99_ms"] is not None
    assert "late join" in result.stderr and "join burst" in result.stderr
    assert "delivery" in result.stderr and "server" in result.stderr


def test_encrypted_rooms_are_measured_with_every_frame_sealed_and_opened() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ghosttalk", "bench", "--rooms", "1", "--per-room", "3", "--speakers", "2",
         "--seconds", "2", "--warmup", "1", "--late-joiners", "1", "--encrypted"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    check_shape(report)
    assert report["encrypted"] is True
    # A frame only counts as received once it opened (a probe payload is read from inside it).
    assert report["packets_received"] > 0 and report["delivery_ratio"] >= 0.99, result.stderr
    assert report["late_join_heard_all"] == 1, result.stderr
    assert "end-to-end encrypted" in result.stderr


def filled(**overrides: Any) -> RunReport:
    """Every field 1 (or 1.0 where it is a float), no nodes, then ``overrides``."""
    ones: dict[str, Any] = {name: 1.0 if float in (typing.get_args(hint) or (hint,)) else 1
                            for name, hint in FIELDS.items()}  # fmt: skip
    return RunReport(**ones | {"nodes": None} | overrides)


def test_medians_and_the_plot_from_reports(tmp_path: Path) -> None:
    # Every field 1 (or 1.0 where it is a float), then three runs that differ.
    base = filled(encrypted=True)
    runs = [dataclasses.replace(base, server_cpu_us_per_packet=v, packets_received=n, late_join_server_offer_ms=None)
            for v, n in ((30.0, 10), (10.0, 30), (20.0, 20))]  # fmt: skip
    median = median_report(runs)
    assert (median.server_cpu_us_per_packet, median.packets_received, median.runs) == (20.0, 20, 3)
    assert median.late_join_server_offer_ms is None
    check_shape(orjson.loads(median.json_line()))
    out = tmp_path / "sweep.png"
    plot_sweep([median, dataclasses.replace(median, streams=8, latency_p99_ms=2.0)], out)
    assert out.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "argv",
    [["--per-room", "1"], ["--speakers", "6", "--per-room", "5"], ["--payload-bytes", "8"], ["--plot", "x.png"],
     ["--server-pid", "1"], ["--sweep", "0,2"], ["--rooms", "0"], ["--admin-key", "k" * 16],
     ["--server-workers", "2", "--url", "http://127.0.0.1:1"], ["--sweep", "--min-delivery", "1.5"]],
)
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


def test_the_local_servers_command_parses_whatever_the_random_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # token_urlsafe begins with "-" one time in 64; the sweep once died of it ("expected one argument").
    monkeypatch.setattr("secrets.token_urlsafe", lambda n: "-starts-like-an-option")
    server = LocalServer(room_size=9, peers=72, rooms=8)
    command = server.command()
    server.stop()  # never started: this only removes its directory
    assert command[1:3] == ["-m", "ghosttalk"]
    assert build_serve_parser().parse_args(command[3:]).admin_key == "-starts-like-an-option"


def test_a_cluster_of_two_workers_is_measured_node_by_node() -> None:
    # --server-workers: a private redis-server and `ghosttalk --workers 2`, measured once both nodes are up.
    result = subprocess.run(
        [sys.executable, "-m", "ghosttalk", "bench", "--server-workers", "2", "--rooms", "2", "--per-room", "2",
         "--speakers", "2", "--seconds", "2", "--warmup", "1", "--late-joiners", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    check_shape(report)
    assert report["delivery_ratio"] >= 0.99, result.stderr
    # The supervisor and its two nodes, added up; each node named, with its share.
    assert report["server_processes"] == 3
    nodes = report["nodes"]
    assert len(nodes) == 2 and len({node["id"] for node in nodes}) == 2, nodes
    # Placement goes to the least-loaded node: one room each.
    assert [node["rooms"] for node in nodes] == [1, 1], nodes
    assert sum(node["packets_forwarded"] for node in nodes) == report["server_packets_forwarded"] > 0
    assert all(node["cpu_percent"] is not None and node["rss_mb"] > 0 for node in nodes), nodes
    assert report["redis_cpu_percent"] is not None and report["client_cpu_percent"] is not None
    # Where each late joiner's WebSocket landed is known, so the bridged ones are told apart.
    assert report["late_join_heard_all"] == 2 and report["late_join_bridged"] is not None, result.stderr
    assert all(node["id"] in result.stderr for node in nodes)


def test_a_single_server_has_no_nodes_and_capacity_walks_the_sweep() -> None:
    point = filled(encrypted=False, delivery_ratio=1.0, latency_p99_ms=2.0)
    sweep = [
        dataclasses.replace(point, rooms=8, packets_received=8000, seconds=10),
        dataclasses.replace(point, rooms=16, packets_received=16000, seconds=10),
        dataclasses.replace(point, rooms=24, delivery_ratio=0.998),
        # Passing again after a failure does not count.
        dataclasses.replace(point, rooms=32),
    ]
    found = capacity(sweep, 0.999, 20.0)
    assert (found.rooms, found.delivered_per_second, found.failed_at) == (16, 1600.0, 24)
    assert "delivery" in (found.failed_because or "")
    assert capacity([dataclasses.replace(point, latency_p99_ms=25.0)], 0.999, 20.0).rooms is None
    assert orjson.loads(found.json_line())["capacity"]["rooms"] == 16
    # Node by node medians, in id order.
    runs = [dataclasses.replace(point, nodes=[NodeReport("b", 2, n, 10.0, 50.0), NodeReport("a", 1, 5, None, 1.0)])
            for n in (1, 3, 2)]  # fmt: skip
    nodes = median_report(runs).nodes
    assert nodes == [NodeReport("a", 1, 5, None, 1.0), NodeReport("b", 2, 2, 10.0, 50.0)]


def test_a_cluster_without_redis_server_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="redis-server"):
        PrivateRedis(tmp_path)
