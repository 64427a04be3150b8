"""Command line: ``ghosttalk`` serves; ``ghosttalk join`` and ``ghosttalk bench`` are tools built on the client.

Flag names and environment variables follow the Go original, so ``ghosttalk -port 8080 -admin-key K`` works
as its binary did; every long flag is accepted with one dash or two.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ghosttalk.config import Config, IPNetwork
from ghosttalk.version import commit, version

SUBCOMMANDS = ("serve", "join", "bench")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _networks(value: str) -> tuple[IPNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in _csv(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of addresses or CIDR ranges: {exc}") from exc


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0-65535")
    return port


def _positive(kind: Callable[[str], float | int]) -> Callable[[str], float | int]:
    def parse(value: str) -> float | int:
        number = kind(value)
        if number <= 0:
            raise argparse.ArgumentTypeError(f"{value} must be greater than zero")
        return number

    return parse


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs: object) -> None:
    """Add ``--name`` together with the original's single-dash spelling ``-name``."""
    parser.add_argument(f"-{name}", f"--{name}", **kwargs)  # type: ignore[arg-type]


def build_serve_parser(prog: str = "ghosttalk") -> argparse.ArgumentParser:
    defaults = Config()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve GhostTalk: the page, WebSocket signaling, the admin panel and the SFU media path.",
        epilog="Subcommands: 'ghosttalk join URL --name N' joins a room from the shell; "
        "'ghosttalk bench' measures the forwarding path. Each has its own --help.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _flag(parser, "host", default=_env("HOST", defaults.host), help="HTTP bind address (HOST)")
    _flag(parser, "port", type=_port, default=int(_env("PORT", str(defaults.port)) or 0),
          help="HTTP port for the page, /ws, /admin, /healthz, /metrics (PORT)")
    _flag(parser, "admin-key", default=_env("ADMIN_KEY"),
          help="key for /admin; without one a random key is generated and printed once (ADMIN_KEY)")
    _flag(parser, "rtc-udp-port", type=_port, default=int(_env("RTC_UDP_PORT", str(defaults.rtc_udp_port)) or 0),
          help="the one UDP port that carries every peer's ICE, DTLS and SRTP (RTC_UDP_PORT)")
    _flag(parser, "rtc-bind", default=_env("RTC_BIND", defaults.rtc_bind),
          help="address the shared UDP socket binds to (RTC_BIND)")
    _flag(parser, "rtc-host", type=_csv, default=_csv(_env("RTC_HOST", "") or ""),
          help="comma-separated addresses advertised as ICE host candidates; default every non-loopback "
          "interface address; use 127.0.0.1 for local tests (RTC_HOST)")
    _flag(parser, "public-ip", default=_env("PUBLIC_IP"),
          help="public address of a 1:1 NAT (cloud VM), advertised instead of interface addresses (PUBLIC_IP)")
    _flag(parser, "stun-server", type=_csv, default=_csv(_env("STUN_SERVER", "") or ""),
          help="comma-separated stun: URLs for browsers; empty means no third party is contacted (STUN_SERVER)")
    _flag(parser, "turn-server", type=_csv, default=_csv(_env("TURN_SERVER", "") or ""),
          help="comma-separated turn:/turns: URLs handed to browsers (TURN_SERVER)")
    _flag(parser, "turn-user", default=_env("TURN_USER"), help="static TURN username (TURN_USER)")
    _flag(parser, "turn-pass", default=_env("TURN_PASS"), help="static TURN password (TURN_PASS)")
    _flag(parser, "turn-secret", default=_env("TURN_SECRET"),
          help="coturn use-auth-secret shared secret: hand out time-limited credentials instead (TURN_SECRET)")
    _flag(parser, "turn-ttl", type=_positive(int), default=int(_env("TURN_TTL", str(defaults.turn_ttl)) or 0),
          help="lifetime in seconds of time-limited TURN credentials (TURN_TTL)")
    _flag(parser, "data-dir", type=Path, default=Path(_env("DATA_DIR", str(defaults.data_dir)) or "."),
          help="directory for server.log and banned_ips.json (DATA_DIR)")
    _flag(parser, "log-level", choices=("debug", "info", "warning", "error"),
          default=_env("LOG_LEVEL", defaults.log_level), help="console log level (LOG_LEVEL)")
    _flag(parser, "log-format", choices=("text", "json"), default=_env("LOG_FORMAT", defaults.log_format),
          help="console log format (LOG_FORMAT)")
    _flag(parser, "trusted-proxies", type=_networks,
          default=_networks(_env("TRUSTED_PROXIES", "127.0.0.0/8,::1") or ""),
          help="CIDRs whose X-Real-IP / X-Forwarded-For are believed (TRUSTED_PROXIES)")
    _flag(parser, "allowed-origins", type=_csv, default=_csv(_env("ALLOWED_ORIGINS", "") or ""),
          help="extra Origins (scheme://host[:port]) allowed to open /ws besides the server's own (ALLOWED_ORIGINS)")
    _flag(parser, "max-room-peers", type=_positive(int),
          default=int(_env("MAX_ROOM_PEERS", str(defaults.max_room_peers)) or 0),
          help="people per room; the next one gets 'Room full' (MAX_ROOM_PEERS)")
    _flag(parser, "max-rooms", type=_positive(int), default=int(_env("MAX_ROOMS", str(defaults.max_rooms)) or 0),
          help="rooms at once (MAX_ROOMS)")
    _flag(parser, "max-peers", type=_positive(int), default=int(_env("MAX_PEERS", str(defaults.max_peers)) or 0),
          help="people on the server at once (MAX_PEERS)")
    _flag(parser, "max-conns-per-ip", type=_positive(int),
          default=int(_env("MAX_CONNS_PER_IP", str(defaults.max_conns_per_ip)) or 0),
          help="open signaling sockets per client address; more get 429 (MAX_CONNS_PER_IP)")
    _flag(parser, "join-rate", type=_positive(float),
          default=float(_env("JOIN_RATE", str(defaults.join_rate_per_minute)) or 0),
          help="new signaling sockets per minute per address, sustained (JOIN_RATE)")
    _flag(parser, "join-burst", type=_positive(int), default=int(_env("JOIN_BURST", str(defaults.join_burst)) or 0),
          help="new signaling sockets per address allowed at once on top of --join-rate (JOIN_BURST)")
    _flag(parser, "message-rate", type=_positive(float),
          default=float(_env("MESSAGE_RATE", str(defaults.message_rate)) or 0),
          help="signaling messages per second per session, sustained; more closes the session (MESSAGE_RATE)")
    _flag(parser, "message-burst", type=_positive(int),
          default=int(_env("MESSAGE_BURST", str(defaults.message_burst)) or 0),
          help="signaling messages per session allowed at once (MESSAGE_BURST)")
    _flag(parser, "offers-per-minute", type=_positive(int),
          default=int(_env("OFFERS_PER_MINUTE", str(defaults.offers_per_minute)) or 0),
          help="SDP offers per session per minute (OFFERS_PER_MINUTE)")
    _flag(parser, "offer-timeout", type=_positive(float),
          default=float(_env("OFFER_TIMEOUT", str(defaults.offer_timeout)) or 0),
          help="seconds a new session may take to send its first offer (OFFER_TIMEOUT)")
    _flag(parser, "connect-timeout", type=_positive(float),
          default=float(_env("CONNECT_TIMEOUT", str(defaults.connect_timeout)) or 0),
          help="seconds a peer's media may take to connect before it is removed (CONNECT_TIMEOUT)")
    _flag(parser, "heartbeat-timeout", type=_positive(float),
          default=float(_env("HEARTBEAT_TIMEOUT", str(defaults.heartbeat_timeout)) or 0),
          help="seconds without a heartbeat answer after which a peer is removed; pings go every "
          f"{defaults.heartbeat_interval:g} s (HEARTBEAT_TIMEOUT)")
    _flag(parser, "room-grace", type=float, default=float(_env("ROOM_GRACE", "0") or 0),
          help="seconds an empty room is kept before it is destroyed (ROOM_GRACE)")
    parser.add_argument("--version", action="version", version=f"ghosttalk {version()} ({commit()})")
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    return Config(
        host=args.host,
        port=args.port,
        rtc_udp_port=args.rtc_udp_port,
        rtc_bind=args.rtc_bind,
        rtc_hosts=args.rtc_host,
        public_ip=args.public_ip,
        stun_servers=args.stun_server,
        turn_servers=args.turn_server,
        turn_user=args.turn_user,
        turn_pass=args.turn_pass,
        turn_secret=args.turn_secret,
        turn_ttl=args.turn_ttl,
        admin_key=args.admin_key,
        data_dir=args.data_dir,
        log_level=args.log_level,
        log_format=args.log_format,
        trusted_proxies=args.trusted_proxies,
        allowed_origins=args.allowed_origins,
        max_room_peers=args.max_room_peers,
        max_rooms=args.max_rooms,
        max_peers=args.max_peers,
        max_conns_per_ip=args.max_conns_per_ip,
        room_grace_seconds=args.room_grace,
        join_rate_per_minute=args.join_rate,
        join_burst=args.join_burst,
        message_rate=args.message_rate,
        message_burst=args.message_burst,
        offers_per_minute=args.offers_per_minute,
        offer_timeout=args.offer_timeout,
        connect_timeout=args.connect_timeout,
        heartbeat_timeout=args.heartbeat_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and args[0] in SUBCOMMANDS else "serve"
    if args and args[0] in SUBCOMMANDS:
        args = args[1:]
    if command == "join":
        from ghosttalk.join import main as join_main

        return join_main(args)
    if command == "bench":
        from ghosttalk.bench import main as bench_main

        return bench_main(args)
    from ghosttalk.server import serve

    config = config_from_args(build_serve_parser().parse_args(args))
    return serve(config)
