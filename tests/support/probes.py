"""Looking at a running server from outside: its admin and metrics endpoints, its event log, its console, and
what its process holds (memory, file descriptors, UDP sockets and their kernel drops).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import urllib.request
from pathlib import Path
from typing import Any, cast

from tests.support.server import ServerProcess

TRACEBACK = re.compile(r"^Traceback \(most recent call last\)", re.MULTILINE)


def admin_json(server: ServerProcess, action: str) -> dict[str, object]:
    url = f"{server.url}/admin?action={action}"
    request = urllib.request.Request(url, headers={"X-Admin-Key": server.admin_key})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def levels_read(server: ServerProcess, room: str, peer_id: str | None = None) -> int:
    """Packets with an RFC 6464 audio level the server has read in ``room`` (from ``peer_id`` only, if given):
    the admin overview's per-person ``audio_levels`` counter."""
    rooms = cast(list[dict[str, Any]], admin_json(server, "rooms")["rooms"])
    return sum(
        peer["audio_levels"]
        for r in rooms
        if r["room"] == room
        for peer in r["peers"]
        if peer_id is None or peer["id"] == peer_id
    )


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process ``pid`` holds (none once it has exited)."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[len("socket:[") : -1]))
    except OSError:
        pass  # it has just exited
    return inodes


def udp_sockets(pid: int) -> int:
    """How many UDP sockets process ``pid`` holds (IPv4 and IPv6)."""
    udp = set()
    for table in ("udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if path.exists():
            for line in path.read_text().splitlines()[1:]:
                udp.add(int(line.split()[9]))
    return len(socket_inodes(pid) & udp)


def udp_drops(pid: int) -> int:
    """Datagrams the kernel dropped on the UDP sockets of ``pid`` because their receive buffers were full
    (a process starved of CPU: on a busy test machine this is the measuring side's loss, not the server's)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    drops = 0
    for table in ("udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if path.exists():
            for line in path.read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    drops += int(fields[-1])
    return drops



def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tracebacks(console: str) -> list[str]:
    """Every traceback printed by the server, with a few lines of context, for assertion messages."""
    lines = console.splitlines()
    return ["\n".join(lines[max(0, i - 2) : i + 25]) for i, line in enumerate(lines) if TRACEBACK.match(line)]


def metric(server: ServerProcess, name: str) -> float:
    """The sum of every sample of ``name`` in the server's /metrics."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


def events(server: ServerProcess, event: str) -> list[dict[str, Any]]:
    logs = cast(list[dict[str, Any]], admin_json(server, "logs&n=1000"))
    return [e for e in logs if e.get("event") == event]
