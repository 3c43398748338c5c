"""Properties of commission statements, checked with Hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesprocess.incentives import (
    CommissionInputs,
    Plan,
    Refund,
    Split,
    compute_statements,
    credit_deals,
)
from salesprocess.model import Deal, DealWon, EventSource
from salesprocess.money import Money

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Q2 = datetime(2026, 4, 1, 8, tzinfo=UTC)
REPS = ("r1", "r2", "r3")


def deal(did: str, owner: str, yuan: int, day: int, fen: int = 0) -> Deal:
    when = Q2 + timedelta(days=day, minutes=int(did.strip("dx") or 0) % 600)
    d = Deal.create(did, process="p", stage="open", at=when - timedelta(days=5), actor="t",
                    amount=Money(Decimal(yuan) + Decimal(fen) / 100, "CNY"), owner_id=owner)
    return d.append(DealWon(did, when, "t", EventSource.USER, "open", "won"))


deal_specs = st.lists(
    st.tuples(st.sampled_from(REPS), st.integers(1, 200_000), st.integers(0, 89), st.integers(0, 99)),
    min_size=1, max_size=12,
)


@st.composite
def tier_tables(draw: st.DrawFn) -> list[dict[str, str]]:
    """Tiers whose thresholds and rates are whole hundredths and whose rates never decrease."""
    n = draw(st.integers(1, 4))
    starts = sorted(draw(st.sets(st.integers(1, 300), min_size=n - 1, max_size=n - 1)))
    rates = sorted(draw(st.lists(st.integers(0, 30), min_size=n, max_size=n)))
    return [{"name": f"t{i}", "from": str(Decimal(s) / 100), "rate": str(Decimal(r) / 100)}
            for i, (s, r) in enumerate(zip([0, *starts], rates, strict=True))]


def plan(rates: dict[str, Any], *, quota: str = "100000", settlement: str = "quarter", **extra: Any) -> Plan:
    return Plan.from_dict({"key": "p", "name": "p", "currency": "CNY", "settlement": settlement,
                           "attainment": "quarter",
                           "versions": [{"version": 1, "effective_from": "2026-01-01", "quota": quota,
                                         "rates": rates, "clawback": {"days": 120}, **extra}]})


def deals_of(specs: list[tuple[str, int, int, int]], *, whole: bool = False) -> list[Deal]:
    return [deal(f"d{i}", rep, yuan, day, 0 if whole else fen) for i, (rep, yuan, day, fen) in enumerate(specs)]


def total(run: Any, rep: str) -> int:
    return sum(s.total.to_minor() for s in run.statements if s.rep_id == rep)


@SETTINGS
@given(amount=st.integers(1, 10**9), parts=st.lists(st.integers(1, 1000), min_size=1, max_size=6))
def test_revenue_splits_conserve_the_credited_amount(amount: int, parts: list[int]) -> None:
    # shares that total exactly 100 %: each part over the sum, the last one taking the rest
    whole = sum(parts)
    shares = [Decimal(p) / Decimal(whole) for p in parts]
    shares = [s.quantize(Decimal("0.000001")) for s in shares[:-1]]
    shares.append(Decimal(1) - sum(shares, Decimal(0)))
    if shares[-1] <= 0:
        return
    reps = [f"r{i}" for i in range(len(shares))]
    money = Money.from_minor(amount, "CNY")
    d = deal("d0", "r0", 0, 3)
    d = Deal.create("d0", process="p", stage="open", at=Q2, actor="t", amount=money, owner_id="r0")
    d = d.append(DealWon("d0", Q2 + timedelta(hours=1), "t", EventSource.USER, "open", "won"))
    book = credit_deals(plan({"flat": "0.05"}), [d],
                        CommissionInputs(splits=[Split("d0", r, s) for r, s in zip(reps, shares, strict=True)]))
    assert not book.problems
    credited = [c.amount for c in book.credits]
    assert sum(credited) == amount
    for c, s in zip(book.credits, shares, strict=True):
        assert abs(Decimal(c.amount) - s * amount) < 1  # within one fen of the exact share


@SETTINGS
@given(tiers=tier_tables(), specs=deal_specs, quota=st.integers(1, 20).map(lambda k: str(k * 10_000)))
def test_graduated_never_pays_more_than_retroactive(tiers: list[dict[str, str]], specs: Any, quota: str) -> None:
    # whole yuan, thresholds on whole yuan and rates in hundredths: no rounding at all
    deals = deals_of(specs, whole=True)
    grad = compute_statements(plan({"mode": "graduated", "tiers": tiers}, quota=quota), deals, "2026-Q2")
    retro = compute_statements(plan({"mode": "retroactive", "tiers": tiers}, quota=quota), deals, "2026-Q2")
    for rep in {r for r, *_ in specs}:
        assert total(grad, rep) <= total(retro, rep)


@SETTINGS
@given(tiers=tier_tables(), specs=deal_specs, extra=st.tuples(st.integers(1, 100_000), st.integers(0, 89)),
       mode=st.sampled_from(["graduated", "retroactive"]),
       accel=st.sampled_from([None, ("1.0", "1.5"), ("0.5", "2")]))
def test_a_non_decreasing_plan_pays_more_for_more_revenue(tiers: Any, specs: Any, extra: Any, mode: str,
                                                          accel: Any) -> None:
    rates: dict[str, Any] = {"mode": mode, "tiers": tiers}
    if accel:
        rates["accelerators"] = [{"above": accel[0], "multiplier": accel[1]}]
    p = plan(rates)
    deals = deals_of(specs, whole=True)
    more = [*deals, deal("x999", "r1", extra[0], extra[1])]
    assert total(compute_statements(p, deals, "2026-Q2"), "r1") <= total(compute_statements(p, more, "2026-Q2"), "r1")


@SETTINGS
@given(specs=deal_specs, victim=st.integers(0, 11), tiers=tier_tables(),
       mode=st.sampled_from(["graduated", "retroactive"]), refund_day=st.integers(1, 20))
def test_clawback_after_payout_returns_the_earlier_total(specs: Any, victim: int, tiers: Any, mode: str,
                                                         refund_day: int) -> None:
    deals = deals_of(specs)
    x = deals[victim % len(deals)]
    owner = x.owner_id
    assert owner is not None
    refund = Refund("R", x.id, datetime(2026, 7, 1, tzinfo=UTC) + timedelta(days=refund_day))
    p = plan({"mode": mode, "tiers": tiers})
    run = compute_statements(p, deals, "2026-07-01..2026-10-01", inputs=CommissionInputs(refunds=[refund]))
    q2 = compute_statements(p, deals, "2026-Q2", inputs=CommissionInputs(refunds=[refund]))
    paid = sum(ln.amount_minor for s in q2.statements for ln in s.lines if ln.deal_id == x.id)
    back = sum(ln.amount_minor for s in run.statements for ln in s.lines if ln.kind == "clawback")
    assert back == -paid
    # with a flat rate, the deal paid and clawed back leaves exactly the total without it
    flat = plan({"flat": "0.037"})
    with_x = total(compute_statements(flat, deals, "2026-Q2"), owner)
    clawed = sum(ln.amount_minor for s in compute_statements(flat, deals, "2026-07-01..2026-10-01",
                                                             inputs=CommissionInputs(refunds=[refund])).statements
                 for ln in s.lines if ln.kind == "clawback")
    without = total(compute_statements(flat, [d for d in deals if d.id != x.id], "2026-Q2"), owner)
    assert with_x + clawed == without


@SETTINGS
@given(specs=deal_specs, tiers=tier_tables(), mode=st.sampled_from(["graduated", "retroactive"]),
       cap=st.sampled_from([None, "500", "2500"]), floor=st.sampled_from([None, "100"]),
       draw=st.booleans(), settlement=st.sampled_from(["month", "quarter"]),
       refunds=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 60), st.integers(1, 100)), max_size=3))
def test_statement_lines_always_add_up_to_the_total(specs: Any, tiers: Any, mode: str, cap: Any, floor: Any,
                                                    draw: bool, settlement: str, refunds: Any) -> None:
    deals = deals_of(specs)
    extra: dict[str, Any] = {}
    if cap:
        extra["caps"] = {"payout": cap, "attainment": "2.5"}
    if floor:
        extra["payout"] = {"minimum": floor}
    if draw:
        extra["draws"] = [{"name": "d", "amount": "800", "reps": ["r1", "r2"]}]
    rs = []
    seen = set()
    for i, (v, day, pct) in enumerate(refunds):
        d = deals[v % len(deals)]
        if d.id in seen:
            continue
        seen.add(d.id)
        assert d.amount is not None
        rs.append(Refund(f"R{i}", d.id, d.updated_at + timedelta(days=day), d.amount * Decimal(pct) / 100))
    run = compute_statements(plan({"mode": mode, "tiers": tiers}, settlement=settlement, **extra), deals,
                             "2026-Q2", inputs=CommissionInputs(refunds=rs))
    for s in run.statements:
        assert s.total.to_minor() == sum(ln.amount_minor for ln in s.lines)
        assert s.total.amount >= 0  # negative periods are carried forward
        back = type(s).from_dict(s.to_dict())
        assert back.total == s.total
        assert back.digest == s.digest


@SETTINGS
@given(specs=deal_specs, tiers=tier_tables(), order=st.randoms(use_true_random=False),
       settlement=st.sampled_from(["month", "quarter"]))
def test_recomputation_is_deterministic(specs: Any, tiers: Any, order: Any, settlement: str) -> None:
    deals = deals_of(specs)
    p = plan({"mode": "retroactive", "tiers": tiers}, settlement=settlement)
    first = compute_statements(p, deals, "2026-Q2")
    shuffled = list(deals)
    order.shuffle(shuffled)
    again = compute_statements(p, iter(shuffled), "2026-Q2")
    assert [s.digest for s in first.statements] == [s.digest for s in again.statements]
    assert [s.to_dict() for s in first.statements] == [s.to_dict() for s in again.statements]


@SETTINGS
@given(bonus=st.integers(1, 10**7), parts=st.lists(st.integers(1, 99), min_size=2, max_size=5),
       amount=st.integers(1, 10**8))
def test_rounding_never_creates_or_loses_a_cent_across_a_team(bonus: int, parts: list[int], amount: int) -> None:
    whole = sum(parts)
    shares = [(Decimal(p) / Decimal(whole)).quantize(Decimal("0.0001")) for p in parts[:-1]]
    shares.append(Decimal(1) - sum(shares, Decimal(0)))
    if shares[-1] <= 0:
        return
    team = [f"r{i}" for i in range(len(shares))]
    spif = Money.from_minor(bonus, "CNY")
    p = plan({"flat": "0.0333"}, spifs=[{"name": "s", "amount": str(spif.amount), "from": "2026-04-01",
                                         "to": "2026-06-30", "pay": "split"}])
    d = Deal.create("d0", process="p", stage="open", at=Q2, actor="t", amount=Money.from_minor(amount, "CNY"),
                    owner_id="r0")
    d = d.append(DealWon("d0", Q2 + timedelta(days=2), "t", EventSource.USER, "open", "won"))
    run = compute_statements(p, [d], "2026-Q2",
                             inputs=CommissionInputs(splits=[Split("d0", r, s) for r, s in zip(team, shares, strict=True)]))
    spif_lines = [ln.amount_minor for s in run.statements for ln in s.lines if ln.kind == "spif"]
    assert sum(spif_lines) == bonus
    assert sum(c.amount for c in run.book.credits) == amount
