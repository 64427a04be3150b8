"""The console log's JSON format: one object a line, stamped in ISO 8601 UTC to the millisecond."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from ghosttalk.console import JsonFormatter


def record(created: datetime, message: str = "joined %s", exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    entry = logging.LogRecord("ghosttalk.rooms", logging.WARNING, __file__, 1, message, ("r1",), exc_info)
    entry.created = created.timestamp()
    entry.msecs = (entry.created % 1) * 1000
    return entry


def test_json_lines_carry_iso_8601_utc_timestamps() -> None:
    line = JsonFormatter().format(record(datetime(2026, 11, 30, 6, 20, 0, 123456, tzinfo=UTC)))
    assert "\n" not in line
    assert json.loads(line) == {"ts": "2026-11-30T06:20:00.123Z", "level": "warning", "logger": "ghosttalk.rooms",
                                "message": "joined r1"}  # fmt: skip


def test_the_last_millisecond_of_a_second_never_rounds_into_the_next() -> None:
    line = JsonFormatter().format(record(datetime(2026, 12, 31, 23, 59, 59, 999900, tzinfo=UTC)))
    assert json.loads(line)["ts"] == "2026-12-31T23:59:59.999Z"


def test_an_exception_stays_on_the_same_line() -> None:
    line = JsonFormatter().format(record(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), exc=True))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["ts"] == "2026-01-02T03:04:05.000Z"
    assert "ValueError: boom" in entry["exception"]
