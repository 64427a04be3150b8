"""Joining while the load runs: what a person waits from pressing Join until every speaker is heard.

Each timed join starts its clock as the WebSocket opens and stops it at the first packet from the last of
the room's speakers; on the way it notes every step of the join (``JoinTimes``) so that the slow one shows.
Only the signaling contract is used, so any server that speaks it can be measured (``--url``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np

from ghosttalk.benchmark.workers import PROBE
from ghosttalk.client.jointimes import JoinTimes
from ghosttalk.client.participant import Client, ClientOptions, JoinError, ReceivedPacket

# A join that has not heard everyone by then counts as failed (and is left out of the percentiles).
JOIN_TIMEOUT = 10.0
# Between two late joiners: the renegotiations one join and leave set off in its room are over before the
# next is timed, so that each measures a join under the load, not the tail of the last one (the burst
# measures joins that overlap).
LATE_JOIN_GAP = 0.5


@dataclasses.dataclass(slots=True, frozen=True)
class JoinSteps:
    """Milliseconds from the WebSocket opening to each step of a join (None: it did not happen). Of one join
    (``JoinSample``), or the medians of several (``JoinFigures``)."""

    welcome: float | None
    offer_sent: float | None
    answer: float | None
    ice_connected: float | None
    dtls_connected: float | None
    server_offer: float | None
    server_offer_answered: float | None


@dataclasses.dataclass(slots=True, frozen=True)
class JoinSample:
    """One join: its room, its steps, and when it heard everyone (None: it never did)."""

    room: str
    steps: JoinSteps
    heard_all: float | None
    # Offers the server sent before the last speaker was heard (0: one round trip sufficed).
    server_offers: int
    # time.monotonic() of the WebSocket opening, to put the joins of a burst on one time line.
    started: float
    # The cluster node whose port took its WebSocket (None: not known).
    node: str | None = None


# A client's local TCP port -> the node that took that connection, or None (ghosttalk.benchmark.cluster.Landing).
Locate = Callable[[int], str | None]


def _since(start: float, moment: float | None) -> float | None:
    return None if moment is None else (moment - start) * 1000


async def time_join(
    url: str, room: str, name: str, speakers: set[int], secret: str | None, timeout: float = JOIN_TIMEOUT,
    locate: Locate | None = None,
) -> JoinSample:
    """Join ``room`` while ``speakers`` (client ids in the probe payload) talk, until it has heard each of
    them (or, when room_state gives fewer receive lines, as many as that), then leave. ``locate``: find out,
    once the clock has stopped, which node took the WebSocket."""
    node: str | None = None
    heard: set[int] = set()
    heard_all: float | None = None
    offers_then = 0
    everyone = asyncio.Event()
    client = Client(url, room, name, ClientOptions(keep_packets=False, secret=secret))

    def on_packet(speaker_id: str, packet: ReceivedPacket) -> None:
        nonlocal heard_all, offers_then
        if heard_all is not None:
            return
        heard.add(PROBE.unpack_from(packet.payload)[0])
        # In a room that forwards only the loudest, everyone it will hear: as many as it has lines.
        lines = client.receive_lines
        if len(heard & speakers) >= (len(speakers) if lines is None else min(len(speakers), lines)):
            heard_all, offers_then = time.monotonic(), client.join_times.server_offers
            everyone.set()

    client.on_packet = on_packet
    deadline = time.monotonic() + timeout
    try:
        await client.connect(timeout=timeout)
        if not speakers:
            heard_all = time.monotonic()
        else:
            await asyncio.wait_for(everyone.wait(), max(deadline - time.monotonic(), 0.0))
    except (JoinError, TimeoutError, OSError):
        pass  # counted as a join that did not hear everyone
    finally:
        # The socket is still open: its server end is still somebody's. (Our own client's socket.)
        ws = client._ws
        if locate is not None and ws is not None and not ws.closed:
            sockname = ws.get_extra_info("sockname")
            node = locate(int(sockname[1])) if sockname else None
        await client.close()
    times: JoinTimes = client.join_times
    start = times.ws_open
    steps = JoinSteps(
        welcome=_since(start, times.welcome),
        offer_sent=_since(start, times.offer_sent),
        answer=_since(start, times.answer),
        ice_connected=_since(start, times.ice_connected),
        dtls_connected=_since(start, times.dtls_connected),
        server_offer=_since(start, times.server_offer),
        server_offer_answered=_since(start, times.server_offer_answered),
    )
    return JoinSample(
        room=room,
        steps=steps,
        heard_all=_since(start, heard_all),
        server_offers=offers_then if heard_all is not None else times.server_offers,
        started=start,
        node=node,
    )


async def late_joiners(
    url: str, rooms: Sequence[tuple[str, set[int]]], count: int, secret: str | None, locate: Locate | None = None
) -> list[JoinSample]:
    """``count`` joins one after another (LATE_JOIN_GAP apart), each into the next room (room, its speakers)
    in turn."""
    samples = []
    for index in range(count):
        if index:
            await asyncio.sleep(LATE_JOIN_GAP)
        room, speakers = rooms[index % len(rooms)]
        samples.append(await time_join(url, room, f"late{index}", speakers, secret, locate=locate))
    return samples


async def join_burst(
    url: str, rooms: Sequence[tuple[str, set[int]]], count: int, secret: str | None
) -> list[JoinSample]:
    """``count`` people join within one second (evenly spread), each into the next room in turn; all stay
    until the last has heard everyone or given up."""
    loop = asyncio.get_running_loop()
    begin = loop.time()

    async def one(index: int) -> JoinSample:
        await asyncio.sleep(max(begin + index / count - loop.time(), 0.0))
        room, speakers = rooms[index % len(rooms)]
        return await time_join(url, room, f"burst{index}", speakers, secret)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


@dataclasses.dataclass(slots=True, frozen=True)
class JoinFigures:
    """What the report says of a set of joins (all milliseconds; None where no join got that far)."""

    heard_all: int
    p50: float | None
    p99: float | None
    # Each step's median over the joins that reached it.
    steps: JoinSteps
    server_offers: float | None
    # First WebSocket opening to the last join hearing everyone (None unless every join did).
    all_heard: float | None


def _percentile(values: Sequence[float | None], q: float) -> float | None:
    present = [v for v in values if v is not None]
    return round(float(np.percentile(present, q)), 1) if present else None


def figures(samples: Sequence[JoinSample]) -> JoinFigures:
    """Percentiles of the whole join over the joins that heard everyone; each step is the median over the
    joins that reached it, in milliseconds from the WebSocket opening."""
    done = [s for s in samples if s.heard_all is not None]
    all_heard = None
    if samples and len(done) == len(samples):
        first = min(s.started for s in samples)
        last = max(s.started + (s.heard_all or 0.0) / 1000 for s in samples)
        all_heard = round((last - first) * 1000, 1)
    offers = [float(s.server_offers) for s in done]
    return JoinFigures(
        heard_all=len(done),
        p50=_percentile([s.heard_all for s in done], 50),
        p99=_percentile([s.heard_all for s in done], 99),
        steps=JoinSteps(
            *(_percentile([getattr(s.steps, step.name) for s in samples], 50) for step in dataclasses.fields(JoinSteps))
        ),
        server_offers=None if not offers else round(float(np.median(offers)), 1),
        all_heard=all_heard,
    )
