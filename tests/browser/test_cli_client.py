"""A browser and the headless `ghosttalk join --play` client in one room hear each other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import TONES
from tests.support.browser.chromium import join
from tests.support.browser.probes import dominant_frequency, spectrum
from tests.support.eventually import eventually_sync
from tests.support.server import ROOT, ServerProcess

pytestmark = pytest.mark.browser


def test_browser_and_headless_client_hear_each_other(
    shared_server: ServerProcess, browsers: dict[str, Browser], tone_files: dict[str, Path], tmp_path: Path
) -> None:
    room = "with-a-bot"
    ann = join(browsers["Ann"], shared_server.url, room, "Ann")
    recording = tmp_path / "bot-heard.wav"
    bot = subprocess.Popen(
        [
            sys.executable, "-m", "ghosttalk", "join", f"{shared_server.url}/r/{room}",
            "--name", "Bot", "--play", str(tone_files["Bob"]), "--record", str(recording), "--seconds", "8",
        ],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        eventually_sync(lambda: "Bot" in ann.peer_ids(), 10, what="Ann sees Bot")
        bot_id = ann.peer_ids()["Bot"]

        def ann_hears_bot() -> bool:
            heard = spectrum(ann, 600).get(bot_id)
            return bool(heard and abs(heard["freq"] - TONES["Bob"]) < 15 and heard["db"] > -50)

        eventually_sync(ann_hears_bot, 6, what="Ann hears the bot's 660 Hz")
        output, _ = bot.communicate(timeout=30)
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.wait()
    assert bot.returncode == 0, output.decode(errors="replace")
    freq, db = dominant_frequency(recording)
    assert abs(freq - TONES["Ann"]) < 5, (freq, db)
    assert db > -50, (freq, db)
    eventually_sync(lambda: "Bot" not in ann.peer_ids(), 5, what="the bot's departure shows")
    ann.context.close()
