"""Hostile descriptions and candidates: which addresses the server sends connectivity checks to,
what an offer may add to a connection, and that nothing a client writes can close the shared UDP socket.

The server runs on plain asyncio here (uvloop hidden from it): asyncio's datagram transport closes its socket
when ``sendto`` raises anything but ``OSError``, and a port of 70000 made it raise ``OverflowError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from ghosttalk.client.participant import IdleAudioTrack
from tests.conftest import RELAXED_LIMITS
from tests.support.eventually import eventually
from tests.support.probes import admin_json, tracebacks
from tests.support.rawpeer import host_candidate, loopback_only
from tests.support.rawws import RawWebSocket
from tests.support.room import assert_still_talking, clients
from tests.support.server import ServerProcess

# Every offer here costs a negotiation; the offer limit has its own tests.
LIMITS = [*RELAXED_LIMITS, "--offers-per-minute", "1000"]
# A client address on the public Internet, as a trusted proxy (loopback) reports it.
PUBLIC_CLIENT = {"X-Forwarded-For": "9.9.9.9"}


class AsyncioServer(ServerProcess):
    """The server as ``pip install ghosttalk`` without the ``fast`` extra runs it: no uvloop."""

    def command(self) -> list[str]:
        hide_uvloop = (
            "import sys; sys.modules['uvloop'] = None; from ghosttalk.cli import main; raise SystemExit(main())"
        )
        return [sys.executable, "-c", hide_uvloop, *super().command()[3:]]


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = AsyncioServer(tmp_path_factory.mktemp("plain"), LIMITS).start()
    try:
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "uvloop" not in maps, "the server must run on asyncio's own loop here"
        yield proc
    finally:
        proc.stop()


def without_candidates(sdp: str) -> str:
    return "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith("a=candidate:"))


class ScriptedPeer:
    """A real peer connection whose offer the test may rewrite, behind a raw WebSocket (so that it can send
    headers, and read every error the server sends). It answers the server's offers as a browser does, but
    without candidates: the test decides which ones the server hears of."""

    def __init__(self, ws: RawWebSocket, pc: RTCPeerConnection) -> None:
        self.ws = ws
        self.pc = pc
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def join(
        cls,
        server: ServerProcess,
        room: str,
        name: str,
        edit: Callable[[str], str] = lambda sdp: sdp,
        headers: dict[str, str] | None = None,
        lines: int = 1,
    ) -> ScriptedPeer:
        ws = await RawWebSocket.join(server, room, name, headers=headers)
        pc = RTCPeerConnection()
        peer = cls(ws, pc)
        await ws.wait_message("room_state")
        for _ in range(lines):
            pc.addTransceiver(IdleAudioTrack(), direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        ws.send_json({"type": "offer", "sdp": edit(pc.localDescription.sdp)})
        peer._task = asyncio.create_task(peer._negotiate())
        return peer

    async def _negotiate(self) -> None:
        handled = 0
        while True:
            await self.ws.wait_for(lambda seen=handled: len(self.ws.messages) > seen or self.ws.closed, 3600)  # type: ignore[misc]
            if len(self.ws.messages) == handled:
                return
            message = self.ws.messages[handled]
            handled += 1
            if message["type"] == "answer":
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
            elif message["type"] == "offer":
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                self.ws.send_json({"type": "answer", "sdp": without_candidates(self.pc.localDescription.sdp)})

    def errors(self) -> list[str]:
        return [m["message"] for m in self.ws.of_type("error")]

    def trickle(self, line: str, mid: str | None = "0", index: int | None = None) -> None:
        self.ws.send_json(
            {"type": "candidate", "candidate": {"candidate": line, "sdpMid": mid, "sdpMLineIndex": index}}
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.ws.abort()
        await self.pc.close()


@contextlib.asynccontextmanager
async def scripted(server: ServerProcess, room: str, name: str, **kwargs: object) -> AsyncIterator[ScriptedPeer]:
    peer = await ScriptedPeer.join(server, room, name, **kwargs)  # type: ignore[arg-type]
    try:
        yield peer
    finally:
        await peer.close()


def with_candidates(sdp: str, lines: list[str]) -> str:
    """``sdp`` with ``lines`` (``candidate:...`` values) as its only candidates."""
    sdp = loopback_only(sdp)
    own = re.search(r"a=candidate:.*\r\n", sdp)
    assert own is not None
    return sdp.replace(own.group(0), "".join(f"a={line}\r\n" for line in lines))


class UdpListener(asyncio.DatagramProtocol):
    """A UDP port on loopback standing for a machine on the server's network: counts what reaches it."""

    def __init__(self) -> None:
        self.datagrams = 0

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.datagrams += 1


