"""The Spark runner (`--engine spark`): the same per-patient steps and use case, applied by Spark.

A light first stage reads only the Condition and Medication files and collects the DM/PM patient
ids and the Medication resources, which are broadcast with the use case. Then one job reads every
line (`spark.read.text`), keys it by patient in `mapInArrow` (problems keyed by nothing),
repartitions by patient, sorts within partitions and audits patient by patient with
`patient_row`, as the local runner does; problem lines ride along to the same single collect.
Needs the optional `spark` extra (pyspark) and Java 17. Problems are reported with their file and
line: each line is numbered within the split Spark read it from, and the driver turns the split's
start into a line number (counting the newlines before it, only in files that had a problem).
A line over `max_line` bytes is reported `too_long`, as by the local runner; Spark's text reader
has read it whole by then (it cannot stream a line past), so the cap bounds what is parsed. So
with `max_gzip`: the lines of a gzip file past that many decompressed bytes are reported (one
`too_big`) and dropped, but Spark has decompressed them.
"""

from __future__ import annotations

import datetime
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from myoguide.adapters.batch.export import (
    _NAME,
    MAX_DECOMPRESSED_BYTES,
    MAX_LINE_BYTES,
    ExportFile,
    Problems,
)
from myoguide.adapters.batch.keys import key_line
from myoguide.adapters.batch.patient import (
    columns,
    myositis_patient,
    patient_row,
    schema,
    scope_codes,
)
from myoguide.adapters.batch.runner import RunResult
from myoguide.errors import InputError
from myoguide.knowledge.terminology import load_packaged_terminology
from myoguide.service.audit import Auditor

# Input partitions per core: more tasks than cores, so no core waits on the last big one.
SPLITS_PER_CORE = 4


def _type_of(uri: str) -> str:
    m = _NAME.match(uri.rsplit("/", 1)[-1])
    return m.group("type") if m else ""


