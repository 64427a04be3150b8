"""The numbers of a run: the JSON line, medians over runs, the human summary and the progress line."""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import orjson


@dataclass(slots=True)
class NodeReport:
    """One node of a cluster in one run (or the medians of several, position by position in id order)."""

    id: str
    # The bench's rooms placed on it (None: not known, no admin key).
    rooms: int | None
    packets_forwarded: int | None
    # Its process's CPU over the window (% of one core) and memory at its end (None: no process figures).
    cpu_percent: float | None
    rss_mb: float | None


@dataclass(slots=True)
class RunReport:
    """One run (or the medians of several). Server-side figures are None when the server's process is not
    local (``--url`` without ``--server-pid``); join figures are None when no join got that far (or none was
    asked for)."""

    rooms: int
    per_room: int
    speakers_per_room: int
    peers: int
    speakers: int
    # speaker -> listener streams the server forwards: rooms x speakers x (per_room - 1)
    streams: int
    seconds: float
    warmup: float
    payload_bytes: int
    # End-to-end encrypted rooms: payload_bytes is the frame inside; the server forwards 33 bytes more.
    encrypted: bool
    workers: int
    packets_sent: int
    packets_expected: int
    packets_received: int
    delivery_ratio: float | None  # None when nothing was expected (no speakers)
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    # The load's own joins, a few at a time before it starts: connect() until media is up.
    join_p50_ms: float
    join_p99_ms: float
    # Late joiners, one after another into successive rooms while the load runs (after the measured window):
    # WebSocket opening -> a packet from every speaker of the room, over those who heard everyone in time.
    late_joiners: int
    late_join_heard_all: int
    late_join_p50_ms: float | None
    late_join_p99_ms: float | None
    # The steps of a late join, each in ms from the WebSocket opening (medians over the late joiners).
    late_join_welcome_ms: float | None
    late_join_offer_sent_ms: float | None
    late_join_answer_ms: float | None
    late_join_ice_ms: float | None
    late_join_dtls_ms: float | None
    # The server's first re-offer received, and answered (None: no re-offer came).
    late_join_server_offer_ms: float | None
    late_join_server_answer_ms: float | None
    # Offers from the server before every speaker was heard (median; 0 is one round trip).
    late_join_server_offers: float | None
    # In a cluster: how many late joiners' WebSockets landed on another node than their room's and were bridged
    # through Redis, and the p50 join (as late_join_p50_ms) of those that landed on the room's node and of those
    # bridged (None: not a cluster, or where a join landed is not known: needs the admin key and the processes).
    late_join_bridged: int | None
    late_join_local_p50_ms: float | None
    late_join_bridged_p50_ms: float | None
    # --join-burst people joining within one second while the load runs.
    join_burst: int
    join_burst_heard_all: int
    # The first WebSocket opening to the last of them hearing everyone (None unless all of them did).
    join_burst_all_ms: float | None
    join_burst_p50_ms: float | None
    join_burst_p99_ms: float | None
    server_packets_in: int | None
    server_packets_forwarded: int | None
    server_packets_dropped: int | None
    server_cpu_seconds: float | None
    # The kernel's share of it (UDP send and receive on loopback is charged to the server).
    server_cpu_system_seconds: float | None
    server_cpu_percent: float | None
    server_cpu_us_per_packet: float | None
    server_rss_peak_mb: float | None
    server_rss_mb: float | None
    server_rss_idle_mb: float | None
    rss_per_peer_mb: float | None
    send_errors: int
    # Processes whose CPU and memory the server_* figures add up (a --workers supervisor and its nodes).
    server_processes: int | None
    # Each node of a cluster (None: the server is a single process without --redis-url).
    nodes: list[NodeReport] | None
    # The private Redis of --server-workers over the window, % of one core (not in the server_* figures).
    redis_cpu_percent: float | None
    # The bench's own client processes over the window, % of one core: they share this machine's CPUs with
    # the server, so a machine whose clients need most of a core has that much less for the server.
    client_cpu_percent: float | None
    # The machine's 1-minute load average when the run started: other work on the box shows in the latency.
    host_load: float
    runs: int = 1

    def json_line(self) -> str:
        return orjson.dumps(dataclasses.asdict(self)).decode()


