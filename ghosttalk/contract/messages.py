"""The messages of the signaling contract: JSON text frames, each an object with a string ``type``.

A client sends ``offer``/``answer`` ``{sdp}``, ``candidate {candidate: {candidate, sdpMid, sdpMLineIndex} |
null}``, ``heartbeat {ts?}``, ``mute {muted}``, ``chat {text | sealed}``, ``claim_host {token}`` and, as the
room's host, ``remove``/``ask_mute``/``hand_over``/``admit``/``decline {peer_id}`` and ``lock {locked}``; the
server sends ``room_state {self_id, peers, receive_lines?, host, locked}``, ``peer_join``/``peer_update
{peer}``, ``peer_leave {peer_id}``, ``offer``/``answer`` ``{sdp}``, ``chat {from, text | sealed}``, ``host
{peer_id, token?}``, ``lock {locked}``, ``lobby {waiting}`` (to the host), ``lobby_wait`` (to a newcomer in a
locked room), ``mute_request {from}``, ``error {message}`` and, in rooms that forward only the loudest
speakers, ``forwarding {lines}`` and ``levels {levels}``. Each parses into a frozen
dataclass here, so that the code behind it dispatches on a type and reads checked fields; what the SDP inside
says is judged later, by the media plane, and whether a chat message suits its room by the room.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, ClassVar

import orjson

from ghosttalk.contract.rules import HOST_TOKEN, MAX_CHAT_CHARS, MAX_RECEIVE_LINES, MAX_SEALED_CHARS, SignalingError

# Peer ids are 16 hex digits; a message naming one accepts nothing much longer.
PEER_ID_CHARS = 32
# The MediaStream id of forwarding line i in a room that forwards only the loudest is LINE_PREFIX + str(i): no
# peer id (16 hex digits) looks like it, and ``forwarding`` says whom each carries.
LINE_PREFIX = "line-"


class MessageType(StrEnum):
    OFFER = "offer"
    ANSWER = "answer"
    CANDIDATE = "candidate"
    HEARTBEAT = "heartbeat"
    MUTE = "mute"
    ROOM_STATE = "room_state"
    PEER_JOIN = "peer_join"
    PEER_LEAVE = "peer_leave"
    PEER_UPDATE = "peer_update"
    ERROR = "error"
    FORWARDING = "forwarding"
    LEVELS = "levels"
    CHAT = "chat"
    CLAIM_HOST = "claim_host"
    REMOVE = "remove"
    ASK_MUTE = "ask_mute"
    HAND_OVER = "hand_over"
    ADMIT = "admit"
    DECLINE = "decline"
    LOCK = "lock"
    HOST = "host"
    LOBBY = "lobby"
    LOBBY_WAIT = "lobby_wait"
    MUTE_REQUEST = "mute_request"


class MessageRefused(SignalingError):
    """A frame that is not a well-formed message; ``kind`` says which check it failed (``not_json``,
    ``not_object``, ``no_type``, or the message type whose fields are wrong), for the server's counters."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# Both ways.


@dataclass(slots=True, frozen=True)
class Offer:
    TYPE: ClassVar[MessageType] = MessageType.OFFER
    sdp: str


@dataclass(slots=True, frozen=True)
class Answer:
    TYPE: ClassVar[MessageType] = MessageType.ANSWER
    sdp: str


# Client to server.


@dataclass(slots=True, frozen=True)
class IceCandidate:
    """A trickled candidate as the browser's ``RTCIceCandidate`` gives it: ``candidate`` is the SDP value (with
    or without its ``candidate:`` prefix), empty at the end of a generation; one of ``sdp_mid`` and
    ``sdp_mline_index`` names the m-line unless it is empty."""

    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None


@dataclass(slots=True, frozen=True)
class Candidate:
    TYPE: ClassVar[MessageType] = MessageType.CANDIDATE
    # None: the end of candidates.
    candidate: IceCandidate | None


@dataclass(slots=True, frozen=True)
class Heartbeat:
    TYPE: ClassVar[MessageType] = MessageType.HEARTBEAT
    ts: float | None = None


@dataclass(slots=True, frozen=True)
class Mute:
    TYPE: ClassVar[MessageType] = MessageType.MUTE
    muted: bool


