"""The admin panel in Chromium shows a live room, and its kick, ban and unban work."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page

from ghosttalk.client.e2ee import new_secret
from ghosttalk.client.participant import ClientOptions, JoinError
from ghosttalk.contract import MessageType
from tests.support.browser.chromium import Person, join
from tests.support.eventually import eventually_sync
from tests.support.headless import HeadlessPeople
from tests.support.probes import levels_read
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

ROOM = "panel-room"
# Bob's page reaches the server through the default trusted proxy (loopback) claiming this address, so that
# banning it from the panel hits Bob alone.
BOB_ADDRESS = "192.0.2.77"



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


def waiting_row(name: str) -> str:
    return f"#rooms article[data-room='{ROOM}'] .lobby tr[data-waiting]:has(td.name:text-is('{name}'))"


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


def mic_shown(page: Page, name: str) -> str | None:
    return page.text_content(f"{row(page, name)} td:nth-child(4)")


def test_the_mic_column_says_muted_or_mic_on_never_speaking(
    server: ServerProcess, panel: tuple[Page, list[str]], headless: HeadlessPeople
) -> None:
    """The server knows who is muted, not who is speaking this moment: the column says no more than that."""
    page, errors = panel
    headless.join(ROOM, "Ann")
    bob = headless.join(ROOM, "Bob")
    headless.mute(bob, True)
    eventually_sync(lambda: mic_shown(page, "Bob"), 10, what="Bob shown muted", until=lambda text: text == "Muted")
    assert mic_shown(page, "Ann") == "Mic on"
    headless.mute(bob, False)
    eventually_sync(lambda: mic_shown(page, "Bob"), 10, what="Bob shown unmuted", until=lambda text: text == "Mic on")
    assert "speaking" not in page.inner_text("#rooms").lower()
    assert errors == [], errors


def test_someone_talking_does_not_redraw_the_buttons_under_the_pointer(
    server: ServerProcess, panel: tuple[Page, list[str]], headless: HeadlessPeople
) -> None:
    """The rooms API counts each audio level it reads; those counters must not replace the table every poll,
    or a click that falls on a redraw (mouse down on one button, up on its replacement) is lost."""
    page, errors = panel
    ann = headless.join(ROOM, "Ann")
    kick = f"{row(page, 'Ann')} button[data-action='kick']"
    page.wait_for_selector(kick, timeout=10_000)
    page.eval_on_selector(kick, "node => node.setAttribute('data-kept', '')")
    before = levels_read(server, ROOM)
    headless.speak(ann, 2.5)
    # A poll after the last packet: the table it gets differs from the one the button came with in the counts.
    page.wait_for_event("response", lambda response: "action=rooms" in response.url, timeout=10_000)
    assert levels_read(server, ROOM) > before, "the server read the levels"
    assert page.locator(f"{kick}[data-kept]").count() == 1, "the row was drawn again"
    assert errors == [], errors


def test_a_room_header_says_whether_the_room_is_end_to_end_encrypted(
    server: ServerProcess, panel: tuple[Page, list[str]], headless: HeadlessPeople
) -> None:
    page, errors = panel
    headless.join("sealed-room", "Ann", ClientOptions(secret=new_secret()))
    headless.join("plain-room", "Bob")
    sealed, plain = "#rooms article[data-room='sealed-room'] h3", "#rooms article[data-room='plain-room'] h3"
    page.wait_for_selector(f"{sealed}:has-text('End-to-end encrypted')", timeout=10_000)
    page.wait_for_selector(f"{plain}:has-text('Not encrypted')", timeout=10_000)
    assert "Not encrypted" not in page.inner_text(sealed)
    assert "End-to-end" not in page.inner_text(plain)
    assert errors == [], errors


def test_kick_and_ban_are_on_screen_on_a_phone(
    browser: Browser, server: ServerProcess, headless: HeadlessPeople
) -> None:
    """At 390 px every person's buttons are within the screen, with nothing to scroll sideways."""
    headless.join(ROOM, "WWWWWWWWWWWW")
    headless.join(ROOM, "安静的猫")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{server.url}/admin#key={server.admin_key}")
        page.wait_for_selector(f"{row(page, '安静的猫')}", timeout=10_000)
        page.wait_for_selector(f"{row(page, 'WWWWWWWWWWWW')}", timeout=10_000)
        buttons = page.locator("#rooms tr[data-peer] button")
        assert buttons.count() == 6  # Kick, Ban address and Ban /24 for each
        for index in range(buttons.count()):
            box = buttons.nth(index).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (index, box)
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
        page.click(f"{row(page, '安静的猫')} button[data-action='kick']")
        page.wait_for_selector(row(page, "安静的猫"), state="detached", timeout=10_000)

        # A wide screen keeps the table: one line per person under the column names.
        page.set_viewport_size({"width": 1280, "height": 900})
        assert page.is_visible("#rooms thead th:text-is('Mic')")
        name, kick = (page.locator(row(page, "WWWWWWWWWWWW")).locator(part) for part in ("td.name", "button"))
        name_box, kick_box = name.bounding_box(), kick.first.bounding_box()
        assert name_box is not None and kick_box is not None
        assert abs(name_box["y"] - kick_box["y"]) < name_box["height"], (name_box, kick_box)
    finally:
        context.close()


