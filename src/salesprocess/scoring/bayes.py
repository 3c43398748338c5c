"""A transparent, calibrated naive Bayes win model, retrained on demand from the deal history.

**Training samples.** Every deal closed by the training instant gives one sample per open stage it
entered: the deal *as it stood when it entered the stage* (rebuilt from its events up to that
instant, activities done by then), labelled with its final outcome (won or lost). So the model
learns from the situations open deals are in, and nothing known only later leaks in.

**The model.** For each feature ``f`` and value ``v``, with Laplace smoothing ``α`` (default 1) and
``K_f`` = the number of values seen for ``f`` plus one for an unseen value::

    P(v | won) = (count(v, won) + α) / (n_won + α·K_f)

A deal's log-odds of winning is the prior ``ln((n_won + α) / (n_lost + α))`` plus, per feature, the
**contribution** ``ln P(v | won) − ln P(v | lost)``.

**Calibration.** Naive Bayes is overconfident when features move together, so the log-odds are
rescaled with Platt scaling, ``z' = a·z + b``, fitted by maximum likelihood (Newton's method with
step halving, Platt's smoothed targets, and a weak ridge ``(a − 1)² + b²`` so a tiny or separable
calibration set cannot blow the scale up; a fit with ``a ≤ 0`` is discarded) on a held-out later
part of the training deals (the last
``calibration_share`` of them by close time); the counts are then refitted on all training deals.
Reported numbers are calibrated: the **intercept** is ``b + a·prior``, each factor's contribution
``a·(its contribution)``; both are rounded half-even to 4 decimal places, and the **logit is their
exact sum**. The probability is the logistic of that logit, rounded to 4 places.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

import attrs

from salesprocess.errors import DomainError
from salesprocess.kpi import Dataset, View
from salesprocess.kpi.stats import percentile
from salesprocess.model import Deal, DealStatus, StageChanged, replay_until
from salesprocess.money import Rate
from salesprocess.periods import require_aware
from salesprocess.process import StageKind
from salesprocess.risk.facts import FactsBuilder

from .features import DEFAULT_FEATURES, bin_attributes, deal_attributes

__all__ = ["Factor", "NaiveBayesModel", "Sample", "WinScore", "snapshots", "train"]

_Q4 = Decimal("0.0001")


@attrs.frozen
class Sample:
    """One training or test situation: a deal as it stood at ``at`` and its final outcome."""

    deal_id: str
    at: datetime
    closed_at: datetime
    won: bool
    stage: str
    process: str
    attributes: Mapping[str, Any] = attrs.field(eq=False, repr=False)


def snapshots(view: View, builder: FactsBuilder, deals: Sequence[Deal]) -> list[Sample]:
    """Samples from ``deals`` (closed in ``view``): one per open stage entered (see the module)."""
    out = []
    for d in deals:
        if d.status is DealStatus.OPEN or d.closed_at is None:
            continue
        proc = view.processes.get(d.process)
        seen: set[str] = set()
        entries = [(d.events[0].at, d.events[0].stage)]  # type: ignore[attr-defined]
        entries += [(e.at, e.to_stage) for e in d.events if isinstance(e, StageChanged)]
        for at, stage in entries:
            if stage in seen:
                continue
            if proc is not None and proc.has_stage(stage) and proc.stage(stage).kind is not StageKind.OPEN:
                continue
            seen.add(stage)
            snap = replay_until(d.events, at)
            if snap is None or snap.status is not DealStatus.OPEN:
                continue
            facts = builder.facts(snap, at=at)
            out.append(Sample(d.id, at, d.closed_at, d.status is DealStatus.WON, stage, d.process,
                              deal_attributes(snap, facts, builder)))
    return out


@attrs.frozen
class Factor:
    """One feature's value and its contribution to the calibrated log-odds."""

    feature: str
    value: str
    contribution: Decimal
    won: int
    """Training samples with this value that were won."""
    lost: int

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "value": self.value, "contribution": self.contribution,
                "won": self.won, "lost": self.lost}


