"""One benchmark run: server, workers, warm-up, the measured window, the late joiner, the report."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import multiprocessing
import os
import secrets
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np

from ghosttalk.benchmark.cluster import Counters, Landing, cluster_nodes, room_nodes, scrape
from ghosttalk.benchmark.joins import JoinSample, Locate, figures, join_burst, late_joiners
from ghosttalk.benchmark.report import NodeReport, Progress, RunReport, percentile_ms
from ghosttalk.benchmark.server import LocalServer, ProcessSample, node_id_of, sample_process, sample_tree
from ghosttalk.benchmark.workers import (
    PACKET_INTERVAL,
    ClientSpec,
    Window,
    WorkerPlan,
    WorkerResult,
    quiet_logging,
    run_event_loop,
    worker_main,
)
from ghosttalk.client.e2ee import new_secret
from ghosttalk.config import FORWARD_ALL_UP_TO, MAX_ROOM_PEERS, Config

# Speakers start this long after the start message, so that every worker has it in hand.
START_DELAY = 0.5
# Speakers' audio levels (RFC 6464 -dBov), loudest first and a clear 8 dB apart: in a room past ten people
# the server forwards each listener the loudest few, and these make which ones certain.
LOUDEST_LEVEL = 20
LEVEL_STEP = 8
# What the server under test forwards past ten people (its default --max-forwarded-speakers).
DEFAULT_FORWARDED = Config().max_forwarded_speakers
_FORWARDED = "ghosttalk_rtp_packets_forwarded_total"
_RECEIVED = "ghosttalk_rtp_packets_received_total"
_DROPPED = "ghosttalk_rtp_packets_dropped_total"


class BenchError(Exception):
    """The run could not be carried out (server or worker failure); the message says why."""


@dataclass(slots=True, frozen=True)
class BenchParams:
    rooms: int
    per_room: int
    speakers: int
    seconds: float
    warmup: float
    workers: int
    payload_bytes: int
    url: str | None
    server_pid: int | None
    late_joiners: int
    join_burst: int
    pin: bool
    join_concurrency: int
    encrypted: bool = False
    # > 1: start a cluster of this many nodes on one private Redis instead of a single server.
    server_workers: int = 1
    # With --url: the server's admin key, to learn its nodes and where the rooms went.
    admin_key: str | None = None

    @property
    def peers(self) -> int:
        return self.rooms * self.per_room

    @property
    def streams(self) -> int:
        return self.rooms * forwarded_streams(self.per_room, self.speakers)

    @property
    def room_capacity(self) -> int:
        """People a room must admit: its members, a late joiner and its share of the burst."""
        return self.per_room + 1 + math.ceil(self.join_burst / self.rooms)


@dataclass(slots=True, frozen=True)
class ServerSample:
    """The server's own counters (summed over its nodes) and, when it is local, its process figures (the
    process and every process below it, summed); each node's counters; the bench's own processes."""

    packets_in: int | None
    packets_forwarded: int | None
    packets_dropped: int | None
    process: ProcessSample | None
    # Node id -> its counters (the key None: a server that is not clustered).
    nodes: dict[str | None, Counters]
    # pid -> figures, for the server's process tree (empty without a pid).
    tree: dict[int, ProcessSample]
    redis: ProcessSample | None
    # pid -> figures, for the bench's own worker processes (one that has exited is missing).
    clients: dict[int, ProcessSample]


@dataclass(slots=True, frozen=True)
class Observed:
    """What the runner watches besides the load: the server's processes and nodes, and its own workers."""

    url: str
    pid: int | None
    admin_key: str | None = None
    redis_pid: int | None = None
    nodes: list[str] | None = None
    client_pids: tuple[int, ...] = ()


def forwarded_streams(per_room: int, speakers: int, forwarded: int = DEFAULT_FORWARDED) -> int:
    """Speaker -> listener streams in one room: everyone to everyone up to FORWARD_ALL_UP_TO people. Past that
    each listener hears the ``forwarded`` loudest others (the bench's speakers are loudest first): those reach
    everyone else, and the next one reaches them."""
    if per_room <= FORWARD_ALL_UP_TO or forwarded == 0 or speakers <= forwarded:
        return speakers * (per_room - 1)
    return forwarded * (per_room - 1) + forwarded


