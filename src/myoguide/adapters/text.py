"""Renders a RecommendationSet and the knowledge for a person reading a terminal."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from decimal import Decimal

from myoguide.domain.engine import sources_of
from myoguide.domain.result import Dose, Recommendation, RecommendationSet, Source
from myoguide.domain.units import fmt
from myoguide.knowledge.model import Knowledge

WIDTH = 96
STANCE_WORDS = {
    "recommended": "Recommended",
    "alternative": "Alternative",
    "reserved": "Reserved",
    "not_suggested": "Not suggested",
}
COURSE_WORDS = {
    "recurrent": "Recurrent disease (a flare after control)",
    "resistant": "Resistant disease",
    "controlled": "Disease under control: nothing to escalate",
    "out_of_scope": "Outside this guideline",
}


def _wrap(text: str, indent: str, first: str | None = None) -> list[str]:
    return textwrap.wrap(
        text, WIDTH, initial_indent=first if first is not None else indent, subsequent_indent=indent
    )


ACTION_WORDS = {
    "start": "start",
    "raise": "raise",
    "restart": "restart",
    "continue": "continue",
    "switch_to": "switch to",
}


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


def alternatives(rec: Recommendation) -> str:
    """Return the displays of a step's alternatives joined by 'or' (empty if it has none)."""
    return " or ".join(a.display for a in rec.agents if a.agent in rec.choose_one)


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


def _recommendation(rec: Recommendation) -> list[str]:
    grade = f"Grade {rec.grade}" if rec.grade else "no grade given"
    lines = [f"{rec.rank}. [{STANCE_WORDS[rec.stance]} | {grade}] {rec.id}"]
    if rec.under:
        lines.append(f"     (beneath {rec.under})")
    if rec.after:
        lines += _wrap(f"Applies only after this: {rec.after}", "       ", "     ")
    lines += _wrap(rec.text, "     ")
    if rec.grade_meaning:
        lines += _wrap(f"Grade {rec.grade}: {rec.grade_meaning}", "       ", "     ")
    if rec.choose_one:
        lines += _wrap(f"One of these, not all: {alternatives(rec)}", "       ", "     ")
    for agent in rec.agents:
        code = f" (RxNorm {agent.rxnorm})" if agent.rxnorm else ""
        action = f": {ACTION_WORDS[agent.action]}" if agent.action else ""
        in_use = " (already in use)" if agent.in_use else ""
        lines.append(f"     - {agent.display}{code}{action}{in_use}")
        for note in agent.notes:
            lines += _wrap(note, "           ", "         * ")
        for reg in agent.regimens:
            if reg.dose is not None:
                lines += _wrap(
                    f"{dose_words(reg.dose)}: {reg.description}. Arithmetic: {reg.dose.basis}",
                    "           ",
                    "         * ",
                )
            else:
                lines += _wrap(
                    f"{reg.description}: not computed ({reg.omitted_reason})",
                    "           ",
                    "         * ",
                )
        if agent.maximum:
            lines.append(f"         * stated maximum {agent.maximum}")
    for caution in rec.cautions:
        lines += _wrap(caution, "       ", "     ! ")
    lines += _wrap(f"Source: {source_words(rec.sources)}", "       ", "     ")
    return lines


def cited(result: RecommendationSet) -> tuple[list[int], list[str]]:
    """Return the reference numbers and other citation ids an answer rests on, sorted."""
    sources = [s for r in result.recommendations for s in r.sources]
    sources += [s for r in result.recommendations for c in r.caution_details for s in c.sources]
    sources += [s for w in result.warnings for s in w.sources]
    refs = sorted({n for s in sources for n in s.references})
    cites = sorted({c for s in sources for c in s.citations})
    return refs, cites


