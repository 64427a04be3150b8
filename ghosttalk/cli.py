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
from typing import Any

from ghosttalk.config import Config, IPNetwork
from ghosttalk.version import commit, version

SUBCOMMANDS = ("serve", "join", "bench")
SECRET_FLAGS = frozenset({"admin_key", "turn_pass", "turn_secret"})
# Wrong keys are throttled per address, but a short key typed by hand ("admin", "secret1") falls to the first
# guesses of any list; a floor of 16 characters turns away those keys and leaves room for generated ones.
MIN_ADMIN_KEY_CHARS = 16


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _networks(value: str) -> tuple[IPNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in _csv(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of addresses or CIDR ranges: {exc}") from exc


def _number(kind: Callable[[str], float | int], value: str) -> float | int:
    try:
        return kind(value)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{value!r} is not {noun}") from None


def _port(value: str) -> int:
    port = int(_number(int, value))
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0-65535")
    return port


def _positive(kind: Callable[[str], float | int]) -> Callable[[str], float | int]:
    def parse(value: str) -> float | int:
        number = _number(kind, value)
        if number <= 0:
            raise argparse.ArgumentTypeError(f"{value} must be greater than zero")
        return number

    return parse


def _admin_key(value: str) -> str:
    if len(value) < MIN_ADMIN_KEY_CHARS:
        # Never echo the key: this message goes to the console and to whatever collects it.
        raise argparse.ArgumentTypeError(
            f"the admin key (--admin-key or ADMIN_KEY) is {len(value)} characters; it must be at least "
            f"{MIN_ADMIN_KEY_CHARS}. Make one with: openssl rand -hex 24 (or leave it unset for a random key "
            "printed at startup)"
        )
    return value


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except for secrets: --help must not print a key that came from the environment."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.dest in SECRET_FLAGS:
            return action.help
        return super()._get_help_string(action)


def _flag(parser: argparse.ArgumentParser, name: str, env: str, default: object, help: str, **kwargs: Any) -> None:
    """Add ``--name`` with the original's single-dash spelling ``-name``, defaulting to environment variable
    ``env`` and then ``default``. A default given as text goes through the flag's ``type`` like a command-line
    value, so a bad environment value is refused with the same message as a bad flag."""
    value = os.environ.get(env) or default
    parser.add_argument(f"-{name}", f"--{name}", default=value, help=f"{help} ({env})", **kwargs)


def build_serve_parser(prog: str = "ghosttalk") -> argparse.ArgumentParser:
    d = Config()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve GhostTalk: the page, WebSocket signaling, the admin panel and the SFU media path.",
        epilog="Subcommands: 'ghosttalk join URL --name N' joins a room from the shell; "
        "'ghosttalk bench' measures the forwarding path. Each has its own --help.",
        formatter_class=_HelpFormatter,
    )
    positive_int, positive_float = _positive(int), _positive(float)
    _flag(parser, "host", "HOST", d.host, "HTTP bind address")
    _flag(parser, "port", "PORT", str(d.port), "HTTP port for the page, /ws, /admin, /healthz, /metrics", type=_port)
    _flag(parser, "admin-key", "ADMIN_KEY", None,
          f"key for /admin, at least {MIN_ADMIN_KEY_CHARS} characters; without one a random key is generated and "
          "printed once", type=_admin_key)
    _flag(parser, "rtc-udp-port", "RTC_UDP_PORT", str(d.rtc_udp_port),
          "the one UDP port that carries every peer's ICE, DTLS and SRTP", type=_port)
    _flag(parser, "rtc-bind", "RTC_BIND", d.rtc_bind, "address the shared UDP socket binds to")
    _flag(parser, "rtc-host", "RTC_HOST", "", "comma-separated addresses advertised as ICE host candidates; "
          "default every non-loopback IPv4 interface address; use 127.0.0.1 for local tests", type=_csv)
    _flag(parser, "public-ip", "PUBLIC_IP", None,
          "public address of a 1:1 NAT (cloud VM), advertised instead of interface addresses")
    _flag(parser, "stun-server", "STUN_SERVER", "",
          "comma-separated stun: URLs for browsers; empty means no third party is contacted", type=_csv)
    _flag(parser, "turn-server", "TURN_SERVER", "", "comma-separated turn:/turns: URLs handed to browsers", type=_csv)
    _flag(parser, "turn-user", "TURN_USER", None, "static TURN username")
    _flag(parser, "turn-pass", "TURN_PASS", None, "static TURN password")
    _flag(parser, "turn-secret", "TURN_SECRET", None,
          "coturn use-auth-secret shared secret: hand out time-limited credentials instead")
    _flag(parser, "turn-ttl", "TURN_TTL", str(d.turn_ttl), "lifetime in seconds of time-limited TURN credentials",
          type=positive_int)
    _flag(parser, "data-dir", "DATA_DIR", str(d.data_dir), "directory for server.log and banned_ips.json", type=Path)
    _flag(parser, "log-level", "LOG_LEVEL", d.log_level, "console log level",
          choices=("debug", "info", "warning", "error"))
    _flag(parser, "log-format", "LOG_FORMAT", d.log_format, "console log format", choices=("text", "json"))
    _flag(parser, "trusted-proxies", "TRUSTED_PROXIES", "127.0.0.0/8,::1",
          "CIDRs whose X-Real-IP / X-Forwarded-For are believed", type=_networks)
    _flag(parser, "allowed-origins", "ALLOWED_ORIGINS", "",
          "extra Origins (scheme://host[:port]) allowed to open /ws besides the server's own", type=_csv)
    _flag(parser, "max-room-peers", "MAX_ROOM_PEERS", str(d.max_room_peers),
          "people per room; the next one gets 'Room full'", type=positive_int)
    _flag(parser, "max-rooms", "MAX_ROOMS", str(d.max_rooms), "rooms at once", type=positive_int)
    _flag(parser, "max-peers", "MAX_PEERS", str(d.max_peers), "people on the server at once", type=positive_int)
    _flag(parser, "max-conns-per-ip", "MAX_CONNS_PER_IP", str(d.max_conns_per_ip),
          "open signaling sockets per client address; more get 429", type=positive_int)
    _flag(parser, "join-rate", "JOIN_RATE", str(d.join_rate_per_minute),
          "new signaling sockets per minute per address, sustained", type=positive_float)
    _flag(parser, "join-burst", "JOIN_BURST", str(d.join_burst),
          "new signaling sockets per address allowed at once on top of --join-rate", type=positive_int)
    _flag(parser, "message-rate", "MESSAGE_RATE", str(d.message_rate),
          "signaling messages per second per session, sustained; more closes the session", type=positive_float)
    _flag(parser, "message-burst", "MESSAGE_BURST", str(d.message_burst),
          "signaling messages per session allowed at once", type=positive_int)
    _flag(parser, "offers-per-minute", "OFFERS_PER_MINUTE", str(d.offers_per_minute),
          "SDP offers per session per minute", type=positive_int)
    _flag(parser, "offer-timeout", "OFFER_TIMEOUT", str(d.offer_timeout),
          "seconds a new session may take to send its first offer", type=positive_float)
    _flag(parser, "connect-timeout", "CONNECT_TIMEOUT", str(d.connect_timeout),
          "seconds a peer's media may take to connect before it is removed", type=positive_float)
    _flag(parser, "heartbeat-timeout", "HEARTBEAT_TIMEOUT", str(d.heartbeat_timeout),
          f"seconds without a heartbeat answer after which a peer is removed; pings go every "
          f"{d.heartbeat_interval:g} s", type=positive_float)
    _flag(parser, "room-grace", "ROOM_GRACE", str(d.room_grace_seconds),
          "seconds an empty room is kept before it is destroyed", type=lambda v: float(_number(float, v)))
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
        from ghosttalk.client.join import main as join_main

        return join_main(args)
    if command == "bench":
        from ghosttalk.benchmark.command import main as bench_main

        return bench_main(args)
    # Before anything imports aiortc: the server forwards audio untouched and never needs FFmpeg.
    from ghosttalk.media.pyav_standin import keep_pyav_out

    keep_pyav_out()
    from ghosttalk.server.process import serve

    config = config_from_args(build_serve_parser().parse_args(args))
    return serve(config)
