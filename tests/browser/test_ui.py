"""What a person sees before and around the call: landing, links, bad rooms, languages, and the
plain explanations when no microphone can be had (refused, missing, insecure origin)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Playwright

from ghosttalk.server.pages import STATIC_DIR
from tests.support.browser.chromium import CHROMIUM_FLAGS, Person, chromium_path, join, open_page
from tests.support.browser.probes import PEOPLE_COUNT_JS
from tests.support.eventually import eventually_sync
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

STRINGS = {lang: json.loads((STATIC_DIR / "i18n" / f"{lang}.json").read_text()) for lang in ("en", "zh")}
FAKE_MEDIA = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")


@pytest.fixture(scope="module")
def bare(pw: Playwright) -> Iterator[dict[str, Browser]]:
    """Chromium whose microphone prompt is not auto-accepted: "mic" has a fake microphone, "none" has no
    audio device at all. `insecure.test` is loopback over plain HTTP, which is not a secure context."""
    plain = [f for f in CHROMIUM_FLAGS if f not in FAKE_MEDIA] + ["--host-resolver-rules=MAP insecure.test 127.0.0.1"]
    browsers = {
        "mic": pw.chromium.launch(executable_path=chromium_path(), args=[*plain, "--use-fake-device-for-media-stream"]),
        "none": pw.chromium.launch(executable_path=chromium_path(), args=plain),
    }
    yield browsers
    for browser in browsers.values():
        browser.close()


def no_errors(*people: Person) -> None:
    for person in people:
        assert person.errors == [], f"{person.name}: {person.errors}"


def test_create_a_room_and_open_a_pasted_link(shared_server: ServerProcess, browsers: dict[str, Browser]) -> None:
    person = open_page(browsers["Ann"], f"{shared_server.url}/", "landing")
    page = person.page
    rooms = set()
    # A room is end-to-end encrypted unless asked otherwise: its key is the link's fragment.
    for button, link in (
        ("#btn-create", r"/r/[A-Za-z0-9_-]{22}#[A-Za-z0-9_-]{22}$"),
        ("#btn-create", r"/r/[A-Za-z0-9_-]{22}#[A-Za-z0-9_-]{22}$"),
        ("#btn-create-plain", r"/r/[A-Za-z0-9_-]{22}$"),
    ):
        page.click(button)
        page.wait_for_url(re.compile(link))
        rooms.add(urlsplit(page.url).path)
        page.wait_for_selector("#btn-join:not([disabled])")
        page.go_back()
        page.wait_for_selector("html[data-ready='true']")
    assert len(rooms) == 3  # 128 random bits each time

    page.fill("#room-link", "not a link!")
    page.click("#open-form button[type=submit]")
    assert page.is_visible("#open-error")
    page.fill("#room-link", f"  {shared_server.url}/r/pasted_Room-1  ")
    page.click("#open-form button[type=submit]")
    page.wait_for_url(f"{shared_server.url}/r/pasted_Room-1")
    assert page.inner_text("#join-title") == "pasted_Room-1"
    no_errors(person)
    person.context.close()


def test_invalid_room_link_gets_a_clear_page(shared_server: ServerProcess, browsers: dict[str, Browser]) -> None:
    person = open_page(browsers["Ann"], f"{shared_server.url}/r/{'x' * 65}", "bad room")
    assert person.page.inner_text("#error-title") == STRINGS["en"]["bad_room_title"]
    assert person.page.is_visible("a[href='/']")
    # The browser reports the 400 status itself; nothing else may complain.
    assert [e for e in person.errors if "status of 400" not in e] == []
    person.context.close()


def visible_strings(person: Person) -> dict[str, str]:
    """key -> shown text of every translated element, including attributes."""
    return dict(
        person.page.evaluate(
            """() => {
              const out = [];
              for (const el of document.querySelectorAll('[data-i18n]')) {
                if (!el.closest('template')) out.push([el.dataset.i18n, el.textContent]);
              }
              for (const el of document.querySelectorAll('[data-i18n-attr]')) {
                for (const pair of el.dataset.i18nAttr.split(';')) {
                  const [attr, key] = pair.split(':');
                  out.push([key, el.getAttribute(attr)]);
                }
              }
              return out;
            }"""
        )
    )


def test_language_follows_the_browser_and_can_be_switched(
    shared_server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    context = browsers["Ann"].new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(f"{shared_server.url}/r/lang-room")
    page.wait_for_selector("html[data-ready='true']")
    person = Person(name="zh", page=page, context=context)
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    shown = visible_strings(person)
    assert len(shown) > 40
    for key, text in shown.items():
        expected = STRINGS["zh"][key].replace("{room}", "lang-room")
        assert text == expected, key
    assert page.title() == "lang-room · GhostTalk"

    page.select_option("#lang-select", "en")
    eventually_sync(lambda: page.evaluate("document.documentElement.lang") == "en", 5, what="English")
    assert page.inner_text("#btn-join") == "Join"
    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    assert page.inner_text("#btn-join") == "Join", "the chosen language is remembered"
    context.close()


def test_nickname_is_checked_and_remembered(shared_server: ServerProcess, browsers: dict[str, Browser]) -> None:
    person = open_page(browsers["Ann"], f"{shared_server.url}/r/nick-room", "nick")
    page = person.page
    page.fill("#nickname", "   ")
    page.click("#btn-join")
    assert page.inner_text("#join-error") == STRINGS["en"]["err_name_empty"]
    assert "hidden" in (page.get_attribute("#room-view", "class") or "")
    page.fill("#nickname", " 小明 ")
    page.click("#btn-join")
    page.wait_for_selector("#room-view:not(.hidden)")
    eventually_sync(lambda: page.evaluate(PEOPLE_COUNT_JS) == 1, 10, what="in the room")
    assert page.inner_text(".person.is-self .person-name") == "小明"
    page.click("#btn-leave")
    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    assert page.input_value("#nickname") == "小明"
    no_errors(person)
    person.context.close()


def join_error(browser: Browser, url: str, grant: bool) -> tuple[Person, str]:
    context = browser.new_context()
    if grant:
        context.grant_permissions(["microphone"])
    page = context.new_page()
    person = Person(name="nomic", page=page, context=context)
    page.on("console", lambda m: person.errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("html[data-ready='true']")
    page.fill("#nickname", "Zoe")
    page.click("#btn-join")
    page.wait_for_selector("#join-error:not(.hidden)")
    return person, str(page.get_attribute("#join-error", "data-i18n"))


@pytest.mark.parametrize(
    ("device", "grant", "host", "expected"),
    [
        ("mic", False, "127.0.0.1", "err_mic_denied"),  # headless Chromium refuses an unanswered prompt
        ("none", True, "127.0.0.1", "err_mic_missing"),
        ("mic", True, "insecure.test", "err_insecure"),
    ],
)
def test_no_microphone_is_explained(
    shared_server: ServerProcess, bare: dict[str, Browser], device: str, grant: bool, host: str, expected: str
) -> None:
    person, key = join_error(bare[device], f"http://{host}:{shared_server.port}/r/no-mic", grant)
    assert key == expected
    assert person.page.inner_text("#join-error") == STRINGS["en"][expected]
    assert person.page.is_enabled("#btn-join"), "the person can try again"
    # Over plain HTTP the browser itself notes that it ignores the server's COOP header; that is not ours.
    person.errors[:] = [e for e in person.errors if "Cross-Origin-Opener-Policy" not in e]
    no_errors(person)
    person.context.close()


def test_copy_invite_link(shared_server: ServerProcess, browsers: dict[str, Browser]) -> None:
    person = join(browsers["Ann"], shared_server.url, "copy-room", "Ann")
    page = person.page
    page.click("#btn-copy")
    # The clipboard write is asynchronous and the label reverts after 2 s: poll on every frame in between.
    page.wait_for_function(
        "expected => document.querySelector('#btn-copy').innerText.trim() === expected",
        arg=STRINGS["en"]["copied"], timeout=5000,
    )
    assert page.is_visible("#status")
    assert page.evaluate("navigator.clipboard.readText()") == f"{shared_server.url}/r/copy-room"
    page.click("#btn-signal")
    assert page.is_visible("#diag-panel")
    eventually_sync(lambda: page.inner_text("[data-diag=ice]") == "connected", 10, what="ICE connected")
    page.click("#btn-copy-diag")
    report = page.evaluate("navigator.clipboard.readText()")
    assert "ICE: connected" in report and "WebSocket: open" in report
    no_errors(person)
    person.context.close()
