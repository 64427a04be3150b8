"""End-to-end encryption as the page does it (docs/E2EE.md), for the headless client and the benchmark.

The room's secret is the link's fragment; every key is HKDF-SHA-256 of it with the room id as salt and a
label as info. Voice frames are sealed one by one under the sender's own key (its peer id is the label's
suffix) with a counter in the IV; chat messages under the room's chat key with a random IV. The server sees
the key-check value only.
"""

from __future__ import annotations

import base64
import os
import re
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# 16 to 64 bytes of base64url; a length of 4n + 1 characters decodes to nothing.
SECRET = re.compile(r"[A-Za-z0-9_-]{22,86}")
SECRET_BYTES = 16

FRAME_VERSION = 1
PEER_ID_BYTES = 8
# version, sender's peer id, salt, counter: the additional data of every voice frame.
FRAME_HEADER_BYTES = 1 + PEER_ID_BYTES + 4 + 4
TAG_BYTES = 16
CHAT_IV_BYTES = 12
# A frame this far behind the highest counter decrypted for its sender is a replay, not a late arrival; within
# that window, a counter already opened is one too. The ring that remembers them holds a little more.
REPLAY_WINDOW = 250
REPLAY_RING = 256
# Senders whose keys a receiver keeps at once: a full room, and then some for people who left.
KEPT_SENDERS = 128


class DamagedKey(ValueError):
    """The fragment is not a secret this project makes: too short, too long, or not base64url."""


def new_secret() -> str:
    return _b64encode(os.urandom(SECRET_BYTES))


def read_secret(fragment: str) -> str | None:
    """The secret a link's fragment (without ``#``) holds; None for none. Raises :class:`DamagedKey`."""
    if not fragment:
        return None
    if SECRET.fullmatch(fragment) is None or len(fragment) % 4 == 1:
        raise DamagedKey("the link's key (after #) is damaged: it must be 22-86 characters of base64url")
    return fragment


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(slots=True, frozen=True)
class RoomSecret:
    """A room id and its secret's bytes: what every key of the room is derived from."""

    room: str
    secret: bytes

    @classmethod
    def parse(cls, room: str, secret: str) -> RoomSecret:
        checked = read_secret(secret)
        if checked is None:
            raise DamagedKey("the link has no key")
        return cls(room, _b64decode(checked))

    def derive(self, label: str, length: int) -> bytes:
        hkdf = HKDF(SHA256(), length, f"ghosttalk/{self.room}".encode(), label.encode())
        return hkdf.derive(self.secret)

    @property
    def key_check(self) -> str:
        return _b64encode(self.derive("key-check", 16))

    @property
    def safety_code(self) -> str:
        digits = f"{int.from_bytes(self.derive('safety-code', 6), 'big') % 10**12:012d}"
        return " ".join(digits[i : i + 4] for i in range(0, 12, 4))

    def voice_key(self, sender_id: str) -> AESGCM:
        return AESGCM(self.derive(f"voice/{sender_id}", 32))


def key_check(room: str, secret: str) -> str:
    return RoomSecret.parse(room, secret).key_check


def safety_code(room: str, secret: str) -> str:
    return RoomSecret.parse(room, secret).safety_code


class ChatCipher:
    """Seals and opens an encrypted room's chat messages; the sender's peer id is bound in as additional data,
    so a message the server attributes to someone else does not open."""

    def __init__(self, room: str, secret: str) -> None:
        self._key = AESGCM(RoomSecret.parse(room, secret).derive("chat", 32))

    def seal(self, text: str, sender_id: str) -> str:
        iv = os.urandom(CHAT_IV_BYTES)
        return _b64encode(iv + self._key.encrypt(iv, text.encode(), f"chat/{sender_id}".encode()))

    def open(self, sealed: str, sender_id: str) -> str | None:
        """The text, or None for anything that is not a message sealed by ``sender_id`` with this room's key."""
        try:
            data = _b64decode(sealed)
            if len(data) < CHAT_IV_BYTES + TAG_BYTES:
                return None
            plain = self._key.decrypt(data[:CHAT_IV_BYTES], data[CHAT_IV_BYTES:], f"chat/{sender_id}".encode())
            return plain.decode()
        except (ValueError, InvalidTag):
            # binascii.Error and UnicodeDecodeError are ValueErrors.
            return None


