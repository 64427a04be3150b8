"""A signaling session's dispatch, without a server: each client message reaches the right handler, bad input
is answered with an error while the session goes on, a handler's bug is contained, and the rate limits end
only the session that broke them.

The WebSocket and the room manager are stand-ins that record what the session does to them; the event log
and the metrics are the real ones.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import WSCloseCode, WSMessage, WSMsgType, web
from prometheus_client.parser import text_string_to_metric_families

from ghosttalk.config import Config
from ghosttalk.contract import CloseCode, IceCandidate, SignalingError
from ghosttalk.ops.eventlog import EventLog
from ghosttalk.ops.metrics import LiveStats, Metrics
from ghosttalk.server.rooms import JoinRefused, Peer, RoomManager
from ghosttalk.server.signaling import SignalingSession
from tests.support.eventually import eventually


class FakeSocket:
    """What the session reads (frames fed by the test) and writes (decoded JSON, the close it asked for)."""

    def __init__(self) -> None:
        self._incoming: asyncio.Queue[WSMessage | None] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_message = b""

    def feed(self, data: str | bytes) -> None:
        kind = WSMsgType.TEXT if isinstance(data, str) else WSMsgType.BINARY
        self._incoming.put_nowait(WSMessage(kind, data, None))

    def send_json(self, message: object) -> None:
        self.feed(json.dumps(message))

    def hang_up(self) -> None:
        """The client goes away: the session's read loop ends."""
        self._incoming.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[WSMessage]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[WSMessage]:
        while (message := await self._incoming.get()) is not None:
            yield message

    async def send_str(self, data: str) -> None:
        await asyncio.sleep(0.001)  # a write takes a moment, as on a real socket
        self.sent.append(json.loads(data))

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> bool:
        self.close_code, self.close_message = code, message
        self.hang_up()
        return True

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    def errors(self) -> list[str]:
        return [m["message"] for m in self.sent if m.get("type") == "error"]


