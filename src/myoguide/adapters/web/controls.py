"""The visit form's controls as the templates call them: error text, ARIA attributes, selects.

Written in Python rather than as Jinja macros: the form calls them about eighty times a page,
and a macro call costs many times the few string joins each one is (issue 24). The HTML is the
macros' byte for byte; every value is escaped as Jinja's autoescape would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape


def err_id(name: str) -> str:
    """Return the id of a field's error message (used by aria-describedby), escaped."""
    return "err-" + escape(name.replace("[", "-").replace("]", "").replace(".", "-"))


def _errors(context: Context) -> Mapping[str, str]:
    errors: Mapping[str, str] = context["form"].errors
    return errors


@pass_context
def err(context: Context, name: str) -> Markup:
    """Return a field's error message next to it, or nothing."""
    message = _errors(context).get(name)
    if not message:
        return Markup()
    return Markup(f'<span class="error" id="{err_id(name)}">{escape(message)}</span>')


@pass_context
def aria(context: Context, name: str, hint: str | None = None) -> Markup:
    """Return a field's ARIA attributes: invalid and described by its error or hint; autofocus."""
    out = ""
    if _errors(context).get(name):
        also = f" {escape(hint)}" if hint else ""
        out = f' aria-invalid="true" aria-describedby="{err_id(name)}{also}"'
    elif hint:
        out = f' aria-describedby="{escape(hint)}"'
    if context.get("focus") == name:
        out += " autofocus"
    return Markup(out)


Tags = tuple[tuple[Any, str, str], ...]
# Option tags by the id of their choices list, with the list itself (so the id stays its own).
_TAGS: dict[int, tuple[object, Tags]] = {}


def _tags(options: Iterable[tuple[Any, Any]]) -> Tags:
    """Return each option's tag, plain and selected; the site's choices lists are written once."""
    found = _TAGS.get(id(options))
    if found is not None and found[0] is options:
        return found[1]
    tags = []
    for value, text in options:
        head, tail = f'<option value="{escape(value)}"', f">{escape(text)}</option>"
        tags.append((value, head + tail, head + " selected" + tail))
    if len(_TAGS) < 64:  # the site's few lists; any other list is simply written each time
        _TAGS[id(options)] = (options, tuple(tags))
    return tuple(tags)


@pass_context
def select(
    context: Context,
    name: str,
    options: Iterable[tuple[Any, Any]],
    blank: str | None = None,
    extra: str = "",
) -> Markup:
    """Return a select with its options, the form's value selected and its ARIA attributes."""
    chosen = context["form"].get(name)
    named = escape(name)
    head = f'<select name="{named}" id="{named}"{aria(context, name)}{extra}>\n'
    if blank is not None:
        head += f'<option value="">{escape(blank)}</option>'
    body = "".join(on if chosen == value else off for value, off, on in _tags(options))
    return Markup(head + body + "</select>\n")


# The label checks' groups, in the order the answer shows them.
_CHECK_GROUPS = (("before_first_dose", "Before starting"), ("while_taking", "While taking"))


def check_groups(checks: Iterable[Any]) -> list[tuple[str, list[Any]]]:
    """Return an agent's label checks as (heading, checks) for each time that has any."""
    checks = list(checks)
    groups = [(title, [c for c in checks if c.when == when]) for when, title in _CHECK_GROUPS]
    return [(title, chosen) for title, chosen in groups if chosen]
