"""Engine behaviours best shown directly: clamps, last resorts, trace, purity, Python API."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import myoguide
from casecheck import ROOT
from myoguide.bootstrap import build_service
from myoguide.domain.state import PatientState, parse_state
from myoguide.errors import InputError
from myoguide.knowledge.loader import parse_knowledge

YAML = ROOT / "src" / "myoguide" / "knowledge" / "data" / "guideline.yaml"
RESISTANT: dict[str, Any] = {
    "age_years": 60,
    "diagnosis": "dermatomyositis",
    "weight": {"value": 70, "unit": "kg"},
    "height": {"value": 170, "unit": "cm"},
    "disease_control_achieved": False,
    "flare": False,
    "alternative_diagnoses_excluded": True,
    "current_medications": [{"agent": "prednisone", "dose": {"value": 20, "unit": "mg/day"}}],
    "treatment_history": [
        {"agent": "prednisone", "outcome": "inadequate_response"},
        {"agent": "azathioprine", "outcome": "inadequate_response"},
    ],
}


def _variant(old: str, new: str) -> Any:
    text = YAML.read_text()
    assert old in text
    return build_service(parse_knowledge(text.replace(old, new, 1), origin="variant"))


def test_clamp_at_a_stated_maximum_with_warning() -> None:
    # A weight-based azathioprine rule (not in the source) shows the generic clamp at work.
    service = _variant(
        "  azathioprine_combination:\n    kind: up_to\n",
        "  azathioprine_combination:\n    kind: per_kg\n    low: 5\n    high: 5\n",
    )
    result = service.recommend(RESISTANT)
    rec = next(r for r in result.recommendations if r.id == "resistant_aza_mtx_combination")
    dose = rec.agents[0].regimens[0].dose
    assert dose is not None
    assert (dose.low, dose.high) == (200, 200)
    assert "capped at the stated maximum 200 mg/day" in dose.basis
    assert "5 mg/kg/day x 70 kg = 350 mg/day" in dose.basis
    assert any(w.code == "dose_clamped" and "350" in w.message for w in result.warnings)
    assert any(t.rule == "clamp.azathioprine" for t in result.trace)


def test_tnf_no_longer_advised_against_once_everything_else_failed() -> None:
    service = _variant("    offered_after_failure: true\n", "")
    failed = [
        "rituximab",
        "ivig",
        "mycophenolate_mofetil",
        "cyclosporine",
        "tacrolimus",
        "cyclophosphamide",
        "chlorambucil",
        "methotrexate",
    ]
    state = {
        **RESISTANT,
        "treatment_history": [
            *RESISTANT["treatment_history"],
            *({"agent": a, "outcome": "inadequate_response"} for a in failed),
        ],
    }
    result = service.recommend(state)
    assert [(r.id, r.rank, r.stance) for r in result.recommendations] == [
        ("resistant_tnf", 1, "reserved")
    ]
    assert any(t.rule == "ladder.tnf_last_resort" for t in result.trace)


def test_every_recommendation_leaves_a_trace_step() -> None:
    result = myoguide.recommend(RESISTANT)
    rules = {t.rule for t in result.trace}
    for rec in result.recommendations:
        assert f"option.{rec.id}" in rules
    for step in result.trace:
        assert step.rule
        assert step.outcome
        assert step.knowledge.startswith("guideline.yaml#")


def test_python_api_accepts_dicts_and_states() -> None:
    kb = build_service().knowledge
    state = parse_state(RESISTANT, kb)
    assert isinstance(state, PatientState)
    assert myoguide.recommend(state) == myoguide.recommend(RESISTANT)
    with pytest.raises(InputError) as err:
        myoguide.recommend({**RESISTANT, "weight": {"value": float("nan"), "unit": "kg"}})
    assert err.value.field == "weight.value"


def test_course_agents_take_a_dose_per_infusion_or_course_and_others_refuse_it() -> None:
    meds = [
        {"agent": "prednisone", "dose": {"value": 20, "unit": "mg/day"}},
        {"agent": "rituximab", "dose": {"value": 1, "unit": "g/dose"}, "last_given": "2026-11-02"},
        {"agent": "ivig", "dose": {"value": 140, "unit": "g/course"}},
    ]
    result = myoguide.recommend({**RESISTANT, "current_medications": meds})
    assert result.course == "resistant"
    for unit in ("mg/dose", "g/course"):
        bad = [{"agent": "prednisone", "dose": {"value": 20, "unit": unit}}]
        with pytest.raises(InputError) as err:
            myoguide.recommend({**RESISTANT, "current_medications": bad})
        assert err.value.field == "current_medications[0].dose.unit"
        assert "not given as infusions or courses" in err.value.message


def test_rxnorm_codes_resolve_and_ivig_has_none() -> None:
    result = myoguide.recommend(RESISTANT)
    codes = {a.agent: a.rxnorm for r in result.recommendations for a in r.agents}
    assert codes["rituximab"] == "121191"
    assert codes["ivig"] is None


FORBIDDEN = {
    "os",
    "io",
    "sys",
    "time",
    "datetime",
    "random",
    "socket",
    "subprocess",
    "pathlib",
    "urllib",
    "http",
    "logging",
    "sqlite3",
    "importlib",
    "yaml",
    "orjson",
}


@pytest.mark.parametrize("path", sorted((ROOT / "src" / "myoguide" / "domain").glob("*.py")))
def test_core_does_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
            assert not node.module.startswith("myoguide.adapters"), node.module
    assert not imported & FORBIDDEN
