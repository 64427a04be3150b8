"""N GhostTalk nodes sharing one test Redis, each its own process with its own ports and data directory,
optionally behind a test load balancer."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.balancer import Balancer
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess


class Cluster:
    """``Cluster(tmp_path, redis, nodes=3).start()``: nodes ``node1``..``nodeN`` (``.nodes[0]`` is node1)."""

    def __init__(
        self, tmp_path: Path, redis: RedisServer, nodes: int = 3, extra_args: Sequence[str] = ()
    ) -> None:
        self.redis = redis
        self.nodes = [
            ServerProcess(
                tmp_path / f"node{i}",
                ["--redis-url", redis.url, "--node-id", f"node{i}", *extra_args],
            )
            for i in range(1, nodes + 1)
        ]
        self._balancer: Balancer | None = None

    def start(self, timeout: float = 30.0) -> Cluster:
        # Booting is mostly importing; in parallel the whole cluster takes about as long as one node.
        for node in self.nodes:
            node.launch()
        try:
            for node in self.nodes:
                node.wait_healthy(timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    @property
    def balancer(self) -> Balancer:
        """A balancer over every node's HTTP port, started on first use."""
        if self._balancer is None:
            self._balancer = Balancer([node.port for node in self.nodes])
        return self._balancer

    def node(self, node_id: str) -> ServerProcess:
        return self.nodes[self.node_ids().index(node_id)]

    def node_ids(self) -> list[str]:
        return [f"node{i}" for i in range(1, len(self.nodes) + 1)]

    def id_of(self, node: ServerProcess) -> str:
        return self.node_ids()[self.nodes.index(node)]

    def live_nodes(self) -> list[ServerProcess]:
        return [node for node in self.nodes if node.proc is not None and node.proc.poll() is None]

    def rooms(self) -> list[dict[str, Any]]:
        """``/admin?action=rooms`` of the first live node that answers (it lists every node's rooms)."""
        for node in self.live_nodes():
            try:
                return list(admin_get(node, "rooms")["rooms"])
            except OSError:
                continue
        return []

    def room_node(self, room: str) -> str | None:
        """The id of the node that holds ``room``, or None while it is nowhere."""
        for described in self.rooms():
            if described["room"] == room:
                node = described.get("node")
                return str(node) if node is not None else None
        return None

    def stop(self) -> None:
        """SIGKILL every node (nothing is left to drain in a finished test) and close the balancer."""
        if self._balancer is not None:
            self._balancer.stop()
            self._balancer = None
        for node in self.nodes:
            node.stop(signal.SIGKILL)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def admin_get(node: ServerProcess, action: str) -> Any:
    """A read-only admin action on one node, synchronously (the browser tests are synchronous)."""
    request = urllib.request.Request(f"{node.url}/admin?action={action}", headers={"X-Admin-Key": node.admin_key})
    with urllib.request.urlopen(request, timeout=3) as response:
        return json.loads(response.read())


def health(node: ServerProcess) -> tuple[int, dict[str, Any]]:
    """``/healthz``: its status and JSON body (503 while draining is an answer, not an error)."""
    try:
        with urllib.request.urlopen(f"{node.url}/healthz", timeout=3) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
