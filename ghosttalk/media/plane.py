"""The media plane: the one UDP socket every connection shares, the forwarder that writes to it, the server's
one DTLS identity, and the connections made on them.

The server makes one :class:`MediaPlane`, starts it before the first join and closes it after the last
connection has closed; the rooms only ask it for a connection per person (:meth:`MediaPlane.connect`).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable

from ghosttalk.media.aiortc_adapter.dtls import SharedDtlsIdentity
from ghosttalk.media.description import Admission, CandidateFilter
from ghosttalk.media.forwarder import Forwarder, ForwardingCounters
from ghosttalk.media.icemux import IceMux, default_host_addresses
from ghosttalk.media.negotiation import Joining
from ghosttalk.media.peer import MediaHooks, MediaLimits, PeerMedia

logger = logging.getLogger(__name__)


class MediaPlane:
    def __init__(
        self,
        *,
        bind: str,
        port: int,
        advertise: tuple[str, ...],
        limits: MediaLimits,
        candidate_dropped: Callable[[Admission], None],
    ) -> None:
        """``advertise``: the host candidate addresses (empty: every interface address, read at start);
        ``candidate_dropped``: told of each well-formed client candidate no check is sent to."""
        self.mux = IceMux(advertised=())
        self._bind = bind
        self._port = port
        self._advertise = advertise
        self._limits = limits
        self._candidate_dropped = candidate_dropped
        self._identity = SharedDtlsIdentity()
        self._forwarder: Forwarder | None = None
        # The server's own ICE endpoints, which no client candidate may name (set by start()).
        self._own_endpoints: tuple[tuple[str, int], ...] = ()
        # Every connection ever made that is still referenced anywhere: leak checks read it.
        self._connections: weakref.WeakSet[PeerMedia] = weakref.WeakSet()
        self._closed = False

    async def start(self) -> None:
        advertised = self._advertise or default_host_addresses()
        if not advertised:
            raise RuntimeError("no address to advertise for ICE: pass --rtc-host or --public-ip")
        self.mux.advertised = advertised
        await self.mux.bind(self._bind, self._port)
        # Bound to every interface, the socket is reachable at each interface address too (behind a 1:1 NAT,
        # the private one is not advertised).
        interfaces = default_host_addresses() if self._bind in ("0.0.0.0", "::") else ()
        hosts = (*advertised, self._bind, *interfaces)
        self._own_endpoints = tuple((host, self.mux.port) for host in hosts)
        self._forwarder = Forwarder(self.mux.transport)
        logger.info("media on udp %s:%d, advertising %s", self._bind, self.mux.port, ", ".join(advertised))

    @property
    def alive(self) -> bool:
        """Whether calls can carry audio: the shared socket is bound and open (/healthz says 503 otherwise)."""
        return self.mux.alive

    @property
    def counters(self) -> ForwardingCounters | None:
        """The forwarder's packet figures (None before start())."""
        return self._forwarder.counters if self._forwarder is not None else None

    def connect(self, peer_id: str, client_ip: str, hooks: MediaHooks, joining: Joining) -> PeerMedia:
        """A new connection for the person at ``client_ip`` on the shared socket (started by its owner);
        ``joining``: the connections on their way into the same room."""
        assert self._forwarder is not None, "MediaPlane.start() first"
        candidates = CandidateFilter(
            client_ip, self._own_endpoints, dropped=self._candidate_dropped, refused=hooks.refused
        )
        media = PeerMedia(
            peer_id, self.mux, self._forwarder, self._identity, hooks, self._limits, candidates, joining
        )
        self._connections.add(media)
        return media

    def connections_alive(self) -> int:
        """Connections still referenced anywhere, closed or not (a leak shows here)."""
        return len(self._connections)

    def close(self) -> None:
        """Stop forwarding and release the socket, once every connection on it is closed (a second call does
        nothing)."""
        if self._closed:
            return
        self._closed = True
        if self._forwarder is not None:
            self._forwarder.cancel()
        self.mux.close()
