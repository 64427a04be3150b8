"""Hostile datagrams against a running server: nothing sent to the shared UDP socket, and nothing a
description makes the server send, may break the socket or another person's call.

Every test runs twice: on uvloop (the ``fast`` extra, what the Docker image runs) and on plain asyncio (a
``pip install`` without it), whose datagram transport closes itself on any ``sendto`` error but ``OSError``.
The attacker is a raw UDP socket on loopback; it knows what an attacker can learn (the server's address, and
by guessing, a live ufrag: the tests read it from the victim's description) and, where a test says so, the
victim's own ICE password (a peer whose address changes: NAT rebinding, a second candidate).
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import sys
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aioice import stun

from ghosttalk.client.participant import Client
from ghosttalk.config import Config
from ghosttalk.server.app import create_app
from ghosttalk.server.lifecycle import MEDIA
from tests.conftest import RELAXED_LIMITS
from tests.support.eventually import eventually
from tests.support.probes import admin_json, tracebacks
from tests.support.rawpeer import dead_offer
from tests.support.room import clients
from tests.support.server import ServerProcess

T = TypeVar("T")

# Imported by a fresh interpreter instead of ``-m ghosttalk``: uvloop cannot be imported, so ``serve`` runs
# the plain asyncio loop, as it does when the ``fast`` extra is not installed.
WITHOUT_UVLOOP = "import sys; sys.modules['uvloop'] = None; from ghosttalk.cli import main; raise SystemExit(main())"
DEAD_USERNAME = "d3ad:beef"


class AsyncioServerProcess(ServerProcess):
    """The server on plain asyncio."""

    def command(self) -> list[str]:
        command = super().command()
        assert command[1:3] == ["-m", "ghosttalk"]
        return [sys.executable, "-c", WITHOUT_UVLOOP, *command[3:]]


def runs_uvloop(pid: int) -> bool:
    return "uvloop" in Path(f"/proc/{pid}/maps").read_text()


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    kind = ServerProcess if request.param == "uvloop" else AsyncioServerProcess
    proc = kind(tmp_path_factory.mktemp(request.param), RELAXED_LIMITS).start()
    try:
        assert runs_uvloop(proc.pid) == (request.param == "uvloop")
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def attacker(server: ServerProcess) -> AsyncIterator[Attacker]:
    attacker = Attacker(server.rtc_port)
    try:
        yield attacker
    finally:
        attacker.close()


class Attacker:
    """A raw UDP socket aimed at the server's shared socket; what comes back is read without waiting (loopback
    delivers at once, so whatever the server answered to a datagram it has handled is already queued)."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

        self.received: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def replies(self) -> list[bytes]:
        """Everything the server has sent back so far."""
        while True:
            try:
                self.received.append(self.sock.recv(2048))
            except BlockingIOError:
                return self.received

    def close(self) -> None:
        self.sock.close()


def credentials(client: Client) -> tuple[str, str]:
    """The USERNAME of ``client``'s checks (the server's ufrag, then its own) and the server's ICE password for
    its connection, from the descriptions it exchanged."""
    assert client.pc is not None and client.pc.remoteDescription is not None
    theirs, ours = client.pc.remoteDescription.sdp, client.pc.localDescription.sdp
    ufrag, password = re.search(r"a=ice-ufrag:(\S+)", theirs), re.search(r"a=ice-pwd:(\S+)", theirs)
    own_ufrag = re.search(r"a=ice-ufrag:(\S+)", ours)
    assert ufrag is not None and password is not None and own_ufrag is not None
    return f"{ufrag[1]}:{own_ufrag[1]}", password[1]