def build_plans(params: BenchParams, url: str, tag: str, secret: str | None = None) -> list[WorkerPlan]:
    """Rooms of ``per_room`` people, the first ``speakers`` of each speaking; clients dealt round-robin;
    ``secret``: the rooms are end-to-end encrypted with it."""
    total_speakers = params.rooms * params.speakers
    specs: list[ClientSpec] = []
    for room in range(params.rooms):
        for member in range(params.per_room):
            speaker = member < params.speakers
            # Rooms interleaved so that neighbouring send times belong to different rooms.
            rank = member * params.rooms + room
            phase = PACKET_INTERVAL * rank / total_speakers if speaker else 0.0
            level = LOUDEST_LEVEL + LEVEL_STEP * member if speaker else None
            specs.append(ClientSpec(len(specs), f"bench-{tag}-{room}", f"r{room}m{member}", speaker, phase, level))
    count = min(params.workers, len(specs))
    return [
        WorkerPlan(url, params.payload_bytes, params.per_room, params.join_concurrency, tuple(specs[i::count]), secret)
        for i in range(count)
    ]


def run(params: BenchParams, progress: Progress) -> RunReport:
    """Carry out one run. Raises :class:`BenchError`."""
    server: LocalServer | None = None
    observed = Observed(params.url, params.server_pid, params.admin_key) if params.url else None
    if observed is None:
        # Room for the late joiners and the burst on top of the planned load.
        extra = 1 + params.join_burst
        # No more than the server admits: a room of MAX_ROOM_PEERS leaves no place for a late joiner.
        room_size = min(params.room_capacity, MAX_ROOM_PEERS)
        try:
            server = LocalServer(room_size, params.peers + extra, params.rooms, workers=params.server_workers)
            server.start()
        except RuntimeError as exc:
            raise BenchError(str(exc)) from None
        redis_pid = server.redis.pid if server.redis is not None else None
        observed = Observed(server.url, server.pid, server.admin_key, redis_pid)
        # A cluster's nodes are left to the scheduler: pinned together they would share one core.
        if params.pin and server.redis is None:
            pin_server(server.pid)
    try:
        return run_event_loop(_run(params, observed, progress))
    finally:
        progress.clear()
        if server is not None:
            server.stop()


