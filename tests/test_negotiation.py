"""Re-offers keep what a browser negotiated: payload types and header-extension ids (Chrome refuses an offer
that renumbers them). aiortc clients share the server's defaults, so this client offers Chrome's numbers."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import SessionDescription

from ghosttalk.client.participant import Client, ClientOptions
from ghosttalk.contract import SignalingError
from ghosttalk.media import negotiation
from ghosttalk.media.description import check_offer_lines
from ghosttalk.media.negotiation import Joining
from tests.support.eventually import eventually
from tests.support.room import clients
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


async def hears(listener: Client, speakers: list[Client], timeout: float = 5.0) -> None:
    """The speakers talk, a packet each per poll, until ``listener`` has heard every one of them."""
    wanted = {speaker.self_id for speaker in speakers}

    def heard() -> set[str]:
        for speaker in speakers:
            speaker.send_rtp(b"voice")
        return listener.speakers()

    await eventually(heard, timeout, what="the newcomer hears everyone", interval=0.02, until=wanted.issubset)


def audio_directions(sdp: str) -> list[str]:
    return [media.direction or "" for media in SessionDescription.parse(sdp).media if media.kind == "audio"]


async def test_a_newcomer_hears_the_room_after_one_round_trip(shared_server: ServerProcess) -> None:
    """room_state says how many receive lines to offer; the answer already sends the room's two people on
    them (Opus only), and the heartbeat channel takes the offer's data channel line: the server never offers."""
    async with clients(shared_server, "one-trip", ["ann", "bob"]) as members:
        newcomer = await Client(shared_server.url, "one-trip", "cat").connect()
        try:
            await hears(newcomer, members)
            [state] = [m for m in newcomer.messages if m["type"] == "room_state"]
            assert state["receive_lines"] == 2
            [answer] = [m["sdp"] for m in newcomer.messages if m["type"] == "answer"]
            assert audio_directions(answer) == ["recvonly", "sendonly", "sendonly"]
            for media in SessionDescription.parse(answer).media[1:3]:
                assert [codec.mimeType for codec in media.rtp.codecs] == ["audio/opus"]
            await newcomer.wait_for(lambda: newcomer.pings > 0, 5)
            assert newcomer.join_times.server_offers == 0 and newcomer.answers_sent == 0
        finally:
            await newcomer.close()


async def test_a_client_that_offers_no_receive_lines_gets_the_room_in_an_offer(shared_server: ServerProcess) -> None:
    """A client that predates receive_lines (Pion, older pages) offers its voice alone: the server offers the
    heartbeat channel and the room's lines next, as before."""
    async with clients(shared_server, "re-offer", ["ann", "bob"]) as members:
        newcomer = await Client(shared_server.url, "re-offer", "cat", ClientOptions(receive_lines=False)).connect()
        try:
            await hears(newcomer, members)
            [answer] = [m["sdp"] for m in newcomer.messages if m["type"] == "answer"]
            assert audio_directions(answer) == ["recvonly"]
            assert newcomer.join_times.server_offers == 1
            await newcomer.wait_for(lambda: newcomer.pings > 0, 5)
        finally:
            await newcomer.close()


async def test_people_who_join_before_the_first_offer_get_lines_in_an_offer(shared_server: ServerProcess) -> None:
    """room_state counted one person; a second arrives before the newcomer offers. The answer sends the one on
    the one receive line, and the server offers a line for the other."""
    async with (
        clients(shared_server, "late-count", ["ann"]) as [ann],
        aiohttp.ClientSession() as session,
        session.ws_connect(shared_server.ws_url("late-count", "cat")) as ws,
    ):
        state = await ws.receive_json()
        assert (state["type"], state["receive_lines"]) == ("room_state", 1)
        async with clients(shared_server, "late-count", ["bob"]) as [bob]:
            pc = RTCPeerConnection()
            try:
                pc.addTransceiver("audio", direction="sendrecv")
                pc.addTransceiver("audio", direction="recvonly")
                await pc.setLocalDescription(await pc.createOffer())
                await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
                told: dict[str, str] = {}
                async for message in ws:
                    data = message.json()
                    if data["type"] in ("answer", "offer"):
                        told[data["type"]] = data["sdp"]
                    if len(told) == 2:
                        break
            finally:
                await pc.close()
            assert f"msid:{ann.self_id} " in told["answer"] and bob.self_id not in told["answer"]
            assert audio_directions(told["answer"]) == ["recvonly", "sendonly"]
            assert f"msid:{bob.self_id} " in told["offer"]
            assert audio_directions(told["offer"]).count("sendonly") == 2


async def test_the_first_offers_receive_lines_are_counted_receive_only_and_opus() -> None:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        for _ in range(2):
            pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
    finally:
        await pc.close()
    voice, first, second = re.split(r"(?m)^(?=m=audio)", sdp)[1:]
    head = sdp[: sdp.index("m=audio")]
    check_offer_lines(SessionDescription.parse(sdp), {}, None, receive_lines=2)
    with pytest.raises(SignalingError, match="adds audio line '2'"):
        check_offer_lines(SessionDescription.parse(sdp), {}, None, receive_lines=1)
    sending = head + voice + first + second.replace("a=recvonly", "a=sendonly")
    with pytest.raises(SignalingError, match="audio line '2' sendonly: besides its voice"):
        check_offer_lines(SessionDescription.parse(sending), {}, None, receive_lines=2)
    no_opus = head + voice + re.sub(r"opus/48000/2", "PCMU/8000", first) + second
    with pytest.raises(SignalingError, match="receive line '1' has no Opus"):
        check_offer_lines(SessionDescription.parse(no_opus), {}, None, receive_lines=2)


async def test_reoffers_wait_for_joins_in_progress_but_not_for_ever(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections that are up hold re-offers back while anyone is joining (their SDP work would be in the
    newcomer's way), until the last join is through, or the hold runs out."""
    joining = Joining()
    await asyncio.wait_for(joining.quiet(), 1)  # nobody joining: no wait
    monkeypatch.setattr(negotiation, "REOFFER_HOLD_SECONDS", 60.0)
    newcomer, other = object(), object()
    joining.begin(newcomer)
    joining.begin(other)
    held = asyncio.create_task(joining.quiet())
    joining.end(newcomer)
    joining.end(newcomer)  # ended twice (connected, then closed): counted once
    for _ in range(5):
        await asyncio.sleep(0)  # the held task runs, and finds another join in progress
    assert not held.done()
    joining.end(other)
    await asyncio.wait_for(held, 1)
    monkeypatch.setattr(negotiation, "REOFFER_HOLD_SECONDS", 0.05)
    joining.begin(newcomer)
    await asyncio.wait_for(joining.quiet(), 1)  # a join that never ends holds nothing for long
