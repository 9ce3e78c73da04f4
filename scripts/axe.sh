#!/usr/bin/env bash
# Makes sure axe-core (from the npm registry, the version pinned in tests/web/axe/package-lock.json)
# is in tests/web/axe/node_modules for the browser tests, which inject it into each page.
#
#   scripts/axe.sh      install it if missing; quiet and quick when it is there
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/web/axe"
AXE="$DIR/node_modules/axe-core/axe.min.js"

log() { echo "axe.sh: $*" >&2; }

if [[ -f $AXE ]]; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || {
    log "npm is missing: install Node.js and npm (Debian: apt-get install npm)"
    exit 1
}
log "installing axe-core from the npm registry into $DIR"
# `ci` installs exactly the locked version; no install scripts are needed or run.
npm ci --prefix "$DIR" --no-audit --no-fund --ignore-scripts --silent >&2
[[ -f $AXE ]] || {
    log "npm finished but $AXE is still missing"
    exit 1
}
