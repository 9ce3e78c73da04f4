#!/usr/bin/env bash
# Makes sure oauth2-mock-server (from the npm registry, the version pinned in
# tests/smart/oauth/package-lock.json) is in tests/smart/oauth/node_modules for the SMART launch
# tests, which start it as their authorization server (tests/smart/oauth/server.mjs).
#
#   scripts/smart-oauth.sh      install it if missing; quiet and quick when it is there
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/smart/oauth"
MOCK="$DIR/node_modules/oauth2-mock-server/package.json"

log() { echo "smart-oauth.sh: $*" >&2; }

if [[ -f $MOCK ]]; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || {
    log "npm is missing: install Node.js (20.19 or later) and npm"
    exit 1
}
log "installing oauth2-mock-server from the npm registry into $DIR"
# `ci` installs exactly the locked versions; no install scripts are needed or run.
npm ci --prefix "$DIR" --no-audit --no-fund --ignore-scripts --silent >&2
[[ -f $MOCK ]] || {
    log "npm finished but $MOCK is still missing"
    exit 1
}
