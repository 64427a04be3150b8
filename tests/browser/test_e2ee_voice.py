"""End-to-end encrypted rooms in the page (docs/E2EE.md): Chromium and Firefox seal their voice in an
Encoded Transform and hear each other through a server that forwards what it cannot read; links without the
room's key, or with another, are refused with their reasons; a browser without Encoded Transform is told why
it cannot join; the secret never leaves the page; and the page derives the same keys and ciphertexts as the
headless client's Python (ghosttalk/client/e2ee.py)."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from ghosttalk.client import e2ee
from ghosttalk.server.pages import STATIC_DIR
from tests.browser.conftest import TONES
from tests.support.browser.chromium import ARTIFACTS, Person, join, new_room, open_page
from tests.support.browser.firefox import Firefox, join_firefox
from tests.support.browser.probes import PC_PROBE_JS
from tests.support.e2ee_page import (
    NO_ENCODED_TRANSFORM_JS,
    NO_SCRIPT_TRANSFORM_JS,
    InRoom,
    Outgoing,
    crypto_stats,
    mode,
    safety_code,
    shown,
    wait_count,
    wait_hears,
    wait_stats,
)
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

STRINGS = {lang: json.loads((STATIC_DIR / "i18n" / f"{lang}.json").read_text()) for lang in ("en", "zh")}
FOX_HZ = 1000.0
TONE = {**TONES, "Fox": FOX_HZ}


def refused(browser: Browser, url: str, name: str, locale: str = "en-US") -> tuple[Person, str]:
    """Opens `url`, tries to join and returns the page with the message it shows in the join form."""
    context = browser.new_context(locale=locale)
    context.grant_permissions(["microphone"], origin=url.split("/r/")[0])
    page = context.new_page()
    person = Person(name=name, page=page, context=context)
    page.on("pageerror", lambda error: person.errors.append(f"pageerror: {error}"))
    page.goto(url)
    page.wait_for_selector("html[data-ready='true']")
    page.fill("#nickname", name)
    page.click("#btn-join")
    page.wait_for_selector("#join-error:not(.hidden)", timeout=10_000)
    return person, page.inner_text("#join-error")


def transform_cost(people: list[InRoom]) -> dict[str, dict[str, float]]:
    """Microseconds per frame each page spent sealing and opening voice, from its own counts."""
    costs = {}
    for person in people:
        stats = crypto_stats(person)
        costs[person.name] = {
            "encrypt_us": stats["encryptMicros"] / stats["encrypted"],
            "decrypt_us": stats["decryptMicros"] / stats["decrypted"],
            "frames": stats["encrypted"] + stats["decrypted"],
        }
    return costs


def test_chromium_and_firefox_hear_each_other_in_an_encrypted_room(
    shared_server: ServerProcess, browsers: dict[str, Browser], firefox: Firefox
) -> None:
    room, secret = new_room("e2ee"), e2ee.new_secret()
    link = f"{room}#{secret}"
    ann = join(browsers["Ann"], shared_server.url, link, "Ann")
    bob = join(browsers["Bob"], shared_server.url, link, "Bob")
    fox = join_firefox(firefox, shared_server.url, link, "Fox", FOX_HZ)
    people: list[InRoom] = [ann, bob, fox]
    try:
        wait_count(people, 3)
        for listener in people:
            for speaker in people:
                if speaker is not listener:
                    wait_hears(listener, speaker.name, TONE[speaker.name])
        # Every page seals its own voice and opens the two others'; none failed to open one.
        for person in people:
            stats = wait_stats(person, sealed=100, opened=100)
            assert stats["failed"] == 0 and stats["replayed"] == 0, (person.name, stats)
        expected = e2ee.safety_code(room, secret)
        assert {person.name: safety_code(person) for person in people} == {
            "Ann": expected,
            "Bob": expected,
            "Fox": expected,
        }
        for person in people:
            assert mode(person) == "encrypted"
            assert shown(person, "#e2ee-state") == STRINGS["en"]["e2ee_on"]
        costs = transform_cost(people)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "e2ee-transform.json").write_text(json.dumps(costs, indent=2))
        print(f"\nvoice transform, microseconds per frame: {json.dumps(costs)}")
    finally:
        fox.leave()
        for person in (ann, bob):
            person.context.close()
    assert ann.errors == [] and bob.errors == []
    assert firefox.page_errors(shared_server.url) == []


# How many of the connection's senders and receivers carry a transform, and whether it was made for
# createEncodedStreams().
PLAIN_CONNECTION_JS = """
() => ({
  transforms: [...window.__pc.getSenders(), ...window.__pc.getReceivers()].filter((e) => e.transform).length,
  insertable: Boolean(window.__pc.getConfiguration().encodedInsertableStreams),
})
"""


def test_links_without_the_rooms_key_are_refused(shared_server: ServerProcess, browsers: dict[str, Browser]) -> None:
    room, secret = new_room("keys"), e2ee.new_secret()
    ann = join(browsers["Ann"], shared_server.url, f"{room}#{secret}", "Ann")
    try:
        wait_count([ann], 1)
        base = f"{shared_server.url}/r/{room}"
        for url, key, locale in (
            (f"{base}#{e2ee.new_secret()}", "err_key_mismatch", "en-US"),
            (base, "err_key_missing", "en-US"),
            (base, "err_key_missing", "zh-CN"),
        ):
            person, message = refused(browsers["Bob"], url, "Bob", locale)
            assert message == STRINGS[locale[:2]][key], url
            assert person.page.is_visible("#join-view") and not person.page.is_visible("#room-view")
            assert person.errors == []
            person.context.close()
        assert ann.peer_count() == 1, "nobody refused ever counted as in the room"
    finally:
        ann.context.close()

    # And the other way round: a key for a room its first person made plain.
    plain = new_room("plain")
    cat = join(browsers["Cat"], shared_server.url, plain, "Cat")
    try:
        wait_count([cat], 1)
        assert mode(cat) == "plain" and shown(cat, "#e2ee-state") == STRINGS["en"]["e2ee_off"]
        # A plain room's connection is the one from before encryption existed: no transform, no switch.
        assert cat.page.evaluate(PLAIN_CONNECTION_JS) == {"transforms": 0, "insertable": False}
        assert cat.page.inner_text("[data-diag=e2ee]") == STRINGS["en"]["diag_e2ee_off"]
        person, message = refused(browsers["Bob"], f"{shared_server.url}/r/{plain}#{secret}", "Bob")
        assert message == STRINGS["en"]["err_room_not_encrypted"]
        person.context.close()
    finally:
        cat.context.close()


def test_a_damaged_key_is_said_and_not_joined(shared_server: ServerProcess, browsers: dict[str, Browser]) -> None:
    for fragment in ("abc", "x" * 25, "a" * 21 + "!"):
        person = open_page(browsers["Ann"], f"{shared_server.url}/r/{new_room('damaged')}#{fragment}", "damaged")
        assert mode(person) == "damaged"
        assert shown(person, "#e2ee-mode") == STRINGS["en"]["e2ee_damaged"]
        assert person.page.is_disabled("#btn-join")
        assert person.errors == []
        person.context.close()


def test_the_encoded_streams_fallback_is_heard(shared_server: ServerProcess, browsers: dict[str, Browser]) -> None:
    """Chromium without RTCRtpScriptTransform seals through createEncodedStreams(); a page with it hears that."""
    link = f"{new_room('fallback')}#{e2ee.new_secret()}"
    ann = join(browsers["Ann"], shared_server.url, link, "Ann")
    cat = join(browsers["Cat"], shared_server.url, link, "Cat", init_script=NO_SCRIPT_TRANSFORM_JS)
    try:
        assert cat.page.evaluate("() => 'RTCRtpScriptTransform' in window") is False
        # The connection is made once the server's welcome has come: wait for it, then read how it was made.
        cat.page.wait_for_function("() => Boolean(window.__pc)", timeout=10_000)
        assert cat.page.evaluate("() => window.__pc.getConfiguration().encodedInsertableStreams") is True
        wait_count([ann, cat], 2)
        wait_hears(ann, "Cat", TONE["Cat"])
        wait_hears(cat, "Ann", TONE["Ann"])
        for person in (ann, cat):
            stats = wait_stats(person)
            assert stats["failed"] == 0, (person.name, stats)
        assert ann.errors == [] and cat.errors == []
    finally:
        ann.context.close()
        cat.context.close()


def test_a_browser_without_encoded_transform_is_told_why(
    shared_server: ServerProcess, browsers: dict[str, Browser]
) -> None:
    room, secret = new_room("old"), e2ee.new_secret()
    for locale in ("en-US", "zh-CN"):
        context = browsers["Bob"].new_context(locale=locale)
        context.add_init_script(NO_ENCODED_TRANSFORM_JS)
        page = context.new_page()
        page.goto(f"{shared_server.url}/r/{room}#{secret}")
        page.wait_for_selector("html[data-ready='true']")
        assert page.evaluate("() => document.getElementById('e2ee-mode').dataset.mode") == "unsupported"
        assert page.inner_text("#e2ee-mode") == STRINGS[locale[:2]]["e2ee_unsupported"]
        assert page.is_disabled("#btn-join")
        page.fill("#nickname", "Bob")
        page.press("#nickname", "Enter")
        assert page.is_visible("#join-view") and not page.is_visible("#room-view")
        context.close()
    # The same browser joins a plain room as before.
    bob = join(browsers["Bob"], shared_server.url, new_room("plain"), "Bob", init_script=NO_ENCODED_TRANSFORM_JS)
    try:
        wait_count([bob], 1)
        assert mode(bob) == "plain"
        assert bob.errors == []
    finally:
        bob.context.close()


def test_the_secret_never_leaves_the_page(shared_server: ServerProcess, browsers: dict[str, Browser]) -> None:
    """Landing -> create -> join -> talk: no request line, header or body, and no WebSocket URL or frame the
    page sends carries the secret; the server's log does not either."""
    context = browsers["Cat"].new_context()
    context.grant_permissions(["microphone", "clipboard-read", "clipboard-write"], origin=shared_server.url)
    context.add_init_script(PC_PROBE_JS)
    outgoing = Outgoing().attach(context)
    page = context.new_page()
    page.goto(f"{shared_server.url}/")
    page.wait_for_selector("html[data-ready='true']")
    page.click("#btn-create")
    page.wait_for_url(lambda url: "#" in url)
    room, secret = page.url.split("/r/", 1)[1].split("#", 1)
    assert e2ee.read_secret(secret) == secret and len(secret) == 22
    page.wait_for_selector("#btn-join:not([disabled])")
    page.fill("#nickname", "Cat")
    page.click("#btn-join")
    page.wait_for_selector("#room-view:not(.hidden)")
    cat = Person(name="Cat", page=page, context=context)
    ann = join(browsers["Ann"], shared_server.url, f"{room}#{secret}", "Ann")
    try:
        wait_count([cat, ann], 2)
        wait_hears(ann, "Cat", TONE["Cat"])
        wait_hears(cat, "Ann", TONE["Ann"])
        page.click("#btn-copy")
        page.wait_for_function("() => document.querySelector('#btn-copy').classList.contains('is-done')")
        assert page.evaluate("navigator.clipboard.readText()") == f"{shared_server.url}/r/{room}#{secret}"
    finally:
        ann.context.close()
        context.close()
    assert outgoing.containing(secret) == []
    sockets = [item for item in outgoing.sent if item.startswith("WS ")]
    assert sockets == [
        f"WS ws://127.0.0.1:{shared_server.port}/ws?room={room}&name=Cat&key_check={e2ee.key_check(room, secret)}"
    ]
    assert len(outgoing.sent) > 20  # the landing, the room, the scripts, the signaling frames
    assert outgoing.containing('"offer"'), "the recorder saw the signaling frames"
    assert outgoing.containing("eferer") == []
    assert secret not in shared_server.console()


