"""Prometheus metrics on ``GET /metrics``.

Each :class:`Metrics` owns its registry, so several applications in one process (tests) do not collide.
Per-packet figures are plain integers kept by the forwarder; prometheus-client reads them only when
scraped, through a collector that calls ``live()``, so the media path never touches a metric object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ghosttalk.version import commit, version

CANDIDATE_TYPES = ("host", "srflx", "prflx", "relay")


@dataclass(slots=True)
class LiveStats:
    rooms: int = 0
    peers: int = 0
    packets_in: int = 0
    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    packets_dropped: int = 0
    # Speakers' packets over the per-sender rate cap (see ghosttalk.media.forwarder.Speaker).
    packets_rate_limited: int = 0
    # Datagrams the shared UDP socket dropped, by reason (see ghosttalk.media.icemux).
    udp_dropped: Mapping[str, int] = field(default_factory=dict)


class _LiveCollector(Collector):
    def __init__(self, live: Callable[[], LiveStats]) -> None:
        self._live = live

    def collect(self) -> Iterator[Metric]:
        stats = self._live()
        yield GaugeMetricFamily("ghosttalk_rooms", "Rooms open now", value=stats.rooms)
        yield GaugeMetricFamily("ghosttalk_peers", "People connected now", value=stats.peers)
        yield CounterMetricFamily(
            "ghosttalk_rtp_packets_received", "RTP packets received from speakers", value=stats.packets_in
        )
        yield CounterMetricFamily(
            "ghosttalk_rtp_packets_forwarded",
            "RTP packets sent on to listeners",
            value=stats.packets_forwarded,
        )
        yield CounterMetricFamily(
            "ghosttalk_rtp_bytes_forwarded", "RTP bytes sent on to listeners", value=stats.bytes_forwarded
        )
        yield CounterMetricFamily(
            "ghosttalk_rtp_packets_dropped",
            "RTP packets dropped because a listener's queue was full",
            value=stats.packets_dropped,
        )
        yield CounterMetricFamily(
            "ghosttalk_rtp_packets_rate_limited",
            "RTP packets dropped because their speaker sent more than the per-sender packet rate cap",
            value=stats.packets_rate_limited,
        )
        udp = CounterMetricFamily(
            "ghosttalk_udp_datagrams_dropped",
            "Datagrams the shared UDP socket dropped (received or to be sent), by reason",
            labels=["reason"],
        )
        for reason, count in sorted(stats.udp_dropped.items()):
            udp.add_metric([reason], count)
        yield udp
        build = GaugeMetricFamily("ghosttalk_build_info", "Running version and commit", labels=["version", "commit"])
        build.add_metric([version(), commit()], 1)
        yield build


class _NodeLabelled(Collector):
    """Every series of ``registry`` with ``node="<id>"`` added: in a cluster, each node's figures stay apart
    however the scrapes are gathered."""

    def __init__(self, registry: CollectorRegistry, node: str) -> None:
        self._registry = registry
        self._node = node

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            labelled = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            labelled.samples = [sample._replace(labels={**sample.labels, "node": self._node})
                                for sample in metric.samples]
            yield labelled


class Metrics:
    def __init__(self, live: Callable[[], LiveStats], node: str | None = None) -> None:
        """``node``: this server's node id in a cluster, added to every series as the label ``node``."""
        self.registry = CollectorRegistry()
        self.joins = Counter("ghosttalk_joins", "People who joined a room", registry=self.registry)
        self.leaves = Counter("ghosttalk_leaves", "People who left a room", registry=self.registry)
        # How many, never what: the server keeps no chat message (and cannot read an encrypted room's).
        self.chat_messages = Counter("ghosttalk_chat_messages", "Chat messages relayed", registry=self.registry)
        self.signaling_errors = Counter(
            "ghosttalk_signaling_errors",
            "Signaling messages or sessions refused, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.ice_connected = Counter(
            "ghosttalk_ice_connected",
            "Media connections established, by the local candidate type of the selected pair",
            ["candidate_type"],
            registry=self.registry,
        )
        # Present from the start so dashboards see zeros rather than missing series.
        for candidate_type in CANDIDATE_TYPES:
            self.ice_connected.labels(candidate_type=candidate_type)
        self.candidates_dropped = Counter(
            "ghosttalk_candidates_dropped",
            "Well-formed remote candidates the server sends no checks to, by reason (mdns, not_udp, not_public, "
            "over_limit)",
            ["reason"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        self.registry.register(_LiveCollector(live))
        self._exposed = self.registry
        if node is not None:
            self._exposed = CollectorRegistry()
            self._exposed.register(_NodeLabelled(self.registry, node))

    def render(self) -> bytes:
        return generate_latest(self._exposed)


METRICS = web.AppKey("metrics", Metrics)


async def _handle_metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup_metrics(app: web.Application) -> None:
    app.router.add_get("/metrics", _handle_metrics)
