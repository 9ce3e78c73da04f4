"""CDS Hooks 2.0 cards: what the CDS use case answered (an answer, judged orders), rendered.

Pure functions: values in, JSON-ready dicts out. The HTTP adapter wires them to requests; which
warnings earn a card is the knowledge's warning policy (ADR 0015), which drugs are drafted the
domain's `draftable`, and what a draft order means the domain's `judge_orders`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from myoguide.adapters.cdshooks.facts import chart_says, missing_facts
from myoguide.adapters.cdshooks.smart_link import smart_link
from myoguide.adapters.fhir.codes import MEDICATION_RESOURCES
from myoguide.adapters.fhir.proposals import agent_route, proposed_medication_request
from myoguide.adapters.words import dose_words, join_agents, rec_heading, source_words
from myoguide.domain.orders import Draftable, OrderFinding, draftable
from myoguide.domain.prescribable import short_line
from myoguide.domain.result import AgentOption, Recommendation, RecommendationSet
from myoguide.domain.state import PatientState
from myoguide.errors import InputError
from myoguide.knowledge.model import Knowledge
from myoguide.service.cds import Hook

CARD_SYSTEM = "https://myoguide.example/fhir/CodeSystem/recommendation"
OVERRIDE_SYSTEM = "https://myoguide.example/fhir/CodeSystem/override-reason"
OVERRIDE_REASONS = (
    ("already-tried", "Already tried or not tolerated"),
    ("contraindicated", "Contraindicated for this patient"),
    ("patient-preference", "Patient preference"),
    ("clinical-judgment", "Other clinical judgment"),
)
STANCE_WORDS = {
    "recommended": "recommended",
    "alternative": "alternative",
    "reserved": "reserved",
    "not_suggested": "not suggested",
}


# At most this many cards in one response; beyond it findings of one kind are merged (ADR 0010).
MAX_CARDS = 8
# At most this many warnings get a card of their own: those the knowledge's policy gives one
# (ADR 0010, 0015); every other warning is a line of the summary card.
MAX_WARNING_CARDS = 3
# Lines of the data-quality card; the rest is counted.
MAX_DATA_LINES = 12


def new_uuid() -> str:
    """Return a fresh card or suggestion uuid (unique in every response)."""
    return str(uuid.uuid4())


def _label(version: str) -> str:
    return f"myoguide (knowledge {version}): recurrent and resistant DM/PM in adults"


def guideline_url(base_url: str, rec_id: str | None = None) -> str:
    """Return the guideline page, at the anchor of one recommendation when given."""
    page = base_url.rstrip("/") + "/guideline"
    return f"{page}#rec-{rec_id}" if rec_id else page


def _card_source(
    version: str, topic: str | None, base_url: str, rec_id: str | None
) -> dict[str, Any]:
    src: dict[str, Any] = {"label": _label(version), "url": guideline_url(base_url, rec_id)}
    if topic:
        src["topic"] = {"system": CARD_SYSTEM, "code": topic}
    return src


def _links(base_url: str, chart_token: str | None = None) -> list[dict[str, str]]:
    # No patient data in the URL: at most an opaque token of a hand-off kept in the store
    # (ADR 0014); without one the page opens blank and the clinician enters the facts.
    page = base_url.rstrip("/") + "/assess"
    if chart_token and (smart := smart_link(base_url, chart_token)) is not None:
        return [smart]  # the EHR is registered for SMART App Launch (ADR 0021)
    if chart_token:
        return [
            {
                "label": "Open this patient's assessment in myoguide",
                "url": f"{page}?chart={chart_token}",
                "type": "absolute",
            }
        ]
    return [{"label": "Open the myoguide assessment", "url": page, "type": "absolute"}]


def _override_reasons() -> list[dict[str, str]]:
    return [{"system": OVERRIDE_SYSTEM, "code": c, "display": d} for c, d in OVERRIDE_REASONS]


def _short(text: str, limit: int = 139) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _agent_lines(agent: AgentOption) -> list[str]:
    lines = [f"- **{agent.display}**"]
    for reg in agent.regimens:
        if reg.dose is not None:
            lines.append(
                f"  - {dose_words(reg.dose)}: {reg.description} (arithmetic: {reg.dose.basis})"
            )
        else:
            lines.append(f"  - {reg.description}: not computed ({reg.omitted_reason})")
    if agent.maximum:
        lines.append(f"  - stated maximum {agent.maximum}")
    return lines


def _detail(
    rec: Recommendation,
    result: RecommendationSet,
    knowledge: Knowledge,
    *,
    with_disclaimer: bool = True,
) -> str:
    grade = (
        f"**Grade {rec.grade}**: {rec.grade_meaning}"
        if rec.grade
        else "**No grade** given by the source for this option."
    )
    parts = [rec.text, "", grade, ""]
    for agent in rec.agents:
        parts += _agent_lines(agent)
    # The label checks (outside the review) in one line per agent; the page lists them in full.
    checks = [line for agent in rec.agents if (line := short_line(agent))]
    if checks:
        parts += ["", *(f"- {line}" for line in checks)]
    if rec.cautions:
        parts += ["", "**Cautions**", *(f"- {c}" for c in rec.cautions)]
    refs = sorted({n for s in rec.sources for n in s.references})
    parts += ["", f"**Source**: {source_words(rec.sources)}"]
    parts += [f"{n}. {knowledge.references[n - 1].citation}" for n in refs]
    if with_disclaimer:
        parts += ["", f"_{result.disclaimer}_"]
    return "\n".join(parts)


def _first_choice_words(recs: Sequence[Recommendation]) -> str:
    parts = []
    for rec in recs:
        words = []
        for agent in rec.agents:
            dose = agent.dose
            action = f"{agent.action.replace('_', ' ')} " if agent.action else ""
            words.append(f"{action}{agent.display}" + (f" {dose_words(dose)}" if dose else ""))
        if words:
            parts.append(join_agents(rec, words))
    return "; ".join(parts) or "see detail"


def _suggestions(
    drafts: Sequence[Draftable], patient_ref: str | None, knowledge: Knowledge
) -> list[dict[str, Any]]:
    """Return a draft order for each drafted drug, with its dose."""
    out: list[dict[str, Any]] = []
    for draft in drafts:
        rec, agent = draft.recommendation, draft.agent
        assert agent.dose is not None  # draftable keeps only drugs with a dose
        alternative = draft.alternative
        label = f"Draft {agent.display} {dose_words(agent.dose)}"
        if alternative:
            others = [a.display for a in rec.agents if a.agent in rec.choose_one and a != agent]
            label += f" (or {' or '.join(others)})"
        out.append(
            {
                "label": _short(label, 80),
                "uuid": new_uuid(),
                # The source ranks no alternative above another: none is the recommended one.
                "isRecommended": not out and not alternative,
                "actions": [
                    {
                        "type": "create",
                        "description": f"Create a draft order for {agent.display}",
                        "resource": proposed_medication_request(
                            agent, patient_ref, rec.id, agent_route(knowledge, agent.agent)
                        ),
                    }
                ],
            }
        )
    return out


def _selection(drafts: Sequence[Draftable]) -> str:
    """Return 'at-most-one' when every draft is one of a step's alternatives, else 'any'."""
    alternatives = all(d.alternative for d in drafts)
    return "at-most-one" if drafts and alternatives else "any"


