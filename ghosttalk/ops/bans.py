"""Banned addresses and ranges, kept in ``DATA_DIR/banned_ips.json`` so that bans survive restarts.

The file is a JSON array of normalised entries (``"203.0.113.7"``, ``"2001:db8::/32"``). Every change
rewrites it atomically: a temporary file in the same directory is written and fsynced, renamed over the
old one, and the directory is fsynced, so a crash or SIGKILL at any moment leaves either the old or the
new list, never a truncated one. A file that does not parse stops the server (``BanFileError``) rather
than starting with no bans, which would silently let everyone back in.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import tempfile
import threading
from pathlib import Path

import orjson
from aiohttp import web

from ghosttalk.config import IPAddress, IPNetwork

_log = logging.getLogger(__name__)


class BanFileError(Exception):
    """The ban file exists but cannot be used; the message names the file and what is wrong."""


def parse_address(text: str) -> IPAddress:
    """An address as a client presents it; IPv4-mapped IPv6 (``::ffff:a.b.c.d``) becomes IPv4."""
    address = ipaddress.ip_address(text.strip())
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        # A zone id (fe80::1%eth0) names the local interface, not the remote host.
        if address.scope_id is not None:
            return ipaddress.IPv6Address(str(address).split("%", 1)[0])
    return address


def normalise(spec: str) -> IPNetwork:
    """A ban entry as a network: a single address becomes a /32 or /128. ``ValueError`` says why not."""
    text = spec.strip()
    if not text:
        raise ValueError("empty address")
    try:
        if "/" not in text:
            address = parse_address(text)
            return ipaddress.ip_network(address)
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address or CIDR range") from None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            network = ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    if network.prefixlen == 0:
        raise ValueError(f"{text!r} would ban every address")
    return network


def entry_text(network: IPNetwork) -> str:
    """How an entry is stored and shown: a bare address for single hosts, CIDR otherwise."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


class BanList:
    def __init__(self, path: Path) -> None:
        self.path = path
        # Single addresses are the common case and are checked with one set lookup; ranges are few.
        self._hosts: set[IPAddress] = set()
        self._ranges: list[IPNetwork] = []
        self._entries: list[str] = []
        # One writer of the file at a time: the admin panel and a cluster node write it from threads.
        self._writing = threading.Lock()

    def load(self) -> None:
        """Read the file; a missing file means no bans. Raises ``BanFileError`` if it is unusable."""
        self._remove_stale_temp_files()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._set([])
            return
        except OSError as exc:
            raise BanFileError(f"cannot read ban file {self.path}: {exc}") from exc
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BanFileError(
                f"ban file {self.path} is not valid JSON ({exc}); fix or remove it "
                "(the server will not start without its bans)"
            ) from exc
        if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
            raise BanFileError(f"ban file {self.path} must hold a JSON array of address strings")
        networks: list[IPNetwork] = []
        for item in data:
            try:
                networks.append(normalise(item))
            except ValueError as exc:
                raise BanFileError(f"ban file {self.path} has a bad entry: {exc}") from exc
        self._set(networks)

    def is_banned(self, ip: str) -> bool:
        try:
            address = parse_address(ip)
        except ValueError:
            return False
        return address in self._hosts or any(address in network for network in self._ranges)

    def ban(self, spec: str) -> str:
        """Add an address or range and persist; returns the normalised entry. ``ValueError`` if invalid.
        Blocking (two fsyncs): the admin panel runs it in a thread."""
        network = normalise(spec)
        entry = entry_text(network)
        with self._writing:
            if entry not in self._entries:
                self._save([*self._networks(), network])
        return entry

    def unban(self, spec: str) -> bool:
        """Remove an entry (given in any spelling of it); False if it was not banned. Blocking, as ``ban``."""
        entry = entry_text(normalise(spec))
        with self._writing:
            if entry not in self._entries:
                return False
            self._save([network for network in self._networks() if entry_text(network) != entry])
        return True

    def replace(self, entries: list[str]) -> list[str]:
        """Enforce exactly ``entries`` from now on (the cluster's list, mirrored: ghosttalk.cluster.bans), in
        memory only; returns the entries that are new. One that does not parse is left out. :meth:`write`
        persists them: the cluster already holds these bans, so enforcing them waits for no disk."""
        networks: list[IPNetwork] = []
        for entry in entries:
            try:
                networks.append(normalise(entry))
            except ValueError:
                _log.warning("ban list from the cluster: skipped %r, not an address or range", entry[:80])
        before = set(self._entries)
        self._set(networks)
        return [entry for entry in self._entries if entry not in before]

    def write(self, entries: list[str]) -> None:
        """Persist ``entries`` (already enforced) as the file. Blocking (two fsyncs): a cluster node runs it in a
        thread, so that a slow disk does not stall its event loop. Raises ``OSError``."""
        with self._writing:
            self._write_file(entries)

    def entries(self) -> list[str]:
        return list(self._entries)

    @staticmethod
    def matches(entry: str, ip: str) -> bool:
        """Whether client address ``ip`` falls under ban ``entry``; False for anything unparseable."""
        try:
            return parse_address(ip) in normalise(entry)
        except ValueError:
            return False

    def _networks(self) -> list[IPNetwork]:
        return [normalise(entry) for entry in self._entries]

    def _set(self, networks: list[IPNetwork]) -> None:
        unique = list(dict.fromkeys(networks))
        self._entries = [entry_text(network) for network in unique]
        self._hosts = {network.network_address for network in unique if network.prefixlen == network.max_prefixlen}
        self._ranges = [network for network in unique if network.prefixlen != network.max_prefixlen]

    def _save(self, networks: list[IPNetwork]) -> None:
        """Persist first, then switch the in-memory list, so memory never claims a ban the disk lost."""
        self._write_file([entry_text(network) for network in dict.fromkeys(networks)])
        self._set(networks)

    def _write_file(self, entries: list[str]) -> None:
        data = orjson.dumps(entries, option=orjson.OPT_INDENT_2) + b"\n"
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as temp:
                temp.write(data)
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp_name, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _remove_stale_temp_files(self) -> None:
        """Temporary files are only left behind by a crash mid-write; the real file is intact."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()


BANS = web.AppKey("bans", BanList)
