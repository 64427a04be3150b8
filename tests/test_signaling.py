"""Bad input on /ws gets a clear answer and changes nothing else."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import aiohttp
import orjson
import pytest
from aiortc import RTCPeerConnection

from ghosttalk.client.participant import Client
from ghosttalk.contract.rules import MAX_FRAME_BYTES
from tests.support.probes import udp_sockets
from tests.support.room import assert_still_talking, clients
from tests.support.server import ServerProcess

SDP_WITHOUT_AUDIO = """v=0\r
o=- 1 1 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0\r
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r
c=IN IP4 0.0.0.0\r
a=mid:0\r
a=ice-ufrag:abcd\r
a=ice-pwd:abcdefghijklmnopqrstuvwx\r
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r
a=setup:actpass\r
a=sctp-port:5000\r
"""


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("name=bob", "room is missing"),
        ("room=&name=bob", "room is missing"),
        ("room=" + "a" * 65 + "&name=bob", "room must be"),
        ("room=a%20b&name=bob", "room must be"),
        ("room=..%2Fetc&name=bob", "room must be"),
        ("room=caf%C3%A9&name=bob", "room must be"),
        ("room=ok", "name is missing"),
        ("room=ok&name=%20%20", "name is missing"),
        ("room=ok&name=" + "x" * 13, "at most 12"),
        ("room=ok&name=a%01b", "control"),
        ("room=ok&name=a%E2%80%8Eb", "control"),
        # Names that render as nothing, and line breaks inside a name.
        ("room=ok&name=%E3%85%A4", "visible character"),  # U+3164 HANGUL FILLER
        ("room=ok&name=%E1%85%9F%E1%85%A0", "visible character"),  # U+115F U+1160
        ("room=ok&name=%EF%BE%A0%E2%A0%80", "visible character"),  # U+FFA0, U+2800 blank braille
        ("room=ok&name=%CC%81%CC%81", "visible character"),  # combining marks alone
        ("room=ok&name=%E2%80%8D%E2%80%8C", "control"),  # ZWJ, ZWNJ
        ("room=ok&name=a%E2%80%A8b", "line breaks"),  # U+2028
        ("room=ok&name=a%E2%80%A9b", "line breaks"),  # U+2029
        ("room=ok&name=a%09b", "line breaks"),
        ("room=ok&name=%EE%80%80", "private-use"),  # U+E000
    ],
)
async def test_bad_room_or_name_is_refused_before_the_upgrade(
    shared_server: ServerProcess, query: str, reason: str
) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{shared_server.url}/ws?{query}")
        assert refused.value.status == 400
        async with session.get(f"{shared_server.url}/ws?{query}") as response:
            assert response.status == 400
            assert reason in await response.text()


async def test_the_websocket_origin_check_compares_the_scheme(shared_server: ServerProcess) -> None:
    """An https page may open /ws only where the request was https, which behind a
    TLS-terminating proxy only a trusted proxy's X-Forwarded-Proto can say (loopback is trusted by default)."""
    url = shared_server.ws_url("origin-scheme", "oscar")
    own = shared_server.url.removeprefix("http://")
    cases = [
        ({"Origin": f"http://{own}"}, 101),
        ({"Origin": f"https://{own}"}, 403),
        ({"Origin": f"https://{own}", "X-Forwarded-Proto": "https"}, 101),
        ({"Origin": f"http://{own}", "X-Forwarded-Proto": "https"}, 403),
    ]
    async with aiohttp.ClientSession() as session:
        for headers, status in cases:
            try:
                async with session.ws_connect(url, headers=headers) as ws:
                    await ws.receive_str(timeout=5)
                    got = 101
            except aiohttp.WSServerHandshakeError as exc:
                got = exc.status
            assert got == status, headers


