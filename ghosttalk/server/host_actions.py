"""What a room's host does, and how a newcomer waits in a locked room's lobby.

Every action is checked here: only the host may act, only on someone in the room (or, for admit and
decline, someone waiting); a refused action is a :class:`SignalingError` the host's page gets as ``error``.
"""

from __future__ import annotations

import secrets

from ghosttalk.contract import (
    LOBBY_SIZE,
    CloseCode,
    ErrorMessage,
    HostAction,
    Lock,
    MessageType,
    MuteRequest,
    SignalingError,
    wire,
)
from ghosttalk.server.hosting import Knock
from ghosttalk.server.rooms import JoinRefused, Peer, Room, RoomManager, key_refusal

# What a person turned away is told, by the close code that ends their session.
FAREWELLS = {
    CloseCode.REMOVED: "removed by the host",
    CloseCode.DECLINED: "the host did not let you in",
    CloseCode.LOBBY_TIMEOUT: "nobody let you in in time",
    CloseCode.LOBBY_CLOSED: "everyone left the room before you were let in",
    CloseCode.KICKED: "removed by the operator",
    CloseCode.BANNED: "banned",
    CloseCode.GOING_AWAY: "server shutting down",
}


def knock(rooms: RoomManager, room_id: str, name: str, ip: str, key_check: str | None) -> Knock | None:
    """A newcomer at a locked room's door waits in its lobby (the host is told); None when the room is not
    locked and they may simply join. Raises :class:`JoinRefused` for a join that could not happen anyway."""
    room = rooms.rooms.get(room_id)
    if room is None or not room.hosting.locked:
        return None
    if (refusal := key_refusal(room.key_check, key_check)) is not None:
        raise refusal
    if len(room.hosting.lobby) >= LOBBY_SIZE:
        raise JoinRefused("too many people are waiting to be let in; try again later")
    waiting = Knock(secrets.token_hex(8), name, ip)
    room.hosting.knock(waiting)
    room.send_lobby()
    rooms.events.emit("LOBBY_WAIT", room=room_id, peer=waiting.id, ip=ip, name=name)
    return waiting


def withdraw(rooms: RoomManager, room_id: str, waiting: Knock) -> None:
    """``waiting`` stops waiting (gave up, timed out, banned): out of the lobby, and the host's list says so."""
    room = rooms.rooms.get(room_id)
    if room is not None and room.hosting.lobby.pop(waiting.id, None) is not None:
        room.send_lobby()


def act(rooms: RoomManager, peer: Peer, action: HostAction) -> None:
    room = _hosted_by(rooms, peer, action.action)
    if action.action in (MessageType.ADMIT, MessageType.DECLINE):
        decision = None if action.action == MessageType.ADMIT else CloseCode.DECLINED
        if room.hosting.settle(action.peer_id, decision) is None:
            raise SignalingError(f"{action.action}: nobody waits as {action.peer_id!r}")
        room.send_lobby()
        rooms.events.emit("LOBBY_" + action.action.upper(), room=room.id, peer=action.peer_id, by=peer.id)
        return
    target = room.peers.get(action.peer_id)
    if target is None or target is peer:
        raise SignalingError(f"{action.action}: {action.peer_id!r} is not someone else in the room")
    match action.action:
        case MessageType.REMOVE:
            rooms.events.emit("HOST_REMOVE", room=room.id, peer=target.id, ip=target.ip, by=peer.id)
            rooms.remove(target, FAREWELLS[CloseCode.REMOVED], CloseCode.REMOVED)
        case MessageType.ASK_MUTE:
            target.send(wire(MuteRequest(peer.id)))
        case MessageType.HAND_OVER:
            room.hosting.appoint(target.id)
            room.announce_host()


def lock(rooms: RoomManager, peer: Peer, message: Lock) -> None:
    room = _hosted_by(rooms, peer, MessageType.LOCK)
    if room.hosting.locked == message.locked:
        return
    room.hosting.locked = message.locked
    room.broadcast(wire(message))
    rooms.events.emit("ROOM_LOCK", room=room.id, peer=peer.id, locked=message.locked)
    if not message.locked:
        # Unlocked: whoever was waiting is let in, as anyone arriving now would be.
        room.hosting.settle_all(None)
    room.send_lobby()


def claim(rooms: RoomManager, peer: Peer, token: str) -> None:
    room = rooms.rooms.get(peer.room_id)
    if room is None or not room.hosting.claim(token, peer.id):
        raise SignalingError("that host token is not this room's, or it has expired")
    room.announce_host()


def _hosted_by(rooms: RoomManager, peer: Peer, action: MessageType) -> Room:
    room = rooms.rooms.get(peer.room_id)
    if room is None or room.hosting.host != peer.id:
        raise SignalingError(f"{action}: only the room's host can do that")
    return room


def turned_away(code: CloseCode) -> ErrorMessage:
    return ErrorMessage(FAREWELLS.get(code, "you were not let in"))
