# syntax=docker/dockerfile:1
# GhostTalk: one container serving the page, signaling, /admin and the SFU (all WebRTC on one UDP port).
# Build:  docker build --build-arg GHOSTTALK_COMMIT=$(git rev-parse --short=12 HEAD) -t ghosttalk .
# Run:    docker run -d --network host -e ADMIN_KEY=... -v ghosttalk-data:/data ghosttalk
# See DEPLOY.md for host vs bridge networking, TURN and reverse proxies.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: only the project's own wheel; its dependencies come as release wheels in the runtime stage.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ghosttalk ./ghosttalk
COPY web ./web
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime
FROM ${PYTHON_IMAGE}
ARG GHOSTTALK_COMMIT=unknown
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GHOSTTALK_COMMIT=${GHOSTTALK_COMMIT} \
    HOST=0.0.0.0 \
    PORT=8080 \
    RTC_UDP_PORT=50000 \
    DATA_DIR=/data \
    LOG_FORMAT=json

# A fixed uid, so that a host directory mounted on /data can be chowned to it ahead of time.
RUN groupadd --system --gid 10001 ghosttalk \
    && useradd --system --uid 10001 --gid ghosttalk --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin ghosttalk \
    && install -d -o ghosttalk -g ghosttalk -m 0750 /data

COPY --from=build /wheels /tmp/wheels
# The "fast" extra brings uvloop, which the server uses when present.
RUN pip install --no-cache-dir "$(ls /tmp/wheels/ghosttalk-*.whl)[fast]" && rm -rf /tmp/wheels
COPY --chmod=0755 scripts/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

USER ghosttalk
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080/tcp 50000/udp
# A single server closes sessions and exits within 5 s of SIGTERM, inside Docker's default 10 s grace; a clustered
# node (REDIS_URL) drains first, for up to DRAIN_TIMEOUT: give it a stop_grace_period longer than that.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["docker-entrypoint.sh", "healthcheck"]
ENTRYPOINT ["docker-entrypoint.sh"]
CMD []