@contextlib.asynccontextmanager
async def udp_listener() -> AsyncIterator[tuple[UdpListener, int]]:
    transport, listener = await asyncio.get_running_loop().create_datagram_endpoint(
        UdpListener, local_addr=("127.0.0.1", 0)
    )
    try:
        yield listener, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


# Candidates: matching, validation, and where checks go.


async def test_a_candidate_with_an_empty_mid_is_matched_by_its_line_index(plain_server: ServerProcess) -> None:
    """Pion trickles ``sdpMid: ""`` with a valid ``sdpMLineIndex``; only a candidate that names neither a
    known mid nor an existing line is refused."""
    async with scripted(plain_server, "pion-mid", "pion") as peer:
        await peer.ws.wait_message("answer")
        peer.trickle(host_candidate(40001), mid="", index=0)
        peer.trickle(host_candidate(40002), mid="7", index=0)  # an unknown mid, a line that exists
        peer.trickle(host_candidate(40003), mid="", index=9)
        peer.trickle(host_candidate(40004), mid="", index=None)
        await peer.ws.wait_for(lambda: len(peer.errors()) >= 2)
        await asyncio.sleep(0.3)  # any further error would have arrived by now
        assert sorted(peer.errors()) == [
            "candidate for unknown sdpMid '' or sdpMLineIndex 9",
            "candidate needs sdpMid or sdpMLineIndex",
        ]
        await eventually(lambda: peer.pc.connectionState == "connected", 10)


async def test_impossible_ports_are_refused_by_name_and_the_shared_socket_survives(
    plain_server: ServerProcess,
) -> None:
    """Port 70000 or -1, in an offer or trickled: each line is refused with an error naming it, and the call
    next to it goes on (before, aioice handed them to ``sendto`` and asyncio closed the shared socket)."""
    async with clients(plain_server, "survivors", ["ann", "bob"]) as call:
        offer_lines = [host_candidate(70000), host_candidate(-1, "127.0.0.2"), host_candidate(40010)]
        async with scripted(
            plain_server, "survivors", "mallory", edit=lambda sdp: with_candidates(sdp, offer_lines)
        ) as bad:
            await bad.ws.wait_message("answer")
            bad.trickle(host_candidate(70001))
            bad.trickle(host_candidate(-2, "127.0.0.3"))
            bad.trickle(host_candidate(99999999999999999999))
            await bad.ws.wait_for(lambda: len(bad.errors()) >= 5)
            errors = bad.errors()
            assert "port 70000 is not 1-65535" in errors[0] and "127.0.0.1 70000" in errors[0], errors
            assert "port -1 is not 1-65535" in errors[1] and "127.0.0.2 -1" in errors[1], errors
            assert "port 70001 is not 1-65535" in errors[2], errors
            assert "port -2 is not 1-65535" in errors[3] and "127.0.0.3 -2" in errors[3], errors
            assert "port 99999999999999999999 is not 1-65535" in errors[4], errors
            await eventually(lambda: bad.pc.connectionState == "connected", 10)
            await asyncio.sleep(1.0)  # the connectivity checks that used to kill the socket
            await assert_still_talking(plain_server, "survivors", call)
    assert not tracebacks(plain_server.console())


