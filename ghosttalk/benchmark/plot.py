"""``--plot``: server CPU per forwarded packet and p99 latency against forwarded streams, and below them the
late joiners' wait until they hear everyone against the same load (matplotlib)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ghosttalk.benchmark.report import RunReport

# The capacity point is the largest load whose p99 stays under this (and delivery at 99.9 %).
CAPACITY_P99_MS = 10.0


class PlotUnavailable(Exception):
    """matplotlib is not installed (it is an optional extra: ``pip install ghosttalk[plot]``)."""


def plot_sweep(points: list[RunReport], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib, an optional extra: pip install 'ghosttalk[plot]' (or pip install matplotlib)"
        ) from None
    points = sorted(points, key=lambda p: p.streams)
    streams = [p.streams for p in points]
    figure, (cpu_axis, join_axis) = plt.subplots(
        2, 1, figsize=(8, 7), dpi=110, sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    cpu = [math.nan if p.server_cpu_us_per_packet is None else p.server_cpu_us_per_packet for p in points]
    p99 = [math.nan if p.latency_p99_ms is None else p.latency_p99_ms for p in points]
    cpu_axis.plot(streams, cpu, "o-", color="tab:blue")
    cpu_axis.set_ylabel("server CPU per forwarded packet (us)", color="tab:blue")
    cpu_axis.set_ylim(bottom=0)
    latency_axis = cpu_axis.twinx()
    latency_axis.plot(streams, p99, "s--", color="tab:red")
    # Log scale: sub-millisecond latency and a saturated box's hundreds of milliseconds on one chart.
    latency_axis.set_yscale("log")
    latency_axis.axhline(CAPACITY_P99_MS, color="tab:red", linewidth=0.8, alpha=0.5)
    latency_axis.annotate(f"p99 {CAPACITY_P99_MS:g} ms: capacity limit", (streams[0], CAPACITY_P99_MS * 1.1),
                          color="tab:red", fontsize=8)  # fmt: skip
    latency_axis.set_ylabel("forwarding latency p99 (ms, log scale)", color="tab:red")
    first = points[0]
    runs = f", median of {first.runs} runs" if first.runs > 1 else ""
    cpu_axis.set_title(
        f"ghosttalk bench: rooms of {first.per_room}, {first.speakers_per_room} speaking, {first.seconds:g} s{runs}"
    )
    cpu_axis.grid(alpha=0.3)
    _plot_joins(join_axis, points)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _plot_joins(axis: Any, points: list[RunReport]) -> None:
    streams = [p.streams for p in points]
    for name, label, style in (
        ("late_join_p50_ms", "late joiner p50", "o-"),
        ("late_join_p99_ms", "late joiner p99", "s--"),
        ("join_burst_p99_ms", "join burst p99", "^:"),
    ):
        values = [getattr(p, name) for p in points]
        if any(v is not None for v in values):
            axis.plot(streams, [math.nan if v is None else v for v in values], style, label=label)
    axis.set_xlabel("forwarded streams (speaker -> listener)")
    axis.set_ylabel("join -> hears everyone (ms)")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8)