@attrs.frozen
class WinScore:
    """A deal's win probability with each factor's contribution (``intercept + Σ = logit``)."""

    deal_id: str
    probability: Rate
    logit: Decimal
    intercept: Decimal
    factors: tuple[Factor, ...]

    def explain(self) -> list[str]:
        out = [f"baseline log-odds {self.intercept:+}"]
        for f in sorted(self.factors, key=lambda f: -abs(f.contribution)):
            out.append(f"{f.feature}={f.value}: {f.contribution:+} "
                       f"({f.won} won / {f.lost} lost in training)")
        out.append(f"log-odds {self.logit:+} → probability {self.probability}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"deal_id": self.deal_id, "probability": self.probability, "logit": self.logit,
                "intercept": self.intercept, "factors": [f.as_dict() for f in self.factors]}


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _platt(z: Sequence[float], y: Sequence[bool]) -> tuple[float, float]:
    """Fit ``σ(a·z + b)`` to outcomes: Platt's smoothed targets, a weak ridge pulling towards
    ``a = 1, b = 0`` (so a separable or tiny calibration set cannot blow the scale up), and Newton
    steps halved until the penalised log loss falls."""
    n_pos = sum(1 for v in y if v)
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0 or len(y) < 20:
        return 1.0, 0.0
    t_pos = (n_pos + 1.0) / (n_pos + 2.0)
    t_neg = 1.0 / (n_neg + 2.0)
    t = [t_pos if v else t_neg for v in y]
    lam = 1.0

    def loss(a: float, b: float) -> float:
        out = lam * ((a - 1.0) ** 2 + b * b)
        for zi, ti in zip(z, t, strict=True):
            u = a * zi + b
            # log(1 + e^u) - t·u, computed stably
            out += (u if u > 0 else 0.0) + math.log1p(math.exp(-abs(u))) - ti * u
        return out

    a, b = 1.0, 0.0
    cur = loss(a, b)
    for _ in range(50):
        g_a = 2 * lam * (a - 1.0)
        g_b = 2 * lam * b
        h_aa = h_bb = 2 * lam
        h_ab = 0.0
        for zi, ti in zip(z, t, strict=True):
            p = _sigmoid(a * zi + b)
            d = p - ti
            w = p * (1 - p)
            g_a += d * zi
            g_b += d
            h_aa += w * zi * zi
            h_ab += w * zi
            h_bb += w
        det = h_aa * h_bb - h_ab * h_ab
        if det <= 0:
            break
        da = (h_bb * g_a - h_ab * g_b) / det
        db = (h_aa * g_b - h_ab * g_a) / det
        step = 1.0
        while step > 1e-6:
            na, nb = a - step * da, b - step * db
            new = loss(na, nb)
            if new <= cur:
                break
            step /= 2
        else:
            break
        a, b, cur = na, nb, new
        if abs(step * da) < 1e-9 and abs(step * db) < 1e-9:
            break
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
        return 1.0, 0.0
    return a, b


class NaiveBayesModel:
    """A trained model (see the module documentation); build with :func:`train`."""

    def __init__(
        self,
        features: Sequence[str],
        alpha: float,
        counts: Mapping[str, Mapping[str, tuple[int, int]]],
        n_won: int,
        n_lost: int,
        amount_edges: Sequence[Decimal],
        a: float = 1.0,
        b: float = 0.0,
        trained_at: datetime | None = None,
        deals: int = 0,
    ) -> None:
        self.features = tuple(features)
        self.alpha = alpha
        self.counts = {f: dict(v) for f, v in counts.items()}
        self.n_won = n_won
        self.n_lost = n_lost
        self.amount_edges = tuple(amount_edges)
        self.a = a
        self.b = b
        self.trained_at = trained_at
        self.deals = deals

    @property
    def samples(self) -> int:
        return self.n_won + self.n_lost

    def _raw(self, binned: Mapping[str, str]) -> tuple[float, list[tuple[str, str, float, int, int]]]:
        al = self.alpha
        prior = math.log((self.n_won + al) / (self.n_lost + al))
        parts = []
        for f in self.features:
            v = binned[f]
            table = self.counts.get(f, {})
            k = len(table) + 1
            w, lo = table.get(v, (0, 0))
            pw = (w + al) / (self.n_won + al * k)
            pl = (lo + al) / (self.n_lost + al * k)
            parts.append((f, v, math.log(pw) - math.log(pl), w, lo))
        return prior, parts

    def raw_logit(self, attributes: Mapping[str, Any]) -> float:
        """The uncalibrated log-odds of raw attributes."""
        prior, parts = self._raw(bin_attributes(attributes, self.features, self.amount_edges))
        return prior + sum(p[2] for p in parts)

    def score_attributes(self, deal_id: str, attributes: Mapping[str, Any]) -> WinScore:
        prior, parts = self._raw(bin_attributes(attributes, self.features, self.amount_edges))
        intercept = Decimal(repr(self.b + self.a * prior)).quantize(_Q4)
        factors = tuple(
            Factor(f, v, Decimal(repr(self.a * c)).quantize(_Q4), w, lo) for f, v, c, w, lo in parts
        )
        logit = intercept + sum((x.contribution for x in factors), Decimal(0))
        p = Decimal(repr(_sigmoid(float(logit)))).quantize(_Q4)
        return WinScore(deal_id, Rate(p), logit, intercept, factors)

    def score(self, deal: Deal, builder: FactsBuilder) -> WinScore:
        """Score ``deal`` as it stands at the builder's instant."""
        return self.score_attributes(deal.id, deal_attributes(deal, builder.facts(deal), builder))

    def probability(self, attributes: Mapping[str, Any]) -> float:
        return _sigmoid(self.a * self.raw_logit(attributes) + self.b)


