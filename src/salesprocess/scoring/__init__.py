"""Win scoring: rule points from TOML and a transparent, calibrated naive Bayes model with each
factor's contribution, plus a calibration report on a time-split holdout.

:func:`score_deals` retrains the model from the store (or a Dataset) as of an instant and scores
the open deals; :class:`RuleSet` adds configurable rule points.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

import attrs

from salesprocess.kpi import Dataset
from salesprocess.model import DealStatus
from salesprocess.periods import require_aware
from salesprocess.risk.facts import FactsBuilder

from .bayes import Factor, NaiveBayesModel, Sample, WinScore, snapshots, train
from .calibration import CalibrationReport, PredictorMetrics, ReliabilityBin, calibration_report
from .features import DEFAULT_FEATURES, bin_attributes, deal_attributes
from .rules import ATTRIBUTES, Rule, RuleScore, RuleSet

__all__ = [
    "ATTRIBUTES",
    "DEFAULT_FEATURES",
    "CalibrationReport",
    "DealScore",
    "Factor",
    "NaiveBayesModel",
    "PredictorMetrics",
    "ReliabilityBin",
    "Rule",
    "RuleScore",
    "RuleSet",
    "Sample",
    "WinScore",
    "bin_attributes",
    "calibration_report",
    "deal_attributes",
    "score_deals",
    "snapshots",
    "train",
]


@attrs.frozen
class DealScore:
    """A deal's model score and, when rules were given, its rule score."""

    deal_id: str
    name: str
    stage: str
    owner_id: str | None
    win: WinScore
    rules: RuleScore | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {"deal_id": self.deal_id, "name": self.name, "stage": self.stage,
             "owner_id": self.owner_id, **self.win.as_dict()}
        if self.rules is not None:
            d["rule_score"] = self.rules.score
            d["rules"] = self.rules.as_dict()["rules"]
        return d


def score_deals(
    data: Dataset | Any,
    *,
    asof: datetime,
    model: NaiveBayesModel | None = None,
    rules: RuleSet | None = None,
    deal_ids: Iterable[str] | None = None,
    features: Sequence[str] = DEFAULT_FEATURES,
    tz: tzinfo = UTC,
) -> list[DealScore]:
    """Score the open deals (or ``deal_ids``) as known at ``asof``; trains a model when none is
    given (from the deals closed by ``asof``)."""
    require_aware(asof, "asof")
    dataset = data if isinstance(data, Dataset) else Dataset.from_store(data)
    view = dataset.view(asof)
    if model is None:
        model = train(view, asof=asof, features=features, tz=tz)
    builder = FactsBuilder(view, asof, tz=tz, stay_stats=False)
    wanted = set(deal_ids) if deal_ids is not None else None
    out = []
    for d in view.deals:
        if wanted is not None:
            if d.id not in wanted:
                continue
        elif d.status is not DealStatus.OPEN:
            continue
        attrs_ = deal_attributes(d, builder.facts(d), builder)
        out.append(DealScore(d.id, d.name, d.stage, d.owner_id,
                             model.score_attributes(d.id, attrs_),
                             rules.score(d.id, attrs_) if rules is not None else None))
    return out
