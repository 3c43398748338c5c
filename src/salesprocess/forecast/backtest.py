"""Backtesting without leakage: forecast past periods from what was known then, score the methods.

For each period, :func:`backtest` rebuilds the pipeline as of an instant at (or a number of days
after) the period's start — every deal replayed from its events up to that instant, win rates and
time-to-close learnt only from deals closed by then — runs every method, and compares the forecast
with the revenue actually won in the period (as known at ``final_asof``, by default the last event
held). Periods not over by ``final_asof`` are skipped and listed.

Per method: ``mape`` (mean absolute percentage error over periods with revenue), ``bias`` (mean of
``error / actual``; positive = too high), ``mae`` (mean absolute error, money) and, for Monte
Carlo, ``coverage`` — the share of periods whose actual fell within P10–P90.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs

from salesprocess.errors import DomainError
from salesprocess.kpi import Dataset
from salesprocess.money import Money, Rate
from salesprocess.periods import Period, require_aware

from .history import learn_close_timing, learn_win_rates
from .ledger import Scope, scope_actual
from .pipeline import HEADLINE, Method, forecast

__all__ = ["Backtest", "BacktestRow", "MethodScore", "backtest"]


@attrs.frozen
class BacktestRow:
    period: Period
    asof: datetime
    method: Method
    forecast: Money
    actual: Money
    error: Money
    ape: Rate | None
    p10: Money | None = None
    p90: Money | None = None

    @property
    def covered(self) -> bool | None:
        if self.p10 is None or self.p90 is None:
            return None
        return self.p10 <= self.actual <= self.p90

    def as_dict(self) -> dict[str, Any]:
        return {"period": self.period.label or str(self.period), "asof": self.asof.isoformat(),
                "method": self.method.value, "forecast": self.forecast, "actual": self.actual,
                "error": self.error, "ape": self.ape, "p10": self.p10, "p90": self.p90,
                "covered": self.covered}


@attrs.frozen
class MethodScore:
    method: Method
    periods: int
    mape: Rate | None
    bias: Rate | None
    mae: Money
    coverage: Rate | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method.value, "periods": self.periods, "mape": self.mape,
                "bias": self.bias, "mae": self.mae, "coverage": self.coverage}


@attrs.frozen
class Backtest:
    rows: tuple[BacktestRow, ...]
    scores: tuple[MethodScore, ...]
    skipped: tuple[Period, ...]
    currency: str

    def score(self, method: Method | str) -> MethodScore:
        m = Method(method)
        for s in self.scores:
            if s.method is m:
                return s
        raise KeyError(method)

    def to_json_obj(self) -> dict[str, Any]:
        return {"currency": self.currency, "rows": [r.as_dict() for r in self.rows],
                "scores": [s.as_dict() for s in self.scores],
                "skipped": [p.label or str(p) for p in self.skipped]}


def _r4(d: Decimal) -> Rate:
    return Rate(d.quantize(Decimal("0.0001")))


def backtest(
    source: Dataset | Any,
    periods: Sequence[Period | str],
    *,
    offset_days: int = 0,
    methods: Sequence[Method | str] = tuple(Method),
    tz: tzinfo = UTC,
    currency: str | None = None,
    final_asof: datetime | None = None,
    segment: str | None = None,
    min_sample: int = 20,
    trials: int = 2_000,
    seed: int = 0,
    engine: str = "auto",
) -> Backtest:
    """Score every method on past ``periods`` (see the module documentation)."""
    data = source if isinstance(source, Dataset) else Dataset.from_store(source)
    if final_asof is None:
        if not data.deals:
            raise DomainError("no deals to backtest")
        final_asof = max(d.updated_at for d in data.deals)
    require_aware(final_asof, "final_asof")
    meths = [Method(m) for m in methods]
    final = data.view(final_asof)
    rows: list[BacktestRow] = []
    skipped: list[Period] = []
    cur = currency
    for p in periods:
        period = Period.parse(p) if isinstance(p, str) else p
        asof = datetime.combine(period.start + timedelta(days=offset_days), time(0), tz)
        if period.end_instant(tz) > final_asof or asof > final_asof:
            skipped.append(period)
            continue
        view = data.view(asof)
        wr = learn_win_rates(view, segment=segment, min_sample=min_sample, tz=tz)
        ct = learn_close_timing(view, min_sample=min_sample, tz=tz)
        for m in meths:
            f = forecast(data, period, asof=asof, method=m, tz=tz, currency=cur, levels=("company",),
                         segment=segment, min_sample=min_sample, trials=trials, seed=seed,
                         engine=engine, adjustments=(), win_rates=wr, timing=ct)
            cur = f.currency
            value = f.value(HEADLINE[m])
            actual = scope_actual(final, Scope("company"), period, cur, tz)
            err = value - actual
            ape = _r4(abs(err.amount) / actual.amount) if actual.amount > 0 else None
            sim = f.company.simulation
            rows.append(BacktestRow(period, asof, m, value, actual, err, ape,
                                    sim.p10 if sim else None, sim.p90 if sim else None))
    if cur is None:
        raise DomainError("no period could be backtested (none is over by final_asof)")
    scores = []
    for m in meths:
        rs = [r for r in rows if r.method is m]
        with_act = [r for r in rs if r.actual.amount > 0]
        n = Decimal(len(with_act))
        mape = _r4(sum((r.ape.value for r in with_act if r.ape), Decimal(0)) / n) if with_act else None
        bias = (_r4(sum((r.error.amount / r.actual.amount for r in with_act), Decimal(0)) / n)
                if with_act else None)
        mae = (Money(sum((abs(r.error.amount) for r in rs), Decimal(0)) / Decimal(len(rs)), cur)
               .round(ROUND_HALF_EVEN) if rs else Money.zero(cur))
        cov = None
        if m is Method.MONTECARLO and rs:
            cov = _r4(Decimal(sum(1 for r in rs if r.covered)) / Decimal(len(rs)))
        scores.append(MethodScore(m, len(rs), mape, bias, mae, cov))
    return Backtest(tuple(rows), tuple(scores), tuple(skipped), cur)
