"""Invariants over generated patient states (Hypothesis)."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from myoguide.adapters.jsonio import to_jsonable
from myoguide.bootstrap import default_service
from myoguide.domain.result import Dose, RecommendationSet
from myoguide.domain.units import KG_PER_LB
from myoguide.errors import InputError
from myoguide.knowledge.terminology import load_packaged_terminology
from myoguide.service import Service

SERVICE: Service = default_service()
KB = SERVICE.knowledge
AGENT_NAMES = KB.agent_ids
PAIR = frozenset(KB.wiring.sparing_agents)
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
    if draw(st.booleans()):
        # The combination form, and now and then a duplicate entry with another outcome.
        state["treatment_history"].append(
            {
                "agents": ["azathioprine", "methotrexate"],
                "outcome": draw(st.sampled_from(["inadequate_response", "intolerance", "unknown"])),
            }
        )
    if state["treatment_history"] and draw(st.booleans()):
        first = state["treatment_history"][0]
        if "agent" in first:
            state["treatment_history"].append({"agent": first["agent"], "outcome": "responded"})
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


def _keyed_doses(result: RecommendationSet) -> dict[tuple[str, str, str], Dose | None]:
    return {
        (r.id, a.agent, reg.id): reg.dose
        for r in result.recommendations
        for a in r.agents
        for reg in a.regimens
    }


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
            assert dose.high is not None, (agent, dose)
            assert dose.high <= m.amount, (agent, dose)
            assert dose.low is None or dose.low <= dose.high


@SETTINGS
@given(states())
def test_failed_agent_never_offered_again_as_new_step(state: dict[str, Any]) -> None:
    result = _answer(state)
    if result is None:
        return
    # Prednisone is the backbone every path continues, and raising a drug already in use
    # is not a new step: neither is what this invariant is about.
    failed = {
        h["agent"] for h in state["treatment_history"] if "agent" in h and h["outcome"] in FAILED
    }
    failed.discard("prednisone")
    for rec in result.recommendations:
        tpl = KB.recommendations[rec.id]
        if tpl.offered_after_failure:
            continue
        # A drug in use is continued or raised, which is not a new step.
        offered = {a.agent for a in rec.agents if not a.in_use}
        assert not (offered & failed), (rec.id, offered & failed)


@SETTINGS
@given(states(), st.floats(min_value=2, max_value=300), st.floats(min_value=0.01, max_value=300))
def test_doses_never_decrease_as_weight_rises(state: dict[str, Any], w: float, dw: float) -> None:
    light = _answer({**state, "weight": {"value": w, "unit": "kg"}})
    heavy = _answer({**state, "weight": {"value": min(w + dw, 650), "unit": "kg"}})
    if light is None or heavy is None:
        return
    a, b = _keyed_doses(light), _keyed_doses(heavy)
    if light.scenario != heavy.scenario:
        return  # the weight moved the BMI across a refusal or warning; nothing to compare
    for key, d1 in a.items():
        d2 = b.get(key)
        if d1 is None or key not in b:
            continue
        # A heavier patient never loses a figure (the raise floor only lifts with weight).
        assert d2 is not None, key
        if d1.high is not None and d2.high is not None:
            assert d2.high >= d1.high
        if d1.low is not None and d2.low is not None:
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


def _controlled(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "disease_control_achieved": True, "flare": False}


@SETTINGS
@given(states())
def test_a_controlled_state_never_escalates(state: dict[str, Any]) -> None:
    result = _answer(_controlled(state))
    if result is None or result.course == "out_of_scope":
        return
    assert result.course == "controlled"
    for rec in result.recommendations:
        assert rec.id in (KB.wiring.controlled, KB.wiring.refractory_rash), rec.id
        # Kept as is: "continue", or for an infusion or course agent no order at all (no action,
        # no dose), since the source does not say when to repeat a course.
        assert all(
            a.action == "continue"
            or (a.action is None and a.dose is None and KB.agent(a.agent).given_as_course)
            for a in rec.agents
        ), rec.id


@SETTINGS
@given(states())
@example(
    {
        "age_years": 50,
        "diagnosis": "dermatomyositis",
        "current_medications": [],
        "treatment_history": [
            {"agent": "prednisone", "outcome": "inadequate_response"},
            {"agent": "methotrexate", "outcome": "inadequate_response"},
        ],
    }
)
def test_failed_or_intolerant_agent_never_started(state: dict[str, Any]) -> None:
    result = _answer(state)
    if result is None:
        return
    failed = {
        h["agent"] for h in state["treatment_history"] if "agent" in h and h["outcome"] in FAILED
    }
    # Prednisone is the backbone of every flare option; its intolerance is warned, not dropped.
    intolerant = {
        h["agent"]
        for h in state["treatment_history"]
        if h.get("outcome") == "intolerance" and "agent" in h
    } - {"prednisone"}
    for rec in result.recommendations:
        for a in rec.agents:
            if a.agent in failed:
                assert a.action != "start", (rec.id, a.agent)
            if a.agent in intolerant and not a.in_use:
                # Not tolerated: never offered again, alone or inside the combination.
                assert rec.stance == "not_suggested" or a.action not in (
                    "start",
                    "restart",
                    "switch_to",
                ), (rec.id, a.agent)


@SETTINGS
@given(states())
def test_a_raise_is_never_below_the_current_dose(state: dict[str, Any]) -> None:
    result = _answer(state)
    if result is None:
        return
    current = {}
    for m in state["current_medications"]:
        dose = m.get("dose")
        if dose is not None:
            mg = Decimal(repr(float(dose["value"]))) * (1000 if dose["unit"][0] == "g" else 1)
            current[m["agent"]] = mg
    for rec in result.recommendations:
        for a in rec.agents:
            if a.action != "raise" or a.agent not in current:
                continue
            for reg in a.regimens:
                d = reg.dose
                if d is None or d.unit != "mg":
                    continue
                if d.low is not None:
                    assert d.low >= current[a.agent], (rec.id, a.agent, d)
                if d.high is not None:
                    assert d.high >= current[a.agent], (rec.id, a.agent, d)


@SETTINGS
@given(states())
def test_aza_with_mtx_always_carries_the_cytopenia_caution(state: dict[str, Any]) -> None:
    result = _answer(state)
    if result is None:
        return
    in_use = {m["agent"] for m in state["current_medications"]} & PAIR
    codes = {w.code for w in result.warnings}
    if in_use == PAIR and result.course != "out_of_scope":
        assert "aza_mtx_in_use" in codes
    for rec in result.recommendations:
        named = {a.agent for a in rec.agents if a.action != "switch_to"} & PAIR
        ids = {c.id for c in rec.caution_details}
        if named and named <= set(rec.choose_one):
            # Alternatives: one is added, so only one of them with what is in use is "together".
            if any({a} | in_use == PAIR for a in named):
                assert "combination_cytopenia" in ids, rec.id
            else:
                assert "combination_cytopenia" not in ids, rec.id
        elif named and (named | in_use) == PAIR:
            assert "combination_cytopenia" in ids, rec.id


@SETTINGS
@given(states())
def test_a_warm_engine_answers_as_a_fresh_one(state: dict[str, Any]) -> None:
    # The engine keeps patient-independent parts between calls; no patient may leak into them.
    from myoguide.domain.engine import Engine
    from myoguide.domain.state import parse_state

    try:
        parsed = parse_state(state, KB)
    except InputError:
        return
    # Warm the engine on the same patient at other doses first: that is what a leak would use.
    engine = Engine(KB, load_packaged_terminology())
    for bump in (1, 2):
        other = {
            **state,
            "current_medications": [
                {**m, "dose": {**m["dose"], "value": m["dose"]["value"] + bump}}
                if m.get("dose")
                else m
                for m in state["current_medications"]
            ],
        }
        with contextlib.suppress(InputError):
            engine.recommend(parse_state(other, KB))
    # And at other weights and heights, and with neither: the doses a cached option would show.
    measures: list[dict[str, Any]] = [
        {k: v for k, v in state.items() if k not in ("weight", "height")}
    ]
    for key, bump in (("weight", 7), ("height", 9)):
        if state.get(key):
            measures.append({**state, key: {**state[key], "value": state[key]["value"] + bump}})
    for other in measures:
        with contextlib.suppress(InputError):
            engine.recommend(parse_state(other, KB))
    warm = engine.recommend(parsed)
    fresh = Engine(KB, load_packaged_terminology()).recommend(parsed)
    assert to_jsonable(warm) == to_jsonable(fresh)  # type: ignore[arg-type]
