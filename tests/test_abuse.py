"""Abuse, and the limits behind it: one address cannot crowd out a room, one session
cannot flood the server, and every limit answers with a clear error while nobody else notices.

The calls under measurement come from 127.0.0.1; an abuser presents its own address the way a reverse proxy
would tell us (``X-Forwarded-For`` from loopback, a trusted proxy by default), so per-address limits apply to
it and not to the call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.callprocess import CallProcess
from tests.support.calls import assert_delivered
from tests.support.eventually import eventually
from tests.support.probes import admin_json, events, tracebacks
from tests.support.rawpeer import dead_offer
from tests.support.rawws import HandshakeRefused, RawWebSocket
from tests.support.server import ServerProcess

ABUSER = {"X-Forwarded-For": "198.51.100.7"}


def proxied(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


@pytest.fixture
def roomy_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """Default limits except the room size, so that the per-address limit is what stops the abuser below."""
    proc = ServerProcess(tmp_path / "data", ["--max-room-peers", "20"]).start()
    try:
        yield proc
    finally:
        proc.stop()


async def test_one_address_opening_100_sockets_gets_429_and_the_call_goes_on(roomy_server: ServerProcess) -> None:
    """10 sockets per address (the default). The abuser aims at the call's own room."""
    server = roomy_server
    with CallProcess(server, ["abused"]) as call:
        outcomes = await asyncio.gather(
            *(RawWebSocket.join(server, "abused", f"bot{i}", headers=ABUSER) for i in range(100)),
            return_exceptions=True,
        )
        opened = [o for o in outcomes if isinstance(o, RawWebSocket)]
        refused = [o for o in outcomes if isinstance(o, HandshakeRefused)]
        assert len(opened) == 10, outcomes
        assert len(refused) == 90 and {r.status for r in refused} == {429}
        assert all("too many connections" in r.body for r in refused)
        for ws in opened:
            await ws.wait_message("room_state")
        await asyncio.sleep(2.0)  # deliberate: the call goes on while the address holds its connections
        for ws in opened:
            await ws.close()
        # The address may connect again once its sockets are closed.
        await eventually(lambda: admin_json(server, "stats")["users"] == 3, 10)
        again = await RawWebSocket.join(server, "elsewhere", "bot", headers=ABUSER)
        await again.wait_message("room_state")
        await again.close()
        report = await asyncio.to_thread(call.finish)
    for result in report.values():
        assert_delivered(result)
    assert not tracebacks(server.console())


async def test_a_flood_of_10000_messages_per_second_closes_that_session_within_a_second(
    server: ServerProcess,
) -> None:
    with CallProcess(server, ["flooded"]) as call:
        flooder = await RawWebSocket.join(server, "flooded", "flood", headers=ABUSER)
        await flooder.wait_message("room_state")
        frame = '{"type": "heartbeat", "ts": 1}'
        start = time.monotonic()
        sent = 0
        # 100 messages every 10 ms is 10,000 per second, for up to three seconds or until the server hangs up.
        while not flooder.closed and time.monotonic() - start < 3.0:
            for _ in range(100):
                flooder.send_text(frame)
            sent += 100
            await flooder.drain()
            await asyncio.sleep(max(0.0, start + sent / 10_000 - time.monotonic()))
        await flooder.wait_closed(5)
        assert flooder.closed_at is not None
        took = flooder.closed_at - start
        flooder.abort()
        # The others keep talking for a while after the flood.
        await asyncio.sleep(1.5)  # deliberate: the measured call goes on after the flood
        report = await asyncio.to_thread(call.finish)
    assert took <= 1.0, f"the flooding session was closed after {took:.2f} s ({sent} messages)"
    assert flooder.close_code == 1008, flooder.close_code
    assert flooder.close_reason == "limit exceeded: message_rate"
    assert flooder.of_type("error")[-1]["message"] == "too many messages; slow down"
    for result in report.values():
        assert_delivered(result)
    print(f"\nflood: closed {took * 1000:.0f} ms after the flood began, {sent} messages sent by then")
    limit_events = [e for e in events(server, "LIMIT_EXCEEDED") if e.get("ip") == "198.51.100.7"]
    assert len(limit_events) == 1 and limit_events[0]["details"]["limit"] == "message_rate", limit_events
    assert not tracebacks(server.console())


# The other limits, on a server where they are small enough to reach quickly.

TIGHT = [
    "--max-rooms", "3", "--max-peers", "5", "--max-room-peers", "2", "--join-burst", "3", "--join-rate", "6",
    "--max-conns-per-ip", "1000", "--offer-timeout", "2", "--connect-timeout", "4", "--offers-per-minute", "5",
]


@pytest.fixture(scope="module")
def tight_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("tight"), TIGHT).start()
    try:
        yield proc
    finally:
        proc.stop()


