"""The command line, run as a real process."""

from __future__ import annotations

import json
from pathlib import Path

from casecheck import SHARED_EXAMPLES
from clirun import ROOT, run_cli

STATE = json.loads((SHARED_EXAMPLES / "resistant-dm.json").read_text())["input"]


def test_json_is_the_default_off_a_terminal_and_reads_stdin() -> None:
    res = run_cli("recommend", "-", stdin=json.dumps(STATE))
    assert res.code == 0, res.stderr
    data = res.json()
    assert data["course"] == "resistant"
    assert data["knowledge_version"]


def test_text_for_a_person() -> None:
    res = run_cli("recommend", "-", "--format", "text", stdin=json.dumps(STATE))
    assert res.code == 0
    out = res.stdout
    for needle in (
        "Resistant disease",
        "Rituximab (RxNorm 121191)",
        "Grade 2B",
        "Arithmetic: 2 g/kg/course x 70 kg = 140 g/course",
        "References",
        "How this was reached",
        "does not replace",
    ):
        assert needle in out, needle


def test_case_files_are_accepted_as_they_are() -> None:
    res = run_cli("recommend", str(SHARED_EXAMPLES / "flare-at-10mg.json"), "--format", "json")
    assert res.code == 0
    assert res.json()["scenario"] == "flare_at_10mg_boundary"


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    res = run_cli("recommend", str(tmp_path / "nope.json"))
    assert res.code == 2
    assert res.stdout == ""
    assert "PATH" in res.stderr


def test_knowledge_browser_lists_grades_and_all_references() -> None:
    res = run_cli("knowledge")
    assert res.code == 0
    assert "Weak - the authors suggest it" in res.stdout
    for n in range(1, 32):
        assert f"  {n:>2}. " in res.stdout
    as_json = run_cli("knowledge", "--format", "json").json()
    assert len(as_json["references"]) == 31


def test_schemas() -> None:
    schemas = run_cli("schema").json()
    assert set(schemas) == {"input", "output", "knowledge"}
    state = schemas["input"]["$defs"]["PatientState"]
    assert {"age_years", "diagnosis"} <= set(state["required"])
    assert state["additionalProperties"] is False
    out = schemas["output"]["$defs"]["Dose"]["properties"]
    # A bound may be null: "up to" has no low figure, "at least" no high one.
    assert {"type": "number"} in out["low"]["anyOf"]
    assert {"type": "null"} in out["low"]["anyOf"]
    assert run_cli("schema", "input").json()["$ref"].endswith("PatientState")


def test_demo_answers_every_example() -> None:
    res = run_cli("demo", "--folder", str(ROOT / "examples"))
    assert res.code == 0
    for f in sorted((ROOT / "examples").glob("*.json")):
        assert f.name in res.stdout
    assert res.stdout.count("does not replace") == len(list((ROOT / "examples").glob("*.json")))


def test_unknown_command_exits_2() -> None:
    assert run_cli("nonsense").code == 2


# A plain `recommend` is parsed without argparse (issue 24): the same arguments as argparse's
# for every form it takes, and argparse (its usage and messages) for every other.
PLAIN = [
    ["recommend", "case.json"],
    ["recommend", "-"],
    ["recommend", "case.json", "--format", "text"],
    ["recommend", "--format=json", "case.json"],
    ["recommend", "case.json", "--date", "2026-01-31"],
    ["recommend", "--date=", "case.json", "--format", "json"],
]
TO_ARGPARSE = [
    ["recommend"],
    ["recommend", "-h"],
    ["recommend", "case.json", "--form", "json"],
    ["recommend", "case.json", "--format", "xml"],
    ["recommend", "case.json", "--format"],
    ["recommend", "case.json", "--date", "1", "--date", "2"],
    ["recommend", "a.json", "b.json"],
    ["recommend", "--", "case.json"],
    ["recommend", "-1"],
    ["serve"],
    [],
]


def test_plain_recommend_arguments_match_argparse() -> None:
    from myoguide.entrypoints.cli import _plain_recommend, build_parser

    for argv in PLAIN:
        plain = _plain_recommend(argv)
        assert plain is not None, argv
        parsed = build_parser(argv).parse_args(argv)
        assert (plain.command, plain.path, plain.format, plain.date, plain.func) == (
            parsed.command,
            parsed.path,
            parsed.format,
            parsed.date,
            parsed.func,
        ), argv
    for argv in TO_ARGPARSE:
        assert _plain_recommend(argv) is None, argv


def test_argparse_still_says_what_is_wrong_with_recommend() -> None:
    res = run_cli("recommend", "case.json", "--format", "xml")
    assert res.code == 2
    assert "invalid choice: 'xml'" in res.stderr
    assert res.stderr.startswith("usage: myoguide recommend")
