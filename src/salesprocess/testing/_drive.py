"""Make a deal ready for a move: the shared engine of the history strategies and the stateful
machine. Given the problems :meth:`Process.check` reports, it changes the deal (appending ordinary
events) and gathers the activities and reason a move needs, so the move can then succeed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from salesprocess.errors import Problem
from salesprocess.model import Activity, ActivityKind, Deal, ForecastCategory
from salesprocess.money import Money, Rate
from salesprocess.process import Process

__all__ = ["FIXABLE_GUARDS", "Preparation", "prepare_move"]

FIXABLE_GUARDS = frozenset(
    {
        "has_amount",
        "has_close_date",
        "close_date_not_past",
        "has_contact",
        "multi_threaded",
        "has_owner",
        "has_reason",
    }
)
"""Built-in guards that :func:`prepare_move` knows how to satisfy."""


class Preparation:
    """What :func:`prepare_move` produced: the changed deal and what to pass to ``advance``."""

    __slots__ = ("activities", "deal", "reason")

    def __init__(self, deal: Deal, activities: tuple[Activity, ...], reason: str | None) -> None:
        self.deal = deal
        self.activities = activities
        self.reason = reason


def _name(p: Problem) -> str:
    # paths are "entry.fields.X", "exit.checklist.X", "entry.guards.X", "transition.guards.X"
    return p.path.split(".", 2)[2]


def _money(deal: Deal, process: Process) -> Money:
    currency = deal.amount.currency if deal.amount is not None else (process.currency or "CNY")
    return Money(Decimal(10000), currency)


def _close_date(at: datetime) -> date:
    return at.date() + timedelta(days=30)


def prepare_move(
    process: Process, deal: Deal, target: str, *, at: datetime, actor: str = "tester"
) -> Preparation | None:
    """Satisfy every unmet criterion of moving ``deal`` to ``target`` at ``at``.

    Returns ``None`` when the move cannot be prepared: there is no such transition, or a criterion
    is a guard this function does not know (a plugin's). Otherwise the deal carries the needed
    field changes and checklist ticks (events at ``at``), and ``activities``/``reason`` are what
    the move must be given.
    """
    problems = process.check(deal, target, at=at, actor=actor)
    activities: list[Activity] = []
    reason: str | None = None
    d = deal
    for p in problems:
        if p.code not in ("field", "activity", "checklist", "guard"):
            return None
        name = _name(p)
        if p.code == "guard" and name not in FIXABLE_GUARDS:
            return None
    for p in problems:
        name = _name(p)
        if p.code == "checklist":
            d = d.with_checklist_item(name, True, at=at, actor=actor)
        elif p.code == "activity":
            if not any(a.kind.value == name for a in activities):
                activities.append(
                    Activity(
                        f"{deal.id}-{name}-{len(deal.events)}",
                        ActivityKind(name),
                        at,
                        subject=f"{name} for {deal.id}",
                        deal_id=deal.id,
                    )
                )
        elif p.code == "field":
            d, reason = _fill_field(process, d, name, at, actor, reason)
        else:
            d, reason = _fill_guard(process, d, name, at, actor, reason)
    return Preparation(d, tuple(activities), reason)


def _fill_field(
    process: Process, d: Deal, field: str, at: datetime, actor: str, reason: str | None
) -> tuple[Deal, str | None]:
    if field.startswith("custom."):
        return d.with_details(custom=d.custom.set(field[7:], "filled"), at=at, actor=actor), reason
    if field == "amount":
        return d.with_amount(_money(d, process), at=at, actor=actor), reason
    if field == "close_date":
        return d.with_close_date(_close_date(at), at=at, actor=actor), reason
    if field == "owner_id":
        return d.with_owner(f"rep-{d.id}", at=at, actor=actor), reason
    if field == "probability":
        return d.with_probability(Rate("0.5"), at=at, actor=actor), reason
    if field == "forecast_category":
        return d.with_forecast_category(ForecastCategory.PIPELINE, at=at, actor=actor), reason
    if field == "lost_reason":
        return d, reason or "price"
    changes: dict[str, Any]
    if field in ("contact_ids", "product_ids", "competitors"):
        changes = {field: (f"{field[:-1]}-1",)}
        return d.with_details(at=at, actor=actor, **changes), reason
    if field in ("name", "account_id"):
        changes = {field: f"{field}-{d.id}"}
        return d.with_details(at=at, actor=actor, **changes), reason
    raise AssertionError(f"no way to fill deal field {field!r}")  # pragma: no cover


def _fill_guard(
    process: Process, d: Deal, guard: str, at: datetime, actor: str, reason: str | None
) -> tuple[Deal, str | None]:
    if guard == "has_amount":
        if d.amount is None or d.amount.amount <= 0:
            d = d.with_amount(_money(d, process), at=at, actor=actor)
    elif guard in ("has_close_date", "close_date_not_past"):
        if d.close_date is None or d.close_date < at.date():
            d = d.with_close_date(_close_date(at), at=at, actor=actor)
    elif guard in ("has_contact", "multi_threaded"):
        have: Sequence[str] = d.contact_ids
        if len(have) < 2:
            extra = tuple(f"contact-{len(have) + i}" for i in range(2 - len(have)))
            d = d.with_details(contact_ids=(*have, *extra), at=at, actor=actor)
    elif guard == "has_owner":
        if not d.owner_id:
            d = d.with_owner(f"rep-{d.id}", at=at, actor=actor)
    elif guard == "has_reason":
        reason = reason or "budget cut"
    return d, reason