def _option_line(rec: Recommendation, base_url: str, *, with_after: bool = True) -> str:
    names = ", ".join(a.display for a in rec.agents) or "see the guideline"
    grade = f", grade {rec.grade}" if rec.grade else ""
    line = (
        f"- Option {rec.rank} ({STANCE_WORDS[rec.stance]}{grade}): {names} "
        f"([guideline]({guideline_url(base_url, rec.id)}))"
    )
    return line + (f"; when it applies: {rec.after}" if rec.after and with_after else "")


def _other_option_lines(
    first: Sequence[Recommendation], rest: Sequence[Recommendation], base_url: str
) -> list[str]:
    """Return the options after the first, each folded beneath the option its `under` names."""
    shown = {r.id for r in (*first, *rest)}
    beneath: dict[str, list[Recommendation]] = {}
    for rec in rest:
        if rec.under in shown:
            beneath.setdefault(rec.under, []).append(rec)

    def nested(parent: Recommendation) -> list[str]:
        children = beneath.get(parent.id, [])
        if not children:
            return []
        # One condition shared by every folded option is said once, above them.
        shared = {c.after for c in children}
        after = shared.pop() if len(shared) == 1 else None
        lines = [f"  When they apply: {after}"] if after else []
        return lines + ["  " + _option_line(c, base_url, with_after=not after) for c in children]

    lines = []
    for parent in first:
        if beneath.get(parent.id):
            heading = rec_heading(parent.text)
            lines.append(f"- Beneath option {parent.rank} ({heading}), in the source's order:")
            lines += nested(parent)
    for rec in rest:
        if rec.under not in shown:
            lines += [_option_line(rec, base_url), *nested(rec)]
    return lines


