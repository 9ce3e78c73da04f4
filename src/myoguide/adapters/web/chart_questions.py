"""The page a SMART launch opens: only what the chart did not tell, each beside its evidence.

The chart's facts travel as hidden fields to the ordinary POST /assess, so the answer is the
form's answer (and `myoguide recommend`'s on the same facts). The full form stays one link away
(`/assess?chart=TOKEN&full=1`) for checking or changing any fact read from the chart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import Request
from fastapi.responses import Response

from myoguide.adapters.web.forms import OUTCOMES, form_from_state

# The hand-off entry codes adapters/smart/evidence.py writes (a string protocol: no import).
_PREFIX: Final = "evidence."
_LAUNCH: Final = "evidence.launch"
_DISEASE: Final = "evidence.disease"
_AGENT: Final = "evidence.agent."
_ALLERGY: Final = "evidence.allergy"
_TRISTATE: Final = [("unknown", "not known yet"), ("yes", "yes"), ("no", "no")]


@dataclass
class Question:
    """One fact the chart did not tell: its form field, the question, and the chart's evidence."""

    name: str
    label: str
    options: list[tuple[str, str]]
    evidence: list[str] = field(default_factory=list)

    @property
    def hint_id(self) -> str:
        """Return the id of the evidence list (the control's description)."""
        return "ev-" + self.name.replace("[", "-").replace("]", "").replace(".", "-")


def from_launch(warnings: Sequence[tuple[str, str]]) -> bool:
    """Tell whether a hand-off was made by a SMART launch (it then opens the questions)."""
    return any(code == _LAUNCH for code, _ in warnings)


def plain(warnings: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Return the data warnings without the evidence entries."""
    return [(c, m) for c, m in warnings if not c.startswith(_PREFIX)]


def questions(
    state: Mapping[str, Any], warnings: Sequence[tuple[str, str]], labels: Mapping[str, str]
) -> list[Question]:
    """Return the questions the chart left open, in the form's order, with their evidence."""
    by_code: dict[str, list[str]] = {}
    for code, words in warnings:
        by_code.setdefault(code, []).append(words)
    disease = by_code.get(_DISEASE, [])
    out = []
    if state.get("disease_control_achieved") is None:
        out.append(
            Question(
                "disease_control_achieved",
                "Has the disease ever been brought under control on treatment?",
                _TRISTATE,
                disease,
            )
        )
    if state.get("flare") is None:
        out.append(
            Question(
                "flare", "Is it active again now, after control (a flare)?", _TRISTATE, disease
            )
        )
    outcomes = [(o, "not known yet" if o == "unknown" else o.replace("_", " ")) for o in OUTCOMES]
    history = [h for h in state.get("treatment_history") or [] if h.get("agent")]
    for i, item in enumerate(history):
        if item.get("outcome") in (None, "unknown"):
            agent = str(item["agent"])
            out.append(
                Question(
                    f"treatment_history[{i}].outcome",
                    f"How did the disease answer {labels.get(agent, agent)}?",
                    outcomes,
                    by_code.get(_AGENT + agent, []),
                )
            )
    return out


def page(
    request: Request,
    site: Any,
    token: str,
    state: Mapping[str, Any],
    warnings: Sequence[tuple[str, str]],
    facts: list[str],
) -> Response:
    """Render the questions page for a hand-off from a SMART launch."""
    form = form_from_state(state)
    asked = questions(state, warnings, site.agent_labels)
    names = {q.name for q in asked}
    hidden = [(k, v) for k, v in form.values.items() if k not in names]
    counts: dict[str, int] = {}
    for _, message in plain(warnings):
        counts[message] = counts.get(message, 0) + 1
    response: Response = site.page(
        request,
        "chart_questions.html",
        title="What the chart did not tell",
        nav="assess",
        form=form,
        questions=asked,
        hidden=hidden,
        facts=facts,
        chart_warnings=[m + (f" (x{n})" if n > 1 else "") for m, n in counts.items()],
        allergies=[w for c, w in warnings if c == _ALLERGY],
        full_url=f"/assess?chart={token}&full=1",
    )
    return response
