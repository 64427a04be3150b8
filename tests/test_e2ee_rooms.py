"""End-to-end encrypted rooms and room chat through a real server: the first joiner fixes the room's mode, a
link without the key or with another is refused and told why, the people with the key hear and read each
other, and someone with only what the server sees (the key-check value) gets neither voice nor text."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from ghosttalk.client.audio import dominant_frequency, tone
from ghosttalk.client.e2ee import key_check, new_secret
from ghosttalk.client.participant import Client, ClientOptions, JoinError
from ghosttalk.contract import CloseCode
from tests.support.adminapi import admin
from tests.support.eventually import eventually, eventually_sync
from tests.support.room import clients, hears
from tests.support.server import ROOT, ServerProcess

TONE_HZ = 440.0


async def refusal(server: ServerProcess, room: str, options: ClientOptions) -> tuple[str, int | None]:
    client = Client(server.url, room, "late", options)
    with pytest.raises(JoinError) as refused:
        await client.connect()
    return str(refused.value), client.close_code


async def test_the_first_joiner_fixes_the_mode_and_mismatches_are_told_why(shared_server: ServerProcess) -> None:
    secret = new_secret()
    async with clients(shared_server, "e2ee-mode", ["first"], secret=secret):
        assert await refusal(shared_server, "e2ee-mode", ClientOptions()) == (
            "this link is missing its key", CloseCode.KEY_MISSING)
        assert await refusal(shared_server, "e2ee-mode", ClientOptions(secret=new_secret())) == (
            "this link's key does not match the room", CloseCode.KEY_MISMATCH)
        async with clients(shared_server, "e2ee-mode", ["second"], secret=secret) as [second]:
            assert second.self_id is not None
    async with clients(shared_server, "plain-mode", ["first"]):
        text, code = await refusal(shared_server, "plain-mode", ClientOptions(secret=secret))
        assert code == CloseCode.NOT_ENCRYPTED
        assert "not end-to-end encrypted" in text


async def test_a_malformed_key_check_is_refused_before_the_upgrade(
    shared_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    for value in ("short", "x" * 23, "a" * 21 + "="):
        async with http.get(f"{shared_server.url}/ws", params={"room": "r", "name": "n", "key_check": value}) as r:
            assert r.status == 400
            assert "key_check" in await r.text()


async def test_the_room_hears_its_voices_and_the_key_check_alone_hears_noise(shared_server: ServerProcess) -> None:
    secret = new_secret()
    room = "e2ee-voice"
    # Eve joins last, with what the server sees: the room's key-check value, and no secret.
    async with (
        clients(shared_server, room, ["ann", "ben"], secret=secret, decode=True) as [ann, ben],
        clients(shared_server, room, ["eve"], key_check=key_check(room, secret), decode=True) as [eve],
    ):
        await hears(ben, ann)  # bit-exact once opened
        await ann.play(tone(TONE_HZ, 2.0))
        await eventually(lambda: len(eve.received.get(ann.self_id or "", [])), 5,
                         what="eve received the tone's frames", until=lambda n: n >= 80)
    heard, snooped = ben.pcm(ann.self_id or ""), eve.pcm(ann.self_id or "")
    assert abs(dominant_frequency(heard) - TONE_HZ) < 5
    assert _share_near(heard, TONE_HZ) > 0.9  # a tone: nearly all its energy in one line
    assert len(snooped) > 9600  # some of it decoded: there is a recording to look into
    # What the key-check value's holder decodes (libopus takes some of it, refuses the rest) is noise, whose
    # strongest frequency lands anywhere, 440 Hz too now and then; but it never has the tone's line: over 40
    # trials the most any such noise put within 3 Hz of the tone was 4 % of its energy, against 99.7 % for
    # the tone itself.
    assert _share_near(snooped, TONE_HZ) < 0.2
    # And nothing that was said reached anyone in the clear.
    assert not any(p.payload.startswith(b"from ann") for p in eve.received.get(ann.self_id or "", []))


def _share_near(pcm: np.ndarray, frequency: float) -> float:
    """The share of the recording's energy within 3 Hz of ``frequency``."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(pcm.size, 1 / 48000)
    return float(spectrum[np.abs(freqs - frequency) < 3].sum() / max(spectrum.sum(), 1e-9))


async def test_encrypted_chat_is_read_by_the_room_and_by_nobody_else(shared_server: ServerProcess) -> None:
    secret, room, words = new_secret(), "e2ee-chat", "the vault code is 0451"
    async with (
        clients(shared_server, room, ["ann", "ben"], secret=secret) as [ann, ben],
        clients(shared_server, room, ["eve"], key_check=key_check(room, secret)) as [eve],
    ):
        sent: list[str] = []
        ws = ann._ws
        assert ws is not None
        original = ws.send_str

        async def record(data: str, compress: int | None = None) -> None:
            sent.append(data)
            await original(data, compress)

        ws.send_str = record  # type: ignore[method-assign]
        await ann.say(words)
        await ben.wait_for(lambda: bool(ben.chat), 5)
        await eve.wait_for(lambda: any(m["type"] == "chat" for m in eve.messages), 5)
    assert [(line.name, line.text) for line in ben.chat] == [("ann", words)]
    frames = [*sent, *(str(m) for m in eve.messages)]
    assert any('"chat"' in frame for frame in sent)
    assert not any("vault" in frame for frame in frames)
    # Eve's client takes plain text as is: none came, only a sealed message it could not open.
    assert eve.chat == [] and eve.chat_failures == 1
    assert "vault" not in shared_server.log_path.read_text()


