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
    # The machine's 1-minute load average when the run started: other work on the box shows in the latency.
    host_load: float
    runs: int = 1

    def json_line(self) -> str:
        return orjson.dumps(dataclasses.asdict(self)).decode()


def percentile_ms(latencies: np.ndarray[Any, np.dtype[np.float64]], q: float) -> float | None:
    return None if latencies.size == 0 else round(float(np.percentile(latencies, q)) * 1000, 3)


def median_report(reports: list[RunReport]) -> RunReport:
    """Field by field medians (every run has the same shape; a field None in any run stays None)."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(RunReport):
        column = [getattr(r, item.name) for r in reports]
        if any(v is None for v in column):
            values[item.name] = None
        elif all(isinstance(v, bool) for v in column):
            values[item.name] = column[0]
        elif all(isinstance(v, int) for v in column):
            values[item.name] = int(statistics.median_low(column))
        else:
            values[item.name] = round(float(statistics.median(column)), 4)
    values["runs"] = len(reports)
    return RunReport(**values)


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
        f" (peak {_fmt(report.server_rss_peak_mb, ' MB', 1)}, {_fmt(report.rss_per_peer_mb, ' MB', 2)} per peer)",
    ])  # fmt: skip


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
