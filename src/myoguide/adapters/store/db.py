"""Engines, sessions and schema migrations for the store, on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_FILENAME = "myoguide.db"
BUSY_TIMEOUT_MS = 10_000
MIGRATIONS = "migrations"

# Execution option asking SQLite for BEGIN IMMEDIATE, so writers queue on the busy timeout
# instead of failing with SQLITE_BUSY when a deferred reader later tries to write.
_WRITE_OPTION = "myoguide_write"
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_KEY = 0x6D796F67


def default_url(data_dir: Path) -> str:
    """Return the SQLite URL of the store file in `data_dir`."""
    return f"sqlite:///{(data_dir / DEFAULT_FILENAME).resolve()}"


def normalise_url(url: str) -> URL:
    """Parse a database URL, sending plain PostgreSQL URLs to the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"database URL: unsupported backend '{parsed.get_backend_name()}'")
    return parsed


def make_engine(url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Engine:
    """Create an engine for `url`; SQLite files get WAL, foreign keys and a busy timeout."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": busy_timeout_ms / 1000})
    _configure_sqlite(engine, busy_timeout_ms)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory on `engine` whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def write_session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """Open a session in a write transaction that commits on normal exit, else rolls back."""
    with sessions.begin() as session:
        session.connection(execution_options={_WRITE_OPTION: True})
        yield session


def alembic_config() -> Config:
    """Return an Alembic configuration for the packaged migrations, with no ini file."""
    config = Config()
    config.set_main_option("script_location", str(files("myoguide.adapters.store") / MIGRATIONS))
    return config


def head_revision() -> str:
    """Return the newest migration revision shipped with the package."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the packaged migrations have no head revision")
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the migration revision the database is at, or None if it was never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str) -> None:
    """Migrate the database at `url` to the newest revision; safe to call at every start."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # Two processes starting at once must not both run the same revision.
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                config = alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
    finally:
        engine.dispose()