def binding_request(username: str, password: str | None, *, priority: bytes | None = None) -> bytes:
    """A connectivity check with ``username``, signed with ``password`` (unsigned when None). ``priority``
    replaces the PRIORITY attribute's value bytes as they are, length included (a malformed attribute)."""
    message = stun.Message(
        stun.Method.BINDING,
        stun.Class.REQUEST,
        attributes={"USERNAME": username, "PRIORITY": 0x6E7F1EFF, "ICE-CONTROLLING": 1},
    )
    if password is not None:
        message.add_message_integrity(password.encode())
    data = bytes(message)
    if priority is not None:
        at = data.index(b"\x00\x24\x00\x04")
        body = data[20:at] + struct.pack("!HH", 0x0024, len(priority)) + priority + b"\x00" * (-len(priority) % 4)
        data = data[:2] + struct.pack("!H", len(body)) + data[4:20] + body
    return data


def dropped(server: ServerProcess, reason: str) -> float:
    """ghosttalk_udp_datagrams_dropped_total for one reason (0 while the metric does not exist)."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(rf'^ghosttalk_udp_datagrams_dropped_total\{{reason="{reason}"\}} (\S+)$', text, re.M)
    return float(found[1]) if found else 0.0


def in_thread(check: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """``check`` run in a thread, for :func:`eventually`: it may read /metrics, which blocks."""
    return lambda: asyncio.to_thread(check)


async def authenticated_answer(attacker: Attacker, username: str, password: str) -> stun.Message:
    """Send a check signed with the victim's own password and return the server's answer to it. Datagrams are
    handled in order, so everything sent before it has been handled too."""
    request = binding_request(username, password)
    attacker.send(request)

    def answer() -> stun.Message | None:
        # The server answers, then checks the new address itself (a triggered check).
        for data in attacker.replies():
            reply = stun.parse_message(data)
            if reply.message_class == stun.Class.RESPONSE and reply.transaction_id == request[8:20]:
                return reply
        return None

    await eventually(in_thread(answer), 5, what="an answer to an authenticated check", until=lambda m: m is not None)
    response = answer()
    assert response is not None and response.check_message_integrity(password.encode())
    return response


async def still_talking(speaker: Client, listener: Client, packets: int = 50) -> None:
    """``speaker`` sends ``packets`` at 50 a second and ``listener`` hears nearly all of them."""
    assert speaker.self_id is not None
    heard = listener.received.setdefault(speaker.self_id, [])
    before = len(heard)
    for _ in range(packets):
        speaker.send_rtp(b"\xf8" + b"\x00" * 40)
        await asyncio.sleep(0.02)
    await listener.wait_for(lambda: len(heard) - before >= packets * 0.95, timeout=5)


async def test_a_forged_check_gets_no_answer_and_binds_nothing(server: ServerProcess, attacker: Attacker) -> None:
    """Finding 1: a check for a live ufrag without the password used to be answered (401), telling live ufrags
    from dead ones, and to bind its source address to the victim's connection before aioice checked it."""
    async with clients(server, "forged", ["victim", "listener"]) as (victim, listener):
        username, _ = credentials(victim)
        addresses = admin_json(server, "internals")["ice_addresses"]
        forged, unknown, strangers = (
            dropped(server, r) for r in ("stun_unauthenticated", "stun_unknown_ufrag", "unknown_source")
        )
        attacker.send(binding_request(username, "a-password-that-is-not-it"))
        attacker.send(binding_request(username, None))
        attacker.send(binding_request(DEAD_USERNAME, "whatever-password-you-like"))
        await eventually(
            in_thread(
                lambda: bool(attacker.replies())
                or (
                    dropped(server, "stun_unauthenticated") >= forged + 2
                    and dropped(server, "stun_unknown_ufrag") > unknown
                )
            ),
            5,
            what="the forged checks handled (answered or dropped)",
        )
        assert attacker.replies() == []
        assert admin_json(server, "internals")["ice_addresses"] == addresses
        # What used to kill the victim once its address was bound: from an unbound address it goes nowhere.
        for data in (b"", b"\x00", b"\x17", b"\x16\xfe\xfd" + b"\x00" * 20, b"\x80" * 30):
            attacker.send(data)
        await still_talking(victim, listener)
        assert victim.closed_reason is None and listener.closed_reason is None
        assert dropped(server, "stun_unauthenticated") == forged + 2
        assert dropped(server, "stun_unknown_ufrag") == unknown + 1
        assert dropped(server, "unknown_source") >= strangers + 2


