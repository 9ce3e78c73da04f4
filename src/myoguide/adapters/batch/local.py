"""The local runner: groups lines by patient through hash-partitioned spool files on disk.

Memory stays flat whatever the export's size. One pool of `workers` processes does three steps:
find the DM/PM patients in the Condition files (a line is parsed only if it holds an in-scope
code), key every line of the export by patient without building it and spool the DM/PM
patients' lines into buckets sized from the export, then group one bucket at a time per process
and audit each patient with the service's use case (the only full parse of their lines).
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import shutil
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from myoguide.adapters.batch.export import (
    MAX_DECOMPRESSED_BYTES,
    MAX_LINE_BYTES,
    Chunk,
    ExportFile,
    Problems,
    chunks,
    first_line_number,
    read_lines,
)
from myoguide.adapters.batch.keys import key_line
from myoguide.adapters.batch.patient import myositis_patient, patient_row, scope_codes
from myoguide.adapters.batch.runner import RunResult
from myoguide.knowledge.terminology import load_packaged_terminology
from myoguide.service.audit import Auditor

# Grouped in memory per bucket: about this many bytes of in-scope lines (before parsing).
BUCKET_BYTES = 32 * 1024 * 1024
Progress = Callable[[str, int], None]


@dataclass
class ScanStats:
    """What one pass over the export saw."""

    lines: int = 0
    bytes: int = 0
    patients: int = 0
    problems: Problems = field(default_factory=Problems)
    medication_ids: set[str] = field(default_factory=set)


def _bucket(pid: str, n: int) -> int:
    # crc32, not hash(): the same patient must land in the same bucket in every process.
    return zlib.crc32(pid.encode()) % n


class _Where:
    """Turns a chunk's own line numbers into the file's, counting the prefix only when needed."""

    def __init__(self, chunk: Chunk) -> None:
        self.chunk = chunk
        self.base: int | None = None

    def __call__(self, n: int) -> int:
        if self.base is None:
            self.base = first_line_number(self.chunk.file.path, self.chunk.start) - 1
        return self.base + n


# What each worker process keeps between tasks: the use case, set once when the pool starts,
# and what it read from the spool folder (the in-scope ids, the Medications), read once.
_STATE: dict[str, Any] = {}


def _init_worker(
    auditor: Auditor, date: datetime.date, spool: str, max_line: int, max_gzip: int
) -> None:
    _STATE.clear()
    _STATE.update(
        auditor=auditor, date=date, spool=Path(spool), max_line=max_line, max_gzip=max_gzip
    )


# ---- step 1: who has DM or PM --------------------------------------------------------------


def _find_patients(chunk: Chunk) -> set[str]:
    terminology = load_packaged_terminology()
    codes = scope_codes(terminology)
    found: set[str] = set()
    quiet = Problems()  # step 2 reads these lines again and counts their problems once
    for _, line, _complete in read_lines(chunk, quiet, _STATE["max_line"], _STATE["max_gzip"]):
        pid = myositis_patient(line, chunk.file.type, terminology, codes)
        if pid is not None:
            found.add(pid)
    return found


# ---- step 2: key every line, spool the DM/PM patients' lines into buckets ------------------


def _spool_chunk(task: tuple[Chunk, int]) -> ScanStats:
    chunk, nbuckets = task
    spool: Path = _STATE["spool"]
    if "in_scope" not in _STATE:
        _STATE["in_scope"] = frozenset((spool / "scope").read_text().split("\n"))
    in_scope: frozenset[str] = _STATE["in_scope"]
    stats = ScanStats()
    where = _Where(chunk)
    name, file_type = chunk.file.path.name, chunk.file.type
    buckets: dict[int, list[bytes]] = {}
    medications: list[bytes] = []
    for n, line, complete in read_lines(
        chunk, stats.problems, _STATE["max_line"], _STATE["max_gzip"]
    ):
        stats.lines += 1
        stats.bytes += len(line) + 1
        kind, key, extra = key_line(line, file_type, complete)
        if kind == "patient":
            stats.patients += file_type == "Patient"
            if key not in in_scope:
                continue
            if extra is not None:
                stats.medication_ids.add(extra)
            body = line.rstrip(b"\r")
            buckets.setdefault(_bucket(key, nbuckets), []).append(
                key.encode() + b"\t" + body + b"\n"
            )
        elif kind == "problem":
            stats.problems.add(key, name, where(n))
        elif kind == "shared" and key == "Medication" and extra is not None:
            medications.append(extra.encode() + b"\t" + line.rstrip(b"\r") + b"\n")
    # One write per bucket per chunk: the chunk's in-scope lines are a small share of it.
    for b, lines in buckets.items():
        with (spool / f"b{b}-{os.getpid()}.tsv").open("ab") as fh:
            fh.write(b"".join(lines))
    if medications:
        with (spool / f"medication-{os.getpid()}.tsv").open("ab") as fh:
            fh.write(b"".join(medications))
    # read_lines numbers a gzip cut relative to the chunk, which is the whole file: no change.
    return stats


# ---- step 3: group each bucket by patient and audit ----------------------------------------


def _audit_bucket(b: int) -> list[dict[str, Any]]:
    spool: Path = _STATE["spool"]
    if "medications" not in _STATE:
        _STATE["medications"] = dict(_tsv(spool / "medications.tsv"))
    groups: dict[str, list[bytes]] = {}
    for path in sorted(spool.glob(f"b{b}-*.tsv")):
        for key, body in _tsv(path):
            groups.setdefault(key, []).append(body)
    terminology, auditor, date = load_packaged_terminology(), _STATE["auditor"], _STATE["date"]
    rows = []
    for pid in sorted(groups):
        row = patient_row(pid, groups.pop(pid), _STATE["medications"], terminology, auditor, date)
        if row is not None:
            rows.append(row)
    return rows


def _tsv(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (key, line) from a spool file of `key<TAB>line` lines."""
    if not path.exists():
        return
    # split, not splitlines: a lone \r is JSON whitespace and may sit inside a line.
    for line in path.read_bytes().split(b"\n")[:-1]:
        key, _, body = line.partition(b"\t")
        yield key.decode(), body


