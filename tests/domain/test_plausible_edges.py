"""Validation's float fast path refuses and accepts exactly as the Decimal ranges say."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from myoguide.bootstrap import default_service
from myoguide.domain.state import dec, parse_state
from myoguide.errors import InputError

KB = default_service().knowledge
LIM = KB.input_limits


def _edges(low: Decimal, high: Decimal) -> list[float]:
    """Return each end, the floats either side of it, and a figure a hair inside."""
    out = []
    for end in (float(low), float(high)):
        out += [math.nextafter(end, -math.inf), end, math.nextafter(end, math.inf)]
        out += [end - 1e-9, end + 1e-9]
    return out


def _accepted(state: dict[str, object]) -> bool:
    try:
        parse_state(state, KB)
    except InputError:
        return False
    return True


@pytest.mark.parametrize("age", [a for a in _edges(LIM.age_years.min, LIM.age_years.max) if a >= 0])
def test_age_at_the_ends(age: float) -> None:
    want = LIM.age_years.min <= dec(age) <= LIM.age_years.max
    assert _accepted({"age_years": age, "diagnosis": "dermatomyositis"}) == want


@pytest.mark.parametrize("kg", _edges(LIM.weight_kg.min, LIM.weight_kg.max))
def test_weight_at_the_ends(kg: float) -> None:
    want = LIM.weight_kg.min <= dec(kg) <= LIM.weight_kg.max
    state = {"age_years": 50, "diagnosis": "dermatomyositis", "weight": {"value": kg, "unit": "kg"}}
    assert _accepted(state) == want


@pytest.mark.parametrize("cm", _edges(LIM.height_cm.min, LIM.height_cm.max))
def test_height_at_the_ends(cm: float) -> None:
    want = LIM.height_cm.min <= dec(cm) <= LIM.height_cm.max
    state = {"age_years": 50, "diagnosis": "dermatomyositis", "height": {"value": cm, "unit": "cm"}}
    assert _accepted(state) == want