@dataclass(slots=True, frozen=True)
class Chat:
    """One chat message: ``text`` in a plain room, ``sealed`` (AES-GCM under the room's chat key, base64url) in
    an end-to-end encrypted one; exactly one of them is set (docs/E2EE.md)."""

    TYPE: ClassVar[MessageType] = MessageType.CHAT
    text: str | None = None
    sealed: str | None = None


@dataclass(slots=True, frozen=True)
class ClaimHost:
    """A host coming back (a reconnect, a reload of the tab) shows the token it was given, to be host again."""

    TYPE: ClassVar[MessageType] = MessageType.CLAIM_HOST
    token: str


# What a room's host may do to one person, by the message's type: the person is ``peer_id`` (for admit and
# decline, someone waiting in the lobby).
HOST_ACTIONS = frozenset({
    MessageType.REMOVE, MessageType.ASK_MUTE, MessageType.HAND_OVER, MessageType.ADMIT, MessageType.DECLINE,
})


@dataclass(slots=True, frozen=True)
class HostAction:
    action: MessageType  # one of HOST_ACTIONS
    peer_id: str

    @property
    def TYPE(self) -> MessageType:  # named as every other message's class constant
        return self.action


@dataclass(slots=True, frozen=True)
class Lock:
    """Both ways: the host locks or unlocks the room; the server tells the room that it did."""

    TYPE: ClassVar[MessageType] = MessageType.LOCK
    locked: bool


ClientMessage = Offer | Answer | Candidate | Heartbeat | Mute | Chat | ClaimHost | HostAction | Lock


# Server to client.


@dataclass(slots=True, frozen=True)
class PeerInfo:
    id: str
    name: str
    muted: bool


@dataclass(slots=True, frozen=True)
class RoomState:
    TYPE: ClassVar[MessageType] = MessageType.ROOM_STATE
    self_id: str
    peers: tuple[PeerInfo, ...]
    # How many receive-only audio lines the client's first offer should carry: the server's first answer
    # then already sends the room's speakers on them (None: a server that does not say; one line is offered).
    receive_lines: int | None = None
    # The room's host (None: a server without hosts, or nobody yet) and whether newcomers wait in a lobby.
    host: str | None = None
    locked: bool = False


@dataclass(slots=True, frozen=True)
class PeerJoin:
    TYPE: ClassVar[MessageType] = MessageType.PEER_JOIN
    peer: PeerInfo


@dataclass(slots=True, frozen=True)
class PeerUpdate:
    TYPE: ClassVar[MessageType] = MessageType.PEER_UPDATE
    peer: PeerInfo


@dataclass(slots=True, frozen=True)
class PeerLeave:
    TYPE: ClassVar[MessageType] = MessageType.PEER_LEAVE
    peer_id: str


@dataclass(slots=True, frozen=True)
class ErrorMessage:
    TYPE: ClassVar[MessageType] = MessageType.ERROR
    message: str


@dataclass(slots=True, frozen=True)
class Forwarding:
    """In a room that forwards only the loudest: which person each forwarding line carries now, by the line's
    MediaStream id (``line-0``, ...; None: nobody). Sent whole whenever one of them changes."""

    TYPE: ClassVar[MessageType] = MessageType.FORWARDING
    lines: dict[str, str | None]


@dataclass(slots=True, frozen=True)
class Levels:
    """In a room that forwards only the loudest: the audio level (RFC 6464 -dBov, 0 loudest, 127 silent) of
    people the receiver does not hear, those that changed since the last such message."""

    TYPE: ClassVar[MessageType] = MessageType.LEVELS
    levels: dict[str, int]


@dataclass(slots=True, frozen=True)
class ChatFrom:
    """A chat message relayed to the rest of the room; ``sender`` (``from`` on the wire) is the sender's peer id."""

    TYPE: ClassVar[MessageType] = MessageType.CHAT
    sender: str
    text: str | None = None
    sealed: str | None = None


@dataclass(slots=True, frozen=True)
class Host:
    """Who the room's host is now; the host's own copy carries the token that makes the role survive its
    reconnects (the page keeps it in the tab's session storage, never in a URL)."""

    TYPE: ClassVar[MessageType] = MessageType.HOST
    peer_id: str
    token: str | None = None


