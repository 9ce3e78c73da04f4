#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium for the browser tests (tests/web).
#
#   scripts/chromium.sh      install the `chromium` package if /usr/bin/chromium is missing
#
# Quiet and quick when Chromium is already there. Never runs `playwright install`: the tests
# drive the system Chromium through Playwright's `executable_path`.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

log() { echo "chromium.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

if [[ -x $CHROMIUM ]]; then
    exit 0
fi

command -v apt-get >/dev/null 2>&1 ||
    die "$CHROMIUM is missing and apt-get is not available: install Chromium so that $CHROMIUM exists"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null ||
        die "$CHROMIUM is missing and installing it needs root (or password-less sudo): apt-get install chromium"
    sudo=(sudo -n)
fi
log "installing chromium from the Debian archive"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends chromium >&2
[[ -x $CHROMIUM ]] || die "the chromium package was installed but $CHROMIUM is still missing"
