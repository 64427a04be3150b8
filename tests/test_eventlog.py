"""EventLog: JSON lines on disk, size rotation, the ring buffer, and surviving disk errors."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import pytest

from ghosttalk.ops.eventlog import EventLog


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lines_have_the_documented_shape(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "server.log")
    log.emit("USER_JOIN", room="lobby", peer="p1", ip="203.0.113.7", name="Ann")
    log.emit("ICE_CONNECTED", room="lobby", peer="p1", candidate_type="relay")
    log.emit("ERROR", level="error", what="boom")
    log.close()
    written = lines(tmp_path / "server.log")
    assert [entry["event"] for entry in written] == ["USER_JOIN", "ICE_CONNECTED", "ERROR"]
    first = written[0]
    assert set(first) == {"ts", "level", "event", "room", "peer", "ip", "details"}
    assert first["level"] == "info"
    assert first["room"] == "lobby" and first["peer"] == "p1" and first["ip"] == "203.0.113.7"
    assert first["details"] == {"name": "Ann"}
    assert written[1]["details"] == {"candidate_type": "relay"}
    assert written[2]["level"] == "error" and written[2]["room"] is None
    stamp = datetime.fromisoformat(str(first["ts"]).replace("Z", "+00:00"))
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_each_line_is_on_disk_before_emit_returns(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "server.log")
    log.emit("ROOM_CREATE", room="a")
    assert lines(tmp_path / "server.log")[0]["event"] == "ROOM_CREATE"
    log.close()


def test_appends_to_an_existing_log(tmp_path: Path) -> None:
    first = EventLog(tmp_path / "server.log")
    first.emit("ROOM_CREATE", room="a")
    first.close()
    second = EventLog(tmp_path / "server.log")
    second.emit("ROOM_DESTROY", room="a")
    second.close()
    assert [entry["event"] for entry in lines(tmp_path / "server.log")] == ["ROOM_CREATE", "ROOM_DESTROY"]


def test_rotation_by_size_keeps_a_bounded_number_of_files(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    log = EventLog(path, max_bytes=2000, backups=2)
    for i in range(200):
        log.emit("USER_JOIN", room="r", peer=f"p{i}", ip="198.51.100.1")
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["server.log", "server.log.1", "server.log.2"]
    for name in names:
        assert (tmp_path / name).stat().st_size <= 2000
    # Newest in server.log, older ones in .1 then .2, no line split across files.
    current, older, oldest = (lines(tmp_path / n) for n in ("server.log", "server.log.1", "server.log.2"))
    peers = [int(str(e["peer"])[1:]) for e in oldest + older + current]
    assert peers == sorted(peers) and peers[-1] == 199
    assert len(set(peers)) == len(peers)


def test_rotation_without_backups_truncates(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "server.log", max_bytes=500, backups=0)
    for i in range(50):
        log.emit("USER_LEAVE", peer=f"p{i}")
    log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["server.log"]
    assert (tmp_path / "server.log").stat().st_size <= 500


def test_an_oversized_file_from_an_earlier_run_is_rotated_at_open(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    path.write_text('{"event":"OLD"}\n' * 100)
    log = EventLog(path, max_bytes=1000, backups=1)
    log.emit("ROOM_CREATE", room="a")
    log.close()
    assert [e["event"] for e in lines(path)] == ["ROOM_CREATE"]
    assert lines(tmp_path / "server.log.1")[0]["event"] == "OLD"


def test_ring_buffer_newest_last_and_bounded(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "server.log", ring_size=10)
    for i in range(25):
        log.emit("USER_JOIN", peer=f"p{i}")
    assert [e["peer"] for e in log.recent(3)] == ["p22", "p23", "p24"]
    assert len(log.recent(1000)) == 10
    assert log.recent(1000)[0]["peer"] == "p15"
    assert log.recent(0) == []
    log.close()


def test_unusual_details_are_encoded_not_raised(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "server.log")
    log.emit("ERROR", level="error", path=tmp_path, error=ValueError("bad"), nested={"a": [1, 2]})
    log.emit("ODD", level="not-a-level")
    log.close()
    first, second = lines(tmp_path / "server.log")
    assert first["details"] == {"path": str(tmp_path), "error": "bad", "nested": {"a": [1, 2]}}
    assert second["level"] == "info"


def test_disk_errors_never_reach_the_caller(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    log = EventLog(blocker / "server.log")
    with caplog.at_level(logging.WARNING, logger="ghosttalk.events"):
        for i in range(5):
            log.emit("USER_JOIN", peer=f"p{i}")
    # Still in memory for the admin panel, and one warning for the streak rather than one per event.
    assert [e["peer"] for e in log.recent(5)] == ["p0", "p1", "p2", "p3", "p4"]
    warnings = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(warnings) == 1
    # The disk comes back: writing resumes on the next event.
    blocker.unlink()
    blocker.mkdir()
    with caplog.at_level(logging.WARNING, logger="ghosttalk.events"):
        log.emit("USER_JOIN", peer="p5")
    assert [e["peer"] for e in lines(blocker / "server.log")] == ["p5"]
    assert any("writing again" in r.getMessage() for r in caplog.records)
    log.close()


def test_events_are_mirrored_to_the_console(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = EventLog(tmp_path / "server.log")
    with caplog.at_level(logging.INFO, logger="ghosttalk.events"):
        log.emit("ADMIN_BAN", level="warning", ip="203.0.113.7")
    log.close()
    record = next(r for r in caplog.records if "ADMIN_BAN" in r.getMessage())
    assert record.levelno == logging.WARNING
