"""``GET /ws``: one signaling session per WebSocket — validate, wait in a locked room's lobby until let in,
join, dispatch, leave.

Everything a client can get wrong is answered: before the upgrade with a status and a plain-text reason,
afterwards with ``error {message}`` while the session goes on. Frames over 64 KiB close the socket (1009).

In a cluster, a socket whose room lives on another node is bridged there (ghosttalk.cluster.bridge), where the
same :class:`SignalingSession` runs over a :class:`SignalingSocket` fed through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

import orjson
from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from ghosttalk.cluster import ClusterUnavailable
from ghosttalk.config import Config
from ghosttalk.contract import (
    CHAT_BURST,
    CHAT_PER_SECOND,
    MAX_FRAME_BYTES,
    TOO_MANY_MESSAGES,
    Answer,
    Candidate,
    Chat,
    ClaimHost,
    ClientMessage,
    CloseCode,
    ErrorMessage,
    Heartbeat,
    HostAction,
    LobbyWait,
    Lock,
    MessageRefused,
    Mute,
    Offer,
    SignalingError,
    parse_client_message,
    validate_key_check,
    validate_name,
    validate_room,
    wire,
)
from ghosttalk.ops.bans import BANS
from ghosttalk.ops.eventlog import EVENTS, EventLog
from ghosttalk.ops.limits import KeyedRateLimiter, TokenBucket
from ghosttalk.ops.metrics import METRICS, Metrics
from ghosttalk.ops.netaddr import client_ip, limit_key, origin_allowed
from ghosttalk.server import host_actions
from ghosttalk.server.hosting import Knock
from ghosttalk.server.lifecycle import CLUSTER, CONFIG, SHUTTING_DOWN
from ghosttalk.server.rooms import ROOMS, JoinRefused, Peer, RoomManager

logger = logging.getLogger(__name__)

CLOSE_HANDSHAKE_SECONDS = 1.0


class ConnectionCounter:
    """Open signaling sockets per client address (a :func:`~ghosttalk.ops.netaddr.limit_key`), for
    ``--max-conns-per-ip``."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def count(self, ip: str) -> int:
        return self._open.get(ip, 0)

    @contextlib.contextmanager
    def hold(self, ip: str) -> Iterator[None]:
        self._open[ip] = self._open.get(ip, 0) + 1
        try:
            yield
        finally:
            remaining = self._open[ip] - 1
            if remaining:
                self._open[ip] = remaining
            else:
                del self._open[ip]


class SignalingSocket(Protocol):
    """What a session needs of the page's socket: a WebSocket here, or, for a page whose WebSocket landed on
    another node of a cluster, that node's frames brought through Redis (ghosttalk.cluster.bridge)."""

    @property
    def closed(self) -> bool: ...

    def __aiter__(self) -> AsyncIterator[WSMessage]: ...

    async def send_str(self, data: str) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


CONNECTIONS = web.AppKey("connections", ConnectionCounter)
JOIN_RATE = web.AppKey("join_rate", KeyedRateLimiter)
# One LIMIT_EXCEEDED event per address and limit per minute for refusals before the upgrade.
REFUSAL_LOG = web.AppKey("refusal_log", KeyedRateLimiter)


def join_rate_limiter(config: Config) -> KeyedRateLimiter:
    return KeyedRateLimiter(rate=config.join_rate_per_minute / 60, burst=config.join_burst)


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    app = request.app
    config = app[CONFIG]
    try:
        room_id = validate_room(request.query.get("room"))
        name = validate_name(request.query.get("name"))
        key_check = validate_key_check(request.query.get("key_check"))
    except ValueError as exc:
        app[METRICS].signaling_errors.labels(kind="bad_request").inc()
        return web.Response(status=400, text=f"{exc}\n")
    ip = client_ip(request, config.trusted_proxies)
    if not origin_allowed(request, config.allowed_origins, config.trusted_proxies):
        return web.Response(status=403, text="foreign Origin\n")
    if app[BANS].is_banned(ip):
        return web.Response(status=403, text="banned\n")
    if app[SHUTTING_DOWN].is_set():
        return web.Response(status=503, text="server shutting down\n")
    # Limits count an IPv6 client's whole /64: it can pick any address in it for each socket.
    key = limit_key(ip)
    connections = app[CONNECTIONS]
    if connections.count(key) >= config.max_conns_per_ip:
        return _refuse_over_limit(app, ip, key, "connections", "too many connections from your address")
    if not app[JOIN_RATE].take(key):
        return _refuse_over_limit(app, ip, key, "join_rate", "too many joins from your address; wait a moment")
    cluster = app.get(CLUSTER)
    if cluster is None:
        return await _serve(request, room_id, name, ip, key_check)
    # While a session for the room is on its way here, its place in the cluster's directory is kept; when the
    # last one ends and the room never opened here (refused, or gone before joining), the place is given up.
    with cluster.placed_while(room_id):
        try:
            owner = await cluster.route(room_id)
        except ClusterUnavailable as exc:
            app[METRICS].signaling_errors.labels(kind="cluster_unavailable").inc()
            return web.Response(status=503, text=f"{exc}\n")
        return await _serve(request, room_id, name, ip, key_check, owner)


