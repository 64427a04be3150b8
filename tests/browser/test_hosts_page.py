"""The room's host as people see it in the page: the crown, the host's menu (remove, ask to mute, make host), the
lock and its lobby (admit, decline, a newcomer's wait), the role passing on when the host leaves and surviving
the host's reload, and what a person sent away can do next."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from ghosttalk.server.pages import STATIC_DIR
from tests.browser.conftest import TONES
from tests.support.browser.chromium import Person, join, open_page
from tests.support.browser.probes import heard_tones
from tests.support.eventually import eventually_sync
from tests.support.headless import HeadlessPeople
from tests.support.server import ROOT, ServerProcess

pytestmark = pytest.mark.browser

STRINGS = {lang: json.loads((STATIC_DIR / "i18n" / f"{lang}.json").read_text()) for lang in ("en", "zh")}
FREQ_TOLERANCE_HZ = 15.0
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"  # installed by scripts/check-js.sh


@pytest.fixture
def headless(shared_server: ServerProcess) -> Iterator[HeadlessPeople]:
    with HeadlessPeople(shared_server.url).running() as people:
        yield people


@pytest.fixture
def pages() -> Iterator[list[Person]]:
    """Pages opened by a test, closed after it (passing or not)."""
    opened: list[Person] = []
    yield opened
    for person in opened:
        person.context.close()


def enter(browser: Browser, url: str, room: str, name: str, pages: list[Person], present: int) -> Person:
    """``name`` joins ``room`` and sees ``present`` people there (themselves included)."""
    person = join(browser, url, room, name)
    pages.append(person)
    eventually_sync(lambda: person.peer_count() == present, 10, what=f"{name} in the room with {present - 1} more")
    return person


def crowned(person: Person) -> list[str]:
    """Peer ids whose list row and tile both show the crown, on this page."""
    return list(person.page.evaluate("""() => [...document.querySelectorAll('#people-list .person')]
        .filter((row) => row.querySelector('.crown').checkVisibility()
          && document.querySelector(`#grid .tile[data-peer-id='${row.dataset.peerId}'] .crown`).checkVisibility())
        .map((row) => row.dataset.peerId)"""))


def menu_button(person: Person, peer_id: str) -> str:
    return f"#people-list .person[data-peer-id='{peer_id}'] .person-menu"


def host_act(host: Person, peer_id: str, act: str) -> None:
    """The host opens the person's menu and picks an action (confirming when the page asks)."""
    page = host.page
    page.click(menu_button(host, peer_id))
    page.click(f"#host-menu [data-act={act}]")
    if act in ("remove", "hand_over"):
        page.wait_for_selector("#host-confirm[open]")
        page.click("#host-confirm-ok")


def set_language(page: Page, lang: str) -> None:
    page.select_option("#lang-select", lang)
    page.wait_for_function("(lang) => document.documentElement.lang.startsWith(lang)", arg=lang)


def knock(browser: Browser, url: str, name: str, lang: str = "en") -> Person:
    """A newcomer presses Join in a locked room (the room view shows, then the wait)."""
    person = open_page(browser, url, name)
    set_language(person.page, lang)
    person.page.fill("#nickname", name)
    person.page.click("#btn-join")
    person.page.wait_for_selector("#lobby-wait:not(.hidden)", timeout=10_000)
    return person