# The page's own modules, run in the page: keys, a chat message and a voice frame each way.
AGREEMENT_JS = """
async ([room, secret, peerId, chat, frame, pyChat, pyFrame, late]) => {
  const m = await import('/static/js/e2ee.js');
  const v = await import('/static/js/voice-frames.js');
  const crypto = await m.RoomCrypto.create(room, secret);
  const base = await window.crypto.subtle.importKey('raw', m.fromBase64url(secret), 'HKDF', false,
    ['deriveBits', 'deriveKey']);
  const keys = new v.VoiceKeys(base, room);
  const sealer = new v.VoiceSealer(await keys.get(peerId), peerId);
  const opener = new v.VoiceOpener((id) => keys.get(id));
  const opened = await opener.open(m.fromBase64url(pyFrame).buffer);
  const tampered = m.fromBase64url(pyFrame);
  tampered[tampered.length - 1] ^= 1;
  // Frames 299, 48, 49, 0, 49 and 299 of one sender: the window reaches 250 behind the newest opened, and a
  // frame opened once is a replay the second time.
  const watcher = new v.VoiceOpener((id) => keys.get(id));
  const replay = [];
  for (const one of late) {
    const got = await watcher.open(m.fromBase64url(one).buffer);
    replay.push('frame' in got ? 'opened' : got.dropped);
  }
  return {
    keyCheck: crypto.keyCheck,
    safetyCode: crypto.safetyCode,
    chat: await crypto.sealChat(chat, peerId),
    frames: [m.toBase64url(await sealer.seal(m.fromBase64url(frame))),
             m.toBase64url(await sealer.seal(m.fromBase64url(frame)))],
    openedChat: await crypto.openChat(pyChat, peerId),
    chatFromSomeoneElse: await crypto.openChat(pyChat, 'ffffffffffffffff'),
    openedFrame: 'frame' in opened ? m.toBase64url(new Uint8Array(opened.frame)) : opened.dropped,
    // A fresh opener: the one above opened this counter already, and would call any copy of it a replay.
    tamperedFrame: (await new v.VoiceOpener((id) => keys.get(id)).open(tampered.buffer)).dropped ?? 'opened',
    replay,
  };
}
"""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def units(shared_server: ServerProcess, browsers: dict[str, Browser]) -> Iterator[Page]:
    """The landing page, to import the page's modules in."""
    person = open_page(browsers["Ann"], f"{shared_server.url}/", "units")
    yield person.page
    person.context.close()
    assert person.errors == []


