"""What the server advertises for ICE (--public-ip, --rtc-host) and the shared socket's address book."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from aioice import stun
from aioice.candidate import Candidate
from aioice.ice import CandidatePair, Connection
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.sdp import SessionDescription

from ghosttalk.media import icemux
from ghosttalk.media.aiortc_adapter.ice import (
    DTLS_ERRORS_IN_A_ROW,
    Address,
    SharedSocketStunProtocol,
    check_at_once,
    gather_on_shared_socket,
    guard_dtls_receive,
)
from ghosttalk.media.icemux import (
    ADDRESS_HOLD_SECONDS,
    MAX_ADDRESSES_PER_CONNECTION,
    IceMux,
    default_host_addresses,
)
from tests.support.eventually import eventually
from tests.support.server import ServerProcess


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
        # Nothing but the welcome (with the new room's host role), then the answer: no error for the candidate.
        assert seen == ["room_state", "host", "answer", "offer"]
    finally:
        await pc.close()


# The shared socket's routing rules, in process: any source address can be spoofed here.

# A check from the peer's side of a connection, signed with ``password`` (the connection's local one when
# the peer is genuine).
REMOTE_UFRAG = "peer"


class RecordingTransport:
    """Stands in for the shared socket's transport: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Address]] = []

    def sendto(self, data: bytes, addr: Address) -> None:
        self.sent.append((data, addr))

    def is_closing(self) -> bool:
        return False


def recording_mux() -> tuple[IceMux, RecordingTransport]:
    mux = IceMux(advertised=("127.0.0.1",))
    transport = RecordingTransport()
    mux.connection_made(cast(asyncio.DatagramTransport, transport))
    return mux, transport


def shared_connection(mux: IceMux) -> tuple[Connection, SharedSocketStunProtocol]:
    connection = Connection(ice_controlling=False)
    candidate = Candidate("1", 1, "udp", 1, "127.0.0.1", 3478, "host")
    protocol = SharedSocketStunProtocol(connection, mux, candidate)
    mux.register(connection.local_username, protocol)
    return connection, protocol


def check(connection: Connection, password: str | None = None) -> bytes:
    request = stun.Message(
        stun.Method.BINDING,
        stun.Class.REQUEST,
        attributes={"USERNAME": f"{connection.local_username}:{REMOTE_UFRAG}", "PRIORITY": 1, "ICE-CONTROLLING": 1},
    )
    request.add_message_integrity((password or connection.local_password).encode())
    return bytes(request)


async def test_only_an_authenticated_check_binds_its_address_and_gets_an_answer() -> None:
    mux, transport = recording_mux()
    connection, protocol = shared_connection(mux)
    forged = check(connection, password="not-the-password-at-all")
    unsigned = forged[: forged.index(b"\x00\x08\x00\x14")]  # cut at MESSAGE-INTEGRITY
    unsigned = unsigned[:2] + struct.pack("!H", len(unsigned) - 20) + unsigned[4:]
    for data in (forged, unsigned):
        mux.datagram_received(data, ("198.51.100.1", 4000))
    assert transport.sent == [] and mux.mapping_counts() == (1, 0)
    assert mux.dropped["stun_unauthenticated"] == 2

    mux.datagram_received(check(connection), ("198.51.100.1", 4000))
    assert mux.mapping_counts() == (1, 1)
    [(answer, addr)] = transport.sent
    response = stun.parse_message(answer)
    assert addr == ("198.51.100.1", 4000) and response.message_class == stun.Class.RESPONSE
    assert response.check_message_integrity(connection.local_password.encode())
    await protocol.close()
    assert mux.mapping_counts() == (0, 0)


async def test_a_dead_ufrag_and_a_live_one_look_alike() -> None:
    mux, transport = recording_mux()
    live, _ = shared_connection(mux)
    dead = Connection(ice_controlling=False)
    mux.datagram_received(check(live, password="a-guess-that-is-wrong-x"), ("198.51.100.1", 4000))
    mux.datagram_received(check(dead), ("198.51.100.1", 4000))
    assert transport.sent == []
    assert mux.dropped["stun_unauthenticated"] == 1 and mux.dropped["stun_unknown_ufrag"] == 1


