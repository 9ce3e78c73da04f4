"""Engines, sessions and schema migrations for the store, on SQLite or PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from myoguide.errors import StoreUnavailable

DEFAULT_FILENAME = "myoguide.db"
BUSY_TIMEOUT_MS = 10_000
MIGRATIONS = "migrations"

# Execution option asking SQLite for BEGIN IMMEDIATE, so writers queue on the busy timeout
# instead of failing with SQLITE_BUSY when a deferred reader later tries to write.
_WRITE_OPTION = "myoguide_write"
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_KEY = 0x6D796F67
# Serialises appends to the hash chain on PostgreSQL (SQLite writers are serial already).
_CHAIN_LOCK_KEY = 0x6D796F68


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
    # hide_parameters: a failed statement's message would otherwise carry patient data to logs.
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        _create_private(Path(database))
    engine = create_engine(
        parsed, connect_args={"timeout": busy_timeout_ms / 1000}, hide_parameters=True
    )
    _configure_sqlite(engine, busy_timeout_ms)
    return engine


def _create_private(path: Path) -> None:
    """Create the database file (and its folder) readable by the owner only, if absent."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created here, not by SQLite, which would honour the umask (often world-readable).
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


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


# Whether the last real write to each database (by URL) succeeded: the health probe's one-row
# write can succeed in space SQLite already holds while a save does not.
_LAST_WRITE_OK: dict[str, bool] = {}


def note_write(engine: Engine) -> bool | None:
    """Return whether the last real write to this engine's database succeeded (None: none yet)."""
    return _LAST_WRITE_OK.get(engine.url.render_as_string(hide_password=True))


# One lock per SQLite database file, held by this process's writers from BEGIN IMMEDIATE to
# commit. SQLite has one writer at a time anyway; without this, a thread finding the file
# locked by another thread of the same process waits in SQLite's busy handler, which sleeps
# 1, 2, 5, 10... ms between tries (a 3 ms write made its neighbour wait 3-12 ms). Waiting on
# this lock, it starts the moment the write before it commits. Other processes still meet the
# busy timeout. Re-entrant: a nested write in one thread behaves as it did without it.
_SQLITE_WRITERS: dict[str, threading.RLock] = {}
_SQLITE_WRITERS_LOCK = threading.Lock()


@contextmanager
def _writer_lock(engine: Engine | None) -> Iterator[None]:
    """Hold the lock this process's writers to a SQLite file share (none for PostgreSQL).

    Waits no longer than SQLite's own busy timeout would, and fails as it would.
    """
    if engine is None or engine.dialect.name != "sqlite":
        yield
        return
    key = engine.url.render_as_string(hide_password=True)
    with _SQLITE_WRITERS_LOCK:
        lock = _SQLITE_WRITERS.setdefault(key, threading.RLock())
    if not lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
        raise OperationalError("waiting for this process's other writer", None, TimeoutError())
    try:
        yield
    finally:
        lock.release()


@contextmanager
def write_session(sessions: sessionmaker[Session], *, probe: bool = False) -> Iterator[Session]:
    """Open a session in a write transaction that commits on normal exit, else rolls back."""
    bind = sessions.kw.get("bind")
    engine = bind if isinstance(bind, Engine) else None
    key = engine.url.render_as_string(hide_password=True) if engine is not None else None
    with (
        _noted(None if probe else key, (OperationalError,)),
        _writer_lock(engine),
        sessions.begin() as session,
    ):
        session.connection(execution_options={_WRITE_OPTION: True})
        yield session


@contextmanager
def _noted(key: str | None, errors: tuple[type[Exception], ...]) -> Iterator[None]:
    """Note whether a write to the database `key` names succeeded; its failure is refused.

    A probe's write (key None) is not noted.
    """
    try:
        yield
    except errors:
        if key is not None:
            _LAST_WRITE_OK[key] = False
        # Full or read-only disk, lost server, lock timeout: nothing was saved. The message is
        # left out on purpose: it may quote the statement.
        raise StoreUnavailable("the record cannot be written just now") from None
    if key is not None:
        _LAST_WRITE_OK[key] = True


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """Open a Core connection in a write transaction (as `write_session`, without the ORM).

    For a hot path of a few statements: the ORM session costs more than they do.
    """
    with (
        _noted(engine.url.render_as_string(hide_password=True), (OperationalError,)),
        _writer_lock(engine),
        engine.connect().execution_options(**{_WRITE_OPTION: True}) as conn,
        conn.begin(),
    ):
        yield conn


@dataclass(frozen=True)
class DriverSql:
    """A Core statement compiled once for one engine's driver: its SQL and parameter order."""

    sql: str
    order: tuple[str, ...] | None  # None: the driver takes named parameters

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        """Return the values in the form the driver takes (positional or named)."""
        return values if self.order is None else tuple(values[name] for name in self.order)


def driver_sql(statement: ClauseElement, engine: Engine) -> DriverSql:
    """Compile a Core statement for the engine's dialect, once, for `write_cursor`."""
    compiled = statement.compile(dialect=engine.dialect)
    if not isinstance(compiled, SQLCompiler):
        raise TypeError("driver_sql compiles SQL statements only")
    order = tuple(compiled.positiontup or ()) if compiled.positional else None
    return DriverSql(str(compiled), order)


@contextmanager
def write_cursor(engine: Engine) -> Iterator[DBAPICursor]:
    """Open a driver cursor in a write transaction, as `write_connection` without Core.

    For the one hot write of every CDS call (ADR 0044): a pooled connection's driver cursor
    costs about a third of Core's execution layer per call. Statements come from `driver_sql`
    with values of the driver's own types. Any driver error means the record was not written.
    """
    key = engine.url.render_as_string(hide_password=True)
    driver_error = engine.dialect.loaded_dbapi.Error
    with _noted(key, (OperationalError, driver_error)), _writer_lock(engine):
        # Pooled as Core's are: pre-ping and the connect event's pragmas apply.
        conn = engine.raw_connection()
        try:
            cursor = conn.cursor()
            if engine.dialect.name == "sqlite":
                # Core's `begin` event is not run for a driver connection: the same BEGIN.
                cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except driver_error:
                # Lost with its server: not put back in the pool.
                conn.invalidate()
            raise
        finally:
            conn.close()


def chain_lock(session: Session) -> None:
    """Hold the hash chain's lock until the session's transaction ends (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK_KEY})


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


def upgrade(url: str, chain_key: bytes | None = None) -> None:
    """Migrate the database at `url` to the newest revision; safe to call at every start.

    `chain_key` is the key revision 0006 seals an existing record's chains with (ADR 0018).
    """
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
                config.attributes["chain_key"] = chain_key
                command.upgrade(config, "head")
    finally:
        engine.dispose()
