"""The core's rules on plain values: a state dict in, the engine's answer out; no HTTP, no files
beyond the packaged knowledge, no door."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from myoguide.domain.doses import practical
from myoguide.domain.engine import Engine
from myoguide.domain.facts import current_amount
from myoguide.domain.orders import DraftOrder, judge_orders
from myoguide.domain.result import RecommendationSet
from myoguide.domain.state import PatientState, parse_state
from myoguide.knowledge.loader import load_packaged
from myoguide.knowledge.terminology import load_packaged_terminology

KB = load_packaged()
ENGINE = Engine(KB, load_packaged_terminology())
BOUNDARY = KB.thresholds.prednisone_flare_boundary_mg_per_day
KG = 70


def state(**changes: Any) -> PatientState:
    """Return a validated state: an adult with DM, 70 kg, a flare after control, unless changed."""
    raw: dict[str, Any] = {
        "age_years": 52,
        "diagnosis": "dermatomyositis",
        "weight": {"value": KG, "unit": "kg"},
        "height": {"value": 170, "unit": "cm"},
        "disease_control_achieved": True,
        "flare": True,
        "current_medications": [],
        "treatment_history": [],
        "alternative_diagnoses_excluded": True,
    }
    raw.update(changes)
    return parse_state(raw, KB)


def on_prednisone(mg_per_day: Decimal | int) -> list[dict[str, Any]]:
    return [{"agent": "prednisone", "dose": {"value": float(mg_per_day), "unit": "mg/day"}}]


def answer(s: PatientState) -> RecommendationSet:
    return ENGINE.recommend(s)


def first_ids(result: RecommendationSet) -> list[str]:
    return [r.id for r in result.recommendations if r.rank == 1]


# ---- classify: which scenario a flare is, by the knowledge's boundary ----------------------


@pytest.mark.parametrize(
    ("offset", "scenario"),
    [(10, "flare_above_10mg"), (0, "flare_at_10mg_boundary"), (-5, "flare_below_10mg")],
)
def test_a_flare_is_placed_against_the_prednisone_boundary(offset: int, scenario: str) -> None:
    assert BOUNDARY is not None
    result = answer(state(current_medications=on_prednisone(BOUNDARY + offset)))
    assert (result.course, result.scenario) == ("recurrent", scenario)


def test_at_the_boundary_both_sides_lead_and_it_is_said() -> None:
    assert BOUNDARY is not None
    result = answer(state(current_medications=on_prednisone(BOUNDARY)))
    wiring = KB.wiring
    assert wiring.flare_below_10mg.raise_prednisone in first_ids(result)
    assert wiring.flare_above_10mg.add_sparing_agent in first_ids(result)
    assert "prednisone_at_boundary" in {w.code for w in result.warnings}


def test_a_minor_is_out_of_scope_with_no_option() -> None:
    result = answer(state(age_years=KB.thresholds.adult_age_years - 1))
    assert result.course == "out_of_scope"
    assert result.recommendations == ()


# ---- the ladder: resistant disease walks the knowledge's steps in order --------------------


def _failed(*agents: str) -> list[dict[str, str]]:
    return [{"agent": a, "outcome": "inadequate_response"} for a in agents]


def test_resistant_disease_starts_at_the_first_step_not_failed() -> None:
    history = _failed("azathioprine", "methotrexate", "rituximab", "ivig")
    result = answer(
        state(
            flare=False,
            disease_control_achieved=False,
            current_medications=on_prednisone(20),
            treatment_history=history,
        )
    )
    assert result.course == "resistant"
    step_three = next(s for s in KB.ladder if s.step == 3)
    assert first_ids(result) == list(step_three.recommendations)
    last = next(s for s in KB.ladder if s.step == max(x.step for x in KB.ladder))
    tnf = [r for r in result.recommendations if r.id in last.recommendations]
    assert tnf
    assert all(r.stance == "not_suggested" for r in tnf)
    assert max(r.rank for r in result.recommendations) == tnf[0].rank


def test_an_intolerant_agent_is_never_offered_again() -> None:
    history = [
        *_failed("azathioprine", "methotrexate", "rituximab", "ivig"),
        {"agent": "mycophenolate_mofetil", "outcome": "intolerance"},
    ]
    result = answer(
        state(
            flare=False,
            disease_control_achieved=False,
            current_medications=on_prednisone(20),
            treatment_history=history,
        )
    )
    offered = {a.agent for r in result.recommendations for a in r.agents}
    assert "mycophenolate_mofetil" not in offered
    assert "tacrolimus" in offered


# ---- doses: computed from the rule and the weight, rounded to something prescribable -------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("7.25", "7.3"), ("37.3", "37.5"), ("137.6", "138"), ("12", "12")],
)
def test_practical_rounding_by_size(raw: str, shown: str) -> None:
    assert practical(Decimal(raw)) == Decimal(shown)


def test_a_per_kg_dose_is_the_rule_times_the_weight_rounded() -> None:
    history = _failed("azathioprine", "methotrexate", "rituximab", "ivig")
    result = answer(
        state(
            flare=False,
            disease_control_achieved=False,
            current_medications=on_prednisone(20),
            treatment_history=history,
        )
    )
    rec = next(r for r in result.recommendations if any(a.agent == "tacrolimus" for a in r.agents))
    option = next(a for a in rec.agents if a.agent == "tacrolimus")
    rule = next(r for r in KB.dose_rules.values() if r.agent == "tacrolimus" and r.kind == "per_kg")
    assert option.dose is not None
    assert rule.low is not None
    assert option.dose.low == practical(rule.low * KG)


def test_a_current_dose_is_read_per_the_agents_own_period() -> None:
    assert current_amount(KB, "methotrexate", Decimal(25), "mg/week") == Decimal(25)
    assert current_amount(KB, "prednisone", Decimal(1), "g/day") == Decimal(1000)


# ---- orders: a draft is judged against the knowledge's stated maximum ----------------------


def test_a_draft_above_the_stated_maximum_is_critical_and_at_it_is_quiet() -> None:
    maximum = next(m for m in KB.maxima if m.agent == "methotrexate")
    assert maximum.period == "week"
    s = state(current_medications=on_prednisone(20))

    def judged(per_week: Decimal) -> list[str]:
        draft = DraftOrder("MedicationRequest/1", "methotrexate", None, per_week)
        return [f.indicator for f in judge_orders([draft], s, KB) if f.key.startswith("over")]

    assert judged(maximum.amount + 5) == ["critical"]
    assert judged(maximum.amount) == []
