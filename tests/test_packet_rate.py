"""The per-sender packet rate cap: one participant sent 3,800 packets/s and the server forwarded every
one of them to every listener. Now a speaker's packets over MAX_PACKETS_PER_SECOND in a second are dropped
and counted, and a speaker over the cap for FLOOD_SECONDS in a row is closed with 1008 and LIMIT_EXCEEDED."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from ghosttalk.media import forwarder
from ghosttalk.media.forwarder import FLOOD_SECONDS, MAX_PACKETS_PER_SECOND, ForwardingCounters, Speaker
from ghosttalk.media.rtp import build_rtp
from tests.conftest import RELAXED_LIMITS
from tests.support.probes import events, metric
from tests.support.room import clients
from tests.support.server import ServerProcess

OPUS_FRAME = b"\xf8" + b"\x00" * 60
RATE_LIMITED = "ghosttalk_rtp_packets_rate_limited_total"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(forwarder, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def speaker_with_flood_alarm() -> tuple[Speaker, list[float]]:
    speaker = Speaker(ForwardingCounters())
    speaker.payload_types = frozenset({111})
    floods: list[float] = []
    speaker.on_flood = lambda: floods.append(forwarder.time.monotonic())  # type: ignore[attr-defined]
    return speaker, floods


def send(speaker: Speaker, count: int) -> None:
    for sequence_number in range(count):
        speaker.on_rtp(build_rtp(0, 111, sequence_number, 0, 1, OPUS_FRAME))


def test_packets_over_the_cap_in_a_second_are_dropped_and_counted(clock: FakeClock) -> None:
    speaker, floods = speaker_with_flood_alarm()
    send(speaker, MAX_PACKETS_PER_SECOND + 30)
    assert speaker.counters.packets_in == MAX_PACKETS_PER_SECOND
    assert speaker.counters.packets_rate_limited == 30
    clock.now += 1
    send(speaker, 10)
    assert speaker.counters.packets_in == MAX_PACKETS_PER_SECOND + 10 and floods == []


def test_only_consecutive_seconds_over_the_cap_count_as_a_flood(clock: FakeClock) -> None:
    speaker, floods = speaker_with_flood_alarm()
    for _ in range(FLOOD_SECONDS):
        send(speaker, MAX_PACKETS_PER_SECOND + 1)
        clock.now += 1
    send(speaker, 50)  # a calm second breaks the run
    clock.now += 1
    for _ in range(FLOOD_SECONDS):
        send(speaker, MAX_PACKETS_PER_SECOND * 3)
        clock.now += 1
    assert floods == []
    send(speaker, MAX_PACKETS_PER_SECOND + 1)
    assert floods == [clock.now]
    clock.now += 1
    send(speaker, MAX_PACKETS_PER_SECOND * 2)
    assert len(floods) == 1  # told once


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("rate"), RELAXED_LIMITS).start()
    try:
        yield proc
    finally:
        proc.stop()


async def test_a_flooding_speaker_is_capped_then_closed_with_1008(server: ServerProcess) -> None:
    async with clients(server, "flood", ["flooder", "listener", "talker"]) as (flooder, listener, talker):
        assert flooder.self_id is not None and talker.self_id is not None
        flood = listener.received.setdefault(flooder.self_id, [])
        voice = listener.received.setdefault(talker.self_id, [])
        rate_limited = await asyncio.to_thread(metric, server, RATE_LIMITED)
        start, sent, spoken = time.monotonic(), 0, 0
        # About 2,000 packets a second (bursts of 20 every 10 ms) beside an ordinary 50 a second, until the
        # server ends the flooder's session.
        while flooder.closed_reason is None and time.monotonic() - start < FLOOD_SECONDS + 5:
            try:
                for _ in range(20):
                    flooder.send_rtp(OPUS_FRAME)
                    sent += 1
            except RuntimeError:  # media torn down after the close
                break
            if sent % 40 == 0:
                talker.send_rtp(OPUS_FRAME)
                spoken += 1
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - start
        await flooder.wait_for(lambda: flooder.closed_reason is not None, timeout=5)
        assert flooder.closed_reason == "socket closed (1008)", flooder.closed_reason
        assert "limit exceeded: packet_rate" in flooder.errors
        assert FLOOD_SECONDS - 1 <= elapsed <= FLOOD_SECONDS + 2, elapsed
        # A cap's worth per window of the server's clock (FLOOD_SECONDS + 1 windows, give or take the server
        # catching up with its socket buffer), whatever was sent.
        assert sent > 5 * len(flood)
        assert len(flood) <= MAX_PACKETS_PER_SECOND * (FLOOD_SECONDS + 3)
        # (Those sent after the server closed the session but before the flooder noticed are not counted.)
        assert await asyncio.to_thread(metric, server, RATE_LIMITED) - rate_limited >= sent * 0.5
        # The others were not disturbed.
        await listener.wait_for(lambda: len(voice) >= spoken * 0.95, timeout=5)
        assert listener.closed_reason is None and talker.closed_reason is None
        [event] = [
            e for e in await asyncio.to_thread(events, server, "LIMIT_EXCEEDED") if e.get("peer") == flooder.self_id
        ]
        assert event["details"]["limit"] == "packet_rate"


async def test_a_speaker_at_10_ms_packets_is_not_capped(server: ServerProcess) -> None:
    """100 packets a second (Opus with 10 ms frames) is well under the cap: every packet is forwarded."""
    async with clients(server, "ptime10", ["speaker", "listener"]) as (speaker, listener):
        assert speaker.self_id is not None
        heard = listener.received.setdefault(speaker.self_id, [])
        rate_limited = await asyncio.to_thread(metric, server, RATE_LIMITED)
        start = time.monotonic()
        for index in range(300):
            speaker.send_rtp(OPUS_FRAME, timestamp=index * 480)
            await asyncio.sleep(max(0.0, start + (index + 1) * 0.01 - time.monotonic()))
        await listener.wait_for(lambda: len(heard) >= 297, timeout=5)
        assert await asyncio.to_thread(metric, server, RATE_LIMITED) == rate_limited
        assert speaker.closed_reason is None
