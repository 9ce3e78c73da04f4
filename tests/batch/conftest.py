"""The batch tests' synthetic export, Spark session (local[2]) and standalone Spark cluster."""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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


@dataclass(frozen=True)
class Cluster:
    """A Spark standalone master and one worker on loopback, and the executors' own Python."""

    master: str
    executor_python: Path
    logs: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process and everything it started (its own process group), waiting a bounded time."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"'{text}' not seen in {log.name} within {seconds:.0f} s:\n{tail}")


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A standalone master and one worker (1 core, 1 GiB) on 127.0.0.1, from the installed pyspark.

    The executors run a Python of their own (scripts/spark-executor-env.sh) without myoguide;
    the runner must ship it. Both daemons are stopped with everything they started.
    """
    pyspark = pytest.importorskip("pyspark", reason="the optional 'spark' extra is not installed")
    for script in ("java.sh", "spark-executor-env.sh"):
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / script)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"scripts/{script} failed: {done.stderr.strip()[-500:]}")
    executor_python = Path(done.stdout.strip().splitlines()[-1])
    home = Path(pyspark.__file__).parent
    base = tmp_path_factory.mktemp("spark-cluster")
    (base / "conf").mkdir()
    # A clean environment: nothing of the driver's virtualenv (PATH, PYTHONPATH) reaches the
    # daemons or the executors they start; every socket and web page on loopback only.
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(base),
        "LANG": "C.UTF-8",
        "SPARK_HOME": str(home),
        "SPARK_CONF_DIR": str(base / "conf"),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_DIRS": str(base / "local"),
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_NO_DAEMONIZE": "1",
        # No REST submission server (a fixed port, 6066): jobs come only from the driver.
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
    }
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    port = _free_port()
    master = f"spark://127.0.0.1:{port}"
    spark_class = str(home / "bin" / "spark-class")
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = base / f"{name}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [spark_class, *args],
                env=env,
                cwd=base,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped whole
            )
        started.append(proc)
        return proc, log

    try:
        m, m_log = start(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--webui-port", str(_free_port()),
        )  # fmt: skip
        _wait_for(m_log, "I have been elected leader", m, 60)
        w, w_log = start(
            "worker",
            "org.apache.spark.deploy.worker.Worker",
            master,
            "--host", "127.0.0.1",
            "--cores", "1",
            "--memory", "1g",
            "--webui-port", str(_free_port()),
            "--work-dir", str(base / "work"),
        )  # fmt: skip
        _wait_for(w_log, "Successfully registered with master", w, 60)
        yield Cluster(master, executor_python, base)
    finally:
        for proc in reversed(started):
            _stop(proc)
