"""Forecast submissions, manager adjustments, and the accuracy ledger.

- A :class:`ForecastSubmission` is what a rep or manager committed for a scope and period at one
  instant (typically weekly); :func:`save_submission` keeps it as a store document (kind
  ``forecast_submission``).
- A :class:`ForecastAdjustment` records a manager changing a roll-up value: who, when, from what,
  to what and why (kind ``forecast_adjustment``). Forecasts show adjusted values beside the raw
  roll-up; nothing is overwritten.
- :func:`accuracy_ledger` compares submissions (and saved model forecasts, kind
  ``forecast_snapshot``) with what actually closed, and names submitters whose forecasts are
  consistently low (**sandbagging**) or high (**happy ears**).

Definitions used by the ledger, per entry (one forecast of one scope and period):

- ``actual`` — revenue won in the period by the scope, as known at the ledger's ``asof``;
- ``error = forecast − actual`` (positive: too high);
- ``ape = |error| / actual`` (undefined when nothing was won);
- per submitter: ``mape`` = mean of ``ape``, ``bias`` = mean of ``error / actual`` over entries with
  an actual, ``over_share`` = share of entries above the actual.

A submitter is a *sandbagger* when they have at least ``min_periods`` entries with an actual,
``bias ≤ −threshold`` and at least ``consistency`` of those entries below the actual; *happy
ears* mirrors it (``bias ≥ threshold``, ``consistency`` of entries above). Ratios are rounded
half-even to 4 decimal places.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

import attrs

from salesprocess.codec import instant, iso
from salesprocess.errors import DomainError
from salesprocess.kpi import Dataset, View
from salesprocess.model import DealStatus
from salesprocess.money import Money, Rate, to_decimal
from salesprocess.periods import Period, require_aware

__all__ = [
    "ADJUSTMENT_KIND",
    "SNAPSHOT_KIND",
    "SUBMISSION_KIND",
    "AccuracyEntry",
    "AccuracyLedger",
    "ForecastAdjustment",
    "ForecastSnapshot",
    "ForecastSubmission",
    "Scope",
    "SubmitterAccuracy",
    "Verdict",
    "accuracy_ledger",
    "load_adjustments",
    "load_snapshots",
    "load_submissions",
    "save_adjustment",
    "save_snapshot",
    "save_submission",
    "scope_actual",
]

SUBMISSION_KIND = "forecast_submission"
ADJUSTMENT_KIND = "forecast_adjustment"
SNAPSHOT_KIND = "forecast_snapshot"

LEVELS = ("company", "team", "rep")


def _aware(_i: object, a: attrs.Attribute[Any], v: datetime) -> None:
    require_aware(v, a.name)


def _level(v: str) -> str:
    if v not in LEVELS:
        raise DomainError(f"scope level must be one of {', '.join(LEVELS)}, got {v!r}")
    return v


@attrs.frozen
class Scope:
    """Whose forecast: the ``company`` (``id`` None), a ``team`` (with its sub-teams) or a ``rep``."""

    level: str = attrs.field(converter=_level)
    id: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.level == "company") != (self.id is None):
            raise DomainError("a company scope has no id; team and rep scopes need one")

    def __str__(self) -> str:
        return "company" if self.id is None else f"{self.level}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``company``, ``team:ID`` or ``rep:ID``."""
        if text == "company":
            return cls("company")
        level, sep, ident = text.partition(":")
        if not sep or not ident:
            raise DomainError(f"scope must be company, team:ID or rep:ID, got {text!r}")
        return cls(level, ident)


def _period_doc(p: Period) -> dict[str, str]:
    return {"label": p.label or str(p), "start": p.start.isoformat(), "end": p.end.isoformat()}


def _period_of(d: Mapping[str, Any]) -> Period:
    label = d.get("label")
    try:
        if label:
            p = Period.parse(label)
            if p.start.isoformat() == d.get("start") and p.end.isoformat() == d.get("end"):
                return p
    except DomainError:
        pass
    return Period(date.fromisoformat(d["start"]), date.fromisoformat(d["end"]), label=label or "")