def gets_cards(result: RecommendationSet, knowledge: Knowledge) -> bool:
    """Tell whether a patient-view answer is shown at all (not for a patient without DM/PM)."""
    outside = knowledge.warnings_in_scope("not_myositis")
    return not any(w.code in outside for w in result.warnings)


def patient_view_cards(
    result: RecommendationSet,
    knowledge: Knowledge,
    *,
    patient_id: str | None,
    base_url: str,
    data_warnings: Sequence[tuple[str, str]] = (),
    chart_token: str | None = None,
    drafts: Sequence[Draftable] | None = None,
    state: PatientState | None = None,
) -> list[dict[str, Any]]:
    """Return the quiet patient-view cards (ADR 0010); a patient without DM/PM gets none."""
    # chart_token: a hand-off of the state this answer came from; the summary card links to it.
    # state: what the chart said, named on the card that asks for what it did not say.
    # drafts: the drugs the use case found draftable (the domain's rule when not given).
    if not gets_cards(result, knowledge):
        return []
    codes = {w.code for w in result.warnings}
    version = result.knowledge_version
    patient_ref = f"Patient/{patient_id}" if patient_id else None
    first = [r for r in result.recommendations if r.rank == 1]
    first_id = first[0].id if first else None
    carded = [w for w in result.warnings if knowledge.warning_policy(w.code).card]
    own, folded = carded[:MAX_WARNING_CARDS], carded[MAX_WARNING_CARDS:]
    others = [w for w in result.warnings if not knowledge.warning_policy(w.code).card] + folded
    notes = [f"- {w.message}" for w in others]
    cards: list[dict[str, Any]] = []
    if first:
        title = result.scenario_title or result.course
        summary = f"myoguide: {title}: first choice {_first_choice_words(first)}"
        parts = [f"**{title}**", ""]
        for rec in first:
            parts += [_detail(rec, result, knowledge, with_disclaimer=False), ""]
        rest = [r for r in result.recommendations if r.rank != 1]
        if rest:
            parts += ["**Other options, in the source's order**"]
            parts += [*_other_option_lines(first, rest, base_url), ""]
        if notes:
            parts += ["**Also note**", *notes, ""]
        parts.append(f"_{result.disclaimer}_")
        card: dict[str, Any] = {
            "uuid": new_uuid(),
            "summary": _short(summary),
            "detail": "\n".join(parts),
            "indicator": "info",
            "source": _card_source(version, first_id, base_url, first_id),
            "links": _links(base_url, chart_token),
        }
        if drafts is None:
            drafts = draftable(first)
        if drafts:
            card["suggestions"] = _suggestions(drafts, patient_ref, knowledge)
            card["selectionBehavior"] = _selection(drafts)
        card["overrideReasons"] = _override_reasons()
        cards.append(card)
    elif any(_says_out_of_scope(w.code, knowledge) for w in result.warnings) or state is None:
        why = next(
            (_OUT_OF_SCOPE_WHY[w.code] for w in result.warnings if w.code in _OUT_OF_SCOPE_WHY),
            "no option of this guideline applies",
        )
        lines = [w.message for w in others] or ["No option applies."]
        cards.append(
            {
                "uuid": new_uuid(),
                "summary": _short(f"myoguide: no recommendation: {why}"),
                "detail": "\n\n".join([*lines, f"_{result.disclaimer}_"]),
                "indicator": "info",
                "source": _card_source(version, "no-recommendation", base_url, None),
                "links": _links(base_url, chart_token),
            }
        )
    else:
        # Inside the guideline, but the record does not tell what the answer needs: ask.
        cards.append(
            facts_needed_card(
                result,
                state,
                knowledge,
                notes=[w.message for w in others],
                base_url=base_url,
                chart_token=chart_token,
            )
        )
    for w in own:
        cards.append(
            {
                "uuid": new_uuid(),
                "summary": _short(f"myoguide: {w.message}"),
                "detail": f"{w.message}\n\n_{result.disclaimer}_",
                "indicator": "warning",
                "source": _card_source(version, f"warning.{w.code}", base_url, first_id),
                "overrideReasons": _override_reasons(),
            }
        )
    dq = data_quality_card(
        [(c, m) for c, m in data_warnings if c not in codes],
        version=version,
        disclaimer=result.disclaimer,
        base_url=base_url,
    )
    if dq is not None:
        cards.append(dq)
    return cards[:MAX_CARDS]


