"""What IT runs besides `serve` (ADR 0029): configuration from the command line and the
environment, migrations apart, backup and restore.

Part of the entry points (it wires through the composition root); kept apart from
`bootstrap.py`, which builds the service itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from myoguide.bootstrap import (
    ServeConfig,
    chain_anchor,
    chain_keys,
    data_folder,
    database_url,
    is_loopback,
    resolve_settings,
    verify_record,
)
from myoguide.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy import Engine as DbEngine


def migration_state(engine: DbEngine) -> tuple[str | None, str]:
    """Return the revision the database is at (None: never migrated) and this release's."""
    from myoguide.adapters.store import current_revision, head_revision

    return current_revision(engine), head_revision()


def migrate(config: ServeConfig) -> str:
    """Run the store's migrations on the configured database; return what was done, in words."""
    from myoguide.adapters.store import make_engine, upgrade

    url = database_url(config)
    engine = make_engine(url)
    try:
        before, head = migration_state(engine)
        upgrade(url, chain_key=chain_keys(config.data_dir).keys[0])
        after, _ = migration_state(engine)
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        return f"{where}: already at revision {after} (current)"
    return f"{where}: migrated from revision {before or 'none'} to {after} (head {head})"


BACKUP_DB, BACKUP_HEAD = "myoguide.db", "chain_head.json"


def _sqlite_store(config: ServeConfig, verb: str) -> Path:
    """Return the configured SQLite file; InputError naming the setting for PostgreSQL."""
    from myoguide.adapters.store.backup import sqlite_path

    path = sqlite_path(database_url(config))
    if path is None:
        raise InputError(
            "--database-url/DATABASE_URL",
            f"`myoguide {verb}` works on a SQLite store; back up PostgreSQL with pg_dump and "
            "restore with pg_restore, with the chain head file (docs/operations.md)",
        )
    return path


def backup(config: ServeConfig, folder: Path) -> str:
    """Write an online backup of the store and the chains' head file into a new folder."""
    import shutil

    from myoguide.adapters.store.backup import BackupError, backup_sqlite

    source = _sqlite_store(config, "backup")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError("PATH", f"{folder} exists and is not an empty folder")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    head = chain_anchor(config.data_dir, chain_keys(config.data_dir)).path
    # The head first, then the database: the copy is then at least as new as the head it
    # is checked against (a head newer than its record would read as removed rows).
    if head.exists():
        shutil.copy2(head, folder / BACKUP_HEAD)
        os.chmod(folder / BACKUP_HEAD, 0o600)
    try:
        backup_sqlite(source, folder / BACKUP_DB)
    except BackupError as exc:
        raise InputError("PATH", str(exc)) from None
    kept = f" and {BACKUP_HEAD}" if head.exists() else ""
    return (
        f"backed up {source} to {folder / BACKUP_DB}{kept}; keep the chain key "
        "(chain_key or MYOGUIDE_CHAIN_KEY) too, stored apart from the backup"
    )


def restore(config: ServeConfig, folder: Path, *, force: bool) -> tuple[bool, str]:
    """Put a backup folder's store and head file back; return whether the record verifies."""
    import shutil

    from myoguide.adapters.store.backup import BackupError, has_tables, restore_sqlite

    target = _sqlite_store(config, "restore")
    if not (folder / BACKUP_DB).is_file():
        raise InputError("PATH", f"{folder} holds no {BACKUP_DB} (made by `myoguide backup`)")
    if has_tables(target) and not force:
        raise InputError(
            "--force",
            f"{target} already holds a store; stop the service and give --force to replace it",
        )
    data_folder(config.data_dir)
    try:
        restore_sqlite(folder / BACKUP_DB, target)
    except BackupError as exc:
        raise InputError("PATH", str(exc)) from None
    head = chain_anchor(config.data_dir, chain_keys(config.data_dir)).path
    if (folder / BACKUP_HEAD).is_file():
        head.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copy2(folder / BACKUP_HEAD, head)
        os.chmod(head, 0o600)
    else:
        # A head newer than the restored record would read as removed rows.
        head.unlink(missing_ok=True)
    ok, report = verify_record(config)
    return ok, f"restored {folder / BACKUP_DB} to {target}\n{report}"


def serve_config(given: Mapping[str, object]) -> tuple[ServeConfig, int]:
    """Return `serve`'s configuration and worker count: its options over the environment's."""
    from myoguide.adapters.cdshooks.trust import load_trust

    s = resolve_settings(given)
    trust = Path(s.trust) if s.trust else None
    config = ServeConfig(
        issuers=load_trust(trust) if trust else (),
        insecure_dev=s.insecure_dev,
        database_url=s.database_url,
        data_dir=Path(s.data_dir),
        public_base_url=s.public_url,
        max_body_bytes=s.max_body,
        require_login=not is_loopback(s.host),
        demo=s.demo,
        host=s.host,
        port=s.port,
        trust_file=trust.resolve() if trust else None,
        migrate=s.migrate,
    )
    return config, s.workers


def store_config(data_dir: str | None, url: str | None) -> ServeConfig:
    """Return the store's configuration for a command: its options over the environment's."""
    s = resolve_settings({"data_dir": data_dir, "database_url": url})
    return ServeConfig((), False, s.database_url, Path(s.data_dir))


def pending_migration(config: ServeConfig) -> str | None:
    """Return, in words, that the database is behind this release's migrations, or None."""
    from myoguide.adapters.store import make_engine

    engine = make_engine(database_url(config))
    try:
        current, head = migration_state(engine)
    finally:
        engine.dispose()
    if current == head:
        return None
    return (
        f"the database is at revision {current or 'none'}, this release needs {head}: "
        "run `myoguide migrate`"
    )
