"""The operator's event log: JSON lines in ``DATA_DIR/server.log``, rotated by size, plus an in-memory ring.

Every line is one object ``{ts, level, event, room, peer, ip, details}`` (and ``node`` in a cluster). The admin
panel reads the ring buffer, never the file, so a slow or full disk cannot stall it. Writing a line is a small
synchronous append flushed at once: a crash loses at most the line being written, and the cost on the event loop is
one ``write`` syscall. Disk errors are reported on the console and never reach the caller, because losing a log
line must not take a join or an admin action down with it.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import orjson
from aiohttp import web

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

_console = logging.getLogger("ghosttalk.events")


class EventLog:
    def __init__(
        self, path: Path, *, max_bytes: int = 5_000_000, backups: int = 3, ring_size: int = 1000,
        node: str | None = None,
    ) -> None:
        """``node``: this server's node id in a cluster, stamped on every event so that the cluster's merged
        list (ghosttalk.cluster) says where each happened."""
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if backups < 0:
            raise ValueError("backups must be zero or more")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._ring: deque[dict[str, object]] = deque(maxlen=ring_size)
        self._file: IO[bytes] | None = None
        self._size = 0
        # One console warning per failure streak: a full disk would otherwise print a warning per event.
        self._failing = False
        self.node = node
        # Called with each event as written (the cluster copies them to Redis).
        self.listeners: list[Callable[[dict[str, object]], None]] = []

    def emit(
        self,
        event: str,
        *,
        level: str = "info",
        room: str | None = None,
        peer: str | None = None,
        ip: str | None = None,
        **details: object,
    ) -> None:
        record: dict[str, object] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": level if level in LEVELS else "info",
            "event": event,
            "room": room,
            "peer": peer,
            "ip": ip,
            "details": details,
        }
        if self.node is not None:
            record["node"] = self.node
        try:
            line = orjson.dumps(record, default=str) + b"\n"
        except TypeError as exc:
            # Only a detail orjson cannot encode even through str() gets here; keep the event, drop details.
            record["details"] = {"unencodable": str(exc)}
            line = orjson.dumps(record) + b"\n"
        written = orjson.loads(line)
        self._ring.append(written)
        for listener in self.listeners:
            listener(written)
        _console.log(LEVELS[str(record["level"])], "%s", line[:-1].decode())
        self._write(line)

    def recent(self, n: int) -> list[dict[str, object]]:
        """The last ``n`` events, oldest first (newest last)."""
        if n <= 0:
            return []
        ring = list(self._ring)
        return ring[-n:]

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                _console.warning("event log %s: could not close: %s", self.path, exc)
            self._file = None

    def _write(self, line: bytes) -> None:
        try:
            if self._file is not None and self._size + len(line) > self.max_bytes:
                self._rotate()
            if self._file is None:
                self._open()
            assert self._file is not None
            self._file.write(line)
            self._file.flush()
            self._size += len(line)
        except OSError as exc:
            if not self._failing:
                _console.warning("event log %s: cannot write, events are kept in memory only: %s", self.path, exc)
            self._failing = True
            # Reopen on the next event: the directory may have been recreated or the disk freed.
            self.close()
            return
        if self._failing:
            _console.warning("event log %s: writing again", self.path)
            self._failing = False

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")
        self._size = self._file.tell()
        # A file left over from an earlier run may already be over the limit.
        if self._size >= self.max_bytes:
            self._rotate()
            self._file = self.path.open("ab")
            self._size = 0

    def _rotate(self) -> None:
        """server.log -> server.log.1 -> ... -> server.log.<backups>; the oldest falls off."""
        self.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for index in range(self.backups - 1, 0, -1):
            older = self._backup(index)
            if older.exists():
                os.replace(older, self._backup(index + 1))
        if self.path.exists():
            os.replace(self.path, self._backup(1))

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")


EVENTS = web.AppKey("events", EventLog)
