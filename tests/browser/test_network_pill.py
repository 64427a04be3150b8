"""The network pill (the "signal" button at the top of the room) during an outage: it shows the outage, never
the figures of the last good sample, and returns to live figures once media flows again. In English and
Chinese, with the signaling lost (server stopped) and with only the media path lost (server frozen)."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest
from playwright.sync_api import Browser

from tests.support.browser.chromium import Person, join
from tests.support.eventually import eventually_sync
from tests.support.server import ROOT, ServerProcess

pytestmark = pytest.mark.browser

STRINGS = {lang: json.loads((ROOT / "web" / "static" / "i18n" / f"{lang}.json").read_text()) for lang in ("en", "zh")}
LIVE = ("good", "fair", "poor")

# Every state the pill passes through, with the banner's message at that moment, so that a test can show
# that no live figure was ever drawn while the page said the connection was lost.
PILL_LOG_JS = """
window.__pill = [];
document.addEventListener('DOMContentLoaded', () => {
  const bars = document.getElementById('signal-bars');
  const text = document.getElementById('signal-text');
  const banner = document.getElementById('status');
  if (!bars || !text || !banner) return;
  const record = () => window.__pill.push({
    quality: bars.dataset.quality, text: text.textContent,
    banner: banner.classList.contains('hidden') ? null : banner.dataset.i18n || null,
  });
  const observer = new MutationObserver(record);
  for (const el of [bars, text, banner]) {
    observer.observe(el, { attributes: true, childList: true, characterData: true, subtree: true });
  }
});
"""



def pill(person: Person) -> tuple[str, str]:
    """The bars' quality and the pill's text."""
    return (
        str(person.page.get_attribute("#signal-bars", "data-quality")),
        person.page.inner_text("#signal-text"),
    )


def summary_pattern(lang: str) -> re.Pattern[str]:
    """The live figures ("12 ms · 0% loss · 3 ms jitter") in that language, numbers as wildcards."""
    parts = re.split(r"\{\w+\}", STRINGS[lang]["signal_summary"])
    return re.compile(r"\d+".join(re.escape(part) for part in parts))


def wait_live(person: Person, lang: str, what: str) -> None:
    figures = summary_pattern(lang)
    eventually_sync(
        lambda: pill(person),
        30,
        what=what,
        until=lambda shown: shown[0] in LIVE and figures.fullmatch(shown[1]),
        detail=lambda: f"last error {person.last_error()!r}",
    )


def wait_outage(person: Person, texts: set[str], what: str) -> None:
    eventually_sync(lambda: pill(person), 20, what=what, until=lambda shown: shown[0] == "none" and shown[1] in texts)


def figures_during_outage(person: Person) -> list[object]:
    """Entries of the pill log with live figures shown while the banner said the connection was lost."""
    log: list[dict[str, object]] = person.page.evaluate("window.__pill")
    lost = ("reconnecting", "ice_unstable")
    return [entry for entry in log if entry["banner"] in lost and entry["quality"] in LIVE]


def test_pill_shows_a_lost_server_then_live_figures(server: ServerProcess, browser: Browser) -> None:
    en = STRINGS["en"]
    ann = join(browser, server.url, "pill-restart", "Ann", init_script=PILL_LOG_JS)
    wait_live(ann, "en", "live figures before the outage")

    server.stop()
    ann.page.wait_for_selector("#status[data-i18n='reconnecting']", state="visible", timeout=10_000)
    wait_outage(ann, {en["pill_reconnecting"]}, "the pill saying the page reconnects")
    # The diagnostics panel drops the stale figures too.
    assert ann.page.inner_text("[data-diag=rtt]") == "\u2013"  # the panel's "no value" dash

    server.start()
    wait_live(ann, "en", "live figures after the server came back")
    assert figures_during_outage(ann) == []
    assert ann.page.is_hidden("#status")
    ann.context.close()


def test_pill_shows_lost_media_in_chinese(server: ServerProcess, browser: Browser) -> None:
    zh = STRINGS["zh"]
    ann = join(browser, server.url, "pill-frozen", "Ann", init_script=PILL_LOG_JS)
    ann.page.select_option("#lang-select", "zh")
    ann.page.wait_for_selector("html[lang='zh-CN']")
    wait_live(ann, "zh", "live figures in Chinese before the outage")

    # A frozen server still holds the signaling socket open (the kernel keeps its TCP alive) but answers no
    # ICE consent check: only the media path is lost.
    os.kill(server.pid, signal.SIGSTOP)
    try:
        wait_outage(ann, {zh["pill_offline"]}, "the pill saying the media is lost")
    finally:
        os.kill(server.pid, signal.SIGCONT)
    wait_live(ann, "zh", "live figures in Chinese once media flows again")
    assert figures_during_outage(ann) == []
    ann.context.close()
