"""A Spark standalone master and one worker on loopback, from the installed pyspark.

Shared by the cluster test (conftest.py) and the benchmark (bench/audit.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Cluster:
    """A Spark standalone master and one worker on loopback, and the executors' own Python."""

    master: str
    executor_python: Path
    logs: Path
    pids: tuple[int, ...]  # the daemons, each the leader of its own process group and session


def prepare() -> Path:
    """Install Java 17 and the executors' own Python (no myoguide); return that Python."""
    out = ""
    for script in ("java.sh", "spark-executor-env.sh"):
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / script)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"scripts/{script} failed: {done.stderr.strip()[-500:]}")
        out = done.stdout
    return Path(out.strip().splitlines()[-1])


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


@contextlib.contextmanager
def standalone(
    spark_home: Path, base: Path, executor_python: Path, *, cores: int = 1, memory: str = "1g"
) -> Iterator[Cluster]:
    """Start a master and a worker (`cores`, `memory`) on 127.0.0.1; stop both and all they start.

    A clean environment: nothing of the caller's virtualenv (PATH, PYTHONPATH) reaches the
    daemons or the executors they start; every socket and web page on loopback only.
    """
    (base / "conf").mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(base),
        "LANG": "C.UTF-8",
        "SPARK_HOME": str(spark_home),
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
    spark_class = str(spark_home / "bin" / "spark-class")
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
            "--cores", str(cores),
            "--memory", memory,
            "--webui-port", str(_free_port()),
            "--work-dir", str(base / "work"),
        )  # fmt: skip
        _wait_for(w_log, "Successfully registered with master", w, 60)
        yield Cluster(master, executor_python, base, (m.pid, w.pid))
    finally:
        for proc in reversed(started):
            _stop(proc)
