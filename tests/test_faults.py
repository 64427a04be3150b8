"""Bad networks (loss, jitter, blackouts) and dead peers (killed or frozen clients).

Faults are injected in user space on the headless client's ICE sockets, in both directions
(``ClientOptions(network=LinkConditions(...))``): the kernel here has no ``netem``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from ghosttalk.client.audio import tone, write_wav
from ghosttalk.client.netsim import LinkConditions
from ghosttalk.client.participant import Client, ClientOptions
from tests.conftest import RELAXED_LIMITS
from tests.support.calls import TalkingCall
from tests.support.eventually import eventually
from tests.support.joiner import child_joiner
from tests.support.probes import events, metric, tracebacks
from tests.support.server import ServerProcess

# The server pings every 5 s and removes a peer silent for 8 s; its watchdog looks once a second.
DETECTION_LIMIT = 20.0


@pytest.fixture(scope="module")
def faults_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("faults"), RELAXED_LIMITS).start()
    try:
        yield proc
        assert not tracebacks(proc.console()), "\n\n".join(tracebacks(proc.console()))
    finally:
        proc.stop()


def hears(listener: Client, ids: set[str]) -> bool:
    return ids <= listener.speakers()


def lists_none_of(listener: Client, ids: set[str]) -> bool:
    return not ids & set(listener.peers)


def streams_none_of(listener: Client, ids: set[str]) -> bool:
    return not ids & listener.negotiated_speakers()


def leave_reasons(server: ServerProcess, peer_id: str) -> list[str]:
    return [e["details"]["reason"] for e in events(server, "USER_LEAVE") if e["peer"] == peer_id]


async def test_ten_percent_loss_and_jitter_keep_audio_flowing(faults_server: ServerProcess) -> None:
    """10 % loss and 50 +/- 20 ms delay on one person, both ways: everyone still hears everyone, losing only
    what the network lost, without stalls, and the lossy person costs no more traffic than the others."""
    lossy = LinkConditions(loss=0.10, delay=0.05, jitter=0.02)
    clean = LinkConditions()  # no impairment: it only counts datagrams, for comparison
    options = [ClientOptions(keep_packets=False, network=link) for link in (lossy, clean, None)]
    call = await TalkingCall.join(faults_server.url, "lossy", ["lossy", "clean", "plain"], options)
    try:
        packets_in = metric(faults_server, "ghosttalk_rtp_packets_received_total")
        forwarded = metric(faults_server, "ghosttalk_rtp_packets_forwarded_total")
        lossy.dropped = lossy.passed = clean.dropped = clean.passed = 0
        call.start()
        await asyncio.sleep(8.0)  # deliberate: the measured stretch of talk
        await call.stop()
        packets_in = metric(faults_server, "ghosttalk_rtp_packets_received_total") - packets_in
        forwarded = metric(faults_server, "ghosttalk_rtp_packets_forwarded_total") - forwarded
    finally:
        await call.close()
    report = call.report()
    sent = report["sent"]
    ratios = {flow: received / sent_ for flow, (sent_, received) in report["flows"].items()}
    # Through the lossy link once (out of it or into it): about 90 % arrive, and no fewer.
    for flow in ("0->1", "0->2", "1->0", "2->0"):
        assert 0.80 <= ratios[flow] <= 0.97, (flow, ratios, report["losses"])
    for flow in ("1->2", "2->1"):
        assert ratios[flow] >= 0.999, (flow, ratios, report["losses"])
    # The server forwards every packet it gets to the two others, nothing more (no retransmission storm).
    assert 0.99 * 2 * packets_in <= forwarded <= 2 * packets_in, (packets_in, forwarded)
    assert packets_in <= sum(sent)
    # Datagrams on the lossy person's link (both ways, lost ones included) vs. a clean person's: no storm of
    # retransmissions or feedback.
    lossy_total, clean_total = lossy.passed + lossy.dropped, clean.passed + clean.dropped
    assert lossy_total <= 1.2 * clean_total, (lossy_total, clean_total)
    assert 0.05 <= lossy.dropped / lossy_total <= 0.15
    # No stall: the longest silence on a lossy flow is within half a second of that of a clean one (whatever
    # a busy machine adds applies to both).
    lossy_gap = max(call.flows[s, r].max_gap() for s, r in ((0, 1), (0, 2), (1, 0), (2, 0)))
    clean_gap = max(call.flows[s, r].max_gap() for s, r in ((1, 2), (2, 1)))
    assert lossy_gap <= clean_gap + 0.5, (lossy_gap, clean_gap)
    print(f"\nlossy: delivery {ratios}; longest gap lossy {lossy_gap:.2f} s / clean {clean_gap:.2f} s; "
          f"datagrams lossy {lossy_total} / clean {clean_total}; server in {packets_in:.0f} forwarded {forwarded:.0f}")


async def test_blackouts_short_and_long(faults_server: ServerProcess) -> None:
    """Two people lose their network at the same moment. One gets it back after 10 s: the heartbeat (8 s)
    noticed within the blackout, the room was told, and the client is back in the room by rejoining and
    heard within seconds. The other stays dark longer: also detected and told, and once its network returns
    the client rejoins by itself and is heard again."""
    short, long_ = LinkConditions(), LinkConditions()
    options = [
        ClientOptions(keep_packets=False, network=short, rejoin=True),
        ClientOptions(keep_packets=False, network=long_, rejoin=True),
        ClientOptions(keep_packets=False),
    ]
    call = await TalkingCall.join(faults_server.url, "blackout", ["short", "long", "steady"], options)
    steady = call.members[2]
    short_id, long_id = call.members[0].self_id, call.members[1].self_id
    try:
        call.start()
        await eventually(
            lambda: min(call.delivered(s, r) for s, r in call.flows), 10, what="the call talking before the blackout",
            until=lambda n: n >= 10,
        )
        start = time.monotonic()
        short.blackout = long_.blackout = True
        await asyncio.sleep(10.0)  # deliberate: a blackout longer than the heartbeat
        short.blackout = False
        returned = time.monotonic()
        heard = {flow: call.delivered(*flow) for flow in ((0, 2), (2, 0))}

        def short_is_back() -> bool:
            member = call.members[0]
            return (
                all(call.delivered(*flow) > count + 10 for flow, count in heard.items())
                and member.self_id in steady.peers
            )

        await eventually(short_is_back, 15.0)
        short_back = time.monotonic() - returned
        short_rejoined = call.members[0].self_id != short_id
        assert short_rejoined, "a 10 s blackout is longer than the heartbeat: the server must have noticed"
        assert any(m.get("type") == "peer_leave" and m.get("peer_id") == short_id for m in steady.messages)

        # The long blackout is detected by the heartbeat; the others are told.
        await eventually(lambda: long_id not in steady.peers, DETECTION_LIMIT - (time.monotonic() - start))
        detected = time.monotonic() - start
        assert any(m.get("type") == "peer_leave" and m.get("peer_id") == long_id for m in steady.messages)
        assert leave_reasons(faults_server, long_id or "") == ["no heartbeat for 8 s"]

        long_.blackout = False
        returned = time.monotonic()
        heard = {flow: call.delivered(*flow) for flow in ((1, 2), (2, 1))}
        await eventually(lambda: all(call.delivered(*flow) > count + 10 for flow, count in heard.items()), 30.0)
        long_back = time.monotonic() - returned
        member = call.members[1]
        assert member.rejoins >= 1 and member.self_id != long_id and member.self_id in steady.peers
        print(f"\nblackout: 10 s one back and heard {short_back:.1f} s after the network returned "
              f"({'rejoined' if short_rejoined else 'same connection'}); the long one detected after "
              f"{detected:.1f} s, back and heard {long_back:.1f} s after its network returned")
    finally:
        await call.close()


async def test_killed_and_frozen_clients_leave_everyones_list(faults_server: ServerProcess, tmp_path: Path) -> None:
    """Two `ghosttalk join --play` processes in a call: one is killed (SIGKILL: its socket closes at once),
    the other frozen (SIGSTOP: its socket stays open and silent, so only the heartbeat can tell). Both leave
    everyone's list within 20 s and their streams stop."""
    wav = tmp_path / "tone.wav"
    write_wav(wav, tone(440.0, 30.0))
    room = "dead"
    listeners = [await Client(faults_server.url, room, name).connect(timeout=30) for name in ("ear1", "ear2")]
    try:
        with (
            child_joiner(faults_server, room, "killed", wav, tmp_path / "killed.log") as killed,
            child_joiner(faults_server, room, "frozen", wav, tmp_path / "frozen.log") as frozen,
        ):

            def ids() -> dict[str, str]:
                return {p.name: p.id for p in listeners[0].peers.values() if p.name in ("killed", "frozen")}

            await listeners[0].wait_for(lambda: len(ids()) == 2, 60)
            dead = ids()
            for listener in listeners:
                await listener.wait_for(partial(hears, listener, set(dead.values())), 30)
            start = time.monotonic()
            killed.send_signal(signal.SIGKILL)
            frozen.send_signal(signal.SIGSTOP)
            gone: dict[str, float] = {}
            for name in ("killed", "frozen"):
                for listener in listeners:
                    await listener.wait_for(partial(lists_none_of, listener, {dead[name]}),
                                            DETECTION_LIMIT - (time.monotonic() - start))
                gone[name] = time.monotonic() - start
            assert leave_reasons(faults_server, dead["frozen"]) == ["no heartbeat for 8 s"]
            assert leave_reasons(faults_server, dead["killed"]) == ["left"]
            # Their streams are gone from the listeners' connections and nothing more arrives.
            for listener in listeners:
                await listener.wait_for(partial(streams_none_of, listener, set(dead.values())), 10)
            counts = [len(lst.received[i]) for lst in listeners for i in dead.values()]
            await asyncio.sleep(1.0)  # deliberate: time for a stream that went on to show up
            assert counts == [len(lst.received[i]) for lst in listeners for i in dead.values()]
            print(f"\ndead peers: killed gone after {gone['killed']:.1f} s, frozen after {gone['frozen']:.1f} s")
    finally:
        await asyncio.gather(*(listener.close() for listener in listeners))
