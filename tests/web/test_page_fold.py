"""Issue 18 item 6 on the page, in process: the ladder folded beneath R1's "manage as resistant
disease", each option's `after` shown, and the trace in words with no rule id or field name."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from formhtml import answer_page
from myoguide.adapters.web.site import Site
from myoguide.adapters.web.trace import trace_rows
from myoguide.bootstrap import default_service
from myoguide.errors import InputError

VIGNETTES = Path(__file__).resolve().parents[1] / "vignettes"
SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots" / "answers.json"
SERVICE = default_service()
# An id or field name as the engine writes them (words joined by underscores).
ID = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")
URL = re.compile(r"\b(?:https?|urn):")


class _Options(HTMLParser):
    """Each option's id with the id of the option it sits inside (None at the top level)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []
        self.parent: dict[str, str | None] = {}
        self.fold_headings: list[str] = []
        self._in_h4 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "li":
            rec = (
                (a.get("id") or "").removeprefix("opt-")
                if "option" in (a.get("class") or "")
                else None
            )
            if rec:
                self.parent[rec] = next((s for s in reversed(self.stack) if s), None)
            self.stack.append(rec)
        self._in_h4 = tag == "h4"

    def handle_endtag(self, tag: str) -> None:
        if tag == "li":
            self.stack.pop()
        if tag == "h4":
            self._in_h4 = False

    def handle_data(self, data: str) -> None:
        if self._in_h4:
            self.fold_headings.append(data.strip())


R1 = {
    "age_years": "45",
    "diagnosis": "polymyositis",
    "weight.value": "80",
    "weight.unit": "kg",
    "disease_control_achieved": "yes",
    "flare": "yes",
    "current_medications[0].agent": "prednisone",
    "current_medications[0].dose.value": "15",
    "current_medications[0].dose.unit": "mg/day",
}


def _options(html: str) -> _Options:
    parser = _Options()
    parser.feed(html[html.index('<ol class="options">') :])
    return parser


def test_r1_folds_the_resistant_ladder_beneath_manage_as_resistant(client: TestClient) -> None:
    html = answer_page(client, {**R1, "alternative_diagnoses_excluded": "yes"})
    options = _options(html)
    top = [rec for rec, parent in options.parent.items() if parent is None]
    assert top == ["r1_add_sparing_agent", "r1_manage_as_resistant"]
    beneath = [rec for rec, parent in options.parent.items() if parent == "r1_manage_as_resistant"]
    # The same options the JSON answer folds under it, in its order, and nothing else.
    result = SERVICE.recommend(
        json.loads((Path(__file__).resolve().parents[2] / "examples" / "flare-above-10mg.json")
                   .read_text())["input"] | {"alternative_diagnoses_excluded": True}
    )  # fmt: skip
    assert beneath == [r.id for r in result.recommendations if r.under == "r1_manage_as_resistant"]
    assert beneath[0] == "resistant_rituximab"
    assert len(beneath) >= 5
    assert options.fold_headings == [
        f"Manage as resistant disease: the {len(beneath)} options beneath it, best first"
    ]
    # Headings in order: the options' h3, then the fold's h4 inside it.
    levels = [int(n) for n in re.findall(r"<h([1-6])\b", html[html.index('id="answer"') :])]
    assert all(b <= a + 1 for a, b in itertools.pairwise(levels)), levels


def test_options_waiting_on_exclusion_say_when_they_apply(client: TestClient) -> None:
    html = answer_page(client, {**R1, "alternative_diagnoses_excluded": "no"})
    rituximab = html[html.index('id="opt-resistant_rituximab"') :]
    rituximab = rituximab[: rituximab.index("</li>")]
    assert re.search(
        r'<p class="after"><strong>When it applies:</strong> Once other diagnoses '
        r"\(inclusion body myositis above all\) are excluded\.</p>",
        rituximab,
    )
    assert _options(html).parent["resistant_rituximab"] == "r1_manage_as_resistant"


def test_the_printed_answer_keeps_the_fold(client: TestClient) -> None:
    # The print style hides <details>; the fold is a plain nested list, so print keeps it.
    html = answer_page(client, {**R1, "alternative_diagnoses_excluded": "yes"})
    fold = html[html.index('<div class="folded"') :]
    assert "<details" not in fold[: fold.index('id="opt-resistant_rituximab"')]
    css = client.get("/static/style.css").text
    assert ".option.has-folded { break-inside: auto;" in css


def test_trace_rows_are_words_for_every_snapshot_answer() -> None:
    from myoguide.adapters.web.answer import stored_result

    answers = json.loads(SNAPSHOTS.read_text())
    results = [stored_result(a) for a in _answers_in(answers)]
    assert len(results) > 50
    rules = set()
    for result in results:
        assert result is not None
        rules |= {s.rule for s in result.trace}
        for row in trace_rows(result, SERVICE.knowledge):
            for text in (row.step, row.looked_at, row.outcome):
                assert not ID.search(text), f"an id in the trace: {text}"
            assert "." not in row.step.replace("…", "").rstrip("."), row.step
    assert len(rules) > 30


def _answers_in(data: object) -> Iterator[dict[str, object]]:
    if isinstance(data, dict):
        if "trace" in data and "recommendations" in data:
            yield data
            return
        for v in data.values():
            yield from _answers_in(v)
    elif isinstance(data, list):
        for v in data:
            yield from _answers_in(v)


def _visible(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def _answered_states() -> list[str]:
    """Return the vignettes whose input is a patient state the engine answers (not refused)."""
    names = []
    for path in sorted(VIGNETTES.glob("*.json")):
        state = json.loads(path.read_text())["input"]
        if not isinstance(state, dict) or "age_years" not in state:
            continue  # a FHIR bundle: the FHIR tests render those
        try:
            SERVICE.recommend(state)
        except InputError:  # refused input is another test's business
            continue
        names.append(path.stem)
    return names


@pytest.mark.parametrize("name", _answered_states())
def test_no_id_field_name_or_raw_url_in_any_answer_on_the_page(name: str) -> None:
    state = json.loads((VIGNETTES / f"{name}.json").read_text())["input"]
    result = SERVICE.recommend(state)
    site = _site()
    html = site.env.get_template("_answer.html").render(
        **site.answer_context(result),
        visit_date="2026-12-01",
        review_date="2026",
        ref_links=site.sources.links,
    )
    text = _visible(html)
    assert not URL.search(text), URL.search(text)
    found = ID.findall(text)
    assert not found, f"{name}: ids or field names on the page: {sorted(set(found))[:10]}"


_SITE: list[Site] = []


def _site() -> Site:
    if not _SITE:
        from myoguide.adapters.web.site import WebDeps

        _SITE.append(Site(WebDeps(SERVICE, None, None, "k", False, None)))  # type: ignore[arg-type]
    return _SITE[0]