class VoiceSealer:
    """One sender's voice frames for one connection: a fresh salt, a counter from 0, the sender's key."""

    def __init__(self, room: str, secret: str, sender_id: str) -> None:
        self._key = RoomSecret.parse(room, secret).voice_key(sender_id)
        self._sender = bytes.fromhex(sender_id)
        if len(self._sender) != PEER_ID_BYTES:
            raise ValueError(f"a peer id is {2 * PEER_ID_BYTES} hex digits, not {sender_id!r}")
        self._salt = os.urandom(4)
        self._counter = 0

    def seal(self, frame: bytes) -> bytes:
        if self._counter > 0xFFFFFFFF:
            # Never under one salt twice: a new salt makes new IVs.
            self._salt, self._counter = os.urandom(4), 0
        header = bytes([FRAME_VERSION]) + self._sender + self._salt + self._counter.to_bytes(4, "big")
        self._counter += 1
        return header + self._key.encrypt(bytes(4) + header[1 + PEER_ID_BYTES :], frame, header)


class ReplayWindow:
    """The counters opened on one sender's connection (one salt): the highest, and which of the last
    REPLAY_WINDOW before it, in a ring indexed by counter (each slot holds the counter last opened there)."""

    def __init__(self) -> None:
        self.highest = -1
        self._ring = [-1] * REPLAY_RING

    def replayed(self, counter: int) -> bool:
        return counter + REPLAY_WINDOW < self.highest or self._ring[counter % REPLAY_RING] == counter

    def opened(self, counter: int) -> None:
        self._ring[counter % REPLAY_RING] = counter
        self.highest = max(self.highest, counter)


class VoiceOpener:
    """Opens any sender's voice frames in one room: the key comes from the peer id in each frame."""

    def __init__(self, room: str, secret: str) -> None:
        self._secret = RoomSecret.parse(room, secret)
        self._keys: OrderedDict[bytes, AESGCM] = OrderedDict()
        # (sender, salt) -> the counters opened under it.
        self._windows: OrderedDict[bytes, ReplayWindow] = OrderedDict()
        self.failed = 0
        self.replayed = 0

    def open(self, frame: bytes) -> bytes | None:
        """The Opus frame inside, or None (counted) for a frame that is damaged, foreign or replayed."""
        if len(frame) < FRAME_HEADER_BYTES + TAG_BYTES or frame[0] != FRAME_VERSION:
            self.failed += 1
            return None
        header = frame[:FRAME_HEADER_BYTES]
        stream = header[1 : 1 + PEER_ID_BYTES + 4]  # sender and salt
        counter = int.from_bytes(header[-4:], "big")
        window = self._windows.get(stream)
        if window is not None and window.replayed(counter):
            self.replayed += 1
            return None
        try:
            plain = self._key(header[1 : 1 + PEER_ID_BYTES]).decrypt(
                bytes(4) + header[1 + PEER_ID_BYTES :], frame[FRAME_HEADER_BYTES:], header
            )
        except InvalidTag:
            self.failed += 1
            return None
        # Only a frame that opened is remembered: a forged counter cannot push real frames out of the window.
        if window is None:
            window = self._windows[stream] = ReplayWindow()
        window.opened(counter)
        self._windows.move_to_end(stream)
        while len(self._windows) > KEPT_SENDERS:
            self._windows.popitem(last=False)
        return plain

    def _key(self, sender: bytes) -> AESGCM:
        key = self._keys.get(sender)
        if key is None:
            key = self._keys[sender] = self._secret.voice_key(sender.hex())
            while len(self._keys) > KEPT_SENDERS:
                self._keys.popitem(last=False)
        self._keys.move_to_end(sender)
        return key
