"""Deployment artefacts: shell scripts, the Dockerfile, compose, coturn's configuration and the entrypoint
(the wheel is tested in test_wheel.py, deploy_ssh.sh in test_deploy_ssh.py).

No image registry is reachable here, so the image itself is not built; everything it is made of is tested:
every COPY source exists and the entrypoint runs a server configured by its environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from ghosttalk.benchmark.server import free_port
from ghosttalk.config import OPTIONS, Config, resolve
from tests.support.scripts import clean_env, http_status, wait_healthy, write_executable

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "scripts" / "docker-entrypoint.sh"
DEPLOY = ROOT / "scripts" / "deploy_ssh.sh"
SECRETS = tuple(option.env for option in OPTIONS if option.secret)


# --- Static checks --------------------------------------------------------------------------------


def test_shell_scripts_are_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck is not None, "shellcheck is required: apt-get install shellcheck"
    scripts = sorted((ROOT / "scripts").glob("*.sh"))
    assert ENTRYPOINT in scripts and DEPLOY in scripts
    result = subprocess.run([shellcheck, "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for script in scripts:
        assert os.access(script, os.X_OK), f"{script.name} is not executable"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_every_dockerfile_copy_source_exists_and_is_not_dockerignored() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for keyword, rest in dockerfile_instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        words = rest.split()
        if any(word.startswith("--from") for word in words):
            continue  # from another build stage, not from the context
        paths = [word for word in words if not word.startswith("--")]
        sources.extend(paths[:-1])
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile COPY source {source} does not exist"
        for pattern in ignored:
            assert not Path(source).match(pattern.strip("/")), f"{source} is excluded by .dockerignore {pattern}"


def test_dockerfile_runs_unprivileged_with_data_volume_and_healthcheck() -> None:
    instructions = dockerfile_instructions()
    runtime = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    keywords = {k: r for k, r in runtime}
    assert "slim" in keywords["FROM"] or "PYTHON_IMAGE" in keywords["FROM"]
    assert re.search(r"python:3\.1[1-9]-slim", (ROOT / "Dockerfile").read_text())
    assert keywords["USER"] not in ("root", "0")
    assert "/data" in keywords["VOLUME"]
    assert set(keywords["EXPOSE"].split()) == {"8080/tcp", "50000/udp"}
    assert "healthcheck" in keywords["HEALTHCHECK"]
    assert "docker-entrypoint.sh" in keywords["ENTRYPOINT"]
    env = " ".join(r for k, r in runtime if k == "ENV")
    for name in ("PORT=8080", "RTC_UDP_PORT=50000", "DATA_DIR=/data"):
        assert name in env


def top_level_sections(text: str) -> dict[str, str]:
    """The blocks of a YAML file by top-level key (the file is plain block-style YAML)."""
    blocks = re.split(r"^(?=[A-Za-z])", text, flags=re.M)
    return {block.split(":", 1)[0]: block for block in blocks if re.match(r"[A-Za-z][\w-]*:", block)}


def test_compose_runs_ghosttalk_and_coturn_on_the_host_network() -> None:
    sections = top_level_sections((ROOT / "docker-compose.yml").read_text())
    assert {"services", "volumes"} <= set(sections)
    parts = re.split(r"^  (?=[a-z])", sections["services"], flags=re.M)[1:]
    services = {part.split(":", 1)[0]: part for part in parts}
    assert set(services) == {"ghosttalk", "coturn"}
    for service in services.values():
        assert re.search(r"^    network_mode: host$", service, re.M)
    assert "- ./turnserver.conf:/etc/coturn/turnserver.conf:ro" in services["coturn"]
    environment = re.findall(r"^      ([A-Z_]+): (.*)$", services["ghosttalk"], re.M)
    assert dict(environment)["ADMIN_KEY"].startswith("${ADMIN_KEY:?")  # required, no default key
    settings = {option.env for option in OPTIONS}
    for name, _ in environment:
        # ghosttalk reads every setting's variable itself: a misspelt one would be silently ignored.
        assert name in settings, name
    assert len(environment) >= 10
    # No tabs, and every line indented by a multiple of two spaces: what docker compose requires of this file.
    for line in (ROOT / "docker-compose.yml").read_text().splitlines():
        assert "\t" not in line and (len(line) - len(line.lstrip(" "))) % 2 == 0, line


def test_turnserver_conf_is_accepted_by_coturn(tmp_path: Path) -> None:
    binary = shutil.which("turnserver")
    assert binary is not None, "coturn is required: apt-get install coturn"
    config = (ROOT / "turnserver.conf").read_text()
    required_lines = (
        "fingerprint",
        "no-cli",
        "no-multicast-peers",
        "use-auth-secret",
        "#lt-cred-mech",
        "denied-peer-ip=10.0.0.0-10.255.255.255",
        "denied-peer-ip=127.0.0.0-127.255.255.255",
    )
    for required in required_lines:
        assert re.search(rf"^{re.escape(required)}$", config, re.M), required
    assert not re.search(r"^allow-loopback-peers", config, re.M)
    # Start it for real on loopback (ports and files overridden on the command line) and see it answer.
    port = free_port(socket.SOCK_DGRAM)
    log = tmp_path / "turn.log"
    overrides = ["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", str(port)]
    overrides += [
        "--no-tls",
        "--no-dtls",
        "--userdb",
        str(tmp_path / "turndb"),
        "--pidfile",
        str(tmp_path / "pid"),
    ]
    with log.open("wb") as out:
        # The shipped config logs to stdout, as a container should.
        proc = subprocess.Popen(
            [binary, "-c", str(ROOT / "turnserver.conf"), *overrides], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        from tests.test_turn import _answers_stun

        deadline = time.monotonic() + 10
        while not _answers_stun(port):
            assert proc.poll() is None, f"coturn rejected turnserver.conf:\n{log.read_text()}"
            assert time.monotonic() < deadline, "coturn did not answer with turnserver.conf"
        assert "Default realm: turn.example.org" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(5)


# --- The entrypoint ---------------------------------------------------------------------------------


def fake_ghosttalk(bin_dir: Path) -> None:
    write_executable(
        bin_dir / "ghosttalk",
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"secrets = {SECRETS!r}\n"
        "print(json.dumps({'argv': sys.argv[1:], 'env': {k: os.environ.get(k) for k in secrets}}))\n",
    )


def run_entrypoint(tmp_path: Path, *args: str, **env: str) -> dict[str, Any]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake_ghosttalk(bin_dir)
    environment = clean_env(PATH=f"{bin_dir}:{os.environ['PATH']}", **env)
    result = subprocess.run([str(ENTRYPOINT), *args], env=environment, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    output: dict[str, Any] = json.loads(result.stdout)
    output["stderr"] = result.stderr
    return output


def test_entrypoint_passes_arguments_as_given_and_settings_through_the_environment(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # Every secret setting (ADMIN_KEY, TURN_PASS, TURN_SECRET, REDIS_URL, ...) with a value of its own.
    secrets = {name: f"{name.lower()}-secret" for name in SECRETS}
    assert {"ADMIN_KEY", "TURN_PASS", "TURN_SECRET", "REDIS_URL"} <= set(secrets)
    out = run_entrypoint(
        tmp_path, "--log-level", "debug", "--config", "/etc/ghosttalk.toml",
        PORT="9000", TURN_USER="ghost", DATA_DIR=str(data), **secrets,
    )  # fmt: skip
    # No setting becomes a flag: ghosttalk reads each variable itself, so a secret never reaches argv.
    assert out["argv"] == ["--log-level", "debug", "--config", "/etc/ghosttalk.toml"]
    assert out["env"] == secrets
    assert data.is_dir()


def test_entrypoint_subcommands_and_other_commands(tmp_path: Path) -> None:
    out = run_entrypoint(tmp_path, "join", "http://x/r/a", "--name", "n", PORT="9000")
    assert out["argv"] == ["join", "http://x/r/a", "--name", "n"]
    out = run_entrypoint(tmp_path, "config", "--json")
    assert out["argv"] == ["config", "--json"]
    out = run_entrypoint(tmp_path, "serve", "--port", "1", DATA_DIR=str(tmp_path / "d"))
    assert out["argv"] == ["--port", "1"]
    out = run_entrypoint(tmp_path, DATA_DIR=str(tmp_path / "d"))
    assert out["argv"] == []
    result = subprocess.run([str(ENTRYPOINT), "echo", "hello"], env=clean_env(), capture_output=True, text=True)
    assert result.stdout == "hello\n"


def test_entrypoint_refuses_an_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_ghosttalk(bin_dir)
    result = subprocess.run(
        [str(ENTRYPOINT)],
        env=clean_env(PATH=f"{bin_dir}:{os.environ['PATH']}", DATA_DIR=str(blocker / "data")),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "is not a writable directory" in result.stderr
    assert result.stdout == ""  # ghosttalk never started


def test_entrypoint_runs_a_real_server_and_its_healthcheck(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # What `pip install` puts on PATH in the image, pointing at this checkout.
    write_executable(bin_dir / "ghosttalk", f'#!/bin/sh\nexec {sys.executable} -m ghosttalk "$@"\n')
    port = free_port()
    env = clean_env(
        PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=str(ROOT), HOST="127.0.0.1", PORT=str(port),
        RTC_UDP_PORT=str(free_port(socket.SOCK_DGRAM)), RTC_BIND="127.0.0.1", RTC_HOST="127.0.0.1",
        DATA_DIR=str(tmp_path / "data"), ADMIN_KEY="entrypoint-admin-key-0123", LOG_FORMAT="json",
    )  # fmt: skip
    log = tmp_path / "console.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(ENTRYPOINT)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log)
        # The admin key came through the environment.
        assert http_status(f"{url}/admin?action=stats&key=entrypoint-admin-key-0123") == 200
        assert http_status(f"{url}/admin?action=stats&key=wrong") == 401
        assert "entrypoint-admin-key-0123" not in " ".join(Path(f"/proc/{proc.pid}/cmdline").read_text().split("\0"))
        health = subprocess.run([str(ENTRYPOINT), "healthcheck"], env=env, capture_output=True, timeout=10)
        assert health.returncode == 0, health.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    down = subprocess.run([str(ENTRYPOINT), "healthcheck"], env=env, capture_output=True, text=True, timeout=10)
    assert down.returncode == 1
    assert "healthcheck:" in down.stderr
    # LOG_FORMAT reached ghosttalk too: its console is JSON lines stamped in UTC.
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert any("listening on" in entry["message"] for entry in entries)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"]) for entry in entries)


# --- The cluster: docker-compose.cluster.yml and the Kubernetes manifests under deploy/ ----------------------

CLUSTER_COMPOSE = ROOT / "docker-compose.cluster.yml"
KUBERNETES = ROOT / "deploy"
SETTING_VARIABLES = frozenset(option.env for option in OPTIONS)
# Variables ghosttalk reads that are not settings: the build's commit (ghosttalk/version.py; the Dockerfile sets it).
EXTRA_VARIABLES = frozenset({"GHOSTTALK_COMMIT"})
# What the compose file's ${...} are given in these tests: the required ones, nothing else (defaults apply).
COMPOSE_ENV = {"ADMIN_KEY": "compose-admin-key-0123", "REDIS_PASSWORD": "compose0redis0password"}
_COMPOSE_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::([-?])([^}]*))?\}")


def compose_interpolate(text: str, env: dict[str, str]) -> str:
    """What docker compose makes of ${VAR}, ${VAR:-default}, ${VAR:?message} and $$ (the forms the files use)."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.groups()
        value = env.get(name, "")
        if operator == "?":
            assert value, f"${{{name}}} is required: {argument}"
        return value or (argument if operator == "-" else "")

    return _COMPOSE_VARIABLE.sub(one, text)