async def test_twelve_unicode_characters_are_a_fine_name(shared_server: ServerProcess) -> None:
    name = "幽灵说话的人们你好吗"[:10] + "ok"
    assert len(name) == 12
    async with clients(shared_server, "unicode", [name]) as (member,):
        assert member.peers[member.self_id or ""].name == name


async def test_websocket_compression_is_declined(shared_server: ServerProcess) -> None:
    """Browsers all offer permessage-deflate; accepting it would cost ~120 kB of zlib state per person."""
    url = shared_server.url.replace("http", "ws", 1) + "/ws?room=deflate&name=zed"
    async with aiohttp.ClientSession() as session, session.ws_connect(url, compress=15) as ws:
        assert "Sec-WebSocket-Extensions" not in ws._response.headers
        assert ws.compress == 0
        first = orjson.loads(await ws.receive_str(timeout=5))
        assert first["type"] == "room_state"


async def next_error(client: Client, count_before: int) -> str:
    await client.wait_for(lambda: len(client.errors) > count_before, 5)
    return client.errors[count_before]


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("this is not json", "not JSON"),
        ("[1, 2, 3]", "JSON object"),
        ("42", "JSON object"),
        ('{"no": "type"}', "string 'type'"),
        ('{"type": 7}', "string 'type'"),
        ('{"type": "mute", "muted": "yes"}', "boolean 'muted'"),
        ('{"type": "offer", "sdp": 5}', "'sdp' string"),
        ('{"type": "offer", "sdp": "v=0 this is not sdp"}', "offer SDP"),
        ('{"type": "offer", "sdp": ' + orjson.dumps(SDP_WITHOUT_AUDIO).decode() + "}", "no audio"),
        ('{"type": "answer", "sdp": 5}', "'sdp' string"),
        ('{"type": "candidate", "candidate": 5}', "object or null"),
        ('{"type": "candidate", "candidate": {"candidate": 5}}', "'candidate' string"),
        (
            '{"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host"}}',
            "sdpMid or sdpMLineIndex",
        ),
        (
            '{"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 1 1.2.3.4 5555 typ host", '
            '"sdpMid": "99"}}',
            "unknown sdpMid",
        ),
        ('{"type": "candidate", "candidate": {"candidate": "garbage", "sdpMid": "0"}}', "does not parse"),
        ('{"type": "heartbeat", "ts": "soon"}', "'ts' must be a number"),
    ],
)
async def test_malformed_messages_get_an_error_and_the_session_goes_on(
    shared_server: ServerProcess, frame: str, expected: str
) -> None:
    async with clients(shared_server, "malformed", ["victim", "friend"]) as (victim, friend):
        before = len(victim.errors)
        await victim.send_raw(frame)
        assert expected in await next_error(victim, before)
        await assert_still_talking(shared_server, "malformed", [victim, friend])


async def test_trickled_mdns_and_ip_candidates_are_accepted(shared_server: ServerProcess) -> None:
    """Chromium trickles `.local` (mDNS) host candidates; they are accepted without an error (their checks
    reach us anyway as peer-reflexive), as are ordinary ones, after the remote description is set."""
    async with clients(shared_server, "trickle", ["victim", "friend"]) as (victim, friend):
        for line in (
            "candidate:1 1 udp 2122260223 0c5a8f2e-1b2c-4d3e-8f9a-0123456789ab.local 54321 typ host",
            "candidate:2 1 udp 2122260223 127.0.0.1 54322 typ host",
            "",  # end of candidates
        ):
            await victim.send({"type": "candidate", "candidate": {"candidate": line, "sdpMid": "0"}})
        await victim.send({"type": "candidate", "candidate": None})
        await assert_still_talking(shared_server, "trickle", [victim, friend])
        assert victim.errors == []