@dataclass(slots=True, frozen=True)
class Capacity:
    """The sweep's answer: the largest room count that, with every smaller count of the sweep, kept delivery at
    or above ``min_delivery`` and the p99 latency under ``max_p99_ms`` (None: not even the first point did)."""

    min_delivery: float
    max_p99_ms: float
    rooms: int | None
    people: int | None
    streams: int | None
    # Packets the clients received per second at that point: what the server forwarded and delivered.
    delivered_per_second: float | None
    server_cpu_percent: float | None
    client_cpu_percent: float | None
    # The first room count that failed, and why (None: the sweep never failed: capacity is at least ``rooms``).
    failed_at: int | None
    failed_because: str | None

    def json_line(self) -> str:
        return orjson.dumps({"capacity": dataclasses.asdict(self)}).decode()

    def summary(self) -> str:
        bound = f"delivery >= {self.min_delivery:.2%} and p99 < {self.max_p99_ms:g} ms"
        if self.rooms is None:
            return f"capacity: no point of the sweep kept {bound} ({self.failed_because})"
        after = "" if self.failed_at is None else f"; {self.failed_at} rooms did not ({self.failed_because})"
        return (
            f"capacity: {self.rooms} rooms ({self.people} people, {self.streams} streams,"
            f" {self.delivered_per_second:.0f} packets/s delivered) with {bound};"
            f" server {_fmt(self.server_cpu_percent, ' %', 1)}, clients {_fmt(self.client_cpu_percent, ' %', 1)}"
            f" of a core{after}"
        )


def _fails(point: RunReport, min_delivery: float, max_p99_ms: float) -> str | None:
    if point.delivery_ratio is None or point.latency_p99_ms is None:
        return "nothing was sent"
    if point.delivery_ratio < min_delivery:
        return f"delivery {point.delivery_ratio:.4%}"
    if point.latency_p99_ms >= max_p99_ms:
        return f"p99 {point.latency_p99_ms:g} ms"
    return None


def capacity(points: list[RunReport], min_delivery: float, max_p99_ms: float) -> Capacity:
    """Walk the sweep's points (medians when repeated) from the smallest: the last that passed before the
    first that failed. A larger point that passes after a failure does not count: capacity is where the
    server stops being reliable, not its luckiest run."""
    best: RunReport | None = None
    failed_at = failed_because = None
    for point in sorted(points, key=lambda point: point.rooms):
        failed_because = _fails(point, min_delivery, max_p99_ms)
        if failed_because is not None:
            failed_at = point.rooms
            break
        best = point
    return Capacity(
        min_delivery=min_delivery,
        max_p99_ms=max_p99_ms,
        rooms=None if best is None else best.rooms,
        people=None if best is None else best.peers,
        streams=None if best is None else best.streams,
        delivered_per_second=None if best is None else round(best.packets_received / best.seconds, 1),
        server_cpu_percent=None if best is None else best.server_cpu_percent,
        client_cpu_percent=None if best is None else best.client_cpu_percent,
        failed_at=failed_at,
        failed_because=failed_because,
    )


def percentile_ms(latencies: np.ndarray[Any, np.dtype[np.float64]], q: float) -> float | None:
    return None if latencies.size == 0 else round(float(np.percentile(latencies, q)) * 1000, 3)