async def test_a_peer_checking_from_a_new_address_is_routed_there_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """NAT rebinding or a second candidate: each address the genuine peer authenticates from is bound, up to
    a cap of live ones per connection; an address silent for ADDRESS_HOLD_SECONDS gives way to a new one."""
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(icemux, "time", SimpleNamespace(monotonic=lambda: clock.now))
    mux, transport = recording_mux()
    connection, protocol = shared_connection(mux)
    ports = range(4000, 4000 + MAX_ADDRESSES_PER_CONNECTION + 2)
    for port in ports:
        mux.datagram_received(check(connection), ("198.51.100.1", port))
    # A peer checking from ever new ports is held to the cap while its addresses are live.
    assert len(transport.sent) == MAX_ADDRESSES_PER_CONNECTION
    assert mux.mapping_counts() == (1, MAX_ADDRESSES_PER_CONNECTION)
    assert mux.dropped["stun_address_limit"] == 2
    clock.now += ADDRESS_HOLD_SECONDS
    mux.datagram_received(check(connection), ("198.51.100.1", 4001))  # still in use: consent checks go on
    mux.datagram_received(check(connection), ("198.51.100.1", 5000))  # the NAT gave the peer a new port
    assert mux.mapping_counts() == (1, MAX_ADDRESSES_PER_CONNECTION)
    assert ("198.51.100.1", 5000) in protocol.addresses and ("198.51.100.1", 4001) in protocol.addresses
    assert ("198.51.100.1", 4000) not in protocol.addresses
    await protocol.close()
    assert mux.mapping_counts() == (0, 0)


async def test_another_connection_cannot_take_an_address_in_use() -> None:
    """A participant with credentials of its own sends checks from a spoofed source, the victim's address:
    the victim keeps it."""
    mux, _ = recording_mux()
    victim, victim_protocol = shared_connection(mux)
    attacker, _ = shared_connection(mux)
    address = ("198.51.100.1", 4000)
    mux.datagram_received(check(victim), address)
    mux.datagram_received(check(attacker), address)
    assert mux.dropped["stun_address_taken"] == 1
    received: list[bytes] = []
    victim_protocol.srtp_handler = received.append
    mux.datagram_received(b"\x80" + b"\x00" * 40, address)
    assert received == [b"\x80" + b"\x00" * 40]


async def test_sending_a_check_claims_no_address_and_only_its_response_comes_back() -> None:
    """A candidate may name anyone's address: sending it checks must not route that address's datagrams to
    the connection. The response is matched by transaction id and source."""
    mux, transport = recording_mux()
    _, protocol = shared_connection(mux)
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, attributes={"USERNAME": "them:us"})
    key = b"remote-password"
    target = ("198.51.100.9", 5000)
    pending = asyncio.ensure_future(protocol.request(request, target, integrity_key=key))
    await eventually(lambda: transport.sent != [], timeout=2)
    assert mux.mapping_counts() == (1, 0)
    response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=request.transaction_id)
    response.attributes["XOR-MAPPED-ADDRESS"] = ("127.0.0.1", 3478)
    response.add_message_integrity(key)
    mux.datagram_received(bytes(response), ("198.51.100.10", 5000))  # not where it went
    stray = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE)
    stray.add_message_integrity(key)
    mux.datagram_received(bytes(stray), target)
    assert not pending.done() and mux.dropped["stun_unexpected_response"] == 2
    mux.datagram_received(bytes(response), target)
    answer, source = await asyncio.wait_for(pending, 2)
    assert source == target and answer.transaction_id == request.transaction_id
    assert mux.mapping_counts() == (1, 0)
    await protocol.close()


async def test_datagrams_that_fit_nothing_are_dropped_and_counted() -> None:
    mux, _ = recording_mux()
    connection, protocol = shared_connection(mux)
    address = ("198.51.100.1", 4000)
    mux.datagram_received(check(connection), address)
    delivered: list[bytes] = []
    protocol.deliver_data = delivered.append  # type: ignore[method-assign,assignment]
    bad_priority = check(connection).replace(b"\x00\x24\x00\x04", b"\x00\x24\x00\x03", 1)
    for data in (b"", b"\x00", b"\x17\xfe\xfd", b"\x80" * 11, b"\x50" * 40, bad_priority, b"\x00\x01" + b"\xff" * 30):
        mux.datagram_received(data, address)
    assert delivered == []
    assert mux.dropped["short"] == 4 and mux.dropped["unknown_kind"] == 1 and mux.dropped["stun_malformed"] == 2


