"""Shared helpers for integration tests: clients in a room, waiting, and looking inside the server process."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from ghosttalk.client.participant import Client, ClientOptions
from tests.serverproc import ServerProcess


@asynccontextmanager
async def clients(server: ServerProcess, room: str, names: list[str], **options: object) -> AsyncIterator[list[Client]]:
    """Join ``names`` one after another (as people do) and close them all at the end."""
    joined: list[Client] = []
    try:
        for name in names:
            joined.append(await Client(server.url, room, name, ClientOptions(**options)).connect())  # type: ignore[arg-type]
        await negotiated(joined)
        yield joined
    finally:
        await asyncio.gather(*(c.close() for c in joined), return_exceptions=True)


async def negotiated(members: list[Client], timeout: float = 10.0) -> None:
    """Every member has answered an offer carrying every other member's stream, and the server has had a
    moment to apply the answers (after which packets sent are forwarded)."""
    for client in members:
        others = {m.self_id for m in members if m is not client}
        await client.wait_for(lambda c=client, o=others: o <= c.negotiated_speakers(), timeout)
    await asyncio.sleep(0.2)


def admin_json(server: ServerProcess, action: str) -> dict[str, object]:
    url = f"{server.url}/admin?action={action}"
    request = urllib.request.Request(url, headers={"X-Admin-Key": server.admin_key})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def udp_sockets(pid: int) -> int:
    """How many UDP sockets process ``pid`` holds (IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    udp = set()
    for table in ("udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if path.exists():
            for line in path.read_text().splitlines()[1:]:
                udp.add(line.split()[9])
    return len(inodes & udp)
