"""Store fixtures: one database URL per backend, SQLite in a temp file and a real PostgreSQL.

PostgreSQL comes from scripts/postgres-test.sh (installing it from Debian if needed) and is
torn down after the session; set MYOGUIDE_TEST_PG_URL to use an existing server instead.
Its tables are dropped before each test, so point that variable only at a scratch database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData

from myoguide.adapters.store import FeedbackStore, make_engine, upgrade

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "postgres-test.sh"
PG_URL_ENV = "MYOGUIDE_TEST_PG_URL"
# Installing PostgreSQL on a clean CI machine is the slow case; apt can take minutes.
START_TIMEOUT_S = 840


def _stop(directory: str) -> None:
    subprocess.run(
        ["bash", str(SCRIPT), "stop", directory], capture_output=True, text=True, timeout=120
    )
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Yield the URL of a PostgreSQL database: MYOGUIDE_TEST_PG_URL, or a throwaway cluster."""
    configured = os.environ.get(PG_URL_ENV)
    if configured:
        yield configured
        return
    # Not pytest's tmp_path: that is private to root, and the cluster runs as `postgres`.
    directory = tempfile.mkdtemp(
        prefix="myoguide-pg-", dir="/tmp" if os.path.isdir("/tmp") else None
    )
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPT), "start", directory],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        _stop(directory)
        pytest.fail(
            f"PostgreSQL did not start within {START_TIMEOUT_S}s via {SCRIPT}: {exc.stderr!r}. "
            f"Set {PG_URL_ENV} to use an existing server.",
            pytrace=False,
        )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("postgresql://"):
        _stop(directory)
        pytest.fail(
            f"PostgreSQL could not be started for the store tests: {SCRIPT} start exited "
            f"{proc.returncode}.\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\n"
            f"Install PostgreSQL (Debian: apt-get install postgresql), run as root so the "
            f"script can, or set {PG_URL_ENV} to an existing scratch database.",
            pytrace=False,
        )
    try:
        yield lines[-1]
    finally:
        _stop(directory)


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
    engine = make_engine(database_url)
    try:
        existing = MetaData()
        existing.reflect(engine)
        existing.drop_all(engine)
    finally:
        engine.dispose()
    return database_url


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