def _fit_counts(
    samples: Sequence[Sample], features: Sequence[str], alpha: float, edges: Sequence[Decimal]
) -> NaiveBayesModel:
    counts: dict[str, dict[str, list[int]]] = {f: {} for f in features}
    n_won = n_lost = 0
    for s in samples:
        binned = bin_attributes(s.attributes, features, edges)
        if s.won:
            n_won += 1
        else:
            n_lost += 1
        for f in features:
            c = counts[f].setdefault(binned[f], [0, 0])
            c[0 if s.won else 1] += 1
    return NaiveBayesModel(
        features, alpha, {f: {v: (c[0], c[1]) for v, c in t.items()} for f, t in counts.items()},
        n_won, n_lost, edges, deals=len({s.deal_id for s in samples}),
    )


def _edges(samples: Sequence[Sample]) -> list[Decimal]:
    amounts = sorted(s.attributes["amount"] for s in samples if s.attributes.get("amount") is not None)
    if not amounts:
        return []
    out = []
    for q in ("0.25", "0.5", "0.75"):
        v = percentile(amounts, Decimal(q))
        if v is not None:
            out.append(v)
    return out


def train(
    data: Dataset | View | Any,
    *,
    asof: datetime,
    features: Sequence[str] = DEFAULT_FEATURES,
    alpha: float = 1.0,
    calibration_share: float = 0.2,
    tz: tzinfo = UTC,
    min_samples: int = 30,
    samples: Sequence[Sample] | None = None,
) -> NaiveBayesModel:
    """Train on the deals closed by ``asof`` (``data``: a store, a Dataset or a View).

    Raises :class:`~salesprocess.errors.DomainError` when fewer than ``min_samples`` samples or only
    one outcome are available.
    """
    require_aware(asof, "asof")
    if alpha <= 0:
        raise DomainError(f"alpha (Laplace smoothing) must be positive, got {alpha}")
    if not 0 <= calibration_share < 1:
        raise DomainError(f"calibration_share must be within [0, 1), got {calibration_share}")
    if samples is None:
        view = data if isinstance(data, View) else (
            data if isinstance(data, Dataset) else Dataset.from_store(data)).view(asof)
        builder = FactsBuilder(view, asof, tz=tz, stay_stats=False)
        closed = [d for d in view.deals if d.status is not DealStatus.OPEN and d.closed_at is not None]
        samples = snapshots(view, builder, closed)
    samples = sorted(samples, key=lambda s: (s.closed_at, s.deal_id, s.at))
    won = sum(1 for s in samples if s.won)
    if len(samples) < min_samples or won == 0 or won == len(samples):
        raise DomainError(
            f"not enough history to train the win model: {len(samples)} sample(s), {won} won "
            f"(need at least {min_samples} and both outcomes)"
        )
    edges = _edges(samples)
    a, b = 1.0, 0.0
    deal_order = list(dict.fromkeys(s.deal_id for s in samples))
    n_cal = int(len(deal_order) * calibration_share)
    if n_cal >= 5:
        cal_ids = set(deal_order[len(deal_order) - n_cal:])
        fit = [s for s in samples if s.deal_id not in cal_ids]
        cal = [s for s in samples if s.deal_id in cal_ids]
        if fit and any(s.won for s in fit) and not all(s.won for s in fit):
            m0 = _fit_counts(fit, features, alpha, _edges(fit))
            a, b = _platt([m0.raw_logit(s.attributes) for s in cal], [s.won for s in cal])
    model = _fit_counts(samples, features, alpha, edges)
    model.a, model.b = a, b
    model.trained_at = asof
    return model
