"""The page and the server hold one signaling contract: the page's room-id check says what the server's says
on every code point and a corpus of ids, and the constants the page reads from contract.js (close codes,
which of them mean stay away, message types, limits) are the server's. Run in Chromium, on the modules as
the server serves them. The nickname rule's agreement is test_js_units.py's
``test_page_and_server_agree_on_every_nickname``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from random import Random
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from ghosttalk.contract import MAX_FRAME_BYTES, MAX_NAME_CHARS, ROOM_ID, STAY_AWAY, CloseCode, MessageType, is_room_id
from tests.support.browser.chromium import open_page
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(shared_server: ServerProcess, browsers: dict[str, Browser]) -> Iterator[Page]:
    person = open_page(browsers["Ann"], f"{shared_server.url}/", "contract")
    yield person.page
    assert person.errors == []
    person.context.close()


def run(page: Page, body: str, arg: Any = None) -> Any:
    return page.evaluate(
        f"async (arg) => {{ const m = await import('/static/js/contract.js'); {body} }}", arg
    )


def room_id_corpus() -> list[list[int]]:
    """Every BMP code point alone and inside an otherwise valid id, ids of every length around the limit,
    and seeded random mixes of the characters a regular expression engine could read differently (case
    folding, Unicode digits and letters, line ends, surrogates). Code point lists, as for nicknames."""
    valid = [ord(c) for c in "azAZ09_-"]
    corpus = [[cp] for cp in range(0x10000)] + [[ord("a"), cp, ord("b")] for cp in range(0x10000)]
    corpus += [[ord("x")] * length for length in (0, 1, 63, 64, 65, 200)]
    corpus += [[ord("x")] * 64 + [0x0A], [0x0A] + [ord("x")] * 3, [ord("x"), 0x0A]]
    tricky = [0x212A, 0x017F, 0x0130, 0x0131, 0x0663, 0xFF21, 0xFF10, 0x00E9, 0x2028, 0x0D, 0x0A, 0x20, 0x2F,
              0x40, 0x5B, 0x60, 0x7B, 0x2C, 0x2E, 0xD800, 0xDC00, 0x1F600, 0x10FFFF, 0x00]
    random = Random(13)
    for _ in range(3000):
        pool = valid * 4 + tricky if random.random() < 0.5 else valid
        corpus.append([random.choice(pool) for _ in range(random.randint(1, 70))])
    return corpus


def test_page_and_server_agree_on_every_room_id(page: Page) -> None:
    corpus = room_id_corpus()
    page_says = json.loads(run(
        page,
        "return JSON.stringify(JSON.parse(arg).map((cps) => m.ROOM_ID.test(String.fromCodePoint(...cps))));",
        json.dumps(corpus),
    ))
    server_says = [is_room_id("".join(map(chr, cps))) for cps in corpus]
    disagreements = [
        (" ".join(f"U+{cp:04X}" for cp in cps), theirs, ours)
        for cps, theirs, ours in zip(corpus, page_says, server_says, strict=True)
        if theirs != ours
    ]
    assert disagreements == [], disagreements[:20]
    # The corpus held both verdicts, and more than the 64 characters an id may be made of.
    assert sum(server_says) > 500 and server_says.count(False) > 0x10000


def test_the_pages_constants_are_the_servers(page: Page) -> None:
    page_has = run(
        page,
        """const rule = await import('/static/js/nickname-rule.js');
        return { roomId: m.ROOM_ID.source, flags: m.ROOM_ID.flags, nameMax: m.NAME_MAX_CHARS,
                 tableMax: rule.RULE.maxChars, frame: m.MAX_FRAME_BYTES, close: m.CLOSE,
                 stayAway: [...m.STAY_AWAY], types: m.MSG, frozen: Object.isFrozen(m.CLOSE) };""",
    )
    assert page_has == {
        "roomId": f"^{ROOM_ID.pattern}$",
        "flags": "",
        "nameMax": MAX_NAME_CHARS,
        "tableMax": MAX_NAME_CHARS,
        "frame": MAX_FRAME_BYTES,
        "close": {code.name: code.value for code in CloseCode},
        "stayAway": sorted(STAY_AWAY),
        "types": {kind.name: kind.value for kind in MessageType},
        "frozen": True,
    }
