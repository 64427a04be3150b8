"""The page's pure helpers, run in Chromium as the page loads them: room ids, pasted links, the nickname
rule, initials, and the getStats() summary behind the signal indicator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import pairwise
from random import Random
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from ghosttalk.contract import NameRefused, validate_name
from ghosttalk.contract.nickname import table
from tests.support.browser.chromium import open_page
from tests.support.server import ServerProcess

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
        assert run(page, "contract.js", "return m.ROOM_ID.test(arg);", room)
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
        ("\u3164", {"error": "err_name_invisible"}),
        ("\u115f\u1160", {"error": "err_name_invisible"}),
        ("\u2800", {"error": "err_name_invisible"}),
        ("\u200d\u200c", {"error": "err_name_chars"}),
        ("a\u2028b", {"error": "err_name_chars"}),
        ("\u2029Ann\u2028", {"name": "Ann"}),
    ],
)
def test_nickname_rule(page: Page, raw: str, expected: dict[str, str]) -> None:
    assert run(page, "join.js", "return m.checkNickname(arg);", raw) == expected


def server_verdict(code_points: list[int]) -> str:
    """What the server's validate_name says, in the page's terms: ``ok:<name>`` or the error's suffix."""
    try:
        return "ok:" + validate_name("".join(map(chr, code_points)))
    except NameRefused as refused:
        return refused.code


# The corpus travels as one JSON text each way: Playwright takes seconds to carry 100,000 small arrays.
PAGE_VERDICTS = """
const verdict = (cps) => {
  const result = m.checkNickname(String.fromCodePoint(...cps));
  return result.error ? result.error.replace('err_name_', '') : 'ok:' + result.name;
};
return JSON.stringify(JSON.parse(arg).map(verdict));
"""


def nickname_corpus() -> list[list[int]]:
    """Every BMP code point alone and between letters, both sides of every run of the shared table (the
    supplementary planes), hand-picked names, and seeded random mixes of every class with spaces at the ends.
    Code point lists rather than strings: lone surrogates survive the trip to the page."""
    rule = table()
    edges = sorted({max(0, min(0x10FFFF, start + delta)) for start in rule.starts for delta in (-1, 0, 1)})
    singles = sorted(set(range(0x10000)) | set(edges))
    corpus = [[cp] for cp in singles] + [[ord("a"), cp, ord("b")] for cp in singles]
    for text in ("Ann", "  Ann Lee  ", "小明", "😀" * 12, "😀" * 13, "e\u0301" * 6, "e\u0301" * 7, "❤\ufe0f",
                 "\u3164 \u3164", "\u2028", "\u3000x\u3000", "👩\u200d👩\u200d👧", "\ufeff", "a\u00adb"):
        corpus.append([ord(char) for char in text])
    random = Random(12)
    pool = [*edges, *(ord(c) for c in "abc 小😀"), 0x20, 0x3000, 0x09, 0x2028, 0x0301, 0x3164, 0x2800, 0x200D,
            0xD800, 0xDC00, 0xE000]
    for _ in range(3000):
        body = [random.choice(pool) for _ in range(random.randint(0, 15))]
        pad = [random.choice((0x20, 0x09, 0x3000, 0x2028, 0x0A)) for _ in range(random.randint(0, 2))]
        name = pad + body + pad[::-1]
        # A high surrogate right before a low one is one character in JavaScript but two in Python.
        if any(0xD800 <= a <= 0xDBFF and 0xDC00 <= b <= 0xDFFF for a, b in pairwise(name)):
            continue
        corpus.append(name)
    return corpus


def test_page_and_server_agree_on_every_nickname(page: Page) -> None:
    """The page's nickname rule is the server's, on every code point and a corpus of names."""
    corpus = nickname_corpus()
    page_says = json.loads(run(page, "join.js", PAGE_VERDICTS, json.dumps(corpus)))
    server_says = [server_verdict(cps) for cps in corpus]
    disagreements = [
        (f"{' '.join(f'U+{cp:04X}' for cp in cps)}", theirs, ours)
        for cps, theirs, ours in zip(corpus, page_says, server_says, strict=True)
        if theirs != ours
    ]
    assert disagreements == [], disagreements[:20]
    # The corpus exercised every verdict.
    assert {verdict.split(":")[0] for verdict in server_says} == {"ok", "empty", "long", "chars", "invisible"}


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