async def test_the_server_refuses_plain_chat_in_an_encrypted_room_and_sealed_in_a_plain_one(
    shared_server: ServerProcess,
) -> None:
    async with clients(shared_server, "e2ee-form", ["ann", "ben"], secret=new_secret()) as [ann, ben]:
        await ann.send({"type": "chat", "text": "in the clear"})
        await ann.wait_for(lambda: any("must be sealed" in e for e in ann.errors), 5)
    async with clients(shared_server, "plain-form", ["cat", "dan"]) as [cat, dan]:
        await cat.send({"type": "chat", "sealed": "A" * 60})
        await cat.wait_for(lambda: any("plain text" in e for e in cat.errors), 5)
        await cat.say("plain hello 👋")
        await dan.wait_for(lambda: bool(dan.chat), 5)
        assert [(line.name, line.text) for line in dan.chat] == [("cat", "plain hello 👋")]
    assert not any(m["type"] == "chat" for m in ben.messages)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"text": "x" * 1001}, "at most 1000 characters"),
        ({"text": "   \n "}, "needs some text"),
        ({"text": "bell\x07"}, "control characters"),
        ({"text": 5}, "'text' string or a 'sealed' string"),
        ({"text": "a", "sealed": "A" * 60}, "not both"),
        ({}, "'text' string or a 'sealed' string"),
    ],
)
async def test_malformed_chat_is_refused_with_a_reason(
    shared_server: ServerProcess, body: dict[str, object], error: str
) -> None:
    async with clients(shared_server, "plain-bad-chat", ["cat", "dan"]) as [cat, dan]:
        await cat.send({"type": "chat", **body})
        await cat.wait_for(lambda: any(error in e for e in cat.errors), 5)
        await cat.say("x" * 1000)  # the longest message passes
        await dan.wait_for(lambda: bool(dan.chat), 5)
    assert [len(line.text) for line in dan.chat] == [1000]


async def test_chat_is_rate_limited_without_ending_the_call(shared_server: ServerProcess) -> None:
    async with clients(shared_server, "plain-chat-rate", ["cat", "dan"]) as [cat, dan]:
        for index in range(8):
            await cat.say(f"message {index}")
        await cat.wait_for(lambda: any("too many chat messages" in e for e in cat.errors), 5)
        await dan.wait_for(lambda: len(dan.chat) >= 5, 5)
        await asyncio.sleep(0.3)  # what was refused stays refused; nothing trickles in late
        assert 5 <= len(dan.chat) < 8
        await hears(dan, cat)  # still in the call


def join_command(server: ServerProcess, link: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ghosttalk", "join", link, *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_join_command_chats_in_an_encrypted_room_and_the_secret_stays_out_of_the_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    secret = new_secret()
    link = f"{server.url}/r/cli-e2ee#{secret}"
    listener = join_command(server, link, "--name", "ear", "--seconds", "12")
    eventually_sync(lambda: server.log_path.read_text().count("USER_JOIN"), 15, what="the listener joined",
                    until=lambda n: n >= 1)
    speaker = join_command(server, link, "--name", "mouth", "--say", "hello from the shell", "--seconds", "2")
    _, speaker_err = speaker.communicate(timeout=30)
    # While the listener keeps the room: a link with another key is refused, and says why.
    wrong = subprocess.run(
        [sys.executable, "-m", "ghosttalk", "join", f"{server.url}/r/cli-e2ee#{new_secret()}", "--name", "x"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    listener_out, listener_err = listener.communicate(timeout=30)
    assert speaker.returncode == 0, speaker_err
    assert listener.returncode == 0, listener_err
    assert listener_out.splitlines() == ["mouth: hello from the shell"]
    assert "end-to-end encrypted; safety code" in speaker_err
    assert wrong.returncode == 1
    assert "this link's key does not match the room" in wrong.stderr
    # The secret, as typed and as the server could have seen it anywhere: console, event log, admin events.
    everything = server.log_path.read_text() + (server.data_dir / "server.log").read_text()
    assert secret not in everything
    assert "hello from the shell" not in everything


def test_join_command_names_a_damaged_key(server: ServerProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ghosttalk", "join", f"{server.url}/r/x#not-a-key", "--name", "a"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "key (after #) is damaged" in result.stderr


async def test_admin_sees_which_rooms_are_encrypted_and_never_a_key(
    shared_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    secret = new_secret()
    async with clients(shared_server, "admin-e2ee", ["ann"], secret=secret):
        _, rooms = await admin(http, shared_server, action="rooms")
        _, logs = await admin(http, shared_server, action="logs", n="1000")
    [room] = [r for r in rooms["rooms"] if r["room"] == "admin-e2ee"]
    assert room["encrypted"] is True
    assert secret not in str(rooms) + str(logs)
    assert key_check("admin-e2ee", secret) not in str(logs)