def median_report(reports: list[RunReport]) -> RunReport:
    """Field by field medians (every run has the same shape; a field None in any run stays None)."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(RunReport):
        column = [getattr(r, item.name) for r in reports]
        if item.name == "nodes":
            values["nodes"] = _median_nodes(column)
        elif any(v is None for v in column):
            values[item.name] = None
        elif all(isinstance(v, bool) for v in column):
            values[item.name] = column[0]
        elif all(isinstance(v, int) for v in column):
            values[item.name] = int(statistics.median_low(column))
        else:
            values[item.name] = round(float(statistics.median(column)), 4)
    values["runs"] = len(reports)
    return RunReport(**values)


def _median_nodes(runs: list[list[NodeReport] | None]) -> list[NodeReport] | None:
    """Node by node in id order (a cluster started per run has new ids each time; the first run's are kept)."""
    if any(nodes is None for nodes in runs) or len({len(nodes or []) for nodes in runs}) != 1:
        return None
    ordered = [sorted(nodes or [], key=lambda node: node.id) for nodes in runs]
    merged = []
    for position in zip(*ordered, strict=True):
        values: dict[str, Any] = {"id": position[0].id}
        for name in ("rooms", "packets_forwarded", "cpu_percent", "rss_mb"):
            column = [getattr(node, name) for node in position]
            if any(v is None for v in column):
                values[name] = None
            elif all(isinstance(v, int) for v in column):
                values[name] = int(statistics.median_low(column))
            else:
                values[name] = round(float(statistics.median(column)), 4)
        merged.append(NodeReport(**values))
    return merged


def _fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def summary(report: RunReport) -> str:
    title = f"{report.rooms} rooms x {report.per_room} people, {report.speakers_per_room} speaking"
    if report.encrypted:
        title += ", end-to-end encrypted"
    if report.runs > 1:
        title = f"median of {report.runs} runs: {title}"
    return "\n".join([
        f"{title} ({report.streams} forwarded streams, {report.seconds:g} s measured)",
        f"  delivery   {report.packets_received}/{report.packets_expected} = {_fmt(report.delivery_ratio, '', 5)}"
        f" ({report.packets_sent} sent)",
        f"  latency    p50 {_fmt(report.latency_p50_ms, ' ms')}  p95 {_fmt(report.latency_p95_ms, ' ms')}"
        f"  p99 {_fmt(report.latency_p99_ms, ' ms')}  max {_fmt(report.latency_max_ms, ' ms')}",
        f"  join       p50 {_fmt(report.join_p50_ms, ' ms', 0)}  p99 {_fmt(report.join_p99_ms, ' ms', 0)}"
        " (the load's own, connect until media is up)",
        *_join_lines(report),
        f"  server     {_fmt(report.server_cpu_us_per_packet, ' us', 1)} CPU per forwarded packet"
        f" ({_fmt(report.server_cpu_percent, ' %', 1)} of a core), RSS {_fmt(report.server_rss_mb, ' MB', 1)}"
        f" (peak {_fmt(report.server_rss_peak_mb, ' MB', 1)}, {_fmt(report.rss_per_peer_mb, ' MB', 2)} per peer)"
        + (f" over {report.server_processes} processes" if (report.server_processes or 1) > 1 else ""),
        *_node_lines(report),
        f"  clients    {_fmt(report.client_cpu_percent, ' %', 1)} of a core (on this machine too)",
    ])  # fmt: skip


def _node_lines(report: RunReport) -> list[str]:
    lines = [
        f"  node       {node.id}: {'?' if node.rooms is None else node.rooms} rooms,"
        f" {'n/a' if node.packets_forwarded is None else node.packets_forwarded} packets forwarded,"
        f" CPU {_fmt(node.cpu_percent, ' %', 1)}, RSS {_fmt(node.rss_mb, ' MB', 1)}"
        for node in report.nodes or []
    ]
    if report.redis_cpu_percent is not None:
        lines.append(f"  redis      CPU {_fmt(report.redis_cpu_percent, ' %', 1)}")
    return lines


def _join_lines(report: RunReport) -> list[str]:
    lines = []
    if report.late_joiners:
        lines.append(
            f"  late join  hears everyone p50 {_fmt(report.late_join_p50_ms, ' ms', 0)}"
            f"  p99 {_fmt(report.late_join_p99_ms, ' ms', 0)}"
            f" ({report.late_join_heard_all}/{report.late_joiners} in time), from the WebSocket opening:"
        )
        lines.append(
            f"             welcome {_fmt(report.late_join_welcome_ms, '', 0)}"
            f", offer sent {_fmt(report.late_join_offer_sent_ms, '', 0)}"
            f", answer {_fmt(report.late_join_answer_ms, '', 0)}"
            f", ICE {_fmt(report.late_join_ice_ms, '', 0)}"
            f", DTLS {_fmt(report.late_join_dtls_ms, '', 0)}"
            f", re-offer {_fmt(report.late_join_server_offer_ms, '', 0)}"
            f"/answered {_fmt(report.late_join_server_answer_ms, '', 0)} ms"
            f" ({_fmt(report.late_join_server_offers, '', 1)} offers before hearing everyone)"
        )
        if report.late_join_bridged is not None:
            lines.append(
                f"             landed on the room's node p50 {_fmt(report.late_join_local_p50_ms, ' ms', 0)}"
                f"; on another, bridged, p50 {_fmt(report.late_join_bridged_p50_ms, ' ms', 0)}"
                f" ({report.late_join_bridged} of the {report.late_joiners} bridged)"
            )
    if report.join_burst:
        lines.append(
            f"  join burst {report.join_burst} within 1 s: all hear everyone after"
            f" {_fmt(report.join_burst_all_ms, ' ms', 0)}"
            f"; each p50 {_fmt(report.join_burst_p50_ms, ' ms', 0)}  p99 {_fmt(report.join_burst_p99_ms, ' ms', 0)}"
            f" ({report.join_burst_heard_all}/{report.join_burst} in time)"
        )
    return lines


class Progress:
    """One status line on stderr: redrawn in place on a terminal, printed per phase otherwise."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._phase = ""
        self._drawn = 0.0

    def update(self, phase: str, done: float, total: float) -> None:
        now = time.monotonic()
        if not self._tty:
            if phase != self._phase:
                self._stream.write(f"bench: {phase}\n")
                self._stream.flush()
            self._phase = phase
            return
        if phase == self._phase and now - self._drawn < 0.2 and done < total:
            return
        self._phase, self._drawn = phase, now
        filled = int(30 * min(done / total, 1.0)) if total else 30
        self._stream.write(f"\r\x1b[K{phase:<24} [{'#' * filled}{'.' * (30 - filled)}] {done:.0f}/{total:.0f}")
        self._stream.flush()

    def clear(self) -> None:
        if self._tty:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
        self._phase = ""
