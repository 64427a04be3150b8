"""The people in the room as the page shows them: kept (marked as reconnecting) through an outage, "(you)" never
cut off on a phone, and what a screen reader hears: muted or speaking on a tile, a Mute button whose name does
not flip, the network button's figures."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Browser, Page

from ghosttalk.server.pages import STATIC_DIR
from tests.support.browser.chromium import Person, open_page
from tests.support.eventually import eventually_sync
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

STRINGS = {lang: json.loads((STATIC_DIR / "i18n" / f"{lang}.json").read_text()) for lang in ("en", "zh")}
PHONE = {"width": 390, "height": 844}


def join_in(
    browser: Browser, url: str, room: str, name: str, lang: str, viewport: dict[str, int] | None = None
) -> Person:
    person = open_page(browser, f"{url}/r/{room}", name, viewport)
    person.page.select_option("#lang-select", lang)
    person.page.wait_for_function("(lang) => document.documentElement.lang.startsWith(lang)", arg=lang)
    person.page.fill("#nickname", name)
    person.page.click("#btn-join")
    person.page.wait_for_selector("#room-view:not(.hidden)")
    return person


def reading(page: Page, selector: str) -> str:
    """What the accessibility tree holds for an element (Playwright's ARIA snapshot, names and text)."""
    return page.locator(selector).aria_snapshot()


def test_people_stay_on_screen_marked_reconnecting_during_an_outage(
    server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    ann = join_in(browsers["Ann"], server.url, "outage", "Ann", "en")
    bob = join_in(browsers["Bob"], server.url, "outage", "Bob", "zh")
    eventually_sync(lambda: ann.peer_count() == 2 and bob.peer_count() == 2, 10, what="both in the room")
    server.stop()
    for person, lang in ((ann, "en"), (bob, "zh")):
        page = person.page
        page.wait_for_selector("#status[data-i18n='reconnecting']", state="visible", timeout=5000)
        # The last known people, greyed and labelled, instead of an empty room.
        assert person.peer_count() == 2
        assert page.locator("#grid .tile.is-reconnecting").count() == 2
        label = page.locator("#grid .tile .peer-status").first
        assert label.is_visible() and label.inner_text() == STRINGS[lang]["people_reconnecting"]
        assert page.is_hidden("#volume-empty")
    server.start()
    for person in (ann, bob):
        eventually_sync(
            lambda p=person: p.page.evaluate(
                "[document.querySelectorAll('#people-list .person').length,"
                " document.querySelectorAll('.is-reconnecting').length]"
            ),
            15,
            what=f"{person.name}: both back, nobody marked reconnecting",
            until=lambda counts: counts == [2, 0],
        )
        assert person.page.is_hidden("#grid .peer-status")
    for person in (ann, bob):
        person.context.close()


@pytest.mark.parametrize(("lang", "name"), [("en", "WWWWWWWWWWWW"), ("zh", "欧阳娜娜欧阳娜娜欧阳娜娜")])
def test_a_phone_tile_keeps_you_after_a_long_name(
    shared_server: ServerProcess, browsers: dict[str, Browser], lang: str, name: str
) -> None:
    person = join_in(browsers["Ann"], shared_server.url, f"phone-{lang}", name, lang, PHONE)
    page = person.page
    eventually_sync(person.peer_count, 10, what="in the room", until=lambda n: n == 1)
    tile = "#grid .tile.is-self"
    you = page.locator(f"{tile} .tile-you")
    assert you.is_visible()
    assert you.inner_text() == STRINGS[lang]["people_you_suffix"]
    boxes = page.evaluate(
        """(tile) => {
          const box = (el) => el.getBoundingClientRect();
          const nick = document.querySelector(`${tile} .tile-nick`);
          const you = document.querySelector(`${tile} .tile-you`);
          return { tile: box(document.querySelector(tile)).right, you: box(you),
                   whole: you.scrollWidth <= you.clientWidth, cut: nick.scrollWidth > nick.clientWidth };
        }""",
        tile,
    )
    # "(you)" lies whole inside the tile; the name gives way (ellipsized) instead.
    assert boxes["whole"] and boxes["you"]["right"] <= boxes["tile"], boxes
    assert boxes["cut"], "the name should be cut short, not the suffix"
    assert person.errors == []
    person.context.close()


def test_what_a_screen_reader_hears(shared_server: ServerProcess, browsers: dict[str, Browser]) -> None:
    url = shared_server.url
    ann = join_in(browsers["Ann"], url, "a11y", "Ann", "en")
    eventually_sync(lambda: ann.peer_count() == 1, 10, what="Ann in the room")
    bob = join_in(browsers["Bob"], url, "a11y", "Bob", "zh")
    eventually_sync(lambda: ann.peer_count() == 2 and bob.peer_count() == 2, 10, what="both in the room")
    ann_id, bob_id = ann.self_id(), bob.self_id()

    # Mute keeps its name; only its pressed state changes.
    for person, lang in ((ann, "en"), (bob, "zh")):
        for pressed in ("true", "false"):
            person.page.click("#btn-mute")
            assert person.page.get_attribute("#btn-mute", "aria-pressed") == pressed
            assert person.page.get_by_role("button", name=STRINGS[lang]["mute"], exact=True).count() == 1
    bob.page.click("#btn-mute")
    # A tile says whether the person is muted, or speaking (Ann's fake microphone plays a tone).
    eventually_sync(
        lambda: reading(ann.page, f"#grid .tile[data-peer-id='{bob_id}']"), 10, what="Bob's tile reads muted",
        until=lambda text: "Bob" in text and STRINGS["en"]["people_muted_sr"] in text,
    )
    eventually_sync(
        lambda: reading(bob.page, f"#grid .tile[data-peer-id='{ann_id}']"), 10, what="Ann's tile reads speaking",
        until=lambda text: "Ann" in text
        and 'img "主持人"' in text
        and STRINGS["zh"]["people_speaking_sr"] in text
        and STRINGS["zh"]["people_muted_sr"] not in text,
    )
    # The network button is named by its figures.
    eventually_sync(
        lambda: reading(ann.page, "#btn-signal"), 15, what="the network button's name",
        until=lambda text: re.search(r'button "Network quality: \d+ ms · \d+% loss · \d+ ms jitter"', text) is not None,
    )
    for person in (ann, bob):
        assert person.errors == [], person.errors
        person.context.close()
