"""Push-to-talk and the speaking threshold, Mixer settings of the room page: with push-to-talk on, a listener
receives the page's voice only while Space (or the on-screen button) is held and sees the speaker muted
otherwise; Space typed into the chat talks not; the person's own Mute stays theirs; the threshold is drawn on
the microphone meter, and both settings are there again on the next visit, in either language."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import numpy as np
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from ghosttalk.client.audio import OpusStreamDecoder
from ghosttalk.client.participant import Client
from tests.support.browser.probes import PC_PROBE_JS
from tests.support.eventually import eventually_sync
from tests.support.headless import HeadlessPeople
from tests.support.server import ROOT, ServerProcess

pytestmark = pytest.mark.browser

STRINGS = {lang: json.loads((ROOT / "web" / "static" / "i18n" / f"{lang}.json").read_text()) for lang in ("en", "zh")}
# The fake microphone's tone arrives far above this; a microphone that sends nothing decodes to silence.
VOICE_DB = -40.0
SILENCE_DB = -70.0



@pytest.fixture
def context(browser: Browser, server: ServerProcess) -> Iterator[BrowserContext]:
    """One person's browser profile for one test: what it remembers survives a reload, not the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["microphone"], origin=server.url)
    context.add_init_script(PC_PROBE_JS)
    yield context
    context.close()


def enter(
    context: BrowserContext, server: ServerProcess, room: str, name: str = "Ann", page: Page | None = None
) -> Page:
    page = page or context.new_page()
    page.goto(f"{server.url}/r/{room}")
    page.wait_for_selector("html[data-ready='true']")
    page.fill("#nickname", name)
    page.click("#btn-join")
    page.wait_for_selector("#room-view:not(.hidden)")
    page.wait_for_selector("#people-list .person.is-self")
    return page


def self_id(page: Page) -> str:
    return str(page.get_attribute("#people-list .person.is-self", "data-peer-id"))


def turn_on_push_to_talk(page: Page) -> None:
    page.click("#btn-mixer")
    page.check("#ptt-toggle")
    page.click("[data-close-panel='mixer-panel']")
    page.wait_for_selector("#ptt-bar:not(.hidden)")


def level_db(listener: Client, speaker: str, since: float) -> float:
    """dBFS of what ``listener`` received from ``speaker`` since ``since`` (time.time()), decoded afresh."""
    packets = [p for p in list(listener.received.get(speaker, [])) if p.arrival >= since]
    decoder = OpusStreamDecoder()
    for packet in packets:
        decoder.decode(packet.payload, packet.timestamp)
    pcm = decoder.pcm().astype(np.float64) / 32768
    rms = float(np.sqrt(np.mean(pcm**2))) if pcm.size else 0.0
    return 20 * np.log10(rms) if rms > 0 else -200.0


def recent_level(listener: Client, speaker: str, seconds: float = 0.5) -> float:
    return level_db(listener, speaker, time.time() - seconds)


def mark_at(page: Page) -> float:
    """Where the threshold's mark sits along the microphone meter, 0 (left end) to 1 (right end), as drawn."""
    return float(
        page.evaluate(
            """() => {
            const meter = document.getElementById('mic-meter').getBoundingClientRect();
            const mark = document.getElementById('mic-threshold').getBoundingClientRect();
            return (mark.left + mark.width / 2 - meter.left) / meter.width;
        }"""
        )
    )


def seen_muted(listener: Client, speaker: str) -> bool | None:
    peer = listener.peers.get(speaker)
    return None if peer is None else peer.muted


def test_the_listener_gets_the_voice_only_while_space_is_held(
    context: BrowserContext, server: ServerProcess, headless: HeadlessPeople
) -> None:
    listener = headless.join("ptt-space", "Lis")
    page = enter(context, server, "ptt-space")
    ann = self_id(page)
    # Without push-to-talk the microphone is open: the tone arrives (the measurement works).
    eventually_sync(lambda: recent_level(listener, ann), 15, until=lambda db: db > VOICE_DB, what="Ann's voice")
    assert seen_muted(listener, ann) is False

    turn_on_push_to_talk(page)
    eventually_sync(lambda: seen_muted(listener, ann), 5, what="Ann seen muted while Space is released")
    # What was in flight when push-to-talk came on has arrived by now; from here on, silence.
    eventually_sync(lambda: recent_level(listener, ann), 5, until=lambda db: db < SILENCE_DB, what="silence")
    assert page.inner_text("#btn-talk .ptt-label") == STRINGS["en"]["ptt_hold"]

    # The focus is on the Mixer button (where closing the panel left it): Space talks, it clicks nothing.
    for _ in range(2):
        page.keyboard.down("Space")
        eventually_sync(lambda: seen_muted(listener, ann) is False, 5, what="Ann unmuted while Space is held")
        eventually_sync(lambda: recent_level(listener, ann), 5, until=lambda db: db > VOICE_DB, what="voice")
        assert page.get_attribute("#btn-talk", "aria-pressed") == "true"
        assert page.inner_text("#btn-talk .ptt-label") == STRINGS["en"]["ptt_talking"]
        page.keyboard.up("Space")
        eventually_sync(lambda: seen_muted(listener, ann), 5, what="Ann muted again after Space is let go")
        eventually_sync(lambda: recent_level(listener, ann), 5, until=lambda db: db < SILENCE_DB, what="silence")
    assert page.is_hidden("#mixer-panel"), "Space did not press the focused Mixer button"

    # Another window takes the focus while Space is down: the page never sees it let go, and stops anyway.
    page.keyboard.down("Space")
    eventually_sync(lambda: seen_muted(listener, ann) is False, 5, what="Ann talking")
    page.evaluate("window.dispatchEvent(new FocusEvent('blur'))")
    eventually_sync(lambda: seen_muted(listener, ann), 5, what="Ann muted once the page lost the focus")
    page.keyboard.up("Space")


