"""RTCP stays true across the forwarding fast path, checked through aiortc's public getStats() on real clients.

The server's sender reports must describe what it forwarded on each outbound stream, and its receiver reports
must echo each speaker's last sender report (LSR/DLSR) so that the speaker can measure its round-trip time:
the server now reads the speaker's SRTCP on its own fast path, so without that echo the RTT stays unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ghosttalk.client.participant import Client
from tests.support.eventually import eventually
from tests.support.room import clients
from tests.support.server import ServerProcess

PAYLOAD = b"\x5a" * 80
# The server reports every 2.5-7.5 s (RFC 3550); two of its reporting periods and some slack.
REPORT_WAIT_SECONDS = 20.0


async def talk(client: Client) -> None:
    while True:
        client.send_rtp(PAYLOAD)
        await asyncio.sleep(0.02)


async def stats_of_type(client: Client, kind: str) -> list[Any]:
    assert client.pc is not None
    report = await client.pc.getStats()
    return [stats for stats in report.values() if stats.type == kind]


async def test_sender_and_receiver_reports_reach_both_ends(shared_server: ServerProcess) -> None:
    async with clients(shared_server, "reports", ["talker", "listener"], keep_packets=True) as (talker, listener):
        speaking = asyncio.create_task(talk(talker))
        try:
            inbound: list[Any] = []
            described: list[Any] = []

            async def both_reports_seen() -> bool:
                inbound[:] = await stats_of_type(talker, "remote-inbound-rtp")
                described[:] = [s for s in await stats_of_type(listener, "remote-outbound-rtp") if s.packetsSent]
                return any(s.roundTripTime is not None for s in inbound) and bool(described)

            await eventually(
                both_reports_seen,
                REPORT_WAIT_SECONDS,
                what="a receiver report echoing the speaker's and a sender report on the listener's stream",
                interval=0.25,
                detail=lambda: f"speaker's remote-inbound-rtp {inbound}; listener's remote-outbound-rtp {described}",
            )
            round_trip = next((s.roundTripTime for s in inbound if s.roundTripTime is not None), None)
        finally:
            speaking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await speaking

        # Receiver report towards the speaker, echoing its sender report: a real round trip on loopback.
        assert round_trip is not None, "no receiver report echoed the speaker's sender report"
        assert 0 <= round_trip < 0.5, round_trip
        assert all(s.packetsLost == 0 for s in inbound), inbound

        # Sender report on the listener's outbound stream: its SSRC, counting exactly what was forwarded.
        received = listener.received[talker.self_id or ""]
        assert described, "the listener got no sender report for its stream"
        report = described[-1]
        assert report.ssrc == received[0].ssrc
        assert 0 < report.packetsSent <= len(received)
        assert report.bytesSent == report.packetsSent * len(PAYLOAD)
