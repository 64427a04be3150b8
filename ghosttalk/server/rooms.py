"""Rooms in memory: who is where, joining and leaving, who hears whom, and telling a room what changed.

Each person's connection comes from the media plane (:mod:`ghosttalk.media.plane`); what operators see of the
rooms is in :mod:`ghosttalk.server.overview`."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from ghosttalk.config import Config
from ghosttalk.contract import Chat, ChatFrom, CloseCode, Host, Lobby, PeerInfo, SignalingError, wire
from ghosttalk.media.negotiation import Joining
from ghosttalk.media.peer import MediaHooks, PeerMedia
from ghosttalk.media.plane import MediaPlane
from ghosttalk.media.selection import RoomSelection, selects_loudest
from ghosttalk.ops.eventlog import EventLog
from ghosttalk.ops.metrics import Metrics
from ghosttalk.server.hosting import Hosting

logger = logging.getLogger(__name__)

# A client that leaves this many messages unread is too slow to keep; it is disconnected.
OUTBOX_MESSAGES = 256


def receive_lines_for(media: PeerMedia) -> int:
    """How many receive-only audio lines a newcomer's first offer should carry (``room_state``'s
    ``receive_lines``): one per speaker its connection is waiting to hear, so that the server's first answer
    already sends every one of them and the join takes one round trip."""
    return media.waiting_speakers


class JoinRefused(Exception):
    """The join cannot happen; ``str(exc)`` is the message the client gets (``Room full`` and friends) and
    ``code`` the close code that tells it whether to come back."""

    def __init__(self, message: str, code: CloseCode = CloseCode.TRY_AGAIN_LATER) -> None:
        super().__init__(message)
        self.code = code


def key_refusal(room_key_check: str | None, key_check: str | None) -> JoinRefused | None:
    """Why a join with ``key_check`` cannot enter a room whose first joiner fixed ``room_key_check`` (None:
    plain), or None when it may (docs/E2EE.md)."""
    if room_key_check is None:
        if key_check is None:
            return None
        return JoinRefused("this room is not end-to-end encrypted; open its link without a key",
                           CloseCode.NOT_ENCRYPTED)
    if key_check is None:
        return JoinRefused("this link is missing its key", CloseCode.KEY_MISSING)
    # Constant time: a client probing values must not learn the room's one byte by byte.
    if not hmac.compare_digest(room_key_check, key_check):
        return JoinRefused("this link's key does not match the room", CloseCode.KEY_MISMATCH)
    return None


@dataclass(slots=True, eq=False)
class Peer:
    id: str
    name: str
    ip: str
    room_id: str
    media: PeerMedia
    # The signaling session's way of ending the connection with a reason (kick, ban, death, shutdown).
    disconnect: Callable[[str, CloseCode], None]
    muted: bool = False
    joined_at: float = field(default_factory=time.time)
    outbox: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(OUTBOX_MESSAGES))

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "muted": self.muted}

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.outbox.put_nowait(orjson.dumps(message))
        except asyncio.QueueFull:
            self.disconnect("too slow reading messages", CloseCode.POLICY)


@dataclass(slots=True, eq=False)
class Room:
    id: str
    # The key-check value the first joiner brought (None: a plain room): every later join must bring the same.
    key_check: str | None = None
    created_at: float = field(default_factory=time.time)
    peers: dict[str, Peer] = field(default_factory=dict)
    destroy_handle: asyncio.TimerHandle | None = None
    # Set while the room is too large to forward everyone to everyone: who hears whom (media.selection).
    selection: RoomSelection | None = None
    # Its connections on their way in: while there are any, the others' re-offers wait (media.negotiation).
    # Per room, because a join sets off re-offers in its own room only, and so that people joining (or
    # never finishing a join) elsewhere cannot slow this room's renegotiations.
    joining: Joining = field(default_factory=Joining)
    # Its host, whether it is locked, and who waits to be let in (server.hosting, server.host_actions).
    hosting: Hosting = field(default_factory=Hosting)

    def broadcast(self, message: dict[str, Any], *, exclude: Peer | None = None) -> None:
        for peer in list(self.peers.values()):
            if peer is not exclude:
                peer.send(message)

    def announce_host(self) -> None:
        """Tell the room who its host is now; the host's own message carries its token, and in a locked room
        (or one with people still waiting) the lobby that comes with the role."""
        host = self.peers.get(self.hosting.host or "")
        if host is None:
            return
        self.broadcast(wire(Host(host.id)), exclude=host)
        host.send(wire(Host(host.id, self.hosting.token)))
        if self.hosting.locked or self.hosting.lobby:
            self.send_lobby()

    def send_lobby(self) -> None:
        """The lobby as it is now, to the host."""
        host = self.peers.get(self.hosting.host or "")
        if host is not None:
            waiting = tuple(PeerInfo(knock.id, knock.name, False) for knock in self.hosting.lobby.values())
            host.send(wire(Lobby(waiting)))


class RoomManager:
    def __init__(self, config: Config, events: EventLog, metrics: Metrics, media: MediaPlane) -> None:
        """``media`` makes each person's connection; whoever made it starts it before the first join and
        closes it after :meth:`close`."""
        self.config = config
        self.events = events
        self.metrics = metrics
        self.rooms: dict[str, Room] = {}
        self.peers: dict[str, Peer] = {}
        self._media = media
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        # Called with a room's id once it is gone (a cluster node takes it out of the room directory).
        self.destroyed: list[Callable[[str], None]] = []

    # Lifecycle.

    async def close(self, reason: str = "server shutting down") -> None:
        """Tell everyone and close every connection (once: shutdown and cleanup both ask)."""
        if self._closing:
            return
        self._closing = True
        for room in self.rooms.values():
            room.hosting.settle_all(CloseCode.GOING_AWAY)  # those waiting come back to wherever it restarts
        for peer in list(self.peers.values()):
            peer.send({"type": "error", "message": reason})
            peer.disconnect(reason, CloseCode.GOING_AWAY)
        await asyncio.gather(*(self.leave(peer, reason) for peer in list(self.peers.values())))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for room in self.rooms.values():
            if room.destroy_handle is not None:
                room.destroy_handle.cancel()
            if room.selection is not None:
                room.selection.close()

    @property
    def task_count(self) -> int:
        """Background closes still running (leak checks: zero once everyone has left)."""
        return len(self._tasks)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Joining and leaving.

    def join(
        self, room_id: str, name: str, ip: str, disconnect: Callable[[str, CloseCode], None],
        key_check: str | None = None, *, peer_id: str | None = None,
    ) -> Peer:
        """Create the person and their connection, tell the room. Raises :class:`JoinRefused`. ``key_check``
        is the join's key-check value (None: a plain join); the room's first joiner fixes which it takes.
        ``peer_id``: someone the host let in from the lobby (server.host_actions), who keeps the id they
        waited under; anyone else gets a new one, and a locked room turns them away (they knock first).

        Every refusal is decided before anything exists, so a refused join leaves no room behind; a member
        whose connection is on its way out cannot make the join fail; and should the wiring fail halfway, it
        is undone (nobody keeps a line for a person who never arrived)."""
        room = self.rooms.get(room_id)
        if room is None and len(self.rooms) >= self.config.max_rooms:
            raise JoinRefused("Server full")
        if room is not None and (refusal := key_refusal(room.key_check, key_check)) is not None:
            raise refusal
        if room is not None and len(room.peers) >= self.config.max_room_peers:
            raise JoinRefused("Room full")
        if room is not None and room.hosting.locked and peer_id is None:
            raise JoinRefused("the room is locked: wait in its lobby", CloseCode.POLICY)
        if len(self.peers) >= self.config.max_peers:
            raise JoinRefused("Server full")

        peer_id = peer_id or secrets.token_hex(8)
        peer: Peer
        hooks = MediaHooks(
            send=lambda message: peer.send(message),
            connected=lambda candidate_type: self._on_connected(peer, candidate_type),
            failed=lambda reason: self._on_failed(peer, reason),
            error=lambda exc: self.events.emit(
                "ERROR", level="error", room=room_id, peer=peer_id, ip=ip, what="media", error=repr(exc)
            ),
            limit_exceeded=lambda limit: self._on_limit_exceeded(peer, limit),
            refused=lambda text: self._refuse(peer, text),
        )
        joining = room.joining if room is not None else Joining()
        media = self._media.connect(peer_id, ip, hooks, joining)
        peer = Peer(peer_id, name, ip, room_id, media, disconnect)
        members = list(room.peers.values()) if room is not None else []
        try:
            if room is not None and selects_loudest(len(members) + 1, self.config.max_forwarded_speakers):
                self._hear_loudest(room, peer)
            else:
                for other in members:
                    if not other.media.usable:
                        # Closed or failed, and its removal is under way: it hears nobody new.
                        continue
                    media.add_speaker(other.id, other.media.speaker)
                    other.media.add_speaker(peer.id, media.speaker)
        except BaseException:
            if room is not None and room.selection is not None:
                room.selection.remove(peer_id)
            for other in members:
                other.media.remove_speaker(peer.id)
            self._spawn(media.close())
            raise
        if room is None:
            room = self.rooms[room_id] = Room(room_id, key_check, joining=joining)
            self.events.emit("ROOM_CREATE", room=room_id, ip=ip, encrypted=key_check is not None)
        elif room.destroy_handle is not None:
            room.destroy_handle.cancel()
            room.destroy_handle = None
        room.peers[peer_id] = peer
        self.peers[peer_id] = peer
        media.start()

        # The first person in (or the first into a room that emptied and waits for its grace to end) hosts it.
        new_host = room.hosting.host is None
        if new_host:
            room.hosting.appoint(peer_id)
        peers = [p.info() for p in room.peers.values()]
        peer.send({"type": "room_state", "self_id": peer_id, "peers": peers, "receive_lines": receive_lines_for(media),
                   "host": room.hosting.host, "locked": room.hosting.locked})
        if new_host:
            peer.send(wire(Host(peer_id, room.hosting.token)))
        room.broadcast({"type": "peer_join", "peer": peer.info()}, exclude=peer)
        self.metrics.joins.inc()
        self.events.emit("USER_JOIN", room=room_id, peer=peer_id, ip=ip, name=name)
        return peer

    def _hear_loudest(self, room: Room, peer: Peer) -> None:
        """``peer`` joins a room past FORWARD_ALL_UP_TO: it gets max-forwarded-speakers lines, on which the
        room's selection puts the loudest. The join that takes the room past it moves everyone there over:
        the same few lines come, and each one's line per speaker goes once they forward (media.peer)."""
        forwarded = self.config.max_forwarded_speakers
        if room.selection is None:
            room.selection = RoomSelection(forwarded)
            for member in room.peers.values():
                if member.media.usable:
                    member.media.hear_loudest(forwarded, room.peers)
                    self._select(room.selection, member)
        peer.media.hear_loudest(forwarded, ())
        self._select(room.selection, peer)

    @staticmethod
    def _select(selection: RoomSelection, peer: Peer) -> None:
        selection.add(peer.id, peer.media.speaker, peer.media.route, peer.send)

    def _hear_everyone(self, room: Room, selection: RoomSelection) -> None:
        """The room is small again: one line per speaker for everyone, as in any small room."""
        room.selection = None
        selection.close()
        members = [member for member in room.peers.values() if member.media.usable]
        for member in members:
            member.media.hear_everyone({other.id: other.media.speaker for other in members if other is not member})

    async def leave(self, peer: Peer, reason: str = "left") -> None:
        """Remove ``peer`` everywhere and close its connection; safe to call more than once."""
        self._detach(peer, reason)
        await peer.media.close()

    def _detach(self, peer: Peer, reason: str) -> None:
        """Take ``peer`` out of its room and tell the room, at once (its connection closes afterwards)."""
        if self.peers.pop(peer.id, None) is None:
            return
        room = self.rooms.get(peer.room_id)
        if room is not None:
            room.peers.pop(peer.id, None)
            for other in room.peers.values():
                other.media.remove_speaker(peer.id)
            selection = room.selection
            if selection is not None:
                selection.remove(peer.id)
                # At shutdown nobody is to hear anybody any more: RoomManager.close() ends the selection.
                if not self._closing and not selects_loudest(len(room.peers), self.config.max_forwarded_speakers):
                    self._hear_everyone(room, selection)
            if not self._closing:  # at shutdown everyone has been told already
                room.broadcast({"type": "peer_leave", "peer_id": peer.id})
                # The one present longest takes over (dicts keep the order people joined in).
                if room.hosting.departed(peer.id, next(iter(room.peers), None)):
                    room.announce_host()
                if not room.peers:
                    # Nobody left to let anyone in: the lobby closes and the lock goes with the room.
                    room.hosting.settle_all(CloseCode.LOBBY_CLOSED)
                    room.hosting.locked = False
        self.metrics.leaves.inc()
        self.events.emit("USER_LEAVE", room=peer.room_id, peer=peer.id, ip=peer.ip, reason=reason)
        if room is not None and not room.peers:
            self._schedule_destroy(room)

    def _schedule_destroy(self, room: Room) -> None:
        if self.config.room_grace_seconds <= 0:
            self._destroy(room)
        else:
            room.destroy_handle = asyncio.get_running_loop().call_later(
                self.config.room_grace_seconds, self._destroy, room
            )

    def _destroy(self, room: Room) -> None:
        if room.peers or self.rooms.get(room.id) is not room:
            return
        del self.rooms[room.id]
        self.events.emit("ROOM_DESTROY", room=room.id)
        for listener in self.destroyed:
            listener(room.id)

    def chat(self, peer: Peer, message: Chat) -> None:
        """Pass ``peer``'s chat message to the rest of its room, and keep nothing of it. Raises
        :class:`SignalingError` when its form does not suit the room: plain text in an encrypted room would
        hand the server what the room's people believe it cannot read."""
        room = self.rooms.get(peer.room_id)
        if room is None:
            return
        if room.key_check is not None and message.sealed is None:
            raise SignalingError("this room is end-to-end encrypted: its chat must be sealed")
        if room.key_check is None and message.text is None:
            raise SignalingError("this room is not end-to-end encrypted: its chat is plain text")
        room.broadcast(wire(ChatFrom(peer.id, message.text, message.sealed)), exclude=peer)
        self.metrics.chat_messages.inc()

    def set_muted(self, peer: Peer, muted: bool) -> None:
        peer.muted = muted
        room = self.rooms.get(peer.room_id)
        if room is not None:
            room.broadcast({"type": "peer_update", "peer": peer.info()})

    def _on_connected(self, peer: Peer, candidate_type: str) -> None:
        self.metrics.ice_connected.labels(candidate_type=candidate_type).inc()
        self.events.emit("ICE_CONNECTED", room=peer.room_id, peer=peer.id, ip=peer.ip, candidate_type=candidate_type)

    def _on_failed(self, peer: Peer, reason: str) -> None:
        if peer.id not in self.peers:
            return
        logger.info("peer %s removed: %s", peer.id, reason)
        self.remove(peer, reason, CloseCode.CONNECTION_LOST)

    def remove(self, peer: Peer, reason: str, code: CloseCode) -> None:
        """The server ends ``peer``'s session: the reason to the client, then out of the room now, not when a
        task gets to run (a join meanwhile must not wire it up); its connection closes in the background."""
        peer.send({"type": "error", "message": reason})
        peer.disconnect(reason, code)
        self._detach(peer, reason)
        self._spawn(peer.media.close())

    def _refuse(self, peer: Peer, text: str) -> None:
        """An error about part of a message that was otherwise applied (a candidate line in a description)."""
        self.metrics.signaling_errors.labels(kind="candidate").inc()
        peer.send({"type": "error", "message": text})

    def _on_limit_exceeded(self, peer: Peer, limit: str) -> None:
        """A media limit (the packet rate cap): one event, one error, and the session ends with 1008."""
        if peer.id not in self.peers:
            return
        self.events.emit("LIMIT_EXCEEDED", level="warning", room=peer.room_id, peer=peer.id, ip=peer.ip, limit=limit)
        self.remove(peer, f"limit exceeded: {limit}", CloseCode.POLICY)

    # What operators do (admin panel).

    async def kick(self, peer_id: str, reason: str, code: CloseCode = CloseCode.KICKED) -> bool:
        """End ``peer_id``'s session, or turn them away if they are waiting in a lobby."""
        peer = self.peers.get(peer_id)
        if peer is None:
            for room in self.rooms.values():
                if room.hosting.settle(peer_id, code) is not None:
                    room.send_lobby()
                    return True
            return False
        peer.send({"type": "error", "message": reason})
        peer.disconnect(reason, code)
        await self.leave(peer, reason)
        return True

    async def disconnect_where(self, predicate: Callable[[str], bool], reason: str) -> int:
        """Ban enforcement: end every session whose client address matches."""
        matched = [peer.id for peer in self.peers.values() if predicate(peer.ip)]
        matched += [k.id for room in self.rooms.values() for k in room.hosting.lobby.values() if predicate(k.ip)]
        for peer_id in matched:
            await self.kick(peer_id, reason, CloseCode.BANNED)
        return len(matched)


ROOMS = web.AppKey("rooms", RoomManager)