def test_the_panel_shows_the_host_the_lock_and_who_waits_and_kick_turns_a_waiting_person_away(
    server: ServerProcess, panel: tuple[Page, list[str]], headless: HeadlessPeople
) -> None:
    page, errors = panel
    room = f"#rooms article[data-room='{ROOM}']"
    ann = headless.join(ROOM, "Ann")
    bob = headless.join(ROOM, "Bob")
    # The first in hosts: a crown and the word, which is what a screen reader reads, on her row alone.
    page.wait_for_selector(f"{row(page, 'Ann')} td.name .host-mark:text-is('Host')", timeout=10_000)
    page.wait_for_selector(row(page, "Bob"))
    assert page.locator(f"{room} .host-mark").count() == 1
    assert page.get_attribute(f"{row(page, 'Ann')} .crown", "aria-hidden") == "true"
    assert page.get_by_role("cell", name="Ann Host", exact=True).count() == 1
    assert page.locator(f"{room} h3 .badge.locked").count() == 0 and page.locator(f"{room} .lobby").count() == 0

    # Only the host changes: the panel draws it all the same.
    headless.run(ann.host_action(MessageType.HAND_OVER, bob.self_id or ""))
    page.wait_for_selector(f"{row(page, 'Bob')} .host-mark", timeout=10_000)
    assert page.locator(f"{room} .host-mark").count() == 1

    headless.lock(bob, True)
    page.wait_for_selector(f"{room} h3 .badge.locked:text-is('Locked')", timeout=10_000)
    _, dan_joins = headless.knock(ROOM, "Dan")
    page.wait_for_selector(waiting_row("Dan"), timeout=10_000)
    assert page.inner_text(f"{room} .lobby h4") == "Waiting in the lobby"
    assert page.text_content(f"{waiting_row('Dan')} td.mono") == "127.0.0.1"
    assert page.locator(f"{room} tr[data-peer]").count() == 2, "a waiting person is not in the room"
    buttons = page.locator(f"{waiting_row('Dan')} button").all_inner_texts()
    assert buttons == ["Kick", "Ban address", "Ban /24"]

    # How long Dan has waited stays true between redraws, written in place: the buttons are not replaced.
    waited = f"{waiting_row('Dan')} td:nth-child(3)"
    first = page.text_content(waited) or ""
    assert re.fullmatch(r"(\d+m )?\d+s", first), first
    kick = f"{waiting_row('Dan')} button[data-action='kick']"
    page.eval_on_selector(kick, "node => node.setAttribute('data-kept', '')")
    eventually_sync(lambda: page.text_content(waited), 10, what="the wait counts up", until=lambda text: text != first)
    assert page.locator(f"{kick}[data-kept]").count() == 1

    dan_id = page.get_attribute(waiting_row("Dan"), "data-waiting")
    page.click(kick)
    page.wait_for_selector(f"#message:text-is('Kicked {dan_id}.')")
    with pytest.raises(JoinError, match="removed by the operator"):
        dan_joins.result(timeout=10)
    page.wait_for_selector(f"{room} .lobby", state="detached", timeout=10_000)
    eventually_sync(lambda: bob.lobby, 10, what="the host's lobby empties", until=lambda lobby: lobby == {})
    assert page.locator(f"{room} tr[data-peer]").count() == 2
    assert errors == [], errors


def test_a_waiting_persons_buttons_are_on_screen_on_a_phone(
    browser: Browser, server: ServerProcess, headless: HeadlessPeople
) -> None:
    ann = headless.join(ROOM, "Ann")
    headless.lock(ann, True)
    _, joins = headless.knock(ROOM, "WWWWWWWWWWWW")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{server.url}/admin#key={server.admin_key}")
        page.wait_for_selector(waiting_row("WWWWWWWWWWWW"), timeout=10_000)
        buttons = page.locator(f"{waiting_row('WWWWWWWWWWWW')} button")
        assert buttons.count() == 3
        for index in range(buttons.count()):
            buttons.nth(index).scroll_into_view_if_needed()
            box = buttons.nth(index).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (index, box)
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
        page.tap(f"{waiting_row('WWWWWWWWWWWW')} button[data-action='kick']")
        page.wait_for_selector(waiting_row("WWWWWWWWWWWW"), state="detached", timeout=10_000)
        with pytest.raises(JoinError, match="removed by the operator"):
            joins.result(timeout=10)
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
