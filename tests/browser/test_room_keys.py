"""The room from the keyboard: after Join the focus is on the room's controls; Escape closes the Mixer and the
Diagnostics panel from wherever the focus is inside them and gives the focus back to the button that opened
them; Leave asks first (in the page's language) only while others are in the room."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.support.eventually import eventually_sync
from tests.support.headless import HeadlessPeople
from tests.support.server import ROOT, ServerProcess

pytestmark = pytest.mark.browser

STRINGS = {lang: json.loads((ROOT / "web" / "static" / "i18n" / f"{lang}.json").read_text()) for lang in ("en", "zh")}
FOCUSED_ID = "document.activeElement ? document.activeElement.id : ''"
DIALOG_CLOSED = "!document.getElementById('leave-dialog').open"



@pytest.fixture
def context(browser: Browser, server: ServerProcess) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["microphone"], origin=server.url)
    yield context
    context.close()


def enter(context: BrowserContext, server: ServerProcess, room: str, lang: str = "en") -> Page:
    context.add_init_script(f"localStorage.setItem('ghosttalk.lang', JSON.stringify('{lang}'))")
    page = context.new_page()
    page.goto(f"{server.url}/r/{room}")
    page.wait_for_selector("html[data-ready='true']")
    page.fill("#nickname", "Bob")
    # As a keyboard user joins: Enter in the nickname field.
    page.press("#nickname", "Enter")
    page.wait_for_selector("#room-view:not(.hidden)")
    page.wait_for_selector("#people-list .person.is-self")
    return page


def test_focus_lands_on_the_controls_after_join(context: BrowserContext, server: ServerProcess) -> None:
    page = enter(context, server, "keys-focus")
    assert page.evaluate("!!document.activeElement.closest('nav.controls')"), page.evaluate(FOCUSED_ID)
    assert page.evaluate(FOCUSED_ID) == "btn-mute"


@pytest.mark.parametrize(
    ("panel", "opener", "inside"),
    [
        ("mixer-panel", "btn-mixer", "#mic-gain"),
        ("mixer-panel", "btn-mixer", "#input-device"),
        ("diag-panel", "btn-signal", "#btn-copy-diag"),
    ],
)
def test_escape_closes_the_panel_the_focus_is_in(
    context: BrowserContext, server: ServerProcess, panel: str, opener: str, inside: str
) -> None:
    page = enter(context, server, f"keys-{panel}")
    page.click(f"#{opener}")
    page.wait_for_selector(f"#{panel}:not(.hidden)")
    page.focus(inside)
    page.keyboard.press("Escape")
    assert page.is_hidden(f"#{panel}")
    assert page.get_attribute(f"#{opener}", "aria-expanded") == "false"
    assert page.evaluate(FOCUSED_ID) == opener


def test_leave_alone_is_at_once(context: BrowserContext, server: ServerProcess) -> None:
    page = enter(context, server, "keys-alone")
    page.click("#btn-leave")
    page.wait_for_selector("#join-view:not(.hidden)", timeout=10_000)
    assert not page.evaluate("document.getElementById('leave-dialog').open")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_leave_with_others_asks_first(
    context: BrowserContext, server: ServerProcess, headless: HeadlessPeople, lang: str
) -> None:
    room = f"keys-leave-{lang}"
    other = headless.join(room, "Cat")
    page = enter(context, server, room, lang)
    page.wait_for_selector("#people-list .person:not(.is-self)")
    strings = STRINGS[lang]

    # Escape keeps the person in, and the focus goes back to Leave.
    page.click("#btn-leave")
    page.wait_for_selector("#leave-dialog[open]", timeout=10_000)
    assert page.inner_text("#leave-title") == strings["leave_title"]
    assert page.inner_text("#leave-text") == strings["leave_others"].replace("{count}", "1")
    assert page.inner_text("#btn-leave-stay") == strings["leave_stay"]
    assert page.inner_text("#btn-leave-confirm") == strings["leave_confirm"]
    assert page.evaluate(FOCUSED_ID) == "btn-leave-stay", "the safe choice has the focus"
    page.keyboard.press("Escape")
    page.wait_for_function(DIALOG_CLOSED)
    assert page.is_visible("#room-view")
    eventually_sync(lambda: page.evaluate(FOCUSED_ID), 5, until=lambda f: f == "btn-leave", what="focus on Leave")

    # So does Stay.
    page.click("#btn-leave")
    page.click("#btn-leave-stay")
    page.wait_for_function(DIALOG_CLOSED)
    assert page.is_visible("#room-view")
    assert len(other.peers) == 2

    # Leave leaves: the others see it.
    page.click("#btn-leave")
    page.click("#btn-leave-confirm")
    page.wait_for_selector("#join-view:not(.hidden)", timeout=10_000)
    eventually_sync(lambda: len(other.peers), 5, until=lambda n: n == 1, what="the page gone from the room")