@dataclass(slots=True, frozen=True)
class Lobby:
    """To the host of a locked room: everyone waiting to be let in, in the order they came."""

    TYPE: ClassVar[MessageType] = MessageType.LOBBY
    waiting: tuple[PeerInfo, ...]


@dataclass(slots=True, frozen=True)
class LobbyWait:
    """To a newcomer in a locked room: wait for the host; ``room_state`` follows if they are let in."""

    TYPE: ClassVar[MessageType] = MessageType.LOBBY_WAIT


@dataclass(slots=True, frozen=True)
class MuteRequest:
    """The host asks this person to mute (``sender``: the host's peer id); only the person can do it."""

    TYPE: ClassVar[MessageType] = MessageType.MUTE_REQUEST
    sender: str


ServerMessage = (
    RoomState | PeerJoin | PeerUpdate | PeerLeave | Offer | Answer | ErrorMessage | Forwarding | Levels | ChatFrom
    | Host | Lock | Lobby | LobbyWait | MuteRequest
)
Message = ClientMessage | ServerMessage


def wire(message: Message) -> dict[str, Any]:
    """The JSON object ``message`` travels as."""
    match message:
        case Candidate(candidate=None):
            body: dict[str, Any] = {"candidate": None}
        case Candidate(candidate=IceCandidate() as ice):
            fields = {"candidate": ice.candidate, "sdpMid": ice.sdp_mid, "sdpMLineIndex": ice.sdp_mline_index}
            body = {"candidate": fields}
        case Heartbeat(ts=None):
            body = {}
        case RoomState(self_id=self_id, peers=peers, receive_lines=receive_lines, host=host, locked=locked):
            body = {"self_id": self_id, "peers": [_peer_wire(peer) for peer in peers], "host": host,
                    "locked": locked}
            if receive_lines is not None:
                body["receive_lines"] = receive_lines
        case PeerJoin(peer=peer) | PeerUpdate(peer=peer):
            body = {"peer": _peer_wire(peer)}
        case Chat(text=text, sealed=sealed):
            body = {"text": text} if text is not None else {"sealed": sealed}
        case ChatFrom(sender=sender, text=text, sealed=sealed):
            body = {"from": sender, **({"text": text} if text is not None else {"sealed": sealed})}
        case HostAction(peer_id=peer_id):
            body = {"peer_id": peer_id}
        case Host(peer_id=peer_id, token=token):
            body = {"peer_id": peer_id} | ({} if token is None else {"token": token})
        case Lobby(waiting=waiting):
            body = {"waiting": [{"id": p.id, "name": p.name} for p in waiting]}
        case MuteRequest(sender=sender):
            body = {"from": sender}
        case _:
            # The rest are flat: their fields are the JSON's.
            body = asdict(message)
    return {"type": message.TYPE.value, **body}


def _peer_wire(peer: PeerInfo) -> dict[str, Any]:
    return {"id": peer.id, "name": peer.name, "muted": peer.muted}


# Parsing. Each parser gets the decoded object and raises SignalingError naming what is wrong.

# The shortest sealed message is an IV and a tag around one byte: 29 bytes, 39 characters of base64url.
MIN_SEALED_CHARS = 39
SEALED = re.compile(rf"[A-Za-z0-9_-]{{{MIN_SEALED_CHARS},{MAX_SEALED_CHARS}}}")


def _sdp(data: Mapping[str, Any], kind: MessageType) -> str:
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp.strip():
        raise SignalingError(f"{kind} needs an 'sdp' string")
    return sdp


def _candidate(data: Mapping[str, Any]) -> Candidate:
    raw = data.get("candidate")
    if raw is None:
        return Candidate(None)
    if not isinstance(raw, dict):
        raise SignalingError("candidate must be an object or null")
    line = raw.get("candidate")
    mid = raw.get("sdpMid")
    index = raw.get("sdpMLineIndex")
    if not isinstance(line, str) or not (mid is None or isinstance(mid, str)):
        raise SignalingError("candidate needs a 'candidate' string and an optional 'sdpMid' string")
    if not (index is None or (_is_integer(index) and index >= 0)):
        raise SignalingError("sdpMLineIndex must be a non-negative integer")
    if not mid and index is None and line:
        raise SignalingError("candidate needs sdpMid or sdpMLineIndex")
    return Candidate(IceCandidate(line, mid, index))