IMPLAUSIBLE = {
    host_candidate(40020, "0.0.0.0"): "not a unicast address",
    host_candidate(40021, "::"): "not a unicast address",
    host_candidate(40022, "224.0.0.251"): "not a unicast address",
    host_candidate(40023, "ff02::1"): "not a unicast address",
    host_candidate(40024, "255.255.255.255"): "not a unicast address",
    host_candidate(40025, "240.1.2.3"): "not a unicast address",
    host_candidate(53): "port 53 is privileged",
    host_candidate(1023, "9.9.9.9", "srflx"): "port 1023 is privileged",
    host_candidate(40026, "example.org"): "'example.org' is not an IP address",
    host_candidate(40027, kind="bogus"): "unknown type 'bogus'",
    "candidate:1 1 udp 2130706431 127.0.0.1 40028 typ host raddr 0.0.0.0 rport x": "does not parse",
}


async def test_a_candidate_no_client_could_have_is_refused_by_name(plain_server: ServerProcess) -> None:
    async with scripted(plain_server, "implausible", "mallory") as peer:
        await peer.ws.wait_message("answer")
        for line in IMPLAUSIBLE:
            peer.trickle(line)
        await peer.ws.wait_for(lambda: len(peer.errors()) >= len(IMPLAUSIBLE))
        for (line, reason), error in zip(IMPLAUSIBLE.items(), peer.errors(), strict=True):
            assert reason in error and line.removeprefix("candidate:")[:40] in error, (line, error)
        await eventually(lambda: peer.pc.connectionState == "connected", 10)  # and the session goes on


async def test_the_servers_own_address_is_refused(plain_server: ServerProcess) -> None:
    """Checks from the shared socket to itself would loop through the server's own ICE code."""
    own = host_candidate(plain_server.rtc_port)
    async with scripted(plain_server, "own", "mallory", edit=lambda sdp: with_candidates(sdp, [own])) as peer:
        await peer.ws.wait_message("answer")
        peer.trickle(own)
        await peer.ws.wait_for(lambda: len(peer.errors()) >= 2)
        assert all("the server's own address" in error for error in peer.errors()), peer.errors()
        await eventually(lambda: peer.pc.connectionState == "connected", 10)  # and the session goes on


async def test_candidates_per_connection_are_capped_at_32(plain_server: ServerProcess) -> None:
    """20 in the offer and 20 trickled: 32 distinct addresses are checked, the other 8 refused. A candidate
    repeated (as answers to the server's offers repeat them) is not a new one."""
    offer_lines = [host_candidate(41000 + n) for n in range(20)]
    edit = lambda sdp: with_candidates(sdp, offer_lines)  # noqa: E731
    async with scripted(plain_server, "capped", "mallory", edit=edit) as peer:
        await peer.ws.wait_message("answer")
        for line in offer_lines[:5]:
            peer.trickle(line)
        for n in range(20):
            peer.trickle(host_candidate(42000 + n))
        await peer.ws.wait_for(lambda: len(peer.errors()) >= 8)
        await asyncio.sleep(0.3)  # deliberate: any further error would have arrived by now
        assert peer.errors() == ["too many candidates: at most 32 per connection are checked"] * 8


