"""Re-offers keep what a browser negotiated: payload types and header-extension ids (Chrome refuses an offer
that renumbers them). aiortc clients share the server's defaults, so this client offers Chrome's numbers."""

from __future__ import annotations

import re

import aiohttp
from aiortc import RTCPeerConnection
from aiortc.sdp import SessionDescription

from tests.serverproc import ServerProcess


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
                offer = None
                async for message in ws:
                    data = message.json()
                    if data["type"] == "offer":
                        offer = SessionDescription.parse(data["sdp"])
                        break
            await first.close()
        assert offer is not None
        audio = [m for m in offer.media if m.kind == "audio"]
        assert len(audio) == 2, "the browser's own line and one forwarding line"
        for media in audio:
            assert [c.payloadType for c in media.rtp.codecs if c.mimeType == "audio/opus"] == [111]
            extensions = {e.uri.rsplit(":", 1)[-1]: e.id for e in media.rtp.headerExtensions}
            assert extensions == {"ssrc-audio-level": 1, "mid": 4}
    finally:
        await pc.close()
