"""Who hears whom in a big room: each listener gets the N loudest speakers but themself.

Rooms of up to FORWARD_ALL_UP_TO people forward everyone to everyone (one line per speaker). In a larger
room each listener has N forwarding lines, and a :class:`RoomSelection` decides, on a timer rather than per
packet, which speaker each line carries. The level is the one each speaker's client writes into its packets
(RFC 6464, read by :class:`~ghosttalk.media.forwarder.Speaker` as running totals): per tick, the mean level of
the packets since the last tick, smoothed; no level-bearing packet for SILENCE_HOLD_SECONDS (DTX, muted,
gone) counts as silence. A speaker who is not heard takes the line of the quietest one who is only when
clearly louder (SWITCH_MARGIN_DB) or louder for SWITCH_AFTER_SECONDS, so that two equal voices do not take
turns. A switch moves the line's :class:`~ghosttalk.media.forwarder.OutboundStream` to the other speaker,
which continues its sequence numbers and timestamps: the listener sees one stream without a gap.

The listener's page is told by signaling which speaker each line carries (``forwarding``, with the tick
after a change) and, for the speakers it does not hear, their levels (``levels``: changed ones only, at most
every LEVELS_SECONDS), so that it can still show who is speaking.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ghosttalk.config import FORWARD_ALL_UP_TO
from ghosttalk.contract import LINE_PREFIX, Forwarding, Levels, wire
from ghosttalk.media.forwarder import Speaker
from ghosttalk.media.rtp import SILENT_LEVEL

TICK_SECONDS = 0.06
SILENCE_HOLD_SECONDS = 0.2
# Weight of the newest tick's mean in the smoothed loudness: quick to rise (a voice that starts is heard
# within a few ticks), slower to fall (a pause between words does not cost the line).
ATTACK = 0.8
RELEASE = 0.3
SWITCH_MARGIN_DB = 6.0
SWITCH_AFTER_SECONDS = 0.6
LEVELS_SECONDS = 0.25
# Levels go to pages in steps of this many dB: finer changes are not worth a message.
LEVEL_STEP_DB = 6


def line_label(index: int) -> str:
    return f"{LINE_PREFIX}{index}"


def selects_loudest(room_size: int, forwarded: int) -> bool:
    """Whether a room of ``room_size`` people forwards only the ``forwarded`` loudest (0: never)."""
    return forwarded > 0 and room_size > FORWARD_ALL_UP_TO


def lines_heard_at_once(max_room_peers: int, forwarded: int) -> int:
    """The most forwarding lines one connection carries at a time under these settings."""
    if not selects_loudest(max_room_peers, forwarded):
        return max_room_peers - 1
    return max(FORWARD_ALL_UP_TO - 1, forwarded)


@dataclass(slots=True, eq=False)
class Voice:
    """One speaker's loudness as the selection sees it: dB above silence (0 silent, 127 loudest)."""

    speaker: Speaker
    level_sum: int
    level_packets: int
    heard_at: float
    loudness: float = 0.0

    def update(self, now: float) -> None:
        speaker = self.speaker
        packets = speaker.level_packets - self.level_packets
        if packets:
            mean = (speaker.level_sum - self.level_sum) / packets
            sample = SILENT_LEVEL - mean
            self.heard_at = now
        elif now - self.heard_at > SILENCE_HOLD_SECONDS:
            sample = 0.0
        else:
            sample = self.loudness
        self.level_sum, self.level_packets = speaker.level_sum, speaker.level_packets
        self.loudness += (sample - self.loudness) * (ATTACK if sample > self.loudness else RELEASE)

    @property
    def level(self) -> int:
        """The smoothed level in -dBov, in LEVEL_STEP_DB steps (what pages are sent)."""
        # Steps of loudness, so that silence stays exactly SILENT_LEVEL.
        return SILENT_LEVEL - min(SILENT_LEVEL, round(self.loudness / LEVEL_STEP_DB) * LEVEL_STEP_DB)


# Makes line ``index`` of a listener carry a speaker, or nobody (None).
Route = Callable[[int, Speaker | None], None]


@dataclass(slots=True, eq=False)
class Listener:
    lines: list[str | None]
    route: Route
    send: Callable[[dict[str, Any]], None]
    # A speaker louder than the quietest one heard, and since when (the time rule of the hysteresis).
    challenger: str | None = None
    since: float = 0.0
    # Speakers whose level the page has not been told since it last heard them (or since it arrived).
    untold: set[str] = field(default_factory=set)
    # Its lines changed since the page was last told (``forwarding`` goes out with the next tick).
    moved: bool = False


