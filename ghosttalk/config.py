"""Server configuration: one immutable record built by :mod:`ghosttalk.cli` from flags and environment."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


@dataclass(slots=True, frozen=True)
class Config:
    # HTTP
    host: str = "0.0.0.0"
    port: int = 8080
    # WebRTC: every peer's ICE/DTLS/SRTP shares one UDP socket on this port.
    rtc_udp_port: int = 50000
    rtc_bind: str = "0.0.0.0"
    # Addresses advertised as host candidates; empty means every non-loopback interface address.
    rtc_hosts: tuple[str, ...] = ()
    # A 1:1 NAT public address advertised instead of the interface addresses.
    public_ip: str | None = None
    # ICE servers handed to browsers and clients (never used by the server itself).
    stun_servers: tuple[str, ...] = ()
    turn_servers: tuple[str, ...] = ()
    turn_user: str | None = None
    turn_pass: str | None = None
    turn_secret: str | None = None
    turn_ttl: int = 3600
    # Operations
    admin_key: str | None = None
    data_dir: Path = Path("data")
    log_level: str = "info"
    log_format: str = "text"
    trusted_proxies: tuple[IPNetwork, ...] = LOOPBACK_NETWORKS
    allowed_origins: tuple[str, ...] = ()
    # Limits
    max_room_peers: int = 10
    max_rooms: int = 1000
    max_peers: int = 5000
    max_conns_per_ip: int = 10
    # New signaling sockets per address: sustained per minute, and the burst allowed on top.
    join_rate_per_minute: float = 60.0
    join_burst: int = 20
    # Messages per signaling session: sustained per second and burst (a page trickles ~20 candidates at once).
    message_rate: float = 50.0
    message_burst: int = 200
    # Offers a client may send per minute (each one costs a full SDP negotiation).
    offers_per_minute: int = 20
    # A socket that has not sent its first offer by then is closed.
    offer_timeout: float = 15.0
    # A room that empties is kept this long so that a reload does not destroy and recreate it.
    room_grace_seconds: float = 0.0
    # Liveness: DataChannel ping interval, and the silence after which a peer is removed. 8 s notices a
    # network that went away (a 10 s outage is noticed, the room is told, the page rejoins) while riding
    # out the few seconds a phone takes to hand over between Wi-Fi and mobile data.
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 8.0
    # A peer whose media never connects is removed after this long.
    connect_timeout: float = 30.0
    ws_ping_interval: float = 30.0
    ws_read_timeout: float = 60.0

    @property
    def ban_file(self) -> Path:
        return self.data_dir / "banned_ips.json"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"
