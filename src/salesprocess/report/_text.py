"""Sentences shared by the HTML and Markdown renderers: section notes, suggested actions, risk
reasons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from ..money import Money
from ..review import Action, RiskLine, Section, WeeklyReview
from . import _fmt
from ._i18n import label

T = TypeVar("T")


def cap(items: Sequence[T], limit: int) -> tuple[Sequence[T], int]:
    """The first ``limit`` items and how many are left out (``limit`` 0 or less: all)."""
    if limit <= 0 or len(items) <= limit:
        return items, 0
    return items[:limit], len(items) - limit


def note_text(review: WeeklyReview, sec: Section, lang: str) -> str:
    """Why a section shows nothing (its ``note`` code in words)."""
    code = sec.note or "error"
    window = review.funnel.window
    values = {
        "period": review.period.label,
        "window": f"{window.start.isoformat()} – {window.last_day.isoformat()}" if window else "",
        "detail": sec.detail,
    }
    return label(f"note.{code}", lang, **values)


def _money(v: Any, lang: str) -> str:
    if isinstance(v, Money):
        return f"{_fmt.short_money(v, lang)} {v.currency}"
    return _fmt.number(v)


def _join(items: Sequence[str], lang: str) -> str:
    return ("、" if lang == "zh" else ", ").join(items)


def action_text(a: Action, lang: str) -> str:
    """A suggested action as one sentence in ``lang``."""
    v = a.values
    k = a.kind.value
    if k == "forecast_gap":
        return label("action.forecast_gap", lang, subject=a.subject, p50=_money(v["p50"], lang),
                     target=_money(v["target"], lang), gap=_money(v["gap"], lang),
                     p_target=_fmt.percent(v.get("p_target")))
    if k == "behind_pace":
        gap = v["gap"]
        return label("action.behind_pace", lang, subject=a.subject,
                     status=_fmt.tr("status", v["status"], lang), attainment=_fmt.percent(v["attainment"]),
                     elapsed=_fmt.percent(v["elapsed"]),
                     gap=_money(gap, lang) if isinstance(gap, Money) else _fmt.metric_value(v["metric"], gap))
    if k == "critical_deal":
        return label("action.critical_deal", lang, subject=a.subject, id=a.subject_id or "",
                     owner=a.owner or "—", score=_fmt.number(v["score"]),
                     signals=_join([_fmt.tr("signal", s, lang) for s in v["signals"]], lang))
    if k == "no_next_step":
        top = _join([f"{name} ({deal_id})" for deal_id, name in v["top"]], lang)
        return label("action.no_next_step", lang, owner=a.owner or "—", deals=_fmt.number(v["deals"]),
                     amount=_money(v["amount"], lang), top=top)
    if k == "overdue_todos":
        return label("action.overdue_todos", lang, owner=a.owner or "—", todos=_fmt.number(v["todos"]))
    if k == "bottleneck":
        stage = v.get("stage")
        return label("action.bottleneck", lang, subject=_fmt.stage(stage, lang) if stage else a.subject,
                     drop_off=_fmt.percent(v["drop_off"]), baseline=_fmt.percent(v["baseline"]))
    if k == "complaint":
        return label("action.complaint", lang, id=a.subject_id or "", account=v["account"] or "—",
                     severity=_fmt.tr("severity", v["severity"], lang))
    if k == "low_score":
        return label("action.low_score", lang, account=a.subject or "—",
                     kind=_fmt.tr("survey", v["kind"], lang), score=_fmt.number(v["score"]))
    return f"{k}: {a.subject}"  # pragma: no cover - every kind is handled above


def risk_reasons(d: RiskLine, lang: str) -> list[tuple[str, str]]:
    """(signal in ``lang``, the risk library's explanation) for each reason, worst first."""
    return [(_fmt.tr("signal", sig, lang), text) for sig, _sev, text in d.reasons]


def bottleneck_text(f: Any, lang: str) -> str:
    if f.bottleneck is None:
        return label("funnel.no_bottleneck", lang)
    step = next(s for s in f.steps if s.stage.key == f.bottleneck.key)
    name = _fmt.stage(f.bottleneck, lang)
    if step.baseline_drop_off is not None and f.bottleneck_excess is not None and f.window is not None:
        return label("funnel.bottleneck", lang, stage=name, value=_fmt.percent(step.drop_off),
                     base=_fmt.percent(step.baseline_drop_off), diff=_fmt.points(f.bottleneck_excess))
    return label("funnel.bottleneck_plain", lang, stage=name, value=_fmt.percent(step.drop_off))
