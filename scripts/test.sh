#!/usr/bin/env bash
# Install everything the test suite needs (Debian: chromium, firefox-esr, pulseaudio, coturn, shellcheck,
# Go, nodejs and npm, redis-server; Python: .[test]; npm: web/package-lock.json) and run the whole suite: lint,
# types (Python and the page's JavaScript), then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# A node from elsewhere (NodeSource) carries its own npm and conflicts with Debian's npm package.
node_packages=(nodejs)
command -v npm >/dev/null || node_packages+=(npm)
scripts/bootstrap.sh test chromium coturn shellcheck fonts-noto-cjk firefox-esr pulseaudio golang-go golang-github-pion-webrtc.v3-dev golang-github-gorilla-websocket-dev redis-server "${node_packages[@]}"
.venv/bin/ruff check .
.venv/bin/mypy
scripts/check-js.sh
# pytest exits non-zero on any failure and with 5 when no test ran; both fail this script. Two processes
# (pytest-xdist): the browser tests and the ones that load the machine on purpose in one, one after another,
# every other file spread over both (tests/conftest.py groups them); the suite mostly waits on timers and
# sockets, so two processes take little more than half its time.
exec .venv/bin/python -m pytest -p no:cacheprovider -n 2 --dist loadgroup "$@"
