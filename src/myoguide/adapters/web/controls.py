"""The visit form's controls as the templates call them: error text, ARIA attributes, selects.

Written in Python rather than as Jinja macros: the form calls them about eighty times a page,
and a macro call costs many times the few string joins each one is (issue 24). The HTML is the
macros' byte for byte; every value is escaped as Jinja's autoescape would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
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


@lru_cache(maxsize=64)
def _tags(options: tuple[tuple[Any, Any], ...]) -> tuple[tuple[Any, str, str], ...]:
    """Return each option's tag, plain and selected: the choices come from the knowledge."""
    tags = []
    for value, text in options:
        head, tail = f'<option value="{escape(value)}"', f">{escape(text)}</option>"
        tags.append((value, head + tail, head + " selected" + tail))
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
    body = "".join(on if chosen == value else off for value, off, on in _tags(tuple(options)))
    return Markup(head + body + "</select>\n")