def test_the_page_and_the_python_client_agree(units: Page) -> None:
    page = units
    for room, secret in (("agree-1", e2ee.new_secret()), ("x" * 64, "A" * 86), ("r", "_-" * 12 + "zz")):
        peer_id = secrets.token_hex(8)
        chat, frame = "héllo 世界 😀", secrets.token_bytes(80)
        py_chat = e2ee.ChatCipher(room, secret).seal("from python ✓", peer_id)
        py_sealer = e2ee.VoiceSealer(room, secret, peer_id)
        py_frame = py_sealer.seal(frame)
        stream = [py_frame, *(py_sealer.seal(bytes([n % 256]) * 40) for n in range(1, 300))]
        late = [b64(stream[n]) for n in (299, 48, 49, 0, 49, 299)]
        got: dict[str, Any] = page.evaluate(
            AGREEMENT_JS, [room, secret, peer_id, chat, b64(frame), py_chat, b64(py_frame), late]
        )
        assert got["keyCheck"] == e2ee.key_check(room, secret)
        assert got["safetyCode"] == e2ee.safety_code(room, secret)
        assert e2ee.ChatCipher(room, secret).open(got["chat"], peer_id) == chat
        assert e2ee.ChatCipher(room, secret).open(got["chat"], "0" * 16) is None
        opener = e2ee.VoiceOpener(room, secret)
        sealed = [unb64(text) for text in got["frames"]]
        assert [opener.open(one) for one in sealed] == [frame, frame]
        # The layout the document fixes: version, sender, one salt per connection, counting from 0.
        assert [one[0] for one in sealed] == [1, 1] and sealed[0][1:9] == bytes.fromhex(peer_id)
        assert sealed[0][9:13] == sealed[1][9:13]
        assert [int.from_bytes(one[13:17], "big") for one in sealed] == [0, 1]
        assert len(sealed[0]) == len(frame) + 33
        assert got["openedChat"] == "from python ✓"
        assert got["chatFromSomeoneElse"] is None
        assert got["openedFrame"] == b64(frame)
        assert got["tamperedFrame"] == "failed"
        assert got["replay"] == ["opened", "replayed", "opened", "replayed", "replayed", "replayed"]
        python = e2ee.VoiceOpener(room, secret)
        assert [python.open(unb64(one)) is not None for one in late] == [True, False, True, False, False, False]
        assert e2ee.key_check(room, secret) != e2ee.key_check(room + "x", secret)


