"""The signaling contract: what each message parses into or why it is refused, the close codes that mean
"stay away", the room-id rule, and the page's generated copy (web/static/js/contract.js) being current.
That the page's validators agree with these is proven in Chromium: tests/browser/test_js_units.py."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ghosttalk.contract import (
    Answer,
    Candidate,
    Chat,
    ChatFrom,
    ClaimHost,
    ClientMessage,
    CloseCode,
    ErrorMessage,
    Forwarding,
    Heartbeat,
    Host,
    HostAction,
    IceCandidate,
    Levels,
    Lobby,
    LobbyWait,
    Lock,
    MessageRefused,
    MessageType,
    Mute,
    MuteRequest,
    Offer,
    PeerInfo,
    PeerJoin,
    PeerLeave,
    PeerUpdate,
    RoomState,
    ServerMessage,
    SignalingError,
    is_room_id,
    parse_client_message,
    parse_server_message,
    stays_away,
    validate_room,
    wire,
)
from ghosttalk.contract.messages import HOST_ACTIONS
from ghosttalk.contract.page import CONTRACT_FILE, render_module

SDP = "v=0\r\n"
HOST = "candidate:1 1 udp 1 10.0.0.1 5000 typ host"


def test_the_pages_copy_is_what_the_generator_writes() -> None:
    assert CONTRACT_FILE.read_text(encoding="utf-8") == render_module(), "regenerate with: python -m ghosttalk.contract"


@pytest.mark.parametrize(
    ("frame", "parsed"),
    [
        ({"type": "offer", "sdp": SDP}, Offer(SDP)),
        ({"type": "answer", "sdp": SDP, "extra": 1}, Answer(SDP)),
        ({"type": "candidate", "candidate": None}, Candidate(None)),
        ({"type": "candidate"}, Candidate(None)),
        (
            {"type": "candidate", "candidate": {"candidate": HOST, "sdpMid": "0"}},
            Candidate(IceCandidate(HOST, "0", None)),
        ),
        (
            {"type": "candidate", "candidate": {"candidate": "x", "sdpMid": "", "sdpMLineIndex": 0}},
            Candidate(IceCandidate("x", "", 0)),
        ),
        # The end of a generation: an empty line needs no m-line.
        ({"type": "candidate", "candidate": {"candidate": ""}}, Candidate(IceCandidate("", None, None))),
        ({"type": "heartbeat"}, Heartbeat(None)),
        ({"type": "heartbeat", "ts": 1700000000000}, Heartbeat(1700000000000)),
        ({"type": "heartbeat", "ts": 1.5}, Heartbeat(1.5)),
        ({"type": "mute", "muted": True}, Mute(True)),
        # Unknown types are ignored: a newer page may talk to an older server.
        ({"type": "hello"}, None),
    ],
)
def test_client_messages(frame: dict[str, Any], parsed: ClientMessage | None) -> None:
    assert parse_client_message(orjson.dumps(frame).decode()) == parsed


@pytest.mark.parametrize(
    ("text", "kind", "error"),
    [
        ("{", "not_json", "message is not JSON"),
        ("[1]", "not_object", "message must be a JSON object"),
        ('{"sdp": "x"}', "no_type", "message needs a string 'type'"),
        ('{"type": 7}', "no_type", "message needs a string 'type'"),
        ('{"type": "offer"}', "offer", "offer needs an 'sdp' string"),
        ('{"type": "offer", "sdp": " \\r\\n"}', "offer", "offer needs an 'sdp' string"),
        ('{"type": "answer", "sdp": ["v=0"]}', "answer", "answer needs an 'sdp' string"),
        ('{"type": "candidate", "candidate": "x"}', "candidate", "candidate must be an object or null"),
        (
            '{"type": "candidate", "candidate": {"candidate": 5, "sdpMid": "0"}}',
            "candidate",
            "candidate needs a 'candidate' string and an optional 'sdpMid' string",
        ),
        (
            '{"type": "candidate", "candidate": {"candidate": "x", "sdpMid": 0}}',
            "candidate",
            "candidate needs a 'candidate' string and an optional 'sdpMid' string",
        ),
        (
            '{"type": "candidate", "candidate": {"candidate": "x", "sdpMLineIndex": -1}}',
            "candidate",
            "sdpMLineIndex must be a non-negative integer",
        ),
        (
            '{"type": "candidate", "candidate": {"candidate": "x", "sdpMLineIndex": true}}',
            "candidate",
            "sdpMLineIndex must be a non-negative integer",
        ),
        (
            '{"type": "candidate", "candidate": {"candidate": "x"}}',
            "candidate",
            "candidate needs sdpMid or sdpMLineIndex",
        ),
        ('{"type": "heartbeat", "ts": "now"}', "heartbeat", "heartbeat 'ts' must be a number"),
        ('{"type": "heartbeat", "ts": false}', "heartbeat", "heartbeat 'ts' must be a number"),
        ('{"type": "mute", "muted": 1}', "mute", "mute needs a boolean 'muted'"),
        ('{"type": "mute"}', "mute", "mute needs a boolean 'muted'"),
    ],
)
def test_malformed_client_messages_are_refused_naming_the_fault(text: str, kind: str, error: str) -> None:
    with pytest.raises(MessageRefused) as refused:
        parse_client_message(text)
    assert (refused.value.kind, str(refused.value)) == (kind, error)
    assert isinstance(refused.value, SignalingError)


ANN = PeerInfo("a1", "Ann", False)
TOKEN = "T" * 22

EVERY_MESSAGE: list[tuple[ClientMessage | ServerMessage, dict[str, Any]]] = [
    (Offer(SDP), {"type": "offer", "sdp": SDP}),
    (Answer(SDP), {"type": "answer", "sdp": SDP}),
    (Candidate(None), {"type": "candidate", "candidate": None}),
    (
        Candidate(IceCandidate("c", "0", None)),
        {"type": "candidate", "candidate": {"candidate": "c", "sdpMid": "0", "sdpMLineIndex": None}},
    ),
    (Heartbeat(5), {"type": "heartbeat", "ts": 5}),
    (Heartbeat(), {"type": "heartbeat"}),
    (Mute(False), {"type": "mute", "muted": False}),
    (
        RoomState("a1", (ANN, PeerInfo("b2", "Bob", True))),
        {"type": "room_state", "self_id": "a1", "peers": [
            {"id": "a1", "name": "Ann", "muted": False}, {"id": "b2", "name": "Bob", "muted": True}],
         "host": None, "locked": False},
    ),
    (
        RoomState("a1", (ANN,), receive_lines=2, host="a1", locked=True),
        {"type": "room_state", "self_id": "a1", "peers": [{"id": "a1", "name": "Ann", "muted": False}],
         "receive_lines": 2, "host": "a1", "locked": True},
    ),
    (PeerJoin(ANN), {"type": "peer_join", "peer": {"id": "a1", "name": "Ann", "muted": False}}),
    (PeerUpdate(ANN), {"type": "peer_update", "peer": {"id": "a1", "name": "Ann", "muted": False}}),
    (PeerLeave("a1"), {"type": "peer_leave", "peer_id": "a1"}),
    (ErrorMessage("Room full"), {"type": "error", "message": "Room full"}),
    (
        Forwarding({"line-0": "a1", "line-1": None}),
        {"type": "forwarding", "lines": {"line-0": "a1", "line-1": None}},
    ),
    (Levels({"a1": 30, "b2": 127}), {"type": "levels", "levels": {"a1": 30, "b2": 127}}),
    (Chat(text="hi 🙂"), {"type": "chat", "text": "hi 🙂"}),
    (Chat(sealed="A" * 40), {"type": "chat", "sealed": "A" * 40}),
    (ChatFrom("a1", text="hi"), {"type": "chat", "from": "a1", "text": "hi"}),
    (ChatFrom("a1", sealed="A" * 40), {"type": "chat", "from": "a1", "sealed": "A" * 40}),
    (ClaimHost(TOKEN), {"type": "claim_host", "token": TOKEN}),
    *((HostAction(kind, "b2"), {"type": kind.value, "peer_id": "b2"}) for kind in sorted(HOST_ACTIONS)),
    (Lock(True), {"type": "lock", "locked": True}),
    (Host("a1"), {"type": "host", "peer_id": "a1"}),
    (Host("a1", TOKEN), {"type": "host", "peer_id": "a1", "token": TOKEN}),
    (Lobby((PeerInfo("c3", "Cat", False),)), {"type": "lobby", "waiting": [{"id": "c3", "name": "Cat"}]}),
    (LobbyWait(), {"type": "lobby_wait"}),
    (MuteRequest("a1"), {"type": "mute_request", "from": "a1"}),
]


@pytest.mark.parametrize(("message", "json"), EVERY_MESSAGE)
def test_every_message_travels_as_the_contract_says_and_parses_back(
    message: ClientMessage | ServerMessage, json: dict[str, Any]
) -> None:
    assert wire(message) == json
    if isinstance(message, Offer | Answer | Candidate | Heartbeat | Mute | Chat | ClaimHost | HostAction | Lock):
        assert parse_client_message(orjson.dumps(json)) == message
    server_types = (
        RoomState | PeerJoin | PeerUpdate | PeerLeave | Offer | Answer | ErrorMessage | Forwarding | Levels | ChatFrom
        | Host | Lock | Lobby | LobbyWait | MuteRequest
    )
    if isinstance(message, server_types):
        assert parse_server_message(json) == message


def test_every_type_has_a_message() -> None:
    assert {message.TYPE for message, _ in EVERY_MESSAGE} == set(MessageType)


@pytest.mark.parametrize(
    "data",
    [
        {"type": "room_state", "self_id": 1, "peers": []},
        {"type": "room_state", "self_id": "a1", "peers": [{"id": "b2", "name": "Bob"}]},
        {"type": "room_state", "self_id": "a1", "peers": [], "receive_lines": -1},
        {"type": "room_state", "self_id": "a1", "peers": [], "receive_lines": True},
        {"type": "room_state", "self_id": "a1", "peers": [], "receive_lines": 100},  # more than a full room
        {"type": "peer_join", "peer": None},
        {"type": "peer_update", "peer": {"id": "a1", "name": "Ann", "muted": 0}},
        {"type": "peer_leave"},
        {"type": "error", "message": None},
        {"type": "forwarding", "lines": ["a1"]},
        {"type": "forwarding", "lines": {"line-0": 3}},
        {"type": "levels", "levels": {"a1": 128}},
        {"type": "levels", "levels": {"a1": True}},
        {"type": "chat", "text": "hi"},  # from whom?
        {"type": "chat", "from": "a1", "sealed": "not base64url!"},
        {"type": "room_state", "self_id": "a1", "peers": [], "host": 3},
        {"type": "host"},
        {"type": "lobby", "waiting": [{"id": "c3"}]},
        {"type": "mute_request"},
    ],
)
def test_malformed_server_messages_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(SignalingError):
        parse_server_message(data)


def test_unknown_server_messages_are_ignored() -> None:
    assert parse_server_message({"type": "hello"}) is None
    assert parse_server_message({"type": 3}) is None


@pytest.mark.parametrize(
    ("code", "stay_away"),
    [
        (CloseCode.GOING_AWAY, False),
        (CloseCode.POLICY, False),
        (CloseCode.CONNECTION_LOST, False),
        (CloseCode.TRY_AGAIN_LATER, True),
        (CloseCode.KICKED, True),
        (CloseCode.BANNED, True),
        (4001, True),
        (1000, False),
        (1006, False),
        (None, False),
    ],
)
def test_close_codes_that_mean_stay_away(code: int | None, stay_away: bool) -> None:
    assert stays_away(code) is stay_away


@pytest.mark.parametrize(
    ("room", "ok"),
    [
        ("a", True),
        ("A" * 64, True),
        ("x-y_Z09", True),
        ("A" * 65, False),
        ("", False),
        ("a b", False),
        ("a/b", False),
        ("abc\n", False),
        ("é", False),
        ("٣", False),  # a digit, but not an ASCII one
    ],
)
def test_room_ids(room: str, ok: bool) -> None:
    assert is_room_id(room) is ok
    if ok:
        assert validate_room(room) == room
    else:
        with pytest.raises(ValueError, match="room"):
            validate_room(room)
