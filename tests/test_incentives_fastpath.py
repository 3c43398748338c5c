"""The engine's fast paths against its general ones: the same statements, to the cent.

The fast rating loop, the ordering of credits, the cached split weights and the day of an instant
already in the plan's timezone are shortcuts; Hypothesis draws plans (tiers, multipliers, caps,
rules, settlement periods, rounding) and deals (splits, overlays, refunds, reopenings, instants in
several timezones) and checks that every statement is identical either way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesprocess.incentives import CommissionInputs, Plan, Refund, Split, SplitKind, credit_deals
from salesprocess.incentives._credit import Credit, CreditBook, _Crediter
from salesprocess.incentives._engine import _in_order, _in_order_fast, compute_run
from salesprocess.model import Deal, DealReopened, DealStatus, DealWon, EventSource, Rep
from salesprocess.money import Money

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SH = ZoneInfo("Asia/Shanghai")
ZONES = (SH, UTC, ZoneInfo("America/New_York"))
REPS = ("r1", "r2", "r3", "r4")
Q2 = datetime(2026, 4, 1, 9, tzinfo=SH)


@SETTINGS
@given(keys=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["d1", "d2", "d10", "d3"])),
                     min_size=2, max_size=30))
def test_fast_ordering_equals_the_general_one(keys: list[tuple[int, str]]) -> None:
    # few distinct instants, so ties (broken by deal id, then index) are common
    credits = [Credit._make(("r1", deal, "owner", "booking", 0, Q2 + timedelta(minutes=m), Q2.date(), 1, 1, -1,
                             True, None, None, None, None, -1, None, None)) for m, deal in keys]
    idx = list(range(len(credits)))
    assert _in_order_fast(idx, [c.at for c in credits], credits) == _in_order(idx, credits)


def _pct(n: int) -> str:
    return str(Decimal(n) / 100)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    n = draw(st.integers(1, 4))
    starts = sorted(draw(st.sets(st.integers(1, 250), min_size=n - 1, max_size=n - 1)))
    rates = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))
    rate_table: dict[str, Any] = {
        "mode": draw(st.sampled_from(["graduated", "graduated", "retroactive"])),
        "tiers": [{"name": f"t{i}", "from": _pct(s), "rate": _pct(r)}
                  for i, (s, r) in enumerate(zip([0, *starts], rates, strict=True))],
    }
    if draw(st.booleans()):
        rate_table["accelerators"] = [{"name": "acc", "above": _pct(draw(st.integers(50, 200))),
                                       "multiplier": _pct(draw(st.integers(101, 200)))}]
    if draw(st.booleans()):
        rate_table["decelerators"] = [{"name": "dec", "below": _pct(draw(st.integers(5, 60))),
                                       "multiplier": _pct(draw(st.integers(10, 99)))}]
    rule = draw(st.sampled_from([None, "rate", "multiplier"]))
    if rule == "rate":
        rate_table["rules"] = [{"name": "hw", "products": ["hw"], "rate": "0.015"}]
    elif rule == "multiplier":
        rate_table["rules"] = [{"name": "hw", "products": ["hw"], "multiplier": "0.5"}]
    version: dict[str, Any] = {
        "version": 1, "effective_from": "2026-04-01", "quota": str(draw(st.integers(1, 40)) * 10_000),
        "rates": rate_table, "clawback": {"days": draw(st.sampled_from([0, 30, 120]))},
        "crediting": {"overlay_counts": draw(st.booleans())},
        "rounding": {"mode": draw(st.sampled_from(["half_up", "half_even", "half_down", "up", "down"]))},
    }
    if draw(st.booleans()):
        version["spifs"] = [{"name": "may", "amount": "100", "from": "2026-05-01", "to": "2026-05-31",
                             "products": ["saas"], "pay": draw(st.sampled_from(["owner", "split"]))}]
    caps: dict[str, str] = {}
    if draw(st.booleans()):
        caps["attainment"] = _pct(draw(st.integers(80, 300)))
    if draw(st.booleans()):
        caps["payout"] = str(draw(st.integers(1, 50)) * 1000)
    if caps:
        version["caps"] = caps
    return Plan.from_dict({
        "key": "p", "name": "p", "currency": "CNY", "timezone": "Asia/Shanghai",
        "settlement": draw(st.sampled_from(["month", "quarter"])), "attainment": "quarter",
        "versions": [version],
    })


deal_specs = st.lists(
    st.tuples(
        st.sampled_from(REPS),                  # owner
        st.integers(1, 300_000),                # amount in yuan
        st.integers(0, 99),                     # fen
        st.integers(0, 89),                     # day of the quarter
        st.integers(0, 3),                      # minute (ties between deals)
        st.sampled_from(ZONES),                 # timezone of the instants
        st.sampled_from(["saas", "hw"]),        # product
        st.sampled_from([None, "split", "overlay"]),
        st.sampled_from([None, "full", "part", "reopen"]),
        st.sampled_from(["open", "open", "open", "won", "usd", "no_owner"]),  # how the deal starts
    ),
    min_size=1, max_size=25,
)


def build(specs: list[Any]) -> tuple[list[Deal], CommissionInputs]:
    deals: list[Deal] = []
    splits: list[Split] = []
    refunds: list[Refund] = []
    src = EventSource.USER
    for i, (owner, yuan, fen, day, minute, tz, product, split, after, start) in enumerate(specs):
        did = f"d{i}"
        won = (Q2 + timedelta(days=day, minutes=minute)).astimezone(tz)
        amount = Money(Decimal(yuan) + Decimal(fen) / 100, "USD" if start == "usd" else "CNY")
        if start == "won":
            d = Deal.create(did, process="p", stage="won", at=won, actor="t", amount=amount, owner_id=owner,
                            status=DealStatus.WON, product_ids=(product,))
        else:
            d = Deal.create(did, process="p", stage="open", at=won - timedelta(days=7), actor="t", amount=amount,
                            owner_id=None if start == "no_owner" else owner, product_ids=(product,))
            d = d.append(DealWon(did, won, owner, src, "open", "won"))
        if after == "reopen":
            d = d.append(DealReopened(did, won + timedelta(days=2), owner, src, "won", "open"))
        elif after is not None:
            refunds.append(Refund(f"R{i}", did, won + timedelta(days=1 + day % 40),
                                  None if after == "full" else amount * "0.3"))
        other = REPS[(REPS.index(owner) + 1) % len(REPS)]
        if split == "split":
            splits += [Split(did, owner, "0.6"), Split(did, other, "0.4")]
        elif split == "overlay":
            splits.append(Split(did, other, "0.25", SplitKind.OVERLAY))
        deals.append(d)
    return deals, CommissionInputs(splits=splits, refunds=refunds)


def credit(plan: Plan, deals: list[Deal], inputs: CommissionInputs, reps: list[Rep], *, fast: bool) -> CreditBook:
    cr = _Crediter(plan, inputs, {r.id: r for r in reps}, {}, {}, fast=fast)
    for d in deals:
        cr.deal(d)
    return cr.book


@SETTINGS
@given(plan=plans(), specs=deal_specs)
def test_fast_crediting_gives_the_same_credits_as_the_general_one(plan: Plan, specs: list[Any]) -> None:
    deals, inputs = build(specs)
    reps = [Rep(r, r.upper(), role="ae") for r in REPS]
    fast = credit(plan, deals, inputs, reps, fast=True)
    general = credit(plan, deals, inputs, reps, fast=False)
    assert fast.credits == general.credits
    assert fast.awards == general.awards
    assert fast.problems == general.problems
    assert fast.notes == general.notes


@SETTINGS
@given(plan=plans(), specs=deal_specs)
def test_fast_engine_gives_the_same_statements_as_the_general_one(plan: Plan, specs: list[Any]) -> None:
    specs = [s for s in specs if s[-1] not in ("usd", "no_owner")]  # problems stop a run
    deals, inputs = build(specs)
    reps = [Rep(r, r.upper(), role="ae") for r in REPS]
    book = credit_deals(plan, deals, inputs, reps=reps)
    assert not book.problems
    period = plan.parse_period("2026-Q2")
    rmap = {r.id: r for r in reps}
    fast = compute_run(plan, book, inputs, rmap, period, None, fast=True)
    general = compute_run(plan, book, inputs, rmap, period, None, fast=False)
    assert [s.to_dict() for s in fast.statements] == [s.to_dict() for s in general.statements]
    assert fast.problems == general.problems
    for s in fast.statements:
        assert s.total.to_minor() == sum(ln.amount_minor for ln in s.lines)
    # revenue splits conserve every credited amount: the positive credits of a deal add up to it
    by_deal: dict[str, int] = {}
    for c in book.credits:
        if c.of < 0 and c.role in ("owner", "revenue"):
            by_deal[c.deal_id] = by_deal.get(c.deal_id, 0) + c.amount
    for d in deals:
        assert d.amount is not None
        assert by_deal.get(d.id, 0) == d.amount.to_minor()


@SETTINGS
@given(specs=deal_specs)
def test_credit_days_do_not_depend_on_the_timezone_of_the_instant(specs: list[Any]) -> None:
    # the same instants given in the plan's timezone and in UTC credit the same days
    plan = Plan.from_dict({"key": "p", "name": "p", "currency": "CNY", "timezone": "Asia/Shanghai",
                           "versions": [{"version": 1, "effective_from": "2026-04-01",
                                         "rates": {"flat": "0.05"}}]})
    local = [(*s[:5], SH, *s[6:9], "open") for s in specs]
    utc = [(*s[:5], UTC, *s[6:9], "open") for s in specs]
    a = credit_deals(plan, build(local)[0], build(local)[1])
    b = credit_deals(plan, build(utc)[0], build(utc)[1])
    assert [(c.rep_id, c.deal_id, c.day, c.amount) for c in a.credits] == [
        (c.rep_id, c.deal_id, c.day, c.amount) for c in b.credits]
