"""Rounding for prescribing keeps the digits of the plain rule on every clean figure."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from myoguide.domain.doses import practical
from myoguide.domain.units import clean, round2_clean

_TENTH, _HALF, _ONE = Decimal("0.1"), Decimal("0.5"), Decimal(1)


def _rule(value: Decimal) -> Decimal:
    """Return the figure by the rule as written: 0.1 below 10, 0.5 below 100, else 1, cleaned."""
    if value < 10:
        return clean(value.quantize(_TENTH, ROUND_HALF_UP))
    if value < 100:
        return clean((value / _HALF).quantize(_ONE, ROUND_HALF_UP) * _HALF)
    return clean(value.quantize(_ONE, ROUND_HALF_UP))


@given(st.integers(min_value=0, max_value=10_000_000))
def test_same_digits_as_the_rule(hundredths: int) -> None:
    figure = round2_clean(Decimal(hundredths) / 100)  # clean, as every computed figure arrives
    assert str(practical(figure)) == str(_rule(figure))
