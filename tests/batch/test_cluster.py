"""The Spark runner on a real standalone cluster (master and worker on loopback, conftest.py).

The executors run a Python of their own that cannot import myoguide (scripts/spark-executor-env.sh):
the package and its knowledge reach them only through the runner's zip (`addPyFile`). The audit is
run as a user runs it, `myoguide audit --engine spark --master spark://...`, in a driver process
of its own, and must give the local runner's rows, problems and exit status.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from myoguide.adapters.batch.synth import synthesize
from myoguide.entrypoints.cli import main

pytestmark = pytest.mark.xdist_group("batch")

DATE = datetime.date(2026, 6, 1)

# The driver: the audit command, then one task that tells where the executors found myoguide.
DRIVER = """
import json, os, sys
from myoguide.entrypoints.cli import main
from myoguide.adapters.batch.spark import session

master, export, out, date = sys.argv[1:5]
code = main(["audit", export, "--out", out, "--engine", "spark", "--master", master,
             "--date", date])

def probe(_):
    import os, sys
    import myoguide
    elsewhere = [p for p in sys.path if not p.endswith(".zip")
                 and os.path.exists(os.path.join(p, "myoguide"))]
    return [sys.executable, myoguide.__file__, elsewhere]

spark = session(master)
where = spark.sparkContext.parallelize([0], 1).map(probe).collect()[0]
spark.stop()
print(json.dumps({"exit": code, "executor": where}))
"""


# Four JVMs (master, worker, driver, executor) start on a 2-core machine: about a minute idle,
# minutes when the machine is busy; still run by `make test`.
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_standalone_cluster_gives_the_local_runners_rows(
    spark_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A small synthetic export: a few DM/PM patients and one bad line of each kind.
    export = tmp_path / "export"
    synthesize(export, 300, seed=5, today=DATE, part_lines=1500)
    # The executors' Python has no myoguide of its own.
    alone = subprocess.run(
        [str(spark_cluster.executor_python), "-c", "import myoguide"],
        capture_output=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert alone.returncode != 0
    assert b"No module named 'myoguide'" in alone.stderr

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPARK_HOME")}
    env.update(PYSPARK_PYTHON=str(spark_cluster.executor_python), SPARK_LOCAL_IP="127.0.0.1")
    on_cluster = tmp_path / "cluster"
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, spark_cluster.master, str(export), str(on_cluster),
         DATE.isoformat()],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=tmp_path,
        timeout=480,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    python, module, elsewhere = got["executor"]
    # The executors ran their own Python and found myoguide only in the zip the runner sent.
    assert Path(python) == spark_cluster.executor_python
    assert "/myoguide.zip/myoguide/" in module
    assert elsewhere == []

    local = tmp_path / "local"
    capsys.readouterr()
    code = main(["audit", str(export), "--out", str(local), "--date", DATE.isoformat()])
    local_err = capsys.readouterr().err
    assert got["exit"] == code == 3  # the synthetic export holds one bad line of each kind
    rows_local = pq.read_table(local / "rows.parquet")
    rows_cluster = pq.read_table(on_cluster / "rows.parquet")
    assert rows_local.num_rows > 5
    assert rows_cluster.equals(rows_local)

    # The same problems, at the same files and lines.
    def skipped(err: str) -> list[str]:
        return [x for x in err.splitlines() if x.startswith("myoguide: skipped")]

    assert skipped(done.stderr) == skipped(local_err)
    assert "(line not known)" not in done.stderr
    assert len(skipped(local_err)) == 3
