"""The batch tests' synthetic export, Spark session (local[2]) and standalone Spark cluster."""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sparkcluster import Cluster, prepare, standalone

from myoguide.adapters.batch.synth import synthesize

ROOT = Path(__file__).resolve().parents[2]
DATE = datetime.date(2026, 6, 1)


@pytest.fixture(scope="session")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic export of 1,500 patients with one bad line of each kind, in two parts."""
    out = tmp_path_factory.mktemp("export")
    synthesize(out, 1500, seed=11, today=DATE, part_lines=6000)
    return out


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A Spark session on local[2]; skipped (with the reason) only if Java cannot be installed."""
    pytest.importorskip("pyspark", reason="the optional 'spark' extra is not installed")
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "java.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"Java 17 could not be installed: {done.stderr.strip()[-300:]}")
    from myoguide.adapters.batch.spark import session

    s = session("local[2]")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A standalone master and one worker (1 core, 1 GiB) on 127.0.0.1, from the installed pyspark.

    The executors run a Python of their own (scripts/spark-executor-env.sh) without myoguide;
    the runner must ship it. Both daemons are stopped with everything they started.
    """
    pyspark = pytest.importorskip("pyspark", reason="the optional 'spark' extra is not installed")
    try:
        executor_python = prepare()
    except RuntimeError as e:
        pytest.fail(str(e))
    home = Path(pyspark.__file__).parent
    with standalone(home, tmp_path_factory.mktemp("spark-cluster"), executor_python) as cluster:
        yield cluster
