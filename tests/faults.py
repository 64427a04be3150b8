"""Shared tools for the fault, abuse, fuzz, soak and restart tests (issue 7).

* :class:`RawWebSocket` speaks RFC 6455 by hand, so a test can send what no well-behaved library would (bad
  UTF-8 in a text frame, reserved bits, fragments, an abrupt TCP reset) and see exactly how the server closes.
* :class:`TalkingCall` makes a room of headless clients talk to each other at 50 packets per second and
  counts, per speaker and listener, what was sent and what arrived and the longest silence.
* :class:`RawPeer` is a real peer connection behind a raw socket, so that it can die as a process does.
* :class:`CallProcess` runs such calls in a child process (``python -m tests.faults call ...``), so that
  what a test does in its own event loop (fuzzing, flooding) cannot delay the call it measures.
* Probes of the server process: RSS, open file descriptors, admin internals, tracebacks in its console.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import os
import re
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

from aiortc import RTCPeerConnection, RTCSessionDescription

from ghosttalk.client.netsim import LinkConditions
from ghosttalk.client.participant import Client, ClientOptions, IdleAudioTrack, ReceivedPacket
from ghosttalk.media.aiortc_adapter.ice import filter_ice_datagrams
from tests.helpers import admin_json, negotiated
from tests.serverproc import ROOT, TEST_ADMIN_KEY, ServerProcess

# RFC 6455 opcodes.
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

PACKETS_PER_SECOND = 50
PAYLOAD = struct.Struct("!HI")  # speaker index in the call, sequence number
TRACEBACK = re.compile(r"^Traceback \(most recent call last\)", re.MULTILINE)


# A raw WebSocket client.


class HandshakeRefused(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body.strip()}")
        self.status = status
        self.body = body


@dataclass
class RawWebSocket:
    """One client connection; frames from the server are collected by a reader task into ``messages``."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    closed_at: float | None = None  # time.monotonic() when the server's close (or EOF) arrived
    frozen: bool = False
    _task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def open(
        cls, host: str, port: int, room: str, name: str, headers: Mapping[str, str] | None = None, timeout: float = 10
    ) -> RawWebSocket:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET /ws?{urlencode({'room': room, 'name': name})} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            status = int(head.split(b" ", 2)[1])
            if status != 101:
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                body = await asyncio.wait_for(reader.readexactly(int(length.group(1))), timeout) if length else b""
                raise HandshakeRefused(status, body.decode(errors="replace"))
            accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
            assert f"Sec-WebSocket-Accept: {accept}".lower().encode() in head.lower(), head
        except BaseException:
            writer.transport.abort()
            raise
        ws = cls(reader, writer)
        ws._task = asyncio.create_task(ws._read())
        return ws

    @classmethod
    async def join(cls, server: ServerProcess, room: str, name: str, **kwargs: Any) -> RawWebSocket:
        return await cls.open("127.0.0.1", server.port, room, name, **kwargs)

    # Writing.

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> None:
        head = bytearray([(0x80 if fin else 0) | (rsv & 7) << 4 | opcode])
        size = len(payload)
        if size < 126:
            head.append(0x80 | size)
        elif size < 1 << 16:
            head += bytes([0x80 | 126]) + size.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        # XOR with the repeated mask as one big integer: fast enough for 100 KiB frames.
        stream = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")
        if not self.writer.is_closing():
            self.writer.write(bytes(head) + mask + masked)

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode())

    def send_json(self, message: object) -> None:
        self.send_text(json.dumps(message))

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def close(self, code: int = 1000, timeout: float = 5.0) -> None:
        """A clean close: our close frame, then wait for the server's."""
        self.send_frame(OP_CLOSE, code.to_bytes(2, "big"))
        with contextlib.suppress(TimeoutError):
            await self.wait_closed(timeout)
        self.abort()

    def freeze(self) -> None:
        """Stop reading and answering, with the connection left open (a frozen process, a dead network)."""
        self.frozen = True
        if self._task is not None:
            self._task.cancel()

    def abort(self) -> None:
        """Vanish: the TCP connection is reset, no close frame (a killed process, a dropped network)."""
        self.writer.transport.abort()
        if self._task is not None:
            self._task.cancel()

    # Reading.

    async def _read(self) -> None:
        try:
            while True:
                first, second = await self.reader.readexactly(2)
                size = second & 0x7F
                if size == 126:
                    size = int.from_bytes(await self.reader.readexactly(2), "big")
                elif size == 127:
                    size = int.from_bytes(await self.reader.readexactly(8), "big")
                payload = await self.reader.readexactly(size)
                opcode = first & 0x0F
                if opcode == OP_TEXT:
                    self.messages.append(json.loads(payload))
                elif opcode == OP_CLOSE:
                    self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    self.close_reason = payload[2:].decode(errors="replace")
                    self.send_frame(OP_CLOSE, payload[:2])  # the closing handshake's answer
                    return
                elif opcode == OP_PING:
                    self.send_frame(OP_PONG, payload)
                self._changed.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close_code = self.close_code or 1006
        finally:
            if not self.frozen:
                self.closed_at = time.monotonic()
            self._changed.set()

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met in {timeout} s; got {self.messages[-5:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    async def wait_count(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` messages have arrived or the socket is closed."""
        await self.wait_for(lambda: len(self.messages) >= count or self.closed, timeout)

    async def wait_closed(self, timeout: float = 10.0) -> None:
        await self.wait_for(lambda: self.closed, timeout)

    async def wait_message(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        await self.wait_for(lambda: bool(self.of_type(kind)) or self.closed, timeout)
        found = self.of_type(kind)
        if not found:
            raise AssertionError(f"closed ({self.close_code} {self.close_reason!r}) before a {kind!r} message")
        return found[0]


# Offers and peers that speak for themselves.


def loopback_only(sdp: str, port: int = 65535) -> str:
    """``sdp`` with its candidates replaced by one on 127.0.0.1:``port`` (checks sent to it stay local). The
    default port is above the ephemeral range, so nothing listens there; the server refuses ports below 1024."""
    lines = [line for line in sdp.splitlines() if not line.startswith("a=candidate:")]
    lines = [re.sub(r"^c=IN IP[46] .*", "c=IN IP4 127.0.0.1", line) for line in lines]
    at = lines.index("a=end-of-candidates") if "a=end-of-candidates" in lines else len(lines)
    lines.insert(at, f"a=candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host")
    return "\r\n".join(lines) + "\r\n"


async def dead_offer() -> str:
    """A real client's offer whose client is gone at once: the server answers and then checks a closed port."""
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return loopback_only(sdp)


class RawPeer:
    """A peer with a real connection behind a :class:`RawWebSocket`, so that it can die like a process does:
    TCP reset without a close frame and its UDP falling silent, with nothing said to anyone."""

    def __init__(self, ws: RawWebSocket) -> None:
        self.ws = ws
        self.link = LinkConditions()
        self.pc = RTCPeerConnection()
        self.pc.addTransceiver(IdleAudioTrack(), direction="sendrecv")
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def join(cls, server: ServerProcess, room: str, name: str) -> RawPeer:
        peer = cls(await RawWebSocket.join(server, room, name))
        await peer.ws.wait_message("room_state")
        await peer.pc.setLocalDescription(await peer.pc.createOffer())
        filter_ice_datagrams(peer.pc, peer.link)
        peer.ws.send_json({"type": "offer", "sdp": peer.pc.localDescription.sdp})
        peer._task = asyncio.create_task(peer._negotiate())
        return peer

    async def _negotiate(self) -> None:
        for seen in itertools.count():
            await self.ws.wait_count(seen + 1, 3600)
            if len(self.ws.messages) == seen:
                return
            message = self.ws.messages[seen]
            if message["type"] == "answer":
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
            elif message["type"] == "offer":
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                self.ws.send_json({"type": "answer", "sdp": self.pc.localDescription.sdp})

    async def connected(self, timeout: float = 30.0) -> None:
        await wait_until(lambda: self.pc.connectionState == "connected", timeout, interval=0.05)

    def freeze(self) -> None:
        """Fall silent with everything left open: no packets either way, signaling unread."""
        self.link.blackout = True
        self.ws.freeze()
        if self._task is not None:
            self._task.cancel()

    async def kill(self) -> None:
        """Die: the network goes dark and the socket is reset; the connection is then torn down in silence."""
        self.link.blackout = True
        self.ws.abort()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.pc.close()


# Calls whose delivery is counted.


@dataclass
class Flow:
    """What one speaker sent to one listener."""

    received: set[int] = field(default_factory=set)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic()

    def max_gap(self) -> float:
        """The longest silence between two arrivals, in seconds."""
        return max((b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)), default=0.0)


async def server_connected(url: str, room: str, count: int, timeout: float) -> None:
    """Wait until the server's side of every connection in ``room`` is up too. A client is connected once it
    has its own DTLS keys, but on a lossy link the server's last handshake flight may still be retransmitting
    for seconds, and a measurement started then counts that time as lost audio."""

    def connected() -> int:
        request = urllib.request.Request(f"{url}/admin?action=rooms", headers={"X-Admin-Key": TEST_ADMIN_KEY})
        with urllib.request.urlopen(request, timeout=5) as response:
            rooms = json.loads(response.read())["rooms"]
        return sum(1 for r in rooms if r["room"] == room for p in r["peers"] if p["candidate_type"] is not None)

    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(connected) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server has not connected all {count} people in {room!r}")
        await asyncio.sleep(0.05)


class TalkingCall:
    """Headless clients in one room, each sending ``PACKETS_PER_SECOND`` numbered packets to the others.

    A listener attributes a packet by the speaker index in its payload, not by stream, so counts stay right
    across renegotiation. ``stop()`` ends sending and leaves a moment for the packets in flight."""

    def __init__(self, members: Sequence[Client]) -> None:
        self.members = list(members)
        self.sent = [0] * len(members)
        self.sent_at: list[list[float]] = [[] for _ in members]  # wall clock, to line losses up with server logs
        self.flows: dict[tuple[int, int], Flow] = {
            (s, r): Flow() for s in range(len(members)) for r in range(len(members)) if s != r
        }
        self.other_packets: list[dict[str, int]] = [{} for _ in members]  # from people outside the call
        self._tasks: list[asyncio.Task[None]] = []
        for index, member in enumerate(self.members):
            member.on_packet = self._receiver(index)

    @classmethod
    async def join(
        cls, url: str, room: str, names: Sequence[str], options: Sequence[ClientOptions] | None = None
    ) -> TalkingCall:
        joined: list[Client] = []
        try:
            for index, name in enumerate(names):
                opts = options[index] if options else ClientOptions(keep_packets=False)
                joined.append(await Client(url, room, name, opts).connect(timeout=30))
            await negotiated(joined, timeout=30)
            await server_connected(url, room, len(joined), timeout=30)
        except BaseException:
            await asyncio.gather(*(c.close() for c in joined), return_exceptions=True)
            raise
        return cls(joined)

    def _receiver(self, listener: int) -> Callable[[str, ReceivedPacket], None]:
        def on_packet(owner: str, packet: ReceivedPacket) -> None:
            if len(packet.payload) >= PAYLOAD.size:
                speaker, sequence = PAYLOAD.unpack_from(packet.payload)
                flow = self.flows.get((speaker, listener))
                if flow is not None and packet.payload[PAYLOAD.size :] == b"call":
                    flow.received.add(sequence)
                    flow.arrivals.append(time.monotonic())
                    return
            counts = self.other_packets[listener]
            counts[owner] = counts.get(owner, 0) + 1

        return on_packet

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._speak(i)) for i in range(len(self.members))]

    async def _speak(self, index: int) -> None:
        member = self.members[index]
        start = time.monotonic()
        tick = 0
        while True:
            tick += 1
            await asyncio.sleep(max(0.0, start + tick / PACKETS_PER_SECOND - time.monotonic()))
            try:
                member.send_rtp(PAYLOAD.pack(index, self.sent[index]) + b"call")
            except RuntimeError:
                continue  # media not connected (a member that is rejoining): nothing was sent
            self.sent[index] += 1
            self.sent_at[index].append(time.time())

    async def stop(self, settle: float = 1.0) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.sleep(settle)

    async def close(self) -> None:
        await self.stop(settle=0)
        await asyncio.gather(*(m.close() for m in self.members), return_exceptions=True)

    def delivered(self, speaker: int, listener: int) -> int:
        return len(self.flows[speaker, listener].received)

    def _losses(self, speaker: int, flow: Flow, limit: int = 20) -> list[str]:
        """Runs of lost packets as "HH:MM:SS.mmm xN" (when the first was sent, how many), for failure messages."""
        runs: list[str] = []
        sequence = 0
        while sequence < self.sent[speaker] and len(runs) < limit:
            if sequence in flow.received:
                sequence += 1
                continue
            start = sequence
            while sequence < self.sent[speaker] and sequence not in flow.received:
                sequence += 1
            when = self.sent_at[speaker][start]
            clock = time.strftime("%H:%M:%S", time.localtime(when))
            runs.append(f"{clock}.{int(when % 1 * 1000):03d} x{sequence - start}")
        return runs

    def report(self) -> dict[str, Any]:
        """Totals and the longest gap between arrivals on any flow (``stop()`` first)."""
        expected = sum(self.sent[s] for (s, _r) in self.flows)
        received = sum(len(f.received) for f in self.flows.values())
        return {
            "sent": list(self.sent),
            "expected": expected,
            "received": received,
            "delivery": received / expected if expected else 0.0,
            "max_gap": max((f.max_gap() for f in self.flows.values()), default=0.0),
            "flows": {f"{s}->{r}": [self.sent[s], len(f.received)] for (s, r), f in self.flows.items()},
            "losses": {
                f"{s}->{r}": self._losses(s, f) for (s, r), f in self.flows.items() if len(f.received) < self.sent[s]
            },
            "ids": [m.self_id for m in self.members],
            "other_packets": self.other_packets,
        }


class CallProcess:
    """Three-person calls in rooms ``rooms`` of ``server``, run by a child process until ``finish()``."""

    def __init__(self, server: ServerProcess, rooms: Sequence[str], members: int = 3) -> None:
        self.url = server.url
        self.log = server.data_dir / "calls.log"
        self.rooms = list(rooms)
        self.members = members
        self.proc: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}

    def start(self) -> CallProcess:
        """Returns once every call is negotiated; the child gives up by itself if joining takes over 30 s."""
        command = [sys.executable, "-m", "tests.faults", "call", self.url, *self.rooms, "--members", str(self.members)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        # Its errors go to a file, not a pipe: a chatty child must never block on a pipe nobody reads.
        with self.log.open("wb") as errors:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the child prints one line once every call is negotiated
        if not line:
            raise RuntimeError(f"call process failed to start: {self._stderr()}")
        self.ready = json.loads(line)
        return self

    def finish(self, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """Stop talking, wait for the packets in flight, and return each room's ``TalkingCall.report()``."""
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        self.proc.wait(timeout)
        if not line:
            raise RuntimeError(f"call process ended without a report: {self._stderr()}")
        return json.loads(line)  # type: ignore[no-any-return]

    def _stderr(self) -> str:
        self.kill()
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> CallProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


async def _run_calls(url: str, rooms: Sequence[str], members: int) -> None:
    calls = [await TalkingCall.join(url, room, [f"{room[:8]}-{i}" for i in range(members)]) for room in rooms]
    for call in calls:
        call.start()
    print(json.dumps({room: call.report()["ids"] for room, call in zip(rooms, calls, strict=True)}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    for call in calls:
        await call.stop(settle=0)
    await asyncio.sleep(1.0)
    drops = udp_drops(os.getpid())  # every call of this process shares the count
    reports = {room: {**call.report(), "listener_kernel_drops": drops} for room, call in zip(rooms, calls, strict=True)}
    print(json.dumps(reports), flush=True)
    for call in calls:
        await call.close()


# Looking at the server process.


def udp_drops(pid: int) -> int:
    """Datagrams the kernel dropped on the UDP sockets of ``pid`` because their receive buffers were full
    (a process starved of CPU: on a busy test machine this is the measuring side's loss, not the server's)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    drops = 0
    for table in ("udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if path.exists():
            for line in path.read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    drops += int(fields[-1])
    return drops


def assert_delivered(report: Mapping[str, Any], minimum: float = 0.999) -> None:
    """At least ``minimum`` of the packets arrived, not counting those the listeners' own kernel dropped."""
    allowed = report["expected"] * (1 - minimum) + report.get("listener_kernel_drops", 0)
    lost = report["expected"] - report["received"]
    assert lost <= allowed, json.dumps({k: v for k, v in report.items() if k != "flows"}, indent=1)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tracebacks(console: str) -> list[str]:
    """Every traceback printed by the server, with a few lines of context, for assertion messages."""
    lines = console.splitlines()
    return ["\n".join(lines[max(0, i - 2) : i + 25]) for i, line in enumerate(lines) if TRACEBACK.match(line)]


def metric(server: ServerProcess, name: str) -> float:
    """The sum of every sample of ``name`` in the server's /metrics."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


def events(server: ServerProcess, event: str) -> list[dict[str, Any]]:
    logs = cast(list[dict[str, Any]], admin_json(server, "logs&n=1000")["events"])
    return [e for e in logs if e.get("event") == event]


async def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> float:
    """Poll ``predicate`` until it holds; return the seconds it took. Raises TimeoutError."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not within {timeout} s")
        await asyncio.sleep(interval)
    return time.monotonic() - start


@contextlib.contextmanager
def child_joiner(server: ServerProcess, room: str, name: str, play: Path, log: Path) -> Iterator[
    subprocess.Popen[bytes]
]:
    """``ghosttalk join <room link> --play <wav>`` in a child process, killed at the end whatever happened."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ghosttalk", "join", f"{server.url}/r/{room}", "--name", name, "--play", str(play),
             "--seconds", "120"],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults")
    sub = parser.add_subparsers(dest="command", required=True)
    call = sub.add_parser("call", help="run counted calls until a line arrives on stdin, then print a report")
    call.add_argument("url")
    call.add_argument("rooms", nargs="+")
    call.add_argument("--members", type=int, default=3)
    args = parser.parse_args(argv)
    asyncio.run(_run_calls(args.url, args.rooms, args.members))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
