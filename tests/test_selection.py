"""The loudest-N selection of a big room, tick by tick on a fake clock: who gets the lines, hysteresis, silence,
departures, and what the pages are told."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from ghosttalk.media.forwarder import EgressSink, ForwardingCounters, OutboundStream, Speaker, StreamPosition
from ghosttalk.media.rtp import build_rtp, parse_rtp
from ghosttalk.media.selection import (
    LEVELS_SECONDS,
    SILENCE_HOLD_SECONDS,
    SWITCH_AFTER_SECONDS,
    TICK_SECONDS,
    RoomSelection,
    lines_heard_at_once,
    selects_loudest,
)

FORWARDED = 3


@dataclass
class Person:
    id: str
    speaker: Speaker
    lines: dict[int, Speaker | None] = field(default_factory=dict)
    switches: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)

    def route(self, line: int, speaker: Speaker | None) -> None:
        self.lines[line] = speaker
        self.switches += 1

    def talk(self, level: int, packets: int = 3) -> None:
        """What the forwarder's per-packet totals become after ``packets`` packets at ``level`` (-dBov)."""
        self.speaker.level_sum += level * packets
        self.speaker.level_packets += packets

    def levels(self) -> dict[str, int]:
        told: dict[str, int] = {}
        for message in self.sent:
            if message["type"] == "levels":
                told.update(message["levels"])
        return told


class Room:
    def __init__(self, selection: RoomSelection) -> None:
        self.selection = selection
        self.people: dict[str, Person] = {}
        self.now = 0.0

    def join(self, peer_id: str) -> Person:
        person = Person(peer_id, Speaker(ForwardingCounters()))
        self.people[peer_id] = person
        self.selection.add(peer_id, person.speaker, person.route, person.sent.append)
        return person

    def tick(self, levels: dict[str, int | None]) -> None:
        """One tick: each person named speaks at their level (None: sends nothing), then the selection ranks."""
        self.now += TICK_SECONDS
        for peer_id, level in levels.items():
            if level is not None:
                self.people[peer_id].talk(level)
        self.selection.rank()

    def heard(self, peer_id: str) -> set[str | None]:
        return set(self.selection.heard_by(peer_id))


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    # The timer is never left to fire: each test ticks by hand (the fixture's loop would, but nothing awaits).
    holder: list[Room] = []
    selection = RoomSelection(FORWARDED, clock=lambda: holder[0].now)
    holder.append(Room(selection))
    yield holder[0]
    selection.close()


def everyone(room: Room, level: int, **levels: int | None) -> dict[str, int | None]:
    return {peer_id: levels.get(peer_id, level) for peer_id in room.people}


def test_only_rooms_past_ten_select_and_lines_scale_with_n() -> None:
    assert not selects_loudest(10, 3) and selects_loudest(11, 3) and not selects_loudest(100, 0)
    assert lines_heard_at_once(10, 3) == 9
    assert lines_heard_at_once(100, 3) == 9  # a room of ten before it crossed: nine lines at once
    assert lines_heard_at_once(100, 0) == 99


async def test_each_listener_gets_the_n_loudest_but_themself(room: Room) -> None:
    for name in "abcdefg":
        room.join(name)
    for _ in range(5):
        room.tick(everyone(room, 70, a=20, b=25, c=30, d=35))
    assert room.heard("g") == {"a", "b", "c"}
    assert room.heard("a") == {"b", "c", "d"}
    assert room.heard("d") == {"a", "b", "c"}
    forwarding = [m for m in room.people["g"].sent if m["type"] == "forwarding"][-1]
    assert set(forwarding["lines"].values()) == {"a", "b", "c"} and len(forwarding["lines"]) == FORWARDED


async def test_two_equal_voices_do_not_take_turns(room: Room) -> None:
    for name in "abcdeg":
        room.join(name)
    for _ in range(3):
        room.tick(everyone(room, 70, a=20, b=20, c=40, d=40))
    settled = room.people["g"].switches
    # c and d are equal but for a 2 dB wobble that keeps changing sides: neither may take the other's line.
    for tick in range(200):
        wobble = 2 if tick % 2 else -2
        room.tick(everyone(room, 70, a=20, b=20, c=40 + wobble, d=40 - wobble))
    assert room.people["g"].switches == settled


