"""The names of everything the cluster keeps in Redis, in one place: every key and channel starts with
``ghosttalk:`` so that a Redis shared with other software shows at a glance what is ours."""

from __future__ import annotations

NODES = "ghosttalk:nodes"  # SET of the node ids that registered (the dead are reaped from it)
NODE_PREFIX = "ghosttalk:node:"  # + id: HASH of a node's registration, with a TTL
ROOMS = "ghosttalk:rooms"  # HASH room id -> the node it lives on
BANS = "ghosttalk:bans"  # SET of ban entries ("203.0.113.7", "2001:db8::/32")
# Entries unbanned on purpose: a node that was away during the unban must not bring them back from its file.
UNBANNED = "ghosttalk:unbanned"
EVENTS = "ghosttalk:events"  # LIST of recent events from every node, newest first

BANS_CHANGED = "ghosttalk:bans-changed"  # channel: the ban list changed, reload it


def node(node_id: str) -> str:
    return NODE_PREFIX + node_id


def node_rooms(node_id: str) -> str:
    """SET of the rooms placed on a node, so that its rooms can be released when it dies."""
    return f"{NODE_PREFIX}{node_id}:rooms"


def inbox(node_id: str) -> str:
    """The channel a node listens on: signaling for its rooms, replies, calls from the admin panel."""
    return f"ghosttalk:to:{node_id}"