@dataclass(frozen=True)
class LocalRunner:
    """The local runner (`--engine local`): one pool of `workers` processes on this machine."""

    workers: int = 2
    workdir: Path | None = None
    progress: Progress | None = None
    max_line: int = MAX_LINE_BYTES
    max_gzip: int = MAX_DECOMPRESSED_BYTES
    name: str = "local"

    def run(
        self, files: list[ExportFile], auditor: Auditor, evaluation_date: datetime.date
    ) -> RunResult:
        """Audit the files on this machine."""
        return run_local(
            files,
            auditor,
            evaluation_date,
            workers=self.workers,
            workdir=self.workdir,
            progress=self.progress,
            max_line=self.max_line,
            max_gzip=self.max_gzip,
        )


def run_local(
    files: list[ExportFile],
    auditor: Auditor,
    evaluation_date: datetime.date,
    *,
    workers: int = 2,
    workdir: Path | None = None,
    progress: Progress | None = None,
    max_line: int = MAX_LINE_BYTES,
    max_gzip: int = MAX_DECOMPRESSED_BYTES,
) -> RunResult:
    """Audit an export's files on this machine with one pool of `workers` processes."""
    tick = progress or (lambda _stage, _n: None)
    spool = Path(tempfile.mkdtemp(prefix="myoguide-audit-", dir=workdir))
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    try:
        # The use case reaches the workers once, at start (inherited, or pickled elsewhere).
        with ctx.Pool(
            workers,
            initializer=_init_worker,
            initargs=(auditor, evaluation_date, str(spool), max_line, max_gzip),
        ) as pool:
            # Started after the fork (a thread must not hold the import lock in a child): the
            # parent waits on the workers, and writing the rows needs pyarrow.
            threading.Thread(target=_import_pyarrow, daemon=True).start()
            conditions = [c for c in chunks(files) if c.file.type == "Condition"]
            in_scope: set[str] = set()
            for found in pool.imap_unordered(_find_patients, conditions):
                in_scope |= found
            (spool / "scope").write_text("\n".join(sorted(in_scope)))
            total = sum(f.size for f in files)
            # Several buckets per process, so the last ones finish together.
            nbuckets = max(4 * workers, total // (BUCKET_BYTES * 8) + 1)
            stats = ScanStats()
            tasks = [(c, nbuckets) for c in chunks(files)]
            for part in pool.imap_unordered(_spool_chunk, tasks):
                stats.lines += part.lines
                stats.bytes += part.bytes
                stats.patients += part.patients
                stats.problems.merge(part.problems)
                stats.medication_ids |= part.medication_ids
                tick("read", part.bytes)
            _keep_medications(spool, stats.medication_ids)
            rows: list[dict[str, Any]] = []
            for part_rows in pool.imap_unordered(_audit_bucket, range(nbuckets)):
                rows += part_rows
                tick("audit", 1)
        rows.sort(key=lambda r: r["patient_id"])
        return RunResult(rows, stats.problems, stats.bytes, stats.patients)
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def _import_pyarrow() -> None:
    import pyarrow.json
    import pyarrow.parquet  # noqa: F401


def _keep_medications(spool: Path, wanted: set[str]) -> None:
    """Write the referenced Medication resources (first of each id) to medications.tsv."""
    kept: dict[str, bytes] = {}
    for path in sorted(spool.glob("medication-*.tsv")):
        for key, body in _tsv(path):
            if key in wanted and key not in kept:
                kept[key] = body
    with (spool / "medications.tsv").open("wb") as fh:
        fh.writelines(k.encode() + b"\t" + v + b"\n" for k, v in sorted(kept.items()))
