"""Server configuration: one immutable record, and the one place where every setting is described.

Each operator-facing field of :class:`Config` carries a :class:`Setting` in its dataclass metadata: the flag
name (the Go original's), the help text, the parser, and whether it is secret. Everything else is derived from
that description: the command-line flags (``-name`` and ``--name``), the environment variable (the flag name in
capitals, dashes as underscores: ``max-room-peers`` -> ``MAX_ROOM_PEERS``), the key in a ``--config`` TOML file
(the flag name itself: ``max-room-peers = 10``), the README's flag table and ``ghosttalk config``.

:func:`resolve` applies the precedence flag > environment > config file > default. Fields without a Setting
are timings that tests tune directly; operators have never needed them.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)

# Wrong keys are throttled per address, but a short key typed by hand ("admin", "secret1") falls to the first
# guesses of any list; a floor of 16 characters turns away those keys and leaves room for generated ones.
MIN_ADMIN_KEY_CHARS = 16

# The largest room a server can be set up for (rooms past FORWARD_ALL_UP_TO forward only the loudest
# speakers; see ghosttalk.media.selection, which keeps the same figure).
MAX_ROOM_PEERS = 100
FORWARD_ALL_UP_TO = 10

# Seconds between heartbeat pings; not a setting, but the heartbeat-timeout help quotes it.
HEARTBEAT_INTERVAL = 5.0

_SETTING = "ghosttalk.setting"

NODE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class BadValue(ValueError):
    """A value a setting refuses. The message says why; it never repeats the value of a secret."""


class ConfigError(Exception):
    """A setting that cannot be used, with where it came from (environment variable or config file)."""


# --- Parsers: text as typed on a command line or in an environment variable -> the field's value ----------


def csv(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def networks(text: str) -> tuple[IPNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in csv(text))
    except ValueError as exc:
        raise BadValue(f"not a list of addresses or CIDR ranges: {exc}") from None


def whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadValue(f"{text!r} is not a whole number") from None


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadValue(f"{text!r} is not a number") from None
    # float() takes "nan" and "inf"; neither is a sensible rate or timeout, and nan passes every comparison.
    if not math.isfinite(value):
        raise BadValue(f"{text!r} is not a finite number")
    return value


def port_number(text: str) -> int:
    value = whole(text)
    if not 0 <= value <= 65535:
        raise BadValue(f"port {value} is outside 0-65535")
    return value


def positive_whole(text: str) -> int:
    value = whole(text)
    if value <= 0:
        raise BadValue(f"{text} must be greater than zero")
    return value


def room_size(text: str) -> int:
    value = positive_whole(text)
    if value > MAX_ROOM_PEERS:
        raise BadValue(f"{text} is more than {MAX_ROOM_PEERS} people")
    return value


def forwarded_speakers(text: str) -> int:
    value = whole(text)
    if not 0 <= value < FORWARD_ALL_UP_TO:
        raise BadValue(f"{text} is not 0-{FORWARD_ALL_UP_TO - 1} (0 forwards everyone)")
    return value


def positive_number(text: str) -> float:
    value = number(text)
    if value <= 0:
        raise BadValue(f"{text} must be greater than zero")
    return value


def non_negative_number(text: str) -> float:
    value = number(text)
    if value < 0:
        raise BadValue(f"{text} must not be negative")
    return value


def redis_address(text: str) -> str:
    # Checked here, before anything starts: a typo must stop startup, not surface as "unreachable" later.
    scheme = text.partition("://")[0]
    if scheme not in ("redis", "rediss", "unix") or "://" not in text:
        raise BadValue("must start with redis://, rediss:// or unix:// (redis://host:6379/0)")
    return text


def node_name(text: str) -> str:
    if not NODE_NAME.fullmatch(text):
        raise BadValue(f"{text[:80]!r} is not 1-64 letters, digits, '.', '_' or '-'")
    return text


def node_on_port(base: str, port: int) -> str:
    """``<base>-<port>``, within the 64 characters of a node id: the base is cut, never the port, which is what
    tells one machine's nodes apart."""
    suffix = f"-{port}"
    return base[: 64 - len(suffix)] + suffix


