"""``ghosttalk --workers N``: N nodes on one machine sharing the HTTP port, on consecutive UDP ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ghosttalk.benchmark.server import block_of_udp_ports, free_port, wait_until_healthy
from ghosttalk.cli import parse_settings
from ghosttalk.client.participant import Client, ClientOptions
from ghosttalk.server.supervisor import Backoff, carry_bans, node_id, plan, refusal
from tests.support.eventually import eventually_sync
from tests.support.probes import socket_inodes
from tests.support.redis import RedisServer
from tests.support.server import ROOT, TEST_ADMIN_KEY

REDIS = "redis://127.0.0.1:6390/0"
# /proc/net/tcp's state for a listening socket.
TCP_LISTEN = "0A"


# --- Refusals, before anything starts ----------------------------------------------------------------------


def test_workers_without_a_redis_url_exit_2_and_say_why() -> None:
    result = subprocess.run([sys.executable, "-m", "ghosttalk", "--workers", "2", "--port", "1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 2
    assert "--workers 2 needs --redis-url: the nodes find each other's rooms through Redis" in result.stderr


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--workers", "3"], "--workers 3 needs --redis-url"),
        (["--workers", "2", "--redis-url", REDIS, "--rtc-udp-port", "0"], "needs a fixed --rtc-udp-port (not 0)"),
        (["--workers", "2", "--redis-url", REDIS, "--port", "0"], "needs a fixed --port (not 0)"),
        (["--workers", "3", "--redis-url", REDIS, "--rtc-udp-port", "65534"],
         "--workers 3 from --rtc-udp-port 65534 needs UDP ports up to 65536; the highest is 65535"),
    ],
)  # fmt: skip
def test_settings_that_cannot_run_the_workers_are_refused(argv: list[str], reason: str) -> None:
    message = refusal(parse_settings(argv, environ={}).config)
    assert message is not None and reason in message


def test_the_last_udp_port_may_be_65535() -> None:
    argv = ["--workers", "2", "--redis-url", REDIS, "--rtc-udp-port", "65534"]
    assert refusal(parse_settings(argv, environ={}).config) is None


# --- What each child is told ----------------------------------------------------------------------------------


def test_each_child_is_one_node_on_its_own_udp_port_with_the_parents_other_settings() -> None:
    args = ["-workers", "3", "--redis-url", REDIS, "--rtc-udp-port=40000", "--node-id", "edge", "--max-rooms", "7"]
    config = parse_settings(args, environ={}).config
    workers = plan(config, args)
    assert [(w.node_id, w.udp_port) for w in workers] == [("edge-40000", 40000), ("edge-40001", 40001),
                                                          ("edge-40002", 40002)]  # fmt: skip
    for worker in workers:
        assert worker.command[:3] == (sys.executable, "-m", "ghosttalk")
        # The child parses its command line as this process parsed its own: the overrides must win.
        child = parse_settings(worker.command[3:], environ={}).config
        assert (child.workers, child.rtc_udp_port, child.node_id) == (1, worker.udp_port, worker.node_id)
        assert (child.redis_url, child.max_rooms) == (REDIS, 7)


def test_secrets_from_the_environment_stay_off_the_childrens_command_lines() -> None:
    environ = {"REDIS_URL": "redis://:hunter2-password@10.0.0.5:6379/0", "ADMIN_KEY": "env-admin-key-0123456789",
               "WORKERS": "2"}  # fmt: skip
    args = ["--port", "8080"]
    config = parse_settings(args, environ).config
    assert config.workers == 2 and config.redis_url is not None
    for worker in plan(config, args):
        assert not any("hunter2" in part or "env-admin-key" in part for part in worker.command)
        # ...and the child still gets them, from the environment it inherits.
        child = parse_settings(worker.command[3:], environ).config
        assert (child.redis_url, child.admin_key, child.workers) == (config.redis_url, config.admin_key, 1)


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [("gt-1.example.net", "gt-1.example.net-50000"), ("my host/é", "my-host---50000"),
     ("h" * 80, "h" * 58 + "-50000")],
)  # fmt: skip
def test_node_ids_come_from_the_host_name_made_valid_and_at_most_64_characters(
    hostname: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: hostname)
    config = parse_settings(["--workers", "2", "--rtc-udp-port", "49999"], environ={}).config
    assert node_id(config, 50000) == expected
    parse_settings(["--node-id", expected], environ={})  # a valid --node-id


def test_a_long_node_id_is_cut_before_its_port() -> None:
    config = parse_settings(["--node-id", "n" * 64], environ={}).config
    assert node_id(config, 50001) == "n" * 58 + "-50001"


def test_each_node_keeps_its_files_in_its_own_directory_and_starts_with_the_machines_bans(tmp_path: Path) -> None:
    (tmp_path / "banned_ips.json").write_text('["203.0.113.9"]\n')
    config = parse_settings(["--workers", "2", "--redis-url", "redis://127.0.0.1:1/0", "--rtc-udp-port", "40000",
                             "--node-id", "m", "--data-dir", str(tmp_path)]).config
    workers = plan(config, [])
    for worker in workers:
        carry_bans(config, worker)
    children = [parse_settings(list(worker.command[3:])).config for worker in workers]
    assert [child.data_dir for child in children] == [tmp_path / "m-40000", tmp_path / "m-40001"]
    assert all((child.ban_file).read_text() == '["203.0.113.9"]\n' for child in children)


def test_restarts_back_off_and_start_again_from_one_second_after_a_good_run() -> None:
    backoff = Backoff()
    assert [backoff.after(0.5) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.after(61) == 1
    assert backoff.after(3) == 2


def test_the_supervisor_imports_neither_aiohttp_nor_aiortc() -> None:
    code = "import sys, ghosttalk.cli, ghosttalk.server.supervisor; print({m.split('.')[0] for m in sys.modules})"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30,
                            check=True).stdout  # fmt: skip
    assert "'ghosttalk'" in loaded
    assert "aiohttp" not in loaded and "aiortc" not in loaded


# --- A machine of two nodes -----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # it has just exited
            # The command name (field 2) is in parentheses and may hold spaces; the parent pid follows it.
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def environ_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_text().split("\0")
    return {name: value for name, _, value in (entry.partition("=") for entry in entries if entry)}


def bound_ports(protocol: str, listening_only: bool) -> dict[int, int]:
    """socket inode -> local port, from /proc/net/<protocol> and <protocol>6."""
    ports = {}
    for table in (protocol, protocol + "6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if listening_only and fields[3] != TCP_LISTEN:
                continue
            ports[int(fields[9])] = int(fields[1].rpartition(":")[2], 16)
    return ports


@dataclass(frozen=True, slots=True)
class NodeSockets:
    pid: int
    udp: frozenset[int]
    tcp_listening: frozenset[int]


def node_sockets(supervisor: int) -> list[NodeSockets]:
    udp, tcp = bound_ports("udp", False), bound_ports("tcp", True)
    result = []
    for pid in children(supervisor):
        inodes = socket_inodes(pid)
        result.append(NodeSockets(pid, frozenset(udp[i] for i in inodes if i in udp),
                                  frozenset(tcp[i] for i in inodes if i in tcp)))  # fmt: skip
    return result


@dataclass(slots=True)
class Machine:
    proc: subprocess.Popen[bytes]
    http_port: int
    udp_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def console(self) -> str:
        return self.log.read_text(errors="replace")

    def serving(self) -> list[NodeSockets]:
        """The nodes, once each holds its UDP port and the shared HTTP port (an empty list until then)."""
        nodes = node_sockets(self.proc.pid)
        expected = {self.udp_port, self.udp_port + 1}
        if sorted(min(n.udp, default=0) for n in nodes) != sorted(expected):
            return []
        if not all(len(n.udp) == 1 and n.tcp_listening == {self.http_port} for n in nodes):
            return []
        return nodes

    def wait_serving(self) -> list[NodeSockets]:
        eventually_sync(self.serving, 30, what="two nodes on UDP ports U, U+1 and one HTTP port",
                        detail=lambda: f"{node_sockets(self.proc.pid)}\n{self.console()[-3000:]}")  # fmt: skip
        return self.serving()


@contextmanager
def machine(
    tmp_path: Path, redis: RedisServer, secrets_in_env: bool = False, http_port: int | None = None
) -> Iterator[Machine]:
    """``ghosttalk --workers 2`` on loopback; whatever happens, no process of it outlives the test.

    ``secrets_in_env``: the Redis URL comes from the environment, and no admin key is given (one is generated)."""
    http_port, udp_port = http_port or free_port(), block_of_udp_ports(2)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    secret_flags = ["--redis-url", redis.url, "--admin-key", TEST_ADMIN_KEY]
    if secrets_in_env:
        env["REDIS_URL"] = redis.url
        env.pop("ADMIN_KEY", None)
        secret_flags = []
    command = [sys.executable, "-m", "ghosttalk", "--workers", "2", *secret_flags, "--port", str(http_port),
               "--rtc-udp-port", str(udp_port), "--host", "127.0.0.1", "--rtc-host", "127.0.0.1",
               "--rtc-bind", "127.0.0.1", "--data-dir", str(tmp_path / "data"),
               "--drain-timeout", "1"]  # fmt: skip
    log = tmp_path / "console.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Machine(proc, http_port, udp_port, log)
    finally:
        if proc.poll() is None:
            # The nodes are in their own process groups: a failed test kills them one by one.
            for pid in children(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
        proc.wait()


def stop_cleanly(node: Machine) -> None:
    nodes = [n.pid for n in node_sockets(node.proc.pid)]
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(30) == 0, node.console()[-3000:]
    assert not any(Path(f"/proc/{pid}").exists() for pid in nodes), "a node outlived its supervisor"


async def test_two_nodes_share_one_http_port_take_two_udp_ports_and_stop_on_sigterm(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with machine(tmp_path, redis_server) as node:
        wait_until_healthy(node.proc, node.url, 30, node.console)
        nodes = node.wait_serving()
        assert len(nodes) == 2
        # Someone joins through the shared port, and their media connects on one of the nodes' UDP ports.
        client = await Client(node.url, "workers", "ann", ClientOptions(keep_packets=False)).connect(timeout=30)
        await client.close()
        stop_cleanly(node)


def test_a_killed_node_is_started_again_on_its_udp_port(tmp_path: Path, redis_server: RedisServer) -> None:
    with machine(tmp_path, redis_server, secrets_in_env=True) as node:
        first = node.wait_serving()
        key = node.console().partition("generated one for this run: ")[2].split()[0]
        for pid in (n.pid for n in first):
            # The Redis URL came from the environment: it may hold a password, so no node shows it in ps.
            assert redis_server.url not in Path(f"/proc/{pid}/cmdline").read_text()
            # One generated admin key for the machine, handed to every node through its environment.
            assert key not in Path(f"/proc/{pid}/cmdline").read_text()
            assert environ_of(pid).get("ADMIN_KEY") == key
        victim = next(n for n in first if n.udp == {node.udp_port + 1})
        os.kill(victim.pid, signal.SIGKILL)
        eventually_sync(lambda: [n.pid for n in node.serving()], 30, what="the node started again",
                        until=lambda pids: len(pids) == 2 and victim.pid not in pids,
                        detail=lambda: node.console()[-3000:])  # fmt: skip
        assert "exited with signal SIGKILL; starting it again in 1 s" in node.console()
        assert node.console().count("generated one for this run") == 1
        stop_cleanly(node)


def test_a_node_that_cannot_serve_stops_the_machine_with_status_2(tmp_path: Path, redis_server: RedisServer) -> None:
    # The HTTP port is held by something that does not share it: no node can listen, restarting cannot help.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with machine(tmp_path, redis_server, http_port=holder.getsockname()[1]) as node:
            assert node.proc.wait(60) == 2, node.console()[-3000:]
            assert "cannot serve with these settings" in node.console()


# A stand-in node that writes down each signal it gets and never exits by itself, and a supervisor of two of them.
FAKE_NODE = """
import pathlib, signal, sys, time
log = pathlib.Path(sys.argv[1])
def note(sig, frame):
    with log.open("a") as out:
        out.write(signal.Signals(sig).name + " ")