def test_space_in_the_chat_and_the_own_mute_do_not_talk(
    context: BrowserContext, server: ServerProcess, headless: HeadlessPeople
) -> None:
    listener = headless.join("ptt-chat", "Lis")
    page = enter(context, server, "ptt-chat")
    ann = self_id(page)
    turn_on_push_to_talk(page)
    eventually_sync(lambda: seen_muted(listener, ann), 5, what="Ann seen muted")

    page.click("#btn-chat")
    page.click("#chat-input")
    page.keyboard.type("hi there")
    page.keyboard.down("Space")
    # Deliberately let time pass: nothing may start talking while Space is held in the chat field.
    time.sleep(1.0)
    assert seen_muted(listener, ann) is True
    assert recent_level(listener, ann, 0.8) < SILENCE_DB
    page.keyboard.up("Space")
    assert page.input_value("#chat-input") == "hi there "

    # Muted by the person's own choice, holding the talk button does not unmute them.
    page.keyboard.press("Escape")
    page.click("#btn-mute")
    assert page.get_attribute("#btn-mute", "aria-pressed") == "true"
    page.hover("#btn-talk")
    page.mouse.down()
    assert page.inner_text("#btn-talk .ptt-label") == STRINGS["en"]["ptt_muted"]
    time.sleep(1.0)  # deliberately: the voice must not arrive while held
    assert seen_muted(listener, ann) is True
    assert recent_level(listener, ann, 0.8) < SILENCE_DB
    page.mouse.up()
    # Unmuted again, the on-screen button talks while held and stops when let go.
    page.click("#btn-mute")
    page.hover("#btn-talk")
    page.mouse.down()
    eventually_sync(lambda: seen_muted(listener, ann) is False, 5, what="Ann talking with the button held")
    eventually_sync(lambda: recent_level(listener, ann), 5, until=lambda db: db > VOICE_DB, what="voice")
    page.mouse.up()
    eventually_sync(lambda: seen_muted(listener, ann), 5, what="Ann muted after the button is let go")

    # A touch the browser takes over (a scroll, a system gesture) ends in pointercancel: that stops talking too.
    page.hover("#btn-talk")
    page.mouse.down()
    eventually_sync(lambda: seen_muted(listener, ann) is False, 5, what="Ann talking with the button held")
    page.dispatch_event("#btn-talk", "pointercancel")
    eventually_sync(lambda: seen_muted(listener, ann), 5, what="Ann muted after pointercancel")
    page.mouse.up()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_settings_are_remembered_and_the_threshold_is_on_the_meter(
    context: BrowserContext, server: ServerProcess, lang: str
) -> None:
    context.add_init_script(f"localStorage.setItem('ghosttalk.lang', JSON.stringify('{lang}'))")
    page = enter(context, server, f"ptt-prefs-{lang}")
    page.click("#btn-mixer")
    strings = STRINGS[lang]
    assert page.inner_text("label[for='vad-threshold'] span") == strings["vad_threshold"]
    assert page.inner_text("label:has(#ptt-toggle)").strip() == strings["ptt_setting"]
    assert page.inner_text("#ptt-hint") == strings["ptt_setting_hint"]
    # The default threshold, -48 dBFS, is a fifth of the way along the meter's -60..0 dBFS.
    assert mark_at(page) == pytest.approx(0.2, abs=0.01)
    page.fill("#vad-threshold", "-30")
    assert page.inner_text("#vad-threshold-out") == "-30 dB"
    assert mark_at(page) == pytest.approx(0.5, abs=0.01)
    page.check("#ptt-toggle")

    page.reload()
    enter(context, server, f"ptt-prefs-{lang}", page=page)
    page.click("#btn-mixer")
    assert page.input_value("#vad-threshold") == "-30"
    assert mark_at(page) == pytest.approx(0.5, abs=0.01)
    assert page.is_checked("#ptt-toggle")
    assert page.is_visible("#btn-talk")
    assert page.inner_text("#btn-talk .ptt-label") == strings["ptt_hold"]
    # The meter shows the tone past the mark (the -30 dBFS threshold), and so does the person's own tile.
    eventually_sync(lambda: page.is_visible("#mic-meter.is-voice"), 5, what="the level past the mark")
