"""The SFU media path with real aiortc clients over real UDP to a real server process."""

from __future__ import annotations

import asyncio
import os
from itertools import pairwise

import pytest

from ghosttalk.client.audio import dominant_frequency, tone
from ghosttalk.client.participant import Client, ClientOptions
from tests.support.eventually import eventually
from tests.support.probes import admin_json, udp_sockets
from tests.support.room import clients
from tests.support.server import ServerProcess

TONES = (440.0, 660.0, 880.0)


async def test_three_people_each_hear_exactly_the_other_two(shared_server: ServerProcess) -> None:
    async with clients(shared_server, "three-tones", ["ann", "ben", "cat"], decode=True) as members:
        await asyncio.gather(*(m.play(tone(f, 2.0)) for m, f in zip(members, TONES, strict=True)))

        def least_received() -> int:
            return min(len(me.received[m.self_id or ""]) for me in members for m in members if m is not me)

        await eventually(least_received, 5, what="the last packets landed", until=lambda n: n >= 95)
        assert all(m.receives_directly for m in members), "the clients' direct receive path is in use"
        for me in members:
            others = {m.self_id: f for m, f in zip(members, TONES, strict=True) if m is not me}
            assert me.speakers() == set(others), "each receives exactly the other two, by peer id"
            for speaker_id, frequency in others.items():
                packets = me.received[speaker_id]
                assert len(packets) >= 95, f"{me.name} got {len(packets)} of 100 packets from {speaker_id}"
                heard = dominant_frequency(me.pcm(speaker_id))
                assert abs(heard - frequency) < 5, f"{me.name} hears {heard} Hz from a {frequency} Hz speaker"


async def test_forwarding_is_bit_exact_and_keeps_timestamp_spacing(shared_server: ServerProcess) -> None:
    async with clients(shared_server, "bit-exact", ["tx", "rx1", "rx2"]) as (sender, *receivers):
        payloads = [os.urandom(20 + i % 100) for i in range(40)]
        # 20 packets, one second of silence (a DTX gap: the timestamp jumps, sequence numbers do not), 20 more.
        timestamps = [1000 + 960 * i for i in range(20)] + [1000 + 960 * (i + 50) for i in range(20, 40)]
        for index, (payload, timestamp) in enumerate(zip(payloads, timestamps, strict=True)):
            sender.send_rtp(payload, timestamp=timestamp)
            await asyncio.sleep(0.02 if index != 19 else 1.0)  # real time, gap included, as a speaker sends
        for receiver in receivers:
            await receiver.wait_for(lambda r=receiver: len(r.received.get(sender.self_id or "", [])) >= 40, 5)
            got = receiver.received[sender.self_id or ""]
            assert [p.payload for p in got] == payloads
            spacing = [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in pairwise(got)]
            assert spacing == [(b - a) & 0xFFFFFFFF for a, b in pairwise(timestamps)]
            assert {(b.sequence_number - a.sequence_number) & 0xFFFF for a, b in pairwise(got)} == {1}
            assert len({p.ssrc for p in got}) == 1
        # Each receiver gets its own outbound stream (own SSRC), not a shared copy.
        first, second = (r.received[sender.self_id or ""][0] for r in receivers)
        assert first.ssrc != second.ssrc


async def test_late_joiner_hears_people_already_talking_then_leave_and_mute(shared_server: ServerProcess) -> None:
    async with clients(shared_server, "late", ["amy", "bo"]) as (amy, bo):
        talking = [asyncio.create_task(m.play(tone(f, 6.0))) for m, f in ((amy, 440.0), (bo, 660.0))]
        try:
            await eventually(
                lambda: min(len(amy.received.get(bo.self_id or "", [])), len(bo.received.get(amy.self_id or "", []))),
                5,
                what="amy and bo talking to each other",
                until=lambda n: n >= 10,
            )
            late = await Client(shared_server.url, "late", "cy", ClientOptions()).connect()
            try:
                await late.wait_for(lambda: {amy.self_id, bo.self_id} <= late.speakers(), 3.0)
                # Mute: everybody, the muted person included, hears about it.
                await amy.mute(True)
                for member in (amy, bo, late):
                    await member.wait_for(lambda m=member: m.peers[amy.self_id or ""].muted, 3.0)
                # Leave: the others are told and the leaver's stream stops.
                await bo.close()
                await late.wait_for(lambda: bo.self_id not in late.peers, 3.0)
                assert any(m.get("type") == "peer_leave" and m.get("peer_id") == bo.self_id for m in late.messages)
                await asyncio.sleep(0.3)  # packets bo sent before leaving may still be on the way
                count = len(late.received[bo.self_id or ""])
                await asyncio.sleep(1.0)  # deliberate: time for a stream that went on to show up
                assert len(late.received[bo.self_id or ""]) == count, "the leaver's stream went on"
                # ... while the others keep talking to the late joiner.
                before = len(late.received[amy.self_id or ""])
                await eventually(
                    lambda: len(late.received[amy.self_id or ""]), 3, what="amy still heard", until=lambda n: n > before
                )
            finally:
                await late.close()
        finally:
            for task in talking:
                task.cancel()
            await asyncio.gather(*talking, return_exceptions=True)


async def test_ten_peers_share_one_udp_socket_and_leave_nothing_behind(server: ServerProcess) -> None:
    baseline = admin_json(server, "internals")
    names = [f"p{i}" for i in range(10)]
    async with clients(server, "ten", names) as members:
        assert udp_sockets(server.pid) == 1

        def everyone_speaks() -> int:
            # A packet each per poll: a stream's first packet may still be lost while its route settles.
            for member in members:
                member.send_rtp(b"hello " + member.name.encode())
            return len(members[0].speakers())

        await eventually(everyone_speaks, 5, what="p0 hears the other nine", interval=0.3, until=lambda n: n == 9)
        during = admin_json(server, "internals")
        assert during["peer_media_alive"] == 10
        assert during["ice_ufrags"] == 10
    leak_counts = ("peer_media_alive", "ice_ufrags", "ice_addresses", "room_tasks")
    await eventually(
        lambda: admin_json(server, "internals"), 5, what="every leave finished",
        until=lambda now: all(now[key] == 0 for key in leak_counts),
    )
    after = admin_json(server, "internals")
    assert udp_sockets(server.pid) == 1
    assert after["peer_media_alive"] == 0
    assert after["ice_ufrags"] == 0 and after["ice_addresses"] == 0
    assert after["room_tasks"] == 0
    assert after["asyncio_tasks"] <= baseline["asyncio_tasks"]


async def test_eleventh_person_gets_room_full(shared_server: ServerProcess) -> None:
    names = [f"m{i}" for i in range(10)]
    async with clients(shared_server, "full", names):
        extra = Client(shared_server.url, "full", "late")
        with pytest.raises(Exception, match="Room full"):
            await extra.connect(timeout=5)


async def test_a_burst_of_joins_is_coalesced_into_fewer_offers(shared_server: ServerProcess) -> None:
    async with clients(shared_server, "burst", ["host"]) as (host,):
        offers_before = sum(1 for m in host.messages if m["type"] == "offer")
        newcomers = await asyncio.gather(
            *(Client(shared_server.url, "burst", f"n{i}").connect() for i in range(4))
        )
        try:
            ids = {c.self_id for c in newcomers}
            await host.wait_for(lambda: ids <= host.negotiated_speakers(), 10)
            offers = sum(1 for m in host.messages if m["type"] == "offer") - offers_before
            assert 1 <= offers < 4, f"{offers} offers for 4 joins"
        finally:
            await asyncio.gather(*(c.close() for c in newcomers))
