"""Every worked example and every vignette, through the engine and through the command.

The command runs in process (`cli.main(argv)`, the same door without a spawn per case); a few
real subprocess runs are kept in test_cli.py and below.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from casecheck import SHARED_EXAMPLES, VIGNETTES, check, load_cases
from clirun import run_cli, run_cli_in_process
from myoguide.adapters.jsonio import loads, to_jsonable
from myoguide.errors import InputError
from myoguide.service import Service

EXAMPLES = load_cases(SHARED_EXAMPLES) if SHARED_EXAMPLES.is_dir() else []
OWN = load_cases(VIGNETTES)
ALL = [pytest.param(c, id=f"example-{n}") for n, c in EXAMPLES] + [
    pytest.param(c, id=f"vignette-{n}") for n, c in OWN
]


def test_shared_examples_are_there() -> None:
    assert SHARED_EXAMPLES.is_dir(), f"worked examples expected at {SHARED_EXAMPLES}"
    assert len(EXAMPLES) >= 7


def test_enough_vignettes() -> None:
    assert len(OWN) >= 40


@pytest.mark.parametrize("case", ALL)
def test_engine_door(case: dict[str, Any], service: Service) -> None:
    expect = case["expect"]
    if "raw_input" in case:
        with pytest.raises(ValueError, match=r"."):
            loads(case["raw_input"])
        return
    if expect["exit"] == 2:
        with pytest.raises(InputError) as err:
            service.recommend(case["input"])
        assert expect["stderr_contains"] in err.value.field
        return
    result = to_jsonable(service.recommend(case["input"]))
    assert check(result, expect) == []


@pytest.mark.parametrize("case", ALL)
def test_cli_door(case: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    raw = case["input"] if "raw_input" not in case else None
    path.write_text(case["raw_input"] if raw is None else json.dumps(raw))
    res = run_cli_in_process("recommend", str(path), "--format", "json")
    expect = case["expect"]
    assert res.code == expect["exit"], res.stderr
    if expect["exit"] == 2:
        assert res.stdout == ""
        assert expect["stderr_contains"] in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        return
    assert res.stderr == ""
    assert check(res.json(), expect) == []


@pytest.mark.parametrize("name", ["resistant-dm", "flare-at-10mg", "bad-weight"])
def test_real_process_agrees_with_in_process(name: str) -> None:
    path = SHARED_EXAMPLES / f"{name}.json"
    real = run_cli("recommend", str(path), "--format", "json")
    inside = run_cli_in_process("recommend", str(path), "--format", "json")
    assert (real.code, real.stdout, real.stderr) == (inside.code, inside.stdout, inside.stderr)
