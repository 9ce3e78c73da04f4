#!/usr/bin/env bash
# Makes sure a Java 17 runtime is there for the Spark runner's tests (tests/batch).
#
#   scripts/java.sh      install Debian's openjdk-17-jre-headless if `java` is missing
#
# Quiet and quick when Java is already there. Nothing is fetched at run time by the audit itself.
set -euo pipefail

log() { echo "java.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

if command -v java >/dev/null 2>&1; then
    exit 0
fi

command -v apt-get >/dev/null 2>&1 ||
    die "java is missing and apt-get is not available: install openjdk-17-jre-headless"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null ||
        die "java is missing and installing it needs root (or password-less sudo): apt-get install openjdk-17-jre-headless"
    sudo=(sudo -n)
fi
log "installing openjdk-17-jre-headless from the Debian archive"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >&2
command -v java >/dev/null 2>&1 || die "openjdk-17-jre-headless was installed but java is still missing"
