"""The admin panel in the language the other pages use: chosen there, it is what the panel shows, every
string of the panel's own included; its own selector switches back and is remembered."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Browser, Page

from ghosttalk.client.participant import JoinError
from tests.browser.test_admin_cluster import cluster_answers
from tests.support.eventually import eventually_sync
from tests.support.headless import HeadlessPeople
from tests.support.server import ROOT, ServerProcess

pytestmark = pytest.mark.browser

ROOM = "fangjian"
I18N = ROOT / "web" / "static" / "i18n"

# What the page shows that is not the panel's words: names, ids, addresses, the server's own log lines, and
# the language selector's options (each in its own language).
DATA = "#events, .mono, td.name, .room-name, footer, #lang-select"


@pytest.fixture(autouse=True)
def a_commit_that_reads_like_a_number_of_days(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set before the test's server starts: a commit hash is data, not a word. '0d31523' once read as the
    English "{n}d" (days) to the check for untranslated text."""
    monkeypatch.setenv("GHOSTTALK_COMMIT", "0d31523")


def english_words() -> list[re.Pattern[str]]:
    """The panel's English strings that Chinese says otherwise, as patterns: a {placeholder} matches a number
    (what most hold), or any word for the few that hold text."""
    english, chinese = (json.loads((I18N / f"{lang}.json").read_text()) for lang in ("en", "zh"))
    patterns = []
    for key, text in english.items():
        if key.startswith("admin_") and text != chinese[key]:
            pattern = re.sub(
                r"\\\{(\w+)\\\}",
                lambda name: r"\S+" if name[1] in ("reason", "time", "ip", "peer") else r"\d+",
                re.escape(text),
            )
            patterns.append(re.compile(r"(?<![A-Za-z0-9])" + pattern + r"(?![A-Za-z])"))
    return patterns


def panel_words(page: Page) -> str:
    """The text the panel shows, placeholders and the page title included, with the data left out."""
    return str(
        page.evaluate(
            """(data) => {
                const copy = document.body.cloneNode(true);
                for (const node of copy.querySelectorAll(data)) node.remove();
                const hints = [...document.querySelectorAll('[placeholder]')].map((node) => node.placeholder);
                return [document.title, copy.innerText, ...hints].join('\\n');
            }""",
            DATA,
        )
    )