async def test_mdns_candidates_inside_an_offer_are_not_resolved(shared_server: ServerProcess) -> None:
    """A `.local` candidate in the offer itself is dropped like a trickled one: resolving it would make the
    server multicast (a second UDP socket, on 5353) and hold up the answer."""
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        mdns = "a=candidate:1 1 udp 2122260223 0c5a8f2e-1b2c-4d3e-8f9a-0123456789ab.local 54321 typ host\r\n"
        sdp = pc.localDescription.sdp.replace("a=mid:0\r\n", "a=mid:0\r\n" + mdns, 1)
        assert mdns in sdp
        url = shared_server.url.replace("http", "ws", 1) + "/ws?room=mdns-offer&name=ann"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_str(orjson.dumps({"type": "offer", "sdp": sdp}).decode())
            kinds = []
            while "answer" not in kinds:
                message = orjson.loads(await ws.receive_str(timeout=2))
                assert message["type"] != "error", message
                kinds.append(message["type"])
            assert udp_sockets(shared_server.pid) == 1
    finally:
        await pc.close()


async def test_binary_frame_gets_an_error(shared_server: ServerProcess) -> None:
    async with clients(shared_server, "binary", ["victim"]) as (victim,):
        await victim.send_raw(b"\x00\x01binary")
        assert "binary frames" in await next_error(victim, 0)
        await victim.send({"type": "heartbeat", "ts": 1})
        await victim.mute(True)
        await victim.wait_for(lambda: victim.peers[victim.self_id or ""].muted, 5)


async def test_unknown_types_are_ignored(shared_server: ServerProcess) -> None:
    async with clients(shared_server, "unknown", ["victim"]) as (victim,):
        await victim.send({"type": "chat", "text": "hello"})
        await victim.mute(True)
        await victim.wait_for(lambda: victim.peers[victim.self_id or ""].muted, 5)
        assert victim.errors == []


def padded_heartbeat(size: int) -> str:
    """A heartbeat frame of exactly ``size`` bytes."""
    prefix = '{"type": "heartbeat", "pad": "'
    return prefix + "x" * (size - len(prefix) - 2) + '"}'


@pytest.mark.parametrize("size", [MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1])
async def test_a_frame_of_64_kib_passes_and_one_byte_more_closes_with_1009(
    shared_server: ServerProcess, size: int
) -> None:
    """The contract's limit is inclusive (aiohttp's own refuses a message of exactly max_msg_size)."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{shared_server.url}/ws?room=big&name={quote('big')}")
        first = await ws.receive_json()
        assert first["type"] == "room_state"
        frame = padded_heartbeat(size)
        assert len(frame.encode()) == size
        await ws.send_str(frame)
        if size <= MAX_FRAME_BYTES:
            # Only a session that goes on is asked more: a write after a frame the server refused can meet a
            # socket it has already closed, and end as 1006 instead of the 1009 it sent.
            await ws.send_json({"type": "mute", "muted": True})
        while (message := await ws.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
            if orjson.loads(message.data)["type"] == "peer_update":
                break  # the session went on past the frame
        if size > MAX_FRAME_BYTES:
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) and ws.close_code == 1009
        else:
            assert message.type == aiohttp.WSMsgType.TEXT, (message.type, ws.close_code)
        await ws.close()


async def test_answer_without_offer_and_offer_during_negotiation(shared_server: ServerProcess) -> None:
    async with clients(shared_server, "order", ["victim", "friend"]) as (victim, friend):
        assert victim.pc is not None
        before = len(victim.errors)
        await victim.send({"type": "answer", "sdp": victim.pc.localDescription.sdp})
        assert "without an outstanding offer" in await next_error(victim, before)
        # A third person joins: the server re-offers to both; an offer sent into that is dropped (we are the
        # impolite side), and the negotiation still completes.
        third = asyncio.create_task(Client(shared_server.url, "order", "third").connect())
        await victim.send({"type": "offer", "sdp": victim.pc.localDescription.sdp})
        newcomer = await third
        try:
            await assert_still_talking(shared_server, "order", [victim, friend, newcomer])
        finally:
            await newcomer.close()