# Why an answer is out of scope, in the words of a card's one-line summary (the warning, in
# full, is the detail). Diagnoses other than DM/PM get no card at all (ADR 0010); they are
# worded too, so a card never falls back to an internal course name.
_OUT_OF_SCOPE_WHY = {
    "out_of_scope_deceased": "the record says the patient has died",
    "out_of_scope_child": "a child; juvenile DM/PM is outside this guideline",
    "out_of_scope_ibm": "inclusion body myositis is outside this guideline",
    "out_of_scope_diagnosis": "the diagnosis is not dermatomyositis or polymyositis",
    "out_of_scope_initial_therapy": "initial therapy (control never reached, no failed "
    "azathioprine or methotrexate) is outside this guideline",
    "all_options_failed": "every step of the resistant ladder has failed",
}


def _says_out_of_scope(code: str, knowledge: Knowledge) -> bool:
    """Tell whether a warning puts the patient outside the guideline (not a gap in the record)."""
    policy = knowledge.warning_policy(code)
    return policy.level == "stop" and policy.scope != "record"


def facts_needed_card(
    result: RecommendationSet,
    state: PatientState,
    knowledge: Knowledge,
    *,
    notes: Sequence[str],
    base_url: str,
    chart_token: str | None,
) -> dict[str, Any]:
    """Return the card for a DM/PM patient whose chart does not tell what the answer needs."""
    missing = missing_facts(result, state, knowledge)
    short = [
        words
        for words, gone in (
            ("controlled", state.disease_control_achieved is None),
            ("flaring", state.flare is None),
        )
        if gone
    ]
    summary = "myoguide: facts needed before options can be given; answer them in myoguide"
    if short:
        asked = " or ".join(short)
        summary = (
            f"myoguide: facts needed: the chart does not say whether the disease is {asked}; "
            "answer in myoguide"
        )
    parts = [
        "**Facts needed.** This adult's dermatomyositis or polymyositis is within this "
        "guideline, but the chart does not say what the choice depends on:",
        "",
        *(f"- {m}" for m in missing or ["See below."]),
        "",
        "**What the chart says**",
        "",
        *(f"- {line}" for line in chart_says(state, knowledge)),
        "",
        "Open the assessment (filled from this chart) to answer these and see the options.",
    ]
    if notes:
        parts += ["", "**Why no option is shown yet**", *(f"- {n}" for n in notes)]
    parts += ["", f"_{result.disclaimer}_"]
    return {
        "uuid": new_uuid(),
        "summary": _short(summary),
        "detail": "\n".join(parts),
        "indicator": "info",
        "source": _card_source(result.knowledge_version, "facts-needed", base_url, None),
        "links": _links(base_url, chart_token),
    }


def data_quality_card(
    warnings: Sequence[tuple[str, str]], *, version: str, disclaimer: str, base_url: str
) -> dict[str, Any] | None:
    """Return one card merging every data problem met reading the chart, or None if none."""
    if not warnings:
        return None
    counts: dict[str, int] = {}
    for _, message in warnings:
        counts[message] = counts.get(message, 0) + 1
    lines = [f"- {m}" + (f" (x{n})" if n > 1 else "") for m, n in counts.items()]
    shown = lines[:MAX_DATA_LINES]
    if len(lines) > MAX_DATA_LINES:
        shown.append(f"- and {len(lines) - MAX_DATA_LINES} other problem(s)")
    summary = f"myoguide: {len(warnings)} problem(s) reading the chart; check before relying on it"
    return {
        "uuid": new_uuid(),
        "summary": _short(summary),
        "detail": "What could not be read, or was read with a caveat:\n\n"
        + "\n".join(shown)
        + f"\n\n_{disclaimer}_",
        "indicator": "warning",
        "source": _card_source(version, "data-quality", base_url, None),
    }


