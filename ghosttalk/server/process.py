"""``ghosttalk`` (serve): console logging, startup banner, and a clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from ghosttalk.config import Config
from ghosttalk.console import configure_logging
from ghosttalk.media.aiortc_adapter import check_pinned_versions
from ghosttalk.ops.bans import BanFileError
from ghosttalk.server.admin import ADMIN_KEY
from ghosttalk.server.app import create_app
from ghosttalk.server.lifecycle import CLUSTER
from ghosttalk.version import commit, version

if TYPE_CHECKING:
    from ghosttalk.cluster.node import ClusterNode

logger = logging.getLogger("ghosttalk")

# SIGTERM to exit: everyone is told and disconnected, the log flushed, well within Docker's 10 s.
SHUTDOWN_TIMEOUT_SECONDS = 4.0


async def _run(config: Config, config_file: Path | None) -> int:
    try:
        app = create_app(config)
    except BanFileError as exc:
        logger.error("%s", exc)
        return 2
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS, handle_signals=False)
    await runner.setup()
    # Clustered nodes may share the port (--workers: one node per core; the kernel spreads the connections).
    site = web.TCPSite(runner, config.host, config.port, reuse_port=config.redis_url is not None)
    try:
        await site.start()
    except OSError as exc:
        logger.error("cannot listen on %s:%d: %s", config.host, config.port, exc)
        await runner.cleanup()
        return 2
    logger.info("ghosttalk %s (%s) listening on http://%s:%d", version(), commit(), config.host, config.port)
    if config_file is not None:
        logger.info("settings from flags, the environment and %s (ghosttalk config shows each)", config_file)
    if not config.admin_key:
        # Printed once, to the console only: it never reaches the event log.
        print(f"ghosttalk: no admin key configured; generated one for this run: {app[ADMIN_KEY]}", flush=True)

    stop = asyncio.Event()
    terminated = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, _terminate, terminated, stop)
    await stop.wait()
    cluster = app.get(CLUSTER)
    if cluster is not None and terminated.is_set():
        await _drain(cluster, config.drain_timeout, stop)
    logger.info("shutting down")
    await runner.cleanup()
    return 0


def _terminate(terminated: asyncio.Event, stop: asyncio.Event) -> None:
    terminated.set()
    stop.set()


async def _drain(cluster: ClusterNode, timeout: float, stop: asyncio.Event) -> None:
    """SIGTERM on a clustered node: its calls go on until they end or ``timeout``; a second SIGTERM or SIGINT
    ends the drain at once. Then its pages are told to rejoin, and land on other nodes."""
    stop.clear()
    drained = asyncio.create_task(cluster.drain(timeout))
    interrupted = asyncio.create_task(stop.wait())
    await asyncio.wait({drained, interrupted}, return_when=asyncio.FIRST_COMPLETED)
    interrupted.cancel()
    if not drained.done():
        logger.info("drain cut short")
        drained.cancel()
        await asyncio.gather(drained, return_exceptions=True)


def serve(config: Config, config_file: Path | None = None) -> int:
    configure_logging(config.log_level, config.log_format)
    check_pinned_versions()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_run(config, config_file))
    return uvloop.run(_run(config, config_file))
