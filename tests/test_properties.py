"""Invariants over generated patient states (Hypothesis)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from myoguide.adapters.jsonio import to_jsonable
from myoguide.bootstrap import default_service
from myoguide.domain.result import Dose, RecommendationSet
from myoguide.domain.state import AGENT_NAMES
from myoguide.domain.units import KG_PER_LB
from myoguide.errors import InputError
from myoguide.service import Service

SERVICE: Service = default_service()
KB = SERVICE.knowledge
MAXIMA = {m.agent: m for m in KB.maxima}
FAILED = ("inadequate_response", "intolerance")
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

UNIT_FOR = {
    "prednisone": ["mg/day", "g/day"],
    "azathioprine": ["mg/day", "g/day"],
    "methotrexate": ["mg/week", "g/week"],
}


@st.composite
def medications(draw: st.DrawFn) -> list[dict[str, Any]]:
    agents = draw(st.lists(st.sampled_from(AGENT_NAMES), unique=True, max_size=4))
    meds = []
    for agent in agents:
        med: dict[str, Any] = {"agent": agent}
        if draw(st.booleans()):
            unit = draw(st.sampled_from(UNIT_FOR.get(agent, ["mg/day", "mg/week", "g/day"])))
            hi = 100 if unit.startswith("mg") else 0.1
            value = draw(st.floats(min_value=0, max_value=hi, allow_nan=False))
            med["dose"] = {"value": value, "unit": unit}
        meds.append(med)
    return meds


@st.composite
def states(draw: st.DrawFn) -> dict[str, Any]:
    state: dict[str, Any] = {
        "age_years": draw(st.floats(min_value=0, max_value=120, allow_nan=False)),
        "diagnosis": draw(
            st.sampled_from(["dermatomyositis", "polymyositis", "inclusion_body_myositis", "x"])
        ),
        "current_medications": draw(medications()),
        "treatment_history": [
            {
                "agent": a,
                "outcome": draw(
                    st.sampled_from(["inadequate_response", "intolerance", "responded", "unknown"])
                ),
            }
            for a in draw(st.lists(st.sampled_from(AGENT_NAMES), unique=True, max_size=8))
        ],
    }
    for key in ("disease_control_achieved", "flare", "skin_predominant"):
        value = draw(st.sampled_from([True, False, None, "absent"]))
        if value != "absent":
            state[key] = value
    if draw(st.booleans()):
        state["weight"] = {"value": draw(st.floats(min_value=2, max_value=300)), "unit": "kg"}
    if draw(st.booleans()):
        state["height"] = {"value": draw(st.floats(min_value=40, max_value=250)), "unit": "cm"}
    if draw(st.booleans()):
        state["ild"] = {"present": draw(st.booleans()), "refractory": draw(st.booleans())}
    if draw(st.booleans()):
        state["alternative_diagnoses_excluded"] = draw(st.sampled_from([True, False, None]))
    if draw(st.booleans()):
        state["severity"] = draw(st.sampled_from(["mild", "moderate", "severe"]))
    return state


def _answer(state: dict[str, Any]) -> RecommendationSet | None:
    try:
        return SERVICE.recommend(state)
    except InputError:
        return None


def _doses(result: RecommendationSet) -> list[tuple[str, Dose]]:
    return [
        (a.agent, reg.dose)
        for r in result.recommendations
        for a in r.agents
        for reg in a.regimens
        if reg.dose is not None
    ]


@SETTINGS
@given(states())
def test_no_crash_and_deterministic(state: dict[str, Any]) -> None:
    first = _answer(state)
    second = _answer(state)
    assert (first is None) == (second is None)
    if first is not None:
        assert to_jsonable(first) == to_jsonable(second)  # type: ignore[arg-type]
        assert first.knowledge_version == KB.knowledge_version


@SETTINGS
@given(states())
def test_every_recommendation_cited_with_stance(state: dict[str, Any]) -> None:
    result = _answer(state)
    if result is None:
        return
    for rec in result.recommendations:
        assert rec.sources, rec.id
        assert all(s.section for s in rec.sources)
        assert rec.stance in ("recommended", "alternative", "reserved", "not_suggested")
        assert rec.rank >= 1
        for agent in rec.agents:
            for reg in agent.regimens:
                assert reg.sources, reg.id
                assert (reg.dose is None) != (reg.omitted_reason is None)
        for caution in rec.caution_details:
            assert caution.sources
    if result.course == "out_of_scope":
        assert result.recommendations == ()
        assert result.warnings
    ranks = [r.rank for r in result.recommendations]
    assert ranks == sorted(ranks)
    assert not ranks or set(ranks) == set(range(1, max(ranks) + 1))


@SETTINGS
@given(states())
def test_maxima_never_exceeded(state: dict[str, Any]) -> None:
    result = _answer(state)
    if result is None:
        return
    for agent, dose in _doses(result):
        m = MAXIMA.get(agent)
        if m is not None and dose.unit == m.unit and dose.period == m.period:
            assert dose.high <= m.amount, (agent, dose)
            assert dose.low <= dose.high


@SETTINGS
@given(states())
def test_failed_agent_never_offered_again_as_new_step(state: dict[str, Any]) -> None:
    result = _answer(state)
    if result is None:
        return
    # Prednisone is the backbone every path continues, and raising a drug already in use
    # is not a new step: neither is what this invariant is about.
    failed = {h["agent"] for h in state["treatment_history"] if h["outcome"] in FAILED}
    failed.discard("prednisone")
    current = {m["agent"] for m in state["current_medications"]}
    for rec in result.recommendations:
        tpl = KB.recommendations[rec.id]
        if tpl.offered_after_failure:
            continue
        offered = {a.agent for a in rec.agents}
        if rec.id.startswith("r2_raise_"):
            offered -= current
        assert not (offered & failed), (rec.id, offered & failed)


@SETTINGS
@given(states(), st.floats(min_value=2, max_value=300), st.floats(min_value=0.01, max_value=300))
def test_doses_never_decrease_as_weight_rises(state: dict[str, Any], w: float, dw: float) -> None:
    light = _answer({**state, "weight": {"value": w, "unit": "kg"}})
    heavy = _answer({**state, "weight": {"value": min(w + dw, 650), "unit": "kg"}})
    if light is None or heavy is None:
        return
    a, b = _doses(light), _doses(heavy)
    assert [x[0] for x in a] == [y[0] for y in b]
    for (_, d1), (_, d2) in zip(a, b, strict=True):
        assert d2.high >= d1.high
        assert d2.low >= d1.low


@SETTINGS
@given(states(), st.decimals(min_value=5, max_value=1400, places=2))
def test_pounds_and_kilograms_agree(state: dict[str, Any], lb: Decimal) -> None:
    kg = lb * KG_PER_LB
    in_lb = _answer({**state, "weight": {"value": float(lb), "unit": "lb"}})
    in_kg = _answer({**state, "weight": {"value": float(kg), "unit": "kg"}})
    assert (in_lb is None) == (in_kg is None)
    if in_lb is None or in_kg is None:
        return
    assert [(a, d.low, d.high) for a, d in _doses(in_lb)] == [
        (a, d.low, d.high) for a, d in _doses(in_kg)
    ]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "age_years",
    "diagnosis",
    "weight",
    "height",
    "disease_control_achieved",
    "flare",
    "severity",
    "current_medications",
    "treatment_history",
    "ild",
    "skin_predominant",
    "alternative_diagnoses_excluded",
]


@SETTINGS
@given(states(), st.sampled_from(FIELDS), JSON_VALUES, st.sampled_from(["agent", "dose", "x"]))
def test_any_json_is_answered_or_refused_by_field(
    state: dict[str, Any], key: str, junk: Any, inner: str
) -> None:
    broken = {**state, key: junk}
    if state["current_medications"] and inner != "x":
        broken["current_medications"] = [{**state["current_medications"][0], inner: junk}]
    error: InputError | None = None
    try:
        SERVICE.recommend(broken)
    except InputError as err:
        error = err
    # Either an answer, or a refusal that names a field; any other exception fails the test.
    assert error is None or (error.field and error.message)