def pin_server(pid: int) -> None:
    """Keep the server on CPU 0 so that its figures do not move with where the scheduler happens to put it
    from one moment to the next. The clients stay free to use every CPU: squeezed onto the others, they
    queue behind each other and the latency they measure is theirs, not the server's."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        os.sched_setaffinity(pid, {cpus[0]})


def _sum(samples: list[ProcessSample]) -> ProcessSample:
    """Processes taken together. The peak is the sum of each one's peak: an upper bound, as they need not
    have peaked at the same moment."""
    return ProcessSample(
        sum(s.cpu_seconds for s in samples), sum(s.system_seconds for s in samples),
        sum(s.rss_mb for s in samples), sum(s.peak_rss_mb for s in samples),
    )  # fmt: skip


async def _observe(observed: Observed) -> ServerSample:
    nodes = await scrape(observed.url, observed.nodes)
    totals: Counters = {}
    for counters in nodes.values():
        for name, value in counters.items():
            totals[name] = totals.get(name, 0) + value
    tree = sample_tree(observed.pid) if observed.pid is not None else {}
    return ServerSample(
        totals.get(_RECEIVED),
        totals.get(_FORWARDED),
        totals.get(_DROPPED),
        _sum(list(tree.values())) if tree else None,
        nodes,
        tree,
        sample_process(observed.redis_pid) if observed.redis_pid is not None else None,
        _sample_each(observed.client_pids),
    )


def _sample_each(pids: tuple[int, ...]) -> dict[int, ProcessSample]:
    samples = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # a worker that died is reported by its pipe, not here
            samples[pid] = sample_process(pid)
    return samples


def _cpu_between(before: dict[int, ProcessSample], after: dict[int, ProcessSample], seconds: float) -> float | None:
    """% of one core used over ``seconds`` by the processes sampled at both ends."""
    both = before.keys() & after.keys()
    if not both:
        return None
    return _cpu_percent(_sum([before[p] for p in both]), _sum([after[p] for p in both]), seconds)


class _Workers:
    """The worker processes and one queue of everything they say, tagged with who said it.

    Pipes are read by blocking ``recv`` in threads: polling them from the event loop (uvloop) would make
    them non-blocking, and a large result message would then fail half-written."""

    def __init__(self, plans: list[WorkerPlan]) -> None:
        self.events: asyncio.Queue[tuple[int, tuple[Any, ...]]] = asyncio.Queue()
        self.links: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        self._pumps: list[asyncio.Task[None]] = []
        context = multiprocessing.get_context("spawn")
        for index, plan in enumerate(plans):
            parent, child = context.Pipe()
            process = context.Process(target=worker_main, args=(child, plan), daemon=True)
            process.start()
            child.close()
            self.links.append((process, parent))
            self._pumps.append(asyncio.create_task(self._pump(index, parent)))

    async def _pump(self, index: int, conn: Connection) -> None:
        while True:
            try:
                message: tuple[Any, ...] = await asyncio.to_thread(conn.recv)
            except (EOFError, OSError):
                message = ("exit",)
            self.events.put_nowait((index, message))
            if message[0] in ("result", "error", "exit"):
                return  # the worker has nothing more to say

    def broadcast(self, message: tuple[Any, ...]) -> None:
        for process, conn in self.links:
            if process.is_alive():
                conn.send(message)

    async def next_event(self, timeout: float) -> tuple[int, tuple[Any, ...]]:
        try:
            index, message = await asyncio.wait_for(self.events.get(), timeout)
        except TimeoutError:
            raise BenchError(f"no word from the workers for {timeout:g} s") from None
        if message[0] == "error":
            raise BenchError(message[1])
        if message[0] == "exit":
            raise BenchError(f"worker {index} exited unexpectedly")
        return index, message

    async def close(self) -> None:
        """Tell every worker to stop (a no-op after a normal run), wait for them, then reap the pumps."""
        with contextlib.suppress(OSError):  # a worker that has gone away has nothing to be told
            self.broadcast(("stop",))
        deadline = time.monotonic() + 20
        for process, _ in self.links:
            await asyncio.to_thread(process.join, max(deadline - time.monotonic(), 0))
            if process.is_alive():
                process.terminate()
            process.join(1)
        # With every worker gone, each pump's recv has returned or raised EOFError.
        await asyncio.gather(*self._pumps, return_exceptions=True)
        for _, conn in self.links:
            conn.close()


async def _sleep_until(when: float, progress: Progress, phase: str, origin: float) -> None:
    while (remaining := when - time.time()) > 0:
        progress.update(phase, time.time() - origin, when - origin)
        await asyncio.sleep(min(remaining, 0.25))
    progress.update(phase, when - origin, when - origin)


async def _run(params: BenchParams, observed: Observed, progress: Progress) -> RunReport:
    quiet_logging()
    host_load = os.getloadavg()[0]
    secret = new_secret() if params.encrypted else None
    url, pid = observed.url, observed.pid
    plans = build_plans(params, url, secrets.token_hex(3), secret)
    idle = _sum(list(sample_tree(pid).values())) if pid is not None else None
    workers = _Workers(plans)
    placed: dict[str, str] | None = None  # room -> its node
    joins: list[float] = []
    try:
        ready = 0
        while ready < len(plans):
            _, message = await workers.next_event(timeout=90.0)
            if message[0] == "joined":
                joins.append(message[1])
                progress.update("joining", len(joins), params.peers)
            elif message[0] == "ready":
                ready += 1
        client_pids = tuple(process.pid for process, _ in workers.links if process.pid is not None)
        observed = dataclasses.replace(observed, client_pids=client_pids, nodes=await _node_ids(observed))
        start_at = time.time() + START_DELAY
        window = Window(start_at, start_at + params.warmup, start_at + params.warmup + params.seconds)
        workers.broadcast(("start", window))
        await _sleep_until(window.measure_from, progress, "warming up", start_at)
        before = await _observe(observed)
        await _sleep_until(window.measure_to, progress, "measuring", window.measure_from)
        after = await _observe(observed)
        rooms = _rooms_and_speakers(plans)
        if observed.admin_key is not None and any(node is not None for node in after.nodes):
            placed = await _placement(observed.url, observed.admin_key, [room for room, _ in rooms])
        # The joins come after the window, the speakers still talking: a join's SDP and DTLS work is not
        # forwarding, and would otherwise raise the CPU per forwarded packet by an amount that depends on
        # how many joins were asked for.
        progress.update("late joiners", 0, 1)
        late = await late_joiners(url, rooms, params.late_joiners, secret, _landing(url, after, placed))
        progress.update("join burst", 0, 1)
        burst = await join_burst(url, rooms, params.join_burst, secret) if params.join_burst else []
        workers.broadcast(("stop",))
        progress.update("draining", 0, 1)
        results: dict[int, WorkerResult] = {}
        while len(results) < len(plans):
            index, message = await workers.next_event(timeout=30.0)
            if message[0] == "result":
                results[index] = message[1]
    finally:
        await workers.close()
    report = _report(params, list(results.values()), joins, (late, burst), idle, before, after, host_load)
    report.nodes = _node_reports(params, before, after, placed)
    if placed is not None:
        _split_late_joins(report, late, placed)
    return report


def _landing(url: str, after: ServerSample, placed: dict[str, str] | None) -> Locate | None:
    """How to tell which node took a late joiner's WebSocket: only for a cluster whose node processes are
    on this machine and known (its supervisor's pid), and whose rooms' nodes are known (the admin key)."""
    nodes = {pid: node for pid in after.tree if (node := node_id_of(pid)) is not None}
    port = urlsplit(url).port
    if placed is None or not nodes or port is None:
        return None
    return Landing(port, nodes).node_of


def _split_late_joins(report: RunReport, late: list[JoinSample], placed: dict[str, str]) -> None:
    """Late joins whose WebSocket the room's own node took (local), and those another node took and bridged
    through Redis, each timed alike."""
    landed = [(sample, placed.get(sample.room)) for sample in late if sample.node is not None]
    local = [sample for sample, node in landed if sample.node == node]
    bridged = [sample for sample, node in landed if node is not None and sample.node != node]
    if not local and not bridged:
        return  # nobody's landing is known
    report.late_join_bridged = len(bridged)
    report.late_join_local_p50_ms = figures(local).p50
    report.late_join_bridged_p50_ms = figures(bridged).p50


async def _node_ids(observed: Observed) -> list[str] | None:
    """The cluster's nodes from /admin when the key is known (None: not a cluster, or no key: the scrapes
    then take every node that shows up)."""
    if observed.admin_key is None:
        return None
    try:
        return await cluster_nodes(observed.url, observed.admin_key)
    except aiohttp.ClientError as exc:
        raise BenchError(f"/admin?action=stats failed ({exc}): is the admin key right?") from None


async def _placement(url: str, key: str, rooms: list[str]) -> dict[str, str]:
    try:
        return await room_nodes(url, key, rooms)
    except aiohttp.ClientError as exc:
        raise BenchError(f"/admin?action=rooms failed ({exc}): is the admin key right?") from None


def _node_reports(
    params: BenchParams, before: ServerSample, after: ServerSample, placed: dict[str, str] | None
) -> list[NodeReport] | None:
    """Each node's share of the run: rooms, packets forwarded, and its process's figures when one of the
    server's processes was started with its ``--node-id`` (a ``--workers`` child)."""
    ids = sorted(node for node in after.nodes if node is not None)
    if not ids:
        return None
    processes = {node_id_of(pid): pid for pid in after.tree}
    reports = []
    for node in ids:
        forwarded = _delta(after.nodes[node].get(_FORWARDED), before.nodes.get(node, {}).get(_FORWARDED))
        pid = processes.get(node)
        cpu = rss = None
        if pid is not None and pid in before.tree:
            cpu = _cpu_percent(before.tree[pid], after.tree[pid], params.seconds)
            rss = round(after.tree[pid].rss_mb, 1)
        rooms = None if placed is None else sum(1 for owner in placed.values() if owner == node)
        reports.append(NodeReport(node, rooms, forwarded, cpu, rss))
    return reports


