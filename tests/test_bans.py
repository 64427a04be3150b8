"""BanList: parsing, matching, persistence, and crash safety of the ban file."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from ghosttalk.ops.bans import BanFileError, BanList


def fresh(tmp_path: Path) -> BanList:
    bans = BanList(tmp_path / "banned_ips.json")
    bans.load()
    return bans


def test_missing_file_means_no_bans(tmp_path: Path) -> None:
    bans = fresh(tmp_path)
    assert bans.entries() == []
    assert not bans.is_banned("203.0.113.7")
    assert not (tmp_path / "banned_ips.json").exists()


@pytest.mark.parametrize(
    ("spec", "entry"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7/32", "203.0.113.7"),
        ("198.51.100.77/24", "198.51.100.0/24"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.0/120", "192.0.2.0/24"),
    ],
)
def test_ban_normalises(tmp_path: Path, spec: str, entry: str) -> None:
    bans = fresh(tmp_path)
    assert bans.ban(spec) == entry
    assert bans.entries() == [entry]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("example.com", "not an IPv4 or IPv6"),
        ("1.2.3.4/33", "not an IPv4 or IPv6"),
        ("1.2.3", "not an IPv4 or IPv6"),
        ("0.0.0.0/0", "every address"),
        ("::/0", "every address"),
    ],
)
def test_ban_rejects_bad_addresses_with_a_reason(tmp_path: Path, spec: str, reason: str) -> None:
    bans = fresh(tmp_path)
    with pytest.raises(ValueError, match=reason):
        bans.ban(spec)
    assert bans.entries() == []


def test_matching_v4_v6_cidr_and_mapped(tmp_path: Path) -> None:
    bans = fresh(tmp_path)
    bans.ban("203.0.113.7")
    bans.ban("198.51.100.0/24")
    bans.ban("2001:db8::/32")
    assert bans.is_banned("203.0.113.7")
    assert bans.is_banned("::ffff:203.0.113.7")
    assert not bans.is_banned("203.0.113.8")
    assert bans.is_banned("198.51.100.1")
    assert bans.is_banned("198.51.100.255")
    assert not bans.is_banned("198.51.101.0")
    assert bans.is_banned("2001:db8:1234::5")
    assert not bans.is_banned("2001:db9::1")
    assert bans.is_banned("2001:db8::1%eth0")
    for garbage in ("", "nonsense", "999.1.1.1", "1.2.3.4/24"):
        assert not bans.is_banned(garbage)
    assert BanList.matches("198.51.100.0/24", "198.51.100.9")
    assert not BanList.matches("198.51.100.0/24", "198.51.10.9")
    assert not BanList.matches("garbage", "198.51.100.9")


def test_duplicate_bans_are_one_entry(tmp_path: Path) -> None:
    bans = fresh(tmp_path)
    bans.ban("203.0.113.7")
    bans.ban("203.0.113.7/32")
    bans.ban("::ffff:203.0.113.7")
    assert bans.entries() == ["203.0.113.7"]


def test_unban_any_spelling(tmp_path: Path) -> None:
    bans = fresh(tmp_path)
    bans.ban("2001:db8::1")
    bans.ban("198.51.100.0/24")
    assert bans.unban("2001:0db8:0000::0001")
    assert not bans.unban("2001:db8::1")
    assert bans.unban("198.51.100.3/24")
    assert bans.entries() == []
    assert not bans.is_banned("198.51.100.3")
    with pytest.raises(ValueError):
        bans.unban("nonsense")


def test_bans_persist_across_loads(tmp_path: Path) -> None:
    bans = fresh(tmp_path)
    bans.ban("203.0.113.7")
    bans.ban("2001:db8::/32")
    bans.ban("198.51.100.0/24")
    bans.unban("203.0.113.7")
    again = fresh(tmp_path)
    assert again.entries() == ["2001:db8::/32", "198.51.100.0/24"]
    assert again.is_banned("198.51.100.9")
    assert json.loads((tmp_path / "banned_ips.json").read_text()) == ["2001:db8::/32", "198.51.100.0/24"]
    # No temporary files are left next to it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["banned_ips.json"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not valid JSON"),
        (b'["203.0.113.7"', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"203.0.113.7": true}', "JSON array of address strings"),
        (b"[1, 2]", "JSON array of address strings"),
        (b'["203.0.113.7", "not-an-ip"]', "bad entry"),
    ],
)
def test_corrupt_file_is_a_clear_error_naming_the_file(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "banned_ips.json"
    path.write_bytes(content)
    bans = BanList(path)
    with pytest.raises(BanFileError, match=reason) as info:
        bans.load()
    assert str(path) in str(info.value)


def test_stale_temp_files_from_a_crash_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".banned_ips.json.abc123.tmp").write_text('["203.0.113.9"')
    (tmp_path / "banned_ips.json").write_text('["203.0.113.7"]')
    bans = fresh(tmp_path)
    assert bans.entries() == ["203.0.113.7"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["banned_ips.json"]


def test_failed_write_keeps_memory_and_disk_in_step(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    bans = BanList(directory / "banned_ips.json")
    bans.load()
    bans.ban("203.0.113.7")
    # The data directory disappears and a plain file takes its name: every write must fail (even as root).
    (directory / "banned_ips.json").unlink()
    directory.rmdir()
    directory.write_text("not a directory")
    with pytest.raises(OSError):
        bans.ban("203.0.113.8")
    assert bans.entries() == ["203.0.113.7"]
    assert not bans.is_banned("203.0.113.8")


def _hammer(path: str) -> None:
    """Child process: ban and unban as fast as possible until killed."""
    bans = BanList(Path(path))
    bans.load()
    i = 0
    while True:
        bans.ban(f"10.{i % 250}.{(i // 250) % 250}.1")
        if i % 3 == 0:
            bans.unban(f"10.{i % 250}.{(i // 250) % 250}.1")
        i += 1


@pytest.mark.skipif(sys.platform != "linux", reason="SIGKILL semantics tested on Linux")
def test_sigkill_during_writes_never_leaves_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "banned_ips.json"
    BanList(path).ban("192.0.2.1")  # never empty, even before the first child writes
    context = multiprocessing.get_context("fork")
    kills = 30
    sizes: set[int] = set()
    for round_number in range(kills):
        child = context.Process(target=_hammer, args=(str(path),))
        child.start()
        # Vary the moment of death so kills land in different phases of a write.
        time.sleep(0.02 + (round_number % 7) * 0.013)
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
        raw = path.read_bytes()
        assert raw.endswith(b"\n"), f"round {round_number}: truncated file {raw[-40:]!r}"
        entries = json.loads(raw)
        assert isinstance(entries, list) and entries, f"round {round_number}: empty ban list"
        assert "192.0.2.1" in entries
        sizes.add(len(entries))
        reloaded = BanList(path)
        reloaded.load()  # also removes the temp file a kill may have left
        assert reloaded.entries() == entries
    # The children really were writing: the list changed size between kills.
    assert len(sizes) > 3
