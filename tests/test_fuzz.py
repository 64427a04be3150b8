"""Signaling fuzz: Hypothesis throws hostile frames at /ws while two calls are measured.

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
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from ghosttalk.client.participant import Client
from tests.conftest import RELAXED_LIMITS
from tests.support.callprocess import CallProcess
from tests.support.calls import assert_delivered
from tests.support.eventually import eventually
from tests.support.fuzzing import CALL_ROOM, Scene, SocketPlan, scene_strategy, valid_sdps
from tests.support.probes import admin_json, tracebacks, udp_sockets
from tests.support.rawpeer import dead_offer
from tests.support.rawws import HandshakeRefused, RawWebSocket
from tests.support.server import ServerProcess

DEFAULT_MESSAGES = int(os.environ.get("GHOSTTALK_FUZZ_MESSAGES", "500"))
FULL_MESSAGES = int(os.environ.get("GHOSTTALK_FUZZ_MESSAGES", "10000"))
QUIET_ROOM = "quiet-call"
# The fuzzer must reach the parser, not the rate limiter (the limits have tests of their own).
FUZZ_LIMITS = [
    *RELAXED_LIMITS,
    "--message-rate", "1000000", "--message-burst", "1000000", "--offers-per-minute", "1000000",
]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("fuzz"), FUZZ_LIMITS).start()
    try:
        yield proc
    finally:
        proc.stop()


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
            await asyncio.sleep(0.05)  # deliberate: time for a surplus update to show up
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
        await asyncio.sleep(0.3)  # as in negotiated(): nothing tells a client the server applied its answer
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
        loop.run_until_complete(eventually(lambda: admin_json(server, "internals")["peer_media_alive"] == 0, 20))
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