def _cpu_percent(before: ProcessSample | None, after: ProcessSample | None, seconds: float) -> float | None:
    if before is None or after is None:
        return None
    return round(100 * (after.cpu_seconds - before.cpu_seconds) / seconds, 1)


def _rooms_and_speakers(plans: list[WorkerPlan]) -> list[tuple[str, set[int]]]:
    """Every room of the load in plan order, with the probe ids of the speakers a newcomer hears: all of
    them, or in a room past ten people the DEFAULT_FORWARDED loudest (the first speakers)."""
    rooms: dict[str, list[ClientSpec]] = {}
    for spec in sorted((spec for plan in plans for spec in plan.clients), key=lambda spec: spec.client_id):
        rooms.setdefault(spec.room, []).append(spec)
    heard: list[tuple[str, set[int]]] = []
    for room, members in rooms.items():
        speakers = [spec.client_id for spec in members if spec.speaker]
        if DEFAULT_FORWARDED and len(members) + 1 > FORWARD_ALL_UP_TO:
            speakers = speakers[:DEFAULT_FORWARDED]
        heard.append((room, set(speakers)))
    return heard


def _delta(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


def _report(
    params: BenchParams,
    results: list[WorkerResult],
    joins: list[float],
    timed_joins: tuple[list[JoinSample], list[JoinSample]],
    idle: ProcessSample | None,
    before: ServerSample,
    after: ServerSample,
    host_load: float,
) -> RunReport:
    latencies = np.concatenate([np.frombuffer(r.latencies, dtype=np.float64) for r in results])
    sent = sum(r.sent for r in results)
    received = sum(r.received for r in results)
    # Every speaker sends the same number of packets in the window (give or take one).
    expected = round(sent * params.streams / (params.rooms * params.speakers)) if params.speakers else 0
    forwarded = _delta(after.packets_forwarded, before.packets_forwarded)
    cpu = cpu_system = rss = peak = rss_idle = per_peer = cpu_per_packet = cpu_percent = None
    if before.process is not None and after.process is not None:
        # Over the processes there at both ends: one that started or ended meanwhile has no difference to give.
        both = before.tree.keys() & after.tree.keys()
        start, end = _sum([before.tree[p] for p in both]), _sum([after.tree[p] for p in both])
        cpu = round(end.cpu_seconds - start.cpu_seconds, 3)
        cpu_system = round(end.system_seconds - start.system_seconds, 3)
        cpu_percent = round(100 * cpu / params.seconds, 1)
        rss, peak = round(after.process.rss_mb, 1), round(after.process.peak_rss_mb, 1)
        if forwarded:
            cpu_per_packet = round(cpu / forwarded * 1e6, 2)
        if idle is not None:
            rss_idle = round(idle.rss_mb, 1)
            per_peer = round((after.process.rss_mb - idle.rss_mb) / params.peers, 3)
    join_ms = np.array(joins) * 1000
    late, burst = figures(timed_joins[0]), figures(timed_joins[1])
    return RunReport(
        rooms=params.rooms,
        per_room=params.per_room,
        speakers_per_room=params.speakers,
        peers=params.peers,
        speakers=params.rooms * params.speakers,
        streams=params.streams,
        seconds=params.seconds,
        warmup=params.warmup,
        payload_bytes=params.payload_bytes,
        encrypted=params.encrypted,
        workers=len(results),
        packets_sent=sent,
        packets_expected=expected,
        packets_received=received,
        delivery_ratio=round(received / expected, 6) if expected else None,
        latency_p50_ms=percentile_ms(latencies, 50),
        latency_p95_ms=percentile_ms(latencies, 95),
        latency_p99_ms=percentile_ms(latencies, 99),
        latency_max_ms=percentile_ms(latencies, 100),
        join_p50_ms=round(float(np.percentile(join_ms, 50)), 1),
        join_p99_ms=round(float(np.percentile(join_ms, 99)), 1),
        late_joiners=params.late_joiners,
        late_join_heard_all=late.heard_all,
        late_join_p50_ms=late.p50,
        late_join_p99_ms=late.p99,
        late_join_welcome_ms=late.steps.welcome,
        late_join_offer_sent_ms=late.steps.offer_sent,
        late_join_answer_ms=late.steps.answer,
        late_join_ice_ms=late.steps.ice_connected,
        late_join_dtls_ms=late.steps.dtls_connected,
        late_join_server_offer_ms=late.steps.server_offer,
        late_join_server_answer_ms=late.steps.server_offer_answered,
        late_join_server_offers=late.server_offers,
        late_join_bridged=None,  # filled in by the caller for a cluster, which knows where the rooms went
        late_join_local_p50_ms=None,
        late_join_bridged_p50_ms=None,
        join_burst=params.join_burst,
        join_burst_heard_all=burst.heard_all,
        join_burst_all_ms=burst.all_heard,
        join_burst_p50_ms=burst.p50,
        join_burst_p99_ms=burst.p99,
        server_packets_in=_delta(after.packets_in, before.packets_in),
        server_packets_forwarded=forwarded,
        server_packets_dropped=_delta(after.packets_dropped, before.packets_dropped),
        server_cpu_seconds=cpu,
        server_cpu_system_seconds=cpu_system,
        server_cpu_percent=cpu_percent,
        server_cpu_us_per_packet=cpu_per_packet,
        server_rss_peak_mb=peak,
        server_rss_mb=rss,
        server_rss_idle_mb=rss_idle,
        rss_per_peer_mb=per_peer,
        send_errors=sum(r.send_errors for r in results),
        server_processes=len(after.tree) or None,
        nodes=None,  # filled in by the caller, which knows where the rooms went
        redis_cpu_percent=_cpu_percent(before.redis, after.redis, params.seconds),
        client_cpu_percent=_cpu_between(before.clients, after.clients, params.seconds),
        host_load=round(host_load, 2),
    )
