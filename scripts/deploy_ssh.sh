#!/usr/bin/env bash
# Build and run GhostTalk on a server that has Docker, over SSH. See --help and DEPLOY.md.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/deploy_ssh.sh [--help] user@host [remote-dir]

Copies the build context to remote-dir (default: ghosttalk, relative to the remote home), builds the
Docker image there, replaces the running container and waits until /healthz answers.

Environment (the original deploy script's names):
  ADMIN_KEY        required; the key for /admin (there is no default key)
  PORT             HTTP port                                    (default 8080)
  NETWORK_MODE     host | bridge                                (default host)
                   host: no Docker NAT in front of WebRTC; recommended.
                   bridge: ports are published; PUBLIC_IP is then required, because the
                   container cannot see the address browsers must send media to.
  UDP_PORT         the one WebRTC UDP port                      (default 50000)
  HTTP_BIND_HOST   address the HTTP port listens on             (default 0.0.0.0;
                   127.0.0.1 when a reverse proxy on the same host terminates TLS)
  PUBLIC_IP        public address of a 1:1 NAT (cloud VM) advertised to browsers
  TURN_SERVER      comma-separated turn:/turns: URLs handed to browsers
  TURN_USER, TURN_PASS    static TURN credentials, or
  TURN_SECRET, TURN_TTL   coturn use-auth-secret shared secret and credential lifetime
  TRUSTED_PROXIES  CIDRs whose X-Forwarded-For is believed      (default 127.0.0.0/8,::1)
  IMAGE_NAME       image tag to build                           (default ghosttalk:latest)
  CONTAINER_NAME   container (and data volume prefix) name      (default ghosttalk)
  SSH_OPTS         extra ssh options, e.g. "-p 2222 -i ~/.ssh/deploy"

Secrets (ADMIN_KEY, TURN_PASS, TURN_SECRET) travel over SSH into a mode-600 env file in remote-dir
and reach the container through --env-file, never through a command line visible in `ps`.

Example:
  ADMIN_KEY=$(openssl rand -hex 24) TURN_SERVER=turn:turn.example.org:3478 \
    TURN_SECRET=... scripts/deploy_ssh.sh deploy@voice.example.org
EOF
}

die() {
    echo "deploy_ssh: $*" >&2
    exit 1
}

case "${1:-}" in
    -h | --help)
        usage
        exit 0
        ;;
    "" | -*)
        usage >&2
        exit 2
        ;;
esac

target="$1"
remote_dir="${2:-ghosttalk}"

ADMIN_KEY="${ADMIN_KEY:-}"
PORT="${PORT:-8080}"
NETWORK_MODE="${NETWORK_MODE:-host}"
UDP_PORT="${UDP_PORT:-50000}"
HTTP_BIND_HOST="${HTTP_BIND_HOST:-0.0.0.0}"
PUBLIC_IP="${PUBLIC_IP:-}"
TURN_SERVER="${TURN_SERVER:-}"
TURN_USER="${TURN_USER:-}"
TURN_PASS="${TURN_PASS:-}"
TURN_SECRET="${TURN_SECRET:-}"
TURN_TTL="${TURN_TTL:-3600}"
TRUSTED_PROXIES="${TRUSTED_PROXIES:-127.0.0.0/8,::1}"
IMAGE_NAME="${IMAGE_NAME:-ghosttalk:latest}"
CONTAINER_NAME="${CONTAINER_NAME:-ghosttalk}"
read -r -a ssh_opts <<<"${SSH_OPTS:-}"

[[ -n "$ADMIN_KEY" ]] || die "ADMIN_KEY is required (there is no default key); e.g. ADMIN_KEY=\$(openssl rand -hex 24)"
[[ "$NETWORK_MODE" == host || "$NETWORK_MODE" == bridge ]] || die "NETWORK_MODE must be host or bridge, not '$NETWORK_MODE'"
for port_var in PORT UDP_PORT TURN_TTL; do
    [[ "${!port_var}" =~ ^[0-9]+$ ]] || die "$port_var must be a number, not '${!port_var}'"
done
((PORT >= 1 && PORT <= 65535)) || die "PORT must be 1-65535"
((UDP_PORT >= 1 && UDP_PORT <= 65535)) || die "UDP_PORT must be 1-65535"
if [[ "$NETWORK_MODE" == bridge && -z "$PUBLIC_IP" ]]; then
    die "NETWORK_MODE=bridge needs PUBLIC_IP: inside Docker's network the server only sees its container address"