def compose_load(path: Path) -> dict[str, Any]:
    """A compose file as docker compose sees it: parsed first, then ${...} replaced in every string."""

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return compose_interpolate(node, COMPOSE_ENV)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        return node

    loaded = walk(yaml.safe_load(path.read_text()))
    assert isinstance(loaded, dict)
    return loaded


def cluster_compose() -> dict[str, Any]:
    return compose_load(CLUSTER_COMPOSE)


def compose_nodes(compose: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The GhostTalk services of a compose file, by name, with their environment as strings."""
    nodes = {}
    for name, service in compose["services"].items():
        if "ghosttalk" in str(service.get("image", "")):
            nodes[name] = {key: str(value) for key, value in service["environment"].items()}
    return nodes


def test_compose_cluster_nodes_have_their_own_ports_and_share_the_compose_redis() -> None:
    text = CLUSTER_COMPOSE.read_text()
    for line in text.splitlines():
        assert "\t" not in line and (len(line) - len(line.lstrip(" "))) % 2 == 0, line
    compose = cluster_compose()
    services = compose["services"]
    nodes = compose_nodes(compose)
    assert len(nodes) >= 2, "the cluster variant runs at least two GhostTalk nodes"
    for name, env in nodes.items():
        assert services[name]["network_mode"] == "host", name
        unknown = set(env) - SETTING_VARIABLES - EXTRA_VARIABLES
        assert not unknown, f"{name}: not GhostTalk settings: {unknown}"
        assert env["ADMIN_KEY"] == COMPOSE_ENV["ADMIN_KEY"]
        # ghosttalk accepts every value (a malformed REDIS_URL or NODE_ID would stop the node at startup).
        assert resolve({}, env, None).config.redis_url == env["REDIS_URL"], name
    assert re.search(r"ADMIN_KEY: \$\{ADMIN_KEY:\?", text), "ADMIN_KEY must be required, with no default"
    # Each node its own UDP port, HTTP port, data volume and (when set) node id.
    for key in ("RTC_UDP_PORT", "PORT"):
        values = [env[key] for env in nodes.values()]
        assert all(value.isdigit() for value in values) and len(set(values)) == len(values), (key, values)
    ids = [env.get("NODE_ID", "") for env in nodes.values()]
    assert len({i for i in ids if i}) == len([i for i in ids if i]), ids
    volumes = [tuple(services[name]["volumes"]) for name in nodes]
    assert len(set(volumes)) == len(volumes), "two nodes must not write one event log"
    assert all(any(volume.endswith(":/data") for volume in vs) for vs in volumes)
    # Every node points at the compose file's Redis: its address, port and password.
    redis_services = [name for name, service in services.items() if str(service.get("image", "")).startswith("redis")]
    assert len(redis_services) == 1
    redis_service = services[redis_services[0]]
    redis_env = {key: str(value) for key, value in redis_service["environment"].items()}
    command = " ".join(redis_service["command"])
    assert "appendonly yes" in command and "requirepass" in command
    assert COMPOSE_ENV["REDIS_PASSWORD"] not in command, "the password must not be on a command line"
    assert redis_service["network_mode"] == "host"
    assert redis_env["REDIS_BIND"].split() == ["127.0.0.1"], "Redis listens on loopback only by default"
    assert any(volume.endswith(":/data") for volume in redis_service["volumes"]), "the append-only file is kept"
    for name, env in nodes.items():
        url = urllib.parse.urlsplit(env["REDIS_URL"])
        assert url.scheme == "redis", name
        assert url.hostname in redis_env["REDIS_BIND"].split(), name
        assert str(url.port) == redis_env["REDIS_PORT"], name
        assert url.password == redis_env["REDIS_PASSWORD"] == COMPOSE_ENV["REDIS_PASSWORD"], name
        assert "redis" in services[name]["depends_on"], name


def compose_duration(text: str) -> float:
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, text
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_cluster_waits_longer_than_the_drain_and_keeps_the_default_untouched() -> None:
    compose = cluster_compose()
    for name, env in compose_nodes(compose).items():
        drain = float(env.get("DRAIN_TIMEOUT", Config().drain_timeout))
        assert compose_duration(compose["services"][name]["stop_grace_period"]) > drain, name
    # The single-node default has no Redis and no cluster settings.
    default = compose_load(ROOT / "docker-compose.yml")
    assert set(default["services"]) == {"ghosttalk", "coturn"}
    assert not {"REDIS_URL", "WORKERS", "NODE_ID"} & set(default["services"]["ghosttalk"]["environment"])


def kubernetes_documents() -> list[tuple[str, dict[str, Any]]]:
    paths = sorted(p for p in KUBERNETES.rglob("*") if p.suffix in (".yaml", ".yml"))
    assert paths, "no manifests under deploy/"
    documents = []
    for path in paths:
        for document in yaml.safe_load_all(path.read_text()):
            if document is None:
                continue
            where = str(path.relative_to(ROOT))
            assert isinstance(document, dict), where
            assert {"apiVersion", "kind", "metadata"} <= set(document), where
            assert document["metadata"].get("name"), where
            documents.append((where, document))
    return documents


def kubernetes_objects(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in kubernetes_documents() if document["kind"] == kind]


def kubernetes_workload(image: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one Deployment whose container runs ``image``, and that container."""
    found = [
        (deployment, container)
        for deployment in kubernetes_objects("Deployment")
        for container in deployment["spec"]["template"]["spec"]["containers"]
        if image in container["image"].rsplit("/", 1)[-1].split(":")[0]
    ]
    assert len(found) == 1, f"expected one Deployment running {image}, found {len(found)}"
    return found[0]


def container_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each variable's entry (value or valueFrom) by name."""
    entries = container.get("env", [])
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), f"a variable is set twice: {names}"
    return {entry["name"]: entry for entry in entries}


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert len(numbers) == 1, f"no container port named {port}"
    return int(numbers[0])