async def test_join_rate_per_address(tight_server: ServerProcess) -> None:
    # A burst of 3 joins from one address, then 6 a minute: the fourth join in a row gets 429.
    sockets = [await RawWebSocket.join(tight_server, f"rate{i % 2}", "r", headers=proxied("203.0.113.1"))
               for i in range(3)]
    try:
        with pytest.raises(HandshakeRefused) as refused:
            await RawWebSocket.join(tight_server, "rate2", "r", headers=proxied("203.0.113.1"))
        assert refused.value.status == 429 and "too many joins" in refused.value.body
        # Another address is not affected.
        other = await RawWebSocket.join(tight_server, "rate2", "r", headers=proxied("203.0.113.2"))
        await other.wait_message("room_state")
        sockets.append(other)
    finally:
        await close_all(tight_server, sockets)


async def close_all(server: ServerProcess, sockets: list[RawWebSocket]) -> None:
    """Close, then wait until the server has let everyone go (the next test starts from an empty server)."""
    for ws in sockets:
        await ws.close()
    await eventually(lambda: admin_json(server, "stats")["users"] == 0, 10)
    assert not tracebacks(server.console()), "\n\n".join(tracebacks(server.console()))


async def test_room_and_server_capacity(tight_server: ServerProcess) -> None:
    sockets: list[RawWebSocket] = []

    async def join(room: str, address: str) -> RawWebSocket:
        ws = await RawWebSocket.join(tight_server, room, "c", headers=proxied(address))
        sockets.append(ws)
        await ws.wait_count(1, 10)
        return ws

    async def refusal(ws: RawWebSocket) -> tuple[str, int | None, str]:
        await ws.wait_closed(5)
        return ws.messages[0].get("message", ""), ws.close_code, ws.close_reason

    try:
        # Distinct addresses: the join-rate limit stays out of the way.
        for index, room in enumerate(["cap1", "cap1", "cap2", "cap3"]):
            assert (await join(room, f"192.0.2.{index}")).messages[0]["type"] == "room_state"
        third_in_room = await join("cap1", "192.0.2.10")
        assert await refusal(third_in_room) == ("Room full", 1013, "Room full")
        fourth_room = await join("cap4", "192.0.2.11")
        assert await refusal(fourth_room) == ("Server full", 1013, "Server full")
        assert (await join("cap2", "192.0.2.12")).messages[0]["type"] == "room_state"  # the fifth person
        sixth = await join("cap3", "192.0.2.13")
        assert await refusal(sixth) == ("Server full", 1013, "Server full")
    finally:
        await close_all(tight_server, sockets)


async def test_timeouts_for_no_offer_and_no_media(tight_server: ServerProcess) -> None:
    start = time.monotonic()
    silent = await RawWebSocket.join(tight_server, "quiet", "s", headers=proxied("192.0.2.50"))
    unreachable = await RawWebSocket.join(tight_server, "quiet", "u", headers=proxied("192.0.2.51"))
    try:
        # An offer whose client is gone: the server answers, then ICE can never connect.
        unreachable.send_json({"type": "offer", "sdp": await dead_offer()})
        await unreachable.wait_message("answer")
        await silent.wait_closed(10)
        assert silent.of_type("error")[-1]["message"] == "no offer within 2 s"
        assert (silent.close_code, silent.close_reason) == (4002, "no offer within 2 s")
        assert silent.closed_at is not None and 2.0 <= silent.closed_at - start <= 8.0
        await unreachable.wait_closed(15)
        assert unreachable.of_type("error")[-1]["message"] == "media did not connect within 4 s"
        assert unreachable.close_code == 4002
        assert unreachable.closed_at is not None and 4.0 <= unreachable.closed_at - start <= 12.0
    finally:
        await close_all(tight_server, [silent, unreachable])


async def test_offers_per_minute_and_pending_candidates(tight_server: ServerProcess) -> None:
    ws = await RawWebSocket.join(tight_server, "offers", "o", headers=proxied("192.0.2.60"))
    try:
        await ws.wait_message("room_state")
        # Candidates, before the offer or after it: 32 addresses per connection; the others are refused, the
        # session goes on.
        candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}
        for port in range(65):
            ws.send_json({"type": "candidate", "candidate": {**candidate, "candidate": candidate["candidate"]
                                                             .replace(" 9 ", f" {9000 + port} ")}})
        await ws.wait_for(lambda: len(ws.of_type("error")) >= 33, 10)
        assert [e["message"] for e in ws.of_type("error")] == [
            "too many candidates: at most 32 per connection are checked"
        ] * 33
        assert not ws.closed
        # Five offers a minute: the sixth ends the session (each one costs a whole negotiation).
        for _ in range(6):
            ws.send_json({"type": "offer", "sdp": "v=0 not really"})
        await ws.wait_closed(10)
        assert (ws.close_code, ws.close_reason) == (1008, "limit exceeded: offer_rate")
        assert ws.of_type("error")[-1]["message"] == "too many offers; each one renegotiates the call"
    finally:
        await close_all(tight_server, [ws])
