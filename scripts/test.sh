#!/usr/bin/env bash
# Install everything the test suite needs (Debian: chromium, firefox-esr, pulseaudio, coturn, shellcheck, ffmpeg,
# Go; Python: .[test]) and run the whole suite: lint, types, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test chromium coturn shellcheck ffmpeg fonts-noto-cjk firefox-esr pulseaudio golang-go golang-github-pion-webrtc.v3-dev golang-github-gorilla-websocket-dev
.venv/bin/ruff check .
.venv/bin/mypy
# pytest exits non-zero on any failure and with 5 when no test ran; both fail this script.
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
