"""Room membership under trouble: a member whose connection is gone leaves at once, a join never
fails because of another member, and a refused or failed join leaves nothing behind."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ghosttalk.client.participant import Client
from ghosttalk.config import Config
from ghosttalk.contract import CloseCode
from ghosttalk.media.peer import PeerMedia
from ghosttalk.media.plane import MediaPlane
from ghosttalk.ops.eventlog import EventLog
from ghosttalk.ops.metrics import Metrics
from ghosttalk.server.app import media_plane
from ghosttalk.server.overview import internals, live_stats
from ghosttalk.server.rooms import RoomManager
from tests.support.eventually import eventually
from tests.support.probes import admin_json, tracebacks
from tests.support.rawws import RawWebSocket
from tests.support.room import clients, negotiated
from tests.support.server import ServerProcess


async def test_a_member_whose_connection_closes_leaves_at_once_and_joins_go_on(server: ServerProcess) -> None:
    """Ann's media connection closes while her WebSocket stays open. She is out of the room well before the
    8 s heartbeat would notice, and a join meanwhile succeeds (it used to fail with InvalidStateError, 1006,
    and leave a phantom forwarding line behind in everyone else's connection)."""
    async with clients(server, "closing", ["ann", "bob"]) as (ann, bob):
        assert ann.pc is not None and ann.self_id is not None
        await ann.pc.close()  # DTLS close_notify: the server's side of the connection closes too
        # Carol joins while the server may still be noticing; with today's removal, it is immediate.
        with contextlib.suppress(TimeoutError):
            await bob.wait_for(lambda: ann.self_id not in bob.peers, 1.0)
        carol = await Client(server.url, "closing", "carol").connect()
        try:
            await bob.wait_for(lambda: ann.self_id not in bob.peers, 2.0)
            await ann.wait_for(lambda: "media connection closed" in ann.errors, 2.0)
            await negotiated([bob, carol])
            assert bob.negotiated_speakers() == {carol.self_id}
            assert carol.negotiated_speakers() == {bob.self_id}
            bob.send_rtp(b"hello carol")
            await carol.wait_for(lambda: bob.self_id in carol.speakers(), 5)
        finally:
            await carol.close()
    assert not tracebacks(server.console())


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", ["--max-peers", "2", "--max-rooms", "3"]).start()
    try:
        yield proc
    finally:
        proc.stop()


async def refused(server: ServerProcess, room: str) -> tuple[str, int | None]:
    ws = await RawWebSocket.join(server, room, "late")
    try:
        error = await ws.wait_message("error")
        await ws.wait_closed()
        return error["message"], ws.close_code
    finally:
        ws.abort()


async def test_joins_refused_as_server_full_leave_no_room_behind(small_server: ServerProcess) -> None:
    """Two people fill the server; joins to five new rooms are refused. Those rooms used to stay, empty,
    counting against --max-rooms, until no new room could be opened at all."""
    async with clients(small_server, "full", ["ann", "bob"]) as (_, bob):
        for n in range(5):
            assert await refused(small_server, f"new-{n}") == ("Server full", CloseCode.TRY_AGAIN_LATER)
        stats = admin_json(small_server, "stats")
        assert (stats["rooms"], stats["users"]) == (1, 2)
        await bob.close()
        await eventually(lambda: admin_json(small_server, "stats")["users"] == 1, 10)
        async with clients(small_server, "new-5", ["carol"]):
            assert admin_json(small_server, "stats")["rooms"] == 2


# A failure while wiring a join, in process: nothing of it may stay.


@contextlib.asynccontextmanager
async def room_manager(tmp_path: Path) -> AsyncIterator[tuple[RoomManager, MediaPlane]]:
    config = Config(rtc_udp_port=0, rtc_bind="127.0.0.1", rtc_hosts=("127.0.0.1",), data_dir=tmp_path)
    rooms: RoomManager
    metrics = Metrics(live=lambda: live_stats(rooms, media))
    media = media_plane(config, metrics)
    rooms = RoomManager(config, EventLog(config.log_file), metrics, media)
    await media.start()
    try:
        yield rooms, media
    finally:
        await rooms.close()
        media.close()


def ignore(reason: str, code: CloseCode) -> None:
    del reason, code


async def test_a_join_that_fails_halfway_is_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with room_manager(tmp_path) as (rooms, media):
        ann = rooms.join("undo", "ann", "127.0.0.1", ignore)
        bob = rooms.join("undo", "bob", "127.0.0.1", ignore)
        added: dict[str, list[str]] = {"ann": [], "bob": []}
        removed: list[str] = []
        original_add, original_remove = PeerMedia.add_speaker, PeerMedia.remove_speaker

        def add_speaker(media: PeerMedia, speaker_id: str, speaker: object) -> None:
            if media is bob.media:
                raise RuntimeError("a bug while wiring")
            if media is ann.media:
                added["ann"].append(speaker_id)
            original_add(media, speaker_id, speaker)  # type: ignore[arg-type]

        def remove_speaker(media: PeerMedia, speaker_id: str) -> None:
            removed.append(speaker_id)
            original_remove(media, speaker_id)

        monkeypatch.setattr(PeerMedia, "add_speaker", add_speaker)
        monkeypatch.setattr(PeerMedia, "remove_speaker", remove_speaker)
        with pytest.raises(RuntimeError):
            rooms.join("undo", "carol", "127.0.0.1", ignore)
        monkeypatch.undo()
        carol_id = added["ann"][0]
        assert removed == [carol_id, carol_id]  # ann's line for carol and bob's (had it been added)
        assert set(rooms.peers) == {ann.id, bob.id} and set(rooms.rooms["undo"].peers) == {ann.id, bob.id}
        assert rooms.metrics.registry.get_sample_value("ghosttalk_joins_total") == 2
        # The half-made connection is closed by a task of the room manager.
        await eventually(lambda: internals(rooms, media)["room_tasks"] == 0, 5)
        assert internals(rooms, media)["peer_media_alive"] == 2


async def test_data_channels_a_client_opens_are_closed_and_the_heartbeat_goes_on(server: ServerProcess) -> None:
    """The server has no use for a channel the client opens (each would hold an RTCDataChannel and its buffers
    on the server for as long as the client likes): it closes them at once, and the call goes on."""
    async with clients(server, "channels", ["ann", "bob"]) as (ann, bob):
        assert ann.pc is not None
        channels = [ann.pc.createDataChannel(f"junk-{n}") for n in range(20)]
        await eventually(lambda: all(channel.readyState == "closed" for channel in channels), 10)
        pings = ann.pings
        await ann.wait_for(lambda: ann.pings > pings, 12)  # the heartbeat channel still carries pings
        ann.send_rtp(b"still here")
        await bob.wait_for(lambda: ann.self_id in bob.speakers(), 5)
    assert not tracebacks(server.console())
