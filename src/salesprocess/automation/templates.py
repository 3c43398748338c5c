"""Texts in several languages with ``{deal.name}``-style placeholders.

A :class:`Text` holds one wording per language (``zh``, ``en``...). :meth:`Text.pick` chooses the
recipient's language — the exact tag, then its primary language (``zh-CN`` → ``zh``), then
English, then the first wording. :func:`render` fills placeholders from a context of objects and
mappings: ``{deal.amount}``, ``{account.name}``, ``{rep.name}``, ``{event.days}``. Only dotted
names are read (no indexing, no calls, no format specs); a name that does not resolve renders as
an empty string. Money renders as ``480,000.00 CNY``, dates in ISO form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import attrs

from ..money import Money, Rate

__all__ = ["Text", "render"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}")


@attrs.frozen
class Text:
    """One text in several languages: ``Text.of("Hi")`` or ``Text.of({"zh": "您好", "en": "Hi"})``."""

    variants: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, v: Any) -> Text:
        if isinstance(v, Text):
            return v
        if isinstance(v, str):
            return cls((("", v),))
        if isinstance(v, Mapping) and v and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
            return cls(tuple(v.items()))
        raise TypeError(f"expected a string or a table of language = text, got {v!r}")

    def pick(self, language: str | None) -> str:
        d = dict(self.variants)
        if language:
            if language in d:
                return d[language]
            primary = language.replace("_", "-").split("-", 1)[0].lower()
            if primary in d:
                return d[primary]
        for k in ("en", ""):
            if k in d:
                return d[k]
        return self.variants[0][1]

    def render(self, language: str | None, context: Mapping[str, Any]) -> str:
        return render(self.pick(language), context)


def _show(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, Money):
        return f"{v.amount:,.{v.exponent}f} {v.currency}"
    if isinstance(v, Rate):
        return f"{v.as_percent:.0f}%"
    if isinstance(v, Decimal):
        return f"{v:,}"
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Enum):
        return str(v.value)
    if isinstance(v, list | tuple):
        return ", ".join(_show(x) for x in v)
    return str(v)


def _lookup(context: Mapping[str, Any], dotted: str) -> Any:
    parts = dotted.split(".")
    cur: Any = context.get(parts[0])
    for p in parts[1:]:
        if cur is None or p.startswith("_"):
            return None
        if isinstance(cur, Mapping):
            cur = cur.get(p)
        else:
            cur = getattr(cur, p, None)
    return cur


def render(template: str, context: Mapping[str, Any]) -> str:
    """``template`` with each ``{dotted.name}`` replaced from ``context`` (see the module doc)."""
    return _PLACEHOLDER.sub(lambda m: _show(_lookup(context, m.group(1))), template)
