"""Build and drive tests/interop/pion (a GhostTalk participant written with Pion WebRTC, in Go).

The Go program is built offline from Debian's packaged sources, in GOPATH mode (Debian installs them under
/usr/share/gocode/src; there is no module proxy to fetch from), once per source version: the binary is cached
under ~/.cache/ghosttalk-tests keyed by a hash of the Go source, the Go version and the dependencies' module
files. Each running client is a child process whose stdout carries one JSON event per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent / "pion"
DEBIAN_GOPATH = Path("/usr/share/gocode")
# What scripts/test.sh installs for this module (Debian bookworm: Go 1.19, Pion 3.1.56, gorilla 1.5.0).
DEBIAN_PACKAGES = "golang-go golang-github-pion-webrtc.v3-dev golang-github-gorilla-websocket-dev"
# The imports that must resolve in Debian's GOPATH; their go.mod and go.sum pin the rest.
DEPENDENCIES = ("github.com/pion/webrtc", "github.com/gorilla/websocket")
# Cold, it takes 10-30 s on two cores; under pytest-timeout's 180 s so that a hung build says what it is.
BUILD_TIMEOUT = 150.0


class PionUnavailable(Exception):
    """Go or the Pion sources are missing, or the build failed."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ghosttalk-tests"


def build_pion_client() -> Path:
    """The path of the built client, building it when this source version has not been built yet."""
    go = shutil.which("go")
    if go is None:
        raise PionUnavailable(f"`go` is not installed: apt-get install {DEBIAN_PACKAGES}")
    missing = [name for name in DEPENDENCIES if not (DEBIAN_GOPATH / "src" / name / "go.mod").is_file()]
    if missing:
        raise PionUnavailable(
            f"Go sources missing under {DEBIAN_GOPATH}/src: {', '.join(missing)}: apt-get install {DEBIAN_PACKAGES}"
        )
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=True, timeout=30).stdout
    digest = hashlib.sha256(version.encode())
    # Named relative to their roots: a clone elsewhere (CI's) finds the binary this one built.
    inputs = [(path.name, path) for path in sorted(SOURCE.iterdir())] + [
        (f"{name}/{module_file}", DEBIAN_GOPATH / "src" / name / module_file)
        for name in DEPENDENCIES
        for module_file in ("go.mod", "go.sum")
    ]
    for label, path in inputs:
        if path.is_file():
            digest.update(label.encode() + b"\0" + path.read_bytes() + b"\0")
    root = cache_root()
    binary = root / f"pion-{digest.hexdigest()[:16]}" / "ghosttalk-pion"
    if binary.is_file():
        return binary
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix="build-") as scratch:
        # Minimal module compatibility (the go.mod beside main.go) resolves .../webrtc/v3 to Debian's
        # github.com/pion/webrtc, but only for code inside a GOPATH entry: hence the scratch GOPATH.
        package = Path(scratch) / "gopath" / "src" / "ghosttalk-pion"
        shutil.copytree(SOURCE, package)
        env = dict(
            os.environ,
            GO111MODULE="off",
            GOPATH=f"{Path(scratch) / 'gopath'}:{DEBIAN_GOPATH}",
            GOFLAGS="",
            GOPROXY="off",
            GOCACHE=str(root / "go-build"),
        )
        if shutil.which("gcc") is None:
            # Go 1.19 builds with cgo by default and then needs gcc, which golang-go only recommends. Without
            # cgo the standard library is rebuilt once (into GOCACHE): some 60 % more CPU for the cold build.
            env["CGO_ENABLED"] = "0"
        output = Path(scratch) / "ghosttalk-pion"
        try:
            result = subprocess.run(
                [go, "build", "-o", str(output), "."],
                cwd=package,
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise PionUnavailable(f"go build of {SOURCE} took over {BUILD_TIMEOUT:.0f} s") from None
        if result.returncode != 0:
            raise PionUnavailable(f"go build of {SOURCE} failed:\n{result.stderr[-4000:]}")
        binary.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: a concurrent run sees either no binary or a whole one.
        os.replace(output, binary)
    # Builds of older sources (13 MB each) go; GOCACHE keeps what makes rebuilding them quick.
    for stale in root.glob("pion-*"):
        if stale != binary.parent:
            shutil.rmtree(stale, ignore_errors=True)
    return binary


@dataclass(slots=True)
class PionClient:
    """One running ghosttalk-pion process and what it has reported so far."""

    name: str
    process: asyncio.subprocess.Process
    stderr_path: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    self_id: str | None = None
    # RTP packets received, by the stream id (the speaker's peer id) of the track they came on.
    received: dict[str, int] = field(default_factory=dict)
    first_payloads: dict[str, bytes] = field(default_factory=dict)
    sent: int = 0
    connected: bool = False
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, binary: Path, ws_url: str, name: str, log_dir: Path, send: bool = True) -> PionClient:
        stderr_path = log_dir / f"pion-{name}.stderr"
        with stderr_path.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                str(binary),
                "-url",
                ws_url,
                f"-send={'true' if send else 'false'}",
                # The program leaves when stdin closes: it cannot outlive this test process.
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                # One event per line, and an event carrying SDP can pass asyncio's 64 KiB default.
                limit=1 << 20,
                # Pion's warnings (DTLS or SRTP trouble) go to stderr, which a failure message shows.
                env=dict(os.environ, PION_LOG_WARN="all"),
            )
        client = cls(name, process, stderr_path)
        client._reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                event = {"event": "unparsed", "text": raw.decode(errors="replace").rstrip()}
            self.events.append(event)
            kind = event.get("event")
            if kind == "joined":
                self.self_id = event["self_id"]
            elif kind == "rx":
                self.received[event["peer"]] = event["packets"]
            elif kind == "first_packet":
                self.first_payloads[event["peer"]] = bytes.fromhex(event["payload"])
            elif kind == "tx":
                self.sent = event["packets"]
            elif kind == "state" and "connection" in event:
                self.connected = event["connection"] == "connected"

    @property
    def exited(self) -> bool:
        return self.process.returncode is not None

    def has(self, kind: str, predicate: Callable[[dict[str, Any]], bool] = lambda _: True) -> bool:
        return any(e.get("event") == kind and predicate(e) for e in self.events)

    @property
    def server_errors(self) -> list[str]:
        """The ``error`` messages the server sent this client (such as a refused candidate)."""
        return [e["message"] for e in self.events if e.get("event") == "server_error"]

    async def mute(self, muted: bool) -> None:
        """Send a mute message; the server answers every member, this one included, with peer_update."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"mute {'true' if muted else 'false'}\n".encode())
        await self.process.stdin.drain()

    def diagnostics(self, lines: int = 40) -> str:
        """The last events without SDP bodies, and Pion's own log: what a failure message should show."""
        shown = [
            json.dumps({k: v for k, v in e.items() if k not in ("sdp", "t")})
            for e in self.events
            if e.get("event") not in ("rx", "tx", "local_candidate")
        ][-lines:]
        counts = f"received {self.received}, sent {self.sent}"
        stderr = self.stderr_path.read_text(errors="replace")[-1500:] if self.stderr_path.exists() else ""
        return f"--- pion {self.name} ({self.self_id}): {counts}\n" + "\n".join(shown) + f"\n--- stderr:\n{stderr}"

    async def close(self) -> None:
        """Leave the room (SIGTERM: the program closes its socket and connection) and reap the process."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