def _money_doc(m: Money | None) -> dict[str, str] | None:
    return None if m is None else {"amount": str(m.amount), "currency": m.currency}


def _money_of(d: Mapping[str, Any] | None) -> Money | None:
    return None if d is None else Money(to_decimal(d["amount"]), d["currency"])


def _same_period(a: Period, b: Period) -> bool:
    return (a.start, a.end) == (b.start, b.end)


@attrs.frozen
class ForecastSubmission:
    """What ``submitted_by`` committed for ``scope`` and ``period`` at ``at``."""

    id: str
    submitted_by: str
    scope: Scope
    period: Period
    at: datetime = attrs.field(validator=_aware)
    commit: Money
    best_case: Money | None = None
    note: str = ""

    def __attrs_post_init__(self) -> None:
        if not self.id:
            raise DomainError("a forecast submission needs an id")
        if self.best_case is not None and self.best_case.currency != self.commit.currency:
            raise DomainError(f"submission {self.id}: commit and best case differ in currency")

    def to_doc(self) -> dict[str, Any]:
        return {
            "submitted_by": self.submitted_by, "scope": str(self.scope),
            "period": _period_doc(self.period), "at": iso(self.at),
            "commit": _money_doc(self.commit), "best_case": _money_doc(self.best_case),
            "note": self.note,
        }

    @classmethod
    def from_doc(cls, key: str, d: Mapping[str, Any]) -> ForecastSubmission:
        commit = _money_of(d["commit"])
        assert commit is not None
        return cls(key, d["submitted_by"], Scope.parse(d["scope"]), _period_of(d["period"]),
                   instant(d["at"]), commit, _money_of(d.get("best_case")), d.get("note", ""))


@attrs.frozen
class ForecastAdjustment:
    """A manager's change of one roll-up value: who (``by``), when (``at``), ``from_value`` →
    ``to_value`` and why (``reason``, required). ``measure`` names the forecast value adjusted
    (``forecast_commit``, ``forecast``, ``p50``...)."""

    id: str
    scope: Scope
    period: Period
    measure: str
    by: str
    at: datetime = attrs.field(validator=_aware)
    from_value: Money
    to_value: Money
    reason: str

    def __attrs_post_init__(self) -> None:
        if not self.id:
            raise DomainError("a forecast adjustment needs an id")
        if not self.reason or not self.reason.strip():
            raise DomainError(f"adjustment {self.id}: a reason is required")
        if not self.by:
            raise DomainError(f"adjustment {self.id}: who made it (by) is required")
        if self.from_value.currency != self.to_value.currency:
            raise DomainError(f"adjustment {self.id}: from and to differ in currency")

    def to_doc(self) -> dict[str, Any]:
        return {
            "scope": str(self.scope), "period": _period_doc(self.period), "measure": self.measure,
            "by": self.by, "at": iso(self.at), "from": _money_doc(self.from_value),
            "to": _money_doc(self.to_value), "reason": self.reason,
        }

    @classmethod
    def from_doc(cls, key: str, d: Mapping[str, Any]) -> ForecastAdjustment:
        fv, tv = _money_of(d["from"]), _money_of(d["to"])
        assert fv is not None
        assert tv is not None
        return cls(key, Scope.parse(d["scope"]), _period_of(d["period"]), d["measure"], d["by"],
                   instant(d["at"]), fv, tv, d["reason"])


@attrs.frozen
class ForecastSnapshot:
    """A model forecast kept for the accuracy ledger: ``method``'s headline value for a scope and
    period as computed at ``at``."""

    id: str
    method: str
    scope: Scope
    period: Period
    at: datetime = attrs.field(validator=_aware)
    value: Money

    def to_doc(self) -> dict[str, Any]:
        return {"method": self.method, "scope": str(self.scope), "period": _period_doc(self.period),
                "at": iso(self.at), "value": _money_doc(self.value)}

    @classmethod
    def from_doc(cls, key: str, d: Mapping[str, Any]) -> ForecastSnapshot:
        v = _money_of(d["value"])
        assert v is not None
        return cls(key, d["method"], Scope.parse(d["scope"]), _period_of(d["period"]),
                   instant(d["at"]), v)


