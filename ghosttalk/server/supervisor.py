"""``ghosttalk --workers N``: one machine, every core.

A GhostTalk process forwards media on one core. With ``--workers N`` this process serves nothing itself: it
starts N complete nodes (``python -m ghosttalk`` with the flags, environment and config file it was given),
each on the next UDP port from ``--rtc-udp-port`` and named ``<node-id or host name>-<udp port>``. They share
the HTTP port (every clustered node binds it with SO_REUSEPORT, so the kernel spreads connections) and find each
other's rooms through Redis. This process forwards SIGTERM/SIGINT to them, waits while they drain, and starts
again a node that dies on its own.

It imports neither aiohttp nor aiortc: it is small, and its ``--help`` path stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ghosttalk.config import Config, Resolved, node_on_port
from ghosttalk.console import configure_logging

logger = logging.getLogger("ghosttalk.supervisor")

MAX_UDP_PORT = 65535
# A child's status for "these settings cannot serve" (a bad flag, a ban file it cannot read, a port it cannot
# bind): starting it again would fail the same way, so the whole machine stops, as a single node would.
REFUSED = 2


def refusal(config: Config) -> str | None:
    """Why these settings cannot run ``config.workers`` nodes on this machine, or None."""
    n = config.workers
    if config.redis_url is None:
        return f"--workers {n} needs --redis-url: the nodes find each other's rooms through Redis"
    if config.port == 0:
        return f"--workers {n} needs a fixed --port (not 0): the nodes share one HTTP port"
    if config.rtc_udp_port == 0:
        return f"--workers {n} needs a fixed --rtc-udp-port (not 0): node i takes UDP port rtc-udp-port + i"
    last = config.rtc_udp_port + n - 1
    if last > MAX_UDP_PORT:
        return (
            f"--workers {n} from --rtc-udp-port {config.rtc_udp_port} needs UDP ports up to {last}; "
            f"the highest is {MAX_UDP_PORT}"
        )
    return None


def node_id(config: Config, udp_port: int) -> str:
    """The id of this machine's node on ``udp_port``: ``<--node-id>-<port>``, else the id a node makes for itself
    (``<host name>-<port>``)."""
    if config.node_id is None:
        return replace(config, rtc_udp_port=udp_port).node_name
    return node_on_port(config.node_id, udp_port)


@dataclass(frozen=True, slots=True)
class Worker:
    """One child node: its identity, and the command that runs it."""

    node_id: str
    udp_port: int
    command: tuple[str, ...]


def plan(config: Config, args: Sequence[str]) -> list[Worker]:
    """The children for ``args`` (the serve flags this process was given, which produced ``config``).

    Settings reach a child as they reached this process: the same flags (so a secret given on the command line
    is there already, and one from the environment stays in the environment, off the world-readable
    /proc/<pid>/cmdline), the same inherited environment, the same --config file; then the child's own
    overrides, which win because flags beat the environment and the file, and a repeated flag's last value wins.
    """
    workers = []
    for index in range(config.workers):
        port = config.rtc_udp_port + index
        name = node_id(config, port)
        # Each node its own event log and ban file: two processes rotating one log would take turns losing it.
        overrides = ("--workers", "1", "--rtc-udp-port", str(port), "--node-id", name,
                     "--data-dir", str(config.data_dir / name))
        workers.append(Worker(name, port, (sys.executable, "-m", "ghosttalk", *args, *overrides)))
    return workers


@dataclass(slots=True)
class Backoff:
    """Delay before starting a crashed node again: 1 s, doubling up to 30 s, and back to 1 s once a node has
    run for a minute (so a crash loop costs little, and a crash after a good run is retried at once)."""

    first: float = 1.0
    cap: float = 30.0
    steady: float = 60.0
    _next: float = 1.0

    def after(self, ran: float) -> float:
        """The delay after a run of ``ran`` seconds."""
        if ran >= self.steady:
            self._next = self.first
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay


def _status(code: int) -> str:
    if code >= 0:
        return f"status {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:  # a real-time signal has no name
        return f"signal {-code}"


def _send(process: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has exited and not been reaped yet
        process.send_signal(sig)


class Supervisor:
    """Runs the children until a stop signal, restarting any that dies meanwhile."""

    STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, workers: Sequence[Worker], env: Mapping[str, str]) -> None:
        self._workers = tuple(workers)
        self._env = dict(env)
        self._running: dict[str, asyncio.subprocess.Process] = {}
        self._stop_signal: signal.Signals | None = None
        self._stopping = asyncio.Event()
        self._refused = False
        self._signals = 0

    async def run(self) -> int:
        """0 once every node has exited 0 after a stop signal; 2 if a node refused the settings; else 1."""
        loop = asyncio.get_running_loop()
        for sig in self.STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        logger.info(
            "starting %d nodes: %s",
            len(self._workers),
            ", ".join(f"{w.node_id} (UDP {w.udp_port})" for w in self._workers),
        )
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._keep(worker)) for worker in self._workers]
        finally:
            for sig in self.STOP_SIGNALS:
                loop.remove_signal_handler(sig)
        if self._refused:
            return REFUSED
        return 0 if all(task.result() == 0 for task in tasks) else 1

    def _on_signal(self, sig: signal.Signals) -> None:
        # A node drains on SIGTERM and ends its drain at a second signal (SIGINT stops it at once); each signal
        # is passed on as it came, and a third kills, for a node that hangs.
        self._signals += 1
        if self._signals == 1:
            logger.info("%s: stopping %d nodes (a second signal ends their drains, a third kills them)", sig.name,
                        len(self._running))  # fmt: skip
            self._stop(sig)
        elif self._signals == 2:
            logger.info("%s again: passing it on to %d nodes", sig.name, len(self._running))
            for process in self._running.values():
                _send(process, sig)
        else:
            logger.warning("%s a third time: killing %d nodes", sig.name, len(self._running))
            for process in self._running.values():
                _send(process, signal.SIGKILL)

    def _stop(self, sig: signal.Signals) -> None:
        self._stop_signal = sig
        self._stopping.set()
        for process in self._running.values():
            _send(process, sig)

    async def _keep(self, worker: Worker) -> int:
        """Run one node until the machine stops; its last exit status (0 if stopped while waiting to restart)."""
        loop = asyncio.get_running_loop()
        backoff = Backoff()
        while True:
            started = loop.time()
            # Its own process group: a Ctrl-C in the terminal reaches this process alone, which passes it on
            # once. Otherwise every node would get it twice, and a second signal may cut a drain short.
            process = await asyncio.create_subprocess_exec(*worker.command, env=self._env, process_group=0)
            self._running[worker.node_id] = process
            if self._stop_signal is not None:  # the stop came while it was being started
                _send(process, self._stop_signal)
            try:
                code = await process.wait()
            except asyncio.CancelledError:
                _send(process, signal.SIGKILL)  # this process is failing: leave no node behind
                raise
            finally:
                del self._running[worker.node_id]
            if self._stop_signal is not None:
                log = logger.info if code == 0 else logger.warning
                log("node %s exited with %s", worker.node_id, _status(code))
                return code
            if code == REFUSED:
                logger.error(
                    "node %s cannot serve with these settings (see its message above); stopping the others",
                    worker.node_id,
                )
                self._refused = True
                self._stop(signal.SIGTERM)
                return code
            delay = backoff.after(loop.time() - started)
            logger.error("node %s exited with %s; starting it again in %g s", worker.node_id, _status(code), delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
                return 0


def supervise(resolved: Resolved, args: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    """Run ``resolved.config.workers`` nodes from the serve flags ``args``; the exit status for ``ghosttalk``."""
    config = resolved.config
    problem = refusal(config)
    if problem is not None:
        print(f"ghosttalk: error: {problem}", file=sys.stderr)
        return REFUSED
    configure_logging(config.log_level, config.log_format)
    env = dict(os.environ if environ is None else environ)
    if not config.admin_key:
        # One key for the machine, not one per node: /admin answers from whichever node the kernel picks. It
        # reaches the nodes through their environment, never their command lines.
        key = secrets.token_urlsafe(24)
        env["ADMIN_KEY"] = key
        print(f"ghosttalk: no admin key configured; generated one for this run: {key}", flush=True)
    workers = plan(config, args)
    for worker in workers:
        carry_bans(config, worker)
    return asyncio.run(Supervisor(workers, env).run())


def carry_bans(config: Config, worker: Worker) -> None:
    """A machine that ran one server before keeps its bans: each new node starts with a copy of the ban file in
    --data-dir, which it brings into the cluster's list (ghosttalk.cluster.bans)."""
    own = config.data_dir / worker.node_id / config.ban_file.name
    if config.ban_file.is_file() and not own.exists():
        own.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config.ban_file, own)
