"""Small hand-made and generated companies for the KPI, funnel, goal and pushdown tests.

Deals follow the shipped ``saas`` process (discovery → demo → trial → proposal → closed_won /
closed_lost) and move through the real stage machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from salesprocess import processes
from salesprocess.model import Account, Activity, Deal, Product, Rep, Team
from salesprocess.money import Money

SAAS = processes.load("saas")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
STAGES = ("discovery", "demo", "trial", "proposal", "closed_won", "closed_lost")


def at(day: float, hour: float = 0) -> datetime:
    """``T0`` plus ``day`` days and ``hour`` hours."""
    return T0 + timedelta(days=day, hours=hour)


def move(
    d: Deal,
    to: str,
    when: datetime,
    *,
    amount: str | None = None,
    currency: str = "CNY",
    reason: str | None = None,
) -> Deal:
    """Advance ``d`` to ``to`` at ``when``, satisfying the saas entry criteria on the way."""
    if amount is not None:
        d = d.with_amount(Money(amount, currency), at=when, actor="t")
    elif to in ("proposal", "closed_won") and d.amount is None:
        d = d.with_amount(Money("1.00", currency), at=when, actor="t")
    if to == "demo" and d.owner_id is None:
        d = d.with_owner("r0", at=when, actor="t")
    acts = (
        [Activity(f"m-{d.id}-{when.isoformat()}", "meeting", when, deal_id=d.id)]
        if to == "trial"
        else []
    )
    return SAAS.advance(d, to, at=when, actor="t", activities=acts, reason=reason)


def deal(
    id: str,
    owner: str | None,
    created: datetime,
    path: Sequence[tuple[str, datetime]] = (),
    *,
    amount: str | None = None,
    currency: str = "CNY",
    account: str | None = None,
    products: Sequence[str] = (),
    close_date: date | None = None,
) -> Deal:
    """A saas deal created at ``created`` and moved along ``path`` [(stage, instant), ...].

    ``amount`` is set at creation when given.
    """
    d = SAAS.open_deal(
        id,
        at=created,
        actor="t",
        owner_id=owner,
        name=id,
        account_id=account,
        amount=None if amount is None else Money(amount, currency),
        product_ids=tuple(products),
        close_date=close_date,
    )
    for stage, when in path:
        d = move(d, stage, when, currency=currency)
    return d


def won(
    id: str,
    owner: str | None,
    created: datetime,
    closed: datetime,
    amount: str,
    currency: str = "CNY",
    **kw: object,
) -> Deal:
    mid = created + (closed - created) / 2
    return deal(
        id,
        owner,
        created,
        [("demo", mid), ("closed_won", closed)],
        amount=amount,
        currency=currency,
        **kw,
    )  # type: ignore[arg-type]


def lost(
    id: str,
    owner: str | None,
    created: datetime,
    closed: datetime,
    amount: str | None = None,
    **kw: object,
) -> Deal:
    return deal(id, owner, created, [("closed_lost", closed)], amount=amount, **kw)  # type: ignore[arg-type]


REPS = (
    Rep("r1", "Li Wei", team_id="t1", region="east"),
    Rep("r2", "Wang Fang", team_id="t1", region="east"),
    Rep("r3", "Zhang Min", team_id="t2"),
)
TEAMS = (Team("t1", "East", region="east"), Team("t2", "West", region="west"))
ACCOUNTS = (
    Account("a1", "Acme", industry="tech", region="north"),
    Account("a2", "Beta", industry="retail", region="south"),
    Account("a3", "Gamma", industry="tech"),
)
PRODUCTS = (Product("p1", "Core", family="platform"), Product("p2", "Addon", family="addons"))


# --------------------------------------------------------------------------------------------
# Hypothesis: small random companies
# --------------------------------------------------------------------------------------------

OWNERS = ("r1", "r2", "r3", None)


@st.composite
def random_deal(draw: st.DrawFn, i: int, currency: str = "CNY") -> Deal:
    """A deal with a random walk through the saas process and random field changes."""
    created = T0 + timedelta(minutes=draw(st.integers(0, 60 * 24 * 200)))
    owner = draw(st.sampled_from(OWNERS))
    amount = draw(st.one_of(st.none(), st.integers(1, 10_000_000)))
    d = SAAS.open_deal(
        f"d{i:03d}",
        at=created,
        actor="t",
        owner_id=owner,
        name=f"deal {i}",
        account_id=draw(st.sampled_from(("a1", "a2", "a3", None))),
        amount=None if amount is None else Money.from_minor(amount, currency),
        product_ids=tuple(draw(st.lists(st.sampled_from(("p1", "p2")), max_size=2, unique=True))),
    )
    t = created
    for _ in range(draw(st.integers(0, 7))):
        t = t + timedelta(minutes=draw(st.integers(0, 60 * 24 * 30)))
        op = draw(
            st.sampled_from(("move", "move", "move", "amount", "owner", "close_date", "prob"))
        )
        if op == "move":
            targets = list(SAAS.graph_targets(d.stage))
            if not targets:
                continue
            to = draw(st.sampled_from(targets))
            try:
                d = move(
                    d,
                    to,
                    t,
                    currency=currency,
                    amount=None
                    if draw(st.booleans())
                    else str(Money.from_minor(draw(st.integers(1, 10_000_000)), currency).amount),
                )
            except Exception:
                continue
        elif op == "amount":
            d = d.with_amount(
                Money.from_minor(draw(st.integers(0, 10_000_000)), currency), at=t, actor="t"
            )
        elif op == "owner":
            d = d.with_owner(draw(st.sampled_from(OWNERS)), at=t, actor="t")
        elif op == "close_date":
            d = d.with_close_date(
                t.date() + timedelta(days=draw(st.integers(-30, 90))), at=t, actor="t"
            )
        else:
            d = d.with_probability(Decimal(draw(st.integers(0, 100))) / 100, at=t, actor="t")
    return d


@st.composite
def random_deals(draw: st.DrawFn, max_deals: int = 12, currency: str = "CNY") -> list[Deal]:
    n = draw(st.integers(0, max_deals))
    return [draw(random_deal(i, currency)) for i in range(n)]


@st.composite
def random_activities(draw: st.DrawFn, deals: Sequence[Deal]) -> list[Activity]:
    out = []
    for j in range(draw(st.integers(0, 8))):
        dl = draw(st.sampled_from(deals)) if deals and draw(st.booleans()) else None
        base = dl.created_at if dl is not None else T0
        out.append(
            Activity(
                f"act{j}",
                draw(st.sampled_from(("call", "email", "meeting"))),
                base + timedelta(minutes=draw(st.integers(-600, 60 * 24 * 60))),
                status=draw(st.sampled_from(("done", "done", "planned"))),
                deal_id=None if dl is None else dl.id,
                owner_id=draw(st.sampled_from(OWNERS)),
            )
        )
    return out
