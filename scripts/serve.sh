#!/usr/bin/env bash
# Install GhostTalk into .venv (and the Debian packages it needs) unless that is done already, and start it with
# defaults; with nothing changed since the last start, it starts offline and without waiting for pip.
# Any arguments are passed to `ghosttalk`, e.g. scripts/serve.sh -port 8080 -admin-key "$(openssl rand -hex 24)"
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh fast
exec .venv/bin/ghosttalk "$@"
