"""A cluster of GhostTalk nodes on one Redis (``--redis-url``): a node registry with load figures, a room
directory that places each room on one node, a message bus that bridges signaling between nodes, and the ban
list and recent events every node shares. docs/DESIGN.md "The cluster" describes how the parts fit.

This module itself loads nothing of Redis: a server on its own never imports redis-py.
"""

from __future__ import annotations


class ClusterUnavailable(Exception):
    """A join needs the cluster and cannot have it now; the message tells the person to try again."""


class CallFailed(Exception):
    """A call to another node got no answer in time (the node is gone, slow, or Redis is unreachable)."""