def checked_admin_key(text: str) -> str:
    if len(text) < MIN_ADMIN_KEY_CHARS:
        # Never echo the key: this message goes to the console and to whatever collects it.
        raise BadValue(
            f"the admin key (--admin-key or ADMIN_KEY) is {len(text)} characters; it must be at least "
            f"{MIN_ADMIN_KEY_CHARS}. Make one with: openssl rand -hex 24 (or leave it unset for a random key "
            "printed at startup)"
        )
    return text


# --- The description of a setting ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setting:
    """What an operator needs to know about one Config field; stored in the field's metadata."""

    flag: str  # without dashes, spelled as the original spelled it
    help: str  # `code` in backticks is code in the README; --help shows it without them
    parse: Callable[[str], Any] = str
    secret: bool = False  # never printed: not by --help, `ghosttalk config`, nor an error message
    choices: tuple[str, ...] = ()
    unit: str = ""  # after the default in the README table: "s", "/min"
    unset: str = "unset"  # what leaving it empty means, when the default is empty


def setting(flag: str, help: str, parse: Callable[[str], Any] = str, *, secret: bool = False,
            choices: tuple[str, ...] = (), unit: str = "", unset: str = "unset") -> dict[str, Setting]:
    """Metadata for ``field(default=..., metadata=setting(...))``."""
    return {_SETTING: Setting(flag, help, parse, secret, choices, unit, unset)}


Kind = Literal["whole number", "number", "list", "text"]


@dataclass(frozen=True, slots=True)
class Option:
    """A Setting bound to its Config field: name, default, and the names derived from the flag."""

    name: str  # the Config field
    setting: Setting
    default: Any

    @property
    def flag(self) -> str:
        return self.setting.flag

    @property
    def env(self) -> str:
        return self.setting.flag.upper().replace("-", "_")

    @property
    def secret(self) -> bool:
        return self.setting.secret

    @property
    def kind(self) -> Kind:
        # bool is an int: refuse it here rather than let a flag silently take "True".
        assert not isinstance(self.default, bool), f"{self.name}: boolean settings are not supported"
        if isinstance(self.default, int):
            return "whole number"
        if isinstance(self.default, float):
            return "number"
        if isinstance(self.default, tuple):
            return "list"
        return "text"

    def convert(self, text: str) -> Any:
        """A value from its text, as given by a flag or an environment variable."""
        if self.setting.choices and text not in self.setting.choices:
            raise BadValue(f"{text!r} is not one of {', '.join(self.setting.choices)}")
        return self.setting.parse(text)

    def from_file(self, value: object) -> Any:
        """A value from a config file: TOML's own types where they fit, then the same checks as text."""
        kind = self.kind
        if kind == "list" and isinstance(value, list):
            if not all(isinstance(item, str) and "," not in item for item in value):
                raise BadValue("expected a list of strings without commas")
            return self.convert(",".join(value))
        ok = {
            "whole number": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "list": isinstance(value, str),
            "text": isinstance(value, str),
        }[kind]
        if not ok:
            wanted = {"whole number": "a whole number", "number": "a number", "text": "a string",
                      "list": "a list of strings or one comma-separated string"}[kind]
            # The type's name only: the value may be a secret.
            raise BadValue(f"expected {wanted}, not a TOML {_toml_type(value)}")
        return self.convert(str(value))

    @property
    def default_text(self) -> str:
        """The default as the README and --help show it, with its unit: "15 s", "60/min"."""
        text = self.text(self.default)
        if not self.setting.unit or self.default in (None, ()):
            return text
        return f"{text}{'' if self.setting.unit.startswith('/') else ' '}{self.setting.unit}"

    def text(self, value: Any) -> str:
        """The value as a flag would take it (lists comma-separated), or what its absence means."""
        if value is None or value == () or value == "":
            return self.setting.unset
        if isinstance(value, tuple):
            return ",".join(str(item) for item in value)
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)


