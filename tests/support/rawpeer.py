"""Offers and peers that speak for themselves: a real peer connection behind a raw WebSocket, so that it can die
as a process does, and offers whose client is already gone.
"""

from __future__ import annotations

import asyncio
import itertools
import re

from aiortc import RTCPeerConnection, RTCSessionDescription

from ghosttalk.client.netsim import LinkConditions
from ghosttalk.client.participant import IdleAudioTrack
from ghosttalk.media.aiortc_adapter.ice import filter_ice_datagrams
from tests.support.eventually import eventually
from tests.support.rawws import RawWebSocket
from tests.support.server import ServerProcess


def loopback_only(sdp: str, port: int = 65535) -> str:
    """``sdp`` with its candidates replaced by one on 127.0.0.1:``port`` (checks sent to it stay local). The
    default port is above the ephemeral range, so nothing listens there; the server refuses ports below 1024."""
    lines = [line for line in sdp.splitlines() if not line.startswith("a=candidate:")]
    lines = [re.sub(r"^c=IN IP[46] .*", "c=IN IP4 127.0.0.1", line) for line in lines]
    at = lines.index("a=end-of-candidates") if "a=end-of-candidates" in lines else len(lines)
    lines.insert(at, f"a=candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host")
    return "\r\n".join(lines) + "\r\n"


def host_candidate(port: int, address: str = "127.0.0.1", kind: str = "host", transport: str = "udp") -> str:
    """A candidate attribute's value (``candidate:...``) with the given address, port, type and transport."""
    return f"candidate:1 1 {transport} 2130706431 {address} {port} typ {kind}"


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
        await eventually(
            lambda: self.pc.connectionState, timeout, what="raw peer connected", until=lambda s: s == "connected"
        )

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
