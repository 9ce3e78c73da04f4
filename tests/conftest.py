"""Shared fixtures."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbreset import reset_database
from myoguide.bootstrap import default_service
from myoguide.service import Service

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def service() -> Service:
    return default_service()


# ---- one real PostgreSQL for the session, from scripts/postgres-test.sh ----------------------

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
            f"PostgreSQL could not be started for the tests: {SCRIPT} start exited "
            f"{proc.returncode}.\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\n"
            f"Install PostgreSQL (Debian: apt-get install postgresql), run as root so the "
            f"script can, or set {PG_URL_ENV} to an existing scratch database.",
            pytrace=False,
        )
    try:
        yield lines[-1]
    finally:
        _stop(directory)


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    """Return the session's PostgreSQL URL with every table dropped first."""
    return reset_database(postgres_url)


# ---- every log line of the run, for tests/test_zz_logs.py --------------------------------------

LOG_CHECK = "test_zz_logs.py"


@pytest.fixture(scope="session", autouse=True)
def suite_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep every in-process log record (with tracebacks) and the servers' output in one folder."""
    # `make test` gives one folder to the parallel run and to the check that follows it.
    given = os.environ.get("MYOGUIDE_TEST_LOG_DIR")
    folder = Path(given) if given else tmp_path_factory.mktemp("suite-logs")
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["MYOGUIDE_TEST_LOG_DIR"] = str(folder)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    handler = logging.FileHandler(folder / f"in-process-{worker}.log")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    # Installed as `serve` installs it: the check below is on what a deployment would log.
    from myoguide.adapters.logsafe import RedactingFilter

    handler.addFilter(RedactingFilter())
    yield folder
    root.removeHandler(handler)
    handler.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the log check last, when the rest of the suite has logged what it logs."""
    items.sort(key=lambda item: item.path.name == LOG_CHECK)
