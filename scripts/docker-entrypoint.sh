#!/usr/bin/env bash
# GhostTalk container entrypoint.
#
#   docker run ghosttalk [FLAGS...]              serve
#   docker run ghosttalk config|join|bench ...   the other ghosttalk subcommands
#   docker run ghosttalk healthcheck             what the image's HEALTHCHECK runs
#   docker run ghosttalk sh                      any other command runs as given
#
# ghosttalk reads every setting from its environment variable itself (a flag beats it), so nothing here
# lists settings. That also keeps secrets (ADMIN_KEY, TURN_PASS, TURN_SECRET, REDIS_URL) out of the process list:
# a process's arguments are readable by every user on the host, its environment is not.
set -euo pipefail

healthcheck() {
    # The image's HEALTHCHECK passes no arguments: it finds the server through HOST and PORT as set in the
    # container's environment (a port given only as a flag or in a --config file is not seen here).
    local host="${HOST:-0.0.0.0}"
    # A wildcard bind is reachable on loopback; a specific address has to be asked directly.
    case "$host" in
        0.0.0.0 | "::" | "") host=127.0.0.1 ;;
        *:*) host="[$host]" ;;
    esac
    exec python3 - "http://$host:${PORT:-8080}/healthz" <<'PY'
import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:
    print(f"healthcheck: {exc}", file=sys.stderr)
    sys.exit(1)
PY
}

case "${1:-}" in
    healthcheck) healthcheck ;;
    config | join | bench) exec ghosttalk "$@" ;;
    serve) shift ;;
    "" | -*) ;;
    *) exec "$@" ;;
esac

# A volume owned by another uid is the usual first-run mistake; say so plainly instead of failing on the
# first ban or event written.
data_dir="${DATA_DIR:-data}"
mkdir -p "$data_dir" 2>/dev/null || true
if ! [[ -d "$data_dir" && -w "$data_dir" ]]; then
    echo "docker-entrypoint: DATA_DIR $data_dir is not a writable directory for uid $(id -u);" \
        "bans and the event log live there (chown the volume to $(id -u))" >&2
    exit 1
fi

exec ghosttalk "$@"
