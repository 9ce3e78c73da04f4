"""The population audit: both runners, bad input, small cells, flags cited."""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pyarrow.parquet as pq
import pytest

from myoguide.adapters.batch.export import list_files
from myoguide.adapters.batch.local import run_local
from myoguide.adapters.batch.patient import (
    _NON_ASCII_UPPER,
    IN_SCOPE_MEANINGS,
    myositis_patient,
    scope_codes,
)
from myoguide.adapters.batch.report import Report, cell, render_report
from myoguide.adapters.batch.run import audit
from myoguide.bootstrap import build_auditor
from myoguide.entrypoints.cli import main
from myoguide.errors import KnowledgeError
from myoguide.knowledge.flags import WORDING, load_packaged_flags, parse_flags
from myoguide.knowledge.loader import PACKAGED_FILE, load_packaged
from myoguide.knowledge.terminology import load_packaged_terminology

# One worker runs every batch test: they share one Spark session and one export.
pytestmark = pytest.mark.xdist_group("batch")

DATE = datetime.date(2026, 6, 1)

DATA = Path(__file__).resolve().parents[2] / "src" / "myoguide" / "knowledge" / "data"


@pytest.fixture(scope="module")
def local_rows(export: Path) -> Any:
    files, _ = list_files(export)
    return run_local(files, build_auditor(), DATE, workers=2)


def test_local_runner_finds_dm_pm_patients_and_flags(local_rows: Any) -> None:
    rows = local_rows.rows
    assert 30 < len(rows) < 120  # about 4% of 1,500
    assert rows == sorted(rows, key=lambda r: r["patient_id"])
    assert {r["knowledge_version"] for r in rows} == {load_packaged().knowledge_version}
    flagged = {f for r in rows for f in r["flags"]}
    assert {"dose_above_maximum", "flare_above_10mg_without_sparing"} <= flagged
    assert any(r["course"] == "resistant" for r in rows)


def test_both_runners_give_the_same_rows(export: Path, local_rows: Any, spark: Any) -> None:
    from myoguide.adapters.batch.spark import run_spark

    files, _ = list_files(export)
    result = run_spark(files, build_auditor(), DATE, master="local[2]")
    assert result.rows == local_rows.rows
    assert result.problems.counts == local_rows.problems.counts
    # The same places too: Spark numbers each line within its split, the driver from the start.
    assert result.problems.lines() == local_rows.problems.lines()
    assert all(n > 0 for places in result.problems.examples.values() for _, n in places)
    assert result.patients_scanned == local_rows.patients_scanned == 1500


def test_bad_input_is_counted_with_file_and_line(local_rows: Any) -> None:
    p = local_rows.problems
    assert p.counts == {"not_json": 1, "no_patient": 1, "not_read": 1, "truncated": 1}
    assert p.total == 3  # the unknown type is a note, not a problem
    text = "\n".join(p.lines())
    assert re.search(r"not JSON: Observation\.\d{3}\.ndjson:\d+", text)
    assert re.search(r"cut short .*: Encounter\.\d{3}\.ndjson:\d+", text)
    # The line numbers point at the bad lines themselves.
    for kind, places in p.examples.items():
        for name, line in places:
            if kind == "not_json":
                got = (local_rows_path(name)).read_bytes().splitlines()[line - 1]
                assert got == b"this line is not JSON"


_EXPORT: list[Path] = []


def local_rows_path(name: str) -> Path:
    return _EXPORT[0] / name


@pytest.fixture(autouse=True)
def _remember(export: Path) -> None:
    _EXPORT[:] = [export]


