#!/usr/bin/env bash
# Builds the Python that the Spark cluster test's executors run (tests/batch/test_cluster.py):
# a separate virtualenv holding only what the audit's executor-side code imports (msgspec,
# orjson, PyYAML, pyarrow; pyspark itself comes from Spark's python/lib zips), at the versions
# pinned in uv.lock, and NOT myoguide: the package and its knowledge must reach the executors
# the way a user ships them (the runner's zip, through addPyFile).
#
#   scripts/spark-executor-env.sh      build var/spark-executor if missing or stale; print its python
#
# Quiet and quick when it is there (a stamp holds the pins it was built from).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV="$ROOT/var/spark-executor"
PACKAGES='^(msgspec|orjson|pyyaml|pyarrow)=='

log() { echo "spark-executor-env.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

if command -v uv >/dev/null 2>&1; then
    uv=(uv)
elif python3 -m uv --version >/dev/null 2>&1; then
    uv=(python3 -m uv)
else
    die "uv is missing: run 'make setup' first"
fi
[[ -x $ROOT/.venv/bin/python ]] || die "$ROOT/.venv is missing: run 'make setup' first"

pins="$(cd "$ROOT" && "${uv[@]}" export --frozen --no-hashes --no-dev --no-emit-project \
    --format requirements-txt --quiet | grep -iE "$PACKAGES" | sed 's/ *;.*//' | sort)"
[[ $(wc -l <<<"$pins") -eq 4 ]] || die "expected 4 pins from uv.lock, got: $pins"
# The executors' Python must be the driver's version (Spark refuses a different minor version).
want="$pins
python $("$ROOT/.venv/bin/python" -c 'import sys; print(sys.version.split()[0])')"

if [[ -x $ENV/bin/python && -f $ENV/.stamp && $(cat "$ENV/.stamp") == "$want" ]]; then
    echo "$ENV/bin/python"
    exit 0
fi
log "building $ENV from the pins in uv.lock"
rm -rf "$ENV"
base="$("$ROOT/.venv/bin/python" -c 'import sys; print(sys._base_executable)')"
UV_PYTHON_DOWNLOADS=never "${uv[@]}" venv --quiet --python "$base" "$ENV" >&2
# shellcheck disable=SC2086 # one argument per pin
UV_PYTHON_DOWNLOADS=never "${uv[@]}" pip install --quiet --python "$ENV/bin/python" $pins >&2
"$ENV/bin/python" -c 'import msgspec, orjson, yaml, pyarrow' ||
    die "the executors' environment was built but does not import its packages"
if "$ENV/bin/python" -c 'import myoguide' 2>/dev/null; then
    die "the executors' environment imports myoguide on its own; it must not"
fi
echo "$want" >"$ENV/.stamp"
echo "$ENV/bin/python"
