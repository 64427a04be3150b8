"""The signaling contract between a client (the page, the headless participant) and the server, in one place.

- :mod:`~ghosttalk.contract.rules`: the room-id rule, the frame size limit, the close codes and which of
  them mean "stay away", and :class:`SignalingError`;
- :mod:`~ghosttalk.contract.nickname`: the nickname rule and the code point table the page reads too;
- :mod:`~ghosttalk.contract.messages`: every message type both ways, parsed into typed dataclasses;
- :mod:`~ghosttalk.contract.page`: ``web/static/js/contract.js``, the page's generated copy of the rules.

The server (``server/signaling.py``, ``server/rooms.py``, ``media/``) and the headless client import these
names from here, and the page from ``contract.js``; tests prove that the page's validators and constants
agree with the server's.
"""

from ghosttalk.contract.messages import (
    LINE_PREFIX,
    Answer,
    Candidate,
    Chat,
    ChatFrom,
    ClientMessage,
    ErrorMessage,
    Forwarding,
    Heartbeat,
    IceCandidate,
    Levels,
    Message,
    MessageRefused,
    MessageType,
    Mute,
    Offer,
    PeerInfo,
    PeerJoin,
    PeerLeave,
    PeerUpdate,
    RoomState,
    ServerMessage,
    parse_client_message,
    parse_server_message,
    wire,
)
from ghosttalk.contract.nickname import MAX_NAME_CHARS, NameRefused, check_name
from ghosttalk.contract.rules import (
    CHAT_BURST,
    CHAT_PER_SECOND,
    KEY_CHECK,
    MAX_CHAT_CHARS,
    MAX_FRAME_BYTES,
    MAX_RECEIVE_LINES,
    MAX_SEALED_CHARS,
    ROOM_ID,
    STAY_AWAY,
    CloseCode,
    SignalingError,
    is_room_id,
    stays_away,
    validate_key_check,
    validate_name,
    validate_room,
)

__all__ = [
    "CHAT_BURST",
    "CHAT_PER_SECOND",
    "KEY_CHECK",
    "LINE_PREFIX",
    "MAX_CHAT_CHARS",
    "MAX_FRAME_BYTES",
    "MAX_NAME_CHARS",
    "MAX_RECEIVE_LINES",
    "MAX_SEALED_CHARS",
    "ROOM_ID",
    "STAY_AWAY",
    "Answer",
    "Candidate",
    "Chat",
    "ChatFrom",
    "ClientMessage",
    "CloseCode",
    "ErrorMessage",
    "Forwarding",
    "Heartbeat",
    "IceCandidate",
    "Levels",
    "Message",
    "MessageRefused",
    "MessageType",
    "Mute",
    "NameRefused",
    "Offer",
    "PeerInfo",
    "PeerJoin",
    "PeerLeave",
    "PeerUpdate",
    "RoomState",
    "ServerMessage",
    "SignalingError",
    "check_name",
    "is_room_id",
    "parse_client_message",
    "parse_server_message",
    "stays_away",
    "validate_key_check",
    "validate_name",
    "validate_room",
    "wire",
]
