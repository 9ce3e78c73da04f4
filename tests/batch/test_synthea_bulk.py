"""The audit on a real Synthea Bulk Data export (tests/fixtures/synthea_bulk, its README).

The fixture is the public sample export's own lines for five patients, with three DM/PM
Conditions and five Provenances added in files of their own by the fixture's make.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from disclosure import bounds

from myoguide.adapters.batch.report import HIDDEN
from myoguide.entrypoints.cli import main

pytestmark = pytest.mark.xdist_group("batch")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "synthea_bulk"
EXPORT = FIXTURE / "export"


def _added() -> dict[str, str]:
    """Return {patient id: SNOMED code} of the DM/PM Conditions make.py adds (read, not copied)."""
    tree = ast.parse((FIXTURE / "make.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ADDED":
            return {pid: code for pid, code, _, _ in ast.literal_eval(node.value)}
    raise AssertionError("make.py has no ADDED")


def _tables(report: str) -> list[tuple[list[int | None], int]]:
    """Return each table with a total row as (cells, None when hidden; its total)."""
    out = []
    for table in re.findall(r"<table>(.*?)</table>", report, flags=re.S):
        if "<tr><td>total</td>" not in table:
            continue
        cells = re.findall(r"<td class=n>([^<]*)</td>", table)
        values = [None if c == HIDDEN else int(c.replace(",", "")) for c in cells]
        total = values.pop()
        assert total is not None
        out.append((values, total))
    return out


@pytest.mark.parametrize("min_cell", [11, 2])
def test_a_real_synthea_export_audits_clean(
    tmp_path: Path, min_cell: int, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        ["audit", str(EXPORT), "--out", str(out), "--date", "2026-06-01", "--workers", "1",
         "--min-cell", str(min_cell)]
    )  # fmt: skip
    err = capsys.readouterr().err
    # Provenance (target[]), log.ndjson and the types the audit passes over are not problems.
    assert code == 0, err
    assert "skipped" not in err

    rows = {r["patient_id"]: r for r in pq.read_table(out / "rows.parquet").to_pylist()}
    added = _added()
    assert set(rows) == set(added)  # exactly the patients given DM/PM, no one else
    meaning = {"396230008": "dermatomyositis", "31384009": "polymyositis"}
    assert {p: r["diagnosis"] for p, r in rows.items()} == {p: meaning[c] for p, c in added.items()}
    # The one who died in 1989 is counted as deceased; the living are not.
    deceased = {p for p, r in rows.items() if r["course"] == "deceased"}
    assert deceased == {"129c6ac7-8d06-89de-ad63-0204a93e76c3"}

    report = (out / "report.html").read_text()
    tables = _tables(report)
    # At 11 every table of three patients is withheld whole; at 2 the course table is shown.
    assert bool(tables) == (min_cell == 2)
    for shown, total in tables:
        assert not any(v is not None and 0 < v < min_cell for v in shown), shown
        for _low, high in bounds(shown, total):
            assert high >= min_cell, (shown, total)  # no subtraction shows a small cell
