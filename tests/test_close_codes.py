"""The contract's close codes as the headless client acts on them: a client that rejoins by itself stays
away after a close that means so (here a kick, 4001), as the page does. Its rejoining after 1001 and 4002
is proven in test_restart.py and test_faults.py."""

from __future__ import annotations

import asyncio

import aiohttp

from ghosttalk.client.participant import REJOIN_FIRST_DELAY
from ghosttalk.contract import CloseCode
from tests.support.adminapi import admin, logged
from tests.support.eventually import eventually
from tests.support.room import clients
from tests.support.server import ServerProcess


async def test_a_kicked_client_does_not_rejoin_by_itself(server: ServerProcess) -> None:
    room = clients(server, "kick-stays", ["ann", "bob"], rejoin=True)
    async with room as (ann, bob), aiohttp.ClientSession() as http:
        kicked = ann.self_id
        status, _ = await admin(http, server, "POST", action="kick", peer=kicked or "")
        assert status == 200
        await eventually(lambda: ann.close_code is not None and kicked not in bob.peers, 5, what="ann gone")
        assert ann.close_code == CloseCode.KICKED
        # Proving an absence takes a wait: four times the first rejoin delay, by which a rejoin would have
        # reached the server (it did before the client read close codes).
        await asyncio.sleep(REJOIN_FIRST_DELAY * 4)
        assert [e["details"]["name"] for e in logged(server, "USER_JOIN")].count("ann") == 1
        assert ann.rejoins == 0 and set(bob.peers) == {bob.self_id}
