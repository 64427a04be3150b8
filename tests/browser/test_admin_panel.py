"""The admin panel in Chromium shows a live room, and its kick, ban and unban work."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright

from tests.support.browser.chromium import Person, join, launch
from tests.support.eventually import eventually_sync
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

ROOM = "panel-room"
# Bob's page reaches the server through the default trusted proxy (loopback) claiming this address, so that
# banning it from the panel hits Bob alone.
BOB_ADDRESS = "192.0.2.77"


@pytest.fixture(scope="module")
def browser(pw: Playwright, tone_files: dict[str, Path]) -> Iterator[Browser]:
    chromium = launch(pw, tone_files["Ann"])
    yield chromium
    chromium.close()


@pytest.fixture
def panel(browser: Browser, server: ServerProcess) -> Iterator[tuple[Page, list[str]]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.goto(f"{server.url}/admin?key={server.admin_key}")
    page.wait_for_selector("#status:has-text('Updated')")
    yield page, errors
    context.close()


def row(page: Page, name: str) -> str:
    return f"#rooms article[data-room='{ROOM}'] tr:has(td.name:text-is('{name}'))"


def bans_shown(page: Page) -> list[str]:
    return [str(entry) for entry in page.eval_on_selector_all("#bans li", "items => items.map(i => i.dataset.entry)")]


def server_events(server: ServerProcess, event: str) -> list[dict[str, object]]:
    lines = (server.data_dir / "server.log").read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if entry["event"] == event]


def test_panel_shows_the_live_room_and_bans_kicks_and_unbans(
    browser: Browser, server: ServerProcess, panel: tuple[Page, list[str]]
) -> None:
    page, errors = panel
    ann = join(browser, server.url, ROOM, "Ann")
    bob = _join_as(browser, server, "Bob", BOB_ADDRESS)
    cat = join(browser, server.url, ROOM, "Cat")
    people = [ann, bob, cat]
    try:
        eventually_sync(lambda: all(p.peer_count() == 3 for p in people), 15, what="everyone sees three")

        # The live room, its people and how each connected.
        page.wait_for_selector(f"#rooms article[data-room='{ROOM}'] h3:has-text('3 people')", timeout=10_000)
        for name in ("Ann", "Bob", "Cat"):
            page.wait_for_selector(f"{row(page, name)} td:text-is('host')", timeout=15_000)
        assert page.text_content(f"{row(page, 'Bob')} td:nth-child(3)") == BOB_ADDRESS
        assert page.text_content(f"{row(page, 'Ann')} td:nth-child(3)") == "127.0.0.1"
        stats = page.inner_text("#stats")
        assert "People\n3" in stats and "host 3" in stats
        page.wait_for_selector("#events tr:has(td:text-is('ICE_CONNECTED'))")

        # Kick Cat: gone from the panel and from the others' lists.
        page.click(f"{row(page, 'Cat')} button[data-action='kick']")
        page.wait_for_selector("#message:has-text('Kicked')")
        page.wait_for_selector(row(page, "Cat"), state="detached", timeout=10_000)
        eventually_sync(lambda: "Cat" not in ann.peer_ids(), 10, what="Ann no longer lists Cat")
        # A kicked page stays out: it must not rejoin by itself as it does after a network drop.
        page.wait_for_timeout(3_000)
        cat_joins = [e for e in server_events(server, "USER_JOIN") if e["details"] == {"name": "Cat"}]
        assert len(cat_joins) == 1, "the kicked page rejoined by itself"

        # Ban Bob's address: Bob is disconnected at once, Ann stays, and Bob cannot come back.
        page.click(f"{row(page, 'Bob')} button[data-action='ban']:text-is('Ban address')")
        page.wait_for_selector(f"#message:has-text('Banned {BOB_ADDRESS}; 1 connection(s) closed.')")
        page.wait_for_selector(row(page, "Bob"), state="detached", timeout=10_000)
        eventually_sync(lambda: bans_shown(page) == [BOB_ADDRESS], 5, what="the ban is listed")
        eventually_sync(lambda: list(ann.peer_ids()) == ["Ann"], 10, what="Ann alone in the room")
        assert server_events(server, "ADMIN_BAN")[0]["ip"] == BOB_ADDRESS
        assert _join_refused(browser, server, "Bob2", BOB_ADDRESS), "a banned address cannot join again"

        # Ban a range through the form, then unban both from the list.
        page.fill("#ban-ip", "198.51.100.0/24")
        page.click("#ban-form button[type='submit']")
        eventually_sync(lambda: sorted(bans_shown(page)) == sorted([BOB_ADDRESS, "198.51.100.0/24"]), 5, what="range")
        assert page.input_value("#ban-ip") == ""
        for entry in (BOB_ADDRESS, "198.51.100.0/24"):
            page.click(f"#bans li[data-entry='{entry}'] button[data-action='unban']")
            page.wait_for_selector(f"#bans li[data-entry='{entry}']", state="detached", timeout=5_000)
        assert page.is_visible("#bans-empty")
        back = _join_as(browser, server, "Bob", BOB_ADDRESS)
        people.append(back)
        page.wait_for_selector(row(page, "Bob"), timeout=10_000)
        assert errors == [], errors
    finally:
        for person in people:
            person.context.close()


def test_panel_reports_bad_input_and_a_wrong_key(
    browser: Browser, server: ServerProcess, panel: tuple[Page, list[str]]
) -> None:
    page, errors = panel
    page.fill("#ban-ip", "not-an-address")
    page.click("#ban-form button[type='submit']")
    page.wait_for_selector("#message.error:has-text('not an IPv4 or IPv6 address')")
    assert page.input_value("#ban-ip") == "not-an-address"  # kept for the operator to correct
    assert bans_shown(page) == []
    # The only console line is Chromium's own note about the 400 answer; the panel itself raised nothing.
    assert all("400" in line and "Failed to load resource" in line for line in errors), errors

    context = browser.new_context()
    try:
        wrong = context.new_page()
        response = wrong.goto(f"{server.url}/admin?key=wrong")
        assert response is not None and response.status == 401
        assert "wrong or missing admin key" in wrong.content()
    finally:
        context.close()


def test_ban_a_prefix_from_a_row(browser: Browser, server: ServerProcess, panel: tuple[Page, list[str]]) -> None:
    """One IPv6 person holds a whole /64, so the panel bans it from the person's row."""
    page, errors = panel
    eve = _join_as(browser, server, "Eve", "2001:db8:77:1::5")
    ann = join(browser, server.url, ROOM, "Ann")
    try:
        page.wait_for_selector(f"{row(page, 'Eve')} button:text-is('Ban /64')", timeout=10_000)
        # Ann comes from 127.0.0.1: her row offers the /24 instead.
        page.wait_for_selector(f"{row(page, 'Ann')} button:text-is('Ban /24')", timeout=10_000)
        page.click(f"{row(page, 'Eve')} button:text-is('Ban /64')")
        page.wait_for_selector("#message:has-text('Banned 2001:db8:77:1::/64; 1 connection(s) closed.')")
        eventually_sync(lambda: bans_shown(page) == ["2001:db8:77:1::/64"], 5, what="the prefix ban is listed")
        page.wait_for_selector(row(page, "Eve"), state="detached", timeout=10_000)
        assert _join_refused(browser, server, "Eve2", "2001:db8:77:1:aaaa::9"), "another address of the /64"
        assert ann.peer_count() >= 1 and "Ann" in ann.peer_ids()
        assert errors == [], errors
    finally:
        eve.context.close()
        ann.context.close()