def test_the_host_has_a_crown_for_everyone_and_removes_someone(
    shared_server: ServerProcess, browsers: dict[str, Browser], pages: list[Person]
) -> None:
    url = shared_server.url
    ann = enter(browsers["Ann"], url, "crown", "Ann", pages, 1)
    bob = open_page(browsers["Bob"], f"{url}/r/crown", "Bob")
    pages.append(bob)
    set_language(bob.page, "zh")
    bob.page.fill("#nickname", "Bob")
    bob.page.click("#btn-join")
    eventually_sync(lambda: ann.peer_count() == 2 and bob.peer_count() == 2, 10, what="both in the room")
    ann_id = ann.self_id()
    bob_id = bob.self_id()
    for person in (ann, bob):
        eventually_sync(
            lambda p=person: crowned(p), 10, what=f"{person.name}: the crown", until=lambda c: c == [ann_id]
        )
    # The crown is named for screen readers, in each page's language.
    assert ann.page.get_attribute(f"#grid .tile[data-peer-id='{ann_id}'] .crown", "aria-label") == "Host"
    assert bob.page.get_attribute(f"#grid .tile[data-peer-id='{ann_id}'] .crown", "aria-label") == "主持人"
    # Only the host gets a menu, and only on the others; it is named after the person.
    assert ann.page.is_visible(menu_button(ann, bob_id))
    assert ann.page.is_hidden(menu_button(ann, ann_id))
    assert bob.page.is_hidden(menu_button(bob, ann_id))
    assert ann.page.get_attribute(menu_button(ann, bob_id), "aria-label") == "Host actions for Bob"

    # The menu works from the keyboard: Enter opens it on its first item, Escape closes it back to the button.
    ann.page.focus(menu_button(ann, bob_id))
    ann.page.keyboard.press("Enter")
    ann.page.wait_for_selector("#host-menu:not(.hidden)")
    assert ann.page.evaluate("document.activeElement.dataset.act") == "ask_mute"
    ann.page.keyboard.press("ArrowUp")
    assert ann.page.evaluate("document.activeElement.dataset.act") == "remove"
    ann.page.keyboard.press("Escape")
    assert ann.page.is_hidden("#host-menu")
    assert ann.page.evaluate("document.activeElement.classList.contains('person-menu')")
    assert ann.page.is_visible("#room-view")

    # Removing asks first; "Cancel" keeps Bob in.
    ann.page.click(menu_button(ann, bob_id))
    ann.page.click("#host-menu [data-act=remove]")
    assert "Bob" in ann.page.inner_text("#host-confirm-text")
    ann.page.click("#host-confirm button[value=cancel]")
    assert bob.peer_count() == 2
    host_act(ann, bob_id, "remove")
    bob.page.wait_for_selector("#join-error[data-i18n='err_removed']", state="visible", timeout=10_000)
    assert bob.page.inner_text("#join-error") == STRINGS["zh"]["err_removed"]
    assert bob.page.inner_text("#btn-rejoin") == STRINGS["zh"]["people_join_again"]
    assert bob.page.is_visible("#btn-new-room")
    assert bob.page.is_hidden("#btn-join")  # one way back in, not two
    eventually_sync(lambda: ann.peer_count() == 1, 10, what="Bob gone from Ann's page")

    # "Join again" reloads the same link; Bob's nickname is remembered and Join brings him back.
    bob.page.click("#btn-rejoin")
    bob.page.wait_for_selector("html[data-ready='true']")
    assert bob.page.url == f"{url}/r/crown"
    assert bob.page.is_hidden("#fatal-actions")
    assert bob.page.input_value("#nickname") == "Bob"
    bob.page.click("#btn-join")
    eventually_sync(lambda: ann.peer_count() == 2, 10, what="Bob back in Ann's room")
    assert ann.errors == [] and bob.errors == [], (ann.errors, bob.errors)


def test_a_locked_room_lobby_admit_and_decline(
    shared_server: ServerProcess, browsers: dict[str, Browser], pages: list[Person]
) -> None:
    url = shared_server.url
    ann = join(browsers["Ann"], url, "lobby", "Ann")
    pages.append(ann)
    ann.page.wait_for_selector("#btn-lock:not(.hidden)", timeout=10_000)
    assert ann.page.inner_text("#btn-lock") == "Lock room"
    ann.page.click("#btn-lock")
    ann.page.wait_for_selector("#lock-badge:not(.hidden)", timeout=5000)
    assert ann.page.inner_text("#btn-lock") == "Unlock room"

    cat = knock(browsers["Cat"], f"{url}/r/lobby", "Cat", "zh")
    pages.append(cat)
    assert cat.page.inner_text("#lobby-wait-text") == STRINGS["zh"]["lobby_waiting"]
    assert cat.page.get_attribute("#status", "data-i18n") != "connecting"
    assert cat.page.is_visible("#btn-lobby-leave")
    # The host sees who waits, with a cue, and admits them: they come in and hear the room.
    ann.page.wait_for_selector("#lobby:not(.hidden) .lobby-entry", timeout=10_000)
    assert ann.page.inner_text("#lobby .lobby-name") == "Cat"
    assert ann.page.inner_text("#status") == "Cat is waiting to join."
    ann.page.get_by_role("button", name="Admit Cat").click()
    cat.page.wait_for_selector("#lobby-wait", state="hidden", timeout=10_000)
    eventually_sync(lambda: ann.peer_count() == 2 and cat.peer_count() == 2, 10, what="Cat in the room")
    ann.page.wait_for_selector("#lobby", state="hidden")
    # Everyone sees the lock; only the host may change it.
    assert cat.page.is_visible("#lock-badge") and cat.page.is_hidden("#btn-lock")
    ann_id = ann.self_id()
    eventually_sync(
        lambda: heard_tones(cat, 600).get(ann_id, 0.0), 15, what="Cat hears Ann",
        until=lambda hz: abs(hz - TONES["Ann"]) < FREQ_TOLERANCE_HZ,
    )

    bob = knock(browsers["Bob"], f"{url}/r/lobby", "Bob")
    pages.append(bob)
    ann.page.get_by_role("button", name="Decline Bob").click()
    bob.page.wait_for_selector("#join-error[data-i18n='err_declined']", state="visible", timeout=10_000)
    assert bob.page.inner_text("#join-error") == STRINGS["en"]["err_declined"]
    # Declined: coming back makes no sense, a room of one's own does (of the same kind: this one is plain).
    assert bob.page.is_hidden("#btn-rejoin")
    bob.page.click("#btn-new-room")
    bob.page.wait_for_url(re.compile(r"/r/[A-Za-z0-9_-]{22}$"))
    assert ann.peer_count() == 2


