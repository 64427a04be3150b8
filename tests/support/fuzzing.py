"""What the signaling fuzz sends: Hypothesis strategies for WebSocket frames (valid, hostile and broken
messages, mutated SDP, garbage candidates, fragments) and for scenes of one to three sockets sending them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import orjson
from hypothesis import strategies as st

from tests.support.rawpeer import dead_offer
from tests.support.rawws import OP_BINARY, OP_CONTINUATION, OP_PING, OP_TEXT

CALL_ROOM = "fuzz-call"  # the measured call the fuzzer shares a room with
MAX_FRAME = 64 * 1024
TYPES = ("offer", "answer", "candidate", "heartbeat", "mute")


@dataclass(slots=True)
class Frame:
    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0
    # The close code this frame must provoke (None: the session goes on).
    fatal: int | None = None
    # A text frame that is not a JSON object with a string type: it must get an `error`.
    invalid: bool = False
    # A valid mute: it must be applied (one peer_update about ourselves).
    mute: bool = False


def text_frame(text: str) -> Frame:
    data = text.encode()
    if len(data) > MAX_FRAME:
        return Frame(OP_TEXT, data, fatal=1009)
    try:
        message = orjson.loads(data)  # the server's own parser decides what is JSON
    except orjson.JSONDecodeError:
        return Frame(OP_TEXT, data, invalid=True)
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return Frame(OP_TEXT, data, invalid=True)
    is_mute = message["type"] == "mute" and isinstance(message.get("muted"), bool)
    return Frame(OP_TEXT, data, mute=is_mute)


def message_frame(message: object) -> Frame:
    return text_frame(json.dumps(message))


async def valid_sdps() -> list[str]:
    offer = await dead_offer()
    return [offer, offer.replace("a=setup:actpass", "a=setup:active")]


SDP_JUNK = st.sampled_from([
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "m=audio 0 RTP/AVP 0", "m=audio 9 UDP/TLS/RTP/SAVPF", "a=rtpmap:96 opus/0",
    "a=rtpmap:96", "a=ice-ufrag:", "a=fingerprint:sha-256 zz", "a=fingerprint:md5 00", "a=setup:bogus",
    "a=ssrc:notanumber cname:x", "a=group:BUNDLE 7", "a=mid:", "a=sctp-port:-1", "a=candidate:garbage",
    "a=extmap:999999 urn:x", "a=rtcp-fb:96 nack", "c=IN IP6 ::1", "a=msid:", "o=- x y IN IP4", "b=AS:-5",
    "a=rtpmap:0 PCMU/8000", "a=inactive", "a=sendonly", "a=recvonly", "m=application 9 UDP/DTLS/SCTP x",
])


@st.composite
def mutated_sdp(draw: st.DrawFn, base: list[str]) -> str:
    lines = draw(st.sampled_from(base)).split("\r\n")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "duplicate", "replace", "junk", "number", "truncate"]))
        if action == "drop":
            del lines[at]
        elif action == "duplicate":
            lines.insert(at, lines[at])
        elif action == "replace":
            lines[at] = draw(st.text(max_size=40))
        elif action == "junk":
            lines.insert(at, draw(SDP_JUNK))
        elif action == "number":
            lines[at] = re.sub(r"\d+", str(draw(st.integers(-(2**40), 2**40))), lines[at], count=1)
        else:
            lines = lines[:at]
        if not lines:
            break
    separator = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    return separator.join(lines)


# Loopback and invalid addresses only: a candidate the server accepts is checked, and checks stay local.
ADDRESSES = st.sampled_from(
    ["127.0.0.1", "127.0.0.2", "0.0.0.0", "::1", "::", "x.local", "abc", "256.0.0.1", "127.0.0.1%lo", "", "-1"]
)


@st.composite
def candidate_line(draw: st.DrawFn) -> str:
    parts = [
        draw(st.sampled_from(["1", "abc", "", "9" * 40])),
        draw(st.sampled_from(["1", "2", "0", "-1", "x", "99999999999"])),
        draw(st.sampled_from(["udp", "UDP", "tcp", "sctp", ""])),
        str(draw(st.integers(-(2**33), 2**33))),
        draw(ADDRESSES),
        draw(st.sampled_from(["9", "0", "65535", "65536", "-1", "x", "3478"])),
        draw(st.sampled_from(["typ", "type", ""])),
        draw(st.sampled_from(["host", "srflx", "relay", "prflx", "bogus", ""])),
    ]
    if draw(st.booleans()):
        parts += draw(st.lists(st.sampled_from(
            ["raddr", "rport", "generation", "tcptype", "0.0.0.0", "0", "x", "active", "ufrag", "abcd"]
        ), max_size=6))
    prefix = draw(st.sampled_from(["candidate:", "", "a=candidate:"]))
    return prefix + " ".join(parts)


JSON_LEAVES = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def message_strategy(sdps: list[str]) -> st.SearchStrategy[Frame]:
    sdp = st.sampled_from(sdps) | mutated_sdp(sdps) | st.text(max_size=200) | JSON_VALUES
    candidate = st.none() | JSON_VALUES | st.fixed_dictionaries(
        {"candidate": candidate_line() | JSON_VALUES},
        optional={
            "sdpMid": st.sampled_from(["0", "1", "", "99"]) | JSON_VALUES,
            "sdpMLineIndex": st.integers(-2, 3) | JSON_VALUES,
        },
    )
    # Plain text of every length around the limit, control characters and emoji included; sealed messages of
    # every length around theirs, in and out of base64url.
    chat_text = st.text(max_size=1100) | st.integers(990, 1010).map(lambda n: "é" * n) | JSON_VALUES
    sealed = st.text(alphabet="AZaz09-_=+/ ", min_size=0, max_size=5500) | JSON_VALUES
    typed = st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["offer", "answer"]), "sdp": sdp}),
        st.fixed_dictionaries({"type": st.just("candidate"), "candidate": candidate}),
        st.fixed_dictionaries({"type": st.just("mute")}, optional={"muted": st.booleans() | JSON_VALUES}),
        st.fixed_dictionaries({"type": st.just("heartbeat")}, optional={"ts": JSON_VALUES}),
        st.fixed_dictionaries({"type": st.just("chat")}, optional={"text": chat_text, "sealed": sealed}),
        # A host's messages, from anyone: ids nobody has, tokens nobody was given. Never a real lock (it would
        # send the scene's other sockets to the lobby, which tests/test_hosts.py covers).
        st.fixed_dictionaries(
            {"type": st.sampled_from(["remove", "ask_mute", "hand_over", "admit", "decline"])},
            optional={"peer_id": st.text(max_size=40) | st.from_regex(r"[0-9a-f]{16}", fullmatch=True) | JSON_VALUES},
        ),
        st.fixed_dictionaries(
            {"type": st.just("lock")}, optional={"locked": JSON_VALUES.filter(lambda v: v is not True)}
        ),
        st.fixed_dictionaries({"type": st.just("claim_host")}, optional={"token": st.text(max_size=30) | JSON_VALUES}),
        st.fixed_dictionaries(
            {"type": st.sampled_from(TYPES) | st.text(max_size=12) | JSON_VALUES},
            optional={"sdp": sdp, "candidate": candidate, "muted": JSON_VALUES, "ts": JSON_VALUES,
                      "text": chat_text, "sealed": sealed, "from": JSON_VALUES},
        ),
    )
    in_order_or_not = st.sampled_from([
        {"type": "offer", "sdp": sdps[0]},
        {"type": "answer", "sdp": sdps[1]},
        {"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}},
        {"type": "candidate", "candidate": None},
        {"type": "mute", "muted": True},
        {"type": "mute", "muted": False},
        {"type": "heartbeat", "ts": 1},
        {"type": "chat", "text": "hello 🙂"},
        {"type": "chat", "sealed": "A" * 60},
    ])
    bad_utf8 = st.binary(min_size=1, max_size=64).filter(lambda b: not _utf8(b))
    huge = st.integers(1000, MAX_FRAME + 4000).map(
        lambda n: text_frame(json.dumps({"type": "heartbeat", "pad": "x" * n}))
    )
    deep = st.integers(1, 40000).map(lambda n: text_frame("[" * n + "]" * n))
    deep_objects = st.integers(1, 8000).map(lambda n: text_frame('{"type":' * n + "1" + "}" * n))
    protocol_breakers = st.one_of(
        bad_utf8.map(lambda b: Frame(OP_TEXT, b, fatal=1007)),
        st.binary(min_size=126, max_size=300).map(lambda b: Frame(OP_PING, b, fatal=1002)),
        st.sampled_from([0x3, 0x7, 0xB, 0xF]).map(lambda op: Frame(op, b"x", fatal=1002)),
        st.integers(1, 7).map(lambda rsv: Frame(OP_TEXT, b"{}", rsv=rsv, fatal=1002)),
        st.just(Frame(OP_CONTINUATION, b"lonely", fatal=1002)),
    )
    # Branches are drawn evenly; repeating one weights it. Frames that end the socket stay rare, so that
    # most sockets get through their whole list.
    return st.one_of(
        typed.map(message_frame),
        typed.map(message_frame),
        typed.map(message_frame),
        in_order_or_not.map(message_frame),
        in_order_or_not.map(message_frame),
        JSON_VALUES.map(message_frame),
        st.text(max_size=100).map(text_frame),
        st.binary(max_size=200).map(lambda b: Frame(OP_BINARY, b, invalid=True)),
        st.binary(max_size=125).map(lambda b: Frame(OP_PING, b)),
        deep,
        deep_objects,
        huge,
        protocol_breakers,
    )


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def fragmented(frame: Frame, parts: int) -> list[Frame]:
    """The same text message split into ``parts`` fragments (the server must reassemble it)."""
    size = max(1, len(frame.payload) // parts)
    chunks = [frame.payload[i : i + size] for i in range(0, len(frame.payload), size)] or [b""]
    out = [Frame(OP_TEXT if i == 0 else OP_CONTINUATION, c, fin=i == len(chunks) - 1) for i, c in enumerate(chunks)]
    out[-1].fatal, out[-1].invalid, out[-1].mute = frame.fatal, frame.invalid, frame.mute
    return out


@dataclass(slots=True)
class SocketPlan:
    room: str
    name: str
    frames: list[Frame]
    ending: str  # "close": a clean close; "abort": vanish (TCP reset); "check": prove the session goes on


@dataclass(slots=True)
class Scene:
    sockets: list[SocketPlan]
    storm: int = 0  # sockets opened and dropped at once (some in the middle of the handshake)


def scene_strategy(sdps: list[str]) -> st.SearchStrategy[Scene]:
    frames = message_strategy(sdps)

    @st.composite
    def socket_plan(draw: st.DrawFn) -> SocketPlan:
        room = draw(st.sampled_from([CALL_ROOM, CALL_ROOM, "fz-a", "fz-b"]) | st.from_regex(r"fz-[a-z0-9_-]{1,8}",
                                                                                            fullmatch=True))
        good_name = st.sampled_from(["fuzzer", "f" * 12, "名前", " padded "])
        name = draw(st.one_of(good_name, good_name, good_name, st.text(max_size=14)))
        sent: list[Frame] = []
        for frame in draw(st.lists(frames, min_size=1, max_size=40)):
            if frame.opcode == OP_TEXT and frame.fin and frame.fatal is None and draw(st.integers(0, 9)) == 0:
                sent += fragmented(frame, draw(st.integers(2, 4)))
            else:
                sent.append(frame)
        ending = draw(st.sampled_from(["check", "check", "close", "abort"]))
        return SocketPlan(room, name, sent, ending)

    return st.one_of(
        st.builds(Scene, st.lists(socket_plan(), min_size=1, max_size=3)),
        st.builds(Scene, st.just([]), st.integers(2, 12)),
    )
