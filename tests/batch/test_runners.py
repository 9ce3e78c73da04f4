"""One test base for both runners (as google/fhir-py's runners share `_views_test_base.py`):
every case runs through the local runner and through Spark, and both must give the same rows.

The real-export shapes follow the SMART sample Bulk Data sets (Synthea; github.com/smart-on-fhir/
sample-bulk-fhir-datasets, Apache-2.0): `<Type>.000.ndjson` files, `log.ndjson` beside them,
`Patient/<id>` references, Device.patient, Provenance.target[], deceasedDateTime on Patient.
The resources are written here (no line copied); only their shapes follow the source.
"""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from disclosure import bounds

from myoguide.adapters.batch.export import list_files
from myoguide.adapters.batch.local import LocalRunner
from myoguide.adapters.batch.patient import columns, schema
from myoguide.adapters.batch.report import HIDDEN, protect
from myoguide.adapters.batch.runner import Runner
from myoguide.bootstrap import build_auditor
from myoguide.entrypoints.cli import main

pytestmark = pytest.mark.xdist_group("batch")

DATE = datetime.date(2026, 6, 1)
SNOMED = "http://snomed.info/sct"
DM, PM = "396230008", "31384009"


@pytest.fixture(params=["local", "spark"])
def runner(request: pytest.FixtureRequest) -> Runner:
    """Each runner in turn; Spark on the shared local[2] session."""
    if request.param == "spark":
        request.getfixturevalue("spark")
        from myoguide.adapters.batch.spark import SparkRunner

        return SparkRunner("local[2]")
    return LocalRunner(workers=2)


def _write(folder: Path, name: str, resources: list[dict[str, Any]]) -> None:
    (folder / name).write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))


def _patient(pid: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "gender": "female",
        "birthDate": "1968-02-03",
        **extra,
    }


def _condition(cid: str, subject: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "subject": {"reference": subject},
        "recordedDate": "2019-04-05T10:00:00-04:00",
    }


def real_shaped_export(folder: Path) -> Path:
    """A small export shaped like a Synthea Bulk Data sample, with DM/PM added to three patients."""
    folder.mkdir()
    _write(
        folder,
        "Patient.000.ndjson",
        [
            _patient("dm-living"),
            _patient("pm-living", gender="male"),
            _patient("dm-died", deceasedDateTime="2021-05-09T20:35:22-04:00"),
            _patient("dm-dies-later", deceasedDateTime="2031-01-01T00:00:00Z"),
            _patient("other", deceasedBoolean=True),
            *(_patient(f"p{i}") for i in range(20)),
        ],
    )
    _write(
        folder,
        "Condition.000.ndjson",
        [
            _condition("c1", "Patient/dm-living", DM),
            _condition("c2", "https://ehr.example/fhir/Patient/pm-living", PM),
            _condition("c3", "Patient/dm-died", DM),
            _condition("c4", "Patient/dm-dies-later", DM),
            _condition("c5", "Patient/p1", "44054006"),
            # A reference only a Bundle could resolve: reported for what it is.
            _condition("c6", "urn:uuid:2b1c9a7e-0000-4000-8000-000000000001", "44054006"),
        ],
    )
    _write(
        folder,
        "Provenance.000.ndjson",
        [
            {
                "resourceType": "Provenance",
                "id": f"prov-{i}",
                "target": [{"reference": f"Patient/{p}"}, {"reference": f"Encounter/e{i}"}],
                "recorded": "2020-01-01T00:00:00Z",
                "agent": [{"who": {"reference": "Practitioner?identifier=x|1"}}],
            }
            for i, p in enumerate(["dm-living", "pm-living", "p3"])
        ],
    )
    _write(
        folder,
        "Device.000.ndjson",
        [{"resourceType": "Device", "id": "d1", "patient": {"reference": "Patient/dm-living"}}],
    )
    _write(
        folder,
        "DocumentReference.000.ndjson",
        [
            {
                "resourceType": "DocumentReference",
                "id": "n1",
                "status": "current",
                "subject": {"reference": "Group/g1"},
            }
        ],
    )
    _write(folder, "Organization.000.ndjson", [{"resourceType": "Organization", "id": "o1"}])
    _write(folder, "Location.000.ndjson", [{"resourceType": "Location", "id": "l1"}])
    (folder / "log.ndjson").write_bytes(
        b'{"exportId": "export-1", "eventId": "kickoff", "eventDetail": {}}\n'
    )
    (folder / "manifest.json").write_text("{}")
    return folder


def _audit(runner: Runner, folder: Path) -> Any:
    files, met = list_files(folder)
    result = runner.run(files, build_auditor(), DATE)
    met.merge(result.problems)
    return result, met


