"""Metrics: the exposition parses with prometheus-client's own parser and reflects live values."""

from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from ghosttalk.ops.metrics import LiveStats, Metrics
from tests.support.eventually import eventually
from tests.support.room import clients
from tests.support.server import ServerProcess


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_exposition_parses_and_reads_live_values_at_scrape_time() -> None:
    live = LiveStats()
    metrics = Metrics(lambda: live)
    before = samples(metrics)
    assert before[("ghosttalk_rooms", ())] == 0
    assert before[("ghosttalk_rtp_packets_forwarded_total", ())] == 0
    assert before[("ghosttalk_ice_connected_total", (("candidate_type", "relay"),))] == 0
    assert any(name == "process_cpu_seconds_total" for name, _ in before)
    assert any(name == "ghosttalk_build_info" for name, _ in before)

    live.rooms, live.peers = 2, 5
    live.packets_in, live.packets_forwarded, live.bytes_forwarded, live.packets_dropped = 100, 400, 48_000, 3
    metrics.joins.inc(5)
    metrics.leaves.inc()
    metrics.signaling_errors.labels(kind="bad_json").inc(2)
    metrics.ice_connected.labels(candidate_type="relay").inc()
    after = samples(metrics)
    assert after[("ghosttalk_rooms", ())] == 2
    assert after[("ghosttalk_peers", ())] == 5
    assert after[("ghosttalk_rtp_packets_received_total", ())] == 100
    assert after[("ghosttalk_rtp_packets_forwarded_total", ())] == 400
    assert after[("ghosttalk_rtp_bytes_forwarded_total", ())] == 48_000
    assert after[("ghosttalk_rtp_packets_dropped_total", ())] == 3
    assert after[("ghosttalk_joins_total", ())] == 5
    assert after[("ghosttalk_leaves_total", ())] == 1
    assert after[("ghosttalk_signaling_errors_total", (("kind", "bad_json"),))] == 2
    assert after[("ghosttalk_ice_connected_total", (("candidate_type", "relay"),))] == 1


def test_two_instances_do_not_share_a_registry() -> None:
    first = Metrics(LiveStats)
    second = Metrics(LiveStats)
    first.joins.inc(3)
    assert samples(first)[("ghosttalk_joins_total", ())] == 3
    assert samples(second)[("ghosttalk_joins_total", ())] == 0


async def scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_server_counters_move_when_people_talk(server: ServerProcess) -> None:
    before = await scrape(server)
    assert before[("ghosttalk_peers", ())] == 0
    assert before[("process_resident_memory_bytes", ())] > 0
    latest: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    async def rescrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        latest.update(await scrape(server))
        return latest

    def grew(name: str) -> float:
        return latest[(name, ())] - before.get((name, ()), 0.0)

    async with clients(server, "metrics-talk", ["ann", "ben", "cat"]) as (ann, _ben, _cat):
        for _ in range(50):
            ann.send_rtp(b"\xf8\xff\xfe" + bytes(40))
            await asyncio.sleep(0.02)  # paced like a voice: a burst could overrun a receive buffer
        await eventually(
            rescrape, 5, what="ann's packets counted and forwarded",
            until=lambda _: grew("ghosttalk_rtp_packets_received_total") >= 45
            and grew("ghosttalk_rtp_packets_forwarded_total") >= 90,
        )
        during = dict(latest)
    await eventually(
        rescrape, 5, what="the three leaves counted", until=lambda now: now[("ghosttalk_peers", ())] == 0
        and grew("ghosttalk_leaves_total") == 3,
    )
    after = dict(latest)

    def moved(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return during[(name, labels)] - before.get((name, labels), 0.0)

    assert during[("ghosttalk_rooms", ())] == 1
    assert during[("ghosttalk_peers", ())] == 3
    assert moved("ghosttalk_joins_total") == 3
    assert moved("ghosttalk_ice_connected_total", (("candidate_type", "host"),)) == 3
    # 50 packets from ann reach two listeners each; allow a few lost on the way in.
    assert moved("ghosttalk_rtp_packets_received_total") >= 45
    assert moved("ghosttalk_rtp_packets_forwarded_total") >= 90
    assert moved("ghosttalk_rtp_bytes_forwarded_total") >= 90 * 43
    assert after[("ghosttalk_leaves_total", ())] - before[("ghosttalk_leaves_total", ())] == 3
    assert after[("ghosttalk_peers", ())] == 0
