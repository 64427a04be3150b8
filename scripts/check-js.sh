#!/usr/bin/env bash
# The page's JavaScript (web/static/js): its JSDoc types checked by tsc and the code by ESLint, with the
# versions web/package-lock.json pins (config in web/: tsconfig.json, eslint.config.js). Needs node and npm
# (Debian: nodejs, npm; scripts/test.sh installs them). npm runs only when the lock file changed since the
# last install, so that a run with nothing changed needs no network. Delete web/node_modules to force one.
set -euo pipefail
cd "$(dirname "$0")/../web"
stamp=node_modules/.installed-lock
wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(<"$stamp")" != "$wanted" ]; then
    npm ci --no-audit --no-fund --loglevel=error
    echo "$wanted" >"$stamp"  # npm ci starts from an empty node_modules, so the stamp goes in after it
fi
node_modules/.bin/tsc --noEmit -p .
node_modules/.bin/eslint --max-warnings 0 .
