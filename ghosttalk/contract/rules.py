"""The contract's rules besides the message shapes: which rooms and names a join may ask for, how large a
frame may be, how the server ends a session and what that tells a client, and the error a message that
cannot be applied earns."""

from __future__ import annotations

import re
from enum import IntEnum

from ghosttalk.config import MAX_ROOM_PEERS
from ghosttalk.contract.nickname import check_name

# ``?room=`` and ``/r/<room>``: the ids the page makes (22 characters of base64url) and readable names. Written
# in the subset of regular expressions that Python and JavaScript read alike: the page gets this very text.
ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A signaling frame larger than this closes the socket (1009): an offer with many candidates is ~5 KiB, and
# anything bigger would only cost the server memory.
MAX_FRAME_BYTES = 64 * 1024
# room_state's receive_lines: a newcomer never hears more people than a full room holds besides itself.
MAX_RECEIVE_LINES = MAX_ROOM_PEERS - 1
# ``/ws?key_check=``: 16 bytes in base64url, derived from an encrypted room's secret (docs/E2EE.md).
KEY_CHECK = re.compile(r"[A-Za-z0-9_-]{22}")
# A chat message: at most this many code points of text, or this many characters of a sealed (encrypted) one:
# 12 bytes of IV, 4,000 bytes of UTF-8 (1,000 four-byte characters) and a 16-byte tag, in base64url.
MAX_CHAT_CHARS = 1000
MAX_SEALED_CHARS = 5400
# Chat messages per person: a burst of CHAT_BURST, then CHAT_PER_SECOND; over that a message is refused.
CHAT_BURST = 5
CHAT_PER_SECOND = 1
# The error a session gets when it sends past its message rate (``--message-rate``), wherever that is noticed:
# on the node holding its WebSocket or on its room's node.
TOO_MANY_MESSAGES = "too many messages; slow down"
# At most this many newcomers wait in a locked room's lobby at once (how long each may: ``--lobby-wait``).
LOBBY_SIZE = 20
# A host token (``host {token}``, ``claim_host {token}``): what the server hands out is this long.
HOST_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")


class SignalingError(Exception):
    """A client message that cannot be applied: the client gets ``error {message}``, the session goes on."""


class CloseCode(IntEnum):
    """WebSocket close codes the server ends a session with, so a client can tell a reason to rejoin (the
    server restarts, the connection was lost) from a reason to stay away (kicked, banned, room full)."""

    GOING_AWAY = 1001  # server shutting down: rejoin in a moment
    POLICY = 1008  # a limit was exceeded: rejoin only after a backoff
    TRY_AGAIN_LATER = 1013  # room or server full
    KICKED = 4001
    CONNECTION_LOST = 4002  # heartbeat or media failed: rejoin
    BANNED = 4003
    # The join's key-check value does not fit the room's mode (docs/E2EE.md): retrying cannot change that.
    KEY_MISSING = 4004  # a plain join into an end-to-end encrypted room
    KEY_MISMATCH = 4005  # a key that is not the room's
    NOT_ENCRYPTED = 4006  # a join with a key into a plain room
    # The room's host decided (docs/DESIGN.md "Hosts and the lobby"): a person rejoins by choice, not by itself.
    REMOVED = 4007  # removed by the host
    DECLINED = 4008  # the host declined a newcomer waiting in the lobby
    LOBBY_TIMEOUT = 4009  # nobody let the newcomer in within --lobby-wait
    LOBBY_CLOSED = 4010  # everyone left the locked room while the newcomer waited


# After these a client must not rejoin by itself: it would be refused again (full, banned, the wrong key) or
# undo an operator's decision (kicked). Every other close, unknown codes and none at all included, is worth a
# retry.
STAY_AWAY = frozenset({
    CloseCode.TRY_AGAIN_LATER, CloseCode.KICKED, CloseCode.BANNED,
    CloseCode.KEY_MISSING, CloseCode.KEY_MISMATCH, CloseCode.NOT_ENCRYPTED,
    CloseCode.REMOVED, CloseCode.DECLINED, CloseCode.LOBBY_TIMEOUT, CloseCode.LOBBY_CLOSED,
})


def stays_away(code: int | None) -> bool:
    """Whether a socket that closed with ``code`` (``None``: without a close frame) must stay closed."""
    return code in STAY_AWAY


def is_room_id(room: str) -> bool:
    return ROOM_ID.fullmatch(room) is not None


def validate_room(room: str | None) -> str:
    """The room id, or ``ValueError`` saying why not."""
    if not room:
        raise ValueError("room is missing")
    if not is_room_id(room):
        raise ValueError("room must be 1-64 characters of A-Z a-z 0-9 _ -")
    return room


def validate_name(name: str | None) -> str:
    """The name as it will be shown, or :class:`~ghosttalk.contract.nickname.NameRefused` (a ``ValueError``)
    saying why not."""
    return check_name(name or "")


def validate_key_check(value: str | None) -> str | None:
    """An encrypted join's key-check value, ``None`` for a plain join, or ``ValueError`` saying why not."""
    if value is None:
        return None
    if KEY_CHECK.fullmatch(value) is None:
        raise ValueError("key_check must be 22 characters of A-Z a-z 0-9 _ -")
    return value
