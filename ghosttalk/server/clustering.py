"""This server's rooms, as its cluster node sees them: the answers ``ghosttalk.cluster.node.LocalServer`` asks
for, including running a bridged page's signaling session with the same code as a local page's."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ghosttalk.cluster.bridge import OpenRequest, RemoteSocket
from ghosttalk.contract import CloseCode, validate_key_check, validate_name, validate_room
from ghosttalk.ops.bans import BanList
from ghosttalk.ops.eventlog import EVENTS
from ghosttalk.ops.metrics import METRICS
from ghosttalk.server.lifecycle import CONFIG, SHUTTING_DOWN
from ghosttalk.server.overview import snapshot
from ghosttalk.server.rooms import ROOMS
from ghosttalk.server.signaling import SignalingSession


class NodeServer:
    def __init__(self, app: web.Application) -> None:
        self._app = app

    def load(self) -> tuple[int, int]:
        rooms = self._app[ROOMS]
        return len(rooms.peers), len(rooms.rooms)

    def hosts(self, room_id: str) -> bool:
        return room_id in self._app[ROOMS].rooms

    def room_ids(self) -> list[str]:
        return list(self._app[ROOMS].rooms)

    def snapshot(self) -> list[dict[str, Any]]:
        return snapshot(self._app[ROOMS])

    async def kick(self, peer_id: str) -> bool:
        return await self._app[ROOMS].kick(peer_id, "kicked")

    async def disconnect_banned(self, entries: list[str]) -> int:
        def banned(ip: str) -> bool:
            return any(BanList.matches(entry, ip) for entry in entries)

        return await self._app[ROOMS].disconnect_where(banned, "banned")

    async def evict(self, room_id: str, reason: str) -> None:
        rooms = self._app[ROOMS]
        room = rooms.rooms.get(room_id)
        if room is not None:
            for peer in list(room.peers.values()):
                await rooms.kick(peer.id, reason, CloseCode.GOING_AWAY)

    async def serve(self, socket: RemoteSocket, request: OpenRequest) -> None:
        app = self._app
        try:
            # Checked by the page's node already; checked again because nothing that arrives here is trusted.
            validate_room(request.room)
            validate_name(request.name)
            validate_key_check(request.key_check)
        except ValueError as exc:
            await socket.close(code=CloseCode.POLICY, message=str(exc).encode())
            return
        if app[SHUTTING_DOWN].is_set():
            await socket.close(code=CloseCode.GOING_AWAY, message=b"server shutting down")
            return
        session = SignalingSession(socket, app[ROOMS], app[METRICS], app[EVENTS], app[CONFIG])
        await session.run(request.room, request.name, request.ip, request.key_check)
