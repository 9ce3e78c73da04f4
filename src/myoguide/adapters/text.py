"""Renders a RecommendationSet and the knowledge for a person reading a terminal."""

from __future__ import annotations

import textwrap

from myoguide.adapters.words import dose_words, join_agents, source_words, timing_words
from myoguide.domain.engine import sources_of
from myoguide.domain.prescribable import as_checks
from myoguide.domain.result import Check, Recommendation, RecommendationSet
from myoguide.domain.units import fmt
from myoguide.knowledge.model import Knowledge

# Re-exported: the page reads them from here as well (adapters/words.py is their home).
__all__ = [
    "ACTION_WORDS",
    "COURSE_WORDS",
    "STANCE_WORDS",
    "alternatives",
    "cited",
    "dose_words",
    "join_agents",
    "render_knowledge",
    "render_result",
    "source_words",
    "timing_words",
]

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


def alternatives(rec: Recommendation) -> str:
    """Return the displays of a step's alternatives joined by 'or' (empty if it has none)."""
    return " or ".join(a.display for a in rec.agents if a.agent in rec.choose_one)


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
                if reg.dose.practical is not None:
                    lines += _wrap(reg.dose.practical.text, "             ", "           > ")
            else:
                lines += _wrap(
                    f"{reg.description}: not computed ({reg.omitted_reason})",
                    "           ",
                    "         * ",
                )
        if agent.maximum:
            lines.append(f"         * stated maximum {agent.maximum}")
        lines += check_lines(agent.checks, "         ")
    for caution in rec.cautions:
        lines += _wrap(caution, "       ", "     ! ")
    lines += _wrap(f"Source: {source_words(rec.sources)}", "       ", "     ")
    return lines


def check_lines(checks: tuple[Check, ...], indent: str) -> list[str]:
    """Return the 'Before starting' and 'While taking' label checks of an agent, with sources."""
    lines: list[str] = []
    for when, title in (("before_first_dose", "Before starting"), ("while_taking", "While taking")):
        chosen = [c for c in checks if c.when == when]
        if not chosen:
            continue
        lines.append(f"{indent}{title} (product label, outside the source review):")
        for c in chosen:
            label = "; ".join(
                f"{s.regulator} label, {s.product}, {s.section}, {s.version}, {s.url}"
                for s in c.sources
            )
            lines += _wrap(f"{c.text} [{label}]", f"{indent}    ", f"{indent}  + ")
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
    out += ["", "Before starting each agent (product labels, outside the source review)"]
    for agent, rx in k.prescribing.items():
        out.append(f"  {k.agent(agent).display}")
        out += check_lines(as_checks(rx.checks), "    ")
        if rx.note:
            out += _wrap(f"Not shown: {rx.note}", "      ", "    ~ ")
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
