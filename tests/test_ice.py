"""What the server advertises for ICE (--public-ip, --rtc-host) and the shared socket's address book."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import aiohttp
from aiortc import RTCPeerConnection
from aiortc.sdp import SessionDescription

from ghosttalk.media.icemux import default_host_addresses
from tests.serverproc import ServerProcess


async def answer_candidates(server: ServerProcess) -> list[tuple[str, int, str]]:
    """Offer like a browser, read the candidates in the server's answer, and never start ICE towards them."""
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as session, session.ws_connect(server.ws_url("ice", "probe")) as ws:
            await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
            async for message in ws:
                data = message.json()
                if data["type"] == "answer":
                    media = SessionDescription.parse(data["sdp"]).media[0]
                    return [(c.ip, c.port, c.type) for c in media.ice_candidates]
    finally:
        await pc.close()
    raise AssertionError("no answer")


async def test_public_ip_is_advertised_instead_of_interface_addresses(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", ["--public-ip", "203.0.113.7"]).start()
    try:
        assert await answer_candidates(server) == [("203.0.113.7", server.rtc_port, "host")]
    finally:
        server.stop()


async def test_rtc_host_candidates_all_use_the_one_port(server: ServerProcess) -> None:
    assert await answer_candidates(server) == [("127.0.0.1", server.rtc_port, "host")]


def test_default_addresses_are_ipv4_and_not_loopback() -> None:
    for address in default_host_addresses():
        parsed = ipaddress.ip_address(address)
        assert parsed.version == 4 and not parsed.is_loopback and not parsed.is_link_local


async def test_a_candidate_before_the_offer_waits_for_it(shared_server: ServerProcess) -> None:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as session, session.ws_connect(shared_server.ws_url("early", "eager")) as ws:
            line = "candidate:9 1 udp 2122260223 127.0.0.1 40000 typ host"
            await ws.send_json({"type": "candidate", "candidate": {"candidate": line, "sdpMid": "0"}})
            await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
            seen = []
            async for message in ws:
                data = message.json()
                seen.append(data["type"])
                if data["type"] == "offer":  # the server's own offer follows its answer
                    break
        assert seen == ["room_state", "answer", "offer"]
    finally:
        await pc.close()
