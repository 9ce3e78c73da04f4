"""Small pieces of the answer's HTML that the answer template calls for every option and agent.

Written in Python rather than as Jinja macros: a macro call costs many times the few string
joins each piece is (issue 24). The HTML is the macros' byte for byte, every value escaped as
Jinja's autoescape would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import Any

from markupsafe import Markup, escape

from myoguide.adapters.text import ACTION_WORDS, source_words
from myoguide.adapters.web.trace import TraceRow
from myoguide.adapters.words import dose_words
from myoguide.domain.result import AgentOption, Check, LabelRef, Recommendation, Regimen, Source


def dose_line(reg: Regimen) -> Markup:
    """Return a regimen's dose in bold, or why no dose was computed."""
    if reg.dose:
        return Markup(f'<strong class="dose">{escape(dose_words(reg.dose))}</strong>')
    return Markup(f"<em>dose not computed: {escape(reg.omitted_reason)}</em>")


def agent_line(agent: AgentOption) -> Markup:
    """Return an agent's name with what to do with it (start, continue...) and if in use."""
    out = ""
    if agent.action:
        # A missing word shows nothing, as the template's lookup did.
        words = ACTION_WORDS.get(agent.action, "")
        out = f'<span class="action action-{escape(agent.action)}">{escape(words)}</span> '
    out += str(escape(agent.display))  # str: Markup + str would escape the tags after it
    if agent.in_use:
        out += ' <span class="in-use">(already in use)</span>'
    return Markup(out)


# Pieces written from the knowledge's objects (an option's sources, an agent's label checks), by
# value: a stored answer's equal tuples find the same entry. Frozen structs of the knowledge
# only, so nothing from a patient's facts is kept (ADR 0031).
_WRITTEN: dict[tuple[object, str], Markup] = {}


def _once(of: Any, kind: str, write: Callable[[Any], Markup]) -> Markup:
    try:
        return _WRITTEN[(of, kind)]
    except KeyError:
        pass
    except TypeError:  # not hashable (a list): written each time
        return write(of)
    html = write(of)
    if len(_WRITTEN) < 512:  # the knowledge's few hundred tuples; any others are written each time
        _WRITTEN[(of, kind)] = html
    return html


def _refs(sources: Iterable[Source]) -> Markup:
    link = '<a href="#ref-{0}" class="ref">{0}</a>'
    return Markup("".join(", ".join(link.format(escape(n)) for n in s.references) for s in sources))


def _source_line(sources: Iterable[Source]) -> Markup:
    refs = _refs(sources)
    words = escape(source_words(sources))
    return Markup(f"{words} · references {refs}" if refs.strip() else words)


def source_line(sources: Iterable[Source]) -> Markup:
    """Return an option's sources in words, then its reference numbers as links (if any)."""
    return _once(sources, "line", _source_line)


def agents_line(rec: Recommendation) -> Markup:
    """Return an option's agents on one line ("or" between alternatives), or else its text."""
    agents = rec.agents
    if not agents:
        return escape(rec.text)
    out = str(agent_line(agents[0]))
    for a, b in pairwise(agents):
        either = a.agent in rec.choose_one and b.agent in rec.choose_one
        out += (" or " if either else "; ") + str(agent_line(b))  # str: see agent_line
    return Markup(out)


# The label checks' groups, in the order the answer shows them.
_CHECK_GROUPS = (("before_first_dose", "Before starting"), ("while_taking", "While taking"))


def check_groups(checks: Iterable[Any]) -> list[tuple[str, list[Any]]]:
    """Return an agent's label checks as (heading, checks) for each time that has any."""
    checks = list(checks)
    groups = [(title, [c for c in checks if c.when == when]) for when, title in _CHECK_GROUPS]
    return [(title, chosen) for title, chosen in groups if chosen]


def _label_link(s: LabelRef) -> str:
    version = escape(s.version.replace("last_updated", "last updated"))
    return (
        f'<a href="{escape(s.url)}" rel="noopener">{escape(s.regulator)} label: '
        f"{escape(s.product)}, {escape(s.section)}, {version}</a>"
    )


def check_list(checks: Iterable[Check]) -> Markup:
    """Return an agent's label checks, grouped by when they apply, each with its labels."""
    return _once(checks, "checks", _checks)


def _checks(checks: Iterable[Check]) -> Markup:
    out = ""
    for title, chosen in check_groups(checks):
        items = "".join(
            f'<li>{escape(c.text)} <span class="source">'
            f"({'; '.join(_label_link(s) for s in c.sources)})</span></li>"
            for c in chosen
        )
        out += (
            f'<div class="checks"><p class="checks-title">{escape(title)} <span class="outside">'
            f"(product label, outside the source review)</span></p><ul>{items}</ul></div>"
        )
    return Markup(out)


def checks_print(recs: Iterable[Recommendation]) -> Markup:
    """Return each offered agent's label checks in short, once an agent, for the printout."""
    seen: set[str] = set()
    out = ""
    for rec in recs:
        for a in rec.agents:
            if a.checks and a.agent not in seen:
                seen.add(a.agent)
                shorts = ", ".join(str(escape(c.short)) for c in a.checks)
                out += f"<span>{escape(a.display)}: {shorts}.</span> "
    return Markup(out)


def trace_body(rows: Iterable[TraceRow]) -> Markup:
    """Return the trace table's rows: the step, what it looked at, what it decided."""
    return Markup(
        "".join(
            f"        <tr><td>{escape(r.step)}</td><td>{escape(r.looked_at)}</td>"
            f"<td>{escape(r.outcome)}</td></tr>\n"
            for r in rows
        )
    )
