"""GhostTalk with Pion WebRTC 3.1 (Go), an independent stack the server was not written against.

Pion behaves as it does out of the box: it answers every re-offer with ``a=setup:active``, stops for good a
transceiver that an offer marks ``inactive``, and trickles candidates with ``sdpMid: ""``. Audio must still
flow both ways, every time. The Pion side is tests/interop/pion/main.go, built from Debian's packaged sources;
a machine without Go or those sources fails here (scripts/test.sh installs them) rather than skipping.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from ghosttalk.client.audio import FRAME_SECONDS, encode_opus, tone
from ghosttalk.client.participant import Client
from tests.interop.pionclient import PionClient, PionUnavailable, build_pion_client
from tests.support.eventually import eventually
from tests.support.server import ServerProcess

# The frame every Pion client sends (opusSilence in main.go); forwarding must deliver it byte for byte.
PION_FRAME = bytes.fromhex("f8fffe")
# One second of 20 ms packets: enough to tell a working stream from a few stray packets.
HEARD = 50
MEDIA_TIMEOUT = 10.0


@pytest.fixture(scope="session")
def pion_binary() -> Path:
    try:
        return build_pion_client()
    except PionUnavailable as exc:
        problem = str(exc)
    # Failed outside the handler, so the report is the one line that says what to install.
    pytest.fail(f"the Pion interop tests need Go and Pion's sources: {problem}", pytrace=False)


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    """What the aiortc participants send, cycled: one second of a 440 Hz tone, Opus-encoded."""
    return encode_opus(tone(440.0, 1.0))


async def until(
    predicate: Callable[[], bool],
    what: str,
    pions: list[PionClient],
    server: ServerProcess,
    timeout: float,
    detail: Callable[[], str] = lambda: "",
) -> None:
    """Wait for ``predicate``; on timeout (or if a Pion process exits) fail with ``detail()`` and what each
    side saw."""

    def report() -> str:
        sides = "\n".join(p.diagnostics() for p in pions)
        # The server's warnings and errors; its INFO lines (one per join, leave, ICE...) would drown them.
        console = [line for line in server.console().splitlines() if " INFO " not in line][-30:]
        return f"{detail()}\n{sides}\n--- server console:\n" + "\n".join(console)

    def gone() -> list[str]:
        return [p.name for p in pions if p.exited]

    await eventually(lambda: predicate() or bool(gone()), timeout, what=what, detail=report)
    if not predicate():
        pytest.fail(f"{what}: Pion client {', '.join(gone())} exited {report()}", pytrace=False)


@asynccontextmanager
async def pion(
    binary: Path, server: ServerProcess, room: str, name: str, logs: Path, send: bool = True
) -> AsyncIterator[PionClient]:
    client = await PionClient.start(binary, server.ws_url(room, name), name, logs, send)
    try:
        await until(lambda: client.self_id is not None, f"Pion {name} joins {room}", [client], server, 10.0)
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def aiortc(server: ServerProcess, room: str, name: str) -> AsyncIterator[Client]:
    client = await Client(server.url, room, name).connect()
    try:
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def speaking(client: Client, frames: list[bytes]) -> AsyncIterator[None]:
    """``client`` sends ``frames`` over and over, 50 packets a second, for the duration of the block."""

    async def send() -> None:
        start = time.monotonic()
        for index, frame in enumerate(itertools.cycle(frames)):
            await asyncio.sleep(max(0.0, start + index * FRAME_SECONDS - time.monotonic()))
            client.send_rtp(frame)

    task = asyncio.create_task(send())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def heard_by_aiortc(listener: Client, speaker: PionClient) -> int:
    return len(listener.received.get(speaker.self_id or "", []))


def heard_by_pion(listener: PionClient, speaker_id: str | None) -> int:
    return listener.received.get(speaker_id or "", 0)


def answered_an_offer_with(client: PionClient, text: str, since: int) -> bool:
    """Whether ``client`` has answered an offer containing ``text`` that arrived after event ``since``."""
    events = client.events[since:]
    for index, event in enumerate(events):
        if event.get("event") == "offer" and text in event.get("sdp", ""):
            return any(later.get("event") == "answered" for later in events[index + 1 :])
    return False


async def test_pion_and_aiortc_hear_each_other_in_three_sessions_in_a_row(
    shared_server: ServerProcess, pion_binary: Path, frames: list[bytes], tmp_path: Path
) -> None:
    # Pion joins first, so the aiortc joiner's stream reaches it by re-offer: the one Pion answers 'active'.
    for session in (1, 2, 3):
        room = f"pion-aiortc-{session}"
        async with (
            pion(pion_binary, shared_server, room, "gopher", tmp_path) as gopher,
            aiortc(shared_server, room, "python") as python,
            speaking(python, frames),
        ):
            await until(
                lambda: heard_by_pion(gopher, python.self_id) >= HEARD and heard_by_aiortc(python, gopher) >= HEARD,
                f"session {session} of 3: Pion and aiortc hear each other",
                [gopher],
                shared_server,
                MEDIA_TIMEOUT,
                lambda: f"(aiortc heard {heard_by_aiortc(python, gopher)} packets from Pion)",
            )
            assert {p.payload for p in python.received[gopher.self_id or ""]} == {PION_FRAME}
            assert gopher.first_payloads[python.self_id or ""] in frames, "Pion got the aiortc client's Opus as sent"
            # Pion's candidates (sdpMid "", sdpMLineIndex 0) included: the server took everything it sent.
            assert gopher.server_errors == []


async def test_a_pion_listener_hears_a_speaker_who_joins_after_another_left(
    shared_server: ServerProcess, pion_binary: Path, frames: list[bytes], tmp_path: Path
) -> None:
    room = "pion-slot-reuse"
    async with pion(pion_binary, shared_server, room, "ear", tmp_path, send=False) as ear:
        async with aiortc(shared_server, room, "amy") as amy, speaking(amy, frames):
            await until(
                lambda: heard_by_pion(ear, amy.self_id) >= HEARD,
                "the Pion listener hears the first speaker",
                [ear],
                shared_server,
                MEDIA_TIMEOUT,
            )
            before_leaving = len(ear.events)
        # Amy's slot is offered 'inactive' now, and Pion stops that transceiver for good.
        await until(
            lambda: answered_an_offer_with(ear, "a=inactive", since=before_leaving),
            "the Pion listener answers the offer that retires the first speaker's slot",
            [ear],
            shared_server,
            MEDIA_TIMEOUT,
        )
        # The server handles one socket's messages in order, so the reply to a later message means that
        # answer has been applied: the slot is free now, and the next speaker gets it (the case under test).
        before_mute = len(ear.events)
        await ear.mute(False)
        await until(
            lambda: any(
                e.get("event") == "peer_update" and e.get("peer") == ear.self_id for e in ear.events[before_mute:]
            ),
            "the server handles the Pion listener's answer and then its mute message",
            [ear],
            shared_server,
            MEDIA_TIMEOUT,
        )
        async with aiortc(shared_server, room, "bo") as bo, speaking(bo, frames):
            await until(
                lambda: heard_by_pion(ear, bo.self_id) >= HEARD,
                "the Pion listener hears the speaker who joined after the first one left",
                [ear],
                shared_server,
                MEDIA_TIMEOUT,
            )
        assert ear.server_errors == []


async def test_two_pion_clients_talk_to_each_other(
    shared_server: ServerProcess, pion_binary: Path, tmp_path: Path
) -> None:
    room = "pion-pair"
    async with (
        pion(pion_binary, shared_server, room, "left", tmp_path) as left,
        pion(pion_binary, shared_server, room, "right", tmp_path) as right,
    ):
        await until(
            lambda: heard_by_pion(left, right.self_id) >= HEARD and heard_by_pion(right, left.self_id) >= HEARD,
            "two Pion clients hear each other",
            [left, right],
            shared_server,
            MEDIA_TIMEOUT,
        )
        for me, other in ((left, right), (right, left)):
            assert me.first_payloads[other.self_id or ""] == PION_FRAME
            assert me.has("datachannel", lambda e: e.get("label") == "heartbeat"), "the heartbeat channel opened"
            assert me.server_errors == []
