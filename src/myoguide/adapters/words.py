"""Words every door shares for an answer's parts: doses and schedules, sources, joined agents.

The terminal renderer (text.py), the page and the CDS cards all say a dose the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal

from myoguide.domain.result import Dose, Recommendation, Source
from myoguide.domain.units import fmt


def dose_words(dose: Dose) -> str:
    """Return a dose as a person reads it, e.g. '20 to 72 mg/day'."""
    if dose.low is None:
        span = f"up to {fmt(dose.high or Decimal(0))}"
    elif dose.high is None:
        span = f"at least {fmt(dose.low)}"
    elif dose.low == dose.high:
        span = fmt(dose.low)
    else:
        span = f"{fmt(dose.low)} to {fmt(dose.high)}"
    per = {"day": "/day", "week": "/week", "dose": " per dose", "course": " per course"}
    return f"{span} {dose.unit}{per[dose.period]}{timing_words(dose)}"


_UNIT_WORDS = {"d": "day", "wk": "week", "mo": "month"}
# A dose unit of an infusion or course agent, as a clinician reads it (every door shares it).
DOSE_UNIT_WORDS = {
    "mg/dose": "mg per infusion",
    "g/dose": "g per infusion",
    "mg/course": "mg per course",
    "g/course": "g per course",
}


def unit_words(unit: object) -> str:
    """Return a dose unit as a clinician reads it ("g per infusion", never "g/dose")."""
    return DOSE_UNIT_WORDS.get(str(unit), str(unit))


_TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times"}


def timing_words(dose: Dose) -> str:
    """Return a dose's schedule in words, e.g. ', twice a day' or ', every 4 weeks, 6 times'."""
    t = dose.timing
    if t is None or t.period_unit is None:
        return ""
    unit = _UNIT_WORDS[t.period_unit]
    every = f"a {unit}" if t.period in (None, 1) else f"every {fmt(t.period)} {unit}s"
    freq = t.frequency or 1
    if freq > 1 and (dose.period, t.period_unit) in (("day", "d"), ("week", "wk")):
        # A daily (weekly) total split into doses: the figure is the total.
        return f", in {freq} doses"
    if t.period_unit == "d" and freq == 1 and t.period in (None, 1) and t.count:
        return f", on {t.count} days" + (f" to {t.count_max}" if t.count_max else "")
    words = f"{_TIMES.get(freq, f'{freq} times')} {every}" if freq > 1 else every
    if freq == 1 and t.period in (None, 1):
        words = f"once {every}"
    if t.count:
        words += f", {t.count} doses"
        if t.count_max:
            words += f" to {t.count_max}"
    return f", {words}"


def source_words(sources: Iterable[Source]) -> str:
    """Return sources as a short citation line, e.g. 'review: Rituximab [refs 2-9]'."""
    parts = []
    for s in sources:
        refs = _ref_ranges(s.references)
        extra = f" [{refs}]" if refs else ""
        if s.citations:
            extra += f" [{', '.join(s.citations)}]"
        parts.append(f"{s.document}: {s.section}{extra}")
    return "; ".join(parts)


def _ref_ranges(numbers: Iterable[int]) -> str:
    nums = sorted(set(numbers))
    if not nums:
        return ""
    runs: list[str] = []
    start = prev = nums[0]
    for n in [*nums[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ("ref " if len(nums) == 1 else "refs ") + ", ".join(runs)


def join_agents(rec: Recommendation, words: Sequence[str]) -> str:
    """Join words said of each agent of a step, with 'or' between two alternatives."""
    out = ""
    for i, (agent, said) in enumerate(zip(rec.agents, words, strict=True)):
        if i:
            before = rec.agents[i - 1].agent
            both = agent.agent in rec.choose_one and before in rec.choose_one
            out += " or " if both else "; "
        out += said
    return out


HEADING_MAX = 90


def rec_heading(text: str) -> str:
    """Return a recommendation's heading in plain words: the first clause of its own text."""
    first = re.split(r"; |\. | \(", text.strip(), maxsplit=1)[0].rstrip(".")
    if len(first) <= HEADING_MAX:
        return first
    return first[:HEADING_MAX].rsplit(" ", 1)[0].rstrip(",") + "…"