signal.signal(signal.SIGTERM, note)
signal.signal(signal.SIGINT, note)
note(signal.SIGUSR1, None)
while True:
    time.sleep(1)
"""
FAKE_MACHINE = """
import asyncio, os, sys
from ghosttalk.server.supervisor import Supervisor, Worker
node, logs = sys.argv[1], sys.argv[2:]
workers = [Worker(f"n{i}", i, (sys.executable, "-c", node, log)) for i, log in enumerate(logs)]
sys.exit(asyncio.run(Supervisor(workers, os.environ).run()))
"""


def test_signals_are_passed_on_to_every_node_and_a_third_kills_them(tmp_path: Path) -> None:
    logs = [tmp_path / "n0.log", tmp_path / "n1.log"]

    def seen() -> list[str]:
        return [log.read_text() if log.exists() else "" for log in logs]

    proc = subprocess.Popen([sys.executable, "-c", FAKE_MACHINE, FAKE_NODE, *map(str, logs)], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stderr=subprocess.PIPE, text=True)  # fmt: skip
    nodes = []
    try:
        eventually_sync(seen, 20, what="both nodes up", until=lambda s: s == ["SIGUSR1 "] * 2)
        nodes = children(proc.pid)
        proc.send_signal(signal.SIGTERM)  # stop: each node starts draining
        eventually_sync(seen, 10, what="SIGTERM passed on", until=lambda s: s == ["SIGUSR1 SIGTERM "] * 2)
        proc.send_signal(signal.SIGINT)  # ends the drains
        eventually_sync(seen, 10, what="SIGINT passed on", until=lambda s: s == ["SIGUSR1 SIGTERM SIGINT "] * 2)
        assert proc.poll() is None  # these nodes ignore both: the supervisor waits
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 1  # the nodes were killed: not a clean exit
        assert proc.stderr is not None and "killing 2 nodes" in proc.stderr.read()
    finally:
        for pid in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
    assert len(nodes) == 2 and not any(Path(f"/proc/{pid}").exists() for pid in nodes)