class RoomSelection:
    """The N loudest for every listener of one big room, re-ranked every TICK_SECONDS."""

    def __init__(self, forwarded: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.forwarded = forwarded
        self._clock = clock
        self._voices: dict[str, Voice] = {}
        self._listeners: dict[str, Listener] = {}
        # The levels pages were last told, room-wide (each page's own view differs only by ``untold``).
        self._levels: dict[str, int] = {}
        self._levels_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, peer_id: str, speaker: Speaker, route: Route, send: Callable[[dict[str, Any]], None]) -> None:
        """``peer_id`` speaks and listens from now on. Its lines carry the loudest at once, so that its first
        answer already has them; its page is told with the next tick (after the join's own messages)."""
        now = self._clock()
        self._voices[peer_id] = Voice(speaker, speaker.level_sum, speaker.level_packets, now)
        listener = Listener([None] * self.forwarded, route, send, untold=set(self._voices))
        self._listeners[peer_id] = listener
        self._choose(peer_id, listener, self._head(), now)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)

    def remove(self, peer_id: str) -> None:
        """``peer_id`` has left: the lines that carried them are refilled at once (pages are told with the next
        tick)."""
        self._voices.pop(peer_id, None)
        self._listeners.pop(peer_id, None)
        self._levels.pop(peer_id, None)
        head = self._head()
        now = self._clock()
        for listener_id, listener in self._listeners.items():
            listener.untold.discard(peer_id)
            if peer_id in listener.lines:
                index = listener.lines.index(peer_id)
                listener.lines[index] = None
                listener.route(index, None)
                listener.moved = True
                self._choose(listener_id, listener, head, now)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._voices.clear()
        self._listeners.clear()

    def heard_by(self, listener_id: str) -> list[str | None]:
        listener = self._listeners.get(listener_id)
        return list(listener.lines) if listener is not None else []

    def loudness(self, peer_id: str) -> float | None:
        voice = self._voices.get(peer_id)
        return voice.loudness if voice is not None else None

    def _head(self) -> list[str]:
        """The loudest first, as many as any listener may need to look at: its own lines, itself, and one
        more for each line (to fill it) and for the challenger."""
        voices = self._voices
        ranking = sorted(voices, key=lambda peer_id: voices[peer_id].loudness, reverse=True)
        return ranking[: 2 * self.forwarded + 2]

    def _tick(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)
        self.rank()

    def rank(self) -> None:
        """Read the levels since the last call and reconsider every listener's lines (the timer's work)."""
        now = self._clock()
        for voice in self._voices.values():
            voice.update(now)
        head = self._head()
        for listener_id, listener in self._listeners.items():
            self._choose(listener_id, listener, head, now)
            if listener.moved:
                listener.moved = False
                lines = listener.lines
                listener.send(wire(Forwarding({line_label(i): peer for i, peer in enumerate(lines)})))
        if now - self._levels_at >= LEVELS_SECONDS:
            self._levels_at = now
            self._send_levels()

    def _choose(self, listener_id: str, listener: Listener, head: list[str], now: float) -> None:
        lines = listener.lines
        waiting = [peer_id for peer_id in head if peer_id != listener_id and peer_id not in lines]
        # Empty lines take the loudest of those not heard, whatever their level: nobody waits for a free line.
        while waiting and None in lines:
            self._switch(listener, lines.index(None), waiting.pop(0))
        if waiting and lines:
            challenger = waiting[0]
            index = min(range(len(lines)), key=lambda i: self._loudness(lines[i]))
            louder = self._loudness(challenger) - self._loudness(lines[index])
            if louder <= 0:
                listener.challenger = None
            elif listener.challenger != challenger:
                listener.challenger, listener.since = challenger, now
            if louder > SWITCH_MARGIN_DB or (louder > 0 and now - listener.since >= SWITCH_AFTER_SECONDS):
                dropped = lines[index]
                self._switch(listener, index, challenger)
                if dropped is not None:
                    listener.untold.add(dropped)
                listener.challenger = None

    def _loudness(self, peer_id: str | None) -> float:
        voice = self._voices.get(peer_id) if peer_id is not None else None
        return voice.loudness if voice is not None else -1.0

    def _switch(self, listener: Listener, index: int, peer_id: str) -> None:
        listener.lines[index] = peer_id
        listener.moved = True
        listener.untold.discard(peer_id)
        listener.route(index, self._voices[peer_id].speaker)

    def _send_levels(self) -> None:
        """Levels that changed since the last round, to every page that does not hear the speaker (and, to a
        page that stopped hearing one or just arrived, the level of each such speaker who is not silent)."""
        levels = {peer_id: voice.level for peer_id, voice in self._voices.items()}
        changed = {peer_id for peer_id, level in levels.items() if self._levels.get(peer_id, SILENT_LEVEL) != level}
        self._levels = levels
        for listener_id, listener in self._listeners.items():
            untold = {peer_id for peer_id in listener.untold if levels.get(peer_id, SILENT_LEVEL) != SILENT_LEVEL}
            listener.untold.clear()
            told = {
                peer_id: levels[peer_id]
                for peer_id in changed | untold
                if peer_id != listener_id and peer_id not in listener.lines
            }
            if told:
                listener.send(wire(Levels(told)))