def raw_socket() -> socket.socket:
    """A socket that writes whole IPv4 packets, source address included (needs CAP_NET_RAW)."""
    try:
        return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except PermissionError:
        pytest.skip("sending with a spoofed source address needs CAP_NET_RAW")


def spoofed(source: tuple[str, int], target: tuple[str, int], payload: bytes) -> bytes:
    """An IPv4 UDP packet from ``source`` (UDP checksum 0: none; the kernel fills in the IP checksum)."""
    udp = struct.pack("!HHHH", source[1], target[1], 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
        socket.inet_aton(source[0]), socket.inet_aton(target[0]),
    )  # fmt: skip
    return header + udp


async def test_checks_from_a_spoofed_source_cannot_take_a_victims_address(server: ServerProcess) -> None:
    """Finding 1, the spoofing variant: checks carrying the victim's address as their source, for another
    session (here the attacker's own, signed with its own password), moved the victim's address to that
    session, and the victim's audio with it (48 packets/s fell to about 1). An address stays with the
    connection that authenticates from it."""
    raw = raw_socket()
    try:
        async with clients(server, "spoofed", ["victim", "listener", "attacker"]) as (victim, listener, attacker):
            username, password = credentials(attacker)
            assert victim.pc is not None
            sources = [
                (candidate.ip, candidate.port)
                for transceiver in victim.pc.getTransceivers()
                for candidate in transceiver.sender.transport.transport.iceGatherer.getLocalCandidates()
                if candidate.ip.count(".") == 3
            ]
            assert sources
            taken = dropped(server, "stun_address_taken")
            target = ("127.0.0.1", server.rtc_port)

            async def spoof(rounds: int) -> None:
                for _ in range(rounds):
                    for source in sources:
                        raw.sendto(spoofed(source, target, binding_request(username, password)), target)
                    await asyncio.sleep(0.01)

            spoofing = asyncio.create_task(spoof(300))
            try:
                # The victim's address is under attack (the server has seen spoofed checks) before it speaks.
                await eventually(
                    in_thread(lambda: dropped(server, "stun_address_taken") > taken), 3, what="spoofed checks seen"
                )
                await still_talking(victim, listener, packets=100)
            finally:
                spoofing.cancel()
            assert victim.closed_reason is None and attacker.closed_reason is None
            assert dropped(server, "stun_address_taken") > taken
    finally:
        raw.close()


async def test_a_short_datagram_from_a_peer_address_is_dropped(server: ServerProcess, attacker: Attacker) -> None:
    """Finding 2: an empty datagram from an address bound to a connection raised IndexError in aiortc's DTLS
    receive, which ended the connection's DTLS (and with it the heartbeat channel). Here the attacker's
    address is bound legitimately: it signs its check with the victim's own password (a peer whose address
    changed), which also shows such a peer is answered."""
    async with clients(server, "short", ["victim", "listener"]) as (victim, listener):
        username, password = credentials(victim)
        await authenticated_answer(attacker, username, password)
        short = dropped(server, "short")
        for data in (b"", b"\x00", b"\x16", b"\x80", b"\x17\xfe\xfd\x00"):
            attacker.send(data)
        await authenticated_answer(attacker, username, password)
        # The heartbeat travels over DTLS: the next ping (every 5 s) proves the victim's DTLS survived.
        pings = victim.pings
        await victim.wait_for(lambda: victim.pings > pings, timeout=8)
        await still_talking(victim, listener)
        assert victim.closed_reason is None
        assert dropped(server, "short") == short + 5


