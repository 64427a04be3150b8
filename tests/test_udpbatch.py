"""Batched UDP I/O on the shared socket (ghosttalk.media.udpbatch, ghosttalk.media.batchtransport).

The real ``IceMux`` on a loopback socket, real SRTP sessions, real receiving sockets: a datagram from a
bound address is handed to a stand-in speaker that forwards it to every listener's ``EgressSink``, as
``Speaker.on_srtp`` does. The counting wrappers only count calls into libc; they do not change them.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pylibsrtp import Policy, Session

from ghosttalk.media import mmsg_declarations, udpbatch
from ghosttalk.media.batchtransport import BatchedDatagramTransport
from ghosttalk.media.forwarder import SOCKET_BACKLOG_BYTES, EgressSink, Forwarder
from ghosttalk.media.icemux import IceMux
from ghosttalk.media.rtp import build_rtp
from tests.support.eventually import eventually

KEY = bytes(range(30))
LISTENERS = 4


@dataclass
class Listener:
    sock: socket.socket
    sink: EgressSink
    session: Session = field(default_factory=lambda: Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND)))
    got: list[bytes] = field(default_factory=list)

    def received(self) -> list[bytes]:
        """Every packet received so far, unprotected."""
        while True:
            try:
                self.got.append(self.session.unprotect(self.sock.recv(2048)))
            except BlockingIOError:
                return self.got


class CountingCall:
    """Wraps a libc call and records each call's message count."""

    def __init__(self, call: Callable[..., int]) -> None:
        self.call = call
        self.calls: list[int] = []

    def __call__(self, fd: int, messages: Any, count: int, *rest: Any) -> int:
        self.calls.append(count)
        return self.call(fd, messages, count, *rest)


@dataclass
class Rig:
    # Whether the shared socket uses sendmmsg/recvmmsg (or, forced, the event loop's own transport).
    is_batched: bool
    mux: IceMux
    forwarder: Forwarder
    listeners: list[Listener]
    # Where the stand-in speaker's datagrams come from; the mux routes that address to it.
    source: socket.socket
    forwarded: list[bytes]

    def listen(self, addr: tuple[str, int] | None = None) -> Listener:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        protect = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND)).protect
        listener = Listener(sock, EgressSink(self.forwarder, protect, addr or sock.getsockname()))
        self.listeners.append(listener)
        return listener

    def send(self, packet: bytes) -> None:
        self.source.sendto(packet, ("127.0.0.1", self.mux.port))


class StandInProtocol:
    """What the mux routes a bound address to: only the media handler is used here."""

    def __init__(self, handler: Callable[[bytes], None]) -> None:
        self.srtp_handler = handler
        self.addresses: dict[tuple[str, int], float] = {}


