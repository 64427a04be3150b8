"""A headless GhostTalk participant that joins exactly as the page does.

It speaks the signaling contract, offers one send-receive audio transceiver, answers the server's offers,
answers heartbeat pings, and reads and writes raw RTP (no jitter buffer): the integration tests, the
benchmark and ``ghosttalk join`` are built on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import orjson
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy
from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.sdp import SessionDescription

from ghosttalk.client.audio import FRAME_SECONDS, OpusStreamDecoder, Pcm, encode_opus, frame_levels
from ghosttalk.client.e2ee import ChatCipher, RoomSecret, VoiceOpener, VoiceSealer
from ghosttalk.client.jointimes import JoinTimes
from ghosttalk.client.rtpsender import RtpSender
from ghosttalk.contract import (
    Answer,
    Chat,
    ChatFrom,
    ClaimHost,
    ErrorMessage,
    Forwarding,
    Host,
    HostAction,
    Levels,
    Lobby,
    LobbyWait,
    Lock,
    Message,
    MessageType,
    Mute,
    MuteRequest,
    Offer,
    PeerJoin,
    PeerLeave,
    PeerUpdate,
    RoomState,
    parse_server_message,
    stays_away,
    wire,
)
from ghosttalk.media.aiortc_adapter.dtls import receive_rtp_directly, srtp_writer, tap_rtp
from ghosttalk.media.aiortc_adapter.ice import DatagramFilter, check_at_once, filter_ice_datagrams
from ghosttalk.media.rtp import parse_rtp

# Rejoin backoff: quick enough to be back within seconds of a server restart, gentle on a server in trouble.
REJOIN_FIRST_DELAY = 0.25
REJOIN_MAX_DELAY = 2.0
# The data channel that only puts a data channel line into the first offer, for the server's heartbeat
# channel to use: negotiated (nothing is sent to open it), odd (as the DTLS server, which the offerer is with
# this server, we own odd stream ids; the server's channels take even ones) and far from the ids in use.
PLACEHOLDER_CHANNEL_ID = 1023


class IdleAudioTrack(MediaStreamTrack):
    """The track behind the client's sender. The client writes its own RTP; aiortc's send loop waits on
    ``recv`` for ever, which costs nothing (without a track it would poll every 20 ms)."""

    kind = "audio"

    async def recv(self) -> NoReturn:
        # Never resolves; cancelled with the sender's task when the connection closes.
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")


class JoinError(Exception):
    """The server refused the join (HTTP status before the upgrade, or an ``error`` such as Room full)."""


@dataclass(slots=True)
class ReceivedPacket:
    arrival: float  # time.time() at arrival, comparable with a sender's clock on the same machine
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes


@dataclass(slots=True)
class RemotePeer:
    id: str
    name: str
    muted: bool


@dataclass(slots=True)
class ChatLine:
    sender_id: str
    name: str
    text: str


@dataclass
class ClientOptions:
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    relay_only: bool = False
    # Keep every received packet (tests, join --record); the benchmark turns this off and uses on_packet.
    keep_packets: bool = True
    decode: bool = False
    answer_heartbeat: bool = True
    # Join again by itself when the socket drops or the media fails (server restart, network outage).
    rejoin: bool = False
    # Loss, delay, jitter and blackouts applied to this client's UDP traffic (fault tests; any
    # ``DatagramFilter``, of which ``LinkConditions`` is the usual one).
    network: DatagramFilter | None = None
    # Interop tests: acts as another WebRTC stack writing its answers its own way. Called with each answer to
    # the server's offers, after this client's connection has applied it as aiortc wrote it (such a stack's
    # own state is right, only the text it sends is not); returns the SDP to send, or None to hold the answer
    # back (the test then sends it with ``send``).
    rewrite_answer: Callable[[str], str | None] | None = None
    # Offer the receive-only lines (and the data channel line) that room_state's ``receive_lines`` asks for,
    # so that the first answer already carries the room's speakers; False acts as a client that predates it.
    receive_lines: bool = True
    # An end-to-end encrypted room's secret (the link's fragment): voice and chat are sealed and opened as the
    # page does (docs/E2EE.md). None: a plain room.
    secret: str | None = None
    # Tests of what someone without the secret gets: join an encrypted room with only its key-check value
    # (which the server sees), and keep its frames as they come. Ignored when ``secret`` is set.
    key_check: str | None = None


def ws_url(base_url: str, room: str, name: str, key_check: str | None = None) -> str:
    scheme, netloc, _, _, _ = urlsplit(base_url)
    ws_scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    query = {"room": room, "name": name} | ({} if key_check is None else {"key_check": key_check})
    return urlunsplit((ws_scheme, netloc, "/ws", urlencode(query), ""))


def _ssrc_owners(sdp: str) -> dict[int, str]:
    """SSRC -> MediaStream id (the speaker's peer id) for every m-section the server sends on."""
    owners: dict[int, str] = {}
    for media in SessionDescription.parse(sdp).media:
        if media.direction not in ("sendonly", "sendrecv") or not media.msid:
            continue
        stream_id = media.msid.split()[0]
        for ssrc in media.ssrc:
            owners[ssrc.ssrc] = stream_id
    return owners


class Client:
    def __init__(self, base_url: str, room: str, name: str, options: ClientOptions | None = None) -> None:
        self.options = options = options or ClientOptions()
        secret = None if options.secret is None else RoomSecret.parse(room, options.secret)
        self.url = ws_url(base_url, room, name, options.key_check if secret is None else secret.key_check)
        self.room = room
        self.name = name
        self.safety_code = None if secret is None else secret.safety_code
        self._chat_cipher = None if options.secret is None else ChatCipher(room, options.secret)
        self._voice_opener = None if options.secret is None else VoiceOpener(room, options.secret)
        # Chat messages from the others, opened; on_chat hears each as it comes.
        self.chat: list[ChatLine] = []
        self.on_chat: Callable[[ChatLine], None] | None = None
        # Encrypted room: chat messages that did not open (or came unsealed), and voice frames likewise.
        self.chat_failures = 0
        self.self_id: str | None = None
        self.peers: dict[str, RemotePeer] = {}
        self.messages: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.received: dict[str, list[ReceivedPacket]] = {}
        self.on_packet: Callable[[str, ReceivedPacket], None] | None = None
        self.closed_reason: str | None = None
        # How the server closed the last join's socket (None: not closed, or without a close frame).
        self.close_code: int | None = None
        self.pc: RTCPeerConnection | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._owners: dict[int, str] = {}
        self._decoders: dict[str, OpusStreamDecoder] = {}
        self._rtp = RtpSender()
        # The audio level (RFC 6464, -dBov: 0 loudest, 127 silent) each packet carries, as a browser's do;
        # None: no level. play() sets it from each frame.
        self.audio_level: int | None = None
        # In a big room: which person each forwarding line carries now (``forwarding``), and the levels of
        # those this client does not hear (``levels``).
        self.lines: dict[str, str | None] = {}
        self.levels: dict[str, int] = {}
        self._transceiver: Any = None
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self.rejoins = 0
        # Whether RTP is decrypted in the socket callback (see aiortc_adapter.dtls.receive_rtp_directly).
        self.receives_directly = False
        # Heartbeat pings received: the server's data channel, and so its SCTP association, works.
        self.pings = 0
        # Answers sent to the server's offers (tests wait for them).
        self.answers_sent = 0
        self.join_times = JoinTimes()
        # room_state's ``receive_lines`` (None: the server did not say): how many people it will hear at once.
        self.receive_lines: int | None = None
        # The room's host and lock; the token that makes this client host again after a rejoin (kept across
        # joins, as the page keeps it in the tab); the lobby, when this client is the host of a locked room;
        # whether this client waits in one; and how often the host asked it to mute.
        self.host: str | None = None
        self.host_token: str | None = None
        self.locked = False
        self.lobby: dict[str, str] = {}
        self.waiting = False
        self.mute_requests = 0

    # Joining.

    async def connect(self, timeout: float = 20.0) -> Client:
        """Join, negotiate, and return once media is connected. Raises :class:`JoinError`.

        With ``ClientOptions.rejoin`` the client then stays in the room by itself: when the socket drops or
        the media fails it joins again (a new peer id), backing off up to REJOIN_MAX_DELAY between tries."""
        self._session = aiohttp.ClientSession()
        try:
            await self._join(timeout)
        except BaseException:
            await self.close()
            raise
        if self.options.rejoin:
            self._supervisor = asyncio.create_task(self._stay_joined(timeout))
        return self

    async def _join(self, timeout: float) -> None:
        assert self._session is not None
        self.self_id, self.closed_reason, self.close_code, self._owners = None, None, None, {}
        self._rtp.disconnect()
        self.lines, self.levels = {}, {}
        self._lost.clear()
        self.join_times = JoinTimes(ws_open=time.monotonic())
        self.receive_lines = None
        try:
            self._ws = await self._session.ws_connect(self.url, heartbeat=30)
        except aiohttp.WSServerHandshakeError as exc:
            raise JoinError(f"HTTP {exc.status}: {await self._refusal_reason()}") from None
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(lambda: self.self_id is not None, timeout)
        await self._offer()
        await self.wait_for(lambda: self._rtp.connected, timeout)

    async def _stay_joined(self, timeout: float) -> None:
        while True:
            await self._lost.wait()
            await self._leave()
            if stays_away(self.close_code):
                return  # kicked, banned, or the room is full: the contract says stay away
            delay = REJOIN_FIRST_DELAY
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._join(timeout)
                except (JoinError, TimeoutError, aiohttp.ClientError, OSError) as exc:
                    await self._leave()
                    final = str(exc).startswith(("HTTP 400", "HTTP 403")) or stays_away(self.close_code)
                    if isinstance(exc, JoinError) and final:
                        self.closed_reason = str(exc)
                        return  # refused for good (bad name, banned, room full): trying again cannot help
                    delay = min(delay * 2, REJOIN_MAX_DELAY)
                    continue
                self.rejoins += 1
                self._notify()
                break

    async def _leave(self) -> None:
        """Drop this join's socket and connection (the session and what was received stay)."""
        self._rtp.disconnect()
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.pc is not None:
            await self.pc.close()
            self.pc = None

    async def _refusal_reason(self) -> str:
        """A refused upgrade carries its reason in the body, which the WebSocket handshake discards."""
        assert self._session is not None
        http_url = self.url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
        try:
            async with self._session.get(http_url) as response:
                return (await response.text()).strip()
        except aiohttp.ClientError as exc:
            return str(exc)

    def _configuration(self) -> RTCConfiguration:
        servers = [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in self.options.ice_servers
        ]
        return RTCConfiguration(
            iceServers=servers,
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            iceTransportPolicy=RTCIceTransportPolicy.RELAY if self.options.relay_only else RTCIceTransportPolicy.ALL,
        )

    async def _offer(self) -> None:
        self.pc = pc = RTCPeerConnection(self._configuration())
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)
        pc.on("iceconnectionstatechange", self._on_ice_state)
        self._transceiver = pc.addTransceiver(IdleAudioTrack(), direction="sendrecv")
        if self.options.receive_lines and self.receive_lines is not None:
            # One negotiation instead of two: the server's answer puts the room's speakers on these lines, and
            # its heartbeat channel on the data channel line (the channel itself is never used).
            for _ in range(self.receive_lines):
                pc.addTransceiver("audio", direction="recvonly")
            pc.createDataChannel("lines", negotiated=True, id=PLACEHOLDER_CHANNEL_ID)
        self._rtp.start(self._transceiver.sender)
        await pc.setLocalDescription(await pc.createOffer())
        # As a browser does: DTLS starts when ICE completes, not at aioice's next 20 ms tick.
        check_at_once(pc)
        if self.options.relay_only and " typ relay" not in pc.localDescription.sdp:
            raise JoinError("TURN allocation failed: check the TURN URL and credentials")
        if self.options.network is not None:
            filter_ice_datagrams(pc, self.options.network)
        tap_rtp(self._transceiver.receiver.transport, self._on_rtp)
        await self.send(Offer(pc.localDescription.sdp))
        self.join_times.offer_sent = time.monotonic()

    def _on_ice_state(self) -> None:
        assert self.pc is not None
        if self.pc.iceConnectionState == "completed" and self.join_times.ice_connected is None:
            self.join_times.ice_connected = time.monotonic()

    def _on_connection_state(self) -> None:
        assert self.pc is not None
        if self.pc.connectionState == "connected":
            self.join_times.dtls_connected = time.monotonic()
            dtls = self._transceiver.receiver.transport
            self._rtp.connect(srtp_writer(dtls))
            # A simulated link keeps the socket wrapped in its filter, and so aiortc's receive path.
            self.receives_directly = self.options.network is None and receive_rtp_directly(dtls, self._on_rtp)
            self._notify()
        elif self.pc.connectionState == "failed":
            self.closed_reason = "ICE or DTLS failed"
            self._lost.set()
            self._notify()

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != "heartbeat":
            return

        def on_message(message: object) -> None:
            if message == "ping":
                self.pings += 1
                self._notify()
                if self.options.answer_heartbeat:
                    channel.send("pong")

        channel.on("message", on_message)

    # Signaling.

    async def send(self, message: dict[str, Any] | Message) -> None:
        """Send a contract message, or any JSON object (tests of bad input)."""
        assert self._ws is not None
        data = message if isinstance(message, dict) else wire(message)
        await self._ws.send_str(orjson.dumps(data).decode())

    async def send_raw(self, data: str | bytes) -> None:
        """Send a frame as is (tests of bad input)."""
        assert self._ws is not None
        if isinstance(data, bytes):
            await self._ws.send_bytes(data)
        else:
            await self._ws.send_str(data)

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                message = orjson.loads(frame.data)
                self.messages.append(message)
                try:
                    await self._handle(message)
                except Exception as exc:  # a description we cannot apply must not end the session
                    self.errors.append(f"client could not apply {message.get('type')}: {exc!r}")
                self._notify()
        finally:
            self.close_code = self._ws.close_code
            self.closed_reason = self.closed_reason or f"socket closed ({self.close_code})"
            self._lost.set()
            self._notify()

    async def _handle(self, data: dict[str, Any]) -> None:
        match parse_server_message(data):
            case RoomState(self_id=self_id, peers=peers, receive_lines=receive_lines, host=host, locked=locked):
                self.join_times.welcome = time.monotonic()
                self.receive_lines = receive_lines
                self.self_id, self.host, self.locked, self.waiting = self_id, host, locked, False
                if self.host_token is not None and host != self_id:
                    await self.send(ClaimHost(self.host_token))
                if self.options.secret is not None:
                    # A new peer id, and so a new key and a new salt, for every join.
                    self._rtp.sealer = VoiceSealer(self.room, self.options.secret, self_id)
                self.peers = {p.id: RemotePeer(p.id, p.name, p.muted) for p in peers}
            case PeerJoin(peer=p) | PeerUpdate(peer=p):
                self.peers[p.id] = RemotePeer(p.id, p.name, p.muted)
            case PeerLeave(peer_id=peer_id):
                self.peers.pop(peer_id, None)
            case ErrorMessage(message=text):
                self.errors.append(text)
            case Forwarding(lines=lines):
                self.lines = lines
            case Levels(levels=levels):
                self.levels.update(levels)
            case ChatFrom() as chat:
                self._on_chat(chat)
            case Host(peer_id=peer_id, token=token):
                self.host = peer_id
                if token is not None:
                    self.host_token = token
            case Lock(locked=locked):
                self.locked = locked
            case Lobby(waiting=waiting):
                self.lobby = {p.id: p.name for p in waiting}
            case LobbyWait():
                self.waiting = True
            case MuteRequest():
                self.mute_requests += 1
            case Answer(sdp=sdp) if self.pc is not None:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
                self._rtp.negotiated(self._transceiver)
                # An answer to receive lines already sends on some of them.
                self._owners = _ssrc_owners(sdp)
                self.join_times.answer = time.monotonic()
            case Offer(sdp=sdp) if self.pc is not None:
                self.join_times.server_offers += 1
                if self.join_times.server_offer is None:
                    self.join_times.server_offer = time.monotonic()
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
                self._owners = _ssrc_owners(sdp)
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                answer: str = self.pc.localDescription.sdp
                sent = answer if self.options.rewrite_answer is None else self.options.rewrite_answer(answer)
                if sent is not None:
                    await self.send(Answer(sent))
                    self.answers_sent += 1
                    if self.join_times.server_offer_answered is None:
                        self.join_times.server_offer_answered = time.monotonic()

    def _on_chat(self, chat: ChatFrom) -> None:
        if self._chat_cipher is None:
            text = chat.text
        else:
            # Plain text in an encrypted room is not from the room's people: the server made it up.
            text = None if chat.sealed is None else self._chat_cipher.open(chat.sealed, chat.sender)
        if text is None:
            self.chat_failures += 1
            return
        sender = self.peers.get(chat.sender)
        line = ChatLine(chat.sender, sender.name if sender else "?", text)
        self.chat.append(line)
        if self.on_chat is not None:
            self.on_chat(line)

    async def say(self, text: str) -> None:
        """Send one chat message to the room (sealed in an encrypted room)."""
        if self._chat_cipher is None:
            await self.send(Chat(text=text))
        else:
            assert self.self_id is not None, "say() needs a joined client"
            await self.send(Chat(sealed=self._chat_cipher.seal(text, self.self_id)))

    def _notify(self) -> None:
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, re-checked on every message and state change (and every 50 ms)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.closed_reason and self._reader is not None and self._reader.done():
                raise JoinError(self.errors[-1] if self.errors else self.closed_reason)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("condition not met in time")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    # Media.

    def _on_rtp(self, data: bytes) -> None:
        packet = parse_rtp(data)
        if packet is None:
            return
        opened = packet.payload if self._voice_opener is None else self._voice_opener.open(packet.payload)
        if opened is None:
            return  # counted by the opener
        payload = opened
        owner = self._owners.get(packet.ssrc, f"ssrc:{packet.ssrc}")
        owner = self.lines.get(owner) or owner
        received = ReceivedPacket(time.time(), packet.sequence_number, packet.timestamp, packet.ssrc, payload)
        if self.options.keep_packets:
            self.received.setdefault(owner, []).append(received)
        if self.options.decode:
            self._decoders.setdefault(owner, OpusStreamDecoder()).decode(payload, packet.timestamp)
        if self.on_packet is not None:
            self.on_packet(owner, received)

    def send_rtp(self, payload: bytes, timestamp: int | None = None, marker: int = 0) -> None:
        """Send one RTP packet with ``payload`` (sealed first in an encrypted room); the timestamp advances 20 ms
        unless given."""
        self._rtp.send(payload, timestamp, marker, self.audio_level)

    async def play(self, pcm: Pcm) -> None:
        """Encode ``pcm`` to Opus and send it in real time, 50 packets per second."""
        payloads = await asyncio.get_running_loop().run_in_executor(None, encode_opus, pcm)
        levels = frame_levels(pcm)
        start = time.monotonic()
        for index, (payload, level) in enumerate(zip(payloads, levels, strict=True)):
            delay = start + index * FRAME_SECONDS - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._rtp.connected:  # frames that fall into a rejoin are lost, as on a phone
                self.audio_level = level
                self.send_rtp(payload)

    def pcm(self, speaker_id: str) -> Pcm:
        """Decoded audio received from ``speaker_id`` (needs ``decode=True``)."""
        decoder = self._decoders.get(speaker_id)
        if decoder is None:
            return OpusStreamDecoder().pcm()
        return decoder.pcm()

    @property
    def undecryptable_frames(self) -> int:
        """Encrypted room: voice frames that did not open (damaged, foreign, replayed) and were dropped."""
        opener = self._voice_opener
        return 0 if opener is None else opener.failed + opener.replayed

    def speakers(self) -> set[str]:
        """People whose audio has arrived."""
        return set(self.received)

    def negotiated_speakers(self) -> set[str]:
        """People the server has set up a forwarding stream for (in its last offer, or its answer to our first;
        in a big room, whom its lines carry now)."""
        return {self.lines.get(owner) or owner for owner in self._owners.values()}

    async def mute(self, muted: bool) -> None:
        await self.send(Mute(muted))

    async def host_action(self, action: MessageType, peer_id: str) -> None:
        """As the room's host: remove, ask_mute, hand_over, admit or decline ``peer_id``."""
        await self.send(HostAction(action, peer_id))

    async def lock(self, locked: bool) -> None:
        await self.send(Lock(locked))

    async def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        await self._leave()
        if self._session is not None:
            await self._session.close()
