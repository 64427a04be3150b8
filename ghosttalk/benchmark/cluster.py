"""Observing a cluster under test: each node's counters, and on which node each of the bench's rooms lives.

The nodes of one machine share the HTTP port (SO_REUSEPORT): the kernel hands each new connection to one of
them, by a hash of its addresses and ports. So each node's /metrics is reached by asking again on new
connections until every node has answered; each series carries ``node="<id>"``, which says who did.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

# Scrapes on new connections before giving up on a node that never answers (with two nodes, each scrape
# misses a given node with probability 1/2: 48 in a row is 2^-48).
MAX_SCRAPES = 48
# Without the node list (no admin key), scrapes that found no new node before taking the set as complete.
SETTLED_AFTER = 12

# Counter name -> value, summed over the series' other labels.
Counters = dict[str, int]


def parse_metrics(text: str) -> dict[str | None, Counters]:
    """The counters of one /metrics answer by node label (None: a server that is not clustered)."""
    found: dict[str | None, Counters] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            counters = found.setdefault(sample.labels.get("node"), {})
            counters[sample.name] = counters.get(sample.name, 0) + int(sample.value)
    return found


async def scrape(url: str, nodes: Collection[str] | None) -> dict[str | None, Counters]:
    """Every node's counters: one answer from a single server; from a cluster, answers on new connections until
    each of ``nodes`` (or, when None, every node that shows up) has answered. A node that never answers is
    missing from the result."""
    found: dict[str | None, Counters] = {}
    quiet = 0
    # force_close: a new connection per request, so the kernel chooses a node again each time.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for _ in range(MAX_SCRAPES):
            async with session.get(f"{url}/metrics") as response:
                text = await response.text() if response.status == 200 else ""
            answer = parse_metrics(text)
            if None in answer or not answer:
                return answer  # not a cluster (or no metrics at all): one answer is all there is
            new = answer.keys() - found.keys()
            found |= {node: answer[node] for node in new}
            quiet = 0 if new else quiet + 1
            if (nodes is not None and found.keys() >= set(nodes)) or (nodes is None and quiet >= SETTLED_AFTER):
                break
    return found


async def _admin(session: aiohttp.ClientSession, url: str, key: str, action: str) -> Any:
    async with session.get(f"{url}/admin", params={"action": action}, headers={"X-Admin-Key": key}) as response:
        response.raise_for_status()  # a wrong key is the user's to fix: said, not guessed around
        return await response.json()


async def cluster_nodes(url: str, key: str) -> list[str] | None:
    """The ids of the cluster's live nodes, from /admin?action=stats (None: the server is not clustered)."""
    async with aiohttp.ClientSession() as session:
        stats = await _admin(session, url, key, "stats")
    if "nodes" not in stats:
        return None
    return sorted(str(node["id"]) for node in stats["nodes"])


async def room_nodes(url: str, key: str, rooms: Collection[str]) -> dict[str, str]:
    """The node of each of ``rooms`` that is open, from /admin?action=rooms (a cluster's lists every node's
    rooms, each with its ``node``)."""
    async with aiohttp.ClientSession() as session:
        listing = await _admin(session, url, key, "rooms")
    wanted = set(rooms)
    return {
        str(room["room"]): str(room["node"])
        for room in listing.get("rooms", [])
        if room.get("room") in wanted and "node" in room
    }


def _tcp_inode(local_port: int, remote_port: int) -> int | None:
    """The inode of the TCP socket from ``local_port`` to ``remote_port`` on this machine (/proc/net/tcp*)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote = fields[1].rpartition(":")[2], fields[2].rpartition(":")[2]
            if int(local, 16) == local_port and int(remote, 16) == remote_port:
                return int(fields[9])
    return None


class Landing:
    """Which node took a connection: the node process holding the server's end of it.

    The kernel picks the node (SO_REUSEPORT) and says so to nobody, but the server's end of the connection is
    a socket in /proc/net/tcp, and one node process has it open. Only for a server on this machine whose nodes
    are known by process (``pid -> node id``)."""

    def __init__(self, http_port: int, nodes: Mapping[int, str]) -> None:
        self._port = http_port
        self._nodes = dict(nodes)

    def node_of(self, client_port: int) -> str | None:
        inode = _tcp_inode(self._port, client_port)
        if inode is None:
            return None
        target = f"socket:[{inode}]"
        for pid, node in self._nodes.items():
            with contextlib.suppress(OSError):  # a process (or one of its descriptors) gone meanwhile
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd) == target:
                            return node
        return None
