"""Forwarding lines with stacks that stop inactive transceivers.

When a speaker leaves, the server's re-offer makes that listener's line ``inactive``; Pion then stops the
transceiver for good and answers ``inactive`` whenever the line is offered again. The server must move a new
speaker given that line to a fresh one, and never reuse it; a client that refuses every line is bounded.
Stacks that keep their transceivers (ours, Chromium) still get the line back for the next speaker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aiortc.sdp import SessionDescription

from ghosttalk.client.participant import Client, ClientOptions
from ghosttalk.media.outbound import max_forwarding_lines
from tests.support.room import hears, negotiated, server_has_read_all
from tests.support.server import ServerProcess

SENDING_DIRECTION = re.compile(r"(?m)^a=(?:sendrecv|sendonly|recvonly)(?=\r?$)")


def _sections(sdp: str) -> list[str]:
    return re.split(r"(?m)^(?=m=)", sdp)


def _mid(section: str) -> str | None:
    found = re.search(r"(?m)^a=mid:(\S+)", section)
    return found.group(1) if found else None


@dataclass
class StopsInactiveLines:
    """Answers as Pion does: an audio line once answered ``inactive`` is stopped, and answered ``inactive``
    for ever after, whatever the offer says."""

    stopped: set[str] = field(default_factory=set)
    refused: int = 0

    def __call__(self, sdp: str) -> str:
        out = []
        for section in _sections(sdp):
            mid = _mid(section)
            if section.startswith("m=audio") and mid is not None:
                if "a=inactive" in section:
                    self.stopped.add(mid)
                elif mid in self.stopped:
                    section = SENDING_DIRECTION.sub("a=inactive", section)
                    self.refused += 1
            out.append(section)
        return "".join(out)


@dataclass
class RefusesEveryLine:
    """A hostile client: receives on no forwarding line the server offers."""

    refused: int = 0

    def __call__(self, sdp: str) -> str:
        sections = _sections(sdp)
        audio = [i for i, s in enumerate(sections) if s.startswith("m=audio")]
        for index in audio[1:]:  # its own voice line is the first
            if "a=inactive" not in sections[index]:
                sections[index] = SENDING_DIRECTION.sub("a=inactive", sections[index])
                self.refused += 1
        return "".join(sections)


def line_of(client: Client, speaker_id: str | None) -> str | None:
    """The mid of the line carrying ``speaker_id`` in the last offer the client received."""
    offer = [m for m in client.messages if m.get("type") == "offer"][-1]["sdp"]
    for media in SessionDescription.parse(offer).media:
        if media.kind == "audio" and media.direction == "sendonly" and media.msid.split()[0] == speaker_id:
            mid: str = media.rtp.muxId
            return mid
    return None


def audio_lines(client: Client) -> int:
    offer = [m for m in client.messages if m.get("type") == "offer"][-1]["sdp"]
    return sum(1 for media in SessionDescription.parse(offer).media if media.kind == "audio")


async def a_speaker_comes_and_goes(server: ServerProcess, room: str, listener: Client) -> str:
    """Somebody talks to ``listener`` and leaves, and the listener answers the offer that makes the line
    inactive; the mid of that line."""
    first = await Client(server.url, room, "first").connect()
    try:
        await negotiated([listener, first])
        await hears(listener, first)
        first_line = line_of(listener, first.self_id)
        assert first_line is not None
    finally:
        await first.close()
    # The server re-offers the line inactive; once the listener's answer is in, the line is in the pool.
    await listener.wait_for(lambda: first.self_id not in listener.negotiated_speakers(), 5)
    offers = sum(1 for m in listener.messages if m.get("type") == "offer")
    await listener.wait_for(lambda: listener.answers_sent >= offers, 5)
    await server_has_read_all(listener)
    return first_line


async def test_a_new_speaker_reaches_a_listener_that_stops_inactive_lines(shared_server: ServerProcess) -> None:
    room = "pion-slots"
    answers = StopsInactiveLines()
    listener = await Client(shared_server.url, room, "pion", ClientOptions(rewrite_answer=answers)).connect()
    try:
        first_line = await a_speaker_comes_and_goes(shared_server, room, listener)
        assert first_line in answers.stopped
        second = await Client(shared_server.url, room, "second").connect()
        try:
            await hears(listener, second)
            await hears(second, listener)
            assert answers.refused >= 1, "the server offered the stopped line again, and it was refused"
            second_line = line_of(listener, second.self_id)
            assert second_line is not None and second_line != first_line
            # The next speaker goes straight to a fresh line: the stopped one is never offered again.
            third = await Client(shared_server.url, room, "third").connect()
            try:
                refused = answers.refused
                await hears(listener, third)
                assert line_of(listener, third.self_id) not in answers.stopped
                assert answers.refused == refused
            finally:
                await third.close()
        finally:
            await second.close()
    finally:
        await listener.close()


async def test_a_listener_that_keeps_its_transceivers_gets_the_line_back(shared_server: ServerProcess) -> None:
    room = "reused-slots"
    listener = await Client(shared_server.url, room, "keeps").connect()
    try:
        first_line = await a_speaker_comes_and_goes(shared_server, room, listener)
        second = await Client(shared_server.url, room, "second").connect()
        try:
            await hears(listener, second)
            assert line_of(listener, second.self_id) == first_line
            assert audio_lines(listener) == 2, "its own voice and one forwarding line, reused"
        finally:
            await second.close()
    finally:
        await listener.close()


async def test_a_client_refusing_every_line_is_told_and_bounded(shared_server: ServerProcess) -> None:
    room = "refuses-all"
    answers = RefusesEveryLine()
    listener = await Client(shared_server.url, room, "refuser", ClientOptions(rewrite_answer=answers)).connect()
    other = await Client(shared_server.url, room, "other").connect()
    try:
        cap = max_forwarding_lines(9)  # the shared server's --max-room-peers is 10: nine lines at once
        await listener.wait_for(lambda: listener.closed_reason is not None, 15)
        assert any(f"used all its {cap} forwarding lines" in error for error in listener.errors), listener.errors
        assert audio_lines(listener) <= cap + 1
        assert answers.refused == cap
        # The room goes on for the others.
        late = await Client(shared_server.url, room, "late").connect()
        try:
            await hears(other, late)
            await hears(late, other)
        finally:
            await late.close()
    finally:
        await other.close()
        await listener.close()
