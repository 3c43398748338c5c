"""Small hand-made data for the forecast, scoring and risk tests.

A five-stage process ``mini`` (a → b → c → won | lost, skipping allowed) without entry criteria, so
deals move wherever a test needs; ``b`` has a 5-business-day SLA, ``a`` a 10-day SLA.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache

from salesprocess.kpi import Dataset
from salesprocess.model import Account, Activity, Deal, Rep, Team
from salesprocess.money import Money
from salesprocess.process import Process

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday

MINI = Process.from_dict({
    "key": "mini",
    "name": "Mini",
    "currency": "USD",
    "flow": {"allow_skip": True},
    "stages": [
        {"key": "a", "name": "A", "probability": "0.2", "forecast_category": "pipeline",
         "sla_days": 10},
        {"key": "b", "name": "B", "probability": "0.5", "forecast_category": "best_case",
         "sla_days": 5, "sla_business_days": True},
        {"key": "c", "name": "C", "probability": "0.8", "forecast_category": "commit"},
        {"key": "won", "name": "Won", "kind": "won"},
        {"key": "lost", "name": "Lost", "kind": "lost", "entry": {"fields": ["lost_reason"]}},
    ],
})

TEAMS = (
    Team("sales", "Sales"),
    Team("east", "East", parent_id="sales", manager_id="m1"),
    Team("west", "West", parent_id="sales", manager_id="m2"),
)
REPS = (
    Rep("m1", "Manager East", team_id="east"),
    Rep("m2", "Manager West", team_id="west"),
    Rep("r1", "Rep One", team_id="east", manager_id="m1"),
    Rep("r2", "Rep Two", team_id="east", manager_id="m1"),
    Rep("r3", "Rep Three", team_id="west", manager_id="m2"),
)
ACCOUNTS = (
    Account("acc1", "Acme", size_band="enterprise", owner_id="r1",
            credit_limit=Money("10000", "USD")),
    Account("acc2", "Beta", size_band="smb", owner_id="r3"),
)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def usd(x: str | int) -> Money:
    return Money(str(x), "USD")


def make(
    id: str,
    *,
    owner: str | None = "r1",
    created: float = 0,
    amount: str | None = "1000",
    stage: str = "a",
    moves: Sequence[tuple[str, float]] = (),
    close_date: date | None = None,
    account: str | None = "acc1",
    **fields: object,
) -> Deal:
    """A mini deal created in ``stage`` at day ``created`` and moved along ``moves``."""
    d = MINI.open_deal(id, at=at(created), actor="t", stage=stage, owner_id=owner,
                       amount=None if amount is None else usd(amount), close_date=close_date,
                       account_id=account, name=id, **fields)
    for to, day in moves:
        reason = "price" if to == "lost" else None
        if to == "lost" and d.lost_reason is None:
            d = d.with_details(lost_reason="price", at=at(day), actor="t")
        d = MINI.advance(d, to, at=at(day), actor="t", reason=reason)
    return d


def dataset(deals: Sequence[Deal], activities: Sequence[Activity] = ()) -> Dataset:
    return Dataset(deals, reps=REPS, teams=TEAMS, accounts=ACCOUNTS, activities=activities,
                   processes=[MINI])


@cache
def company(deals: int = 500, seed: int = 11) -> Dataset:
    """A generated company (b2b process), loaded into a Dataset once per test session."""
    from salesprocess.generate import generate_company

    c = generate_company(deals=deals, seed=seed, start=date(2024, 1, 1), months=24)
    return Dataset(c.deals, reps=c.reps, teams=c.teams, accounts=c.accounts, products=c.products,
                   activities=c.activities, processes=[c.process])


D = Decimal
