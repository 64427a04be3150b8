"""Restarts: SIGTERM tells everyone, closes cleanly and exits 0 within 5 s; clients that
rejoin by themselves are back in the room, hearing each other, within 10 s of the server coming back.
A frozen client, which answers nothing, must not hold the exit up."""

from __future__ import annotations

import asyncio
import json
import signal
import time

from ghosttalk.client.participant import ClientOptions
from tests.support.calls import TalkingCall
from tests.support.eventually import eventually
from tests.support.probes import tracebacks
from tests.support.rawpeer import RawPeer
from tests.support.rawws import RawWebSocket
from tests.support.server import ServerProcess

SHUTDOWN_MESSAGE = "server shutting down"


async def test_sigterm_tells_everyone_then_clients_rejoin_after_restart(server: ServerProcess) -> None:
    names = ["ann", "ben", "cat"]
    call = await TalkingCall.join(server.url, "restart", names, [ClientOptions(keep_packets=False, rejoin=True)] * 3)
    watcher = await RawWebSocket.join(server, "restart", "watch")
    # A client whose process froze: it will answer neither our close frame nor anything else.
    frozen = await RawPeer.join(server, "restart", "frozen")
    try:
        await watcher.wait_message("room_state")
        await frozen.connected()
        call.start()
        await eventually(
            lambda: min(call.delivered(0, 1), call.delivered(1, 2), call.delivered(2, 0)), 10,
            what="the call talking before the restart", until=lambda n: n >= 10,
        )
        before = [call.delivered(0, 1), call.delivered(1, 2), call.delivered(2, 0)]
        assert min(before) > 0
        frozen.freeze()

        start = time.monotonic()
        code = await asyncio.to_thread(server.stop, signal.SIGTERM)
        took = time.monotonic() - start
        assert code == 0, server.console()[-3000:]
        assert took < 5.0, f"exit took {took:.1f} s"

        # Everyone was told, then the socket was closed (the raw socket shows the exact sequence; the others
        # leaving at the same moment may still be announced between the two).
        assert watcher.closed
        told = watcher.messages.index({"type": "error", "message": SHUTDOWN_MESSAGE})
        assert {m["type"] for m in watcher.messages[told + 1 :]} <= {"peer_leave"}, watcher.messages[told:]
        assert (watcher.close_code, watcher.close_reason) == (1001, SHUTDOWN_MESSAGE)
        for member in call.members:
            assert SHUTDOWN_MESSAGE in member.errors, member.errors
        console = server.console()
        assert not tracebacks(console), "\n\n".join(tracebacks(console))
        # The event log was flushed: every departure is on disk.
        logged = [json.loads(line) for line in server.data_dir.joinpath("server.log").read_text().splitlines()]
        leaves = [e for e in logged if e["event"] == "USER_LEAVE" and e["details"]["reason"] == SHUTDOWN_MESSAGE]
        assert len(leaves) == 5, leaves

        old_ids = {m.self_id for m in call.members}
        await asyncio.to_thread(server.start)
        restarted = time.monotonic()

        def back() -> bool:
            ids = {m.self_id for m in call.members}
            return all(
                m.rejoins >= 1 and m.self_id not in old_ids and ids <= set(m.peers)
                and ids - {m.self_id} <= m.negotiated_speakers()
                for m in call.members
            )

        await eventually(back, 10.0)
        heard = [call.delivered(0, 1), call.delivered(1, 2), call.delivered(2, 0)]
        await eventually(
            lambda: all(call.delivered(s, r) > heard_then + 10 for (s, r), heard_then in
                        zip([(0, 1), (1, 2), (2, 0)], heard, strict=True)),
            10.0 - (time.monotonic() - restarted),
        )
        print(f"\nrestart: exit after SIGTERM {took:.2f} s; all three back and heard "
              f"{time.monotonic() - restarted:.1f} s after the restart")
    finally:
        watcher.abort()
        await frozen.kill()
        await call.close()