async def test_a_clearly_louder_voice_takes_a_line_at_once(room: Room) -> None:
    for name in "abcdeg":
        room.join(name)
    for _ in range(10):
        room.tick(everyone(room, 70, a=20, b=20, c=40))
    assert "e" not in room.heard("g")
    ticks = 0
    while "e" not in room.heard("g"):
        room.tick(everyone(room, 70, a=20, b=20, c=40, e=10))
        ticks += 1
    assert ticks <= 2
    assert room.heard("g") == {"a", "b", "e"}  # the quietest one heard made way


async def test_a_slightly_louder_voice_takes_a_line_only_after_a_while(room: Room) -> None:
    for name in "abcdeg":
        room.join(name)
    for _ in range(10):
        room.tick(everyone(room, 70, a=20, b=20, c=40))
    started = room.now
    while "e" not in room.heard("g"):
        room.tick(everyone(room, 70, a=20, b=20, c=40, e=37))  # 3 dB: under the margin
        assert room.now - started < SWITCH_AFTER_SECONDS + 5 * TICK_SECONDS, "never switched"
    assert room.now - started >= SWITCH_AFTER_SECONDS


async def test_a_speaker_who_falls_silent_gives_up_the_line(room: Room) -> None:
    for name in "abcdeg":
        room.join(name)
    for _ in range(10):
        room.tick(everyone(room, 70, a=20, b=20, c=30, d=50))
    assert room.heard("g") == {"a", "b", "c"}
    # c stops sending (DTX, muted): after the hold it counts as silence, and d, who talks on, is louder.
    stopped = room.now
    while "d" not in room.heard("g"):
        room.tick(everyone(room, 70, a=20, b=20, c=None, d=50))
        assert room.now - stopped < 2.0, "the silent speaker kept the line"
    assert room.now - stopped > SILENCE_HOLD_SECONDS


async def test_a_departure_frees_the_line_at_once(room: Room) -> None:
    for name in "abcdeg":
        room.join(name)
    for _ in range(5):
        room.tick(everyone(room, 70, a=20, b=25, c=30, d=40))
    room.selection.remove("b")
    assert room.heard("g") == {"a", "c", "d"}
    assert room.people["g"].lines[1] is not None


async def test_pages_are_told_the_levels_of_those_they_do_not_hear_when_they_change(room: Room) -> None:
    for name in "abcdeg":
        room.join(name)
    for _ in range(int(LEVELS_SECONDS / TICK_SECONDS) + 2):
        room.tick(everyone(room, 127, a=20, b=20, c=20, d=50))
    told = room.people["g"].levels()
    # d is not heard and talks: its level is told; e is silent (the page's default) and a-c are heard.
    assert set(told) == {"d"} and 44 <= told["d"] <= 56
    messages = len(room.people["g"].sent)
    for _ in range(20):
        room.tick(everyone(room, 127, a=20, b=20, c=20, d=50))
    assert len(room.people["g"].sent) == messages  # nothing changed: nothing sent
    assert "d" not in room.people["d"].levels()  # nobody is told their own level


class Collected:
    """Stands in for an EgressSink: keeps the packets a stream writes."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def put(self, packet: bytes) -> None:
        self.packets.append(packet)


def test_a_line_moved_back_to_an_earlier_speaker_continues_its_numbering() -> None:
    sink = Collected()
    stream = OutboundStream(0x1234, 111, cast(EgressSink, sink), StreamPosition(100, 0, 0.0))
    a = [parse_rtp(build_rtp(0, 111, 5000 + i, 960 * i, 0xA, b"a")) for i in range(60)]
    b = [parse_rtp(build_rtp(0, 111, 20 + i, 960 * i, 0xB, b"b")) for i in range(20)]
    now = 1.0
    # A, then B, back to A; then nobody for a while (A talks on, heard by others), then A again.
    for packet in [*a[:10], None, *b[:10], None, *a[20:30], None, None, *a[50:60]]:
        if packet is None:
            stream.new_source()  # what OutboundSlots.route does on each move
            continue
        now += 0.02
        stream.forward(packet, now)
    numbers = [int.from_bytes(packet[2:4], "big") for packet in sink.packets]
    assert numbers == list(range(101, 141))
