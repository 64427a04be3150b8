"""The page's pure helpers, run in Chromium as the page loads them: room ids, pasted links, the nickname
rule, initials, and the getStats() summary behind the signal indicator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.helpers import open_page
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(shared_server: ServerProcess, browsers: dict[str, Browser]) -> Iterator[Page]:
    person = open_page(browsers["Ann"], f"{shared_server.url}/", "units")
    yield person.page
    assert person.errors == []
    person.context.close()


def run(page: Page, module: str, body: str, arg: Any = None) -> Any:
    return page.evaluate(f"async (arg) => {{ const m = await import('/static/js/{module}'); {body} }}", arg)


def test_new_room_ids_carry_128_random_bits(page: Page) -> None:
    ids = run(page, "landing.js", "return Array.from({ length: 200 }, () => m.newRoomId());")
    assert len(set(ids)) == 200
    for room in ids:
        assert len(room) == 22  # 16 bytes in unpadded base64
        assert run(page, "landing.js", "return m.ROOM_ID.test(arg);", room)
    # Every base64url symbol turns up: the id is not drawn from a narrower alphabet.
    assert len(set("".join(ids))) == 64


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("my-room_1", "/r/my-room_1"),
        ("  http://127.0.0.1:1/r/abc  ", "http://127.0.0.1:1/r/abc"),
        ("/r/abc/", "/r/abc"),
        ("https://talk.example/r/" + "x" * 64, "https://talk.example/r/" + "x" * 64),
        ("https://talk.example/r/" + "x" * 65, None),
        ("https://talk.example/r/a b", None),
        ("https://talk.example/other/abc", None),
        ("javascript:alert(1)//r/abc", None),
        ("", None),
    ],
)
def test_pasted_links(page: Page, text: str, target: str | None) -> None:
    assert run(page, "landing.js", "return m.roomTarget(arg);", text) == target


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ann  ", {"name": "Ann"}),
        ("小明", {"name": "小明"}),
        ("😀" * 12, {"name": "😀" * 12}),  # 12 characters, 24 UTF-16 units
        ("😀" * 13, {"error": "err_name_long"}),
        ("a" * 13, {"error": "err_name_long"}),
        (" \t ", {"error": "err_name_empty"}),
        ("a\u0007b", {"error": "err_name_chars"}),
    ],
)
def test_nickname_rule(page: Page, raw: str, expected: dict[str, str]) -> None:
    assert run(page, "join.js", "return m.checkNickname(arg);", raw) == expected


@pytest.mark.parametrize(
    ("name", "initials"),
    [("ann", "AN"), ("Ann Lee", "AL"), ("张伟", "张"), ("😀x", "😀X"), ("👩‍👩‍👧 fam", "👩‍👩‍👧F"), ("  ", "?")],
)
def test_initials(page: Page, name: str, initials: str) -> None:
    assert run(page, "ui.js", "return m.initialsOf(arg);", name) == initials


def test_hue_is_stable_per_id(page: Page) -> None:
    hues = run(page, "ui.js", "return ['a', 'a', 'b', 'peer-1'].map(m.hueOf);")
    assert hues[0] == hues[1] and hues[0] != hues[2] and all(0 <= h < 360 for h in hues)


def test_stats_summary(page: Page) -> None:
    # Two getStats() snapshots two seconds apart: 98 packets arrived and 2 went missing in between.
    summary = run(
        page,
        "stats.js",
        """
        const report = (received, lost) => new Map([
          ['T', { type: 'transport', selectedCandidatePairId: 'P' }],
          ['P', { type: 'candidate-pair', localCandidateId: 'L', currentRoundTripTime: 0.042 }],
          ['L', { type: 'local-candidate', candidateType: 'relay' }],
          ['I1', { type: 'inbound-rtp', kind: 'audio', ssrc: 1, packetsReceived: received, packetsLost: lost,
                   jitter: 0.004 }],
          ['I2', { type: 'inbound-rtp', kind: 'audio', ssrc: 2, packetsReceived: 500, packetsLost: 0 }],
        ]);
        const first = m.summarize(report(100, 0), null);
        const second = m.summarize(report(198, 2), first);
        return { second: { ...second, packetsBySsrc: null }, quality: m.quality(second),
                 unknown: m.quality({ rttMs: null }) };
        """,
    )
    second = summary["second"]
    assert second["rttMs"] == 42
    assert second["lossPct"] == pytest.approx(2.0)
    assert second["jitterMs"] == 4
    assert second["candidateType"] == "relay"
    assert second["liveStreams"] == 1  # ssrc 2 did not move
    assert summary["quality"] == "fair"  # 2 % loss is no longer "good"
    assert summary["unknown"] == "unknown"
