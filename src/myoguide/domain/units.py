"""Exact unit arithmetic: weight, height, dose units and body surface area."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal

KG_PER_LB = Decimal("0.45359237")
CM_PER_IN = Decimal("2.54")
MG_PER_G = Decimal(1000)
DAYS_PER_WEEK = Decimal(7)
HUNDREDTH = Decimal("0.01")
_ONE = Decimal(1)
DOSE_UNITS: tuple[str, ...] = ("mg/day", "mg/week", "g/day", "g/week")
# For agents given as infusions or courses (contract: "a dose is per infusion or per course"):
# "dose" is one infusion, "course" the total of a course, as in the contract's dose periods.
COURSE_DOSE_UNITS: tuple[str, ...] = ("mg/dose", "g/dose", "mg/course", "g/course")

# A private context so no caller's decimal settings can change an answer.
_CTX = Context(prec=28, rounding=ROUND_HALF_UP)
_3600 = Decimal(3600)  # Mosteller's divisor, made once


def to_kg(value: Decimal, unit: str) -> Decimal:
    """Return a weight in kilograms (lb converted by the exact international pound)."""
    return value if unit == "kg" else _CTX.multiply(value, KG_PER_LB)


def to_cm(value: Decimal, unit: str) -> Decimal:
    """Return a height in centimetres (inches converted exactly)."""
    return value if unit == "cm" else _CTX.multiply(value, CM_PER_IN)


def round2(value: Decimal) -> Decimal:
    """Round half up to two decimal places, the precision doses and measures are shown at."""
    return value.quantize(HUNDREDTH, ROUND_HALF_UP, _CTX)


def round2_clean(value: Decimal) -> Decimal:
    """Return a figure rounded to 0.01 and written without trailing zeros."""
    # clean(round2(value)) without the two calls: the hot step of every computed dose.
    q = value.quantize(HUNDREDTH, ROUND_HALF_UP, _CTX)
    if q == q.to_integral_value():
        return q.quantize(_ONE, ROUND_HALF_UP, _CTX)
    return q.normalize(_CTX)


def hundredths(value: Decimal) -> int:
    """Return a figure given to 0.01 (or coarser) as whole hundredths."""
    return int(value.scaleb(2, _CTX))


def product_hundredths(a: Decimal, b: Decimal) -> int:
    """Return round2(mul(a, b)) in whole hundredths (the product rounded as `mul` rounds it)."""
    # Scaling by 100 moves the exponent only, so rounding to a whole number is round2.
    return int(_CTX.multiply(a, b).scaleb(2, _CTX).quantize(_ONE, ROUND_HALF_UP, _CTX))


def in_hundredths(value: Decimal) -> Decimal:
    """Return a figure counted in hundredths, exactly (12.345 -> 1234.5)."""
    return value.scaleb(2, _CTX)


# The point and digits of each whole number of hundredths, without trailing zeros (".5").
_POINT = tuple(f".{c:02d}".rstrip("0") if c else "" for c in range(100))


def hundredths_text(q: int) -> str:
    """Return whole hundredths written as fmt writes the figure (1200 -> 12, 530 -> 5.3)."""
    return f"{q // 100}{_POINT[q % 100]}"


def mosteller_bsa(height_cm: Decimal, weight_kg: Decimal) -> Decimal:
    """Return body surface area in m2 by Mosteller, sqrt(height cm x weight kg / 3600), exact."""
    return _CTX.sqrt(_CTX.divide(_CTX.multiply(height_cm, weight_kg), _3600))


def mul(a: Decimal, b: Decimal) -> Decimal:
    """Multiply exactly within the private context."""
    return _CTX.multiply(a, b)


def to_mg_per_day(value: Decimal, unit: str) -> Decimal:
    """Return a dose in mg/day from any accepted dose unit (mg as given, per infusion or course)."""
    mass, period = unit.split("/")
    mg = value * MG_PER_G if mass == "g" else value
    return _CTX.divide(mg, DAYS_PER_WEEK) if period == "week" else mg


def to_mg_per_week(value: Decimal, unit: str) -> Decimal:
    """Return a dose in mg/week from any accepted dose unit."""
    mass, period = unit.split("/")
    mg = value * MG_PER_G if mass == "g" else value
    return mg * DAYS_PER_WEEK if period == "day" else mg


def clean(value: Decimal) -> Decimal:
    """Return a decimal without trailing zeros or exponent (80.00 -> 80, 682.50 -> 682.5)."""
    if value == value.to_integral_value():
        return value.quantize(_ONE, ROUND_HALF_UP, _CTX)
    return value.normalize(_CTX)


def fmt(value: Decimal) -> str:
    """Format a decimal without exponent or trailing zeros (72, 682.5, 0.075)."""
    text = str(value)
    if "E" in text:  # str() uses exponents for some values; plain notation is wanted
        text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
