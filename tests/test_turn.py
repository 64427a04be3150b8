"""TURN: the credentials GhostTalk hands out, and a real coturn relaying a relay-only aiortc client.

coturn (Debian's package) runs on loopback with a config written by the test, in both credential modes.
The clients allow only relay candidates, so media can reach the SFU in no other way than through coturn.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aioice import stun
from playwright.sync_api import sync_playwright

from ghosttalk.benchmark.server import free_port
from ghosttalk.client.participant import Client, ClientOptions, JoinError
from ghosttalk.config import Config
from ghosttalk.ops.turn import ice_servers, rest_credentials
from tests.support.browser.chromium import Person, join, launch
from tests.support.browser.probes import live_inbound, write_tone
from tests.support.eventually import eventually_sync
from tests.support.room import negotiated
from tests.support.server import ServerProcess

SECRET = "turn-shared-secret-for-tests"
STATIC_USER, STATIC_PASS = "ghost", "talk-static-password"


# --- Credentials ------------------------------------------------------------------------------


def test_rest_credentials_follow_coturn_use_auth_secret() -> None:
    username, password = rest_credentials("s3cret", 3600, now=1_700_000_000)
    expiry, _, user_id = username.partition(":")
    assert expiry == str(1_700_000_000 + 3600)
    assert re.fullmatch(r"[0-9a-f]{16}", user_id)
    expected = base64.b64encode(hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()).decode()
    assert password == expected
    # Every call gets its own id, so two pages never share a TURN username.
    assert rest_credentials("s3cret", 3600, now=1_700_000_000)[0] != username


def test_ice_servers_by_mode() -> None:
    # Nothing configured: no STUN or TURN at all, so no third party is ever contacted.
    assert ice_servers(Config()) == []
    static = Config(turn_servers=("turn:t.example:3478", "turns:t.example:5349"), turn_user="u", turn_pass="p")
    assert ice_servers(static) == [
        {"urls": ["turn:t.example:3478", "turns:t.example:5349"], "username": "u", "credential": "p"}
    ]
    timed = Config(turn_servers=("turn:t.example:3478",), turn_secret="k", turn_ttl=60, stun_servers=("stun:s:3478",))
    stun_entry, turn_entry = ice_servers(timed, now=1000)
    assert stun_entry == {"urls": ["stun:s:3478"]}
    assert turn_entry["username"].startswith("1060:")
    expected = base64.b64encode(hmac.new(b"k", turn_entry["username"].encode(), hashlib.sha1).digest()).decode()
    assert turn_entry["credential"] == expected


# --- A real coturn --------------------------------------------------------------------------------


@dataclass(slots=True)
class Coturn:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _relay_range(size: int = 20) -> int:
    """A block of free UDP ports below the ephemeral range, where free_port() never lands."""
    for _ in range(50):
        base = random.randrange(20000, 30000 - size)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base
    raise RuntimeError("no free block of UDP ports for coturn's relays")


def _answers_stun(port: int) -> bool:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(bytes(request), ("127.0.0.1", port))
        try:
            data = sock.recv(2048)
        except OSError:
            return False
    return stun.parse_message(data).transaction_id == request.transaction_id


@contextmanager
def coturn(tmp_path: Path, credentials: str) -> Iterator[Coturn]:
    """coturn on loopback; ``credentials`` is the config's credential section."""
    binary = shutil.which("turnserver")
    assert binary is not None, "coturn's turnserver is required for this test: apt-get install coturn"
    port = free_port(socket.SOCK_DGRAM)
    relay = _relay_range()
    directory = tmp_path / f"coturn-{port}"
    directory.mkdir()
    log = directory / "turn.log"
    config = directory / "turnserver.conf"
    config.write_text(
        "\n".join(
            [
                "listening-ip=127.0.0.1",
                "relay-ip=127.0.0.1",
                f"listening-port={port}",
                f"min-port={relay}",
                f"max-port={relay + 19}",
                "realm=ghosttalk.test",
                "fingerprint",
                "no-cli",
                "no-tls",
                "no-dtls",
                "no-tcp",
                "no-multicast-peers",
                # The SFU is on loopback in this test; never in production (see turnserver.conf).
                "allow-loopback-peers",
                f"userdb={directory / 'turndb'}",
                f"pidfile={directory / 'turn.pid'}",
                f"log-file={log}",
                "simple-log",
                "verbose",
                credentials,
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        [binary, "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def answering() -> bool:
            assert proc.poll() is None, f"turnserver exited with {proc.returncode}:\n{log.read_text()}"
            return _answers_stun(port)

        eventually_sync(answering, 10, what="turnserver answering STUN", interval=0.05)
        yield Coturn(port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def page_ice_servers(server: ServerProcess) -> list[dict[str, Any]]:
    """The ICE servers a page gets: /ice-servers, which the server answers afresh for every connection."""
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/ice-servers") as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        servers: list[dict[str, Any]] = orjson.loads(await response.read())
    return servers


def connected_types(server: ServerProcess, room: str) -> list[str]:
    lines = (orjson.loads(line) for line in (server.data_dir / "server.log").read_text().splitlines())
    return [e["details"]["candidate_type"] for e in lines if e["event"] == "ICE_CONNECTED" and e["room"] == room]


async def talk_through_relay(server: ServerProcess, room: str) -> None:
    """Two relay-only clients join with the page's ICE servers and hear each other."""
    options = ClientOptions(ice_servers=await page_ice_servers(server), relay_only=True)
    ann = await Client(server.url, room, "ann", options).connect(timeout=15)
    try:
        # A fresh fetch per person, as each page makes its own (REST credentials differ per fetch).
        ben_options = ClientOptions(ice_servers=await page_ice_servers(server), relay_only=True)
        ben = await Client(server.url, room, "ben", ben_options).connect(timeout=15)
        try:
            await negotiated([ann, ben])
            assert ann.receives_directly and ben.receives_directly  # relayed datagrams take the direct path too
            payloads = [os.urandom(30) for _ in range(25)]
            for payload in payloads:
                ann.send_rtp(payload)
                ben.send_rtp(payload[::-1])
                await asyncio.sleep(0.02)
            await ben.wait_for(lambda: len(ben.received.get(ann.self_id or "", [])) >= 20, 5)
            await ann.wait_for(lambda: len(ann.received.get(ben.self_id or "", [])) >= 20, 5)
            heard = {p.payload for p in ben.received[ann.self_id or ""]}
            assert heard <= set(payloads)
        finally:
            await ben.close()
    finally:
        await ann.close()
    assert connected_types(server, room) == ["relay", "relay"]


async def test_static_credentials_relay_audio(tmp_path: Path) -> None:
    with coturn(tmp_path, f"lt-cred-mech\nuser={STATIC_USER}:{STATIC_PASS}") as turn:
        args = ["--turn-server", turn.url, "--turn-user", STATIC_USER, "--turn-pass", STATIC_PASS]
        server = ServerProcess(tmp_path / "data", extra_args=args).start()
        try:
            servers = await page_ice_servers(server)
            assert servers == [{"urls": [turn.url], "username": STATIC_USER, "credential": STATIC_PASS}]
            await talk_through_relay(server, "turn-static")
        finally:
            server.stop()
        # coturn authenticated the static user and relayed for it.
        assert f"user <{STATIC_USER}>" in turn.text()


async def test_rest_credentials_relay_audio(tmp_path: Path) -> None:
    with coturn(tmp_path, f"use-auth-secret\nstatic-auth-secret={SECRET}") as turn:
        args = ["--turn-server", turn.url, "--turn-secret", SECRET, "--turn-ttl", "600"]
        server = ServerProcess(tmp_path / "data", extra_args=args).start()
        try:
            servers = await page_ice_servers(server)
            expiry = int(servers[0]["username"].split(":")[0])
            assert abs(expiry - (time.time() + 600)) < 30
            await talk_through_relay(server, "turn-rest")
        finally:
            server.stop()
        users = set(re.findall(r"user <(\d+:[0-9a-f]{16})>", turn.text()))
        assert len(users) >= 2, "each client used its own time-limited username"
        assert "Cannot find credentials" not in turn.text()


async def test_wrong_secret_fails_clearly_and_nothing_connects(tmp_path: Path) -> None:
    with coturn(tmp_path, f"use-auth-secret\nstatic-auth-secret={SECRET}") as turn:
        args = ["--turn-server", turn.url, "--turn-secret", "not-the-secret"]
        server = ServerProcess(tmp_path / "data", extra_args=args).start()
        try:
            options = ClientOptions(ice_servers=await page_ice_servers(server), relay_only=True)
            client = Client(server.url, "turn-wrong", "ann", options)
            started = time.monotonic()
            with pytest.raises((JoinError, TimeoutError)):
                await client.connect(timeout=6)
            assert time.monotonic() - started < 10
            await client.close()
        finally:
            server.stop()
        assert connected_types(server, "turn-wrong") == []
        # coturn refused the credential, and its log tells the operator so.
        assert re.search(r"check_stun_auth: Cannot find credentials of user <\d+:[0-9a-f]{16}>", turn.text())


# --- Chromium through coturn ------------------------------------------------------------------------

# Test-side instrumentation, not a page hook: every RTCPeerConnection the page makes may use relay
# candidates only, as if the browser sat behind a network that lets nothing else through. ICE errors
# are recorded for the assertions.
RELAY_ONLY_JS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__iceErrors = [];
  window.RTCPeerConnection = class extends Native {
    constructor(config = {}, ...rest) {
      super({ ...config, iceTransportPolicy: 'relay' }, ...rest);
      this.addEventListener('icecandidateerror', (e) => window.__iceErrors.push(e.errorCode));
    }
  };
})();
"""


@contextmanager
def relay_only_pages(tmp_path: Path, server: ServerProcess, room: str) -> Iterator[list[Person]]:
    """Ann and Bob, relay-only Chromium pages (one browser, one tone) in ``room``."""
    with sync_playwright() as pw:
        browser = launch(pw, write_tone(tmp_path / "tone.wav", 440.0))
        try:
            people = [join(browser, server.url, room, name, init_script=RELAY_ONLY_JS) for name in ("Ann", "Bob")]
            yield people
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.parametrize("mode", ["static", "rest"])
def test_chromium_pages_talk_through_coturn(tmp_path: Path, mode: str) -> None:
    if mode == "static":
        section, args = f"lt-cred-mech\nuser={STATIC_USER}:{STATIC_PASS}", ["--turn-user", STATIC_USER]
        args += ["--turn-pass", STATIC_PASS]
    else:
        section, args = f"use-auth-secret\nstatic-auth-secret={SECRET}", ["--turn-secret", SECRET]
    with coturn(tmp_path, section) as turn:
        server = ServerProcess(tmp_path / "data", extra_args=["--turn-server", turn.url, *args]).start()
        try:
            room = f"chromium-turn-{mode}"
            with relay_only_pages(tmp_path, server, room) as people:
                eventually_sync(lambda: connected_types(server, room) == ["relay", "relay"], 20, what="both relayed")
                for person in people:
                    # Audio flows: the other person's inbound RTP stream keeps growing.
                    eventually_sync(lambda p=person: live_inbound(p) == 1, 15, what=f"{person.name} receives audio")
                    assert person.page.evaluate("window.__iceErrors") == []
                    assert person.errors == []
        finally:
            server.stop()


@pytest.mark.browser
def test_chromium_page_explains_a_wrong_turn_secret(tmp_path: Path) -> None:
    with coturn(tmp_path, f"use-auth-secret\nstatic-auth-secret={SECRET}") as turn:
        args = ["--turn-server", turn.url, "--turn-secret", "not-the-secret"]
        server = ServerProcess(tmp_path / "data", extra_args=args).start()
        try:
            with relay_only_pages(tmp_path, server, "chromium-turn-wrong") as (ann, _bob):
                eventually_sync(lambda: 401 in ann.page.evaluate("window.__iceErrors"), 15, what="coturn says 401")
                # The page tells the person why, in words that point the operator at TURN.
                eventually_sync(
                    lambda: "TURN" in ann.page.inner_text("body"), 15, what="the page names the TURN failure"
                )
        finally:
            server.stop()
        assert connected_types(server, "chromium-turn-wrong") == []