def test_gzip_cut_short_and_exit_status(export: Path, tmp_path: Path) -> None:
    bad = tmp_path / "export"
    shutil.copytree(export, bad)
    enc = sorted(bad.glob("Encounter.*.ndjson"))[0]
    data = gzip.compress(enc.read_bytes())
    (bad / (enc.name + ".gz")).write_bytes(data[: len(data) // 2])
    enc.unlink()
    out = tmp_path / "out"
    code = main(
        ["audit", str(bad), "--out", str(out), "--date", DATE.isoformat(), "--min-cell", "11"]
    )
    assert code == 3
    table = pq.read_table(out / "rows.parquet")
    assert table.num_rows > 0
    html = (out / "report.html").read_text()
    assert "gzip file cut short" in html


def test_clean_export_exits_zero(tmp_path: Path) -> None:
    from myoguide.adapters.batch.synth import synthesize

    synthesize(tmp_path / "e", 200, seed=5, errors=False, gz=True)
    result = audit(tmp_path / "e", tmp_path / "o", auditor=build_auditor(), evaluation_date=DATE)
    assert result.problems.total == 0
    assert main(["audit", str(tmp_path / "e"), "--out", str(tmp_path / "o2")]) == 0


def test_synth_is_reproducible(tmp_path: Path) -> None:
    from myoguide.adapters.batch.synth import synthesize

    synthesize(tmp_path / "a", 300, seed=9)
    synthesize(tmp_path / "b", 300, seed=9)
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()


def test_small_cells_are_suppressed(local_rows: Any) -> None:
    assert cell(0, 11) == "0"
    assert cell(3, 11) == "hidden"
    assert cell(11, 11) == "11"
    flags = load_packaged_flags(load_packaged())
    page = render_report(
        Report(
            rows=local_rows.rows,
            flags=flags,
            knowledge=load_packaged(),
            terminology=load_packaged_terminology(),
            min_cell=11,
            problems=[],
            notes=[],
            evaluation_date=DATE,
            patients_scanned=1500,
            engine="local",
        )
    )
    counts = re.findall(r"<td class=n>([^<]*)</td>", page)
    assert counts
    assert all(c == "hidden" or c == "0" or int(c.replace(",", "")) >= 11 for c in counts)
    assert "<script" not in page
    # Nothing is fetched: code-system URIs appear as text only, never as a link or a source.
    assert not re.search(r"(src|href)=", page)


def test_every_flag_is_cited_and_worded_as_a_difference() -> None:
    kb = load_packaged()
    flags = load_packaged_flags(kb)
    assert len(flags.flags) == 6
    for f in flags.flags:
        assert f.text.startswith(WORDING)
        assert f.sources
        assert all(s.section for s in f.sources)
        assert "error" not in f.text.lower()


def test_flags_fail_closed_naming_file_and_key() -> None:
    kb = load_packaged()
    text = (DATA / PACKAGED_FILE).read_text()
    bad = text.replace("maxima: [azathioprine_max, methotrexate_max]", "maxima: [nope_max]")
    with pytest.raises(KnowledgeError) as err:
        parse_flags(bad, kb, origin="guideline.yaml")
    assert err.value.file == "guideline.yaml"
    assert err.value.key == "flags.dose_above_maximum.maxima"
    bad = text.replace(
        "references: [26, 27, 28]}]\n  - id: resistant", "references: [99]}]\n  - id: resistant"
    )
    with pytest.raises(KnowledgeError, match="no reference 99"):
        parse_flags(bad, kb, origin="guideline.yaml")


def _bundles(export: Path, pids: set[str]) -> dict[str, dict[str, Any]]:
    """Each patient's Bundle, gathered naively from the whole export held in memory."""
    resources: dict[str, list[dict[str, Any]]] = {p: [] for p in pids}
    medications: dict[str, dict[str, Any]] = {}
    for f in sorted(export.glob("*.ndjson")):
        for line in f.read_bytes().splitlines():
            try:
                res = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if res.get("resourceType") == "Medication":
                medications[res["id"]] = res
            refs = [(res.get(k) or {}).get("reference", "") for k in ("subject", "patient")]
            own = res["id"] if res.get("resourceType") == "Patient" else None
            for pid in pids:
                if own == pid or f"Patient/{pid}" in refs:
                    resources[pid].append(res)
    bundles = {}
    for pid, found in resources.items():
        meds = {
            r["medicationReference"]["reference"].split("/")[-1]
            for r in found
            if r["resourceType"] in ("MedicationRequest", "MedicationStatement")
            and "medicationReference" in r
        }
        entries = [{"resource": r} for r in found] + [
            {"fullUrl": f"Medication/{m}", "resource": medications[m]} for m in sorted(meds)
        ]
        # The runners' fixed order (by content): the mapping lists agents in record order.
        entries.sort(key=lambda e: orjson.dumps(e["resource"], option=orjson.OPT_SORT_KEYS))
        bundles[pid] = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    return bundles


def test_both_runners_apply_the_use_case_they_are_given(export: Path, spark: Any) -> None:
    from myoguide.adapters.batch.spark import run_spark

    full = build_auditor()
    # A use case unlike the packaged one (one flag only): a runner that built its own would differ.
    one_flag = msgspec.structs.replace(full.flags, flags=(full.flags.by_id("dose_above_maximum"),))
    auditor = dataclasses.replace(full, flags=one_flag)
    files, _ = list_files(export)
    local = run_local(files, auditor, DATE, workers=2).rows
    on_spark = run_spark(files, auditor, DATE, master="local[2]").rows
    assert on_spark == local
    assert {f for r in local for f in r["flags"]} == {"dose_above_maximum"}
    bundles = _bundles(export, {r["patient_id"] for r in local})
    for r in local:
        row = auditor.audit(bundles[r["patient_id"]], DATE).row
        assert r["resources"] == len(bundles[r["patient_id"]]["entry"])
        assert (
            r["course"],
            r["scenario"],
            r["first_option"],
            tuple(r["first_option_agents"]),
            tuple(r["data_problems"]),
            tuple(r["flags"]),
            r["knowledge_version"],
        ) == (
            row.course,
            row.scenario,
            row.first_option,
            row.first_option_agents,
            row.data_problems,
            row.flags,
            row.knowledge_version,
        )


def test_the_use_case_pickles_and_gives_the_unusable_row() -> None:
    auditor = pickle.loads(pickle.dumps(build_auditor()))
    empty = {"resourceType": "Bundle", "type": "collection", "entry": []}
    audited = auditor.audit(empty, DATE)
    assert audited.row.course == "unusable"
    assert audited.flags == ()
    assert "input.age_years" in audited.problems
    assert audited.row.data_problems == tuple(sorted(set(audited.problems)))


ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
# Patient id -> (ICD-10-CM code as a record writes it, the same code as the table writes it,
# verification status). The refuted one must not count however its code is written.
SPELLED = {
    "undotted": ("M3320", "M33.20", "confirmed"),
    "lower": ("m33.10", "M33.10", "confirmed"),
    "refuted": ("m3310", "M33.10", "refuted"),
}


def _condition(pid: str, system: str, code: object, verification: str) -> dict[str, Any]:
    """A problem-list Condition of one coding for a patient."""
    return {
        "resourceType": "Condition",
        "id": f"{pid}-c",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"system": VERIFICATION, "code": verification}]},
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "recordedDate": "2021-03-04",
    }