async def _serve(
    request: web.Request, room_id: str, name: str, ip: str, key_check: str | None, owner: str | None = None
) -> web.WebSocketResponse:
    """Upgrade and run the session here, or, when its room lives on node ``owner``, bridge it there."""
    app = request.app
    config = app[CONFIG]
    key = limit_key(ip)
    connections = app[CONNECTIONS]
    with connections.hold(key):
        ws = web.WebSocketResponse(
            heartbeat=config.ws_ping_interval, receive_timeout=config.ws_read_timeout,
            # aiohttp refuses a message of max_msg_size bytes or more; the contract allows MAX_FRAME_BYTES.
            max_msg_size=MAX_FRAME_BYTES + 1,
            # A client that never answers our close frame (frozen, network gone) must not hold up SIGTERM.
            timeout=CLOSE_HANDSHAKE_SECONDS,
            # No permessage-deflate: a few small messages a minute do not pay for the ~120 kB of zlib state
            # that every browser's connection (they all offer it) would otherwise keep.
            compress=False,
        )
        await ws.prepare(request)
        if owner is not None:
            await app[CLUSTER].bridge(ws, owner, room_id, name, ip, key_check)
        else:
            session = SignalingSession(ws, app[ROOMS], app[METRICS], app[EVENTS], config)
            await session.run(room_id, name, ip, key_check)
    return ws


def _refuse_over_limit(app: web.Application, ip: str, key: str, limit: str, text: str) -> web.Response:
    """429, counted every time, logged once a minute per limit key and limit (a flood must not flood the log)."""
    app[METRICS].signaling_errors.labels(kind=f"limit_{limit}").inc()
    if app[REFUSAL_LOG].take(f"{limit}:{key}"):
        app[EVENTS].emit("LIMIT_EXCEEDED", level="warning", ip=ip, limit=limit)
    return web.Response(status=429, text=f"{text}\n")