def _toml_type(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


# --- The record -------------------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Config:
    # HTTP
    host: str = field(default="0.0.0.0", metadata=setting("host", "HTTP bind address"))
    port: int = field(default=8080, metadata=setting(
        "port", "HTTP port for the page, `/ws`, `/admin`, `/healthz` and `/metrics`", port_number))
    # WebRTC: every peer's ICE/DTLS/SRTP shares one UDP socket on this port.
    rtc_udp_port: int = field(default=50000, metadata=setting(
        "rtc-udp-port", "the one UDP port that carries every peer's ICE, DTLS and SRTP", port_number))
    rtc_bind: str = field(default="0.0.0.0", metadata=setting(
        "rtc-bind", "address the shared UDP socket binds to"))
    # Addresses advertised as host candidates; empty means every non-loopback interface address.
    rtc_hosts: tuple[str, ...] = field(default=(), metadata=setting(
        "rtc-host", "comma-separated addresses advertised as ICE host candidates; `127.0.0.1` for local tests",
        csv, unset="every non-loopback IPv4 address"))
    # A 1:1 NAT public address advertised instead of the interface addresses.
    public_ip: str | None = field(default=None, metadata=setting(
        "public-ip", "public address of a 1:1 NAT (cloud VMs), advertised instead of the interface addresses"))
    # ICE servers handed to browsers and clients (never used by the server itself).
    stun_servers: tuple[str, ...] = field(default=(), metadata=setting(
        "stun-server", "comma-separated `stun:` URLs for browsers; nothing goes to a third party unless set", csv,
        unset="none"))
    turn_servers: tuple[str, ...] = field(default=(), metadata=setting(
        "turn-server", "comma-separated `turn:` and `turns:` URLs for browsers", csv))
    turn_user: str | None = field(default=None, metadata=setting("turn-user", "static TURN username"))
    turn_pass: str | None = field(default=None, metadata=setting(
        "turn-pass", "static TURN password", secret=True))
    turn_secret: str | None = field(default=None, metadata=setting(
        "turn-secret", "coturn `use-auth-secret` shared secret: hands out time-limited credentials per join instead",
        secret=True))
    turn_ttl: int = field(default=3600, metadata=setting(
        "turn-ttl", "lifetime in seconds of time-limited TURN credentials", positive_whole, unit="s"))
    # Operations
    admin_key: str | None = field(default=None, metadata=setting(
        "admin-key", f"key for `/admin`, at least {MIN_ADMIN_KEY_CHARS} characters (a shorter one stops startup)",
        checked_admin_key, secret=True, unset="random, printed once"))
    data_dir: Path = field(default=Path("data"), metadata=setting(
        "data-dir", "directory for `server.log` (the event log) and `banned_ips.json`", Path))
    log_level: str = field(default="info", metadata=setting(
        "log-level", "console log level", choices=("debug", "info", "warning", "error")))
    log_format: str = field(default="text", metadata=setting(
        "log-format", "console log format; `json` is one object a line with ISO 8601 UTC timestamps",
        choices=("text", "json")))
    trusted_proxies: tuple[IPNetwork, ...] = field(default=LOOPBACK_NETWORKS, metadata=setting(
        "trusted-proxies", "CIDRs whose `X-Real-IP` / `X-Forwarded-For` (client address) and "
        "`X-Forwarded-Proto` (http or https, for the `/ws` Origin check) are believed", networks))
    allowed_origins: tuple[str, ...] = field(default=(), metadata=setting(
        "allowed-origins", "extra Origins (`scheme://host[:port]`) allowed to open `/ws` besides the server's own "
        "(same scheme, host and port)",
        csv))
    # Limits
    max_room_peers: int = field(default=10, metadata=setting(
        "max-room-peers", f"people per room, at most {MAX_ROOM_PEERS}; the next one gets 'Room full'", room_size))
    max_forwarded_speakers: int = field(default=3, metadata=setting(
        "max-forwarded-speakers", f"in rooms of more than {FORWARD_ALL_UP_TO} people, each person hears only this "
        "many of the loudest speakers (0: everyone, however large the room)", forwarded_speakers))
    max_rooms: int = field(default=1000, metadata=setting("max-rooms", "rooms at once", positive_whole))
    max_peers: int = field(default=5000, metadata=setting(
        "max-peers", "people on the server at once", positive_whole))
    max_conns_per_ip: int = field(default=10, metadata=setting(
        "max-conns-per-ip", "open signaling sockets per client address, an IPv6 /64 counting as one; more get 429",
        positive_whole))
    # New signaling sockets per address: sustained per minute, and the burst allowed on top.
    join_rate_per_minute: float = field(default=60.0, metadata=setting(
        "join-rate", "new signaling sockets per address (IPv6: per /64), sustained; more get 429",
        positive_number, unit="/min"))
    join_burst: int = field(default=20, metadata=setting(
        "join-burst", "new signaling sockets per address allowed at once on top of join-rate", positive_whole))
    # Messages per signaling session: sustained per second and burst (a page trickles ~20 candidates at once).
    message_rate: float = field(default=50.0, metadata=setting(
        "message-rate", "signaling messages per session, sustained; more closes the session (1008)",
        positive_number, unit="/s"))
    message_burst: int = field(default=200, metadata=setting(
        "message-burst", "signaling messages per session allowed at once", positive_whole))
    # Offers a client may send per minute (each one costs a full SDP negotiation).
    offers_per_minute: int = field(default=20, metadata=setting(
        "offers-per-minute", "SDP offers per session per minute", positive_whole))
    # A socket that has not sent its first offer by then is closed.
    offer_timeout: float = field(default=15.0, metadata=setting(
        "offer-timeout", "seconds a new session may take to send its first offer", positive_number, unit="s"))
    # A room that empties is kept this long so that a reload does not destroy and recreate it.
    room_grace_seconds: float = field(default=0.0, metadata=setting(
        "room-grace", "seconds an empty room is kept before it is destroyed", non_negative_number, unit="s"))
    # A newcomer at a locked room's door waits this long for its host to let them in (close 4009 after).
    lobby_wait_seconds: float = field(default=300.0, metadata=setting(
        "lobby-wait", "seconds a newcomer waits in a locked room's lobby before giving up", positive_number,
        unit="s"))
    # Liveness: DataChannel ping interval, and the silence after which a peer is removed. 8 s notices a
    # network that went away (a 10 s outage is noticed, the room is told, the page rejoins) while riding
    # out the few seconds a phone takes to hand over between Wi-Fi and mobile data.
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    heartbeat_timeout: float = field(default=8.0, metadata=setting(
        "heartbeat-timeout", f"seconds of silence on the heartbeat DataChannel (pinged every {HEARTBEAT_INTERVAL:g} s) "
        "after which a peer is removed", positive_number, unit="s"))
    # A peer whose media never connects is removed after this long.
    connect_timeout: float = field(default=30.0, metadata=setting(
        "connect-timeout", "seconds a peer's media may take to connect before it is removed", positive_number,
        unit="s"))
    # Cluster: with a Redis URL the process is one node of a cluster (ghosttalk.cluster); without, nothing changes.
    redis_url: str | None = field(default=None, metadata=setting(
        "redis-url", "Redis that the nodes of a cluster share (`redis://[:password@]host:6379/0`); unset, the "
        "server is one process on its own", redis_address, secret=True, unset="unset: no cluster"))
    node_id: str | None = field(default=None, metadata=setting(
        "node-id", "this node's name in the cluster (letters, digits, `.`, `_`, `-`; at most 64)", node_name,
        unset="host name and UDP port"))
    workers: int = field(default=1, metadata=setting(
        "workers", "nodes to start on this machine, one per core: they share the HTTP port and take consecutive "
        "UDP ports from `rtc-udp-port`, each keeping its files in `data-dir/<node id>`; a node that dies is started "
        "again; more than one needs `redis-url`", positive_whole))
    drain_timeout: float = field(default=600.0, metadata=setting(
        "drain-timeout", "a clustered node's calls may go on this long after SIGTERM before their pages are sent "
        "to other nodes (close 1001)", non_negative_number, unit="s"))
    ws_ping_interval: float = 30.0
    ws_read_timeout: float = 60.0

    @property
    def node_name(self) -> str:
        """This node's id in a cluster: ``--node-id``, else ``<host name>-<UDP port>`` (unique per machine and
        port, and readable in the admin panel)."""
        if self.node_id:
            return self.node_id
        host = "".join(c if NODE_NAME.fullmatch(c) else "-" for c in socket.gethostname()) or "node"
        return node_on_port(host, self.rtc_udp_port)

    @property
    def ban_file(self) -> Path:
        return self.data_dir / "banned_ips.json"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"


def _options() -> tuple[Option, ...]:
    defaults = Config()
    described = (f for f in fields(Config) if _SETTING in f.metadata)
    return tuple(Option(f.name, f.metadata[_SETTING], getattr(defaults, f.name)) for f in described)


OPTIONS: tuple[Option, ...] = _options()
_BY_FLAG: dict[str, Option] = {option.flag: option for option in OPTIONS}


# --- Where values come from -----------------------------------------------------------------------------------


class Source(StrEnum):
    FLAG = "flag"
    ENV = "env"
    FILE = "file"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Resolved:
    """The effective Config, and for each field (by name) the layer its value came from."""

    config: Config
    sources: Mapping[str, Source]
    file: Path | None


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a TOML file, by Config field name, each checked as its flag would be.

    Keys are the flag names with their dashes (``max-room-peers = 10``): one spelling for the flag, the file
    and the README. Any other key is refused, so that a typo does not silently leave a default in place.
    """
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in document.items():
        option = _BY_FLAG.get(key)
        if option is None:
            raise ConfigError(f"config file {path}: unknown key {key!r}{_suggestion(key)}; keys are the flag "
                              "names with dashes (max-room-peers = 10), listed by ghosttalk --help")
        try:
            values[option.name] = option.from_file(value)
        except BadValue as exc:
            raise ConfigError(f"config file {path}: {key}: {exc}") from None
    return values


def _suggestion(key: str) -> str:
    # Only a misspelt key in a config file gets here: difflib (and what it imports) stays out of the server.
    import difflib

    spelled = key.strip("-").lower().replace("_", "-")
    candidates = [spelled] if spelled in _BY_FLAG else difflib.get_close_matches(spelled, _BY_FLAG, n=1)
    return f" (did you mean {candidates[0]!r}?)" if candidates else ""


def resolve(flags: Mapping[str, Any], environ: Mapping[str, str], file: Path | None) -> Resolved:
    """Config from flag values (already parsed, by field name), the environment and an optional TOML file.

    An empty environment variable counts as unset (compose files pass ``ADMIN_KEY: ${ADMIN_KEY:-}``). A value
    from the environment is checked only when it is used, as a flag's default was; the file is checked whole.
    """
    from_file = read_config_file(file) if file is not None else {}
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for option in OPTIONS:
        text = environ.get(option.env)
        if option.name in flags:
            values[option.name], sources[option.name] = flags[option.name], Source.FLAG
        elif text:
            try:
                values[option.name] = option.convert(text)
            except BadValue as exc:
                raise ConfigError(f"environment variable {option.env}: {exc}") from None
            sources[option.name] = Source.ENV
        elif option.name in from_file:
            values[option.name], sources[option.name] = from_file[option.name], Source.FILE
        else:
            sources[option.name] = Source.DEFAULT
    return Resolved(Config(**values), sources, file)
