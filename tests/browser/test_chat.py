"""The room chat in the page, against a real server: messages both ways as text only, the unread badge, the
length and rate limits the page keeps (and the server enforces), the join and leave lines each page writes,
the last 100 lines, Chinese, a phone's screen; then an end-to-end encrypted room, Chromium with Firefox, where
no WebSocket frame carries what was typed."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator
from functools import partial

import pytest
from playwright.sync_api import Browser, WebSocket, WebSocketRoute

from ghosttalk.server.pages import STATIC_DIR
from tests.support.browser.chromium import ARTIFACTS, Person, join, new_room, open_page
from tests.support.browser.firefox import Firefox, FirefoxPerson, join_firefox
from tests.support.browser.probes import PEOPLE_COUNT_JS
from tests.support.eventually import eventually_sync
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

STRINGS = {lang: json.loads((STATIC_DIR / "i18n" / f"{lang}.json").read_text()) for lang in ("en", "zh")}
EN = STRINGS["en"]

# [name, text, typed here] of every message the log shows, oldest first.
MESSAGES_JS = """() => [...document.querySelectorAll('#chat-log .chat-msg')].map((m) => [
  m.querySelector('.chat-name').textContent, m.querySelector('.chat-text').textContent, m.classList.contains('is-self'),
])"""
# Every line of the log as shown: "name text" for messages, the sentence for join and leave lines.
LOG_JS = """() => [...document.querySelectorAll('#chat-log > *')].map((e) => e.classList.contains('chat-msg')
  ? `${e.querySelector('.chat-name').textContent}: ${e.querySelector('.chat-text').textContent}` : e.textContent)"""

Message = tuple[str, str, bool]


def fill(template: str, **values: object) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", str(value))
    return template


def messages(person: Person) -> list[Message]:
    return [(str(name), str(text), bool(own)) for name, text, own in person.page.evaluate(MESSAGES_JS)]


def log_lines(person: Person) -> list[str]:
    return [str(line) for line in person.page.evaluate(LOG_JS)]


def wait_equal(read: Callable[[], object], expected: object, what: str, timeout: float = 10) -> None:
    eventually_sync(read, timeout, what=what, until=lambda seen: seen == expected)


def wait_messages(person: Person, expected: list[Message], timeout: float = 10) -> None:
    wait_equal(lambda: messages(person), expected, f"{person.name}'s chat", timeout)


def wait_count(people: list[Person], count: int) -> None:
    for person in people:
        wait_equal(partial(person.page.evaluate, PEOPLE_COUNT_JS), count, f"{person.name} lists {count}", 15)


def open_chat(person: Person) -> None:
    person.page.click("#btn-chat")
    person.page.wait_for_selector("#chat-panel:not(.hidden)")


def say(person: Person, text: str) -> None:
    """Types `text` into the chat field and presses Enter."""
    person.page.fill("#chat-input", text)
    person.page.press("#chat-input", "Enter")


def notice(person: Person) -> str:
    return str(person.page.inner_text("#chat-notice"))


def unread(person: Person) -> str | None:
    """The number on the chat button, None while its badge is hidden."""
    if "hidden" in (person.page.get_attribute("#chat-unread", "class") or "").split():
        return None
    return str(person.page.inner_text("#chat-unread-count"))


def no_errors(*people: Person) -> None:
    for person in people:
        assert person.errors == [], f"{person.name}: {person.errors}"


@pytest.fixture
def pair(shared_server: ServerProcess, browsers: dict[str, Browser]) -> Iterator[tuple[Person, Person]]:
    """Ann and Bob in a plain room of their own."""
    room = new_room("chat")
    ann = join(browsers["Ann"], shared_server.url, room, "Ann")
    bob = join(browsers["Bob"], shared_server.url, room, "Bob")
    wait_count([ann, bob], 2)
    yield ann, bob
    for person in (ann, bob):
        person.context.close()
    no_errors(ann, bob)


def test_two_pages_chat_both_ways_as_text_only(pair: tuple[Person, Person]) -> None:
    ann, bob = pair
    open_chat(ann)
    open_chat(bob)
    say(ann, "  hello Bob 👋 ")
    # Shown at once on the sender's page (the server does not echo), trimmed, and the field is emptied.
    wait_messages(ann, [("Ann", "hello Bob 👋", True)])
    assert ann.page.input_value("#chat-input") == ""
    wait_messages(bob, [("Ann", "hello Bob 👋", False)])
    assert re.fullmatch(r"\d{1,2}:\d{2}.*", bob.page.inner_text("#chat-log .chat-time")), "the time it came"

    hostile = '<img src=x onerror="document.title=\'pwned\'"><b>bold</b>'
    bob.page.fill("#chat-input", hostile)
    bob.page.click("#btn-chat-send")
    wait_messages(ann, [("Ann", "hello Bob 👋", True), ("Bob", hostile, False)])
    for person in (ann, bob):
        assert person.page.eval_on_selector_all("#chat-log img, #chat-log b", "(found) => found.length") == 0
        assert person.page.title() != "pwned"

    # Keys typed into the chat are text, not the room's shortcuts (M mutes, elsewhere on the page).
    ann.page.fill("#chat-input", "")
    ann.page.locator("#chat-input").press_sequentially("mm")
    assert ann.page.get_attribute("#btn-mute", "aria-pressed") == "false"
    assert ann.page.input_value("#chat-input") == "mm"


def test_the_unread_badge_counts_while_the_panel_is_closed(pair: tuple[Person, Person]) -> None:
    ann, bob = pair
    open_chat(ann)
    assert unread(bob) is None
    for index in range(3):
        say(ann, f"note {index}")
    wait_equal(lambda: unread(bob), "3", "Bob's unread badge")
    assert bob.page.inner_text("#chat-unread-text") == fill(EN["chat_unread"], count=3)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    bob.page.screenshot(path=str(ARTIFACTS / "chat-unread-1280x720.png"))
    open_chat(bob)
    bob.page.screenshot(path=str(ARTIFACTS / "chat-open-1280x720.png"))
    assert unread(bob) is None
    say(ann, "while open")
    wait_messages(bob, [("Ann", f"note {i}", False) for i in range(3)] + [("Ann", "while open", False)])
    assert unread(bob) is None, "nothing waits unread while the panel is open"
    bob.page.click("#chat-panel [data-close-panel]")
    bob.page.wait_for_selector("#chat-panel.hidden", state="attached")
    say(ann, "after closing")
    wait_equal(lambda: unread(bob), "1", "Bob's badge again")
    assert unread(ann) is None, "one's own messages are never unread"


def test_a_message_holds_1000_characters_counted_as_code_points(pair: tuple[Person, Person]) -> None:
    ann, bob = pair
    open_chat(ann)
    open_chat(bob)
    longest = "😀" * 1000  # 2,000 UTF-16 units: a limit counted in those would refuse it
    ann.page.fill("#chat-input", longest[:950])
    assert ann.page.inner_text("#chat-count") == fill(EN["chat_chars_left"], count=50)
    ann.page.fill("#chat-input", longest)
    assert ann.page.inner_text("#chat-count") == fill(EN["chat_chars_left"], count=0)
    ann.page.press("#chat-input", "Enter")
    wait_messages(bob, [("Ann", longest, False)])

    ann.page.fill("#chat-input", "a" * 1001)
    assert ann.page.inner_text("#chat-count") == fill(EN["chat_too_many"], count=1)
    assert ann.page.get_attribute("#chat-input", "aria-invalid") == "true"
    ann.page.press("#chat-input", "Enter")
    assert notice(ann) == fill(EN["chat_too_long"], max=1000)
    assert ann.page.input_value("#chat-input") == "a" * 1001, "what was typed stays, to be shortened"
    say(ann, "short again")
    # In order: had the 1001 characters gone out, Bob would show them before this one.
    wait_messages(bob, [("Ann", longest, False), ("Ann", "short again", False)])
    assert ann.page.inner_text("#chat-count") == ""

    # A client that skips the page's check: the server counts code points too.
    replies = bob.page.evaluate(
        """async ([room, texts]) => {
          const ws = new WebSocket(`${location.origin.replace('http', 'ws')}/ws?room=${room}&name=Eve`);
          const replies = [];
          ws.onmessage = (event) => replies.push(JSON.parse(event.data));
          await new Promise((resolve) => { ws.onopen = resolve; });
          for (const text of texts) ws.send(JSON.stringify({ type: 'chat', text }));
          for (let i = 0; i < 100 && !replies.some((r) => r.type === 'error'); i += 1) {
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          ws.close();
          return replies.filter((r) => r.type === 'error').map((r) => r.message);
        }""",
        [ann.page.url.rsplit("/", 1)[1], ["🙂" * 1001, "🙂" * 1000]],
    )
    assert any("at most 1000" in reply for reply in replies), replies
    wait_equal(lambda: messages(ann)[-1], ("Eve", "🙂" * 1000, False), "Eve's longest message")
    assert all(text != "🙂" * 1001 for _, text, _ in messages(ann))


def test_sending_too_fast_keeps_the_text_and_says_to_wait(pair: tuple[Person, Person]) -> None:
    ann, bob = pair
    open_chat(ann)
    open_chat(bob)
    # Six messages within a few milliseconds: the server lets five through at once, so the page sends five.
    ann.page.evaluate(
        """async () => {
          const input = document.getElementById('chat-input');
          for (let i = 0; i < 6; i += 1) {
            input.value = `quick ${i}`;
            input.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true }));
            await new Promise((resolve) => setTimeout(resolve, 0));
          }
        }"""
    )
    assert notice(ann) == EN["chat_wait"]
    assert ann.page.input_value("#chat-input") == "quick 5"
    # Once a second has refilled the page's allowance, Enter sends the kept text (and only then).
    def press_enter() -> str:
        ann.page.press("#chat-input", "Enter")
        return ann.page.input_value("#chat-input")

    eventually_sync(press_enter, 10, what="the sixth message goes", until=lambda value: value == "", interval=0.3)
    wait_messages(bob, [("Ann", f"quick {i}", False) for i in range(6)])


def routed_join(browser: Browser, base_url: str, room: str, name: str) -> tuple[Person, list[WebSocketRoute]]:
    """A page whose signaling socket passes through the test, which can add frames from the 'server'."""
    person = open_page(browser, f"{base_url}/r/{room}", name)
    routes: list[WebSocketRoute] = []

    def route(ws: WebSocketRoute) -> None:
        ws.connect_to_server()  # everything is passed on both ways, as without the route
        routes.append(ws)

    person.page.route_web_socket(re.compile(r"/ws\?"), route)
    person.page.fill("#nickname", name)
    person.page.click("#btn-join")
    person.page.wait_for_selector("#room-view:not(.hidden)")
    return person, routes


def test_the_page_keeps_the_last_100_lines_and_shows_the_servers_refusal(
    shared_server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    room = new_room("chat-keep")
    ann, routes = routed_join(browsers["Ann"], shared_server.url, room, "Ann")
    bob = join(browsers["Bob"], shared_server.url, room, "Bob")
    wait_count([ann, bob], 2)
    eventually_sync(lambda: routes, 5, what="Ann's socket routed")
    bob_id = bob.self_id()
    for index in range(105):
        routes[-1].send(json.dumps({"type": "chat", "from": bob_id, "text": f"line {index}"}))
    wait_equal(lambda: log_lines(ann)[-1:], ["Bob: line 104"], "the last line")
    assert log_lines(ann) == [f"Bob: line {index}" for index in range(5, 105)]
    assert unread(ann) == "99+"

    open_chat(ann)
    routes[-1].send(json.dumps({"type": "error", "message": "too many chat messages; wait a moment"}))
    wait_equal(lambda: notice(ann), EN["chat_wait"], "the server's refusal")
    routes[-1].send(json.dumps({"type": "error", "message": "a chat message cannot hold control characters"}))
    expected = fill(EN["chat_refused"], reason="a chat message cannot hold control characters")
    wait_equal(lambda: notice(ann), expected, "a refusal of another kind")
    # Sealed text means nothing in a plain room: dropped and counted, never shown.
    routes[-1].send(json.dumps({"type": "chat", "from": bob_id, "sealed": "A" * 60}))
    wait_equal(lambda: ann.page.get_attribute("#chat-log", "data-dropped"), "1", "dropped and counted")
    assert log_lines(ann)[-1] == "Bob: line 104"
    for person in (ann, bob):
        person.context.close()
    no_errors(ann, bob)


def test_join_and_leave_lines_come_from_the_page_and_the_history_outlives_a_rejoin(
    shared_server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    room = new_room("chat-lines")
    ann = join(browsers["Ann"], shared_server.url, room, "Ann")
    wait_count([ann], 1)
    open_chat(ann)
    sent: list[str] = []
    bob = open_page(browsers["Bob"], f"{shared_server.url}/r/{room}", "Bob")
    bob.page.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(str(frame))))
    bob.page.fill("#nickname", "Bob")
    bob.page.click("#btn-join")
    wait_equal(lambda: log_lines(ann), [fill(EN["chat_joined"], name="Bob")], "a join line")
    open_chat(bob)
    say(bob, "hi")
    wait_messages(ann, [("Bob", "hi", False)])
    assert log_lines(bob) == ["Bob: hi"], "no line for one's own arrival"
    bob.page.click("#btn-leave")
    bob.page.click("#btn-leave-confirm")  # Ann is still here: Leave asks first
    wait_equal(lambda: log_lines(ann)[-1], fill(EN["chat_left"], name="Bob"), "a leave line")
    assert not any("joined" in frame or "left" in frame for frame in sent), "the lines are never sent"

    # Leaving and joining again keeps what the page showed; the panel goes on working.
    bob.page.click("#btn-join")
    bob.page.wait_for_selector("#room-view:not(.hidden)")
    open_chat(bob)
    assert log_lines(bob) == ["Bob: hi"]
    say(bob, "back")
    wait_messages(bob, [("Bob", "hi", True), ("Bob", "back", True)])
    wait_messages(ann, [("Bob", "hi", False), ("Bob", "back", False)])
    for person in (ann, bob):
        person.context.close()
    no_errors(ann, bob)


def test_the_chat_in_chinese(shared_server: ServerProcess, browsers: dict[str, Browser]) -> None:
    zh = STRINGS["zh"]
    room = new_room("chat-zh")
    context = browsers["Ann"].new_context(locale="zh-CN")
    context.grant_permissions(["microphone"], origin=shared_server.url)
    page = context.new_page()
    ann = Person(name="安", page=page, context=context)
    page.on("pageerror", lambda error: ann.errors.append(str(error)))
    page.goto(f"{shared_server.url}/r/{room}")
    page.wait_for_selector("html[data-ready='true']")
    page.fill("#nickname", "安")
    page.click("#btn-join")
    wait_count([ann], 1)
    assert page.inner_text("#btn-chat .ctl-label") == zh["chat"]
    open_chat(ann)
    assert page.inner_text("#chat-title") == zh["chat"]
    assert page.get_attribute("#chat-input", "placeholder") == zh["chat_placeholder"]
    assert page.inner_text("#btn-chat-send") == zh["chat_send"]
    assert page.get_attribute("#chat-log", "aria-label") == zh["chat_log_label"]
    page.fill("#chat-input", "字" * 990)
    assert page.inner_text("#chat-count") == fill(zh["chat_chars_left"], count=10)
    bob = join(browsers["Bob"], shared_server.url, room, "Bob")
    wait_equal(lambda: log_lines(ann), [fill(zh["chat_joined"], name="Bob")], "a join line in Chinese")
    say(ann, "你好 Bob 🙂")
    wait_messages(bob, [("安", "你好 Bob 🙂", False)])
    for person in (ann, bob):
        person.context.close()
    no_errors(ann, bob)


def test_on_a_phone_the_chat_fills_the_bottom_of_the_screen_and_stays_usable(
    shared_server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    room = new_room("chat-phone")
    phone = {"width": 390, "height": 844}
    ann = join(browsers["Ann"], shared_server.url, room, "Ann", viewport=phone)
    bob = join(browsers["Bob"], shared_server.url, room, "Bob")
    wait_count([ann, bob], 2)
    button = ann.page.locator("#btn-chat").bounding_box()
    assert button is not None and button["x"] + button["width"] <= phone["width"], "the chat button is in reach"
    open_chat(ann)
    open_chat(bob)
    say(bob, "W" * 400)  # one unbroken word, wider than any phone
    for index in range(4):
        bob.page.fill("#chat-input", f"line {index}")
        bob.page.press("#chat-input", "Enter")
        wait_equal(lambda: bob.page.input_value("#chat-input"), "", "sent")
    wait_equal(lambda: len(messages(ann)), 5, "Ann got them all")

    page = ann.page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-390x844.png"))
    box = page.locator("#chat-panel").bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= phone["width"] + 0.5
    # A bottom sheet as tall as the other panels may be on a phone (three quarters of the screen).
    assert box["y"] + box["height"] <= phone["height"] + 0.5 and box["height"] >= 0.7 * phone["height"]
    for selector in ("#chat-input", "#btn-chat-send"):
        part = page.locator(selector).bounding_box()
        assert part is not None, selector
        assert part["x"] >= 0 and part["x"] + part["width"] <= phone["width"], selector
        assert box["y"] <= part["y"] and part["y"] + part["height"] <= phone["height"], selector
    sizes = page.evaluate(
        """() => { const log = document.getElementById('chat-log');
          return [document.documentElement.scrollWidth, window.innerWidth, log.scrollWidth, log.clientWidth,
                  log.scrollTop + log.clientHeight, log.scrollHeight]; }"""
    )
    page_width, inner, log_width, log_inner, seen_to, log_height = sizes
    assert page_width <= inner and log_width <= log_inner, f"overflows sideways: {sizes}"
    assert seen_to >= log_height - 2, "the newest message is in view"
    as_bob = [(name, text, name == "Bob") for name, text, _ in messages(ann)]
    say(ann, "typed on a phone")
    wait_messages(bob, [*as_bob, ("Ann", "typed on a phone", False)])
    for person in (ann, bob):
        person.context.close()
    no_errors(ann, bob)


# --- End-to-end encrypted rooms -----------------------------------------------------------------------------


def test_in_an_encrypted_room_plain_or_unreadable_messages_are_dropped_and_counted(
    shared_server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    room, secret = new_room("chat-sealed"), secrets.token_urlsafe(16)
    ann, routes = routed_join(browsers["Ann"], shared_server.url, f"{room}#{secret}", "Ann")
    bob = join(browsers["Bob"], shared_server.url, f"{room}#{secret}", "Bob")
    wait_count([ann, bob], 2)
    open_chat(ann)
    open_chat(bob)
    bob_id = bob.self_id()
    # What a server could slip in: plain text (it must never pass for a sealed message) and a sealed one
    # under another key.
    routes[-1].send(json.dumps({"type": "chat", "from": bob_id, "text": "trust me"}))
    routes[-1].send(json.dumps({"type": "chat", "from": bob_id, "sealed": "A" * 60}))
    say(bob, "sealed for real")
    wait_messages(ann, [("Bob", "sealed for real", False)])
    assert ann.page.get_attribute("#chat-log", "data-dropped") == "2"
    for person in (ann, bob):
        person.context.close()
    no_errors(ann, bob)




FIREFOX_MESSAGES_JS = f"() => ({MESSAGES_JS})()"
ENTER_KEY = "\ue007"  # WebDriver's Enter, typed by Marionette


def test_encrypted_chat_between_chromium_and_firefox_never_shows_its_text_on_the_wire(
    shared_server: ServerProcess, browsers: dict[str, Browser], firefox: Firefox
) -> None:
    secret = secrets.token_urlsafe(16)
    assert len(secret) == 22
    room = new_room("chat-e2ee")
    frames: list[str] = []

    def record(ws: WebSocket) -> None:
        ws.on("framesent", lambda frame: frames.append(str(frame)))
        ws.on("framereceived", lambda frame: frames.append(str(frame)))

    ann = open_page(browsers["Ann"], f"{shared_server.url}/r/{room}#{secret}", "Ann")
    ann.page.on("websocket", record)
    ann.page.fill("#nickname", "Ann")
    ann.page.click("#btn-join")
    ann.page.wait_for_selector("#room-view:not(.hidden)")
    fox: FirefoxPerson = join_firefox(firefox, shared_server.url, f"{room}#{secret}", "Fox", 1000.0)
    try:
        wait_count([ann], 2)
        open_chat(ann)
        fox.page.click("#btn-chat")
        fox.page.wait_for("() => !document.getElementById('chat-panel').classList.contains('hidden')", 5, "chat open")

        from_ann, from_fox = "the vault code is 0451 🔐", "meet at the <b>north</b> gate"
        say(ann, from_ann)
        eventually_sync(
            lambda: fox.page.evaluate(FIREFOX_MESSAGES_JS), 10, what="Fox reads Ann",
            until=lambda seen: seen == [["Ann", from_ann, False]],
        )
        fox.page.fill("#chat-input", from_fox + ENTER_KEY)
        wait_messages(ann, [("Ann", from_ann, True), ("Fox", from_fox, False)])
        assert fox.page.evaluate(FIREFOX_MESSAGES_JS) == [["Ann", from_ann, False], ["Fox", from_fox, True]]
    finally:
        fox.leave()
    chat_frames = [frame for frame in frames if '"chat"' in frame]
    assert len(chat_frames) == 2 and all('"sealed"' in frame for frame in chat_frames), chat_frames
    for words in ("vault", "0451", "north", "gate", "meet"):
        assert not any(words in frame for frame in frames), words
    assert ann.page.get_attribute("#chat-log", "data-dropped") is None
    ann.context.close()
    no_errors(ann)
    assert firefox.page_errors(shared_server.url) == []
