"""Rendering of the weekly review (:mod:`salesprocess.review`) as a self-contained HTML page or as
Markdown, in Chinese or English.

>>> from salesprocess.report import FORMATS, LANGUAGES
>>> FORMATS, LANGUAGES
(('html', 'md'), ('en', 'zh'))

The HTML page needs nothing from the network: the style is inline, the charts (attainment against
pace, pipeline waterfall, funnel, forecast fan) are SVG drawn by this package, the risk heat table
is coloured HTML. It reads well on a phone (tables scroll inside their own box, charts scale) and
prints to PDF with one section per page. No plotting library is needed.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..errors import DomainError
from ..review import WeeklyReview
from ._fmt import money as format_money
from ._fmt import percent as format_percent
from ._fmt import short_money as format_short_money
from ._fmt import stage as format_stage
from ._html import render_html
from ._i18n import LANGUAGES, label
from ._markdown import render_markdown

__all__ = [
    "FORMATS",
    "LANGUAGES",
    "format_money",
    "format_percent",
    "format_short_money",
    "format_stage",
    "label",
    "render",
    "render_html",
    "render_markdown",
    "write_review",
]

FORMATS: tuple[str, ...] = ("html", "md")


def render(review: WeeklyReview, *, format: str = "html", lang: str = "zh", limit: int = 10) -> str:
    """The review as text: ``format`` ``html`` or ``md``, ``lang`` ``zh`` or ``en``; lists longer
    than ``limit`` rows (changed deals per reason, at-risk deals) show the first ``limit``."""
    if format not in FORMATS:
        raise DomainError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if lang not in LANGUAGES:
        raise DomainError(f"lang must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    if format == "html":
        return render_html(review, lang=lang, limit=limit)
    return render_markdown(review, lang=lang, limit=limit)


def write_review(review: WeeklyReview, path: str | os.PathLike[str], *, format: str | None = None,
                 lang: str = "zh", limit: int = 10) -> Path:
    """Render and write the review to ``path`` (UTF-8), all or nothing: the text goes to a
    temporary file beside it that replaces ``path`` only once complete. ``format`` defaults to
    ``md`` for a ``.md`` path and ``html`` otherwise. Returns the path written."""
    p = Path(path)
    fmt = format or ("md" if p.suffix.lower() in (".md", ".markdown") else "html")
    text = render(review, format=fmt, lang=lang, limit=limit)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return p