def example_secret() -> dict[str, str]:
    secrets = kubernetes_objects("Secret")
    assert len(secrets) == 1
    assert secrets[0]["metadata"]["name"] == "ghosttalk"
    data: dict[str, str] = secrets[0]["stringData"]
    return data


def test_kubernetes_ghosttalk_uses_real_settings_and_secrets() -> None:
    _, container = kubernetes_workload("ghosttalk")
    env = container_env(container)
    unknown = set(env) - SETTING_VARIABLES - EXTRA_VARIABLES
    assert not unknown, f"not GhostTalk settings (a misspelt one would be silently ignored): {unknown}"
    assert {"PORT", "RTC_UDP_PORT", "DRAIN_TIMEOUT", "REDIS_URL", "ADMIN_KEY"} <= set(env)
    secret = example_secret()
    for name in ("REDIS_URL", "ADMIN_KEY"):
        reference = env[name].get("valueFrom", {}).get("secretKeyRef")
        assert reference is not None and "value" not in env[name], f"{name} must come from a Secret"
    for name, entry in env.items():
        reference = entry.get("valueFrom", {}).get("secretKeyRef")
        if reference is None:
            assert name not in SECRETS, f"{name} is a secret: take it from a Secret"
            continue
        assert reference["name"] == "ghosttalk"
        assert reference["key"] in secret or reference.get("optional") is True, reference
    # Settings given as values must be ones ghosttalk accepts.
    values = {name: entry["value"] for name, entry in env.items() if "value" in entry}
    assert resolve({}, values, None).config.port == int(values["PORT"])