@pytest.mark.parametrize(
    ("opened_as", "left_as"),
    [("/admin?key={key}", "/admin"), ("/admin#key={key}", "/admin"), ("/admin?x=1#key={key}&y=2", "/admin?x=1#y=2")],
)
def test_the_key_leaves_the_address_bar_and_travels_in_a_header(
    browser: Browser, server: ServerProcess, opened_as: str, left_as: str
) -> None:
    """The admin key is read once from the address, then only the X-Admin-Key header carries it."""
    context = browser.new_context()
    try:
        page = context.new_page()
        requests: list[tuple[str, str | None]] = []
        page.on("request", lambda request: requests.append((request.url, request.headers.get("x-admin-key"))))
        page.goto(server.url + opened_as.format(key=server.admin_key))
        page.wait_for_selector("#status:has-text('Updated')")
        assert page.url == server.url + left_as
        api_calls = [(url, header) for url, header in requests if "action=" in url]
        assert api_calls and all(header == server.admin_key for _, header in api_calls), api_calls
        assert all(server.admin_key not in url for url, _ in api_calls)
        # The history entry was replaced, not added to: back is the blank page the tab started with, and
        # forward comes back to the panel without the key, which still works in this tab.
        requests.clear()
        page.go_back()
        assert page.url == "about:blank"
        page.go_forward()
        assert page.url == server.url + left_as
        page.wait_for_selector("#status:has-text('Updated')")
        assert requests and all(server.admin_key not in url for url, _ in requests)
        assert page.is_hidden("#login")
    finally:
        context.close()