def _heartbeat(data: Mapping[str, Any]) -> Heartbeat:
    # The WebSocket's own pings and read timeout judge liveness; a heartbeat only has to be well-formed.
    ts = data.get("ts")
    if ts is not None and not (_is_integer(ts) or isinstance(ts, float)):
        raise SignalingError("heartbeat 'ts' must be a number")
    return Heartbeat(ts)


def _mute(data: Mapping[str, Any]) -> Mute:
    muted = data.get("muted")
    if not isinstance(muted, bool):
        raise SignalingError("mute needs a boolean 'muted'")
    return Mute(muted)


def _chat(data: Mapping[str, Any]) -> Chat:
    text, sealed = data.get("text"), data.get("sealed")
    if isinstance(text, str) and sealed is None:
        return Chat(text=chat_text(text))
    if isinstance(sealed, str) and text is None:
        if SEALED.fullmatch(sealed) is None:
            raise SignalingError(f"chat 'sealed' must be {MIN_SEALED_CHARS}-{MAX_SEALED_CHARS} characters of base64url")
        return Chat(sealed=sealed)
    raise SignalingError("chat needs a 'text' string or a 'sealed' string, not both")


def chat_text(text: str) -> str:
    """A plain chat message as sent, or :class:`SignalingError` saying why not: plain text and emoji, some
    visible, at most MAX_CHAT_CHARS code points."""
    if len(text) > MAX_CHAT_CHARS:
        raise SignalingError(f"a chat message holds at most {MAX_CHAT_CHARS} characters")
    if not text.strip():
        raise SignalingError("a chat message needs some text")
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise SignalingError("a chat message cannot hold control characters")
    return text


def _claim_host(data: Mapping[str, Any]) -> ClaimHost:
    token = data.get("token")
    if not isinstance(token, str) or HOST_TOKEN.fullmatch(token) is None:
        raise SignalingError("claim_host needs the 'token' string the server gave")
    return ClaimHost(token)


def _host_action(kind: MessageType) -> Callable[[Mapping[str, Any]], HostAction]:
    def parse(data: Mapping[str, Any]) -> HostAction:
        peer_id = data.get("peer_id")
        if not isinstance(peer_id, str) or not 0 < len(peer_id) <= PEER_ID_CHARS:
            raise SignalingError(f"{kind} needs a 'peer_id' string")
        return HostAction(kind, peer_id)

    return parse


def _lock(data: Mapping[str, Any]) -> Lock:
    return Lock(_field(data, "locked", bool))


def _is_integer(value: object) -> bool:
    # JSON's true and false arrive as bool, which Python counts as int.
    return isinstance(value, int) and not isinstance(value, bool)


_CLIENT_PARSERS: dict[str, Callable[[Mapping[str, Any]], ClientMessage]] = {
    MessageType.OFFER: lambda data: Offer(_sdp(data, MessageType.OFFER)),
    MessageType.ANSWER: lambda data: Answer(_sdp(data, MessageType.ANSWER)),
    MessageType.CANDIDATE: _candidate,
    MessageType.HEARTBEAT: _heartbeat,
    MessageType.MUTE: _mute,
    MessageType.CHAT: _chat,
    MessageType.CLAIM_HOST: _claim_host,
    MessageType.LOCK: _lock,
    **{kind: _host_action(kind) for kind in HOST_ACTIONS},
}