def test_real_shaped_export_finds_exactly_the_added_patients(
    runner: Runner, tmp_path: Path
) -> None:
    result, met = _audit(runner, real_shaped_export(tmp_path / "e"))
    by_id = {r["patient_id"]: r for r in result.rows}
    assert set(by_id) == {"dm-living", "pm-living", "dm-died", "dm-dies-later"}
    assert by_id["dm-died"]["course"] == "deceased"
    assert by_id["dm-died"]["first_option"] is None
    assert by_id["dm-died"]["flags"] == []
    # Death after the evaluation date: living on that date, audited as such.
    assert by_id["dm-dies-later"]["course"] != "deceased"
    assert by_id["pm-living"]["diagnosis"] == "polymyositis"
    assert result.patients_scanned == 25
    # Only the urn:uuid Condition is a problem, named for its real cause; the Group-subject note
    # is normal content, and so are log.ndjson and manifest.json (not even noted).
    assert met.total == 1
    assert met.counts == {"urn_uuid": 1, "about_no_patient": 1}
    assert all(tuple(r) == columns() for r in result.rows)


def test_both_runners_give_identical_rows_on_the_real_shaped_export(
    tmp_path: Path, spark: Any
) -> None:
    from myoguide.adapters.batch.spark import SparkRunner, spark_schema

    folder = real_shaped_export(tmp_path / "e")
    local, _ = _audit(LocalRunner(workers=1), folder)
    on_spark, _ = _audit(SparkRunner("local[2]"), folder)
    assert on_spark.rows == local.rows
    # Spark's schema is the Arrow schema's, field for field.
    assert [f.name for f in spark_schema().fields] == schema().names


def test_a_normal_real_export_exits_zero(tmp_path: Path) -> None:
    folder = real_shaped_export(tmp_path / "e")
    (folder / "Condition.000.ndjson").write_bytes(
        b"\n".join(
            x
            for x in (folder / "Condition.000.ndjson").read_bytes().split(b"\n")
            if b"urn" not in x
        )
    )
    out = tmp_path / "o"
    assert main(["audit", str(folder), "--out", str(out), "--date", DATE.isoformat()]) == 0
    page = (out / "report.html").read_text()
    assert DATE.isoformat() in page
    assert "patients scanned" in page
    assert "Dermatomyositis (disorder)" in page  # code meanings from the terminology
    assert page.count("resources of a type the audit does not read that are about") == 1