def test_kubernetes_ghosttalk_pods_use_the_host_network_one_per_node() -> None:
    deployment, container = kubernetes_workload("ghosttalk")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet", "a host-network pod must still resolve Services"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    terms = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert any(
        term["topologyKey"] == "kubernetes.io/hostname"
        and term["labelSelector"]["matchLabels"].items() <= labels.items()
        for term in terms
    ), "two pods with the same host ports must never be placed on one node"
    env = container_env(container)
    udp = [p for p in container["ports"] if p.get("protocol") == "UDP"]
    assert [p["containerPort"] for p in udp] == [int(env["RTC_UDP_PORT"]["value"])]
    # A surge pod could not start beside the old one on its node: replace one at a time.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def test_kubernetes_probes_hit_healthz_on_the_http_port() -> None:
    _, container = kubernetes_workload("ghosttalk")
    http_port = int(container_env(container)["PORT"]["value"])
    for kind in ("readinessProbe", "livenessProbe"):
        probe = container[kind]["httpGet"]
        assert probe["path"] == "/healthz", kind
        assert container_port(container, probe["port"]) == http_port, kind
        assert probe.get("scheme", "HTTP") == "HTTP", kind


def test_kubernetes_grace_period_outlasts_the_drain() -> None:
    deployment, container = kubernetes_workload("ghosttalk")
    env = container_env(container)
    drain = float(env["DRAIN_TIMEOUT"]["value"]) if "DRAIN_TIMEOUT" in env else Config().drain_timeout
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain


