"""Re-offers keep what a browser negotiated: payload types and header-extension ids (Chrome refuses an offer
that renumbers them). aiortc clients share the server's defaults, so this client offers Chrome's numbers."""

from __future__ import annotations

import re

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import SessionDescription

from tests.support.server import ServerProcess


def chrome_numbering(sdp: str) -> str:
    """Opus on 111 and ssrc-audio-level on extension id 1, sdes:mid on 4, as Chromium offers them."""
    sdp = sdp.replace("a=rtpmap:96 opus", "a=rtpmap:111 opus").replace("a=fmtp:96 ", "a=fmtp:111 ")
    sdp = re.sub(r"(m=audio \S+ \S+) 96", r"\1 111", sdp)
    urn = "urn:ietf:params:rtp-hdrext:"
    sdp = sdp.replace(f"a=extmap:1 {urn}sdes:mid", f"a=extmap:4 {urn}sdes:mid")
    return sdp.replace(f"a=extmap:2 {urn}ssrc-audio-level", f"a=extmap:1 {urn}ssrc-audio-level")


async def test_server_offers_reuse_the_browsers_numbers_on_every_audio_line(shared_server: ServerProcess) -> None:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as session:
            first = await session.ws_connect(shared_server.ws_url("numbering", "other"))
            async with session.ws_connect(shared_server.ws_url("numbering", "chrome")) as ws:
                await ws.send_json({"type": "offer", "sdp": chrome_numbering(pc.localDescription.sdp)})
                # The server answers, then offers the heartbeat channel and the other person's stream.
                answer = offer = None
                async for message in ws:
                    data = message.json()
                    if data["type"] == "answer":
                        answer = SessionDescription.parse(data["sdp"])
                    if data["type"] == "offer":
                        offer = SessionDescription.parse(data["sdp"])
                        break
            await first.close()
        assert answer is not None and offer is not None
        # Opus alone, though the client offered G.722, PCMU and PCMA too: that is all the forwarder relays.
        assert [(c.mimeType, c.payloadType) for c in answer.media[0].rtp.codecs] == [("audio/opus", 111)]
        audio = [m for m in offer.media if m.kind == "audio"]
        assert len(audio) == 2, "the browser's own line and one forwarding line"
        for media in audio:
            assert [(c.mimeType, c.payloadType) for c in media.rtp.codecs] == [("audio/opus", 111)]
            extensions = {e.uri.rsplit(":", 1)[-1]: e.id for e in media.rtp.headerExtensions}
            assert extensions == {"ssrc-audio-level": 1, "mid": 4}
    finally:
        await pc.close()


async def test_an_offer_without_opus_is_refused_and_the_session_goes_on(shared_server: ServerProcess) -> None:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        assert "G722" in sdp
        no_opus = re.sub(r"(m=audio \S+ \S+) 96", r"\1", sdp)
        no_opus = "".join(line for line in no_opus.splitlines(keepends=True) if ":96 " not in line)
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(shared_server.ws_url("no-opus", "g722")) as ws,
        ):
            await ws.send_json({"type": "offer", "sdp": no_opus})
            replies = []
            async for message in ws:
                replies.append(message.json())
                if replies[-1]["type"] == "error":
                    break
            assert replies[-1]["message"] == "offer SDP has no Opus codec: GhostTalk relays Opus only"
            # Nothing of it stuck: the same client's proper offer is answered.
            await ws.send_json({"type": "offer", "sdp": sdp})
            async for message in ws:
                if message.json()["type"] == "answer":
                    break
            else:
                raise AssertionError("no answer to the proper offer")
    finally:
        await pc.close()


async def test_an_answer_that_would_receive_on_a_forwarding_line_is_refused(shared_server: ServerProcess) -> None:
    """aiortc would take ``sendrecv`` for a line we offered ``sendonly`` and start a receiver and its decoder
    thread on it; the server refuses such an answer, repeats its offer, and takes a proper answer to it."""
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(shared_server.ws_url("directions", "a")) as ws:
                await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
                other = await session.ws_connect(shared_server.ws_url("directions", "b"))
                replies = []
                async for message in ws:
                    data = message.json()
                    if data["type"] == "answer":
                        await pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "answer"))
                    elif data["type"] == "offer" and "a=sendonly" in data["sdp"]:
                        await pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "offer"))
                        answer = (await pc.createAnswer()).sdp
                        assert "a=recvonly" in answer
                        await ws.send_json({"type": "answer", "sdp": answer.replace("a=recvonly", "a=sendrecv")})
                        break
                async for message in ws:
                    replies.append(message.json())
                    if replies[-1]["type"] == "error":
                        break
                assert replies[-2]["type"] == "offer", "the offer is repeated for a better answer"
                assert replies[-1]["message"].endswith("sendrecv, but it was offered sendonly")
                await ws.send_json({"type": "answer", "sdp": answer})
                await ws.send_json({"type": "answer", "sdp": answer})
                async for message in ws:
                    data = message.json()
                    if data["type"] == "error":
                        assert data["message"] == "answer without an outstanding offer"
                        break
            await other.close()
    finally:
        await pc.close()
