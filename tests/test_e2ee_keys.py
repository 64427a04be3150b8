"""The headless client's end-to-end encryption against docs/E2EE.md: derivations checked with an independent
HKDF, voice frames and chat messages that open only where they should."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from ghosttalk.client.e2ee import (
    FRAME_HEADER_BYTES,
    REPLAY_WINDOW,
    ChatCipher,
    DamagedKey,
    VoiceOpener,
    VoiceSealer,
    key_check,
    new_secret,
    read_secret,
    safety_code,
)

SECRET = "q2Wq8tP3yZ0cXl1bVn4mRw"  # 16 bytes
ANN = "00112233445566ff"
BEN = "8899aabbccddeeff"


def hkdf(secret: str, room: str, label: str, length: int) -> bytes:
    """RFC 5869 written out, to check the module against the document rather than against itself."""
    ikm = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    prk = hmac.new(f"ghosttalk/{room}".encode(), ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + label.encode() + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def test_key_check_and_safety_code_follow_the_document() -> None:
    expected = base64.urlsafe_b64encode(hkdf(SECRET, "room", "key-check", 16)).rstrip(b"=").decode()
    assert key_check("room", SECRET) == expected
    assert len(expected) == 22
    digits = f"{int.from_bytes(hkdf(SECRET, 'room', 'safety-code', 6), 'big') % 10**12:012d}"
    assert safety_code("room", SECRET) == f"{digits[:4]} {digits[4:8]} {digits[8:]}"
    # The room id is the salt: one secret gives two rooms unrelated values.
    assert key_check("other", SECRET) != key_check("room", SECRET)


@pytest.mark.parametrize("fragment", ["short", "x" * 87, "a" * 21 + "!", "a" * 25, "ab cd" * 5])
def test_a_damaged_key_is_named(fragment: str) -> None:
    with pytest.raises(DamagedKey):
        read_secret(fragment)


def test_fresh_secrets_are_128_bits_and_readable() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(s) == 22 and read_secret(s) == s for s in secrets)
    assert read_secret("") is None


def test_voice_frames_open_for_the_room_only() -> None:
    sealer = VoiceSealer("room", SECRET, ANN)
    frames = [sealer.seal(b"opus frame %d" % i) for i in range(3)]
    opener = VoiceOpener("room", SECRET)
    assert [opener.open(f) for f in frames] == [b"opus frame %d" % i for i in range(3)]
    # The header: version 1, the sender's id, one salt for the connection, a counter from 0.
    assert all(f[0] == 1 and f[1:9] == bytes.fromhex(ANN) for f in frames)
    assert len({f[9:13] for f in frames}) == 1
    assert [int.from_bytes(f[13:17], "big") for f in frames] == [0, 1, 2]
    assert len(frames[0]) == len(b"opus frame 0") + FRAME_HEADER_BYTES + 16
    # Another room, another secret: nothing opens.
    assert VoiceOpener("other", SECRET).open(frames[0]) is None
    assert VoiceOpener("room", new_secret()).open(frames[0]) is None


@pytest.mark.parametrize("position", [0, 3, 10, 15, 20, -1])
def test_a_changed_byte_anywhere_makes_a_frame_unopenable(position: int) -> None:
    frame = bytearray(VoiceSealer("room", SECRET, ANN).seal(b"a frame of opus"))
    frame[position] ^= 0x01
    opener = VoiceOpener("room", SECRET)
    assert opener.open(bytes(frame)) is None
    assert opener.failed == 1


def test_a_frame_moved_to_another_sender_does_not_open() -> None:
    frame = bytearray(VoiceSealer("room", SECRET, ANN).seal(b"said by ann"))
    frame[1:9] = bytes.fromhex(BEN)
    assert VoiceOpener("room", SECRET).open(bytes(frame)) is None


def test_each_connection_has_its_own_salt_so_no_iv_repeats() -> None:
    first, second = VoiceSealer("room", SECRET, ANN), VoiceSealer("room", SECRET, ANN)
    ivs = {frame[9:17] for sealer in (first, second) for frame in (sealer.seal(b"x") for _ in range(100))}
    assert len(ivs) == 200


def test_old_frames_replayed_are_dropped_late_ones_are_not() -> None:
    sealer = VoiceSealer("room", SECRET, ANN)
    frames = [sealer.seal(bytes([i % 256])) for i in range(REPLAY_WINDOW + 20)]
    opener = VoiceOpener("room", SECRET)
    assert opener.open(frames[-1]) is not None
    assert opener.open(frames[-5]) is not None  # reordered in the network: still played
    assert opener.open(frames[0]) is None  # far behind: a replay
    assert opener.open(frames[-5]) is None  # opened already: a replay too
    assert opener.open(frames[-6]) is not None
    assert opener.replayed == 2


def test_garbage_is_counted_not_raised() -> None:
    opener = VoiceOpener("room", SECRET)
    for junk in (b"", b"\x01", b"\x01" * 40, bytes(200), b"\x02" + bytes(60)):
        assert opener.open(junk) is None
    assert opener.failed == 5


def test_chat_opens_only_as_its_sender_with_the_room_key() -> None:
    cipher = ChatCipher("room", SECRET)
    sealed = cipher.seal("meet at 5 🙂", ANN)
    assert "meet" not in sealed
    assert cipher.open(sealed, ANN) == "meet at 5 🙂"
    assert cipher.open(sealed, BEN) is None  # the server said someone else sent it
    assert ChatCipher("room", new_secret()).open(sealed, ANN) is None
    assert ChatCipher("other", SECRET).open(sealed, ANN) is None
    for junk in ("", "!!!!", "A" * 10, "A" * 60, sealed[:-2]):
        assert cipher.open(junk, ANN) is None
    # A fresh IV for every message: the same text twice seals differently.
    assert cipher.seal("hi", ANN) != cipher.seal("hi", ANN)
