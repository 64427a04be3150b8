"""``ghosttalk bench``: measure the forwarding path with synthetic rooms (see ``ghosttalk.benchmark``).

Prints one JSON line per run on stdout (and, with ``--repeat``, a last line with the medians; with
``--sweep``, a very last line ``{"capacity": ...}``); a summary and a progress line go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ghosttalk.benchmark.plot import PlotUnavailable, plot_sweep
from ghosttalk.benchmark.report import Progress, RunReport, capacity, median_report, summary
from ghosttalk.benchmark.runner import BenchError, BenchParams, run

DEFAULT_SWEEP = "1,2,4,8,12,16,24,32"
# Capacity's bounds: delivery as good as a listener can tell from perfect, and no packet's p99 later than the
# next one's send time (20 ms): a forwarding path that keeps up.
MIN_DELIVERY = 0.999
MAX_P99_MS = 20.0


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be a positive integer")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return number


def _ratio(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise argparse.ArgumentTypeError(f"{value} must be a fraction in (0, 1]")
    return number


def _room_series(value: str) -> list[int]:
    try:
        series = sorted({int(item) for item in value.split(",") if item.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of room counts") from None
    if not series or series[0] <= 0:
        raise argparse.ArgumentTypeError("room counts must be positive")
    return series


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ghosttalk bench",
        description="Start a server on loopback (or use --url), fill rooms with synthetic speakers and "
        "listeners in worker processes, and measure delivery, forwarding latency, join times and the "
        "server's CPU and memory. One JSON line per run goes to stdout.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rooms", type=_positive_int, default=8, help="rooms")
    parser.add_argument("--per-room", type=_positive_int, default=5, help="people per room")
    parser.add_argument("--speakers", type=_non_negative_int, default=2,
                        help="people speaking in each room (0 measures what silent connections cost)")
    parser.add_argument("--seconds", type=_positive_int, default=20, help="measured seconds")
    parser.add_argument("--warmup", type=_non_negative, default=3.0, help="seconds of speaking before measuring")
    parser.add_argument("--workers", type=_positive_int, default=2, help="client processes")
    parser.add_argument("--payload-bytes", type=int, default=80,
                        help="RTP payload size (80 is Opus at 32 kb/s); at least 16")
    parser.add_argument("--encrypted", action="store_true",
                        help="end-to-end encrypted rooms: every client seals and opens each frame as a page does "
                        "(the server forwards them as any other; each is 33 bytes longer)")
    parser.add_argument("--url", help="measure this running server instead of starting one (http://host:port)")
    parser.add_argument("--server-pid", type=_positive_int,
                        help="with --url: the server's process id on this machine, for its CPU and memory; those "
                        "of every process below it are added (give a --workers supervisor's and each node's "
                        "figures are reported too)")
    parser.add_argument("--admin-key",
                        help="with --url: the server's admin key; against a cluster the bench then reads its node "
                        "list and where each room went (/admin), and reports the rooms per node")
    parser.add_argument("--server-workers", type=_positive_int, default=1, metavar="N",
                        help="with N > 1, the server started on loopback is a cluster: a private redis-server "
                        "(Debian's) and `ghosttalk --workers N --redis-url ...`, measured once every node has "
                        "registered and answers on the shared port; figures are summed over the nodes and given "
                        "per node. The nodes are not pinned")
    parser.add_argument("--repeat", type=_positive_int, default=1, help="runs; a last line gives the medians")
    parser.add_argument("--sweep", type=_room_series, nargs="?", const=_room_series(DEFAULT_SWEEP),
                        metavar="ROOMS,...", help=f"run each room count in turn (default series {DEFAULT_SWEEP})")
    parser.add_argument("--min-delivery", type=_ratio, default=MIN_DELIVERY,
                        help="with --sweep: the delivery a point must keep to count towards capacity")
    parser.add_argument("--max-p99-ms", type=_non_negative, default=MAX_P99_MS,
                        help="with --sweep: the p99 latency a point must stay under to count towards capacity")
    parser.add_argument("--plot", type=Path, metavar="OUT.png",
                        help="with --sweep: draw CPU per packet, p99 latency and join time against forwarded streams")
    parser.add_argument("--late-joiners", type=_non_negative_int, default=5, metavar="K",
                        help="after the measured window, with the speakers still talking, K people join one after "
                        "another into successive rooms, each timed from its WebSocket opening until it hears "
                        "every speaker, step by step")
    parser.add_argument("--join-burst", type=_non_negative_int, default=0, metavar="N",
                        help="then N people join within one second, spread over the rooms: time until all of "
                        "them hear everyone")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not keep the local server on CPU 0")
    parser.add_argument("--join-concurrency", type=_positive_int, default=4, help="joins at once per worker")
    return parser  # fmt: skip


def _params(args: argparse.Namespace, rooms: int) -> BenchParams:
    return BenchParams(
        rooms=rooms,
        per_room=args.per_room,
        speakers=args.speakers,
        seconds=args.seconds,
        warmup=args.warmup,
        workers=args.workers,
        payload_bytes=args.payload_bytes,
        url=args.url.rstrip("/") if args.url else None,
        server_pid=args.server_pid,
        late_joiners=args.late_joiners,
        join_burst=args.join_burst,
        pin=args.pin and (os.cpu_count() or 1) >= 2,
        join_concurrency=args.join_concurrency,
        encrypted=args.encrypted,
        server_workers=args.server_workers,
        admin_key=args.admin_key,
    )


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.payload_bytes < 16 or args.payload_bytes > 1200:
        parser.error("--payload-bytes must be between 16 and 1200")
    if args.per_room < 2:
        parser.error("--per-room must be at least 2 (somebody has to listen)")
    if args.speakers > args.per_room:
        parser.error("--speakers cannot exceed --per-room")
    if args.server_pid and not args.url:
        parser.error("--server-pid goes with --url")
    if args.admin_key and not args.url:
        parser.error("--admin-key goes with --url (the bench knows its own server's key)")
    if args.server_workers > 1 and args.url:
        parser.error("--server-workers starts a cluster; --url measures a running one: choose one")
    if args.plot and not args.sweep:
        parser.error("--plot needs --sweep")


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    _validate(parser, args)
    progress = Progress()
    points: list[RunReport] = []
    try:
        for rooms in args.sweep or [args.rooms]:
            runs: list[RunReport] = []
            for _ in range(args.repeat):
                report = run(_params(args, rooms), progress)
                print(report.json_line(), flush=True)
                print(summary(report), file=sys.stderr, flush=True)
                runs.append(report)
            if len(runs) > 1:
                median = median_report(runs)
                print(median.json_line(), flush=True)
                print(summary(median), file=sys.stderr, flush=True)
                runs = [median]
            points.extend(runs)
        if args.sweep:
            found = capacity(points, args.min_delivery, args.max_p99_ms)
            print(found.json_line(), flush=True)
            print(found.summary(), file=sys.stderr, flush=True)
    except BenchError as exc:
        print(f"ghosttalk bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if args.plot:
        try:
            plot_sweep(points, args.plot)
        except PlotUnavailable as exc:
            print(f"ghosttalk bench: {exc}", file=sys.stderr)
            return 1
        print(f"ghosttalk bench: plot written to {args.plot}", file=sys.stderr)
    return 0
