"""The visit form's controls as the templates call them: errors, ARIA, selects and the rows.

Written in Python rather than as Jinja macros or template loops: the form calls them about
eighty times a page, and each template expression costs many times the few string joins it is
(issue 24). The HTML is the templates' byte for byte; every value is escaped as Jinja's
autoescape would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from markupsafe import Markup, escape

# One empty piece for the many fields with nothing to add (no new object each time).
_NOTHING = Markup()


def err_id(name: str) -> str:
    """Return the id of a field's error message (used by aria-describedby), escaped."""
    return "err-" + escape(name.replace("[", "-").replace("]", "").replace(".", "-"))


class Controls:
    """The form's controls for one page: its values, errors and the field to focus.

    Methods rather than context functions: Jinja copies its whole context for each call of a
    context function made inside a loop or block, which is most of the form.
    """

    def __init__(self, form: Any, focus: str | None) -> None:
        self.form = form
        self.errors: Mapping[str, str] = form.errors
        self.focus = focus

    def err(self, name: str) -> Markup:
        """Return a field's error message next to it, or nothing."""
        message = self.errors.get(name)
        if not message:
            return _NOTHING
        return Markup(f'<span class="error" id="{err_id(name)}">{escape(message)}</span>')

    def aria(self, name: str, hint: str | None = None) -> Markup:
        """Return a field's ARIA attributes: invalid, described by its error or hint; autofocus."""
        if not hint and self.focus != name and not self.errors.get(name):
            return _NOTHING  # most fields of most pages
        out = ""
        if self.errors.get(name):
            also = f" {escape(hint)}" if hint else ""
            out = f' aria-invalid="true" aria-describedby="{err_id(name)}{also}"'
        elif hint:
            out = f' aria-describedby="{escape(hint)}"'
        if self.focus == name:
            out += " autofocus"
        return Markup(out)

    def select(
        self,
        name: str,
        options: Iterable[tuple[Any, Any]],
        blank: str | None = None,
        extra: str = "",
    ) -> Markup:
        """Return a select with its options, the form's value selected, and ARIA attributes."""
        chosen = self.form.get(name)
        named = escape(name)
        head = f'<select name="{named}" id="{named}"{self.aria(name)}{extra}>\n'
        if blank is not None:
            head += f'<option value="">{escape(blank)}</option>'
        plain, chosen_one = _tags(options)
        body = chosen_one.get(chosen, plain)
        return Markup(head + body + "</select>\n")

    def options(self, name: str, options: Iterable[tuple[Any, Any]], extra: str = "") -> Markup:
        """Return option tags (each with `extra` attributes), the form's value selected."""
        chosen = self.form.get(name)
        plain, chosen_one = _tags(options, extra)
        return Markup(chosen_one.get(chosen, plain))

    def med_row(
        self,
        i: int,
        agents: Iterable[tuple[Any, Any]],
        units: Iterable[tuple[Any, Any]],
        course_units: Iterable[tuple[Any, Any]],
    ) -> Markup:
        """Return medication row `i`: drug, dose unit (following the drug), dose, last given."""
        base = f"current_medications[{i}]"
        agent, unit, dose, last = (
            f"{base}.{k}" for k in ("agent", "dose.unit", "dose.value", "last_given")
        )
        get = self.form.get
        # Per infusion or per course is the clinician's choice: no course unit is preselected.
        # The unit comes before the amount: it follows the drug, so Tab from the amount goes on
        # to the next drug, and Shift+Tab from the amount reaches the unit to change it.
        return Markup(
            '      <fieldset class="entry">\n'
            f"        <legend>Medication {i + 1}</legend>\n"
            f'        <div class="cell"><label for="{agent}">Drug</label>'
            f"{self.select(agent, agents, blank='— none —', extra=' data-agent')}"
            f"{self.err(agent)}</div>\n"
            f'        <div class="cell"><label for="{unit}">Dose unit</label>\n'
            f'          <select name="{unit}" id="{unit}"{self.aria(unit)} data-unit>\n'
            '            <option value="" data-course'
            f"{'' if get(unit) else ' selected'}>— per infusion or course? —</option>\n"
            '            <optgroup label="per day or week">'
            f"{self.options(unit, units)}</optgroup>\n"
            '            <optgroup label="rituximab, IVIG, cyclophosphamide" data-course>'
            f"{self.options(unit, course_units, ' data-course')}</optgroup>\n"
            f"          </select>{self.err(unit)}</div>\n"
            f'        <div class="cell"><label for="{dose}">Dose</label><input name="{dose}"'
            f' id="{dose}" inputmode="decimal" autocomplete="off" value="{escape(get(dose))}"'
            f"{self.aria(dose)}>{self.err(dose)}</div>\n"
            f'        <div class="cell" data-course-only><label for="{last}">Last infusion or'
            f' course given on</label><input type="date" name="{last}" id="{last}"'
            f' autocomplete="off" value="{escape(get(last))}"{self.aria(last)}>'
            f"{self.err(last)}</div>\n"
            "      </fieldset>"
        )

    def history_row(
        self, i: int, agents: Iterable[tuple[Any, Any]], outcomes: Iterable[tuple[Any, Any]]
    ) -> Markup:
        """Return earlier-treatment row `i`: the drug and how the disease answered."""
        base = f"treatment_history[{i}]"
        agent, outcome = f"{base}.agent", f"{base}.outcome"
        return Markup(
            '      <fieldset class="entry">\n'
            f"        <legend>Earlier treatment {i + 1}</legend>\n"
            f'        <div class="cell"><label for="{agent}">Drug</label>'
            f"{self.select(agent, agents, blank='— none —')}{self.err(agent)}</div>\n"
            f'        <div class="cell"><label for="{outcome}">How the disease answered</label>'
            f"{self.select(outcome, outcomes)}{self.err(outcome)}</div>\n"
            "      </fieldset>"
        )


# A choices list's option tags: none selected, and by value with that value's tag selected.
Tags = tuple[str, dict[Any, str]]
# Option tags by the id of their choices list and their extra attributes, with the list itself
# (so the id stays its own).
_TAGS: dict[tuple[int, str], tuple[object, Tags]] = {}


def _tags(options: Iterable[tuple[Any, Any]], extra: str = "") -> Tags:
    """Return a list's option tags, plain and with each value selected; the site's lists once."""
    found = _TAGS.get((id(options), extra))
    if found is not None and found[0] is options:
        return found[1]
    tags = []
    for value, text in options:
        head, tail = f'<option value="{escape(value)}"{extra}', f">{escape(text)}</option>"
        tags.append((value, head + tail, head + " selected" + tail))
    plain = "".join(off for _, off, _ in tags)
    chosen = {v: "".join(on if v == value else off for value, off, on in tags) for v, _, _ in tags}
    if len(_TAGS) < 64:  # the site's few lists; any other list is simply written each time
        _TAGS[(id(options), extra)] = (options, (plain, chosen))
    return plain, chosen
