"""Commission plans and statements: every expected amount below is worked out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from salesprocess.errors import BatchConflictError, ConflictError, DefinitionError, DomainError
from salesprocess.incentives import (
    Adjustment,
    Churn,
    CommissionInputs,
    FxRate,
    IncentiveError,
    Invoice,
    LineKind,
    OrgHistory,
    Payment,
    Plan,
    PlanFileError,
    Quota,
    Refund,
    ReportingLine,
    Split,
    SplitKind,
    check_statements,
    compute_statements,
    credit_deals,
    load_plan,
    load_statement,
    save_plan,
    save_statements,
    what_if,
)
from salesprocess.model import Account, AmountChanged, Deal, DealReopened, DealWon, EventSource, Rep
from salesprocess.money import Money

CNY = "CNY"


def at(y: int, m: int, d: int, h: int = 10) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC)


def won(did: str, owner: str | None, amount: str | None, when: datetime, *, cur: str = CNY,
        products: tuple[str, ...] = (), account: str | None = None) -> Deal:
    d = Deal.create(did, process="p", stage="open", at=when - timedelta(days=10), actor="t",
                    amount=None if amount is None else Money(amount, cur), owner_id=owner,
                    product_ids=products, account_id=account)
    return d.append(DealWon(did, when, "t", EventSource.USER, "open", "won"))


def reopen(d: Deal, when: datetime) -> Deal:
    return d.append(DealReopened(d.id, when, "t", EventSource.USER, "won", "open"))


def make_plan(*, settlement: str = "month", attainment: str = "quarter", currency: str = CNY,
              versions: list[dict[str, Any]] | None = None, **version: Any) -> Plan:
    vs = versions or [{"version": 1, "effective_from": "2026-01-01", **version}]
    return Plan.from_dict({"key": "t", "name": "Test plan", "currency": currency, "settlement": settlement,
                           "attainment": attainment, "versions": vs})


def M(amount: str, cur: str = CNY) -> Money:
    return Money(amount, cur)


FLAT = {"rates": {"flat": "0.05"}}
TIERS = [{"name": "low", "from": "0", "rate": "0.10"}, {"name": "high", "from": "0.5", "rate": "0.20"}]


def totals(run: Any) -> dict[tuple[str, str], Money]:
    return {(s.rep_id, s.period.label): s.total for s in run.statements}


# ------------------------------------------------------------------------------------------------
# Rates
# ------------------------------------------------------------------------------------------------


def test_flat_plan_pays_the_rate_on_each_booking_in_its_month() -> None:
    plan = make_plan(**FLAT)
    deals = [won("a", "r1", "100000", at(2026, 4, 3)), won("b", "r1", "80000", at(2026, 5, 3)),
             won("c", "r2", "1234.55", at(2026, 5, 20))]
    run = compute_statements(plan, deals, "2026-Q2")
    assert totals(run) == {
        ("r1", "2026-04"): M("5000.00"), ("r1", "2026-05"): M("4000.00"), ("r1", "2026-06"): M("0"),
        ("r2", "2026-04"): M("0"), ("r2", "2026-05"): M("61.73"), ("r2", "2026-06"): M("0"),
    }
    (line,) = run.statement("r2", "2026-05").lines
    assert line.kind == LineKind.COMMISSION
    assert (line.deal_id, line.event, line.rule, line.plan_version) == ("c", "c#1", "tier:flat", 1)
    assert line.base_amount == M("1234.55")
    assert line.at == at(2026, 5, 20)


def test_graduated_pays_each_slice_its_rate_and_retroactive_pays_the_reached_tier_on_all() -> None:
    deals = [won("a", "r1", "40", at(2026, 4, 3)), won("b", "r1", "30", at(2026, 4, 9))]
    quota = {"quota": "100"}
    grad = compute_statements(make_plan(settlement="quarter", rates={"mode": "graduated", "tiers": TIERS}, **quota),
                              deals, "2026-Q2").statement("r1")
    # a: 40 × 10 % = 4; b: 10 × 10 % + 20 × 20 % = 5
    assert grad.total == M("9")
    assert [(ln.deal_id, ln.rule, ln.amount) for ln in grad.lines] == [
        ("a", "tier:low", M("4")), ("b", "tier:low", M("1")), ("b", "tier:high", M("4"))]
    retro = compute_statements(make_plan(settlement="quarter", rates={"mode": "retroactive", "tiers": TIERS}, **quota),
                               deals, "2026-Q2").statement("r1")
    assert retro.total == M("14")  # 70 % attainment reaches 'high': 70 × 20 %
    assert retro.attainment == Decimal("0.7")
    assert retro.tier == "tier:high"


def test_accelerator_above_quota_and_decelerator_below_half() -> None:
    rates = {"tiers": [{"from": "0", "rate": "0.05", "name": "base"}],
             "accelerators": [{"above": "1.0", "multiplier": "2", "name": "club"}],
             "decelerators": [{"below": "0.5", "multiplier": "0.5", "name": "ramp"}]}
    deals = [won("a", "r1", "1500", at(2026, 4, 3))]
    g = compute_statements(make_plan(settlement="quarter", quota="1000", rates={**rates, "mode": "graduated"}),
                           deals, "2026-Q2").statement("r1")
    # 500 × 2.5 % + 500 × 5 % + 500 × 10 %
    assert g.total == M("87.50")
    assert {ln.rule: ln.amount for ln in g.lines} == {
        "tier:base+decelerator:ramp": M("12.50"), "tier:base": M("25.00"), "tier:base+accelerator:club": M("50.00")}
    r = compute_statements(make_plan(settlement="quarter", quota="1000", rates={**rates, "mode": "retroactive"}),
                           deals, "2026-Q2").statement("r1")
    assert r.total == M("150.00")  # 150 % reached: 1500 × 10 %
    low = compute_statements(make_plan(settlement="quarter", quota="1000", rates={**rates, "mode": "retroactive"}),
                             [won("a", "r1", "400", at(2026, 4, 3))], "2026-Q2").statement("r1")
    assert low.total == M("10.00")  # 40 % < 50 %: 400 × 2.5 %


def test_attainment_cap_stops_credit_earning_and_payout_cap_withholds_the_excess() -> None:
    plan = make_plan(settlement="quarter", quota="1000", rates={"flat": "0.10"},
                     caps={"attainment": "1.2", "payout": "100"})
    s = compute_statements(plan, [won("a", "r1", "1500", at(2026, 4, 3))], "2026-Q2").statement("r1")
    assert [(ln.kind, ln.rule, ln.amount) for ln in s.lines] == [
        ("commission", "tier:flat", M("120.00")),  # 1200 up to the cap
        ("commission", "cap:attainment", M("0")),  # the 300 above it
        ("cap", "cap:payout", M("-20.00")),
    ]
    assert s.total == M("100")
    assert s.withheld == M("20")
    assert s.withheld_to_date == M("20")
    assert s.earnings == M("100")


def test_product_and_segment_rules_replace_or_scale_the_rate() -> None:
    plan = make_plan(settlement="quarter", rates={
        "flat": "0.05",
        "rules": [{"name": "hardware", "products": ["hw"], "rate": "0.02"},
                  {"name": "enterprise", "segment": {"size_band": ["enterprise"]}, "multiplier": "1.5"}]})
    accounts = [Account("big", "Big Co", size_band="enterprise"), Account("small", "Small Co", size_band="smb")]
    deals = [won("h", "r1", "1000", at(2026, 4, 1), products=("hw",), account="big"),
             won("e", "r1", "1000", at(2026, 4, 2), products=("sw",), account="big"),
             won("s", "r1", "1000", at(2026, 4, 3), products=("sw",), account="small")]
    s = compute_statements(plan, deals, "2026-Q2", accounts=accounts).statement("r1")
    assert {ln.deal_id: (ln.rule, ln.amount) for ln in s.lines} == {
        "h": ("rule:hardware", M("20")),  # the first matching rule wins
        "e": ("tier:flat+rule:enterprise", M("75")),
        "s": ("tier:flat", M("50")),
    }


# ------------------------------------------------------------------------------------------------
# Crediting
# ------------------------------------------------------------------------------------------------


def test_revenue_splits_allocate_every_cent_and_overlays_add_credit() -> None:
    plan = make_plan(settlement="quarter", rates={"flat": "0.10"})
    inputs = CommissionInputs(splits=[
        Split("d", "r1", "0.3333"), Split("d", "r2", "0.3333"), Split("d", "r3", "0.3334"),
        Split("d", "se", "0.25", SplitKind.OVERLAY)])
    book = credit_deals(plan, [won("d", "r1", "1000.01", at(2026, 4, 1))], inputs)
    credited = {(c.rep_id, c.role): c.amount for c in book.credits}
    # 100001 fen by 3333:3333:3334 → 33330.33, 33330.33, 33340.34: largest remainders get the cents
    assert credited == {("r1", "revenue"): 33330, ("r2", "revenue"): 33330, ("r3", "revenue"): 33341,
                        ("se", "overlay"): 25000}
    assert sum(v for (_r, role), v in credited.items() if role == "revenue") == 100001


def test_splits_that_do_not_total_100_percent_are_all_reported() -> None:
    plan = make_plan(**FLAT)
    inputs = CommissionInputs(splits=[Split("a", "r1", "0.5"), Split("a", "r2", "0.4"),
                                      Split("b", "r1", "0.7"), Split("b", "r2", "0.7")])
    with pytest.raises(IncentiveError) as ei:
        compute_statements(plan, [won("a", "r1", "10", at(2026, 4, 1)), won("b", "r1", "10", at(2026, 4, 1))],
                           "2026-04", inputs=inputs)
    assert [p.path for p in ei.value.problems] == ["splits[a]", "splits[b]"]
    assert "90" in ei.value.problems[0].message
    assert "140" in ei.value.problems[1].message


def test_override_follows_the_hierarchy_as_it_was_on_the_day_of_the_credit() -> None:
    plan = make_plan(settlement="quarter", rates={"flat": "0.01"},
                     crediting={"direct": False, "overrides": [{"levels": 2, "share": "1"}]})
    org = OrgHistory([ReportingLine("r1", "m1", None, date(2026, 5, 1)), ReportingLine("r1", "m2", date(2026, 5, 1)),
                      ReportingLine("m1", "vp"), ReportingLine("m2", "vp")])
    deals = [won("april", "r1", "1000", at(2026, 4, 15)), won("may", "r1", "3000", at(2026, 5, 15))]
    run = compute_statements(plan, deals, "2026-Q2", inputs=CommissionInputs(org=org))
    assert totals(run) == {("m1", "2026-Q2"): M("10"), ("m2", "2026-Q2"): M("30"), ("vp", "2026-Q2"): M("40")}
    assert {ln.deal_id for ln in run.statement("m1").lines} == {"april"}
    assert all(ln.role == "override" for s in run.statements for ln in s.lines)


def test_booking_adjustments_and_reopening_reverse_at_the_rate_paid() -> None:
    plan = make_plan(settlement="month", **FLAT)
    d = won("a", "r1", "1000", at(2026, 4, 3))
    d = d.append(AmountChanged("a", at(2026, 5, 3), "t", EventSource.USER, M("1000"), M("1200")))
    d = d.append(AmountChanged("a", at(2026, 5, 9), "t", EventSource.USER, M("1200"), M("900")))
    d = reopen(d, at(2026, 6, 3))
    run = compute_statements(plan, [d], "2026-Q2")
    assert totals(run) == {("r1", "2026-04"): M("50"), ("r1", "2026-05"): M("0"), ("r1", "2026-06"): M("0")}
    may = run.statement("r1", "2026-05")
    assert [(ln.kind, ln.amount, ln.event) for ln in may.lines] == [
        ("commission", M("10"), "a#2"),  # +200
        ("reversal", M("-12.50"), "a#3"),  # 300 of 1200 = 25 % of the 50 paid on the booking
        ("reversal", M("-2.50"), "a#3"),  # ... and of the 10 paid on the raise
        ("carry_forward", M("5"), None),
    ]
    june = run.statement("r1", "2026-06")
    assert sum(ln.amount_minor for ln in june.lines if ln.kind == "reversal") == -4500  # the 45 still standing
    assert june.deficit == M("50")


def test_invoice_and_cash_bases_credit_invoices_and_partial_payments() -> None:
    deals = [won("a", "r1", "1000", at(2026, 3, 20))]
    inv = [Invoice("I1", "a", at(2026, 4, 2), M("1000")), Invoice("CN1", "a", at(2026, 5, 2), M("-200"))]
    pays = [Payment("P1", "I1", at(2026, 4, 10), M("400")), Payment("P2", "I1", at(2026, 6, 10), M("600"))]
    inputs = CommissionInputs(invoices=inv, payments=pays)
    base = {"key": "t", "name": "t", "currency": CNY, "settlement": "month", "attainment": "quarter",
            "versions": [{"version": 1, "effective_from": "2026-01-01", "rates": {"flat": "0.10"}}]}
    inv_run = compute_statements(Plan.from_dict({**base, "basis": "invoice"}), deals, "2026-Q2", inputs=inputs)
    assert totals(inv_run) == {("r1", "2026-04"): M("100"), ("r1", "2026-05"): M("0"), ("r1", "2026-06"): M("0")}
    may = inv_run.statement("r1", "2026-05")
    assert [(ln.kind, ln.amount, ln.event) for ln in may.lines] == [
        ("reversal", M("-20"), "invoice:CN1"), ("carry_forward", M("20"), None)]
    assert may.deficit == M("20")
    assert inv_run.statement("r1", "2026-04").lines[0].event == "invoice:I1"
    cash_run = compute_statements(Plan.from_dict({**base, "basis": "cash"}), deals, "2026-Q2", inputs=inputs)
    assert totals(cash_run) == {("r1", "2026-04"): M("40"), ("r1", "2026-05"): M("0"), ("r1", "2026-06"): M("60")}
    assert cash_run.statement("r1", "2026-06").lines[0].event == "payment:P2"


# ------------------------------------------------------------------------------------------------
# Clawbacks
# ------------------------------------------------------------------------------------------------


def _clawback_plan(days: int = 90) -> Plan:
    return make_plan(settlement="quarter", quota="1000", clawback={"days": days},
                     rates={"mode": "retroactive", "tiers": [{"from": "0", "rate": "0.05", "name": "a"},
                                                             {"from": "1", "rate": "0.10", "name": "b"}]})


def test_clawback_in_a_later_period_takes_back_what_was_paid_at_its_rate() -> None:
    deals = [won("x", "r1", "600", at(2026, 3, 1)), won("y", "r1", "600", at(2026, 3, 5))]
    inputs = CommissionInputs(refunds=[Refund("R1", "x", at(2026, 4, 20))])
    q1 = compute_statements(_clawback_plan(), deals, "2026-Q1", inputs=inputs).statement("r1")
    assert q1.total == M("120")  # 120 % reached: both at 10 %
    q2 = compute_statements(_clawback_plan(), deals, "2026-Q2", inputs=inputs).statement("r1")
    (ln,) = q2.lines[:1]
    assert (ln.kind, ln.amount, ln.event, ln.deal_id, ln.base_amount) == ("clawback", M("-60"), "refund:R1", "x", M("60"))
    assert q2.credited == M("0")  # a closed period's history does not lower the next one's attainment
    late = compute_statements(_clawback_plan(days=30), deals, "2026-Q2", inputs=inputs)
    assert not any(ln.kind == "clawback" for s in late.statements for ln in s.lines)
    assert any("outside the clawback window" in n for n in late.notes)


def test_refund_in_the_same_period_lowers_attainment_and_retro_rates() -> None:
    deals = [won("x", "r1", "600", at(2026, 4, 1)), won("y", "r1", "600", at(2026, 4, 5))]
    inputs = CommissionInputs(refunds=[Refund("R1", "x", at(2026, 4, 20), M("300"))])
    s = compute_statements(_clawback_plan(), deals, "2026-Q2", inputs=inputs).statement("r1")
    # attainment 1200 - 300 = 900: below quota, every credit at 5 %; half of x's 30 taken back
    assert s.credited == M("900")
    assert [(ln.kind, ln.deal_id, ln.amount) for ln in s.lines] == [
        ("commission", "x", M("30")), ("commission", "y", M("30")), ("clawback", "x", M("-15"))]
    assert s.total == M("45")  # 900 × 5 %


def test_partial_refunds_add_up_to_exactly_the_amount_paid() -> None:
    plan = make_plan(settlement="month", rates={"flat": "0.07"}, clawback={"days": 365})
    deals = [won("x", "r1", "333.33", at(2026, 1, 5))]
    refunds = [Refund(f"R{i}", "x", at(2026, 2 + i, 1), M("111.11")) for i in range(3)]
    run = compute_statements(plan, deals, "2026-01-01..2026-07-01", inputs=CommissionInputs(refunds=refunds))
    paid = sum(ln.amount_minor for s in run.statements for ln in s.lines if ln.deal_id == "x")
    assert paid == 0
    over = [*refunds, Refund("R9", "x", at(2026, 6, 1), M("1"))]
    with pytest.raises(IncentiveError) as ei:
        compute_statements(plan, deals, "2026-Q2", inputs=CommissionInputs(refunds=over))
    assert ei.value.problems[0].code in ("over_reduction",)


def test_churn_claws_back_every_deal_of_the_account_within_the_window() -> None:
    plan = make_plan(settlement="quarter", rates={"flat": "0.10"}, clawback={"days": 60, "on": ["churn"]})
    deals = [won("old", "r1", "1000", at(2026, 1, 2), account="acme"),
             won("new", "r2", "2000", at(2026, 3, 1), account="acme"),
             won("other", "r1", "500", at(2026, 3, 1), account="zen")]
    inputs = CommissionInputs(churns=[Churn("C1", "acme", at(2026, 4, 10))],
                              refunds=[Refund("R1", "other", at(2026, 4, 1))])
    q2 = compute_statements(plan, deals, "2026-Q2", inputs=inputs)
    assert totals(q2) == {("r1", "2026-Q2"): M("0"), ("r2", "2026-Q2"): M("0")}
    assert [(ln.deal_id, ln.amount, ln.event) for ln in q2.statement("r2").lines if ln.kind == "clawback"] == [
        ("new", M("-200"), "churn:C1")]
    # 'old' is older than 60 days; refunds are not a trigger of this plan
    assert q2.statement("r1").deficit == M("0")


# ------------------------------------------------------------------------------------------------
# SPIFs, draws, floors, adjustments
# ------------------------------------------------------------------------------------------------


def test_spif_shared_by_splits_to_the_cent_and_taken_back_on_full_refund() -> None:
    plan = make_plan(settlement="month", rates={"flat": "0"}, clawback={"days": 90}, spifs=[
        {"name": "push", "amount": "1000", "from": "2026-04-01", "to": "2026-04-30", "products": ["cloud"],
         "min_amount": "500", "pay": "split"}])
    deals = [won("a", "r1", "800", at(2026, 4, 2), products=("cloud",)),
             won("small", "r1", "100", at(2026, 4, 2), products=("cloud",)),
             won("late", "r1", "800", at(2026, 5, 2), products=("cloud",))]
    inputs = CommissionInputs(splits=[Split("a", r, "0.3333" if r != "r3" else "0.3334") for r in ("r1", "r2", "r3")],
                              refunds=[Refund("R1", "a", at(2026, 5, 20))])
    run = compute_statements(plan, deals, "2026-Q2", inputs=inputs)
    april = {s.rep_id: s.total for s in run.statements if s.period.label == "2026-04"}
    assert april == {"r1": M("333.30"), "r2": M("333.30"), "r3": M("333.40")}
    assert sum(m.amount for m in april.values()) == Decimal("1000")
    may = {s.rep_id: [(ln.kind, ln.amount, ln.event) for ln in s.lines if ln.kind == "spif"]
           for s in run.statements if s.period.label == "2026-05"}
    assert may["r3"] == [("spif", M("-333.40"), "refund:R1")]


def test_recoverable_draw_is_carried_forward_and_recovered() -> None:
    plan = make_plan(settlement="month", rates={"flat": "0.10"},
                     draws=[{"name": "ramp", "amount": "1000", "reps": ["r1"], "from": "2026-01-01", "to": "2026-02-28"}])
    deals = [won("a", "r1", "2000", at(2026, 1, 5)), won("b", "r1", "15000", at(2026, 2, 5)),
             won("c", "r1", "20000", at(2026, 3, 5))]
    run = compute_statements(plan, deals, "2026-Q1")
    jan, feb, mar = run.for_rep("r1")
    assert [(ln.kind, ln.amount) for ln in jan.lines] == [("commission", M("200")), ("draw", M("800"))]
    assert jan.total == M("1000")
    assert jan.draw_balance == M("800")
    assert [(ln.kind, ln.amount) for ln in feb.lines] == [("commission", M("1500")), ("draw_recovery", M("-500"))]
    assert feb.total == M("1000")
    assert feb.draw_balance == M("300")
    assert [(ln.kind, ln.amount) for ln in mar.lines] == [("commission", M("2000")), ("draw_recovery", M("-300"))]
    assert mar.total == M("1700")
    assert mar.draw_balance == M("0")


def test_non_recoverable_draw_and_minimum_payout_are_not_recovered() -> None:
    plan = make_plan(settlement="month", rates={"flat": "0.10"}, payout={"minimum": "300"},
                     draws=[{"name": "guarantee", "amount": "1000", "recoverable": False, "roles": ["ae"],
                             "from": "2026-01-01", "to": "2026-01-31"}])
    reps = [Rep("r1", "One", role="ae")]
    run = compute_statements(plan, [won("a", "r1", "2000", at(2026, 1, 5)), won("b", "r1", "20000", at(2026, 2, 5))],
                             "2026-Q1", reps=reps)
    jan, feb, mar = run.for_rep("r1")
    assert (jan.total, jan.draw_balance) == (M("1000"), M("0"))
    assert feb.total == M("2000")
    assert [(ln.kind, ln.amount) for ln in mar.lines] == [("floor", M("300"))]


def test_adjustments_are_lines_of_their_period() -> None:
    plan = make_plan(**FLAT)
    adj = Adjustment("A1", "r1", at(2026, 4, 30), M("-12.34"), "laptop damage")
    s = compute_statements(plan, [won("a", "r1", "1000", at(2026, 4, 1))], "2026-04",
                           inputs=CommissionInputs(adjustments=[adj])).statement("r1")
    assert [(ln.kind, ln.amount, ln.note, ln.event) for ln in s.lines][-1] == (
        "adjustment", M("-12.34"), "laptop damage", "adjustment:A1")
    assert s.total == M("37.66")


# ------------------------------------------------------------------------------------------------
# Money: FX and rounding
# ------------------------------------------------------------------------------------------------


def test_fx_uses_the_rate_of_the_credit_day_and_missing_rates_are_reported() -> None:
    plan = make_plan(settlement="quarter", rates={"flat": "0.10"})
    fx = [FxRate("USD", "CNY", date(2026, 4, 1), "7.10"), FxRate("USD", "CNY", date(2026, 5, 1), "7.20"),
          FxRate("CNY", "EUR", date(2026, 1, 1), "0.125")]
    deals = [won("a", "r1", "100.00", at(2026, 4, 15), cur="USD"), won("b", "r1", "100.00", at(2026, 5, 15), cur="USD"),
             won("c", "r1", "80.00", at(2026, 5, 15), cur="EUR")]
    s = compute_statements(plan, deals, "2026-Q2", inputs=CommissionInputs(fx=fx)).statement("r1")
    assert [(ln.deal_id, ln.base_amount) for ln in s.lines] == [
        ("a", M("710")), ("b", M("720")), ("c", M("640"))]  # EUR via the inverse of CNY/EUR
    assert s.lines[0].to_dict()["source_amount"] == "100.00 USD"
    with pytest.raises(IncentiveError) as ei:
        compute_statements(plan, [*deals, won("d", "r1", "5", at(2026, 3, 1), cur="USD"),
                                  won("e", "r1", "5", at(2026, 4, 2), cur="GBP")], "2026-Q2",
                           inputs=CommissionInputs(fx=fx))
    assert sorted(p.path for p in ei.value.problems) == ["deals[d]", "deals[e]"]


def test_rounding_mode_is_explicit_and_lines_add_up_to_the_total() -> None:
    deals = [won(f"d{i}", "r1", "0.25", at(2026, 4, 1 + i)) for i in range(4)]
    up = compute_statements(make_plan(settlement="quarter", rates={"flat": "0.5"}, rounding={"mode": "half_up"}),
                            deals, "2026-Q2").statement("r1")
    even = compute_statements(make_plan(settlement="quarter", rates={"flat": "0.5"}, rounding={"mode": "half_even"}),
                              deals, "2026-Q2").statement("r1")
    assert up.total == M("0.52")  # 0.125 → 0.13, four times
    assert even.total == M("0.48")  # 0.125 → 0.12
    for s in (up, even):
        assert s.total.to_minor() == sum(ln.amount_minor for ln in s.lines)


# ------------------------------------------------------------------------------------------------
# Versions, periods and recomputation
# ------------------------------------------------------------------------------------------------


def test_effective_dated_versions_apply_by_attainment_period() -> None:
    plan = make_plan(settlement="month", versions=[
        {"version": 1, "effective_from": "2026-01-01", "rates": {"flat": "0.05"}},
        {"version": 2, "effective_from": "2026-04-01", "rates": {"flat": "0.06"}}])
    run = compute_statements(plan, [won("a", "r1", "100", at(2026, 3, 31, 23)), won("b", "r1", "100", at(2026, 4, 1))],
                             "2026-03-01..2026-05-01")
    lines = [(s.period.label, ln.plan_version, ln.amount) for s in run.statements for ln in s.lines]
    assert lines == [("2026-03", 1, M("5")), ("2026-04", 2, M("6"))]
    with pytest.raises(DefinitionError) as ei:
        make_plan(versions=[{"version": 1, "effective_from": "2026-01-01", "rates": {"flat": "0.05"}},
                            {"version": 2, "effective_from": "2026-05-01", "rates": {"flat": "0.06"}}])
    assert [p.path for p in ei.value.problems] == ["versions[1].effective_from"]


def test_monthly_statements_true_up_when_a_retroactive_tier_is_reached() -> None:
    plan = make_plan(settlement="month", quota="100", rates={"mode": "retroactive", "tiers": TIERS})
    run = compute_statements(plan, [won("a", "r1", "40", at(2026, 4, 3)), won("b", "r1", "20", at(2026, 6, 3))],
                             "2026-Q2")
    apr, may, jun = run.for_rep("r1")
    assert apr.total == M("4")
    assert may.total == M("0")
    assert [(ln.kind, ln.deal_id, ln.rule, ln.amount) for ln in jun.lines] == [
        ("true_up", "a", "tier:high", M("8")), ("true_up", "a", "tier:low", M("-4")),
        ("commission", "b", "tier:high", M("4"))]
    assert apr.total + may.total + jun.total == M("12")  # 60 × 20 %


def test_a_past_period_does_not_change_when_later_events_arrive() -> None:
    plan = _clawback_plan()
    q1_deals = [won("x", "r1", "600", at(2026, 2, 1)), won("y", "r1", "700", at(2026, 3, 30))]
    before = compute_statements(plan, q1_deals, "2026-Q1").statements
    later = [q1_deals[0], reopen(q1_deals[1], at(2026, 4, 2)), won("z", "r1", "5000", at(2026, 4, 9))]
    inputs = CommissionInputs(refunds=[Refund("R1", "x", at(2026, 4, 5))])
    after = compute_statements(plan, later, "2026-Q1", inputs=inputs).statements
    assert [s.digest for s in after] == [s.digest for s in before]
    assert compute_statements(plan, later, "2026-Q2", inputs=inputs).statement("r1").lines_of("clawback")


def test_statements_round_trip_through_their_dict_form() -> None:
    plan = make_plan(settlement="quarter", quota="1000", rates={"mode": "graduated", "tiers": TIERS})
    inputs = CommissionInputs(splits=[Split("a", "r1", "0.5"), Split("a", "r2", "0.5")])
    run = compute_statements(plan, [won("a", "r1", "999.99", at(2026, 4, 3))], "2026-Q2", inputs=inputs)
    for s in run.statements:
        back = type(s).from_dict(s.to_dict())
        assert back == s
        assert back.digest == s.digest
        assert back.total == s.total


# ------------------------------------------------------------------------------------------------
# Plan files
# ------------------------------------------------------------------------------------------------


def test_plan_file_problems_are_all_reported_with_their_lines(tmp_path: Any) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(
        'key = "bad"\n'
        'currency = "CNY"\n'
        "\n"
        "[[versions]]\n"
        "version = 1\n"
        "effective_from = 2026-01-01\n"
        "colour = \"blue\"\n"
        "\n"
        "[versions.rates]\n"
        "mode = \"graduated\"\n"
        "[[versions.rates.tiers]]\n"
        'from = "0"\n'
        "rate = 0.05\n",
        encoding="utf-8",
    )
    with pytest.raises(PlanFileError) as ei:
        Plan.from_toml(f)
    e = ei.value
    found = {p.path: (p.code, e.line_of(p)) for p in e.problems}
    assert found == {"versions[0].colour": ("unknown_key", 7), "versions[0].rates.tiers[0].rate": ("float", 13)}
    assert f"{f}:13: versions[0].rates.tiers[0].rate" in str(e)


def test_plan_round_trips_through_toml_and_dict() -> None:
    from pathlib import Path

    for name in ("flat", "tiered", "manager-override"):
        p = Plan.from_toml(Path(__file__).parent.parent / "docs" / "examples" / "plans" / f"{name}.toml")
        assert Plan.from_toml(p.to_toml()) == p
        assert Plan.from_dict(p.to_dict()) == p


# ------------------------------------------------------------------------------------------------
# Stores and what-if
# ------------------------------------------------------------------------------------------------


def test_snapshots_in_a_sqlite_store_detect_changed_recomputations(tmp_path: Any) -> None:
    from salesprocess_adapters.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "pay.sqlite")
    plan = make_plan(settlement="quarter", **FLAT)
    store.save_deals([(won("a", "r1", "1000", at(2026, 4, 1)), None), (won("b", "r2", "500", at(2026, 4, 2)), None)])
    run = compute_statements(plan, store, "2026-Q2")
    assert save_statements(store, run) == 2
    assert save_statements(store, run) == 0  # identical: nothing to write
    saved = load_statement(store, "t", "2026-Q2", "r1")
    assert saved is not None
    assert saved == run.statement("r1")
    assert saved.total == M("50")
    assert {c.status for c in check_statements(store, run)} == {"same"}
    d = store.get_deal("b")
    store.save_deal(d.append(AmountChanged("b", at(2026, 5, 1), "t", EventSource.USER, M("500"), M("700"))),
                    expected_version=d.version)
    rerun = compute_statements(plan, store, "2026-Q2")
    checks = {c.rep_id: c for c in check_statements(store, rerun)}
    assert checks["r1"].status == "same"
    assert checks["r2"].status == "changed"
    assert any(ch == "total: 25.00 → 35.00" for ch in checks["r2"].changes)
    with pytest.raises(BatchConflictError):
        save_statements(store, rerun)
    assert load_statement(store, "t", "2026-Q2", "r2").total == M("25")  # type: ignore[union-attr]
    assert save_statements(store, rerun, replace=True) == 1
    store.close()


def test_saved_plan_versions_are_immutable() -> None:
    from salesprocess.store import MemoryStore

    store = MemoryStore()
    v1 = {"version": 1, "effective_from": "2026-01-01", "rates": {"flat": "0.05"}}
    save_plan(store, make_plan(versions=[v1]))
    save_plan(store, make_plan(versions=[v1, {**v1, "version": 2, "effective_from": "2026-04-01"}]))
    assert [v.version for v in load_plan(store, "t").versions] == [1, 2]
    with pytest.raises(ConflictError):
        save_plan(store, make_plan(versions=[{**v1, "rates": {"flat": "0.07"}}]))


def test_what_if_estimates_the_deal_and_the_true_up_it_causes() -> None:
    plan = make_plan(settlement="quarter", quota="100", rates={"mode": "retroactive", "tiers": TIERS})
    deals = [won("a", "r1", "40", at(2026, 4, 3))]
    w = what_if(plan, deals, "r1", M("20"), at=at(2026, 5, 1))
    assert (w.commission, w.true_up, w.estimate) == (M("4"), M("4"), M("8"))  # 20 × 20 % and a: 10 % → 20 %
    assert (w.attainment_before, w.attainment_after) == (Decimal("0.4"), Decimal("0.6"))
    assert (w.tier_before, w.tier_after) == ("tier:low", "tier:high")
    assert w.effective_rate == Decimal("0.4")
    assert all(ln.deal_id == "what-if" for ln in w.lines)


def test_problems_can_be_collected_instead_of_raised() -> None:
    plan = make_plan(**FLAT)
    deals = [won("ok", "r1", "100", at(2026, 4, 1)), won("none", "r1", None, at(2026, 4, 1)),
             won("orphan", None, "100", at(2026, 4, 1))]
    with pytest.raises(IncentiveError) as ei:
        compute_statements(plan, deals, "2026-04")
    assert {p.code for p in ei.value.problems} == {"no_amount", "no_owner"}
    run = compute_statements(plan, deals, "2026-04", strict=False)
    assert run.statement("r1").total == M("5")
    assert len(run.problems) == 2


def test_eligibility_gives_every_eligible_rep_a_statement() -> None:
    plan = make_plan(eligible={"roles": ["ae"]}, **FLAT)
    reps = [Rep("r1", "One", role="ae"), Rep("r2", "Two", role="ae"), Rep("m", "Boss", role="manager")]
    run = compute_statements(plan, [won("a", "r1", "100", at(2026, 4, 1)), won("b", "m", "100", at(2026, 4, 1))],
                             "2026-04", reps=reps)
    assert totals(run) == {("r1", "2026-04"): M("5"), ("r2", "2026-04"): M("0")}
    assert run.statement("r1").rep_name == "One"


def test_quota_inputs_override_the_version_default_and_missing_quotas_are_reported() -> None:
    plan = make_plan(settlement="quarter", rates={"mode": "retroactive", "tiers": TIERS})
    deals = [won("a", "r1", "60", at(2026, 4, 3)), won("b", "r2", "60", at(2026, 4, 3))]
    with pytest.raises(IncentiveError) as ei:
        compute_statements(plan, deals, "2026-Q2", inputs=CommissionInputs(quotas=[Quota("r1", "2026-Q2", M("100"))]))
    assert [p.code for p in ei.value.problems] == ["missing_quota"]
    run = compute_statements(plan, deals, "2026-Q2", inputs=CommissionInputs(
        quotas=[Quota("r1", "2026-Q2", M("100")), Quota("r2", "2026-Q2", M("200"))]))
    assert totals(run) == {("r1", "2026-Q2"): M("12"), ("r2", "2026-Q2"): M("6")}


def test_inputs_read_from_json_report_every_bad_record() -> None:
    good = CommissionInputs(
        invoices=[Invoice("I1", "a", at(2026, 4, 1), M("10"))], payments=[Payment("P1", "I1", at(2026, 4, 2), M("5"))],
        refunds=[Refund("R1", "a", at(2026, 4, 3))], splits=[Split("a", "r1", "1")],
        quotas=[Quota("r1", "2026-Q2", M("100"))], fx=[FxRate("USD", "CNY", date(2026, 1, 1), "7.1")],
        org=[ReportingLine("r1", "m1", date(2026, 1, 1))])
    back = CommissionInputs.from_dict(good.to_dict())
    assert back.to_dict() == good.to_dict()
    with pytest.raises(IncentiveError) as ei:
        CommissionInputs.from_dict({"payments": [{"id": "P", "invoice_id": "I", "at": "2026-04-01", "amount": "5 CNY"}],
                                    "refunds": [{"id": "R", "deal_id": "a", "at": "2026-04-01T00:00:00+08:00",
                                                 "amount": 5}],
                                    "bogus": []})
    assert {p.path for p in ei.value.problems} == {"bogus", "payments[0].at", "refunds[0].amount"}


def test_the_garbage_collector_is_restored_after_a_run() -> None:
    import gc

    plan = make_plan(**FLAT)
    deals = [won("a", "r1", "100", at(2026, 4, 1))]
    assert gc.isenabled()
    compute_statements(plan, deals, "2026-04")
    assert gc.isenabled()
    gc.disable()
    try:
        compute_statements(plan, deals, "2026-04")
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(IncentiveError):
        compute_statements(plan, [won("x", "r1", None, at(2026, 4, 1))], "2026-04")
    assert gc.isenabled()


def test_quotas_come_from_rep_goals() -> None:
    from salesprocess.goals import Goal, GoalScope
    from salesprocess.periods import Period

    q = Quota.from_goal(Goal("g", "won_revenue", GoalScope("rep", "r1"), M("300000"), Period.parse("2026-Q2")))
    assert (q.rep_id, q.period.label, q.amount) == ("r1", "2026-Q2", M("300000"))
    with pytest.raises(DomainError):
        Quota.from_goal(Goal("t", "won_revenue", GoalScope("team", "t1"), M("1"), Period.parse("2026-Q2")))