def save_submission(store: Any, s: ForecastSubmission) -> None:
    store.put_document(SUBMISSION_KIND, s.id, s.to_doc())


def save_adjustment(store: Any, a: ForecastAdjustment) -> None:
    store.put_document(ADJUSTMENT_KIND, a.id, a.to_doc())


def save_snapshot(store: Any, s: ForecastSnapshot) -> None:
    store.put_document(SNAPSHOT_KIND, s.id, s.to_doc())


def load_submissions(store: Any) -> list[ForecastSubmission]:
    return [ForecastSubmission.from_doc(k, d) for k, d in store.documents(SUBMISSION_KIND)]


def load_adjustments(store: Any) -> list[ForecastAdjustment]:
    return [ForecastAdjustment.from_doc(k, d) for k, d in store.documents(ADJUSTMENT_KIND)]


def load_snapshots(store: Any) -> list[ForecastSnapshot]:
    return [ForecastSnapshot.from_doc(k, d) for k, d in store.documents(SNAPSHOT_KIND)]


# ------------------------------------------------------------------------------------------------
# Actuals and the ledger
# ------------------------------------------------------------------------------------------------


def _team_subtree(view: View, team_id: str) -> set[str]:
    children: dict[str | None, list[str]] = {}
    for t in view.teams.values():
        children.setdefault(t.parent_id, []).append(t.id)
    out = {team_id}
    todo = [team_id]
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def scope_actual(view: View, scope: Scope, period: Period, currency: str, tz: tzinfo = UTC) -> Money:
    """Revenue won in ``period`` by ``scope`` (local close dates in ``tz``), as known in ``view``."""
    teams = _team_subtree(view, scope.id) if scope.level == "team" and scope.id else set()
    total = Decimal(0)
    for d in view.deals:
        if d.status is not DealStatus.WON or d.closed_at is None or d.amount is None:
            continue
        if d.closed_at.astimezone(tz).date() not in period:
            continue
        if scope.level == "rep" and d.owner_id != scope.id:
            continue
        if scope.level == "team":
            rep = view.reps.get(d.owner_id) if d.owner_id else None
            if rep is None or rep.team_id not in teams:
                continue
        if d.amount.currency != currency:
            continue
        total += d.amount.amount
    return Money(total, currency)


class Verdict(enum.StrEnum):
    SANDBAGGING = "sandbagging"
    HAPPY_EARS = "happy_ears"
    ACCURATE = "accurate"
    INSUFFICIENT = "insufficient"
    """fewer than ``min_periods`` entries with an actual"""


@attrs.frozen
class AccuracyEntry:
    """One forecast compared with what closed."""

    submitter: str
    source: str
    """``submission`` or ``model``"""
    scope: Scope
    period: Period
    at: datetime
    forecast: Money
    actual: Money
    error: Money
    ape: Rate | None
    """``|error| / actual``; None when nothing was won"""


@attrs.frozen
class SubmitterAccuracy:
    submitter: str
    entries: int
    with_actual: int
    mape: Rate | None
    bias: Rate | None
    over_share: Rate | None
    verdict: Verdict

    def explain(self) -> str:
        if self.verdict is Verdict.INSUFFICIENT:
            return f"{self.submitter}: only {self.with_actual} forecast(s) with a closed actual"
        assert self.bias is not None
        assert self.over_share is not None
        assert self.mape is not None
        return (f"{self.submitter}: {self.verdict.value}; bias {self.bias} over "
                f"{self.with_actual} period(s), above the actual in {self.over_share} of them, "
                f"MAPE {self.mape}")


@attrs.frozen
class AccuracyLedger:
    entries: tuple[AccuracyEntry, ...]
    submitters: tuple[SubmitterAccuracy, ...]

    def submitter(self, name: str) -> SubmitterAccuracy:
        for s in self.submitters:
            if s.submitter == name:
                return s
        raise KeyError(name)

    @property
    def sandbaggers(self) -> list[str]:
        return [s.submitter for s in self.submitters if s.verdict is Verdict.SANDBAGGING]

    @property
    def happy_ears(self) -> list[str]:
        return [s.submitter for s in self.submitters if s.verdict is Verdict.HAPPY_EARS]