READ_SECRET_JS = "async (hashes) => { const m = await import('/static/js/e2ee.js'); return hashes.map(m.readSecret); }"
FRAGMENTS = [
    ("", "none"),
    ("#", "none"),
    ("#" + "A" * 22, "secret"),
    ("#" + "a_-9" * 21 + "zz", "secret"),  # 86 characters: 64 bytes
    ("#" + "A" * 21, "damaged"),
    ("#" + "A" * 25, "damaged"),  # 4n + 1 characters decode to nothing
    ("#" + "A" * 87, "damaged"),
    ("#" + "A" * 21 + "=", "damaged"),
    ("#" + "A" * 21 + "%", "damaged"),
]


def test_reading_the_fragment(units: Page) -> None:
    got = units.evaluate(READ_SECRET_JS, [fragment for fragment, _ in FRAGMENTS])
    assert [reading["kind"] for reading in got] == [kind for _, kind in FRAGMENTS]
    for (fragment, kind), reading in zip(FRAGMENTS, got, strict=True):
        if kind == "secret":
            assert reading["secret"] == fragment[1:] == e2ee.read_secret(fragment[1:])


ROOM_TARGET_JS = "async (texts) => { const m = await import('/static/js/landing.js'); return texts.map(m.roomTarget); }"


def test_a_pasted_link_keeps_its_key(units: Page) -> None:
    key = "A" * 22
    cases = {
        f"  http://127.0.0.1:1/r/abc#{key}  ": f"http://127.0.0.1:1/r/abc#{key}",
        f"https://talk.example/r/abc/#{key}": f"https://talk.example/r/abc#{key}",
        f"/r/abc#{key}": f"/r/abc#{key}",
        f"{units.url.rstrip('/')}/r/abc#damaged": "/r/abc#damaged",  # the room page says it is damaged
        "/r/abc#": "/r/abc",
        "abc": "/r/abc",
    }
    assert units.evaluate(ROOM_TARGET_JS, list(cases)) == list(cases.values())
