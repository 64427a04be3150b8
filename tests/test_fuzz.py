"""Signaling fuzz (issue 7, proof 1): Hypothesis throws hostile frames at /ws while two calls are measured.

Each Hypothesis example is a small scene: one to three sockets, each joining the call's room or some other
room and sending a list of generated frames — wrong types, huge and deeply nested JSON, bad UTF-8, binary and
control frames, fragments, garbage and mutated SDP, garbage candidates, valid messages out of order — then
closing cleanly or vanishing; some scenes are storms of sockets opened and dropped at once. Every socket must
be answered as the contract says: a frame that breaks the WebSocket protocol closes it with the matching
code, nothing else closes it, every valid ``mute`` is applied exactly once, and no ``error`` is an internal
one. Afterwards the server is alive, both three-person calls (one sharing its room with the fuzzer, one not)
delivered >= 99.9 % of their packets throughout, the console holds no traceback, there is one UDP socket,
the connections are all released, and a fresh client joins and talks.

``GHOSTTALK_FUZZ_MESSAGES`` sets the number of frames (default 500; the ``slow`` run sends 10,000).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ghosttalk.client.participant import Client
from tests.conftest import RELAXED_LIMITS
from tests.faults import (
    OP_BINARY,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    CallProcess,
    HandshakeRefused,
    RawWebSocket,
    assert_delivered,
    dead_offer,
    tracebacks,
    wait_until,
)
from tests.helpers import admin_json, udp_sockets
from tests.serverproc import ServerProcess

DEFAULT_MESSAGES = int(os.environ.get("GHOSTTALK_FUZZ_MESSAGES", "500"))
FULL_MESSAGES = int(os.environ.get("GHOSTTALK_FUZZ_MESSAGES", "10000"))
CALL_ROOM, QUIET_ROOM = "fuzz-call", "quiet-call"
MAX_FRAME = 64 * 1024
# The fuzzer must reach the parser, not the rate limiter (the limits have tests of their own).
FUZZ_LIMITS = [
    *RELAXED_LIMITS,
    "--message-rate", "1000000", "--message-burst", "1000000", "--offers-per-minute", "1000000",
]
TYPES = ("offer", "answer", "candidate", "heartbeat", "mute")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("fuzz"), FUZZ_LIMITS).start()
    try:
        yield proc
    finally:
        proc.stop()


# What is sent.


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
    typed = st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["offer", "answer"]), "sdp": sdp}),
        st.fixed_dictionaries({"type": st.just("candidate"), "candidate": candidate}),
        st.fixed_dictionaries({"type": st.just("mute")}, optional={"muted": st.booleans() | JSON_VALUES}),
        st.fixed_dictionaries({"type": st.just("heartbeat")}, optional={"ts": JSON_VALUES}),
        st.fixed_dictionaries(
            {"type": st.sampled_from(TYPES) | st.text(max_size=12) | JSON_VALUES},
            optional={"sdp": sdp, "candidate": candidate, "muted": JSON_VALUES, "ts": JSON_VALUES},
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


# Running a scene and judging the answers.


@dataclass
class Tally:
    frames: int = 0
    sockets: int = 0
    refused: collections.Counter[int] = field(default_factory=collections.Counter)
    closes: collections.Counter[int] = field(default_factory=collections.Counter)
    errors: int = 0


async def run_socket(server: ServerProcess, plan: SocketPlan, tally: Tally) -> None:
    try:
        ws = await RawWebSocket.join(server, plan.room, plan.name)
    except HandshakeRefused as refused:
        tally.refused[refused.status] += 1
        # Only a bad nickname may be refused here (the limits are raised out of reach).
        assert refused.status == 400 and "name" in refused.body, refused
        return
    tally.sockets += 1
    try:
        state = await ws.wait_message("room_state")
        self_id = state["self_id"]
        fatal: int | None = None
        for frame in plan.frames:
            ws.send_frame(frame.opcode, frame.payload, fin=frame.fin, rsv=frame.rsv)
            tally.frames += 1
            if frame.fatal is not None:
                fatal = frame.fatal
                break
        await ws.drain()
        if fatal is not None:
            await ws.wait_closed(15)
            assert ws.close_code == fatal, f"expected close {fatal}, got {ws.close_code} {ws.close_reason!r}"
        elif plan.ending == "check":
            # A final valid mute: once its update is back, every frame before it has been handled.
            ws.send_json({"type": "mute", "muted": True})
            mutes = sum(f.mute for f in plan.frames) + 1

            def updates() -> int:
                return sum(1 for m in ws.of_type("peer_update") if m["peer"]["id"] == self_id)

            await ws.wait_for(lambda: updates() >= mutes or ws.closed, 15)
            assert not ws.closed, f"session closed ({ws.close_code} {ws.close_reason!r}) by well-formed frames"
            await asyncio.sleep(0.05)
            assert updates() == mutes, f"{updates()} mute updates for {mutes} valid mutes"
            invalid = sum(f.invalid for f in plan.frames)
            assert len(ws.of_type("error")) >= invalid, "an invalid message went unanswered"
        errors = ws.of_type("error")
        tally.errors += len(errors)
        for error in errors:
            assert isinstance(error.get("message"), str) and error["message"], error
            assert "server error" not in error["message"], f"internal error: {error}"
        if plan.ending == "abort":
            ws.abort()
        else:
            await ws.close()
        if ws.close_code is not None:
            tally.closes[ws.close_code] += 1
    finally:
        ws.abort()


async def storm(server: ServerProcess, count: int) -> None:
    """Sockets opened and dropped at once: some mid-handshake, some right after it."""

    async def one(index: int) -> None:
        if index % 3 == 0:
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /ws?room=fz-storm&name=s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
            await writer.drain()
            writer.transport.abort()
            return
        ws = await RawWebSocket.join(server, "fz-storm" if index % 2 else CALL_ROOM, "storm")
        ws.abort()

    await asyncio.gather(*(one(i) for i in range(count)))


async def run_scene(server: ServerProcess, scene: Scene, tally: Tally) -> None:
    await asyncio.wait_for(
        asyncio.gather(storm(server, scene.storm), *(run_socket(server, plan, tally) for plan in scene.sockets)), 90
    )


# The test.


def alive(server: ServerProcess) -> bool:
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as response:
        return bool(response.status == 200)


async def fresh_client_talks(server: ServerProcess, call_ids: list[str]) -> str:
    """A newcomer in the fuzzed room hears all three members (and they hear it: checked in the report)."""
    fresh = await Client(server.url, CALL_ROOM, "fresh").connect(timeout=30)
    try:
        await fresh.wait_for(lambda: set(call_ids) <= fresh.negotiated_speakers(), 30)
        await asyncio.sleep(0.3)
        for _ in range(50):
            fresh.send_rtp(b"fresh voice")
            await asyncio.sleep(0.02)
        await fresh.wait_for(lambda: set(call_ids) <= fresh.speakers(), 10)
        assert fresh.self_id is not None
        return fresh.self_id
    finally:
        await fresh.close()


def run_fuzz(server: ServerProcess, target: int) -> Tally:
    loop = asyncio.new_event_loop()
    tally = Tally()
    try:
        sdps = loop.run_until_complete(valid_sdps())
        scenes = scene_strategy(sdps)

        @settings(
            max_examples=25, deadline=None, database=None, phases=[Phase.generate], report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
        )
        @given(scene=scenes)
        def fuzz_round(scene: Scene) -> None:
            try:
                loop.run_until_complete(run_scene(server, scene, tally))
            except AssertionError as exc:
                found = tracebacks(server.console())
                raise AssertionError(f"{exc}\n\nserver tracebacks:\n" + "\n\n".join(found)) from None

        started = time.monotonic()
        with CallProcess(server, [CALL_ROOM, QUIET_ROOM]) as call:
            while tally.frames < target:
                fuzz_round()
            fuzz_seconds = time.monotonic() - started
            assert alive(server)
            fresh_id = loop.run_until_complete(fresh_client_talks(server, call.ready[CALL_ROOM]))
            report = call.finish()
        for result in report.values():
            assert_delivered(result)
        for heard in report[CALL_ROOM]["other_packets"]:
            assert heard.get(fresh_id, 0) >= 40, f"a call member did not hear the newcomer: {heard}"
        assert not tracebacks(server.console()), "\n\n".join(tracebacks(server.console()))
        assert udp_sockets(server.pid) == 1
        # Everyone has gone: every connection, address mapping and task is released.
        loop.run_until_complete(wait_until(lambda: admin_json(server, "internals")["peer_media_alive"] == 0, 20))
        internals = admin_json(server, "internals")
        assert internals["ice_ufrags"] == 0 and internals["ice_addresses"] == 0 and internals["room_tasks"] == 0
        print(
            f"\nfuzz: {tally.frames} frames on {tally.sockets} sockets in {fuzz_seconds:.0f} s; "
            f"refused {dict(tally.refused)}; closes {dict(tally.closes)}; {tally.errors} errors; "
            + "; ".join(f"{room} delivery {r['received']}/{r['expected']}" for room, r in report.items())
        )
        return tally
    finally:
        loop.close()


def test_signaling_fuzz(fuzz_server: ServerProcess) -> None:
    tally = run_fuzz(fuzz_server, DEFAULT_MESSAGES)
    assert tally.frames >= DEFAULT_MESSAGES


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_signaling_fuzz_full(fuzz_server: ServerProcess) -> None:
    tally = run_fuzz(fuzz_server, FULL_MESSAGES)
    assert tally.frames >= FULL_MESSAGES


async def test_fuzz_find_an_offer_repeated_before_our_offer_is_a_collision(fuzz_server: ServerProcess) -> None:
    """Found by the fuzzer: a second offer arriving while the server had added a forwarding track but not
    offered it yet made aiortc raise inside setLocalDescription. It is now dropped as a collision and the
    server's own offer follows."""
    member = await Client(fuzz_server.url, "regression-offer", "member").connect(timeout=30)
    ws = await RawWebSocket.join(fuzz_server, "regression-offer", "twice")
    try:
        await ws.wait_message("room_state")
        offer = await dead_offer()
        ws.send_json({"type": "offer", "sdp": offer})
        ws.send_json({"type": "offer", "sdp": offer})
        await ws.wait_message("offer")
        assert [m["type"] for m in ws.messages] == ["room_state", "answer", "offer"], ws.messages
        assert not tracebacks(fuzz_server.console())
    finally:
        ws.abort()
        await member.close()