_THRESHOLD = Rate("0.1")
_CONSISTENCY = Rate("0.75")


def _r4(d: Decimal) -> Rate:
    return Rate(d.quantize(Decimal("0.0001")))


def accuracy_ledger(
    data: Dataset | Any,
    *,
    asof: datetime,
    submissions: Iterable[ForecastSubmission] = (),
    snapshots: Iterable[ForecastSnapshot] = (),
    tz: tzinfo = UTC,
    which: str = "last",
    min_periods: int = 3,
    threshold: Rate = _THRESHOLD,
    consistency: Rate = _CONSISTENCY,
) -> AccuracyLedger:
    """Compare forecasts whose period ended by ``asof`` with what closed (see the module docs).

    ``which`` picks, per submitter, scope and period, the ``last`` or ``first`` forecast made before
    the period ended, or ``all`` of them. Model snapshots count as submitter ``model:<method>``.
    """
    require_aware(asof, "asof")
    if which not in ("last", "first", "all"):
        raise DomainError(f"which must be last, first or all, got {which!r}")
    dataset = data if isinstance(data, Dataset) else Dataset.from_store(data)
    view = dataset.view(asof)
    today = asof.astimezone(tz).date()
    items: list[tuple[str, str, Scope, Period, datetime, Money]] = []
    for s in submissions:
        items.append((s.submitted_by, "submission", s.scope, s.period, s.at, s.commit))
    for m in snapshots:
        items.append((f"model:{m.method}", "model", m.scope, m.period, m.at, m.value))
    groups: dict[tuple[str, str, str, date, date], list[tuple[str, str, Scope, Period, datetime, Money]]] = {}
    for it in items:
        _who, _src, scope, period, at, _v = it
        if period.end > today or at.astimezone(tz).date() >= period.end:
            continue  # period not over, or "forecast" made after it ended
        groups.setdefault((it[0], it[1], str(scope), period.start, period.end), []).append(it)
    entries: list[AccuracyEntry] = []
    for key in sorted(groups):
        lst = sorted(groups[key], key=lambda x: x[4])
        chosen = lst if which == "all" else [lst[-1] if which == "last" else lst[0]]
        for who, src, scope, period, at, value in chosen:
            actual = scope_actual(view, scope, period, value.currency, tz)
            err = value - actual
            ape = _r4(abs(err.amount) / actual.amount) if actual.amount > 0 else None
            entries.append(AccuracyEntry(who, src, scope, period, at, value, actual, err, ape))
    per: dict[str, list[AccuracyEntry]] = {}
    for e in entries:
        per.setdefault(e.submitter, []).append(e)
    subs = []
    for who in sorted(per):
        es = per[who]
        with_act = [e for e in es if e.actual.amount > 0]
        if not with_act:
            subs.append(SubmitterAccuracy(who, len(es), 0, None, None, None, Verdict.INSUFFICIENT))
            continue
        n = Decimal(len(with_act))
        mape = _r4(sum((abs(e.error.amount) / e.actual.amount for e in with_act), Decimal(0)) / n)
        bias = _r4(sum((e.error.amount / e.actual.amount for e in with_act), Decimal(0)) / n)
        over = sum(1 for e in with_act if e.error.amount > 0)
        under = sum(1 for e in with_act if e.error.amount < 0)
        over_share = _r4(Decimal(over) / n)
        if len(with_act) < min_periods:
            verdict = Verdict.INSUFFICIENT
        elif bias.value <= -threshold.value and Decimal(under) / n >= consistency.value:
            verdict = Verdict.SANDBAGGING
        elif bias.value >= threshold.value and Decimal(over) / n >= consistency.value:
            verdict = Verdict.HAPPY_EARS
        else:
            verdict = Verdict.ACCURATE
        subs.append(SubmitterAccuracy(who, len(es), len(with_act), mape, bias, over_share, verdict))
    return AccuracyLedger(tuple(entries), tuple(subs))