@dataclass
class FakeMedia:
    """The peer's media side: records what the session hands it; ``fail`` makes a handler raise."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail: BaseException | None = None

    def _record(self, name: str, value: Any) -> None:
        self.calls.append((name, value))
        if self.fail is not None:
            raise self.fail

    async def handle_offer(self, sdp: str) -> None:
        self._record("offer", sdp)

    async def handle_answer(self, sdp: str) -> None:
        self._record("answer", sdp)

    def handle_candidate(self, candidate: IceCandidate | None) -> None:
        self._record("candidate", candidate)


class FakeRooms:
    """Joins everyone as one peer (or refuses with ``refuse``); records leaves and mutes."""

    def __init__(self) -> None:
        self.media = FakeMedia()
        # No room is locked: nobody knocks (server.host_actions.knock reads this).
        self.rooms: dict[str, object] = {}
        self.refuse: str | None = None
        self.peer: Peer | None = None
        self.left: list[str] = []
        self.muted: list[bool] = []

    def join(
        self, room_id: str, name: str, ip: str, disconnect: Callable[[str, CloseCode], None], key_check: str | None,
        *, peer_id: str | None,
    ) -> Peer:
        if self.refuse is not None:
            raise JoinRefused(self.refuse)
        self.peer = Peer("p1", name, ip, room_id, cast(Any, self.media), disconnect)
        return self.peer

    async def leave(self, peer: Peer, reason: str = "left") -> None:
        self.left.append(reason)

    def set_muted(self, peer: Peer, muted: bool) -> None:
        self.muted.append(muted)


@dataclass
class Session:
    ws: FakeSocket
    rooms: FakeRooms
    metrics: Metrics
    events: EventLog
    task: asyncio.Task[None]

    def errors_counted(self, kind: str) -> float:
        text = self.metrics.render().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "ghosttalk_signaling_errors_total" and sample.labels.get("kind") == kind
        )

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [cast(dict[str, Any], e) for e in self.events.recent(1000) if e["event"] == event]

    async def ended(self) -> None:
        await asyncio.wait_for(self.task, 5)


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Session]]:
    sessions: list[Session] = []

    def start_session(refuse: str | None = None, **settings: Any) -> Session:
        """A session joining room-1 as ann; ``refuse``: the room manager refuses the join with that reason."""
        ws, rooms = FakeSocket(), FakeRooms()
        rooms.refuse = refuse
        metrics, events = Metrics(LiveStats), EventLog(tmp_path / f"events-{len(sessions)}.log")
        session = SignalingSession(
            cast(web.WebSocketResponse, ws), cast(RoomManager, rooms), metrics, events, Config(**settings)
        )
        task = asyncio.create_task(session.run("room-1", "ann", "198.51.100.7"))
        sessions.append(Session(ws, rooms, metrics, events, task))
        return sessions[-1]

    yield start_session
    for session in sessions:
        session.ws.hang_up()
        await asyncio.gather(session.task, return_exceptions=True)
        session.events.close()


async def test_each_message_reaches_its_handler(start: Callable[..., Session]) -> None:
    s = start()
    s.ws.send_json({"type": "offer", "sdp": "v=0 offer"})
    s.ws.send_json({"type": "answer", "sdp": "v=0 answer"})
    s.ws.send_json({"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 1 192.0.2.1 5000 typ host",
                                                       "sdpMid": "0", "sdpMLineIndex": 0}})
    s.ws.send_json({"type": "candidate", "candidate": None})
    s.ws.send_json({"type": "heartbeat", "ts": 5})
    s.ws.send_json({"type": "mute", "muted": True})
    await eventually(lambda: s.rooms.muted, 5, what="the mute applied")
    calls = s.rooms.media.calls
    assert [name for name, _ in calls] == ["offer", "answer", "candidate", "candidate"]
    assert calls[0][1] == "v=0 offer" and calls[1][1] == "v=0 answer"
    ice = calls[2][1]
    assert isinstance(ice, IceCandidate) and ice.sdp_mid == "0" and ice.sdp_mline_index == 0
    assert calls[3][1] is None
    assert s.rooms.muted == [True]
    assert s.ws.errors() == []


async def test_unknown_types_are_ignored(start: Callable[..., Session]) -> None:
    s = start()
    s.ws.send_json({"type": "raise_hand", "raised": True})
    s.ws.send_json({"type": "mute", "muted": False})
    await eventually(lambda: s.rooms.muted, 5, what="the mute after the unknown message")
    assert s.ws.errors() == [] and s.rooms.media.calls == []


@pytest.mark.parametrize(
    ("frame", "kind", "says"),
    [
        ("{not json", "not_json", "not JSON"),
        ("[1, 2]", "not_object", "JSON object"),
        ('{"sdp": "x"}', "no_type", "string 'type'"),
        ('{"type": "offer"}', "offer", "sdp"),
        ('{"type": "mute", "muted": "yes"}', "mute", "muted"),
        (b"\x00binary", "binary_frame", "binary frames are not supported"),
    ],
)
async def test_bad_input_is_answered_counted_and_the_session_goes_on(
    start: Callable[..., Session], frame: str | bytes, kind: str, says: str
) -> None:
    s = start()
    s.ws.feed(frame)
    s.ws.send_json({"type": "mute", "muted": True})
    await eventually(lambda: s.rooms.muted, 5, what="the mute after the bad frame")
    [error] = s.ws.errors()
    assert says in error
    assert s.errors_counted(kind) == 1
    assert not s.task.done() and s.rooms.media.calls == []


async def test_a_handlers_refusal_is_the_clients_error(start: Callable[..., Session]) -> None:
    s = start()
    s.rooms.media.fail = SignalingError("answer without an outstanding offer")
    s.ws.send_json({"type": "answer", "sdp": "v=0"})
    await eventually(s.ws.errors, 5, what="the refusal sent")
    assert s.ws.errors() == ["answer without an outstanding offer"]
    assert s.errors_counted("answer") == 1
    assert s.logged("ERROR") == [] and not s.task.done()


async def test_a_handlers_bug_is_contained_logged_and_reported(start: Callable[..., Session]) -> None:
    s = start()
    s.rooms.media.fail = KeyError("a bug")
    s.ws.send_json({"type": "offer", "sdp": "v=0"})
    await eventually(s.ws.errors, 5, what="the internal error sent")
    assert s.ws.errors() == ["server error while handling offer"]
    assert s.errors_counted("internal") == 1
    [event] = s.logged("ERROR")
    assert event["peer"] == "p1" and event["details"]["what"] == "offer handler"
    s.rooms.media.fail = None
    s.ws.send_json({"type": "offer", "sdp": "v=0 again"})
    await eventually(lambda: len(s.rooms.media.calls), 5, what="the next offer handled", until=lambda n: n == 2)


async def test_too_many_messages_end_only_that_session(start: Callable[..., Session]) -> None:
    s = start(message_rate=0.001, message_burst=3)
    for _ in range(5):
        s.ws.send_json({"type": "heartbeat"})
    await s.ended()
    assert s.ws.errors() == ["too many messages; slow down"]
    assert (s.ws.close_code, s.ws.close_message) == (CloseCode.POLICY, b"limit exceeded: message_rate")
    assert s.rooms.left == ["limit exceeded: message_rate"]
    assert [e["details"]["limit"] for e in s.logged("LIMIT_EXCEEDED")] == ["message_rate"]
    assert s.errors_counted("limit_message_rate") == 1


async def test_too_many_offers_end_the_session_before_the_next_renegotiation(start: Callable[..., Session]) -> None:
    s = start(offers_per_minute=2)
    for index in range(3):
        s.ws.send_json({"type": "offer", "sdp": f"v=0 {index}"})
    await s.ended()
    assert [value for _, value in s.rooms.media.calls] == ["v=0 0", "v=0 1"]
    assert s.ws.errors() == ["too many offers; each one renegotiates the call"]
    assert s.ws.close_code == CloseCode.POLICY and s.rooms.left == ["limit exceeded: offer_rate"]


async def test_a_refused_join_is_said_and_closed_as_try_again_later(start: Callable[..., Session]) -> None:
    s = start(refuse="Room full")
    await s.ended()
    assert s.ws.errors() == ["Room full"]
    assert (s.ws.close_code, s.ws.close_message) == (CloseCode.TRY_AGAIN_LATER, b"Room full")
    assert s.rooms.left == []


async def test_a_disconnect_from_outside_flushes_the_reason_then_closes(start: Callable[..., Session]) -> None:
    s = start()
    await eventually(lambda: s.rooms.peer, 5, what="joined", until=lambda peer: peer is not None)
    peer = s.rooms.peer
    assert peer is not None
    peer.send({"type": "error", "message": "You were kicked"})
    peer.disconnect("kicked by admin", CloseCode.KICKED)
    peer.disconnect("a second reason is ignored", CloseCode.BANNED)
    await s.ended()
    assert s.ws.errors() == ["You were kicked"]
    assert (s.ws.close_code, s.ws.close_message) == (CloseCode.KICKED, b"kicked by admin")
    assert s.rooms.left == ["kicked by admin"]


async def test_a_client_that_goes_away_leaves_with_a_normal_close(start: Callable[..., Session]) -> None:
    s = start()
    s.ws.hang_up()
    await s.ended()
    assert s.rooms.left == ["left"]
    assert s.ws.close_code == WSCloseCode.OK

