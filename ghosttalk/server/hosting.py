"""A room's host and its lobby: who may remove people, ask them to mute, lock the room and let newcomers in,
and who is waiting to be let in.

The host is a role in one room, not an account. The first person in a room takes it; it passes to whoever
has been there longest when the host leaves, or to whomever the host hands it. A token proves the role across
the host's own reconnects: the host's page keeps it and shows it again (``claim_host``) after a dropped
connection, within HOST_RECLAIM_SECONDS of leaving.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from dataclasses import dataclass, field

from ghosttalk.contract import CloseCode

# How long a host who dropped out may take the role back with its token (a reconnect takes seconds; a
# reload or a network change a little longer).
HOST_RECLAIM_SECONDS = 30.0


def new_token() -> str:
    return secrets.token_urlsafe(16)  # 22 characters: contract.HOST_TOKEN


@dataclass(slots=True, eq=False)
class Knock:
    """Someone waiting in a locked room's lobby. ``decision`` resolves to None when they are let in, or to the
    close code that turns them away."""

    id: str  # their peer id once let in
    name: str
    ip: str
    since: float = field(default_factory=time.time)
    decision: asyncio.Future[CloseCode | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, code: CloseCode | None) -> None:
        if not self.decision.done():
            self.decision.set_result(code)


@dataclass(slots=True)
class Hosting:
    """One room's host role, its lock and its lobby (knocks in the order they came)."""

    host: str | None = None
    token: str = ""
    locked: bool = False
    lobby: dict[str, Knock] = field(default_factory=dict)
    # The token of a host who left, and when: it may still claim the role back.
    _former: tuple[str, float] | None = None

    def appoint(self, peer_id: str) -> str:
        """``peer_id`` is host now, with a fresh token (whoever held the old one holds nothing)."""
        self.host, self.token, self._former = peer_id, new_token(), None
        return self.token

    def departed(self, peer_id: str, successor: str | None) -> bool:
        """``peer_id`` left the room; if it was the host, ``successor`` (None: nobody is left) takes over while
        the leaver's token stays good for HOST_RECLAIM_SECONDS. Returns whether the host changed."""
        if peer_id != self.host:
            return False
        former = (self.token, time.monotonic())
        if successor is None:
            self.host, self.token = None, ""
        else:
            self.appoint(successor)
        self._former = former
        return True

    def claim(self, token: str, peer_id: str) -> bool:
        """``peer_id`` shows ``token``: is it the current host's (the old connection not yet noticed as gone)
        or that of a host who left moments ago? If so, ``peer_id`` is host again, with the same token."""
        current = bool(self.token) and hmac.compare_digest(token, self.token)
        former = self._former
        recent = (
            former is not None
            and time.monotonic() - former[1] <= HOST_RECLAIM_SECONDS
            and hmac.compare_digest(token, former[0])
        )
        if not (current or recent):
            return False
        self.host, self.token, self._former = peer_id, token, None
        return True

    def knock(self, knock: Knock) -> None:
        self.lobby[knock.id] = knock

    def settle(self, knock_id: str, code: CloseCode | None) -> Knock | None:
        """Let a waiting person in (None) or turn them away; None when nobody waits under that id."""
        knock = self.lobby.pop(knock_id, None)
        if knock is not None:
            knock.settle(code)
        return knock

    def settle_all(self, code: CloseCode | None) -> list[Knock]:
        knocks = list(self.lobby.values())
        self.lobby.clear()
        for knock in knocks:
            knock.settle(code)
        return knocks
