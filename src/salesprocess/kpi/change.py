"""What changed in the pipeline between two instants (the weekly pipeline meeting).

Every deal whose state differs between ``start`` and ``end`` (both inclusive instants; nothing
after ``end`` is read) is listed **once**, under the first reason that applies in this order:

1. ``won`` — open (or not yet created) at ``start``, won at ``end``;
2. ``lost`` — open (or not yet created) at ``start``, lost at ``end``;
3. ``new`` — created after ``start`` and open at ``end``;
4. ``reopened`` — closed at ``start``, open at ``end``;
5. ``pushed`` — open at both, expected close date later (slipped);
6. ``pulled_in`` — open at both, expected close date earlier (a close date set or removed in
   between is neither);
7. ``amount_up`` / 8. ``amount_down`` — open at both, amount higher / lower (same currency);
9. ``stage_forward`` / 10. ``stage_back`` — open at both, a later / earlier stage in the process;
11. ``forecast_up`` / 12. ``forecast_down`` — forecast category moved up / down the ladder
    omitted < pipeline < best case < commit < closed;
13. ``reassigned`` — another owner.

A deal closed at both instants is not listed unless it switched between won and lost (then it is
listed as ``won`` or ``lost``). ``reasons`` on each entry holds every reason that applies, the
first being the one it is listed under.

The **bridge** reconciles the open pipeline per currency:
``start + new + reopened − won − lost + changed = end``, where ``won``/``lost`` count the amounts the
deals had at ``start`` (zero for deals created in between) and ``changed`` is the net amount change
of deals open at both instants.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from salesprocess.errors import KpiError, Problem
from salesprocess.model import DealStatus, ForecastCategory
from salesprocess.money import Money
from salesprocess.periods import require_aware

from .engine import _where
from .facts import Dataset, DealState

__all__ = ["ChangeReason", "DealChange", "PipelineChange", "pipeline_change"]


class ChangeReason(enum.StrEnum):
    WON = "won"
    LOST = "lost"
    NEW = "new"
    REOPENED = "reopened"
    PUSHED = "pushed"
    PULLED_IN = "pulled_in"
    AMOUNT_UP = "amount_up"
    AMOUNT_DOWN = "amount_down"
    STAGE_FORWARD = "stage_forward"
    STAGE_BACK = "stage_back"
    FORECAST_UP = "forecast_up"
    FORECAST_DOWN = "forecast_down"
    REASSIGNED = "reassigned"


PRECEDENCE: tuple[ChangeReason, ...] = tuple(ChangeReason)

_LADDER = {
    ForecastCategory.OMITTED: 0,
    ForecastCategory.PIPELINE: 1,
    ForecastCategory.BEST_CASE: 2,
    ForecastCategory.COMMIT: 3,
    ForecastCategory.CLOSED: 4,
}


@attrs.frozen
class DealChange:
    deal_id: str
    name: str
    reason: ChangeReason
    reasons: tuple[ChangeReason, ...]
    before: DealState | None
    after: DealState

    def as_dict(self) -> dict[str, Any]:
        b, a = self.before, self.after
        return {
            "deal": self.deal_id,
            "name": self.name,
            "reason": self.reason.value,
            "reasons": [r.value for r in self.reasons],
            "owner": a.owner_id,
            "stage_before": b.stage if b else None,
            "stage_after": a.stage,
            "amount_before": b.amount if b else None,
            "amount_after": a.amount,
            "close_date_before": b.close_date if b else None,
            "close_date_after": a.close_date,
            "forecast_before": b.forecast_category if b else None,
            "forecast_after": a.forecast_category,
        }


@attrs.frozen
class PipelineChange:
    start: datetime
    end: datetime
    changes: tuple[DealChange, ...]
    bridge: dict[str, dict[str, Money]]
    """Per currency: start, new, reopened, won, lost, changed, end (see the module docs)."""

    def by_reason(self) -> dict[ChangeReason, list[DealChange]]:
        out: dict[ChangeReason, list[DealChange]] = {r: [] for r in PRECEDENCE}
        for c in self.changes:
            out[c.reason].append(c)
        return out

    def summary(self) -> list[dict[str, Any]]:
        """One row per reason: count and amount (at ``end``; at ``start`` for won/lost) per currency."""
        rows = []
        for r, cs in self.by_reason().items():
            totals: dict[str, Decimal] = {}
            for c in cs:
                st = (
                    c.before if r in (ChangeReason.WON, ChangeReason.LOST) and c.before else c.after
                )
                if st.amount is not None:
                    totals[st.amount.currency] = (
                        totals.get(st.amount.currency, Decimal(0)) + st.amount.amount
                    )
            rows.append(
                {
                    "reason": r.value,
                    "deals": len(cs),
                    "amount": [Money(v, k) for k, v in sorted(totals.items())],
                }
            )
        return rows


def _reasons(
    before: DealState | None, after: DealState, order: Mapping[str, int] | None
) -> list[ChangeReason]:
    R = ChangeReason
    out: list[ChangeReason] = []
    if before is None or before.status is DealStatus.OPEN:
        if after.status is DealStatus.WON:
            return [R.WON]
        if after.status is DealStatus.LOST:
            return [R.LOST]
        if before is None:
            return [R.NEW]
    else:
        if after.status is DealStatus.OPEN:
            return [R.REOPENED]
        if after.status is not before.status:
            return [R.WON if after.status is DealStatus.WON else R.LOST]
        return []
    b = before
    if b.close_date is not None and after.close_date is not None:
        if after.close_date > b.close_date:
            out.append(R.PUSHED)
        elif after.close_date < b.close_date:
            out.append(R.PULLED_IN)
    if (
        b.amount is not None
        and after.amount is not None
        and b.amount.currency == after.amount.currency
    ):
        if after.amount.amount > b.amount.amount:
            out.append(R.AMOUNT_UP)
        elif after.amount.amount < b.amount.amount:
            out.append(R.AMOUNT_DOWN)
    elif b.amount != after.amount:
        out.append(R.AMOUNT_UP if after.amount is not None and b.amount is None else R.AMOUNT_DOWN)
    if b.stage != after.stage and order is not None:
        ob, oa = order.get(b.stage), order.get(after.stage)
        if ob is not None and oa is not None:
            out.append(R.STAGE_FORWARD if oa > ob else R.STAGE_BACK)
    if b.forecast_category != after.forecast_category:
        lb = _LADDER.get(b.forecast_category, -1) if b.forecast_category else -1
        la = _LADDER.get(after.forecast_category, -1) if after.forecast_category else -1
        out.append(R.FORECAST_UP if la > lb else R.FORECAST_DOWN)
    if b.owner_id != after.owner_id:
        out.append(R.REASSIGNED)
    return out


def pipeline_change(
    data: Dataset | Any,
    start: datetime,
    end: datetime,
    *,
    where: Mapping[str, Any] | None = None,
) -> PipelineChange:
    """Deals that changed between ``start`` and ``end``, each once with its reason."""
    from .dimensions import dimension_values, is_dimension

    require_aware(start, "start")
    require_aware(end, "end")
    if end < start:
        raise KpiError(
            [Problem("end", "order", f"end {end.isoformat()} is before start {start.isoformat()}")]
        )
    w = _where(where)
    bad = [
        Problem(f"where.{k}", "unknown_dimension", f"unknown dimension {k!r}")
        for k in w
        if not is_dimension(k)
    ]
    if bad:
        raise KpiError(bad)
    if not isinstance(data, Dataset):
        data = Dataset.from_store(data)
    view = data.view(end)
    changes: list[DealChange] = []
    bridge: dict[str, dict[str, Decimal]] = {}

    def add(cur: str, part: str, amount: Decimal) -> None:
        b = bridge.setdefault(
            cur,
            {k: Decimal(0) for k in ("start", "new", "reopened", "won", "lost", "changed", "end")},
        )
        b[part] += amount

    for d in view.deals:
        if any(
            not any(x in allowed for x in dimension_values(view, d, k)) for k, allowed in w.items()
        ):
            continue
        before = view.state_at(d, start, True)
        after = view.state_at(d, end, True)
        assert after is not None
        b_open = before is not None and before.status is DealStatus.OPEN
        a_open = after.status is DealStatus.OPEN
        if b_open and before is not None and before.amount is not None:
            add(before.amount.currency, "start", before.amount.amount)
        if a_open and after.amount is not None:
            add(after.amount.currency, "end", after.amount.amount)
        if before == after:
            continue
        proc = view.processes.get(d.process)
        order = {s.key: i for i, s in enumerate(proc.stages)} if proc is not None else None
        reasons = _reasons(before, after, order)
        if not reasons:
            continue
        r = reasons[0]
        # bridge parts
        if r in (ChangeReason.WON, ChangeReason.LOST):
            if b_open and before is not None and before.amount is not None:
                add(before.amount.currency, r.value, before.amount.amount)
        elif r is ChangeReason.NEW:
            if after.amount is not None:
                add(after.amount.currency, "new", after.amount.amount)
        elif r is ChangeReason.REOPENED:
            if after.amount is not None:
                add(after.amount.currency, "reopened", after.amount.amount)
        elif before is not None and before.amount != after.amount:
            if before.amount is not None:
                add(before.amount.currency, "changed", -before.amount.amount)
            if after.amount is not None:
                add(after.amount.currency, "changed", after.amount.amount)
        changes.append(DealChange(d.id, d.name, r, tuple(reasons), before, after))
    changes.sort(key=lambda c: (PRECEDENCE.index(c.reason), c.deal_id))
    return PipelineChange(
        start,
        end,
        tuple(changes),
        {
            cur: {k: Money(v, cur) for k, v in parts.items()}
            for cur, parts in sorted(bridge.items())
        },
    )
