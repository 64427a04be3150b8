"""``ghosttalk join --play`` in one shell and ``ghosttalk join --record`` in another: the recording holds the
played tone; a bad link and a refused join are explained."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, cast

from ghosttalk.client.audio import dominant_frequency, read_audio, tone, write_wav
from tests.support.eventually import eventually_sync
from tests.support.probes import admin_json
from tests.support.server import ROOT, ServerProcess


def join(server: ServerProcess, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ghosttalk", "join", f"{server.url}/r/cli-room", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def connected(server: ServerProcess, room: str) -> list[str]:
    """The names of the people in ``room`` whose media the server has connected."""
    rooms = cast(list[dict[str, Any]], admin_json(server, "rooms")["rooms"])
    return [p["name"] for r in rooms if r["room"] == room for p in r["peers"] if p["candidate_type"] is not None]


def test_recorded_audio_has_the_played_tone(shared_server: ServerProcess, tmp_path: Path) -> None:
    source, recording = tmp_path / "tone.wav", tmp_path / "out.wav"
    write_wav(source, tone(523.0, 3.0))
    listener = join(shared_server, "--name", "ear", "--record", str(recording), "--seconds", "7")
    eventually_sync(
        lambda: connected(shared_server, "cli-room"), 15, what="the listener connected", until=lambda n: "ear" in n
    )
    speaker = join(shared_server, "--name", "mouth", "--play", str(source))
    speaker_out, _ = speaker.communicate(timeout=30)
    listener_out, _ = listener.communicate(timeout=30)
    assert speaker.returncode == 0, speaker_out
    assert listener.returncode == 0, listener_out
    assert "joined 'cli-room' as 'mouth'" in speaker_out
    pcm = read_audio(recording)
    assert len(pcm) > 48000 * 2, listener_out
    assert abs(dominant_frequency(pcm) - 523.0) < 5


def test_join_explains_a_bad_link(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ghosttalk", "join", "ftp://nowhere/r/x", "--name", "a"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "not an http(s) URL" in result.stderr


def test_join_reports_a_refused_join(shared_server: ServerProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ghosttalk", "join", f"{shared_server.url}/r/x", "--name", "waytoolongname"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "at most 12" in result.stderr
