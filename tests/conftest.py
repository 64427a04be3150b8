from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.redis import INSTALL_HINT, RedisServer, redis_server_binary
from tests.support.server import ServerProcess

# Files that load the machine on purpose (floods, fuzzing, soak, benchmarks): they run one after another with the
# browser tests, never beside them, so that a flood cannot starve a page's audio or heartbeat into a failure.
MACHINE_LOADERS = frozenset({
    "test_abuse.py", "test_packet_rate.py", "test_hostile_udp.py", "test_fuzz.py", "test_soak.py", "test_bench.py",
    "test_slow_receiver.py",
})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for ``pytest -n 2 --dist loadgroup`` (scripts/test.sh): each file's tests stay in one process, with
    its module's fixtures; the browser tests and the MACHINE_LOADERS all go to one process, one after another,
    while the other process runs the rest."""
    for item in items:
        parts = item.path.relative_to(Path(__file__).parent).parts
        exclusive = parts[0] == "browser" or parts[-1] in MACHINE_LOADERS
        item.add_marker(pytest.mark.xdist_group("exclusive" if exclusive else "/".join(parts)))


# Every test client comes from 127.0.0.1: per-address limits are raised so that only the room size binds.
RELAXED_LIMITS = ["--max-conns-per-ip", "1000", "--join-rate", "100000", "--join-burst", "10000"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh server for one test."""
    proc = ServerProcess(tmp_path / "data").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for a whole test module; tests use distinct room names. All clients come from 127.0.0.1,
    so the per-address connection limit is raised above the room size."""
    proc = ServerProcess(tmp_path_factory.mktemp("data"), RELAXED_LIMITS).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for one test (its own port and directory, no persistence). A missing binary
    fails the test rather than skipping it: the cluster tests are part of the suite, not optional."""
    if redis_server_binary() is None:
        pytest.fail(INSTALL_HINT)
    with RedisServer() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session for one test (admin requests, signaling-only joins)."""
    async with aiohttp.ClientSession() as session:
        yield session