@contextlib.asynccontextmanager
async def make_rig(is_batched: bool, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    if is_batched:
        # This suite runs on Linux, where the calls exist: their absence is a failure, not a reason to skip.
        assert udpbatch.load_libc() is not None, "sendmmsg/recvmmsg not found in libc"
    else:  # as on a system without them
        monkeypatch.setattr(udpbatch, "load_libc", lambda: None)
    mux = IceMux(advertised=("127.0.0.1",))
    await mux.bind("127.0.0.1", 0)
    assert isinstance(mux.transport, BatchedDatagramTransport) == is_batched
    source = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    source.bind(("127.0.0.1", 0))
    rig = Rig(is_batched, mux, Forwarder(mux.transport), [], source, [])

    def forward(data: bytes) -> None:  # Speaker.on_srtp's fan-out, without SRTP on the way in
        rig.forwarded.append(data)
        for listener in rig.listeners:
            listener.sink.put(data)

    mux._by_addr[source.getsockname()] = StandInProtocol(forward)  # type: ignore[assignment]
    try:
        yield rig
    finally:
        mux.close()
        source.close()
        for listener in rig.listeners:
            listener.sock.close()


@pytest.fixture(params=["batched", "fallback"])
async def rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    """Both ways the shared socket can run: batched, and the event loop's own transport."""
    async with make_rig(request.param == "batched", monkeypatch) as made:
        yield made


def rtp(sequence_number: int) -> bytes:
    return build_rtp(0, 111, sequence_number, 960 * sequence_number, 0xCAFE, struct.pack("!I", sequence_number) * 20)


# For what only the batched socket does: the rig fixture with just that parameter.
BATCHED_ONLY = pytest.mark.parametrize("rig", ["batched"], indirect=True)


def batched(rig: Rig) -> BatchedDatagramTransport:
    transport = rig.mux.transport
    assert isinstance(transport, BatchedDatagramTransport)
    return transport


async def test_one_ingress_packet_reaches_every_listener(rig: Rig) -> None:
    listeners = [rig.listen() for _ in range(LISTENERS)]
    if rig.is_batched:
        batch = batched(rig).send_batch
        sendmmsg = batch._sendmmsg = CountingCall(batch._sendmmsg)  # type: ignore[method-assign]
    else:  # the event loop's own transport, one sendto per datagram
        assert rig.forwarder.batch is None
    packets = [rtp(n) for n in range(3)]
    for count, packet in enumerate(packets, 1):
        rig.send(packet)
        await eventually(lambda count=count: all(len(lr.received()) == count for lr in listeners), timeout=5)
    assert all(listener.received() == packets for listener in listeners)
    assert rig.forwarder.counters.packets_forwarded == LISTENERS * len(packets)
    if rig.is_batched:
        # One system call per ingress packet, carrying one datagram per listener.
        assert sendmmsg.calls == [LISTENERS] * len(packets)


async def test_a_packet_made_outside_a_read_goes_out_on_the_next_loop_turn(rig: Rig) -> None:
    listener = rig.listen()
    listener.sink.put(rtp(1))  # as a queued packet does once the socket drains (Forwarder.flush)
    await eventually(lambda: listener.received() == [rtp(1)], timeout=5)


@BATCHED_ONLY
async def test_a_burst_is_read_with_one_recvmmsg_and_each_packet_sent_on_at_once(rig: Rig) -> None:
    transport = batched(rig)
    receiver, batch = transport._receiver, transport.send_batch
    recvmmsg = receiver._recvmmsg = CountingCall(receiver._recvmmsg)  # type: ignore[method-assign]
    sendmmsg = batch._sendmmsg = CountingCall(batch._sendmmsg)  # type: ignore[method-assign]
    listeners = [rig.listen(), rig.listen()]
    packets = [rtp(n) for n in range(10)]
    for packet in packets:  # all queued at the socket before the loop next looks
        rig.send(packet)
    await eventually(lambda: all(len(listener.received()) == len(packets) for listener in listeners), timeout=5)
    assert all(listener.received() == packets for listener in listeners)
    assert len(recvmmsg.calls) == 1
    # Each packet's two datagrams go out before the next packet is handled, not with the whole burst's.
    assert sendmmsg.calls == [2] * len(packets)


@BATCHED_ONLY
async def test_a_refused_destination_is_counted_and_the_rest_of_the_batch_goes(rig: Rig) -> None:
    batched(rig)
    first = rig.listen()
    rig.listen(("127.0.0.1", 0))  # the kernel refuses port 0 (EINVAL)
    last = rig.listen()
    packets = [rtp(n) for n in range(2)]
    for count, packet in enumerate(packets, 1):
        rig.send(packet)
        await eventually(lambda count=count: len(first.received()) == len(last.received()) == count, timeout=5)
    assert first.received() == last.received() == packets
    assert rig.mux.dropped["send_error"] == len(packets)
    assert rig.mux.alive


@BATCHED_ONLY
async def test_a_full_socket_buffer_queues_the_rest_until_it_drains(rig: Rig) -> None:
    transport = batched(rig)
    batch = transport.send_batch
    listeners = [rig.listen() for _ in range(LISTENERS)]
    real = batch._sendmmsg
    full = True

    def sendmmsg(fd: int, messages: Any, count: int, flags: int) -> int:
        """The kernel's buffer is full for one call after the first datagram has gone."""
        nonlocal full
        if full and count < LISTENERS:
            full = False
            batch._ffi.errno = errno.EAGAIN
            return -1
        return real(fd, messages, min(count, 1) if full else count, flags)

    batch._sendmmsg = sendmmsg  # type: ignore[method-assign]
    spilled: list[tuple[str, int]] = []
    queue = batch.spill

    def spill(data: bytes, addr: tuple[str, int]) -> None:
        spilled.append(addr)
        queue(data, addr)
        assert transport.get_write_buffer_size() > 0

    batch.spill = spill
    rig.send(rtp(1))
    # The three the kernel would not take wait in the transport's queue, in order, and go once it is writable.
    await eventually(lambda: all(len(listener.received()) == 1 for listener in listeners), timeout=5)
    assert spilled == [listener.sock.getsockname() for listener in listeners[1:]]
    assert transport.get_write_buffer_size() == 0
    assert all(listener.received() == [rtp(1)] for listener in listeners)
    # While the queue is over SOCKET_BACKLOG_BYTES, each receiver's packets wait in its own queue instead.
    transport._buffer_size = SOCKET_BACKLOG_BYTES + 1
    rig.send(rtp(2))
    await eventually(lambda: len(rig.forwarded) == 2, timeout=5)
    assert all(len(listener.sink.queue) == 1 for listener in listeners)
    transport._buffer_size = 0
    await eventually(lambda: all(len(listener.received()) == 2 for listener in listeners), timeout=5)


@BATCHED_ONLY
async def test_datagrams_queue_behind_those_the_kernel_has_not_taken(rig: Rig) -> None:
    batch = batched(rig).send_batch
    listeners = [rig.listen() for _ in range(LISTENERS)]
    real = batch._sendmmsg
    calls = 0

    def sendmmsg(fd: int, messages: Any, count: int, flags: int) -> int:
        """The kernel's buffer is full for the first call, the whole of the first packet's batch."""
        nonlocal calls
        calls += 1
        if calls == 1:
            batch._ffi.errno = errno.EAGAIN
            return -1
        return real(fd, messages, count, flags)

    batch._sendmmsg = sendmmsg  # type: ignore[method-assign]
    packets = [rtp(1), rtp(2)]
    for packet in packets:  # both handled in one wake-up, before the socket can be written again
        rig.send(packet)
    await eventually(lambda: all(len(listener.received()) == 2 for listener in listeners), timeout=5)
    assert all(listener.received() == packets for listener in listeners)
    assert calls == 1  # the second packet's datagrams went into the queue, behind the first's


async def test_hostile_datagrams_are_dropped_and_counted(rig: Rig) -> None:
    listener = rig.listen()
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    port = ("127.0.0.1", rig.mux.port)
    try:
        for data in (b"\x80" * 5, b"\xff" * 40, rtp(1), b"\x00\x01\x00\x50" + b"\x00" * 16):
            stranger.sendto(data, port)
        await eventually(
            lambda: (
                rig.mux.dropped["short"] == 1
                and rig.mux.dropped["unknown_kind"] == 1
                and rig.mux.dropped["unknown_source"] == 1
                and rig.mux.dropped["stun_malformed"] == 1
            ),
            timeout=5,
        )
        if rig.is_batched:
            # Longer than a receive buffer: the kernel truncates it, and it goes no further.
            rig.send(rtp(2) + bytes(udpbatch.RECEIVE_BUFFER_BYTES))
            await eventually(lambda: rig.mux.dropped["oversize"] == 1, timeout=5)
            assert rig.forwarded == []
        rig.send(rtp(3))  # the socket reads on
        await eventually(lambda: listener.received() == [rtp(3)], timeout=5)
    finally:
        stranger.close()


def test_the_out_of_line_declarations_are_what_cffi_makes_of_their_source(tmp_path: Path) -> None:
    """The generated module is kept in the repository; it must follow ``DECLARATIONS`` (regenerate with
    ``python -m ghosttalk.media.mmsg_declarations``). The line naming cffi's version is left out: any
    backend of the same major version reads the rest."""
    fresh = tmp_path / "fresh.py"
    mmsg_declarations.emit(fresh)

    def body(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if not line.strip().startswith("_version")]

    assert body(fresh) == body(mmsg_declarations.MODULE_PATH)
