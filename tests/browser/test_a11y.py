"""Accessibility: axe-core (web/node_modules, installed from web/package-lock.json by scripts/check-js.sh) finds
no serious or critical violation on the landing page, the bad-link page, the room page (the join form; in the
room with someone else: the host's menu, muted, with the Mixer, the Chat and the Diagnostics open) and the
admin panel (sign-in, refusal, the panel with a room in light and dark, wide and phone-sized), in English and
Chinese; and the text on the coloured controls and on every avatar colour the page can make reaches WCAG AA
contrast (4.5:1)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.support.eventually import eventually_sync
from tests.support.headless import HeadlessPeople
from tests.support.server import ROOT, ServerProcess

pytestmark = pytest.mark.browser

AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
LOCALES = {"en": "en-US", "zh": "zh-CN"}
AA_TEXT = 4.5

# axe's findings, one line per element: rule id, impact, what the rule asks, and the element's selector.
AXE_RUN_JS = """async (blocking) => {
  const result = await window.axe.run(document, { resultTypes: ['violations'] });
  return result.violations.filter((v) => blocking.includes(v.impact)).flatMap((v) =>
    v.nodes.map((node) => `${v.id} (${v.impact}): ${v.help} at ${JSON.stringify(node.target)}`));
}"""

# The sRGB colour of a text node's element and of the first opaque background behind it, each resolved by
# painting it on a canvas, whatever notation the computed style uses.
COLOURS_JS = """
window.__rgb = (css) => {
  const canvas = window.__canvas || (window.__canvas = document.createElement('canvas'));
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.clearRect(0, 0, 1, 1);
  ctx.fillStyle = css;
  ctx.fillRect(0, 0, 1, 1);
  return [...ctx.getImageData(0, 0, 1, 1).data];
};
window.__textColours = (el) => {
  let back = el;
  while (back && window.__rgb(getComputedStyle(back).backgroundColor)[3] === 0) back = back.parentElement;
  return {
    text: window.__rgb(getComputedStyle(el).color),
    background: window.__rgb(back ? getComputedStyle(back).backgroundColor : 'white'),
  };
};
"""

# Text on the coloured controls, each in the state that colours it: Leave, Unmute (after a click on Mute), the
# open Mixer's button, and Invite once it says "Copied" (for two seconds: measured as soon as it does).
CONTROLS_JS = """async () => {
  const label = (id) => window.__textColours(document.querySelector(`#${id} .ctl-label`));
  const click = (id) => document.getElementById(id).click();
  const found = { 'Leave': label('btn-leave') };
  click('btn-mute');
  found['Unmute'] = label('btn-mute');
  click('btn-mixer');
  found['Mixer, open'] = label('btn-mixer');
  click('btn-copy');
  const copy = document.getElementById('btn-copy');
  const deadline = performance.now() + 5000;
  while (!copy.classList.contains('is-done')) {
    if (performance.now() > deadline) throw new Error('Invite never said Copied');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  found['Invite, copied'] = label('btn-copy');
  return found;
}"""

# Every avatar colour: ui.js sets --hue to hueOf(peer id), an integer hash modulo 360, on each tile and list row.
AVATAR_COLOURS_JS = """async () => {
  const { hueOf } = await import('/static/js/ui.js');
  const hues = new Set(['', 'a', 'peer-1', 'zzzzzzzz', '安'].map(hueOf));
  const rows = [...document.querySelectorAll('#grid .tile, #people-list .person')];
  const found = [];
  for (let hue = 0; hue < 360; hue += 1) {
    for (const row of rows) {
      row.style.setProperty('--hue', String(hue));
      const colours = window.__textColours(row.querySelector('.initials'));
      found.push({ hue, where: row.className, ...colours });
    }
  }
  return { hues: [...hues], found };
}"""



@pytest.fixture(params=["en", "zh"])
def lang(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def context(browser: Browser, server: ServerProcess, lang: str) -> Iterator[BrowserContext]:
    # axe comes in as an inline <script>, which the pages' script policy ('self' only) would block.
    ctx = browser.new_context(locale=LOCALES[lang], bypass_csp=True, viewport={"width": 1280, "height": 900})
    ctx.grant_permissions(["microphone"], origin=server.url)
    try:
        yield ctx
    finally:
        ctx.close()


def axe_violations(page: Page, where: str) -> list[str]:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run scripts/check-js.sh, which installs web/package-lock.json")
    if not page.evaluate("Boolean(window.axe)"):
        page.add_script_tag(path=AXE)
    return [f"{where}: {line}" for line in page.evaluate(AXE_RUN_JS, list(BLOCKING))]


def open_in(context: BrowserContext, url: str, lang: str) -> Page:
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("html[data-ready='true']")
    assert page.evaluate("document.documentElement.lang") == LOCALES[lang].replace("en-US", "en")
    return page


def join_room(page: Page, name: str) -> None:
    page.fill("#nickname", name)
    page.click("#btn-join")
    page.wait_for_selector("#room-view:not(.hidden)")


def test_axe_finds_nothing_serious_on_the_landing_and_room_pages(
    context: BrowserContext, server: ServerProcess, headless: HeadlessPeople, lang: str
) -> None:
    found: list[str] = []
    landing = open_in(context, f"{server.url}/", lang)
    found += axe_violations(landing, "landing")
    landing.fill("#room-link", "not a room link")
    landing.press("#room-link", "Enter")
    landing.wait_for_selector("#open-error:not(.hidden)")
    found += axe_violations(landing, "landing, link refused")
    found += axe_violations(open_in(context, f"{server.url}/r/no%20such%20room", lang), "bad room link")

    room = f"a11y-{lang}"
    page = open_in(context, f"{server.url}/r/{room}", lang)
    found += axe_violations(page, "join form")
    # Ann first: the room's host, her page shows the host's controls on Bob's tile too.
    join_room(page, "Ann" if lang == "en" else "安娜")
    page.wait_for_selector("#grid .tile")
    headless.join(room, "Bob" if lang == "en" else "波波")
    eventually_sync(lambda: page.locator("#grid .tile").count(), 15, what="two tiles", until=(2).__eq__)
    found += axe_violations(page, "room")
    page.click("#people-list .person:not(.is-self) .person-menu")
    page.wait_for_selector("#host-menu:not(.hidden)")
    found += axe_violations(page, "room, host's menu open")
    page.keyboard.press("Escape")
    page.wait_for_selector("#host-menu", state="hidden")
    page.click("#btn-mute")
    page.click("#btn-mixer")
    page.wait_for_selector("#mixer-panel:not(.hidden)")
    found += axe_violations(page, "room, muted, Mixer open")
    page.click("#btn-chat")
    page.wait_for_selector("#chat-panel:not(.hidden)")
    page.fill("#chat-input", "hello")
    page.press("#chat-input", "Enter")
    page.wait_for_selector("#chat-log :text('hello')")
    found += axe_violations(page, "room, Chat open")
    page.click("#btn-signal")
    page.wait_for_selector("#diag-panel:not(.hidden)")
    found += axe_violations(page, "room, Diagnostics open")
    assert found == [], "\n".join(found)


def test_axe_finds_nothing_serious_on_the_admin_panel(
    context: BrowserContext, server: ServerProcess, headless: HeadlessPeople, lang: str
) -> None:
    room = f"a11y-admin-{lang}"
    headless.join(room, "Bob")
    page = context.new_page()
    page.goto(f"{server.url}/admin")
    # Once the panel has found it has no key yet and asks for one.
    page.wait_for_selector("#login:not([hidden])")
    found = axe_violations(page, "admin sign-in")
    # A wrong key first: the refusal, and a warning row in the panel's event log.
    page.fill("#login-key", "not-the-key")
    page.press("#login-key", "Enter")
    page.wait_for_selector("#login-message:not(:empty)")
    found += axe_violations(page, "admin sign-in refused")
    page.fill("#login-key", server.admin_key)
    page.press("#login-key", "Enter")
    page.wait_for_selector(f"#rooms article[data-room='{room}']")
    page.wait_for_selector("#events tr.level-warning")
    # The panel follows the system's light or dark scheme, and lays out differently on a phone.
    for scheme, width in (("light", 1280), ("dark", 1280), ("light", 390), ("dark", 390)):
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size({"width": width, "height": 900})
        found += axe_violations(page, f"admin panel, {scheme}, {width} px")
    assert found == [], "\n".join(found)


def contrast(text: list[int], background: list[int]) -> float:
    """WCAG 2 contrast ratio of two opaque sRGB colours (0..255 channels)."""

    def luminance(rgb: list[int]) -> float:
        lin = [c / 255 / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    light, dark = sorted((luminance(text), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_red_controls_and_every_avatar_colour_reach_aa_contrast(
    browser: Browser, server: ServerProcess, headless: HeadlessPeople
) -> None:
    context = browser.new_context()
    context.grant_permissions(["microphone", "clipboard-read", "clipboard-write"], origin=server.url)
    context.add_init_script(COLOURS_JS)
    try:
        page = open_in(context, f"{server.url}/r/contrast", "en")
        headless.join("contrast", "Bob")
        join_room(page, "Ann")
        eventually_sync(lambda: page.locator("#grid .tile").count(), 15, what="two tiles", until=(2).__eq__)
        low: list[str] = []
        for control, colours in page.evaluate(CONTROLS_JS).items():
            ratio = contrast(colours["text"], colours["background"])
            if ratio < AA_TEXT:
                low.append(f"{control}: {ratio:.2f}:1 (text {colours['text']} on {colours['background']})")

        avatars = page.evaluate(AVATAR_COLOURS_JS)
        assert all(isinstance(hue, int) and 0 <= hue < 360 for hue in avatars["hues"]), avatars["hues"]
        assert len(avatars["found"]) == 360 * 4  # every hue, on two tiles and two list rows
        for entry in avatars["found"]:
            ratio = contrast(entry["text"], entry["background"])
            if ratio < AA_TEXT:
                where = re.sub(r"\s+", " ", entry["where"])
                low.append(f"initials on hue {entry['hue']} ({where}): {ratio:.2f}:1")
        assert low == [], "\n".join(low)
    finally:
        context.close()
