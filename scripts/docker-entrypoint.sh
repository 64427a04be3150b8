#!/usr/bin/env bash
# GhostTalk container entrypoint.
#
#   docker run ghosttalk [FLAGS...]        serve; the environment becomes flags, FLAGS come last and win
#   docker run ghosttalk join|bench ...    the other ghosttalk subcommands
#   docker run ghosttalk healthcheck       what the image's HEALTHCHECK runs
#   docker run ghosttalk sh                any other command runs as given
#
# Settings are turned into explicit flags so that a bad value is reported by the flag's name and the
# effective configuration is visible in `docker top`. Secrets (ADMIN_KEY, TURN_PASS, TURN_SECRET) are
# deliberately NOT turned into flags: a process's arguments are readable by every user on the host,
# its environment is not. ghosttalk reads those three from the environment itself.
set -euo pipefail

healthcheck() {
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
    join | bench) exec ghosttalk "$@" ;;
    serve) shift ;;
    "" | -*) ;;
    *) exec "$@" ;;
esac

args=()
# add FLAG VARIABLE: pass --FLAG "$VARIABLE" when the variable is set and not empty.
add() {
    local value="${!2:-}"
    if [[ -n "$value" ]]; then
        args+=("--$1" "$value")
    fi
}
add host HOST
add port PORT
add rtc-udp-port RTC_UDP_PORT
add rtc-bind RTC_BIND
add rtc-host RTC_HOST
add public-ip PUBLIC_IP
add stun-server STUN_SERVER
add turn-server TURN_SERVER
add turn-user TURN_USER
add turn-ttl TURN_TTL
add data-dir DATA_DIR
add log-level LOG_LEVEL
add log-format LOG_FORMAT
add trusted-proxies TRUSTED_PROXIES
add allowed-origins ALLOWED_ORIGINS
add max-room-peers MAX_ROOM_PEERS
add max-rooms MAX_ROOMS
add max-peers MAX_PEERS
add max-conns-per-ip MAX_CONNS_PER_IP
add room-grace ROOM_GRACE

data_dir="${DATA_DIR:-data}"
mkdir -p "$data_dir" 2>/dev/null || true
if ! [[ -d "$data_dir" && -w "$data_dir" ]]; then
    echo "docker-entrypoint: DATA_DIR $data_dir is not a writable directory for uid $(id -u);" \
        "bans and the event log live there (chown the volume to $(id -u))" >&2
    exit 1
fi
if [[ -z "${ADMIN_KEY:-}" ]]; then
    echo "docker-entrypoint: ADMIN_KEY is not set; ghosttalk will print a one-time key below" >&2
fi

exec ghosttalk "${args[@]}" "$@"
