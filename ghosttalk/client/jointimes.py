"""The steps of a headless client's join, timed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class JoinTimes:
    """``time.monotonic()`` at each step of the last join, None until it happens: what the benchmark splits
    "join -> hears everyone" into."""

    ws_open: float = 0.0  # before the WebSocket connects: where a person's wait starts
    welcome: float | None = None  # room_state
    offer_sent: float | None = None
    answer: float | None = None  # the server's answer to our first offer, applied
    ice_connected: float | None = None
    dtls_connected: float | None = None  # connectionState "connected": SRTP keys in hand
    server_offer: float | None = None  # the server's first offer (a re-offer), received
    server_offer_answered: float | None = None
    server_offers: int = 0
