"""Online backup and restore of a SQLite store, by SQLite's own backup API.

The API copies a consistent snapshot page by page while the service keeps writing (WAL), so a
backup needs no downtime. PostgreSQL is backed up with pg_dump (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from myoguide.adapters.store.db import BUSY_TIMEOUT_MS, normalise_url


class BackupError(ValueError):
    """The backup cannot be made or restored; the message says why."""


def sqlite_path(url: str) -> Path | None:
    """Return the file of a SQLite URL, or None for PostgreSQL (or an in-memory database)."""
    parsed = normalise_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def _connect(path: Path) -> sqlite3.Connection:
    """Open a SQLite file with the store's busy timeout."""
    return sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)


def _private_file(path: Path) -> None:
    """Create an empty file readable by the owner only (0600); BackupError if it exists."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        raise BackupError(f"{path} already exists") from None


def _check(conn: sqlite3.Connection, what: Path) -> None:
    """Raise BackupError unless SQLite finds the database whole."""
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{what} is not a readable SQLite database ({exc})") from None
    if result is None or result[0] != "ok":
        raise BackupError(f"{what} fails SQLite's integrity check")


def backup_sqlite(source: Path, dest: Path) -> None:
    """Copy the live database at `source` into the new file `dest` (0600), then check the copy."""
    if not source.exists():
        raise BackupError(f"there is no database at {source}")
    _private_file(dest)
    src = _connect(source)
    try:
        dst = _connect(dest)
        try:
            src.backup(dst)
            # One self-contained file: no -wal or -shm beside it to forget.
            dst.execute("PRAGMA journal_mode=DELETE")
            _check(dst, dest)
        finally:
            dst.close()
    finally:
        src.close()


def has_tables(path: Path) -> bool:
    """Tell whether the SQLite file at `path` holds any table (a store already in use)."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    conn = _connect(path)
    try:
        row = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
    finally:
        conn.close()
    return bool(row and row[0])


def restore_sqlite(backup: Path, target: Path) -> None:
    """Replace the database at `target` with the backup's content (the service stopped)."""
    if not backup.is_file():
        raise BackupError(f"there is no database backup at {backup}")
    src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        _check(src, backup)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(BackupError):
            _private_file(target)
        dst = _connect(target)
        try:
            src.backup(dst)
            _check(dst, target)
        finally:
            dst.close()
    finally:
        src.close()
