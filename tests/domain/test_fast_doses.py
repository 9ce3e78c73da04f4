"""A rate dose worked out in whole hundredths says exactly what the general path says."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from myoguide.bootstrap import default_service
from myoguide.domain.doses import _practical_h, practical, regimen
from myoguide.domain.facts import derive
from myoguide.domain.prescribable import DoseCalc
from myoguide.domain.run import Run
from myoguide.domain.state import parse_state
from myoguide.domain.units import (
    hundredths,
    hundredths_text,
    mul,
    product_hundredths,
    round2,
    round2_clean,
)
from myoguide.errors import InputError

SERVICE = default_service()
ENGINE = SERVICE.engine
CALCS = sorted(
    {
        id(part): part
        for rows in ENGINE._rx.parts.values()
        for row in rows
        for part in row
        if isinstance(part, DoseCalc) and part.hundredths is not None
    }.values(),
    key=lambda c: c.rule_id,
)
# The general path: the same regimen read without its constants in hundredths.
GENERAL = {id(c): msgspec.structs.replace(c, hundredths=None) for c in CALCS}


def _answer(c: DoseCalc, state: dict[str, Any], action: Any) -> tuple[Any, ...]:
    facts = derive(parse_state(state, SERVICE.knowledge), ENGINE.kb)
    run = Run(ENGINE._p, ENGINE._rx)
    made = regimen(run, facts, c, action)
    return msgspec.json.encode(made), dict(run.warnings), run.trace, run.no_weight, run.no_height


def test_every_rate_rule_has_the_hundredths_path() -> None:
    kinds = {c.rule.kind for c in CALCS}
    assert kinds == {"per_kg", "per_m2"}
    assert any(c.form is not None for c in CALCS)
    assert any(c.form is None for c in CALCS)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=2_000, max_value=30_000),  # hundredths of a kg or lb
    st.sampled_from(["kg", "lb"]),
    st.one_of(st.none(), st.integers(min_value=1_200, max_value=2_300)),  # tenths of a cm
    st.sampled_from([None, "start", "continue", "restart", "raise"]),
    st.one_of(st.none(), st.integers(min_value=0, max_value=20_000)),  # hundredths of a mg
    st.data(),
)
def test_same_regimen_as_the_general_path(
    weight: int,
    unit: str,
    height: int | None,
    action: Any,
    current: int | None,
    data: st.DataObject,
) -> None:
    c = data.draw(st.sampled_from(CALCS))
    state: dict[str, Any] = {
        "age_years": 50,
        "diagnosis": "dermatomyositis",
        "weight": {"value": weight / 100, "unit": unit},
    }
    if height is not None:
        state["height"] = {"value": height / 10, "unit": "cm"}
    if current is not None:  # today's dose, for a raise kept above it
        dose = {"value": current / 100, "unit": "mg/day"}
        state["current_medications"] = [{"agent": c.rule.agent, "dose": dose}]
    try:
        parse_state(state, SERVICE.knowledge)
    except InputError:  # an implausible body: nothing to compare
        return
    assert _answer(c, state, action) == _answer(GENERAL[id(c)], state, action)


@given(st.integers(min_value=0, max_value=10_000_000))
def test_hundredths_round_and_read_as_the_decimals(q: int) -> None:
    figure = round2_clean(Decimal(q) / 100)
    assert hundredths_text(q) == str(figure)
    assert hundredths(figure) == q
    assert hundredths_text(_practical_h(q)) == str(practical(figure))


@given(
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal(2000), places=3),
    st.decimals(min_value=Decimal("0.5"), max_value=Decimal(4), places=27),
)
def test_a_product_in_hundredths_is_rounded_as_the_decimals(rate: Decimal, area: Decimal) -> None:
    assert product_hundredths(rate, area) == hundredths(round2(mul(rate, area)))
