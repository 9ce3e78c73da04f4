"""Store fixtures: one database URL per backend, SQLite in a temp file and a real PostgreSQL.

PostgreSQL is the session's `postgres_url` (tests/conftest.py). Its tables are dropped before
each test, so point MYOGUIDE_TEST_PG_URL only at a scratch database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from dbreset import reset_database
from myoguide.adapters.store import FeedbackStore, make_engine, upgrade


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return a database URL for each backend the store supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'myoguide.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def empty_url(database_url: str) -> str:
    """Return the backend's URL after dropping every table, Alembic's included."""
    return reset_database(database_url)


@pytest.fixture
def migrated_url(empty_url: str) -> str:
    """Return the backend's URL with a fresh schema migrated to head."""
    upgrade(empty_url)
    return empty_url


@pytest.fixture
def store(migrated_url: str) -> Iterator[FeedbackStore]:
    """Yield a FeedbackStore on a freshly migrated database of each backend."""
    engine = make_engine(migrated_url)
    try:
        yield FeedbackStore(engine)
    finally:
        engine.dispose()


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    """Yield an engine on a freshly migrated database of each backend."""
    created = make_engine(migrated_url)
    try:
        yield created
    finally:
        created.dispose()
