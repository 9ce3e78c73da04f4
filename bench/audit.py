"""Population audit benchmarks; writes its own section of bench/RESULTS.md (others kept).

    .venv/bin/python bench/audit.py [--patients N] [--part main|hostile|cluster ...]

Throughput: local runner (2 processes) against orjson.loads of the same lines on one core.
Memory: peak RSS of the whole `myoguide audit` process tree at 1x and 4x the export size.
Spark: local[2] against local[1] and against the local runner, on the same (4x) export, large
enough that JVM and Python worker start-up do not dominate.
Hostile files (part `hostile`): peak RSS of the audit's process tree and wall time for a nesting
bomb, a gzip bomb and a long plain line, against 300 MB and 60 s.
Cluster (part `cluster`): a Spark standalone master and worker on loopback (started as the
cluster test starts them, tests/batch/sparkcluster.py) beside Spark local[1] and the local runner,
with the cores each kept busy. Each part rewrites only its own part of the section.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gzip
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
MYOGUIDE = str(ROOT / ".venv" / "bin" / "myoguide")
HEADER = "## Population audit (bench/audit.py)"
HOSTILE = "### Hostile files (bench/audit.py --part hostile)"
CLUSTER = "### Spark standalone cluster (bench/audit.py --part cluster)"
DATE = datetime.date(2026, 6, 1).isoformat()
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def orjson_seconds(export: Path) -> float:
    """Return the CPU seconds orjson.loads takes over every line of the export, one core."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for f in sorted(export.glob("*.ndjson")):
            with f.open("rb") as fh:
                for line in fh:
                    with contextlib.suppress(orjson.JSONDecodeError):
                        orjson.loads(line)
        best = min(best, time.process_time() - start)
    return best


def run_audit(cmd: list[str]) -> None:
    """Run one audit process; fail the benchmark unless it wrote its rows (exit 0, or 3)."""
    done = subprocess.run(cmd, capture_output=True)
    if done.returncode not in (0, 3):
        raise SystemExit(f"{cmd} failed ({done.returncode}): {done.stderr.decode()[-500:]}")


def _cpu_ticks() -> tuple[int, int]:
    """Return the machine's busy and total CPU ticks so far (Linux /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(cmd: list[str]) -> tuple[float, float]:
    """Run one audit process; return its wall time and the cores the machine kept busy meanwhile."""
    cores = os.cpu_count() or 1
    busy0, total0 = _cpu_ticks()
    start = time.perf_counter()
    run_audit(cmd)
    wall = time.perf_counter() - start
    busy1, total1 = _cpu_ticks()
    return wall, cores * (busy1 - busy0) / max(1, total1 - total0)


def peak_rss(cmd: list[str]) -> int:
    """Return the peak RSS (kB) of a fresh process tree (measured in a child of its own)."""
    code = (
        "import resource,subprocess,sys;subprocess.run(sys.argv[1:],capture_output=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True)
    return int(out.stdout.strip())


def _stat(pid: int) -> list[str] | None:
    """Return the fields of /proc/PID/stat after the command name, or None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _procs() -> dict[int, list[str]]:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (fields := _stat(int(d))) is not None:
            out[int(d)] = fields
    return out