def test_the_next_host_inherits_the_lobby_and_is_asked_nothing_when_alone(
    shared_server: ServerProcess, browsers: dict[str, Browser], pages: list[Person]
) -> None:
    url = shared_server.url
    ann = enter(browsers["Ann"], url, "inherit", "Ann", pages, 1)
    bob = enter(browsers["Bob"], url, "inherit", "Bob", pages, 2)
    ann.page.click("#btn-lock")
    cat = knock(browsers["Cat"], f"{url}/r/inherit", "Cat")
    pages.append(cat)
    ann.page.wait_for_selector("#lobby .lobby-entry", timeout=10_000)
    assert bob.page.is_hidden("#lobby")  # only the host sees the lobby
    token_key = "ghosttalk.host.inherit"
    assert ann.page.evaluate("(key) => sessionStorage.getItem(key)", token_key)

    ann.page.click("#btn-leave")
    ann.page.click("#btn-leave-confirm")
    ann.page.wait_for_selector("#join-view:not(.hidden)")
    # Leaving on purpose gives the role up for good: the tab forgets its token.
    assert ann.page.evaluate("(key) => sessionStorage.getItem(key)", token_key) is None
    bob_id = bob.self_id()
    eventually_sync(lambda: crowned(bob), 10, what="the crown on Bob", until=lambda c: c == [bob_id])
    bob.page.wait_for_selector("#lobby:not(.hidden) .lobby-entry", timeout=10_000)
    assert bob.page.is_visible("#btn-lock")
    assert bob.page.get_attribute("#status", "data-i18n") in ("host_you_are_host", "lobby_knock")
    bob.page.get_by_role("button", name="Admit Cat").click()
    eventually_sync(lambda: cat.peer_count() == 2, 10, what="Cat let in by Bob")
    eventually_sync(lambda: crowned(cat), 10, what="Cat sees Bob's crown", until=lambda c: c == [bob_id])


def test_asked_to_mute_and_handed_the_role(
    shared_server: ServerProcess, browsers: dict[str, Browser], pages: list[Person]
) -> None:
    url = shared_server.url
    ann = enter(browsers["Ann"], url, "askmute", "Ann", pages, 1)
    bob = join(browsers["Bob"], url, "askmute", "Bob")
    pages.append(bob)
    eventually_sync(lambda: ann.peer_count() == 2, 10, what="Bob in the room")
    bob_id = bob.self_id()
    host_act(ann, bob_id, "ask_mute")
    bob.page.wait_for_selector("#mute-ask:not(.hidden)", timeout=10_000)
    assert bob.page.inner_text("#mute-ask-text") == STRINGS["en"]["host_mute_request"]
    assert bob.page.get_attribute("#btn-mute", "aria-pressed") == "false"  # asking mutes nobody
    bob.page.click("#btn-mute-ask")
    assert bob.page.get_attribute("#btn-mute", "aria-pressed") == "true"
    assert bob.page.is_hidden("#mute-ask")
    ann.page.wait_for_selector(f"#people-list .person.is-muted[data-peer-id='{bob_id}']", timeout=5000)
    # Nobody unmutes another: the host's menu has no such item, and asking a muted person is not offered.
    ann.page.click(menu_button(ann, bob_id))
    assert ann.page.is_hidden("#host-menu [data-act=ask_mute]")
    ann.page.keyboard.press("Escape")

    host_act(ann, bob_id, "hand_over")
    eventually_sync(lambda: crowned(ann), 10, what="the crown handed to Bob", until=lambda c: c == [bob_id])
    bob.page.wait_for_selector("#btn-lock:not(.hidden)", timeout=5000)
    assert ann.page.is_hidden("#btn-lock")
    assert ann.page.is_hidden(menu_button(ann, bob_id))


def test_a_host_page_that_reloads_is_host_again(
    shared_server: ServerProcess, browsers: dict[str, Browser], pages: list[Person], headless: HeadlessPeople
) -> None:
    url = shared_server.url
    ann = enter(browsers["Ann"], url, "reload", "Ann", pages, 1)
    bob = headless.join("reload", "Bob")
    first_id = ann.self_id()
    assert bob.host == first_id
    ann.page.reload()
    ann.page.wait_for_selector("html[data-ready='true']")
    ann.page.click("#btn-join")
    eventually_sync(lambda: ann.peer_count() == 2, 10, what="Ann back")
    new_id = ann.self_id()
    assert new_id != first_id
    eventually_sync(lambda: bob.host, 10, what="the role back with Ann", until=lambda host: host == new_id)
    eventually_sync(lambda: crowned(ann), 10, what="Ann's crown", until=lambda c: c == [new_id])
    assert ann.page.is_visible("#btn-lock")
    # The proof is in the tab alone: never in the link.
    assert ann.page.url == f"{url}/r/reload"
    assert ann.page.evaluate("sessionStorage.getItem('ghosttalk.host.reload')")