def _spelled_export(folder: Path, *, as_written: bool) -> Path:
    """A tiny export of the SPELLED patients, coded as a record writes them or as the table does."""
    folder.mkdir()
    patients, conditions = [], []
    for pid, (written, table, verification) in SPELLED.items():
        patients.append(
            {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1970-05-01"}
        )
        code = written if as_written else table
        conditions.append(_condition(pid, ICD10CM, code, verification))
    for name, resources in (("Patient", patients), ("Condition", conditions)):
        lines = b"".join(orjson.dumps(r) + b"\n" for r in resources)
        (folder / f"{name}.ndjson").write_bytes(lines)
    return folder


def test_undotted_and_lowercase_codes_count_as_the_table_writes_them(tmp_path: Path) -> None:
    written, _ = list_files(_spelled_export(tmp_path / "written", as_written=True))
    table, _ = list_files(_spelled_export(tmp_path / "table", as_written=False))
    rows = run_local(written, build_auditor(), DATE, workers=1).rows
    assert {r["patient_id"]: r["diagnosis"] for r in rows} == {
        "lower": "dermatomyositis",
        "undotted": "polymyositis",
    }
    assert rows == run_local(table, build_auditor(), DATE, workers=1).rows


def test_both_runners_find_undotted_and_lowercase_codes(tmp_path: Path, spark: Any) -> None:
    from myoguide.adapters.batch.spark import run_spark

    files, _ = list_files(_spelled_export(tmp_path / "written", as_written=True))
    local = run_local(files, build_auditor(), DATE, workers=1).rows
    on_spark = run_spark(files, build_auditor(), DATE, master="local[2]").rows
    assert [r["patient_id"] for r in local] == ["lower", "undotted"]
    assert on_spark == local


def _spellings(system: str, code: str) -> list[object]:
    """Ways a record may write a table code that Terminology.diagnosis still accepts."""
    out: list[object] = [code, code.lower(), code.capitalize(), f"  {code.lower()} "]
    if code.isdigit():
        out.append(int(code))  # a JSON number
    if "icd-10" in system and "." in code:
        bare = code.replace(".", "")
        out += [bare, bare.lower(), f" {bare} "]
    return out


def test_the_pre_check_passes_every_spelling_the_terminology_accepts() -> None:
    term = load_packaged_terminology()
    codes = scope_codes(term)
    checked = 0
    for d in term.file.diagnoses:
        for spelling in _spellings(d.system, d.code):
            assert term.diagnosis(d.system, str(spelling)) == d
            line = orjson.dumps(_condition("p1", d.system, spelling, "confirmed"))
            # No escape in the line: the byte pre-check alone decides whether it is parsed.
            assert b"\\" not in line
            found = myositis_patient(line, "Condition", term, codes)
            assert found == ("p1" if d.meaning in IN_SCOPE_MEANINGS else None), (d.code, spelling)
            refuted = orjson.dumps(_condition("p1", d.system, spelling, "refuted"))
            assert myositis_patient(refuted, "Condition", term, codes) is None
            checked += 1
    assert checked > 100


def test_only_dotless_i_and_long_s_upper_case_to_one_ascii_letter() -> None:
    # Terminology.diagnosis upper-cases codes; the pre-check knows every non-ASCII character
    # that becomes an ASCII letter that way.
    found: dict[str, list[str]] = {}
    for point in range(0x80, 0x110000):
        upper = chr(point).upper()
        if len(upper) == 1 and upper.isascii() and upper.isalpha():
            found.setdefault(upper, []).append(chr(point))
    assert {k: tuple(v) for k, v in found.items()} == _NON_ASCII_UPPER