class SignalingSession:
    def __init__(
        self, ws: SignalingSocket, rooms: RoomManager, metrics: Metrics, events: EventLog, config: Config
    ) -> None:
        self.ws = ws
        self.rooms = rooms
        self._metrics = metrics
        self._events = events
        self._messages = TokenBucket(config.message_rate, config.message_burst)
        self._offers = TokenBucket(config.offers_per_minute / 60, config.offers_per_minute)
        self._chat = TokenBucket(CHAT_PER_SECOND, CHAT_BURST)
        self._lobby_wait = config.lobby_wait_seconds
        self._close_reason: str | None = None
        self._close_code = CloseCode.POLICY
        self._closed = asyncio.Event()

    def disconnect(self, reason: str, code: CloseCode) -> None:
        """Ask the session to end (kick, ban, heartbeat loss, shutdown); the reader loop notices."""
        if self._close_reason is None:
            self._close_reason, self._close_code = reason, code
            self._closed.set()

    async def run(self, room_id: str, name: str, ip: str, key_check: str | None = None) -> None:
        try:
            waiting = host_actions.knock(self.rooms, room_id, name, ip, key_check)
            if waiting is not None and not await self._wait_in_lobby(room_id, waiting):
                return
            peer_id = None if waiting is None else waiting.id
            peer = self.rooms.join(room_id, name, ip, self.disconnect, key_check, peer_id=peer_id)
        except JoinRefused as exc:
            self._metrics.signaling_errors.labels(kind=f"refused_{exc.code.name.lower()}").inc()
            await self._close_with(ErrorMessage(str(exc)), exc.code)
            return
        writer = asyncio.create_task(self._write(peer))
        reader = asyncio.create_task(self._read(peer))
        closer = asyncio.create_task(self._closed.wait())
        try:
            await asyncio.wait({writer, reader, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, closer):
                task.cancel()
            # Flush what is queued (the reason for a kick, say) before closing.
            if not writer.done():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(peer.outbox.join(), timeout=1.0)
            writer.cancel()
            await asyncio.gather(reader, writer, closer, return_exceptions=True)
            reason = self._close_reason or "left"
            await self.rooms.leave(peer, reason)
            if not self.ws.closed:
                code = self._close_code if self._close_reason else WSCloseCode.OK
                await self.ws.close(code=code, message=reason.encode()[:120])

    async def _close_with(self, message: ErrorMessage, code: int) -> None:
        if not self.ws.closed:
            await self.ws.send_str(orjson.dumps(wire(message)).decode())
            await self.ws.close(code=code, message=message.message.encode()[:120])

    async def _wait_in_lobby(self, room_id: str, waiting: Knock) -> bool:
        """A locked room: wait until the host lets this person in (True), or turns them away, nobody does
        within ``--lobby-wait``, or they give up (False, the socket closed)."""
        await self.ws.send_str(orjson.dumps(wire(LobbyWait())).decode())
        reader = asyncio.create_task(self._read_while_waiting())
        closer = asyncio.create_task(self._closed.wait())
        try:
            watched: list[asyncio.Future[Any]] = [waiting.decision, reader, closer]
            done, _ = await asyncio.wait(watched, timeout=self._lobby_wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, closer):
                task.cancel()
            await asyncio.gather(reader, closer, return_exceptions=True)
        if waiting.decision.done():
            code = waiting.decision.result()
            if code is None:
                return True
        elif done:
            # The person went away, or sent more than the message rate allows.
            host_actions.withdraw(self.rooms, room_id, waiting)
            await self._close_with(ErrorMessage(self._close_reason or "left"), self._close_code)
            return False
        else:
            code = CloseCode.LOBBY_TIMEOUT
            host_actions.withdraw(self.rooms, room_id, waiting)
        await self._close_with(host_actions.turned_away(code), code)
        return False

    async def _read_while_waiting(self) -> None:
        """Frames from someone in the lobby count against the rate and are otherwise ignored: there is nothing
        to negotiate before they are in. Returns when the socket closes or the rate is exceeded."""
        async for message in self.ws:
            if message.type == WSMsgType.ERROR:
                return
            if not self._messages.take():
                self.disconnect("limit exceeded: message_rate", CloseCode.POLICY)
                return

    async def _write(self, peer: Peer) -> None:
        # Frames go out as text: the payload is UTF-8 JSON, which orjson already produced as bytes.
        while True:
            data = await peer.outbox.get()
            try:
                await self.ws.send_str(data.decode())
            except (ConnectionError, RuntimeError):
                return
            finally:
                peer.outbox.task_done()
                # Not kept while waiting for the next message: orjson's buffer behind an SDP offer is several
                # times its length, 30-120 kB per person held for nothing.
                del data

    async def _read(self, peer: Peer) -> None:
        async for message in self.ws:
            if message.type == WSMsgType.ERROR:
                return
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            # Every frame a client sends counts against its rate, whatever it holds.
            if not self._messages.take():
                self._over_limit(peer, "message_rate", TOO_MANY_MESSAGES)
            elif message.type == WSMsgType.TEXT:
                await self._dispatch(peer, message.data)
            else:
                self._reject(peer, "binary_frame", "binary frames are not supported; send JSON text")
            # Not kept while waiting for the next frame, which may be minutes away: the last one is usually
            # an SDP answer, a few kB per person.
            del message

    def _reject(self, peer: Peer, kind: str, text: str) -> None:
        self._metrics.signaling_errors.labels(kind=kind).inc()
        peer.send(wire(ErrorMessage(text)))

    def _over_limit(self, peer: Peer, limit: str, text: str) -> None:
        """One event, one error, and the session ends; nobody else notices."""
        if self._close_reason is not None:
            return
        self._events.emit("LIMIT_EXCEEDED", level="warning", room=peer.room_id, peer=peer.id, ip=peer.ip, limit=limit)
        self._reject(peer, f"limit_{limit}", text)
        self.disconnect(f"limit exceeded: {limit}", CloseCode.POLICY)

    async def _dispatch(self, peer: Peer, text: str) -> None:
        try:
            message = parse_client_message(text)
        except MessageRefused as exc:
            self._reject(peer, exc.kind, str(exc))
            return
        if message is None:
            return  # unknown types are ignored, as the original did
        try:
            await self._handle(peer, message)
        except SignalingError as exc:
            self._reject(peer, message.TYPE, str(exc))
        except Exception as exc:
            # A bug, not bad input: keep the session, say so, and leave a traceback for us to fix it.
            logger.exception("peer %s: %s handler failed", peer.id, message.TYPE)
            self._events.emit("ERROR", level="error", room=peer.room_id, peer=peer.id, ip=peer.ip,
                              what=f"{message.TYPE} handler", error=repr(exc))
            self._reject(peer, "internal", f"server error while handling {message.TYPE}")

    async def _handle(self, peer: Peer, message: ClientMessage) -> None:
        match message:
            case Offer(sdp=sdp):
                if not self._offers.take():
                    self._over_limit(peer, "offer_rate", "too many offers; each one renegotiates the call")
                    return
                await peer.media.handle_offer(sdp)
            case Answer(sdp=sdp):
                await peer.media.handle_answer(sdp)
            case Candidate(candidate=candidate):
                peer.media.handle_candidate(candidate)
            case Heartbeat():
                pass  # the WebSocket's own pings and read timeout judge liveness: its form is all that counts
            case Mute(muted=muted):
                self.rooms.set_muted(peer, muted)
            case Chat():
                # Refused, not fatal: a person typing fast loses a message, not the call.
                if not self._chat.take():
                    self._reject(peer, "limit_chat", "too many chat messages; wait a moment")
                    return
                self.rooms.chat(peer, message)
            case HostAction():
                host_actions.act(self.rooms, peer, message)
            case Lock():
                host_actions.lock(self.rooms, peer, message)
            case ClaimHost(token=token):
                host_actions.claim(self.rooms, peer, token)
