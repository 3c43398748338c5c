"""How the report writes numbers, money, dates and names (presentation only; no arithmetic leaks
back into the data)."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from ..money import Money, Rate
from ._i18n import label


def money(m: Money | None) -> str:
    """Exact, grouped, with the currency's minor digits: ``1,387,841.00`` (the currency is named
    once per table)."""
    if m is None:
        return "—"
    return f"{m.amount:,.{m.exponent}f}"


def money_with_currency(m: Money | None) -> str:
    if m is None:
        return "—"
    return f"{money(m)} {m.currency}"


def short_money(m: Money | None, lang: str, places: int = 2) -> str:
    """Compact money for charts and cards: ``1.39M``/``388.2K`` in English, ``138.78万``/``1.39亿``
    in Chinese."""
    if m is None:
        return "—"
    v = m.amount
    sign = "-" if v < 0 else ""
    a = abs(v)
    steps: tuple[tuple[Decimal, str], ...]
    if lang == "zh":
        steps = ((Decimal(10) ** 8, "亿"), (Decimal(10) ** 4, "万"))
    else:
        steps = ((Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "K"))
    for size, suffix in steps:
        if a >= size:
            x = (a / size).quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
            text = f"{x:,.{places}f}".rstrip("0").rstrip(".") if places else f"{x:,}"
            return f"{sign}{text}{suffix}"
    return f"{sign}{a.quantize(Decimal(1), ROUND_HALF_EVEN):,}"


def percent(x: Decimal | Rate | None, places: int = 1) -> str:
    """A fraction as a percentage, rounded half-even: ``Decimal("0.8734")`` → ``87.3%``."""
    if x is None:
        return "—"
    d = x.value if isinstance(x, Rate) else Decimal(x)
    q = (d * 100).quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
    return f"{q:.{places}f}%"


def points(x: Decimal | None) -> str:
    """A difference of two fractions in signed percentage points: ``+3.8``, ``−3.8``."""
    if x is None:
        return "—"
    q = (Decimal(x) * 100).quantize(Decimal("0.1"), ROUND_HALF_EVEN)
    return f"+{q}" if q > 0 else f"−{-q}" if q < 0 else "0.0"


def number(x: Any) -> str:
    """Counts grouped (``1,234``); decimals as given, grouped."""
    if x is None:
        return "—"
    if isinstance(x, Money):
        return money(x)
    if isinstance(x, Rate):
        return percent(x)
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, Decimal):
        return f"{x:,}"
    return str(x)


def days(x: Decimal | None) -> str:
    if x is None:
        return "—"
    return f"{Decimal(x).quantize(Decimal('0.1'), ROUND_HALF_EVEN)}"


def day(d: date | datetime | None, tz: tzinfo | None = None) -> str:
    if d is None:
        return "—"
    if isinstance(d, datetime):
        return (d.astimezone(tz) if tz is not None else d).strftime("%Y-%m-%d %H:%M")
    return d.isoformat()


def metric_value(metric: str, v: Any) -> str:
    """A KPI value as the tables show it: money exact, rates as percentages, counts grouped."""
    if isinstance(v, Money):
        return money(v)
    if isinstance(v, Decimal) and ("rate" in metric or metric in ("csat",)):
        return percent(v)
    return number(v)


def stage(st: Any, lang: str) -> str:
    """A stage's name: the Chinese (process) name in Chinese; the English name followed by the
    process's own name in English when they differ (``Quote 报价``)."""
    if st is None:
        return "—"
    if lang == "zh":
        return str(st.display("zh"))
    en = st.display("en")
    return en if en == st.name else f"{en} {st.name}"


def tr(prefix: str, key: str | None, lang: str) -> str:
    """A translated enum-like value (``reason.won``, ``signal.stalled``...)."""
    if key is None:
        return "—"
    return label(f"{prefix}.{key}", lang)
