"""One name for the data volume (event log, ban list) in every way of running the image: docker compose,
the `docker run` examples (DEPLOY.md, the Dockerfile's comment, the README) and scripts/deploy_ssh.sh, so
that moving from one to another keeps the bans.

Docker compose itself is not installed here, so the compose file is read as compose reads it: a volume
without a ``name`` gets the project name as a prefix.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOLUME = "ghosttalk-data"
DEFAULT_CONTAINER = "ghosttalk"


def compose_volume_name(text: str) -> str:
    """The Docker volume compose mounts on /data, with the environment's defaults substituted."""
    (key,) = re.findall(r"^      - ([\w.-]+):/data$", text, re.M)
    top_level = text.split("\nvolumes:\n", 1)[1]
    block = re.search(rf"^  {re.escape(key)}:\n((?:    .*\n?)*)", top_level, re.M)
    assert block is not None, key
    named = re.search(r"^    name: (.+)$", block.group(1), re.M)
    if named is None:
        project = re.search(r"^name: (.+)$", text, re.M)
        return f"{project.group(1) if project else ROOT.name}_{key}"
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda match: match.group(2), named.group(1).strip())


def test_compose_docker_run_and_deploy_ssh_use_one_volume() -> None:
    assert compose_volume_name((ROOT / "docker-compose.yml").read_text()) == VOLUME
    for doc in ("DEPLOY.md", "Dockerfile", "README.md"):
        for line in (ROOT / doc).read_text().splitlines():
            mounts = re.findall(r"-v (\S+):/data\b", line)
            assert all(mount == VOLUME for mount in mounts), (doc, line)
    deploy = (ROOT / "scripts" / "deploy_ssh.sh").read_text()
    assert f'CONTAINER_NAME="${{CONTAINER_NAME:-{DEFAULT_CONTAINER}}}"' in deploy
    (mount,) = re.findall(r'-v "([^"]+):/data"', deploy)
    assert mount.replace("$CONTAINER_NAME", DEFAULT_CONTAINER) == VOLUME
    # Compose follows CONTAINER_NAME as deploy_ssh.sh does, so two deployments on one host keep apart.
    assert "${CONTAINER_NAME:-ghosttalk}-data" in (ROOT / "docker-compose.yml").read_text()