def render_result(result: RecommendationSet, knowledge: Knowledge) -> str:
    """Return the whole answer as text for a clinician."""
    out = [f"myoguide - knowledge {result.knowledge_version}", ""]
    out.append(f"Course:   {COURSE_WORDS[result.course]}")
    if result.scenario:
        out.append(f"Scenario: {result.scenario_title} ({result.scenario})")
    if result.flare_scenario:
        out.append(f"Flare:    {result.flare_scenario_title} ({result.flare_scenario})")
    if result.measures:
        out.append("Measures: " + ", ".join(f"{k} {v}" for k, v in result.measures.items()))
    if result.warnings:
        out += ["", "Warnings"]
        for w in result.warnings:
            out += _wrap(f"{w.message} ({w.code})", "    ", "  ! ")
    out += ["", "Options, best first (equal numbers are alternatives at the same step)"]
    if not result.recommendations:
        out.append("  None: no recommendation is made for this patient.")
    for rec in result.recommendations:
        out += ["", *_recommendation(rec)]
    if result.literature_only:
        out += ["", "Reported in the literature, no recommendation"]
        for note in result.literature_only:
            out += _wrap(
                f"{note.display}: {note.text} ({source_words(note.sources)})", "    ", "  - "
            )
    refs, cites = cited(result)
    if refs:
        out += ["", "References"]
        for n in refs:
            out += _wrap(knowledge.references[n - 1].citation, "       ", f"  {n:>2}. ")
    for cid in cites:
        cite = next(x for x in knowledge.citations if x.id == cid)
        origin = " (outside the source topic)" if cite.outside_source else ""
        out += _wrap(f"{cite.citation}{origin}", "       ", f"  {cid}: ")
    out += ["", "How this was reached"]
    for step in result.trace:
        out.append(f"  - {step.rule}: {step.outcome}")
    out += ["", result.disclaimer]
    return "\n".join(out) + "\n"


def render_knowledge(knowledge: Knowledge) -> str:
    """Return the encoded guideline, browsable as text, with grades and references."""
    k = knowledge
    out = [f"{k.title}", f"knowledge {k.knowledge_version}", ""]
    out += ["Grades", *_wrap(k.grades.scheme, "  ")]
    for digit, words in k.grades.strength.items():
        out.append(f"  {digit}: {words}")
    for letter, words in k.grades.quality.items():
        out.append(f"  {letter}: {words}")
    out += ["", "Flare scenarios and paths"]
    for sid, scen in k.scenarios.items():
        out.append(f"  {sid}: {scen.title}")
        out += _wrap(f"{scen.summary} ({source_words(sources_of(scen.sources))})", "      ")
    out += ["", "Options"]
    for rid, rec in k.recommendations.items():
        grade = f"Grade {rec.grade}" if rec.grade else "no grade"
        out.append(f"  {rid} [{STANCE_WORDS[rec.stance]} | {grade}]")
        out += _wrap(rec.text, "      ")
        for step in rec.agents:
            for reg in step.regimens:
                out += _wrap(f"{step.agent}: {k.dose_rules[reg].note}", "        ", "      * ")
        out += _wrap(f"Source: {source_words(sources_of(rec.sources))}", "      ")
    out += ["", "Resistant ladder (source order)"]
    for ls in k.ladder:
        out += _wrap(f"{', '.join(ls.recommendations)}: {ls.note}", "      ", f"  {ls.step}. ")
    out += ["", "Stated maxima"]
    out += [f"  {m.agent}: {fmt(m.amount)} {m.unit}/{m.period}" for m in k.maxima]
    out += ["", "Cautions"]
    for cid, c in k.cautions.items():
        out += _wrap(f"{c.text} ({source_words(sources_of(c.sources))})", "      ", f"  {cid}: ")
    out += ["", "Reported in the literature, no recommendation"]
    for item in k.literature_only:
        out += _wrap(f"{item.display}: {item.text}", "      ", "  - ")
    out += ["", "References"]
    for ref in k.references:
        out += _wrap(ref.citation, "       ", f"  {ref.number:>2}. ")
    for cite in k.citations:
        origin = " (outside the source topic)" if cite.outside_source else ""
        out += _wrap(f"{cite.citation}{origin}", "       ", f"  {cite.id}: ")
    out += ["", k.disclaimer]
    return "\n".join(out) + "\n"
