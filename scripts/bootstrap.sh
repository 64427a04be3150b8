#!/usr/bin/env bash
# Shared by serve.sh and test.sh: install Debian packages when missing, and the project into .venv.
# Usage: scripts/bootstrap.sh EXTRA [DEBIAN_PACKAGE ...]   (EXTRA is a pip extra such as "fast" or "test")
set -euo pipefail
cd "$(dirname "$0")/.."

extra=$1
shift
packages=(python3 python3-venv python3-pip "$@")

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
# pip runs only when .venv has not been installed with this extra from this very pyproject.toml, so that a
# start with nothing changed neither waits for pip nor needs the package index (it works offline). The
# project is installed editable: changes to its sources need no reinstall. Delete the stamp to force one.
stamp=.venv/.bootstrap-$extra
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(<"$stamp")" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[$extra]"
    echo "$wanted" >"$stamp"  # only once both installs have succeeded
fi
