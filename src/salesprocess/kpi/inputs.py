"""Plain-value inputs for KPIs whose data the store does not hold.

- :class:`SurveyResponse` — one CSAT, NPS or CES answer (for ``csat``, ``nps``, ``ces``).
- :class:`CostEntry` — sales and marketing spend for a period (for ``customer_acquisition_cost``).
- :class:`AccountRevenue` — recurring revenue (MRR/ARR run-rate) of an account in a period (for
  churn, retention and lifetime value).
- :class:`Target` — a target for a scope and period (for ``quota_attainment`` and
  ``pipeline_coverage``); :meth:`Target.from_goal` turns a goal into one.

Pass them to :func:`salesprocess.kpi.compute` as ``inputs=KpiInputs(...)``. ``scope`` mappings name
the query dimensions a cost or target belongs to (``{"team": "t1"}``; ``{}`` for the whole company);
an entry counts for a result row when its scope names exactly the row's non-period dimensions with
the same values, and its period lies inside the row's window.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from salesprocess.money import Money, Rate
from salesprocess.periods import Period, require_aware

__all__ = [
    "AccountRevenue",
    "CostEntry",
    "KpiInputs",
    "SurveyKind",
    "SurveyResponse",
    "Target",
]


class SurveyKind(enum.StrEnum):
    CSAT = "csat"
    """Customer satisfaction, score 1–5; 4 and 5 count as satisfied."""
    NPS = "nps"
    """Net promoter score question, score 0–10; 9–10 promoters, 0–6 detractors."""
    CES = "ces"
    """Customer effort score, 1–7 (higher means easier)."""


_SCALES: dict[SurveyKind, tuple[int, int]] = {
    SurveyKind.CSAT: (1, 5),
    SurveyKind.NPS: (0, 10),
    SurveyKind.CES: (1, 7),
}


def _aware(_i: object, a: attrs.Attribute[Any], v: datetime) -> None:
    require_aware(v, a.name)


def _scope(v: Mapping[str, str | None] | None) -> tuple[tuple[str, str | None], ...]:
    if v is None:
        return ()
    return tuple(sorted(dict(v).items()))


@attrs.frozen
class SurveyResponse:
    """One answer to a CSAT, NPS or CES question.

    ``score`` must lie on the kind's scale (CSAT 1–5, NPS 0–10, CES 1–7). ``account_id``,
    ``deal_id`` and ``owner_id`` tie it to the dimensions KPIs group by (the owner falls back to the
    deal's, then the account's owner).
    """

    id: str
    kind: SurveyKind = attrs.field(converter=SurveyKind)
    score: int = attrs.field()
    at: datetime = attrs.field(validator=_aware)
    account_id: str | None = None
    deal_id: str | None = None
    owner_id: str | None = None
    contact_id: str | None = None

    @score.validator
    def _check(self, _a: Any, v: int) -> None:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"survey {self.id}: score must be an int, got {type(v).__name__}")
        lo, hi = _SCALES[SurveyKind(self.kind)]
        if not lo <= v <= hi:
            raise ValueError(
                f"survey {self.id}: {self.kind} score must be within {lo}..{hi}, got {v}"
            )


@attrs.frozen
class CostEntry:
    """Sales and marketing spend of ``period`` for a ``scope`` (``{}`` is the whole company)."""

    period: Period
    amount: Money
    scope: tuple[tuple[str, str | None], ...] = attrs.field(default=(), converter=_scope)
    category: str = "sales_marketing"


@attrs.frozen
class AccountRevenue:
    """Recurring revenue run-rate (e.g. MRR) of an account during ``period``.

    Give one entry per account and period of a regular grain (months, say). Churn and retention
    compare each account's run-rate in the period that ends when a window starts with the one that
    ends when the window ends.
    """

    account_id: str
    period: Period
    amount: Money
    product_id: str | None = None


@attrs.frozen
class Target:
    """A target ``value`` (Money for money KPIs, else a number) for a scope and period."""

    period: Period
    value: Money | Decimal = attrs.field()
    scope: tuple[tuple[str, str | None], ...] = attrs.field(default=(), converter=_scope)
    metric: str = "won_revenue"

    @value.validator
    def _check(self, _a: Any, v: object) -> None:
        if not isinstance(v, Money | Decimal) or isinstance(v, bool):
            raise TypeError(f"target value must be Money or Decimal, got {type(v).__name__}")

    @classmethod
    def from_goal(cls, goal: Any) -> Target:
        """The target of a :class:`salesprocess.goals.Goal`."""
        return cls(goal.period, goal.target, goal.scope.dimensions(), goal.metric)


def _tuple(v: Iterable[Any] | None) -> tuple[Any, ...]:
    return tuple(v or ())


@attrs.frozen
class KpiInputs:
    """Everything a KPI may need beyond the store: surveys, costs, revenue, targets, margin."""

    surveys: tuple[SurveyResponse, ...] = attrs.field(default=(), converter=_tuple)
    costs: tuple[CostEntry, ...] = attrs.field(default=(), converter=_tuple)
    revenue: tuple[AccountRevenue, ...] = attrs.field(default=(), converter=_tuple)
    targets: tuple[Target, ...] = attrs.field(default=(), converter=_tuple)
    gross_margin: Rate = attrs.field(default=Rate(1))
    """Gross margin used by ``customer_lifetime_value``."""

    def available(self) -> frozenset[str]:
        """Names of the inputs given (``surveys``, ``costs``, ``revenue``, ``targets``)."""
        return frozenset(n for n in ("surveys", "costs", "revenue", "targets") if getattr(self, n))