def test_the_panel_speaks_the_language_chosen_on_the_other_pages(
    browser: Browser, server: ServerProcess, headless: HeadlessPeople
) -> None:
    headless.join(ROOM, "安")
    muted = headless.join(ROOM, "猫")
    headless.mute(muted, True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        # Chosen once on the landing page, kept for every page.
        page.goto(f"{server.url}/")
        page.wait_for_selector("html[data-ready='true']")
        page.select_option("#lang-select", "zh")
        page.wait_for_selector("html[lang='zh-CN']")

        page.goto(f"{server.url}/admin#key={server.admin_key}")
        page.wait_for_selector("#status:has-text('更新于')")
        row = f"#rooms article[data-room='{ROOM}'] tr:has(td.name:text-is('猫'))"
        eventually_sync(lambda: page.text_content(f"{row} td:nth-child(4)"), 10, what="猫 muted", until="已静音".__eq__)
        assert page.input_value("#lang-select") == "zh"
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        assert page.title() == "GhostTalk 管理"
        assert page.inner_text("h1") == "GhostTalk 管理"
        # The sign-in form's heading and a cluster's Nodes are hidden.
        headings = page.eval_on_selector_all(
            "h2", "nodes => nodes.filter(n => n.checkVisibility()).map(n => n.textContent)"
        )
        assert headings == ["服务器", "房间", "封禁", "最近事件"]
        assert "2 人" in page.inner_text(f"#rooms article[data-room='{ROOM}'] h3")
        assert "未加密" in page.inner_text(f"#rooms article[data-room='{ROOM}'] h3")
        assert page.inner_text(f"{row} button[data-action='kick']") == "踢出"
        assert "麦克风" in page.inner_text("#rooms thead")
        words = panel_words(page)
        leftovers = [found[0] for pattern in english_words() if (found := pattern.search(words))]
        assert leftovers == [], (leftovers, words)

        # What the panel says after an action, and when the server refuses one.
        page.click(f"{row} button[data-action='kick']")
        page.wait_for_selector("#message:has-text('已踢出')")
        page.fill("#ban-ip", "not-an-address")
        page.click("#ban-form button[type='submit']")
        page.wait_for_selector("#message.error:has-text('服务器拒绝了')")

        # The panel's own selector switches everything back at once, and the other pages follow it.
        page.select_option("#lang-select", "en")
        page.wait_for_selector("h1:text-is('GhostTalk admin')")
        assert page.inner_text(f"#rooms article[data-room='{ROOM}'] button[data-action='kick']") == "Kick"
        assert page.inner_text("#message").startswith("The server refused")
        assert page.evaluate("localStorage.getItem('ghosttalk.lang')") == '"en"'
    finally:
        context.close()


def test_the_host_the_lock_and_the_lobby_in_chinese(
    browser: Browser, server: ServerProcess, headless: HeadlessPeople
) -> None:
    host = headless.join(ROOM, "安")
    headless.join(ROOM, "猫")
    headless.lock(host, True)
    _, joins = headless.knock(ROOM, "丹")
    room = f"#rooms article[data-room='{ROOM}']"
    waiting = f"{room} .lobby tr[data-waiting]:has(td.name:text-is('丹'))"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.add_init_script("localStorage.setItem('ghosttalk.lang', JSON.stringify('zh'))")
        page.goto(f"{server.url}/admin#key={server.admin_key}")
        page.wait_for_selector(waiting, timeout=10_000)
        assert page.inner_text(f"{room} h3 .badge.locked") == "已锁定"
        assert page.inner_text(f"{room} tr:has(td.name:text-is('安')) .host-mark") == "主持人"
        assert page.locator(f"{room} .host-mark").count() == 1
        assert page.get_by_role("cell", name="安 主持人", exact=True).count() == 1
        assert page.inner_text(f"{room} .lobby h4") == "在等候室等待"
        heads = page.eval_on_selector_all(f"{room} .lobby th", "nodes => nodes.map(n => n.textContent)")
        assert heads == ["昵称", "地址", "已等待", "操作"]
        assert re.fullmatch(r"(\d+分 )?\d+秒", page.text_content(f"{waiting} td:nth-child(3)") or "")
        assert page.locator(f"{waiting} button").all_inner_texts() == ["踢出", "封禁地址", "封禁 /24"]
        words = panel_words(page)
        leftovers = [found[0] for pattern in english_words() if (found := pattern.search(words))]
        assert leftovers == [], (leftovers, words)

        page.click(f"{waiting} button[data-action='kick']")
        page.wait_for_selector("#message:has-text('已踢出')")
        page.wait_for_selector(f"{room} .lobby", state="detached", timeout=10_000)
        with pytest.raises(JoinError, match="removed by the operator"):
            joins.result(timeout=10)
    finally:
        context.close()


def test_a_clusters_nodes_in_chinese(browser: Browser, server: ServerProcess, headless: HeadlessPeople) -> None:
    """The cluster's parts of the panel (its answers faked in every state worth a word: a node cut off from
    Redis and draining, one gone quiet, rooms missing) say nothing in English either."""
    headless.join(ROOM, "安")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route(re.compile(r"/admin\?action="), cluster_answers)
    try:
        page = context.new_page()
        page.add_init_script("localStorage.setItem('ghosttalk.lang', JSON.stringify('zh'))")
        page.goto(f"{server.url}/admin#key={server.admin_key}")
        page.wait_for_selector(f"#rooms article[data-room='{ROOM}'] .room-node")
        page.wait_for_selector("#nodes tr[data-node='b']")
        assert page.inner_text("#nodes-title") == "节点"
        assert page.inner_text("#nodes tr[data-node='a'] td:nth-child(2)") == "排空中"
        stale = page.inner_text("#nodes tr[data-node='b'] td:nth-child(2)")
        assert stale == "失联\N{FULLWIDTH COLON}4 秒前最后一次更新"
        assert page.inner_text(f"#rooms article[data-room='{ROOM}'] .room-node") == "节点 a"
        assert page.is_visible("#redis-warning") and page.is_visible("#rooms-partial")
        assert page.is_visible("#events-node")
        words = panel_words(page)
        leftovers = [found[0] for pattern in english_words() if (found := pattern.search(words))]
        assert leftovers == [], (leftovers, words)
    finally:
        context.close()