def _hostile(folder: Path) -> Path:
    folder.mkdir()
    deep = b'{"resourceType":"Condition","subject":' + b"[" * 5000 + b"]" * 5000 + b"}"
    _write(folder, "Patient.000.ndjson", [_patient("dm-living")])
    lines = [orjson.dumps(_condition("c1", "Patient/dm-living", DM)), deep]
    (folder / "Condition.000.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return folder


def test_a_nesting_bomb_is_a_named_skip(runner: Runner, tmp_path: Path) -> None:
    result, met = _audit(runner, _hostile(tmp_path / "e"))
    assert [r["patient_id"] for r in result.rows] == ["dm-living"]
    assert met.counts == {"too_deep": 1}
    assert met.examples["too_deep"] == [("Condition.000.ndjson", 2)]


def test_a_line_over_the_cap_is_a_named_skip_with_its_line(runner: Runner, tmp_path: Path) -> None:
    folder = _hostile(tmp_path / "e")
    long_line = orjson.dumps(_condition("c2", "Patient/dm-living", DM) | {"note": "x" * 16384})
    with (folder / "Condition.000.ndjson").open("ab") as fh:
        fh.write(long_line + b"\n")
    result, met = _audit(dataclasses.replace(runner, max_line=12000), folder)  # type: ignore[type-var]
    assert [r["patient_id"] for r in result.rows] == ["dm-living"]
    assert met.counts == {"too_deep": 1, "too_long": 1}
    assert met.examples["too_long"] == [("Condition.000.ndjson", 3)]


def test_the_line_cap_is_set_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = real_shaped_export(tmp_path / "e")
    out = tmp_path / "o"
    args = ["audit", str(folder), "--out", str(out), "--date", DATE.isoformat()]
    assert main([*args, "--max-line-bytes", "200"]) == 3
    err = capsys.readouterr().err
    # The six Condition and three Provenance lines are over 200 bytes: each is named, with its line.
    assert "9 x a line longer than the line limit" in err
    assert "Condition.000.ndjson:6, Provenance.000.ndjson:1" in err
    assert main([*args, "--max-line-bytes", "0"]) == 2
    assert "--max-line-bytes" in capsys.readouterr().err


def test_a_gzip_bomb_and_a_long_line_are_refused_streamed(tmp_path: Path) -> None:
    folder = _hostile(tmp_path / "e")
    # 256 MiB of one line in a small .gz; and a plain long line: both over the 1 MiB cap here.
    z = gzip.compress(b'{"a":"' + b"x" * (256 << 20) + b'"}\n', compresslevel=9)
    assert len(z) < 2 << 20
    (folder / "Observation.000.ndjson.gz").write_bytes(z)
    (folder / "Encounter.000.ndjson").write_bytes(b"{" + b" " * (8 << 20) + b"}\n{}\n")
    started = time.perf_counter()
    result, met = _audit(LocalRunner(workers=1, max_line=1 << 20), folder)
    assert time.perf_counter() - started < 30
    assert [r["patient_id"] for r in result.rows] == ["dm-living"]
    assert sorted(met.examples["too_long"]) == [
        ("Encounter.000.ndjson", 1),
        ("Observation.000.ndjson.gz", 1),
    ]


def test_a_line_longer_than_many_chunks_is_read_once(tmp_path: Path) -> None:
    from myoguide.adapters.batch.export import Problems, chunks, first_line_number, read_lines

    # A 256 MiB line among short ones, read in 1 MiB chunks: each chunk inside it owns no line
    # and must not read on to its end (256 chunks x 128 MiB on average, before the fix).
    path = tmp_path / "Observation.000.ndjson"
    with path.open("wb") as fh:
        fh.write(b"{}\n" * 3 + b'{"a":"')
        for _ in range(256):
            fh.write(b"x" * (1 << 20))
        fh.write(b'"}\n' + b"[]\n" * 3)
    files, _ = list_files(tmp_path)
    met = Problems()
    got = []
    started = time.perf_counter()
    for chunk in chunks(files, chunk_bytes=1 << 20):
        lines = [(n, line) for n, line, _ in read_lines(chunk, met, max_line=1 << 20)]
        if lines:  # numbered only where a line was read (the count reads the file to the chunk)
            base = first_line_number(path, chunk.start) - 1
            got += [(base + n, line) for n, line in lines]
    assert time.perf_counter() - started < 15
    assert sorted(got) == [(1, b"{}"), (2, b"{}"), (3, b"{}"), (5, b"[]"), (6, b"[]"), (7, b"[]")]
    assert met.counts == {"too_long": 1}


def test_a_long_line_in_a_later_chunk_is_named_by_its_line_in_the_file(tmp_path: Path) -> None:
    from myoguide.adapters.batch.export import Problems, chunks, read_lines

    # 400,000 short lines (1.2 MB) fill the first 1 MiB chunk; the long line starts in the
    # second, which counts its lines from its own start: the skip must name the file's line.
    path = tmp_path / "Observation.000.ndjson"
    path.write_bytes(b"{}\n" * 400_000 + b'{"a":"' + b"x" * (2 << 20) + b'"}\n{}\n')
    files, _ = list_files(tmp_path)
    met = Problems()
    for chunk in chunks(files, chunk_bytes=1 << 20):
        for _ in read_lines(chunk, met, max_line=1 << 20):
            pass
    assert met.examples["too_long"] == [("Observation.000.ndjson", 400_001)]


def _expanding(folder: Path) -> tuple[Path, int]:
    """An export whose Condition.000.ndjson.gz has a DM line, a long line, then another DM line."""
    folder.mkdir()
    _write(folder, "Patient.000.ndjson", [_patient("dm-a"), _patient("dm-b")])
    lines = [
        orjson.dumps(_condition("c1", "Patient/dm-a", DM)),
        orjson.dumps(_condition("c2", "Patient/dm-a", "195967001") | {"note": "x" * 5000}),
        orjson.dumps(_condition("c3", "Patient/dm-b", DM)),
    ]
    data = b"\n".join(lines) + b"\n"
    (folder / "Condition.000.ndjson.gz").write_bytes(gzip.compress(data))
    # The limit falls inside the second line.
    return folder, len(lines[0]) + 1 + 100


def test_a_gzip_file_past_the_decompressed_limit_is_a_named_skip(
    runner: Runner, tmp_path: Path
) -> None:
    folder, limit = _expanding(tmp_path / "e")
    whole, met = _audit(runner, folder)
    assert [r["patient_id"] for r in whole.rows] == ["dm-a", "dm-b"]
    assert met.total == 0
    cut = dataclasses.replace(runner, max_gzip=limit)  # type: ignore[type-var]
    result, met = _audit(cut, folder)
    # Read up to the limit; the line it falls in and everything after are one named skip.
    assert [r["patient_id"] for r in result.rows] == ["dm-a"]
    assert met.counts == {"too_big": 1}
    assert met.examples["too_big"] == [("Condition.000.ndjson.gz", 2)]


def test_the_decompressed_limit_stops_a_gzip_bomb_early(tmp_path: Path) -> None:
    folder = _hostile(tmp_path / "e")
    z = gzip.compress(b'{"a":"' + b"x" * (512 << 20) + b'"}\n{}\n', compresslevel=9)
    (folder / "Observation.000.ndjson.gz").write_bytes(z)
    started = time.perf_counter()
    result, met = _audit(LocalRunner(workers=1, max_gzip=4 << 20), folder)
    # 4 MiB of the 512 MiB are decompressed, not all of it (the line limit alone reads it all).
    assert time.perf_counter() - started < 10
    assert [r["patient_id"] for r in result.rows] == ["dm-living"]
    assert met.examples["too_big"] == [("Observation.000.ndjson.gz", 1)]
    assert "too_long" not in met.counts


def test_the_decompressed_limit_is_set_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, limit = _expanding(tmp_path / "e")
    args = ["audit", str(folder), "--out", str(tmp_path / "o"), "--date", DATE.isoformat()]
    assert main([*args, "--max-decompressed-bytes", str(limit)]) == 3
    err = capsys.readouterr().err
    assert "1 x a gzip file that expands past the decompressed-size limit" in err
    assert "Condition.000.ndjson.gz:2" in err
    assert main([*args, "--max-decompressed-bytes", "0"]) == 2
    assert "--max-decompressed-bytes" in capsys.readouterr().err


def test_links_out_of_the_export_are_not_followed(tmp_path: Path) -> None:
    folder = _hostile(tmp_path / "e")
    secret = tmp_path / "elsewhere.ndjson"
    _write(tmp_path, "elsewhere.ndjson", [_condition("cx", "Patient/x", DM)])
    os.symlink(secret, folder / "Condition.001.ndjson")
    os.symlink(folder / "Patient.000.ndjson", folder / "Patient.001.ndjson")  # inside: fine
    files, met = list_files(folder)
    assert "Condition.001.ndjson" not in {f.path.name for f in files}
    assert "Patient.001.ndjson" in {f.path.name for f in files}
    assert met.counts == {"symlink_outside": 1}
    out = tmp_path / "out-link"
    os.symlink(tmp_path / "real-out", out)
    assert main(["audit", str(folder), "--out", str(out)]) == 2


@pytest.mark.parametrize(
    "cells",
    [
        [62, 1, 1, 1],  # the case: 65 minus 62 must not show three ones
        [30, 3],
        [40, 5, 2, 12],
        [11, 11, 1],
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [0, 4, 25, 0, 7],
        [20, 20, 20],
    ],
)
def test_no_subtraction_shows_a_hidden_cell_to_be_small(cells: list[int]) -> None:
    m, total = 11, sum(cells)
    hide = protect(cells, total, m)
    if hide is None:
        return  # the table is withheld whole: nothing of it is published
    assert all(h for c, h in zip(cells, hide, strict=True) if 0 < c < m)
    shown = [None if h else c for c, h in zip(cells, hide, strict=True)]
    for _low, high in bounds(shown, total):
        assert high >= m, (cells, shown)  # no hidden cell can be shown to be below the threshold
    assert HIDDEN == "hidden"


def test_spark_split_starts_become_the_files_line_numbers(tmp_path: Path, spark: Any) -> None:
    from myoguide.adapters.batch.spark import _lines, first_lines

    # Lines of many lengths (empty, CRLF-ended), read by Spark in splits of a few bytes each, so
    # splits start inside lines, on newlines and exactly at line starts.
    lines = [b"x" * (i * 7 % 13) + (b"\r" if i % 5 == 0 else b"") for i in range(60)]
    path = tmp_path / "Observation.000.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    keys = ("spark.sql.files.maxPartitionBytes", "spark.sql.files.openCostInBytes")
    old = [spark.conf.get(k) for k in keys]
    for k, v in zip(keys, ("9", "1"), strict=True):
        spark.conf.set(k, v)
    try:
        got = _lines(spark, [str(path)]).collect()
    finally:
        for k, v in zip(keys, old, strict=True):
            spark.conf.set(k, v)
    starts = {r["start"] for r in got}
    assert len(starts) > 20
    first = first_lines(path, starts)
    seen: dict[int, int] = {}
    numbered = []
    for r in got:  # collect() keeps the partitions' order, and each split's lines in order
        seen[r["start"]] = seen.get(r["start"], 0) + 1
        numbered.append((first[r["start"]] + seen[r["start"]] - 1, bytes(r["value"])))
    assert sorted(numbered) == [(i + 1, x.rstrip(b"\r")) for i, x in enumerate(lines)]
