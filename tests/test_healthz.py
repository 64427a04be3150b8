"""/healthz: 200 with the version while serving, 503 once shutdown has begun (load balancers drain us)."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from ghosttalk.config import Config
from ghosttalk.server.app import create_app
from ghosttalk.server.lifecycle import SHUTTING_DOWN
from ghosttalk.version import version


async def test_healthz_reports_version_then_503_while_shutting_down(tmp_path: Path) -> None:
    app = create_app(Config(data_dir=tmp_path, rtc_udp_port=0, rtc_hosts=("127.0.0.1",), rtc_bind="127.0.0.1"))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/healthz")
        assert response.status == 200
        body = await response.json()
        assert body["status"] == "ok" and body["version"] == version() and body["commit"]
        app[SHUTTING_DOWN].set()
        response = await client.get("/healthz")
        assert response.status == 503
        assert (await response.json())["status"] == "shutting down"
        refused = await client.get("/ws?room=r&name=late")
        assert refused.status == 503