async def test_malformed_stun_is_counted_not_logged_per_datagram(server: ServerProcess, attacker: Attacker) -> None:
    """Finding 2: a STUN attribute of the wrong size raised struct.error in aioice's parser, logged with a full
    traceback for every datagram (80 % CPU and 3.7 MB/s of log at 2,800 datagrams/s)."""
    async with clients(server, "malformed", ["victim", "listener"]) as (victim, listener):
        username, password = credentials(victim)
        console_before = len(server.console())
        malformed = [
            binding_request(username, password, priority=b"\x01\x02\x03"),  # struct.error
            binding_request(username, None, priority=b""),  # struct.error
            binding_request(username, password)[:-4],  # length field disagrees with the datagram
            b"\x00\x01\x00\x08" + stun.COOKIE.to_bytes(4, "big") + b"t" * 12 + b"\x00\x06\x00\x04\xff\xfe\xfd\xfc",
            b"\x03\xff\x00\x00" + stun.COOKIE.to_bytes(4, "big") + b"t" * 12,  # no such method
        ]
        before = dropped(server, "stun_malformed")
        rounds = 200
        for _ in range(rounds):
            for data in malformed:
                attacker.send(data)
            await asyncio.sleep(0)  # a loop turn per round, so that the server's replies are read meanwhile
        await authenticated_answer(attacker, username, password)
        console = server.console()[console_before:]
        assert tracebacks(console) == [], tracebacks(console)[:1]
        assert console.count("stun_malformed") <= 1, console[-2000:]
        assert len(attacker.replies()) <= 2  # the answer to the last check and the server's own check
        assert dropped(server, "stun_malformed") == before + rounds * len(malformed)
        await still_talking(victim, listener)


async def test_a_candidate_port_out_of_range_cannot_close_the_socket(server: ServerProcess) -> None:
    """Finding 3: a candidate on port 70000 made plain asyncio's sendto raise OverflowError, and asyncio then
    closed the shared socket: every call dropped while /healthz said 200. Whether the candidate is refused at
    signaling or its checks are dropped at the socket, the socket and the call go on."""
    async with clients(server, "send-side", ["talker", "listener"]) as (talker, listener):
        async with aiohttp.ClientSession() as session, session.ws_connect(server.ws_url("send-side", "bad")) as ws:
            await ws.receive_json()  # room_state
            offer = await dead_offer_on_port(70000)
            await ws.send_json({"type": "offer", "sdp": offer})
            for port in ("-1", "65536", "99999999999"):
                line = f"candidate:2 1 udp 2122260223 127.0.0.1 {port} typ host"
                await ws.send_json({"type": "candidate", "candidate": {"candidate": line, "sdpMid": "0"}})
            handled = await refused_or_dropped(server, ws)
            await still_talking(talker, listener)
        assert health(server) == 200
        async with clients(server, "send-side-later", ["late", "comer"]) as (late, comer):
            await still_talking(late, comer)
        assert handled, "no check dropped and no candidate refused"


async def dead_offer_on_port(port: int) -> str:
    sdp = await dead_offer()
    return re.sub(r"(a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1) \d+ typ host", rf"\1 {port} typ host", sdp)


async def refused_or_dropped(server: ServerProcess, ws: aiohttp.ClientWebSocketResponse, timeout: float = 5) -> bool:
    """Whether the server, within ``timeout``, refused a bad candidate at signaling (an error naming it) or
    dropped a check to it at the socket."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await asyncio.to_thread(dropped, server, "bad_destination") == 0:
        if asyncio.get_running_loop().time() > deadline:
            return False
        try:
            message = await ws.receive_json(timeout=0.05)
        except TimeoutError:
            continue
        if message.get("type") == "error" and "candidate" in message.get("message", ""):
            return True
    return True


def health(server: ServerProcess) -> int:
    try:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_healthz_says_503_once_the_shared_socket_has_closed(tmp_path: Path) -> None:
    """Finding 3: with the shared socket gone no call can carry audio; a load balancer must be told."""
    app = create_app(Config(data_dir=tmp_path, rtc_udp_port=0, rtc_hosts=("127.0.0.1",), rtc_bind="127.0.0.1"))
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/healthz")).status == 200
        app[MEDIA].mux.transport.close()
        response = await client.get("/healthz")
        assert response.status == 503
        assert (await response.json())["status"] == "media socket closed"