# What a field the chart could not give means to a clinician (an unusable record's card).
_FIELD_WORDS = {
    "diagnosis": "the chart does not say whether the myositis is dermatomyositis or polymyositis",
    "age_years": "the patient's age could not be read from the chart",
}


def unusable_words(exc: InputError) -> str:
    """Return why a record is unusable in a clinician's words, never a field name."""
    field = exc.field.split(".", 1)[0].split("[", 1)[0]
    return _FIELD_WORDS.get(field, "a value read from the chart could not be used")


def unusable_cards(
    problem: str,
    data_warnings: Sequence[tuple[str, str]],
    *,
    version: str,
    disclaimer: str,
    base_url: str,
) -> list[dict[str, Any]]:
    """Return the card of a DM/PM chart that lacks what a recommendation needs, and its data."""
    card = {
        "uuid": new_uuid(),
        "summary": "myoguide: the record lacks what is needed for a recommendation",
        "detail": f"The chart data could not be used: {problem}. No recommendation is made; "
        f"the assessment can be filled in by hand.\n\n_{disclaimer}_",
        "indicator": "warning",
        "source": _card_source(version, "unusable", base_url, None),
        "links": _links(base_url),
    }
    dq = data_quality_card(data_warnings, version=version, disclaimer=disclaimer, base_url=base_url)
    return [card] if dq is None else [card, dq]


_SEVERITY = ("info", "warning", "critical")


def order_cards(
    findings: Sequence[OrderFinding],
    knowledge: Knowledge,
    *,
    disclaimer: str,
    base_url: str,
) -> list[dict[str, Any]]:
    """Render the domain's judgement of draft orders as cards, merged by kind past the cap."""
    version = knowledge.knowledge_version
    merge = len(findings) > MAX_CARDS
    groups: dict[str, list[OrderFinding]] = {}
    for f in findings:
        # Merged past the cap: one card per kind of finding, naming the orders it concerns.
        kind = f.key.split(":")[0] if merge else f.key
        groups.setdefault(kind, []).append(f)
    cards = []
    for group in groups.values():
        first = group[0]
        summary, detail = first.summary, first.detail
        if len(group) > 1:
            # Named by what each order is, never by its record id (ADR 0010, issue 17).
            said = list(dict.fromkeys(f.summary for f in group))
            more = f"; and {len(said) - 10} more" if len(said) > 10 else ""
            summary = f"{len(group)} orders: {first.summary}"
            detail = f"{first.detail} The same applies to {len(group)} draft orders: "
            detail += "; ".join(said[:10]) + more + "."
        cards.append(
            {
                "uuid": new_uuid(),
                "summary": _short(summary),
                "detail": f"{detail} Source: {source_words(first.sources)}.\n\n_{disclaimer}_",
                "indicator": max((f.indicator for f in group), key=_SEVERITY.index),
                "source": _card_source(
                    version, first.key.split(":")[0], base_url, first.recommendation
                ),
                "overrideReasons": _override_reasons(),
            }
        )
    # Most severe first, so the cap never drops a critical card for an informative one.
    cards.sort(key=lambda c: -_SEVERITY.index(c["indicator"]))
    return cards[:MAX_CARDS]


USAGE_REQUIREMENTS = (
    "Grant read access to the patient's Patient, Condition, "
    + ", ".join(MEDICATION_RESOURCES)
    + ", Medication, AllergyIntolerance and Observation (body weight and height) resources, "
    "by prefetch or through fhirServer with fhirAuthorization. For adults with dermatomyositis "
    "or polymyositis only."
)


def discovery(hooks: Sequence[Hook], prefetch: Mapping[str, str]) -> dict[str, Any]:
    """Return the CDS Hooks discovery document of the hook table's services."""
    services = [
        {
            "hook": h.hook,
            "id": h.id,
            "title": h.title,
            "description": h.description,
            "prefetch": dict(prefetch),
            "usageRequirements": USAGE_REQUIREMENTS,
        }
        for h in hooks
    ]
    return {"services": services}
