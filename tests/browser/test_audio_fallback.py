"""A page whose AudioContext cannot run still sends the microphone (directly, not through the
graph), says so in diagnostics, keeps mute and a zero gain working, and goes back to the graph once the
context runs. Chromium with its AudioContext held suspended by a test-side wrapper."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from ghosttalk.server.pages import STATIC_DIR
from tests.browser.conftest import TONES
from tests.support.browser.chromium import Person, join
from tests.support.browser.probes import spectrum
from tests.support.eventually import eventually_sync
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

FREQ_TOLERANCE_HZ = 15.0
LOUD_DB = -50.0
SILENT_DB = -70.0
STRINGS = {lang: json.loads((STATIC_DIR / "i18n" / f"{lang}.json").read_text()) for lang in ("en", "zh")}

# Test-side instrumentation (not a page hook): every AudioContext the page makes stays suspended, as one
# does without an output device, until the test calls __releaseAudio().
HOLD_AUDIO_JS = """
window.__holdAudio = true;
const held = [];
window.AudioContext = class extends window.AudioContext {
  constructor(options) {
    super(options);
    held.push(this);
    this.suspend();
  }
  resume() {
    return window.__holdAudio ? Promise.resolve() : super.resume();
  }
};
window.__releaseAudio = () => {
  window.__holdAudio = false;
  for (const ctx of held) ctx.resume();
};
"""


def send_path(person: Person) -> str:
    return str(person.page.get_attribute("[data-diag=audioPath]", "data-i18n"))


def level(listener: Person, speaker_id: str) -> dict[str, float]:
    return spectrum(listener, 800).get(speaker_id) or {"freq": 0.0, "db": -200.0}


def loud_tone(heard: dict[str, float], name: str) -> bool:
    return abs(heard["freq"] - TONES[name]) < FREQ_TOLERANCE_HZ and heard["db"] > LOUD_DB


@pytest.fixture
def held_pair(shared_server: ServerProcess, browsers: dict[str, Browser]) -> Iterator[tuple[Person, Person]]:
    """Ann, whose page cannot start its AudioContext, and Bob, a normal page, in one room."""
    room = f"held-{secrets.token_hex(4)}"
    ann = join(browsers["Ann"], shared_server.url, room, "Ann", init_script=HOLD_AUDIO_JS)
    bob = join(browsers["Bob"], shared_server.url, room, "Bob")
    eventually_sync(
        lambda: (ann.peer_count(), bob.peer_count()),
        15,
        what="both in the room",
        until=lambda counts: counts == (2, 2),
    )
    yield ann, bob
    for person in (ann, bob):
        person.context.close()


def test_suspended_context_sends_the_microphone_directly(held_pair: tuple[Person, Person]) -> None:
    ann, bob = held_pair
    ann_id = bob.peer_ids()["Ann"]
    eventually_sync(
        lambda: level(bob, ann_id),
        10,
        what="Bob hears Ann's tone although her graph is stopped",
        until=lambda heard: loud_tone(heard, "Ann"),
    )
    assert ann.page.evaluate("window.__pc.getSenders()[0].track.readyState") == "live"
    assert send_path(ann) == "diag_path_direct"
    # Said in the person's language, and again in the other one after a switch.
    for lang in ("en", "zh"):
        ann.page.select_option("#lang-select", lang)
        expected = STRINGS[lang]["diag_path_direct"].replace("{state}", "suspended")
        eventually_sync(
            lambda: ann.page.text_content("[data-diag=audioPath]"),
            5,
            what=f"direct path in {lang}",
            until=lambda text, expected=expected: text == expected,
        )
    assert ann.errors == [] and bob.errors == []


def test_mute_and_zero_gain_silence_the_direct_path(held_pair: tuple[Person, Person]) -> None:
    ann, bob = held_pair
    ann_id = bob.peer_ids()["Ann"]
    eventually_sync(lambda: level(bob, ann_id), 10, what="Ann audible", until=lambda h: loud_tone(h, "Ann"))
    assert send_path(ann) == "diag_path_direct"

    ann.page.click("#btn-mute")
    eventually_sync(lambda: level(bob, ann_id)["db"], 5, what="Ann silent while muted", until=lambda db: db < SILENT_DB)
    ann.page.click("#btn-mute")
    eventually_sync(lambda: level(bob, ann_id), 5, what="Ann back after unmute", until=lambda h: loud_tone(h, "Ann"))

    set_gain = (
        "(value) => { const el = document.getElementById('mic-gain'); el.value = value; "
        "el.dispatchEvent(new Event('input')); }"
    )
    ann.page.evaluate(set_gain, "0")
    eventually_sync(lambda: level(bob, ann_id)["db"], 5, what="Ann silent at gain 0", until=lambda db: db < SILENT_DB)
    ann.page.evaluate(set_gain, "100")
    eventually_sync(lambda: level(bob, ann_id), 5, what="Ann back at gain 100", until=lambda h: loud_tone(h, "Ann"))


def test_back_to_the_graph_once_the_context_runs(held_pair: tuple[Person, Person]) -> None:
    ann, bob = held_pair
    ann_id = bob.peer_ids()["Ann"]
    eventually_sync(lambda: send_path(ann), 5, what="direct path", until=lambda path: path == "diag_path_direct")
    direct = ann.page.evaluate("window.__pc.getSenders()[0].track.id")

    ann.page.evaluate("window.__releaseAudio()")
    eventually_sync(
        lambda: send_path(ann),
        5,
        what="graph path after the context runs",
        until=lambda path: path == "diag_path_graph",
    )
    # The sender's track is replaced once the graph's track exists (replaceTrack resolves after the path shows).
    eventually_sync(
        lambda: ann.page.evaluate("window.__pc.getSenders()[0].track.id"), 5, what="the graph's track is sent",
        until=lambda track: track != direct,
    )
    eventually_sync(
        lambda: level(bob, ann_id),
        10,
        what="Bob hears Ann through her graph",
        until=lambda heard: loud_tone(heard, "Ann"),
    )
    assert ann.errors == [] and bob.errors == []