async def test_a_send_to_an_impossible_address_is_dropped_and_the_socket_lives() -> None:
    """Plain asyncio closes a datagram transport on any sendto error but OSError (OverflowError for port
    70000): the shared socket, and every call with it. Runs on the test's own (plain asyncio) loop."""
    assert "uvloop" not in type(asyncio.get_running_loop()).__module__
    mux = IceMux(advertised=("127.0.0.1",))
    await mux.bind("127.0.0.1", 0)
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(2)
    try:
        _, protocol = shared_connection(mux)
        message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        bad: list[Any] = [
            ("127.0.0.1", 70000),
            ("127.0.0.1", -1),
            ("127.0.0.1", 0),
            ("::1", 5000),
            ("localhost", 5000),
            ("127.0.0.1\x00", 5000),
            ("127.0.0.1", "5000"),
            ("127.0.0.1",),
        ]
        for addr in bad:
            protocol.send_stun(message, addr)
            await protocol.send_data(b"\x16" * 20, addr)
        await asyncio.sleep(0)  # asyncio closes a transport's socket on the next loop turn
        assert mux.alive and mux.dropped["bad_destination"] == 2 * len(bad)
        await protocol.send_data(b"still here", listener.getsockname())
        assert await asyncio.get_running_loop().run_in_executor(None, listener.recv, 100) == b"still here"
    finally:
        listener.close()
        mux.close()


class FailingReceive:
    """Stands in for a DTLS transport whose next datagram makes aiortc raise."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def _recv_next(self) -> None:
        raise self.error


async def test_an_exception_in_aiortcs_dtls_receive_drops_the_datagram_not_the_connection() -> None:
    mux, _ = recording_mux()
    failing = FailingReceive(IndexError("index out of range"))
    guard_dtls_receive(cast(RTCDtlsTransport, failing), mux)
    guard_dtls_receive(cast(RTCDtlsTransport, failing), mux)  # idempotent
    for _ in range(DTLS_ERRORS_IN_A_ROW - 1):
        await failing._recv_next()
    assert mux.dropped["dtls_error"] == DTLS_ERRORS_IN_A_ROW - 1
    # A transport that only ever fails is broken, not attacked: it ends as aiortc would have ended it.
    with pytest.raises(IndexError):
        await failing._recv_next()
    # The transport's own end is never held back.
    closing = FailingReceive(ConnectionError())
    guard_dtls_receive(cast(RTCDtlsTransport, closing), mux)
    with pytest.raises(ConnectionError):
        await closing._recv_next()


async def test_every_dtls_transport_of_a_connection_is_guarded() -> None:
    mux, _ = recording_mux()
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="recvonly")
        pc.createDataChannel("heartbeat")
        gather_on_shared_socket(pc, mux, ("127.0.0.1",))
        transports = {t.receiver.transport for t in pc.getTransceivers()}
        assert pc.sctp is not None
        transports.add(pc.sctp.transport)
        assert all(type(vars(dtls)["_recv_next"]).__name__ == "_GuardedReceive" for dtls in transports)
    finally:
        await pc.close()


async def test_a_check_naming_another_peer_ufrag_is_dropped_once_the_peer_is_known() -> None:
    mux, transport = recording_mux()
    connection, _ = shared_connection(mux)
    connection.remote_username = "someone-else"
    mux.datagram_received(check(connection), ("198.51.100.1", 4000))
    assert transport.sent == [] and mux.mapping_counts() == (1, 0)
    connection.remote_username = REMOTE_UFRAG
    mux.datagram_received(check(connection), ("198.51.100.1", 4000))
    assert mux.mapping_counts() == (1, 1)


async def test_pending_checks_start_at_once_and_the_pacing_loop_ends_once_there_is_a_pair() -> None:
    """aioice's connect() starts one check per 20 ms tick and notices a completed check list only at the next
    tick, so DTLS waited up to 20 ms per side on every join. With checks at once, every pending pair is
    checked now and connect() goes straight to waiting for the check list."""
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        check_at_once(pc)
        check_at_once(pc)  # idempotent: one stand-in, wrapping aioice's own
        [transport] = list(vars(pc)["_RTCPeerConnection__iceTransports"])
        checks = vars(transport._connection)["_check_periodic"]
        assert checks.paced == Connection._check_periodic.__get__(transport._connection)
    finally:
        await pc.close()
    started: list[object] = []
    paced: list[object] = []
    connection = SimpleNamespace(_check_list=[], check_start_task=started.append)
    stand_in = type(checks)(connection, lambda: not paced.append(1))
    assert stand_in() is True and paced == [1], "no pair yet: aioice's loop goes on, waiting for candidates"
    states = CandidatePair.State
    connection._check_list = pairs = [
        SimpleNamespace(state=state) for state in (states.FROZEN, states.WAITING, states.IN_PROGRESS, states.SUCCEEDED)
    ]
    assert stand_in() is False, "the loop ends: connect() waits on the check list itself"
    assert started == pairs[:2] and paced == [1]