def test_a_full_room_and_a_lobby_wait_that_ran_out_offer_a_way_on(
    tmp_path: Path, browsers: dict[str, Browser], pages: list[Person]
) -> None:
    small = ServerProcess(tmp_path / "data", extra_args=["--max-room-peers", "1", "--lobby-wait", "1"]).start()
    try:
        with HeadlessPeople(small.url).running() as people:
            ann = people.join("small", "Ann")
            people.run(ann.lock(True))
            people.run(ann.wait_for(lambda: ann.locked))
            # Both wait for nobody: the lobby gives up after --lobby-wait; then a room of one, already full.
            cat = knock(browsers["Cat"], f"{small.url}/r/small", "Cat")
            pages.append(cat)
            cat.page.wait_for_selector("#join-error[data-i18n='err_lobby_timeout']", state="visible", timeout=10_000)
            assert cat.page.is_visible("#btn-rejoin") and cat.page.is_visible("#btn-new-room")
            people.run(ann.lock(False))
            people.run(ann.wait_for(lambda: not ann.locked))
            cat.page.click("#btn-rejoin")
            cat.page.wait_for_selector("html[data-ready='true']")
            cat.page.click("#btn-join")
            cat.page.wait_for_selector("#join-error[data-i18n='err_room_full']", state="visible", timeout=10_000)
            assert cat.page.is_visible("#btn-rejoin") and cat.page.is_visible("#btn-new-room")
            cat.page.click("#btn-new-room")
            cat.page.wait_for_url(re.compile(r"/r/[A-Za-z0-9_-]{22}$"))
            cat.page.wait_for_selector("html[data-ready='true']")
            cat.page.click("#btn-join")
            eventually_sync(lambda: cat.peer_count() == 1, 10, what="Cat alone in a room of her own")
    finally:
        small.stop()


def axe_findings(page: Page, where: str) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line per element."""
    if not page.evaluate("Boolean(window.axe)"):
        page.add_script_tag(path=AXE)
    found = page.evaluate("""async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
        .filter((v) => ['serious', 'critical'].includes(v.impact))
        .flatMap((v) => v.nodes.map((node) => `${v.id}: ${v.help} at ${JSON.stringify(node.target)}`))""")
    return [f"{where}: {line}" for line in found]


def test_axe_finds_nothing_serious_in_the_hosts_views(
    shared_server: ServerProcess, browsers: dict[str, Browser], pages: list[Person], headless: HeadlessPeople
) -> None:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run scripts/check-js.sh, which installs web/package-lock.json")
    url = shared_server.url

    def axe_page(browser: Browser, name: str) -> Person:
        # axe comes in as an inline <script>, which the page's script policy ('self' only) would refuse.
        context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
        context.grant_permissions(["microphone"], origin=url)
        person = Person(name=name, page=context.new_page(), context=context)
        pages.append(person)
        person.page.goto(f"{url}/r/axe")
        person.page.wait_for_selector("html[data-ready='true']")
        person.page.fill("#nickname", name)
        person.page.click("#btn-join")
        return person

    ann = axe_page(browsers["Ann"], "Ann")
    eventually_sync(lambda: ann.peer_count() == 1, 10, what="Ann in the room")
    bob = headless.join("axe", "Bob")
    ann.page.click("#btn-lock")
    cat = axe_page(browsers["Cat"], "Cat")
    cat.page.wait_for_selector("#lobby-wait:not(.hidden)", timeout=10_000)
    ann.page.wait_for_selector("#lobby .lobby-entry", timeout=10_000)
    found = axe_findings(ann.page, "host with a lobby") + axe_findings(cat.page, "waiting in the lobby")
    assert bob.self_id is not None
    ann.page.click(menu_button(ann, bob.self_id))
    found += axe_findings(ann.page, "host menu open")
    ann.page.click("#host-menu [data-act=remove]")
    ann.page.wait_for_selector("#host-confirm[open]")
    found += axe_findings(ann.page, "asked to confirm")
    ann.page.keyboard.press("Escape")
    ann.page.get_by_role("button", name="Decline Cat").click()
    cat.page.wait_for_selector("#fatal-actions:not(.hidden)", timeout=10_000)
    found += axe_findings(cat.page, "declined")
    assert found == []
