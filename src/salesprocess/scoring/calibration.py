"""Calibration report of the win model on a time-split holdout, against simpler baselines.

Closed deals (by ``asof``) are ordered by their close instant; the first ``train_share`` of them
train the model *as known at the split instant* (the close instant of the last training deal), and
the situations (stage entries, see :mod:`salesprocess.scoring.bayes`) of the later deals are the
holdout. Three predictors are scored on the same holdout:

- ``model`` — the calibrated naive Bayes win model;
- ``stage_default`` — the probability the process gives the stage;
- ``historical`` — the stage win rate learnt from deals closed by the split (stage default when
  fewer than ``min_sample`` deals).

Metrics: the **Brier score** (mean squared error of the probability, lower is better), the
**log loss** (probabilities clipped to [0.0001, 0.9999]), and a **reliability table** by decile of
predicted probability (ten bins ``[0, 0.1)``, … ``[0.9, 1]``: samples, mean predicted, observed win
rate). Numbers are rounded half-even to 4 decimal places.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

import attrs

from salesprocess.errors import DomainError
from salesprocess.kpi import Dataset
from salesprocess.model import DealStatus
from salesprocess.money import Rate
from salesprocess.periods import require_aware
from salesprocess.risk.facts import FactsBuilder

from .bayes import Sample, snapshots, train
from .features import DEFAULT_FEATURES

__all__ = ["CalibrationReport", "PredictorMetrics", "ReliabilityBin", "calibration_report"]

_Q = Decimal("0.0001")


def _d(x: float) -> Decimal:
    return Decimal(repr(x)).quantize(_Q)


@attrs.frozen
class ReliabilityBin:
    lo: Decimal
    hi: Decimal
    samples: int
    mean_predicted: Rate | None
    observed: Rate | None

    def as_dict(self) -> dict[str, Any]:
        return {"lo": self.lo, "hi": self.hi, "samples": self.samples,
                "mean_predicted": self.mean_predicted, "observed": self.observed}


@attrs.frozen
class PredictorMetrics:
    name: str
    samples: int
    brier: Decimal
    log_loss: Decimal
    bins: tuple[ReliabilityBin, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "samples": self.samples, "brier": self.brier,
                "log_loss": self.log_loss, "bins": [b.as_dict() for b in self.bins]}


@attrs.frozen
class CalibrationReport:
    split_at: datetime
    train_deals: int
    test_deals: int
    predictors: tuple[PredictorMetrics, ...]

    def predictor(self, name: str) -> PredictorMetrics:
        for p in self.predictors:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_json_obj(self) -> dict[str, Any]:
        return {"split_at": self.split_at.isoformat(), "train_deals": self.train_deals,
                "test_deals": self.test_deals,
                "predictors": [p.as_dict() for p in self.predictors]}


def metrics(name: str, probs: Sequence[float], outcomes: Sequence[bool]) -> PredictorMetrics:
    n = len(probs)
    if n == 0:
        raise DomainError("no holdout samples to measure")
    brier = sum((p - (1.0 if y else 0.0)) ** 2 for p, y in zip(probs, outcomes, strict=True)) / n
    ll = 0.0
    for p, y in zip(probs, outcomes, strict=True):
        q = min(max(p, 1e-4), 1 - 1e-4)
        ll -= math.log(q) if y else math.log(1 - q)
    bins = []
    for i in range(10):
        lo, hi = i / 10, (i + 1) / 10
        sel = [(p, y) for p, y in zip(probs, outcomes, strict=True)
               if lo <= p < hi or (i == 9 and p == 1.0)]
        mp = Rate(_d(sum(p for p, _ in sel) / len(sel))) if sel else None
        ob = Rate(_d(sum(1 for _, y in sel if y) / len(sel))) if sel else None
        bins.append(ReliabilityBin(Decimal(i) / 10, Decimal(i + 1) / 10, len(sel), mp, ob))
    return PredictorMetrics(name, n, _d(brier), _d(ll / n), tuple(bins))


def calibration_report(
    data: Dataset | Any,
    *,
    asof: datetime,
    train_share: float = 0.75,
    features: Sequence[str] = DEFAULT_FEATURES,
    alpha: float = 1.0,
    min_sample: int = 20,
    tz: tzinfo = UTC,
) -> CalibrationReport:
    """Score the win model and the baselines on a time-split holdout (see the module docs)."""
    require_aware(asof, "asof")
    if not 0 < train_share < 1:
        raise DomainError(f"train_share must be within (0, 1), got {train_share}")
    dataset = data if isinstance(data, Dataset) else Dataset.from_store(data)
    view = dataset.view(asof)
    closed = sorted((d for d in view.deals if d.status is not DealStatus.OPEN and d.closed_at),
                    key=lambda d: (d.closed_at, d.id))
    k = int(len(closed) * train_share)
    if k < 1 or k >= len(closed):
        raise DomainError(f"{len(closed)} closed deal(s) cannot be split for a holdout")
    split_at = closed[k - 1].closed_at
    assert split_at is not None
    test = [d for d in closed[k:] if d.closed_at is not None and d.closed_at > split_at]
    if not test:
        raise DomainError("no deal closed after the split instant")
    train_view = dataset.view(split_at)
    builder = FactsBuilder(view, asof, tz=tz, stay_stats=False)
    model = train(train_view, asof=split_at, features=features, alpha=alpha, tz=tz)
    test_samples: list[Sample] = snapshots(view, builder, test)
    if not test_samples:
        raise DomainError("the holdout deals give no samples")
    from salesprocess.forecast.history import learn_win_rates

    wr = learn_win_rates(train_view, min_sample=min_sample, tz=tz)

    def default_p(s: Sample) -> float:
        p = view.processes.get(s.process)
        if p is None or not p.has_stage(s.stage):
            return 0.0
        return float(p.stage(s.stage).probability.value)

    def hist_p(s: Sample) -> float:
        wins, n = wr.counts(s.process, s.stage)
        return wins / n if n >= min_sample and n > 0 else default_p(s)

    preds: list[tuple[str, Callable[[Sample], float]]] = [
        ("model", lambda s: model.probability(s.attributes)),
        ("stage_default", default_p),
        ("historical", hist_p),
    ]
    ys = [s.won for s in test_samples]
    out = tuple(metrics(name, [f(s) for s in test_samples], ys) for name, f in preds)
    return CalibrationReport(split_at, k, len(test), out)
