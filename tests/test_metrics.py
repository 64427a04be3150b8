"""Metrics: the exposition parses with prometheus-client's own parser and reflects live values."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ghosttalk.metrics import LiveStats, Metrics


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