fi
if [[ -n "$TURN_SECRET" && -n "$TURN_PASS" ]]; then
    die "set either TURN_SECRET (time-limited credentials) or TURN_USER/TURN_PASS (static), not both"
fi
[[ "$CONTAINER_NAME" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "CONTAINER_NAME '$CONTAINER_NAME' is not a valid container name"
for value_var in ADMIN_KEY TURN_PASS TURN_SECRET TURN_USER TURN_SERVER PUBLIC_IP TRUSTED_PROXIES; do
    [[ "${!value_var}" != *$'\n'* ]] || die "$value_var must not contain a newline"
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
context=(Dockerfile .dockerignore pyproject.toml README.md ghosttalk web scripts/docker-entrypoint.sh)
for path in "${context[@]}"; do
    [[ -e "$root/$path" ]] || die "missing $path in $root; run this from a GhostTalk checkout"
done
commit="$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"

# Every remote command is assembled here, with values already quoted by printf %q.
# shellcheck disable=SC2029
remote() {
    ssh "${ssh_opts[@]}" "$target" "$@"
}

q_dir="$(printf '%q' "$remote_dir")"

echo "deploy_ssh: copying the build context to $target:$remote_dir"
tar -C "$root" --exclude=__pycache__ --exclude='*.pyc' -czf - "${context[@]}" |
    remote "mkdir -p $q_dir && rm -rf $q_dir/ghosttalk $q_dir/web && tar -xzf - -C $q_dir"

# Only what the container needs; values are literal in an env file (no quoting, no expansion).
env_lines=(
    "ADMIN_KEY=$ADMIN_KEY"
    "PORT=$PORT"
    "RTC_UDP_PORT=$UDP_PORT"
    "DATA_DIR=/data"
    "TRUSTED_PROXIES=$TRUSTED_PROXIES"
    "TURN_TTL=$TURN_TTL"
)
if [[ "$NETWORK_MODE" == host ]]; then
    env_lines+=("HOST=$HTTP_BIND_HOST")
else
    # Inside the container: listen everywhere; the published port decides what the host exposes.
    env_lines+=("HOST=0.0.0.0")
fi
for optional in PUBLIC_IP TURN_SERVER TURN_USER TURN_PASS TURN_SECRET; do
    if [[ -n "${!optional}" ]]; then
        env_lines+=("$optional=${!optional}")
    fi
done
printf '%s\n' "${env_lines[@]}" | remote "umask 077 && cat > $q_dir/ghosttalk.env"

run_args=(docker run -d --name "$CONTAINER_NAME" --restart unless-stopped
    --env-file "$remote_dir/ghosttalk.env" -v "$CONTAINER_NAME-data:/data")
if [[ "$NETWORK_MODE" == host ]]; then
    run_args+=(--network host)
else
    run_args+=(-p "$HTTP_BIND_HOST:$PORT:$PORT/tcp" -p "$UDP_PORT:$UDP_PORT/udp")
fi
run_args+=("$IMAGE_NAME")

printf -v q_build '%q ' docker build --build-arg "GHOSTTALK_COMMIT=$commit" -t "$IMAGE_NAME" "$remote_dir"
printf -v q_run '%q ' "${run_args[@]}"
q_name="$(printf '%q' "$CONTAINER_NAME")"

echo "deploy_ssh: building $IMAGE_NAME ($commit) and starting $CONTAINER_NAME ($NETWORK_MODE network)"
remote "set -e
$q_build
docker rm -f $q_name >/dev/null 2>&1 || true
$q_run >/dev/null
for attempt in \$(seq 1 30); do
    if docker exec $q_name docker-entrypoint.sh healthcheck >/dev/null 2>&1; then
        echo \"deploy_ssh: healthy after \$attempt s\"
        exit 0
    fi
    if [ \"\$(docker inspect -f '{{.State.Running}}' $q_name 2>/dev/null)\" != true ]; then
        break
    fi
    sleep 1
done
echo 'deploy_ssh: the container did not become healthy; its last log lines:' >&2
docker logs --tail 40 $q_name >&2 || true
exit 1"

host="${target#*@}"
echo "deploy_ssh: done. Page: http://$host:$PORT/   Admin: http://$host:$PORT/admin?key=<ADMIN_KEY>"
echo "deploy_ssh: open $PORT/tcp (or your proxy's 443/tcp) and $UDP_PORT/udp in the firewall."
