"""What operators see of the rooms and the media plane: the admin panel's snapshot and counts, the live
figures ``/metrics`` reads when scraped, and the internals that leak checks compare with their baseline."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections import Counter
from typing import Any

from ghosttalk.media.plane import MediaPlane
from ghosttalk.ops.metrics import LiveStats
from ghosttalk.server.rooms import Peer, Room, RoomManager


def snapshot(rooms: RoomManager) -> list[dict[str, Any]]:
    return [
        {
            "room": room.id,
            "created_at": room.created_at,
            # End-to-end encrypted: the server relays voice and chat it cannot read.
            "encrypted": room.key_check is not None,
            # Past ten people: each hears only the loudest few.
            "selective": room.selection is not None,
            "peers": [_peer(room, p) for p in room.peers.values()],
            "host": room.hosting.host,
            "locked": room.hosting.locked,
            "lobby": [{"id": k.id, "name": k.name, "ip": k.ip, "since": k.since} for k in room.hosting.lobby.values()],
        }
        for room in rooms.rooms.values()
    ]


def _peer(room: Room, peer: Peer) -> dict[str, Any]:
    described = {**peer.info(), "ip": peer.ip, "joined_at": peer.joined_at, "candidate_type": peer.media.candidate_type}
    # Packets that carried an audio level (RFC 6464): zero for a client that does not send it.
    described["audio_levels"] = peer.media.speaker.level_packets
    if room.selection is not None:
        described["loudness"] = room.selection.loudness(peer.id)
        described["hears"] = room.selection.heard_by(peer.id)
    return described


def candidate_types(rooms: RoomManager) -> dict[str, int]:
    return dict(Counter(p.media.candidate_type for p in rooms.peers.values() if p.media.candidate_type))


def live_stats(rooms: RoomManager, media: MediaPlane) -> LiveStats:
    counters = media.counters
    return LiveStats(
        rooms=len(rooms.rooms),
        peers=len(rooms.peers),
        packets_in=counters.packets_in if counters else 0,
        packets_forwarded=counters.packets_forwarded if counters else 0,
        bytes_forwarded=counters.bytes_forwarded if counters else 0,
        packets_dropped=counters.packets_dropped if counters else 0,
        packets_rate_limited=counters.packets_rate_limited if counters else 0,
        udp_dropped=dict(media.mux.dropped),
    )


def internals(rooms: RoomManager, media: MediaPlane) -> dict[str, int]:
    """Counts that return to their baseline when everyone has left (leak checks, soak tests)."""
    gc.collect()
    ufrags, addresses = media.mux.mapping_counts()
    return {
        "peer_media_alive": media.connections_alive(),
        "ice_ufrags": ufrags,
        "ice_addresses": addresses,
        "room_tasks": rooms.task_count,
        "asyncio_tasks": len(asyncio.all_tasks()),
        # aiortc starts a decoder thread per receiving line: one per hostile m-line would show here.
        "threads": threading.active_count(),
    }