def service_for(deployment: dict[str, Any]) -> dict[str, Any]:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    services = [s for s in kubernetes_objects("Service") if s["spec"]["selector"].items() <= labels.items()]
    assert len(services) == 1, f"expected one Service selecting {deployment['metadata']['name']}"
    return services[0]


def test_kubernetes_services_reach_ghosttalk_and_redis() -> None:
    deployment, container = kubernetes_workload("ghosttalk")
    service = service_for(deployment)
    http_port = int(container_env(container)["PORT"]["value"])
    assert [container_port(container, p["targetPort"]) for p in service["spec"]["ports"]] == [http_port]
    assert service["spec"].get("sessionAffinity", "None") == "None"
    # The Redis the Secret's URL names: the Service's name and port, reaching the Redis container's port.
    redis_deployment, redis_container = kubernetes_workload("redis")
    redis_service = service_for(redis_deployment)
    assert redis_service["spec"].get("type", "ClusterIP") == "ClusterIP", "Redis must not be exposed"
    secret = example_secret()
    url = urllib.parse.urlsplit(secret["redis-url"])
    assert url.scheme == "redis"
    assert url.hostname is not None and url.hostname.split(".")[0] == redis_service["metadata"]["name"]
    ports = {p["port"]: p["targetPort"] for p in redis_service["spec"]["ports"]}
    assert url.port in ports, f"the URL's port {url.port} is not the Redis Service's {sorted(ports)}"
    assert container_port(redis_container, ports[url.port]) == 6379  # what redis-server listens on by default
    assert url.password == secret["redis-password"]
    # Redis takes its password from the same Secret key, and not on its command line.
    redis_env = container_env(redis_container)
    assert redis_env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "ghosttalk", "key": "redis-password"}
    command = " ".join(redis_container["command"])
    assert "requirepass" in command and "appendonly yes" in command
    assert secret["redis-password"] not in command