def parse_client_message(text: str | bytes) -> ClientMessage | None:
    """What a client's frame asks for; ``None`` for a type the contract does not know (ignored, as the
    original did, so that a newer page can talk to an older server). Raises :class:`MessageRefused`."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise MessageRefused("not_json", "message is not JSON") from None
    if not isinstance(data, dict):
        raise MessageRefused("not_object", "message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise MessageRefused("no_type", "message needs a string 'type'")
    parse = _CLIENT_PARSERS.get(kind)
    if parse is None:
        return None
    try:
        return parse(data)
    except SignalingError as exc:
        raise MessageRefused(kind, str(exc)) from None


def _field(data: Mapping[str, Any], name: str, kind: type[Any]) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise SignalingError(f"{data.get('type')} needs a {kind.__name__} {name!r}")
    return value


def _peer(data: object) -> PeerInfo:
    if not isinstance(data, dict):
        raise SignalingError("a peer must be an object")
    return PeerInfo(_field(data, "id", str), _field(data, "name", str), _field(data, "muted", bool))


def _room_state(data: Mapping[str, Any]) -> RoomState:
    lines = data.get("receive_lines")
    if lines is not None and not (_is_integer(lines) and 0 <= lines <= MAX_RECEIVE_LINES):
        raise SignalingError(f"room_state 'receive_lines' must be an integer from 0 to {MAX_RECEIVE_LINES}")
    peers = tuple(_peer(peer) for peer in _field(data, "peers", list))
    host = data.get("host")
    if host is not None and not isinstance(host, str):
        raise SignalingError("room_state 'host' must be a peer id or null")
    return RoomState(_field(data, "self_id", str), peers, lines, host, data.get("locked") is True)


def _forwarding(data: Mapping[str, Any]) -> Forwarding:
    lines = _field(data, "lines", dict)
    if not all(peer is None or isinstance(peer, str) for peer in lines.values()):
        raise SignalingError("forwarding 'lines' maps line ids to a peer id or null")
    return Forwarding(dict(lines))


def _levels(data: Mapping[str, Any]) -> Levels:
    levels = _field(data, "levels", dict)
    if not all(_is_integer(level) and 0 <= level <= 127 for level in levels.values()):
        raise SignalingError("levels 'levels' maps peer ids to a level 0-127")
    return Levels(dict(levels))


def _optional_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise SignalingError(f"{data.get('type')} '{name}' must be a string")
    return value


def _waiting(data: object) -> PeerInfo:
    if not isinstance(data, dict):
        raise SignalingError("lobby 'waiting' holds objects")
    return PeerInfo(_field(data, "id", str), _field(data, "name", str), False)


def _chat_from(data: Mapping[str, Any]) -> ChatFrom:
    chat = _chat(data)
    return ChatFrom(_field(data, "from", str), chat.text, chat.sealed)


_SERVER_PARSERS: dict[str, Callable[[Mapping[str, Any]], ServerMessage]] = {
    MessageType.ROOM_STATE: _room_state,
    MessageType.PEER_JOIN: lambda data: PeerJoin(_peer(data.get("peer"))),
    MessageType.PEER_UPDATE: lambda data: PeerUpdate(_peer(data.get("peer"))),
    MessageType.PEER_LEAVE: lambda data: PeerLeave(_field(data, "peer_id", str)),
    MessageType.OFFER: lambda data: Offer(_sdp(data, MessageType.OFFER)),
    MessageType.ANSWER: lambda data: Answer(_sdp(data, MessageType.ANSWER)),
    MessageType.ERROR: lambda data: ErrorMessage(_field(data, "message", str)),
    MessageType.FORWARDING: _forwarding,
    MessageType.LEVELS: _levels,
    MessageType.CHAT: _chat_from,
    MessageType.HOST: lambda data: Host(_field(data, "peer_id", str), _optional_str(data, "token")),
    MessageType.LOCK: _lock,
    MessageType.LOBBY: lambda data: Lobby(tuple(_waiting(p) for p in _field(data, "waiting", list))),
    MessageType.LOBBY_WAIT: lambda data: LobbyWait(),
    MessageType.MUTE_REQUEST: lambda data: MuteRequest(_field(data, "from", str)),
}


def parse_server_message(data: Mapping[str, Any]) -> ServerMessage | None:
    """A decoded server message as the headless client reads it; ``None`` for a type it does not know.
    Raises :class:`SignalingError` for a known type with missing or mistyped fields."""
    kind = data.get("type")
    parse = _SERVER_PARSERS.get(kind) if isinstance(kind, str) else None
    return None if parse is None else parse(data)
