"""Churn risk signals for customers: satisfaction drops, complaints, shrinking purchases, inactivity.

Inputs the store does not hold come as plain values (:class:`ChurnInputs`): survey answers
(:class:`~salesprocess.kpi.SurveyResponse`, the same values the KPIs read), :class:`Complaint`
records, and recurring revenue per account and period (:class:`~salesprocess.kpi.AccountRevenue`).
Nothing after ``asof`` is read.

==========================  ==================================================================
``csat_drop``               mean CSAT of the ``window_days`` before ``asof`` below the mean of the
                            window before that, by ``threshold`` points or more (1–5 scale)
``nps_drop``                the same for the NPS question (0–10 scale)
``complaints``              complaints received in the last ``window_days``
``shrinking_purchases``     ``1 − revenue of the latest period ÷ revenue of the period before``
                            (periods over by ``asof``)
``inactivity``              days since the last done activity with the customer (its own, or on
                            one of its deals); from the account's creation when there is none
``credit``                  the credit score ÷ 100 (:mod:`salesprocess.risk.credit`)
``open_deal_risk``          the highest risk score of the customer's open deals ÷ 100
==========================  ==================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

import attrs

from salesprocess.kpi import AccountRevenue, SurveyKind, SurveyResponse
from salesprocess.model import Account
from salesprocess.periods import require_aware

from .config import SignalConfig
from .signals import RiskFinding

__all__ = ["BUILTIN_CUSTOMER_SIGNALS", "ChurnInputs", "Complaint", "churn_findings"]

BUILTIN_CUSTOMER_SIGNALS: dict[str, str] = {
    "credit": "credit risk score of the customer",
    "csat_drop": "CSAT dropped between the last two windows",
    "nps_drop": "NPS answers dropped between the last two windows",
    "complaints": "complaints received recently",
    "shrinking_purchases": "recurring revenue shrank from one period to the next",
    "inactivity": "no done activity with the customer for a long time",
    "open_deal_risk": "the riskiest open deal of the customer",
}


def _aware(_i: object, a: attrs.Attribute[Any], v: datetime | None) -> None:
    if v is not None:
        require_aware(v, a.name)


@attrs.frozen
class Complaint:
    """A customer complaint (``severity`` is free text: low, medium, high...)."""

    id: str
    account_id: str
    at: datetime = attrs.field(validator=_aware)
    severity: str = "medium"
    resolved_at: datetime | None = attrs.field(default=None, validator=_aware)
    subject: str = ""


def _tuple(v: Iterable[Any] | None) -> tuple[Any, ...]:
    return tuple(v or ())


@attrs.frozen
class ChurnInputs:
    surveys: tuple[SurveyResponse, ...] = attrs.field(default=(), converter=_tuple)
    complaints: tuple[Complaint, ...] = attrs.field(default=(), converter=_tuple)
    revenue: tuple[AccountRevenue, ...] = attrs.field(default=(), converter=_tuple)

    def accounts(self) -> set[str]:
        out = {c.account_id for c in self.complaints} | {r.account_id for r in self.revenue}
        out |= {s.account_id for s in self.surveys if s.account_id}
        return out


def _mean(xs: Sequence[int]) -> Decimal:
    return Decimal(sum(xs)) / Decimal(len(xs))


def _drop(
    name: str, kind: SurveyKind, label: str, account: Account, inputs: ChurnInputs,
    cfg: SignalConfig, asof: datetime,
) -> tuple[float, RiskFinding | None] | None:
    s = cfg.base
    if not s.enabled:
        return None
    w = timedelta(days=int(s.option("window_days", 90)))
    recent = [r.score for r in inputs.surveys
              if r.account_id == account.id and r.kind is kind and asof - w < r.at <= asof]
    prev = [r.score for r in inputs.surveys
            if r.account_id == account.id and r.kind is kind and asof - 2 * w < r.at <= asof - w]
    if not recent or not prev:
        return None
    a, b = _mean(prev), _mean(recent)
    drop = float(a - b)
    sev = s.severity(drop)
    if sev <= 0:
        return sev, None
    return sev, RiskFinding(
        name, Decimal(f"{sev:.4f}"),
        f"{label} fell from {a:.2f} to {b:.2f} (mean of the last {w.days} days against the "
        f"{w.days} days before; {len(recent)} and {len(prev)} answers).",
        (("before", a.quantize(Decimal("0.01"))), ("after", b.quantize(Decimal("0.01")))),
    )


def churn_findings(
    account: Account,
    inputs: ChurnInputs,
    *,
    asof: datetime,
    tz: tzinfo,
    config: dict[str, SignalConfig],
    last_activity: datetime | None,
) -> list[tuple[str, float, RiskFinding | None]]:
    """Each enabled churn signal that could be evaluated: (name, severity, finding or None)."""
    out: list[tuple[str, float, RiskFinding | None]] = []
    for name, kind, label in (("csat_drop", SurveyKind.CSAT, "CSAT"),
                              ("nps_drop", SurveyKind.NPS, "NPS")):
        cfg = config.get(name)
        if cfg is None:
            continue
        r = _drop(name, kind, label, account, inputs, cfg, asof)
        if r is not None:
            out.append((name, r[0], r[1]))
    cfg = config.get("complaints")
    if cfg is not None and cfg.base.enabled:
        s = cfg.base
        w = timedelta(days=int(s.option("window_days", 90)))
        recent = [c for c in inputs.complaints if c.account_id == account.id and asof - w < c.at <= asof]
        sev = s.severity(len(recent))
        open_ = sum(1 for c in recent if c.resolved_at is None or c.resolved_at > asof)
        f = None
        if sev > 0:
            f = RiskFinding("complaints", Decimal(f"{sev:.4f}"),
                            f"{len(recent)} complaint(s) in the last {w.days} days "
                            f"({open_} unresolved).", (("complaints", len(recent)),))
        out.append(("complaints", sev, f))
    cfg = config.get("shrinking_purchases")
    if cfg is not None and cfg.base.enabled:
        today = asof.astimezone(tz).date()
        rev = sorted((e for e in inputs.revenue if e.account_id == account.id and e.period.end <= today),
                     key=lambda e: e.period.start)
        per: dict[Any, Decimal] = {}
        cur = None
        for e in rev:
            per[e.period] = per.get(e.period, Decimal(0)) + e.amount.amount
            cur = e.amount.currency
        if len(per) >= 2:
            periods = sorted(per, key=lambda p: p.start)
            last, before = periods[-1], periods[-2]
            if per[before] > 0:
                ratio = 1 - per[last] / per[before]
                sev = cfg.base.severity(float(ratio))
                f = None
                if sev > 0:
                    f = RiskFinding(
                        "shrinking_purchases", Decimal(f"{sev:.4f}"),
                        f"Revenue fell {float(ratio) * 100:.0f}% from {per[before]:,} {cur} in "
                        f"{before.label or before} to {per[last]:,} {cur} in {last.label or last}.",
                        (("shrink", ratio.quantize(Decimal("0.0001"))),))
                out.append(("shrinking_purchases", sev, f))
    cfg = config.get("inactivity")
    if cfg is not None and cfg.base.enabled:
        since = last_activity or account.created_at
        if since is not None:
            days = (asof.astimezone(tz).date() - since.astimezone(tz).date()).days
            sev = cfg.base.severity(days)
            f = None
            if sev > 0:
                what = ("the last done activity" if last_activity else "the account was created, "
                        "with no done activity since")
                f = RiskFinding("inactivity", Decimal(f"{sev:.4f}"),
                                f"{days} days since {what}.", (("days", days),))
            out.append(("inactivity", sev, f))
    return out
