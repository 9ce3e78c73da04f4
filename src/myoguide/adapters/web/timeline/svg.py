"""SVG markup: the style sheet, patterns, escaping, coordinates, text and the root element."""

from __future__ import annotations

import hashlib
import re
from typing import Final

# Stands in for the id prefix until the body is hashed; user text can never contain it.
ID_MARK: Final = "\x00"

# Fill of a bar per outcome: a pattern, not a colour, so the meaning survives greyscale print.
FILLS: Final[dict[str | None, str]] = {
    "responded": "solid",
    "inadequate_response": f"url(#{ID_MARK}-hatch)",
    "intolerance": f"url(#{ID_MARK}-cross)",
    None: "open",
}

# Characters XML 1.0 forbids; user labels may carry them and must not break the document.
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

STYLE: Final = (
    ".mgtl{font:11px system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;"
    "max-width:100%;height:auto}"
    ".mgtl text{fill:currentColor;stroke:none}"
    ".mgtl .h{font-weight:600}"
    ".mgtl .s{font-size:10px}"
    ".mgtl .i{font-style:italic}"
    ".mgtl .m{text-anchor:middle}"
    ".mgtl .e{text-anchor:end}"
    ".mgtl .ax{stroke:currentColor;fill:none}"
    ".mgtl .grid{stroke:currentColor;stroke-opacity:.15;fill:none}"
    ".mgtl .guide{stroke:currentColor;stroke-opacity:.3;stroke-dasharray:1 3;fill:none}"
    ".mgtl .pred{stroke:currentColor;stroke-width:2;fill:none;stroke-linejoin:round}"
    ".mgtl .dot{fill:currentColor;stroke:none}"
    ".mgtl .unk{fill:none;stroke:currentColor;stroke-dasharray:2 2}"
    ".mgtl .flare-line{stroke:currentColor;stroke-dasharray:6 3;stroke-opacity:.6;fill:none}"
    ".mgtl .flare-mark{fill:currentColor;stroke:none}"
    ".mgtl .bar{stroke:currentColor;stroke-width:1.2}"
    ".mgtl .solid{fill:currentColor;fill-opacity:.55}"
    ".mgtl .open{fill:none}"
    ".mgtl .prior{stroke-dasharray:2 2}"
    ".mgtl .pat{stroke:currentColor;stroke-width:1.3;fill:none}"
    ".mgtl .glyph{font-size:14px;text-anchor:middle;font-weight:700}"
    ".mgtl .nodec{fill:none;stroke:currentColor}"
    ".mgtl .run{stroke:currentColor;stroke-opacity:.6;fill:none}"
    ".mgtl .gap{stroke:currentColor;stroke-dasharray:1 4;fill:none}"
)

DEFS: Final = (
    "<defs>"
    f'<pattern id="{ID_MARK}-hatch" width="5" height="5" patternUnits="userSpaceOnUse"'
    ' patternTransform="rotate(45)"><path class="pat" d="M2.5,0V5"/></pattern>'
    f'<pattern id="{ID_MARK}-cross" width="6" height="6" patternUnits="userSpaceOnUse"'
    ' patternTransform="rotate(45)"><path class="pat" d="M3,0V6M0,3H6"/></pattern>'
    "</defs>"
)


def esc(text: str) -> str:
    """Return text safe inside XML character data and double-quoted attributes."""
    text = _NOT_XML.sub("\ufffd", text)
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def num(value: float) -> str:
    """Return a coordinate with one decimal and no trailing zeros."""
    out = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if out == "-0" else out


def svg_text(x: float, y: float, text: str, cls: str = "") -> str:
    """Return one escaped <text> element."""
    klass = f' class="{cls}"' if cls else ""
    return f'<text x="{num(x)}" y="{num(y)}"{klass}>{esc(text)}</text>'


def bar_paint(outcome: str | None, *, prior: bool) -> str:
    """Return the class and fill attributes of a bar for an outcome (pattern, not colour)."""
    fill = FILLS.get(outcome, "open")
    klass = "bar prior" if prior else "bar"
    if fill.startswith("url("):
        return f'class="{klass}" fill="{fill}"'
    return f'class="{klass} {fill}"'


def wrap_svg(
    body: str, width: float, height: float, title: str, desc: str, *, embed_style: bool = True
) -> str:
    """Return the root <svg> around body, with ids made unique and stable by hashing the content.

    Without `embed_style` the page must link STYLE itself (a strict CSP refuses inline styles).
    """
    head = (
        f'<title id="{ID_MARK}-t">{esc(title)}</title><desc id="{ID_MARK}-d">{esc(desc)}</desc>'
        + (f"<style>{STYLE}</style>" if embed_style else "")
    )
    inner = head + body
    prefix = "mgtl-" + hashlib.sha1(inner.encode("utf-8"), usedforsecurity=False).hexdigest()[:10]
    w, h = num(width), num(height)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="mgtl" role="img" width="{w}"'
        f' height="{h}" viewBox="0 0 {w} {h}" aria-labelledby="{ID_MARK}-t {ID_MARK}-d">'
        f"{inner}</svg>"
    ).replace(ID_MARK, prefix)


def empty_svg(width: float, *, embed_style: bool = True) -> str:
    """Return the small SVG shown before any visit."""
    body = svg_text(width / 2, 26, "No visits yet", "m i")
    return wrap_svg(body, width, 40, "Treatment course", "No visits yet.", embed_style=embed_style)