def test_the_login_form_needs_no_key_in_any_address(browser: Browser, server: ServerProcess) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        urls: list[str] = []
        page.on("request", lambda request: urls.append(request.url))
        response = page.goto(f"{server.url}/admin")
        assert response is not None and response.status == 200
        page.wait_for_selector("#login-key")
        assert page.is_hidden("#panel")
        page.fill("#login-key", "not-the-key-at-all")
        page.click("#login-form button[type='submit']")
        page.wait_for_selector("#login-message:has-text('Wrong or missing admin key')")
        # A key pasted into the address of the open page changes only the fragment: it is taken all the same.
        page.evaluate("document.querySelector('#login-message').textContent = ''")
        page.goto(f"{server.url}/admin#key=another-wrong-key")
        page.wait_for_selector("#login-message:has-text('Wrong or missing admin key')")
        assert page.url == f"{server.url}/admin"
        page.fill("#login-key", server.admin_key)
        page.click("#login-form button[type='submit']")
        page.wait_for_selector("#status:has-text('Updated')")
        assert page.is_visible("#panel") and page.is_hidden("#login")
        assert page.url == f"{server.url}/admin"
        assert all(server.admin_key not in url for url in urls)
    finally:
        context.close()


def _open_as(browser: Browser, server: ServerProcess, name: str, address: str) -> Person:
    """A room page whose every request, the WebSocket upgrade included, carries ``X-Forwarded-For``."""
    context = browser.new_context(extra_http_headers={"X-Forwarded-For": address})
    context.grant_permissions(["microphone"], origin=server.url)
    page = context.new_page()
    person = Person(name=name, page=page, context=context)
    page.on("console", lambda message: person.errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{server.url}/r/{ROOM}")
    page.wait_for_selector("html[data-ready='true']")
    page.fill("#nickname", name)
    return person


def _join_as(browser: Browser, server: ServerProcess, name: str, address: str) -> Person:
    person = _open_as(browser, server, name, address)
    person.page.click("#btn-join")
    person.page.wait_for_selector("#room-view:not(.hidden)")
    return person


def _join_refused(browser: Browser, server: ServerProcess, name: str, address: str) -> bool:
    """Whether a page joining from ``address`` tries to open its socket and is never let in."""
    person = _open_as(browser, server, name, address)
    try:
        with person.page.expect_websocket(timeout=10_000) as attempt:
            person.page.click("#btn-join")
        assert "/ws?" in attempt.value.url
        person.page.wait_for_timeout(3_000)
        return not any(e["details"] == {"name": name} for e in server_events(server, "USER_JOIN"))
    finally:
        person.context.close()