def _name_of(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def _loopback(master: str) -> bool:
    return master.startswith("local") or "//127.0.0.1:" in master or "//localhost:" in master


def session(master: str, executor_python: str | None = None) -> Any:
    """Return the Spark session for `master` (an existing one is reused).

    `executor_python` is the interpreter executors run (`spark.pyspark.python`); by default the
    one the cluster's own configuration names, or this one for a local master.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(
            "--engine", "spark needs the optional 'spark' extra: uv sync --extra spark"
        ) from None
    # Local workers run this interpreter (with myoguide installed) unless told otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName("myoguide-audit")
    if executor_python is not None:
        builder = builder.config("spark.pyspark.python", executor_python)
    if _loopback(master):
        # Spark on this machine talks to itself only: bind the driver to loopback, not to
        # whatever interface the host name resolves to.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    return (
        builder.config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "5000")
        # A gzip file cut short must not end the run (it is reported by the local runner).
        .config("spark.sql.files.ignoreCorruptFiles", "true")
        .getOrCreate()
    )


def package_zip(folder: Path) -> Path:
    """Write the installed myoguide package (code and knowledge files) as a zip for executors."""
    root = Path(__file__).resolve().parents[2]  # the myoguide package folder
    out = folder / "myoguide.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                z.write(path, Path("myoguide") / path.relative_to(root))
    return out


# The Spark applications the package was sent to (SparkContext.getConf() is a copy: a flag set
# there is lost, and a second addPyFile of another myoguide.zip is refused by Spark).
_SHIPPED: set[str] = set()


def ship_package(spark: Any) -> None:
    """Send the package and its knowledge to the executors (`addPyFile`), once per application."""
    sc = spark.sparkContext
    if sc.applicationId in _SHIPPED:
        return
    folder = Path(tempfile.mkdtemp(prefix="myoguide-ship-"))
    sc.addPyFile(str(package_zip(folder)))
    _SHIPPED.add(sc.applicationId)


def spark_schema() -> Any:
    """Return the rows' Spark StructType, derived from their one Arrow schema."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema())


def _lines(spark: Any, paths: list[str]) -> Any:
    """Return the lines of the files as (value: binary, uri: string, start: the split's start)."""
    from pyspark.sql import functions as F

    return spark.read.text(paths).select(
        F.col("value").cast("binary").alias("value"),
        F.col("_metadata.file_path").alias("uri"),
        F.col("_metadata.file_block_start").alias("start"),
    )


def first_lines(path: Path, starts: set[int]) -> dict[int, int]:
    """Return the number (1-based) of the first line Spark reads from a split at each start.

    Spark's text reader (Hadoop's LineRecordReader) reads from a split that starts at s > 0 the
    lines after the first newline at or after s; the line starting at s itself belongs to the
    split before. So its first line is the count of newlines before s, plus 2. One pass per file.
    """
    out = {0: 1} if 0 in starts else {}
    wanted = sorted(s for s in starts if s > 0)
    if not wanted:
        return out
    newlines, pos = 0, 0
    with path.open("rb") as fh:
        for s in wanted:
            while pos < s:
                block = fh.read(min(s - pos, 1 << 20))
                if not block:
                    break
                newlines += block.count(b"\n")
                pos += len(block)
            out[s] = newlines + 2
    return out


@dataclass(frozen=True)
class SparkRunner:
    """The Spark runner (`--engine spark`) on `master`; off this machine it ships the package."""

    master: str = "local[2]"
    executor_python: str | None = None
    max_line: int = MAX_LINE_BYTES
    max_gzip: int = MAX_DECOMPRESSED_BYTES
    name: str = "spark"

    def run(
        self, files: list[ExportFile], auditor: Auditor, evaluation_date: datetime.date
    ) -> RunResult:
        """Audit the files with Spark."""
        return run_spark(
            files,
            auditor,
            evaluation_date,
            master=self.master,
            executor_python=self.executor_python,
            max_line=self.max_line,
            max_gzip=self.max_gzip,
        )


def run_spark(
    files: list[ExportFile],
    auditor: Auditor,
    evaluation_date: datetime.date,
    *,
    master: str = "local[2]",
    executor_python: str | None = None,
    max_line: int = MAX_LINE_BYTES,
    max_gzip: int = MAX_DECOMPRESSED_BYTES,
) -> RunResult:
    """Audit an export's files with Spark; returns the rows (sorted by patient) and problems."""
    import pyarrow as pa

    spark = session(master, executor_python)
    if not master.startswith("local"):
        # Executors elsewhere have their own Python: the package and its knowledge go to them.
        ship_package(spark)
    sc = spark.sparkContext
    sc.setLogLevel("ERROR")
    cores = sc.defaultParallelism
    total = sum(f.size for f in files)
    # Split the input into several partitions per core (text files split at any byte).
    split = max(1 << 20, total // (cores * SPLITS_PER_CORE) + 1)
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(split))
    spark.conf.set("spark.sql.files.openCostInBytes", str(min(split, 4 << 20)))

    # Stage 1 (light): the DM/PM patients and the Medication resources, collected to the driver.
    from pyspark.sql.pandas.types import from_arrow_schema

    small = [str(f.path.resolve()) for f in files if f.type in ("Condition", "Medication")]
    in_scope: set[str] = set()
    medications: dict[str, bytes] = {}
    if small:
        found_arrow = pa.schema(
            [("kind", pa.string()), ("key", pa.string()), ("line", pa.binary())]
        )

        def discover(batches: Iterator[Any]) -> Iterator[Any]:
            terminology = load_packaged_terminology()
            codes = scope_codes(terminology)
            expanded: dict[str, int] = {}  # as in stage 2: nothing past `max_gzip` is used
            for batch in batches:
                kinds: list[str] = []
                keys: list[str] = []
                bodies: list[bytes | None] = []
                for value, uri in zip(
                    batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
                ):
                    if uri.endswith(".gz"):
                        expanded[uri] = expanded.get(uri, 0) + len(value) + 1
                        if expanded[uri] > max_gzip:
                            continue  # reported once, by stage 2
                    if len(value) > max_line:
                        continue  # reported once, by stage 2
                    file_type = _type_of(uri)
                    if file_type == "Condition":
                        pid = myositis_patient(value, file_type, terminology, codes)
                        if pid is not None:
                            kinds.append("p")
                            keys.append(pid)
                            bodies.append(None)
                        continue
                    kind, key, extra = key_line(value, file_type)
                    if kind == "shared" and key == "Medication" and extra is not None:
                        kinds.append("m")
                        keys.append(extra)
                        bodies.append(value.rstrip(b"\r"))
                yield pa.RecordBatch.from_arrays(
                    [
                        pa.array(kinds, pa.string()),
                        pa.array(keys, pa.string()),
                        pa.array(bodies, pa.binary()),
                    ],
                    schema=found_arrow,
                )

        found = _lines(spark, small).mapInArrow(discover, from_arrow_schema(found_arrow))
        for row in found.collect():
            if row["kind"] == "p":
                in_scope.add(row["key"])
            else:
                medications.setdefault(row["key"], bytes(row["line"]))
    shared = sc.broadcast((frozenset(in_scope), medications, auditor, evaluation_date))

    # Stage 2 (one job): key every line, keep the DM/PM patients' lines and the problems.
    keyed_arrow = pa.schema(
        [
            ("pid", pa.string()),
            ("line", pa.binary()),
            ("problem", pa.string()),
            ("file", pa.string()),
            ("start", pa.int64()),
            ("n", pa.int64()),
            ("scanned", pa.int64()),
        ]
    )

    def key_lines(batches: Iterator[Any]) -> Iterator[Any]:
        wanted = shared.value[0]
        # Lines read so far from each split (file, start): a split is read whole, in order,
        # by one task, so a problem's place is its split and its number within it.
        seen: dict[tuple[str, int], int] = {}
        # Decompressed bytes read so far from each gzip file (one split, read whole), and the
        # files found past `max_gzip`: their later lines are dropped, as the local runner
        # stops reading there (Spark has decompressed them all the same).
        expanded: dict[str, int] = {}
        for batch in batches:
            pids: list[str | None] = []
            bodies: list[bytes | None] = []
            problems: list[str | None] = []
            names: list[str | None] = []
            starts: list[int | None] = []
            numbers: list[int | None] = []
            scanned = 0
            for value, uri, start in zip(
                batch.column(0).to_pylist(),
                batch.column(1).to_pylist(),
                batch.column(2).to_pylist(),
                strict=True,
            ):
                n = seen[uri, start] = seen.get((uri, start), 0) + 1
                file_type = _type_of(uri)
                if uri.endswith(".gz"):
                    if expanded.get(uri, 0) > max_gzip:
                        continue
                    expanded[uri] = expanded.get(uri, 0) + len(value) + 1
                if expanded.get(uri, 0) > max_gzip:
                    kind, key = "problem", "too_big"
                elif len(value) > max_line:
                    kind, key = "problem", "too_long"
                else:
                    kind, key, _ = key_line(value, file_type)
                scanned += kind == "patient" and file_type == "Patient"
                if kind == "patient" and key in wanted:
                    pids.append(key)
                    bodies.append(value.rstrip(b"\r"))
                    problems.append(None)
                    names.append(None)
                    starts.append(None)
                    numbers.append(None)
                elif kind == "problem":
                    pids.append(None)
                    bodies.append(None)
                    problems.append(key)
                    names.append(_name_of(uri))
                    starts.append(start)
                    numbers.append(n)
            # One row more carries the count of Patient resources this batch read.
            pids.append(None)
            bodies.append(None)
            problems.append(None)
            names.append(None)
            starts.append(None)
            numbers.append(None)
            counts = [None] * (len(pids) - 1) + [scanned]
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(pids, pa.string()),
                    pa.array(bodies, pa.binary()),
                    pa.array(problems, pa.string()),
                    pa.array(names, pa.string()),
                    pa.array(starts, pa.int64()),
                    pa.array(numbers, pa.int64()),
                    pa.array(counts, pa.int64()),
                ],
                schema=keyed_arrow,
            )

    row_schema = schema()
    extra = [
        ("problem", pa.string()),
        ("file", pa.string()),
        ("start", pa.int64()),
        ("n", pa.int64()),
        ("scanned", pa.int64()),
    ]
    out_arrow = pa.schema([*row_schema, *(pa.field(n, t) for n, t in extra)])

    def audit_partition(batches: Iterator[Any]) -> Iterator[Any]:
        _, meds, aud, date = shared.value
        terminology = load_packaged_terminology()
        current: str | None = None
        group: list[bytes] = []
        rows: list[dict[str, Any]] = []

        def flush() -> None:
            if current is not None:
                row = patient_row(current, group, meds, terminology, aud, date)
                if row is not None:
                    rows.append(row)

        for batch in batches:
            cols = batch.to_pydict()
            for pid, line, problem, name, start, n, scanned in zip(
                cols["pid"],
                cols["line"],
                cols["problem"],
                cols["file"],
                cols["start"],
                cols["n"],
                cols["scanned"],
                strict=True,
            ):
                if pid is None:
                    rows.append(
                        {
                            "problem": problem,
                            "file": name,
                            "start": start,
                            "n": n,
                            "scanned": scanned,
                        }
                    )
                    continue
                if pid != current:
                    flush()
                    current, group = pid, []
                group.append(line)
            if len(rows) >= 1000:
                yield pa.RecordBatch.from_pylist(rows, schema=out_arrow)
                rows = []
        flush()
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=out_arrow)

    keyed = _lines(spark, [str(f.path.resolve()) for f in files]).mapInArrow(
        key_lines, from_arrow_schema(keyed_arrow)
    )
    audited = (
        keyed.repartition(cores * SPLITS_PER_CORE, "pid")
        .sortWithinPartitions("pid")
        .mapInArrow(audit_partition, from_arrow_schema(out_arrow))
    )
    rows: list[dict[str, Any]] = []
    places: list[tuple[str, str, int, int]] = []
    scanned = 0
    names = columns()
    for r in audited.collect():
        if r["problem"] is not None:
            places.append((r["problem"], r["file"], r["start"], r["n"]))
        elif r["scanned"] is not None:
            scanned += r["scanned"]
        else:
            rows.append({c: r[c] for c in names})
    rows.sort(key=lambda r: r["patient_id"])
    return RunResult(rows, _numbered(places, files), sum(f.size for f in files), scanned)


def _numbered(places: list[tuple[str, str, int, int]], files: list[ExportFile]) -> Problems:
    """Return the problems with their file's line numbers, from (kind, file, split start, n)."""
    paths = {f.path.name: f.path for f in files}
    starts: dict[str, set[int]] = {}
    for _, name, start, _ in places:
        starts.setdefault(name, set()).add(start)
    first: dict[str, dict[int, int]] = {}
    for name, s in starts.items():
        try:
            first[name] = first_lines(paths[name], s)
        except (KeyError, OSError):
            first[name] = {}  # not readable here: the line is reported as not known (0)
    problems = Problems()
    # In file order, so the places kept as examples are the first ones, as the local runner's.
    for kind, name, start, n in sorted(places, key=lambda p: (p[1], p[2], p[3])):
        base = first[name].get(start)
        problems.add(kind, name, base + n - 1 if base is not None else 0)
    return problems
