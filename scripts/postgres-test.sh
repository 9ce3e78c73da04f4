#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the store tests, on 127.0.0.1 only, trust auth.
#
#   scripts/postgres-test.sh [start] [DIR]   start a cluster in DIR (default: a new temp dir)
#                                            and print its URL on stdout; if the cluster in DIR
#                                            is already running, just print its URL again
#   scripts/postgres-test.sh stop DIR        stop the cluster in DIR and delete DIR
#   scripts/postgres-test.sh install         only install PostgreSQL if initdb/pg_ctl are missing
#
# Installs Debian's postgresql package first if initdb/pg_ctl are missing. As root, the
# cluster runs as the `postgres` OS user, because initdb and postgres refuse to run as root.
# Everything except the URL goes to stderr.
set -euo pipefail

DB_NAME=${MYOGUIDE_PG_DB:-myoguide_test}
MARKER=.myoguide-postgres-test

log() { echo "postgres-test: $*" >&2; }
die() {
    log "$*"
    exit 1
}

usage() {
    echo "usage: $0 [start] [DIR] | $0 stop DIR" >&2
    exit 2
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# Prints the directory holding initdb and pg_ctl: PATH first, then Debian's versioned dirs.
find_bindir() {
    local initdb dir
    if initdb=$(command -v initdb 2>/dev/null); then
        dir=$(dirname "$(readlink -f "$initdb")")
        if [[ -x $dir/pg_ctl ]]; then
            echo "$dir"
            return 0
        fi
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x $dir/initdb && -x $dir/pg_ctl ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

install_postgres() {
    local sudo=()
    command -v apt-get >/dev/null 2>&1 ||
        die "initdb/pg_ctl not found and apt-get is not available: install PostgreSQL, or set MYOGUIDE_TEST_PG_URL"
    if ! is_root; then
        command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null ||
            die "initdb/pg_ctl not found and installing PostgreSQL needs root (or password-less sudo)"
        sudo=(sudo -n)
    fi
    log "installing PostgreSQL from the Debian archive"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends postgresql >&2
}

ensure_owner_account() {
    if is_root && ! id postgres >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --shell /bin/sh postgres
    fi
}

# Runs a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
    if ! is_root; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    else
        echo $((20000 + RANDOM % 40000))
    fi
}

url_for() { echo "postgresql://postgres@127.0.0.1:$1/$DB_NAME"; }

start() {
    local dir=${1:-} bindir port attempt started=
    bindir=$(find_bindir) || {
        install_postgres
        bindir=$(find_bindir) || die "PostgreSQL was installed but initdb/pg_ctl are still missing"
    }
    ensure_owner_account
    if [[ -z $dir ]]; then
        dir=$(mktemp -d "${TMPDIR:-/tmp}/myoguide-pg.XXXXXX")
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ ! -e $dir/$MARKER ]] && [[ -n $(ls -A "$dir") ]]; then
        die "$dir is not empty and was not made by this script"
    fi
    touch "$dir/$MARKER"
    chmod 700 "$dir"
    if is_root; then
        chown -R postgres: "$dir"
    fi
    as_owner test -w "$dir" ||
        die "the postgres user cannot write to $dir; use a directory outside private parents (e.g. under /tmp)"
    # The owner may not be able to read the caller's working directory.
    cd "$dir"

    if [[ -f $dir/port ]] && as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        url_for "$(cat "$dir/port")"
        return 0
    fi
    if [[ ! -f $dir/data/PG_VERSION ]]; then
        as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale \
            --no-sync >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            die "initdb failed in $dir/data"
        }
    fi
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        # fsync off: the cluster is thrown away after the run, so crash safety buys nothing.
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$dir' -c fsync=off -c full_page_writes=off" \
            start >/dev/null 2>&1; then
            started=1
            break
        fi
        log "start attempt $attempt on port $port failed; retrying"
    done
    if [[ -z $started ]]; then
        tail -n 20 "$dir/server.log" >&2 || true
        die "could not start PostgreSQL in $dir (log: $dir/server.log)"
    fi
    echo "$port" >"$dir/port"
    if [[ -z $("$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") ]]; then
        "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB_NAME"
    fi
    log "cluster in $dir; stop it with: $0 stop $dir"
    url_for "$port"
}

stop() {
    local dir=${1:-} bindir
    [[ -n $dir ]] || usage
    [[ -d $dir ]] || return 0
    dir=$(cd "$dir" && pwd)
    [[ -e $dir/$MARKER ]] || die "$dir was not made by this script; not touching it"
    cd "$dir"
    if [[ -f $dir/data/postmaster.pid ]] && bindir=$(find_bindir); then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
            as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    cd /
    rm -rf "$dir"
}

case ${1:-start} in
install) find_bindir >/dev/null || install_postgres ;;
start) start "${2:-}" ;;
stop) stop "${2:-}" ;;
*) usage ;;
esac