async def test_a_public_clients_private_candidates_get_no_checks(plain_server: ServerProcess) -> None:
    """A client on the public Internet listing a LAN address would make the server probe its own network.
    Its candidate is dropped; it still connects, through the peer-reflexive address its own checks reveal.
    The same candidate from a client on a private network is checked (which proves the listener would see
    the server's checks)."""
    async with udp_listener() as (public_target, public_port), udp_listener() as (lan_target, lan_port):
        public_edit = lambda sdp: with_candidates(sdp, [host_candidate(public_port)])  # noqa: E731
        lan_edit = lambda sdp: with_candidates(sdp, [host_candidate(lan_port)])  # noqa: E731
        async with (
            scripted(plain_server, "lan-probe", "public", edit=public_edit, headers=PUBLIC_CLIENT) as public,
            scripted(plain_server, "lan-probe", "local", edit=lan_edit) as local,
        ):
            public.trickle(host_candidate(public_port, "10.1.2.3"))
            public.trickle(host_candidate(public_port, "100.64.0.1", "srflx"))
            public.trickle(host_candidate(public_port, "fd00::1"))
            await eventually(lambda: public.pc.connectionState == "connected", 10)
            await eventually(lambda: local.pc.connectionState == "connected", 10)
            await eventually(lambda: lan_target.datagrams > 0, 5)
            await asyncio.sleep(1.0)  # deliberate: time for checks towards the public client's LAN address
            assert public_target.datagrams == 0
            assert public.errors() == [] and local.errors() == []


# m-lines: what an offer may add, and no receiver (decoder thread) for a line the server does not receive on.


def threads(server: ServerProcess) -> int:
    count = admin_json(server, "internals")["threads"]
    assert isinstance(count, int)
    return count


async def test_an_offer_with_50_audio_lines_is_refused_before_it_costs_a_thread(plain_server: ServerProcess) -> None:
    """Each new audio line would get a receiver and, once connected, an OS thread decoding nothing."""
    before = threads(plain_server)
    async with scripted(plain_server, "many-lines", "mallory", lines=50) as peer:
        await peer.ws.wait_for(lambda: bool(peer.errors()) or peer.pc.connectionState == "connected")
        await asyncio.sleep(1.0)  # receivers start once connected; none may
        assert threads(plain_server) == before
        # Its voice, a data channel, and one receive line for each person a full room of 10 could hold.
        assert peer.errors() == ["offer SDP has 50 m-lines; at most 11 are possible here"]
        assert not peer.ws.of_type("answer")
    async with clients(plain_server, "many-lines", ["ann", "bob"]):
        assert threads(plain_server) == before


def section(sdp: str, mid: str) -> str:
    """The m-section of ``sdp`` with ``mid``, from its ``m=`` line to the next one."""
    found = re.search(rf"m=[^\r]*\r\n(?:(?!m=)[^\r]*\r\n)*?a=mid:{mid}\r\n(?:(?!m=)[^\r]*\r\n)*", sdp)
    assert found is not None, sdp
    return found.group(0)


async def test_a_reoffer_may_not_add_lines_or_receive_on_forwarding_lines(plain_server: ServerProcess) -> None:
    """Once connected, a client's offer may only repeat the lines the connection has: a new audio or video
    line would get a receiver with its own decoder thread, and so would a forwarding line made sendrecv."""
    async with clients(plain_server, "reoffer", ["ann", "bob"]) as (ann, bob):
        before = threads(plain_server)
        assert ann.pc is not None
        current = (await ann.pc.createOffer()).sdp  # what ann would offer now; not applied on her side
        voice = section(current, "0")
        forwarding = next(m for m in re.findall(r"a=mid:(\S+)", current) if "a=recvonly" in section(current, m))
        receiving = section(current, forwarding)
        mutations = {
            "offer adds audio line '9'": current + voice.replace("a=mid:0", "a=mid:9"),
            "offer adds video line 'v'": current + voice.replace("m=audio", "m=video").replace("a=mid:0", "a=mid:v"),
            f"offer makes audio line '{forwarding}' sendrecv, but the server only sends on it": current.replace(
                receiving, receiving.replace("a=recvonly", "a=sendrecv")
            ),
        }
        for expected, sdp in mutations.items():
            count = len(ann.errors)
            await ann.send({"type": "offer", "sdp": sdp})
            await ann.wait_for(lambda c=count: len(ann.errors) > c, 5)  # type: ignore[misc]
            assert ann.errors[-1].startswith(expected), ann.errors
        await assert_still_talking(plain_server, "reoffer", [ann, bob])
        assert threads(plain_server) == before
    assert not tracebacks(plain_server.console())