def _tree(root: int, procs: dict[int, list[str]]) -> list[int]:
    """Return root and all its descendants (by parent id)."""
    kids: dict[int, list[int]] = {}
    for pid, f in procs.items():
        kids.setdefault(int(f[1]), []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += kids.get(pid, [])
    return out


def _hwm(pid: int) -> int:
    """Return a process's own peak RSS so far in bytes (VmHWM), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_peak(cmd: list[str]) -> tuple[float, float, int]:
    """Run cmd; return wall seconds, peak RSS (MB) of its whole process tree, and exit code.

    Every 20 ms the tree is walked and each process's own peak (VmHWM) kept; the figure is the
    sum of those peaks, an upper bound on the tree's peak (they need not peak together).
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peaks: dict[int, int] = {}
    while proc.poll() is None:
        for pid in _tree(proc.pid, _procs()):
            peaks[pid] = max(peaks.get(pid, 0), _hwm(pid))
        time.sleep(0.02)
    wall = time.perf_counter() - start
    return wall, sum(peaks.values()) / 1e6, proc.returncode


def hostile_files(folder: Path) -> dict[str, Path]:
    """Write three one-problem exports: a nesting bomb, a gzip bomb, a long plain line."""
    patient = orjson.dumps({"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"})
    out = {}
    for name in ("nesting", "gzip", "long"):
        (folder / name).mkdir(parents=True)
        (folder / name / "Patient.000.ndjson").write_bytes(patient + b"\n")
        out[name] = folder / name
    # 1,000,000 levels deep (the crash was at 5,000), 2 MB on one line.
    deep = b'{"resourceType":"Condition","subject":' + b"[" * 1_000_000 + b"]" * 1_000_000 + b"}"
    (out["nesting"] / "Condition.000.ndjson").write_bytes(deep + b"\n")
    # The bomb: a ~1 MB .gz that expands to one 1 GiB line.
    with gzip.open(out["gzip"] / "Observation.000.ndjson.gz", "wb", compresslevel=9) as fh:
        fh.write(b'{"resourceType":"Observation","note":"')
        block = b"x" * (1 << 20)
        for _ in range(1024):
            fh.write(block)
        fh.write(b'"}\n')
    # 1 GiB of one plain line.
    with (out["long"] / "Observation.000.ndjson").open("wb") as fh:
        fh.write(b'{"resourceType":"Observation","note":"')
        for _ in range(1024):
            fh.write(b"y" * (1 << 20))
        fh.write(b'"}\n')
    return out


def part_hostile(tmp: Path) -> list[str]:
    """Measure each hostile file alone (default limits, and the gzip bomb with a 64 MiB limit)."""
    files = hostile_files(tmp / "hostile")
    runs = [
        ("nesting bomb: one line 1,000,000 levels deep (2 MB)", files["nesting"], []),
        ("gzip bomb: 1 GiB line in a {gz} .gz, default limits (line limit 64 MiB)",
         files["gzip"], []),
        ("the same gzip bomb with --max-decompressed-bytes 64 MiB", files["gzip"],
         ["--max-decompressed-bytes", str(64 << 20)]),
        ("long plain line: 1 GiB on one line", files["long"], []),
    ]  # fmt: skip
    gz = (files["gzip"] / "Observation.000.ndjson.gz").stat().st_size
    rows = []
    for i, (what, folder, extra) in enumerate(runs):
        err = tmp / f"h{i}.err"
        cmd = [MYOGUIDE, "audit", "--date", DATE, "--out", str(tmp / f"h{i}"), *extra, str(folder)]
        wrapped = ["sh", "-c", 'exec "$@" 2>"$0"', str(err), *cmd]
        wall, mb, code = tree_peak(wrapped)
        skip = [x for x in err.read_text().splitlines() if x.startswith("myoguide: skipped")]
        named = "; ".join(x.removeprefix("myoguide: skipped ") for x in skip) or "(none)"
        ok = mb < 300 and wall < 60 and code == 3 and bool(skip)
        rows.append(
            f"| {what.format(gz=f'{gz / 1e6:.1f} MB')} | {mb:,.0f} MB | {wall:.1f} s | exit {code}:"
            f" {named} | {'yes' if ok else 'no'} |"
        )
    return [
        HOSTILE,
        "",
        f"Run at {_now()} on {os.cpu_count()} shared cores (1-minute load average"
        f" {os.getloadavg()[0]:.1f} at the end). Each file alone in an export with one Patient;"
        " one `myoguide audit` process (2 workers) each. Peak memory: each process's own peak RSS"
        " (VmHWM, read every 20 ms) summed over the audit's whole process tree, an upper bound.",
        "",
        "| hostile file | peak memory (tree) | wall | skipped as | under 300 MB and 60 s |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def _timed(cmd: list[str], leaders: tuple[int, ...] = ()) -> tuple[float, float]:
    """Run an audit; return its wall time and the cores its own processes kept busy meanwhile.

    Every 100 ms each process of the audit's tree (and of the daemons' sessions, `leaders`) has
    its own CPU time read; the CPU used is the sum over them of the last reading less the first.
    """
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def sample(root: int) -> None:
        procs = _procs()
        pids = set(_tree(root, procs)) | {p for p, f in procs.items() if int(f[3]) in leaders}
        for pid in pids:
            if pid in procs:
                ticks = int(procs[pid][11]) + int(procs[pid][12])  # utime, stime
                first.setdefault(pid, ticks)
                last[pid] = ticks

    for pid, f in _procs().items():  # the daemons' time so far is not the audit's
        if int(f[3]) in leaders:
            first[pid] = int(f[11]) + int(f[12])
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None:
        sample(proc.pid)
        time.sleep(0.1)
    wall = time.perf_counter() - start
    sample(proc.pid)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode not in (0, 3):
        raise SystemExit(f"{cmd} failed ({proc.returncode}): {err[-500:]}")
    cpu = sum(last[p] - first.get(p, last[p]) for p in last) / TICK
    return wall, cpu / wall


def part_cluster(tmp: Path, n: int) -> list[str]:
    """Time the audit on a standalone cluster beside local[1] and the local runner."""
    import pyspark

    sys.path.insert(0, str(ROOT / "tests" / "batch"))
    from sparkcluster import prepare, standalone

    export = tmp / "cx"
    subprocess.run(
        [MYOGUIDE, "synth", "--patients", str(n), "--out", str(export), "--seed", "1"],
        check=True,
        capture_output=True,
    )
    mb = sum(f.stat().st_size for f in export.iterdir()) / 1e6
    audit = [MYOGUIDE, "audit", "--date", DATE, "--out"]
    executor_python = prepare()
    home = Path(pyspark.__file__).parent
    got: dict[str, tuple[float, float]] = {}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPARK_HOME")}
    env.update(PYSPARK_PYTHON=str(executor_python), SPARK_LOCAL_IP="127.0.0.1")
    with standalone(home, tmp / "cluster", executor_python) as cluster:
        old = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            got["standalone"] = _timed(
                [*audit, str(tmp / "c0"), "--engine", "spark", "--master", cluster.master,
                 str(export)],
                cluster.pids,
            )  # fmt: skip
        finally:
            os.environ.clear()
            os.environ.update(old)
    got["local[1]"] = _timed(
        [*audit, str(tmp / "c1"), "--engine", "spark", "--workers", "1", str(export)]
    )
    got["local runner"] = _timed([*audit, str(tmp / "c2"), str(export)])
    rows = [
        f"| {name} | {wall:.1f} s | {cores:.2f} |"
        for name, (wall, cores) in (
            ("Spark standalone: master + 1 worker (1 core, 1 GiB) on loopback, package shipped"
             " as a zip", got["standalone"]),
            ("Spark local[1] (`--workers 1`)", got["local[1]"]),
            ("local runner (2 processes)", got["local runner"]),
        )
    ]  # fmt: skip
    return [
        CLUSTER,
        "",
        f"Run at {_now()} on {os.cpu_count()} shared cores (1-minute load average"
        f" {os.getloadavg()[0]:.1f} at the end). One `myoguide audit` process each (JVM start"
        f" included; the daemons were started before) on {n:,} patients ({mb:,.0f} MB) from"
        " `myoguide synth --seed 1`; one run each, not a best of several. Cores kept busy: CPU"
        " seconds of the audit's own processes (its process tree, the JVM and Python workers"
        " included; for the cluster also every process in the master's and worker's sessions,"
        " executors included), read every 100 ms, divided by the wall time; other users' load"
        " is not counted, but on a loaded machine it caps what the audit can get.",
        "",
        "| runner | wall | cores kept busy |",
        "|---|---|---|",
        *rows,
        "",
    ]


def _now() -> str:
    return f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"


def write_part(header: str, lines: list[str]) -> None:
    """Put `lines` in RESULTS.md in place of the part under `header` (a ### part: in the audit
    section, after what is there)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    body = "\n".join(lines).rstrip() + "\n"
    old = re.compile(rf"(?<=\n){re.escape(header)}\n.*?(?=\n##|\Z)", flags=re.S)
    if old.search(text):
        text = old.sub(lambda _: body, text)
    elif header.startswith("### ") and HEADER in text:
        end = re.compile(rf"(?<=\n){re.escape(HEADER)}\n.*?(?=\n## |\Z)", flags=re.S)
        m = end.search(text)
        assert m is not None
        text = text[: m.end()].rstrip() + "\n\n" + body + text[m.end() :]
    else:
        text = text.rstrip() + "\n\n" + body
    RESULTS.write_text(text)
    print(body)


def main() -> None:
    """Generate exports, measure, and write the section."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=40_000)
    ap.add_argument(
        "--part", action="append", choices=["main", "hostile", "cluster"], help="default all"
    )
    args = ap.parse_args()
    parts = args.part or ["main", "hostile", "cluster"]
    with tempfile.TemporaryDirectory() as tmp:
        if "hostile" in parts:
            write_part(HOSTILE, part_hostile(Path(tmp)))
        if "cluster" in parts:
            write_part(CLUSTER, part_cluster(Path(tmp), args.patients))
    if "main" in parts:
        main_part(args.patients)


def main_part(n: int) -> None:
    """The section's own table: local throughput, memory at 1x and 4x, Spark local[1] and [2]."""
    load_before = os.getloadavg()[0]
    date = datetime.date(2026, 6, 1).isoformat()
    rows: list[tuple[str, str, str, bool]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for k, size in (("1x", n), ("4x", 4 * n)):
            subprocess.run(
                [MYOGUIDE, "synth", "--patients", str(size), "--out", str(t / k), "--seed", "1"],
                check=True,
                capture_output=True,
            )
        mb = sum(f.stat().st_size for f in (t / "1x").iterdir()) / 1e6
        base = orjson_seconds(t / "1x")
        audit = [MYOGUIDE, "audit", "--date", date, "--out"]
        walls = []
        for i in range(3):
            start = time.perf_counter()
            run_audit([*audit, str(t / f"o{i}"), str(t / "1x")])
            walls.append(time.perf_counter() - start)
        local = min(walls)
        ratio = base / local
        rows.append(
            (
                f"local runner throughput, {n:,} patients ({mb:,.0f} MB), 2 processes",
                f"{mb / local:,.1f} MB/s wall ({local:.2f} s, incl. start-up) vs orjson.loads "
                f"{base:.2f} s on one core: ratio {ratio:.2f}x",
                ">= 0.25x",
                ratio >= 0.25,
            )
        )
        m1 = peak_rss([*audit, str(t / "m1"), str(t / "1x")])
        m4 = peak_rss([*audit, str(t / "m4"), str(t / "4x")])
        rows.append(
            (
                "peak memory (largest process), 1x vs 4x export",
                f"{m1 / 1024:,.0f} MB vs {m4 / 1024:,.0f} MB: {m4 / m1:.2f}x",
                "within 1.5x",
                m4 / m1 <= 1.5,
            )
        )
        mb4 = sum(f.stat().st_size for f in (t / "4x").iterdir()) / 1e6
        local4 = float("inf")
        for i in range(2):
            start = time.perf_counter()
            run_audit([*audit, str(t / f"l4{i}"), str(t / "4x")])
            local4 = min(local4, time.perf_counter() - start)
        spark: dict[str, float] = {}
        busy: dict[str, float] = {}
        for cores in (1, 2):
            best = float("inf")
            for i in range(2):
                wall, used = busy_cores(
                    [
                        *audit,
                        str(t / f"s{cores}{i}"),
                        "--engine",
                        "spark",
                        "--workers",
                        str(cores),
                        str(t / "4x"),
                    ]
                )
                if wall < best:
                    best, busy[f"local[{cores}]"] = wall, used
            spark[f"local[{cores}]"] = best
        speedup = spark["local[1]"] / spark["local[2]"]
        # Even one task slot keeps more than one core busy (the JVM reads, shuffles and
        # collects while the Python worker audits), so two slots can gain at most this much.
        ceiling = (os.cpu_count() or 1) / busy["local[1]"]
        rows.append(
            (
                f"Spark local[2] vs local[1], {4 * n:,} patients ({mb4:,.0f} MB), "
                "wall incl. JVM start",
                f"{spark['local[2]']:.1f} s vs {spark['local[1]']:.1f} s: {speedup:.2f}x; "
                f"cores busy meanwhile {busy['local[2]']:.2f} vs {busy['local[1]']:.2f} of "
                f"{os.cpu_count()}, so at most {ceiling:.2f}x is possible on this machine; "
                f"local runner on the same export {local4:.1f} s "
                f"(Spark local[2] takes {spark['local[2]'] / local4:.1f}x as long)",
                ">= 1.6x",
                speedup >= 1.6,
            )
        )
    cpu = os.cpu_count()
    lines = [
        HEADER,
        "",
        f"Run at {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on {cpu} cores (shared;"
        f" 1-minute load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the"
        " end).",
        "",
        "Method: one run of `python bench/audit.py` on exports written by `myoguide synth --seed 1`"
        f" ({n:,} patients = 1x, {4 * n:,} = 4x). Local throughput: best wall of 3 `myoguide"
        " audit` processes (start-up included) on the 1x export, against the CPU time of"
        " orjson.loads over every line of the same files on one core (best of 3), measured in"
        " the same run. Memory: peak RSS of the largest process of the audit's process tree."
        " Spark: best wall of 2 `myoguide audit --engine spark --workers N` processes each (JVM"
        " start included) and best of 2 local-runner processes, all on the 4x export; the cores"
        " busy are the whole machine's (/proc/stat) during that best run.",
        "",
        "| benchmark | measured | target | met |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {'yes' if d else 'no'} |" for a, b, c, d in rows],
        "",
    ]
    write_part(HEADER, lines)


if __name__ == "__main__":
    main()
