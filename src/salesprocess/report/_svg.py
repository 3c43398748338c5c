"""The report's charts as inline SVG, drawn by our own code (no plotting library, no fonts or
scripts to fetch).

Each chart is sized in a ``viewBox`` about as wide as a phone screen, so that on a phone its text
stays at about the page's own size, and scales up on a wider screen. Colours come from CSS classes
the page defines (``.c-ahead``, ``.c-pos``...), so the print style can change them in one place.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from html import escape
from typing import Any

from ..money import Money
from . import _fmt
from ._i18n import label

WIDTH = 360
FONT = 13


def _w(ch: str) -> float:
    """Approximate advance of one character at the chart font size, in viewBox units."""
    if unicodedata.east_asian_width(ch) in "WF":
        return FONT * 1.0
    if ch in "il.,:;|!'’ ":
        return FONT * 0.36
    if ch.isupper() or ch in "mwMW%":
        return FONT * 0.82
    return FONT * 0.66


def text_width(s: str) -> float:
    return sum(_w(c) for c in s)


def fit(s: str, room: float) -> str:
    """``s`` cut with an ellipsis to fit ``room`` units."""
    if text_width(s) <= room:
        return s
    out = ""
    for c in s:
        if text_width(out + c + "…") > room:
            break
        out += c
    return out + "…"


def _t(x: float, y: float, s: str, cls: str = "t", anchor: str = "start", full: str | None = None) -> str:
    tip = f"<title>{escape(full)}</title>" if full and full != s else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}">{tip}'
            f"{escape(s)}</text>")


def _svg(chart_id: str, height: float, title: str, body: Sequence[str]) -> str:
    return (
        f'<svg viewBox="0 0 {WIDTH} {height:.0f}" '
        f'role="img" aria-labelledby="{chart_id}-title" class="chart-svg" '
        f'font-size="{FONT}"><title id="{chart_id}-title">{escape(title)}</title>'
        + "".join(body) + "</svg>"
    )


def _money(v: float, like: Money) -> Money:
    """An axis position back as money for its label (rounded to whole units: presentation only)."""
    return Money(round(v), like.currency)


def _f(x: Any) -> float:
    """Chart geometry only: a number as a float (money never leaves the data as a float)."""
    if isinstance(x, Money):
        return float(x.amount)
    return float(x)


# ------------------------------------------------------------------------------------------------
# Attainment bars against pace
# ------------------------------------------------------------------------------------------------


def attainment(lines: Sequence[Any], elapsed: Decimal | None, lang: str, company: str = "") -> str:
    """One bar per goal (attainment), a dashed line at the pace (share of the period gone) and a
    solid line at the target (100 %)."""
    label_w, x0, x1 = 100.0, 106.0, 318.0
    row, top = 24.0, 40.0
    values = [_f(g.attainment) for g in lines if g.attainment is not None]
    top_value = max([1.2, *values])
    top_value = min(top_value, 2.0)

    def x(v: float) -> float:
        return x0 + (x1 - x0) * min(max(v, 0.0), top_value) / top_value

    h = top + row * len(lines) + 8
    body: list[str] = []
    xt = x(1.0)
    body.append(f'<line x1="{xt:.1f}" y1="{top - 8:.1f}" x2="{xt:.1f}" y2="{h - 4:.1f}" class="l-target"/>')
    body.append(_t(xt, top - 12, label("chart.target", lang), "t small", "middle"))
    if elapsed is not None:
        xp = x(_f(elapsed))
        body.append(f'<line x1="{xp:.1f}" y1="{top - 8:.1f}" x2="{xp:.1f}" y2="{h - 4:.1f}" class="l-pace"/>')
        near = abs(xp - xt) < 70
        body.append(_t(xp, top - 26 if near else top - 12,
                       f"{label('chart.pace', lang)} {_fmt.percent(elapsed, 0)}", "t small pace", "middle"))
    for i, g in enumerate(lines):
        y = top + i * row
        name = company if g.scope == "company" and company else g.name
        body.append(_t(label_w, y + 15, fit(name, label_w - 4), "t", "end", full=name))
        body.append(f'<rect x="{x0:.1f}" y="{y + 4:.1f}" width="{x1 - x0:.1f}" height="14" class="track"/>')
        if g.attainment is None:
            body.append(_t(x0 + 4, y + 15, "—", "t muted"))
            continue
        v = _f(g.attainment)
        body.append(f'<rect x="{x0:.1f}" y="{y + 4:.1f}" width="{x(v) - x0:.1f}" height="14" '
                    f'class="c-{escape(g.status)}"><title>{escape(name)}: {_fmt.percent(g.attainment)}</title></rect>')
        text = _fmt.percent(g.attainment, 0)
        end = x(v)
        if end + 4 + text_width(text) * 0.9 > WIDTH - 1:
            body.append(_t(end - 4, y + 15, text, "t small on-bar", "end"))
        else:
            body.append(_t(end + 4, y + 15, text, "t small"))
    return _svg("chart-attainment", h, label("chart.attainment", lang), body)


# ------------------------------------------------------------------------------------------------
# Pipeline waterfall
# ------------------------------------------------------------------------------------------------


def waterfall(wf: Any, lang: str) -> str:
    """start → new → reopened → pulled in → won → lost → slipped → amount changes → end, as
    floating horizontal bars."""
    label_w, x0, x1 = 84.0, 90.0, 296.0
    row, top = 26.0, 8.0
    steps: list[tuple[str, Money]] = wf.steps()
    running = [_f(wf.start)]
    for _k, m in steps:
        running.append(running[-1] + _f(m))
    low = min(running)
    hi = max(running + [1.0])
    # The steps are small beside the totals: the axis starts below the lowest running total
    # (never below zero), and the totals' bars say so with a break mark.
    lo = 0.0 if low <= 0 else max(0.0, low - 0.6 * (hi - low))
    if low < 0:
        lo = low

    def x(v: float) -> float:
        return x0 + (x1 - x0) * (v - lo) / (hi - lo)

    rows: list[tuple[str, float, float, str, str]] = [
        ("start", lo, _f(wf.start), "c-total", _fmt.short_money(wf.start, lang))]
    cum = _f(wf.start)
    for key, m in steps:
        nxt = cum + _f(m)
        sign = "+" if m.amount > 0 else ("−" if m.amount < 0 else "±")
        cls = "c-pos" if m.amount > 0 else "c-neg" if m.amount < 0 else "c-zero"
        rows.append((key, min(cum, nxt), max(cum, nxt), cls,
                     sign + _fmt.short_money(abs(m), lang) if m.amount else "0"))
        cum = nxt
    rows.append(("end", lo, _f(wf.end), "c-total", _fmt.short_money(wf.end, lang)))
    h = top + row * len(rows) + 6 + (14 if lo > 0 else 0)
    body: list[str] = []
    prev_edge: float | None = None
    for i, (key, a, b, cls, text) in enumerate(rows):
        y = top + i * row
        name = label(f"step.{key}", lang)
        body.append(_t(label_w, y + 16, fit(name, label_w - 4), "t", "end", full=name))
        xa, xb = x(a), x(b)
        width = max(xb - xa, 1.0)
        body.append(f'<rect x="{xa:.1f}" y="{y + 5:.1f}" width="{width:.1f}" height="16" class="{cls}">'
                    f"<title>{escape(name)}: {escape(text)}</title></rect>")
        if prev_edge is not None:
            body.append(f'<line x1="{prev_edge:.1f}" y1="{y - 5:.1f}" x2="{prev_edge:.1f}" y2="{y + 5:.1f}" class="l-link"/>')
        edge = b if key == "start" or cls != "c-neg" else a
        if key in ("start", "end"):
            edge = b
        prev_edge = x(edge)
        body.append(_t(min(xb + 4, WIDTH - 2), y + 17, text, "t small"))
        if key in ("start", "end") and lo > 0:
            body.append(f'<path d="M{x0 + 5:.1f},{y + 3:.1f} l-4,8 l4,8 M{x0 + 10:.1f},{y + 3:.1f} l-4,8 l4,8" '
                        'class="l-break"/>')
    if lo > 0:
        body.append(_t(x0, h - 6, f"{label('chart.axis_from', lang)} {_fmt.short_money(_money(lo, wf.start), lang)}",
                       "t small muted"))
    return _svg("chart-waterfall", h, label("chart.waterfall", lang), body)


# ------------------------------------------------------------------------------------------------
# Funnel
# ------------------------------------------------------------------------------------------------


def funnel(sec: Any, lang: str) -> str:
    """Bars as wide as the deals that reached each step, centred under the step's name; the
    drop-off against history at the right; the bottleneck in red."""
    x0, x1 = 4.0, 250.0
    row, top = 42.0, 20.0
    steps = sec.steps
    most = max([s.reached for s in steps] + [1])
    mid = (x0 + x1) / 2
    bn = sec.bottleneck.key if sec.bottleneck is not None else None
    body = [_t(WIDTH - 2, 12, f"{label('col.drop_off', lang)} / {label('col.history', lang)}",
               "t small muted", "end")]
    for i, s in enumerate(steps):
        y = top + i * row
        name = s.stage.display(lang)
        is_bn = s.stage.key == bn
        shown = name + (f" · {label('chart.bottleneck', lang)}" if is_bn else "")
        body.append(_t(x0, y + 12, fit(shown, x1 - x0), "t b neg" if is_bn else "t", full=name))
        w = max((x1 - x0) * s.reached / most, 2.0)
        body.append(f'<rect x="{mid - w / 2:.1f}" y="{y + 17:.1f}" width="{w:.1f}" height="18" '
                    f'class="{"c-bottleneck" if is_bn else "c-funnel"}"><title>{escape(name)}: '
                    f"{s.reached}</title></rect>")
        count = _fmt.number(s.reached)
        if w > text_width(count) + 8:
            body.append(_t(mid, y + 30, count, "t small on-bar", "middle"))
        else:
            body.append(_t(mid + w / 2 + 4, y + 30, count, "t small"))
        if s.drop_off is not None:
            hist = _fmt.percent(s.baseline_drop_off) if s.baseline_drop_off is not None else "—"
            body.append(_t(WIDTH - 2, y + 30, f"{_fmt.percent(s.drop_off)} / {hist}",
                           "t small b neg" if is_bn else "t small", "end"))
    h = top + row * len(steps) + 4
    return _svg("chart-funnel", h, label("chart.funnel", lang), body)


# ------------------------------------------------------------------------------------------------
# Forecast fan
# ------------------------------------------------------------------------------------------------


def fan(fc: Any, asof_day: date, lang: str) -> str:
    """Revenue won so far (a line over the weeks) and, from today to the period's end, the fan from
    P10 to P90 with the P50 line; the target as a dashed line."""
    px0, px1, py0, py1 = 58.0, 276.0, 16.0, 212.0
    per = fc.period
    start: date = per.start
    end: date = per.end
    span = max((end - start).days, 1)
    today = min(max(asof_day, start), end)
    high = max(v.amount for v in (fc.p90, fc.target, fc.closed, Money.zero(fc.currency)) if v is not None)
    top_d = high * Decimal("1.08") if high > 0 else Decimal(1)
    top = float(top_d)

    def x(d: date) -> float:
        return px0 + (px1 - px0) * (d - start).days / span

    def y(v: float) -> float:
        return py1 - (py1 - py0) * v / top

    body: list[str] = []
    for k in range(5):
        tick = top_d * k / 4
        yy = y(float(tick))
        body.append(f'<line x1="{px0:.1f}" y1="{yy:.1f}" x2="{px1:.1f}" y2="{yy:.1f}" class="l-grid"/>')
        body.append(_t(px0 - 4, yy + 4, _fmt.short_money(Money(tick, fc.currency), lang, 1),
                       "t small muted", "end"))
    d = date(start.year, start.month, 1)
    while d < end:
        if d >= start:
            xx = x(d)
            body.append(f'<line x1="{xx:.1f}" y1="{py1:.1f}" x2="{xx:.1f}" y2="{py1 + 4:.1f}" class="l-axis"/>')
            text = f"{d.month}月" if lang == "zh" else d.strftime("%b")
            body.append(_t(xx + 2, py1 + 16, text, "t small muted"))
        d = (d.replace(day=28) + timedelta(days=4)).replace(day=1)
    body.append(f'<line x1="{px0:.1f}" y1="{py1:.1f}" x2="{px1:.1f}" y2="{py1:.1f}" class="l-axis"/>')
    closed = _f(fc.closed)
    xa, ya = x(today), y(closed)
    if fc.p10 is not None and fc.p90 is not None and today < end:
        body.append(f'<polygon points="{xa:.1f},{ya:.1f} {px1:.1f},{y(_f(fc.p90)):.1f} '
                    f'{px1:.1f},{y(_f(fc.p10)):.1f}" class="c-fan"/>')
    if fc.p50 is not None and today < end:
        body.append(f'<line x1="{xa:.1f}" y1="{ya:.1f}" x2="{px1:.1f}" y2="{y(_f(fc.p50)):.1f}" class="l-p50"/>')
    pts = [(x(start), y(0.0))] + [(x(w.end), y(_f(w.won))) for w in fc.weeks if w.end <= today]
    pts.append((xa, ya))
    body.append('<polyline points="' + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '" class="l-won"/>')
    body.append(f'<circle cx="{xa:.1f}" cy="{ya:.1f}" r="3.5" class="dot-won"/>')
    body.append(_t(max(xa - 4, px0 + 2), ya - 8, f"{label('chart.won', lang)} {_fmt.short_money(fc.closed, lang)}",
                   "t small b", "end" if xa > px0 + 120 else "start"))
    labels: list[tuple[float, str, str]] = []
    if today < end:
        for key in ("p90", "p50", "p10"):
            v = getattr(fc, key)
            if v is not None:
                labels.append((y(_f(v)), f"{key.upper()} {_fmt.short_money(v, lang)}", "t small"))
    if fc.target is not None:
        yt = y(_f(fc.target))
        body.append(f'<line x1="{px0:.1f}" y1="{yt:.1f}" x2="{px1:.1f}" y2="{yt:.1f}" class="l-target-d"/>')
        labels.append((yt, f"{label('chart.target', lang)} {_fmt.short_money(fc.target, lang)}", "t small neg"))
    labels.sort()
    placed: list[float] = []
    for yy, text, cls in labels:
        yy = max(yy, placed[-1] + 14) if placed else yy
        placed.append(yy)
        body.append(_t(px1 + 4, yy + 4, text, cls))
    h = py1 + 24
    return _svg("chart-forecast", h, label("chart.forecast", lang), body)

