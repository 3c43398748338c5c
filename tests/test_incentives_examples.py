"""The three example plans shipped in docs/examples/plans load, match the how-to, and produce the
statements the how-to documents."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from salesprocess.incentives import CommissionInputs, Plan, Refund, Split, compute_statements
from salesprocess.model import Deal, DealWon, EventSource, Rep
from salesprocess.money import Money
from salesprocess.store import MemoryStore

ROOT = Path(__file__).resolve().parent.parent
PLANS = ROOT / "docs" / "examples" / "plans"
HOWTO = ROOT / "docs" / "how-to" / "commissions.md"
SH = ZoneInfo("Asia/Shanghai")


def _won(deal_id: str, owner: str, amount: str, month: int, day: int, products: tuple[str, ...] = ()) -> Deal:
    at = datetime(2026, month, day, 15, 0, tzinfo=SH)
    d = Deal.create(deal_id, process="b2b", stage="negotiation", at=at - timedelta(days=30), actor=owner,
                    amount=Money(amount, "CNY"), owner_id=owner, product_ids=products)
    return d.append(DealWon(deal_id, at, owner, EventSource.USER, "negotiation", "won"))


@pytest.fixture
def company() -> tuple[MemoryStore, CommissionInputs]:
    store = MemoryStore()
    store.put(Rep("li", "Li Lei", role="ae", manager_id="zhang"), Rep("han", "Han Meimei", role="ae", manager_id="zhang"),
              Rep("rep-new", "Wang Fang", role="ae", manager_id="zhang"), Rep("zhang", "Zhang Wei", role="manager"))
    store.save_deals([(d, None) for d in [
        _won("D1", "li", "100000", 4, 3), _won("D2", "li", "80000", 5, 6, ("prod-cloud",)),
        _won("D3", "han", "200000", 4, 20), _won("D4", "li", "250000", 6, 18),
        _won("D5", "han", "30000", 6, 21, ("prod-hardware",))]])
    inputs = CommissionInputs(splits=[Split("D2", "li", "0.6"), Split("D2", "han", "0.4")],
                              refunds=[Refund("R1", "D3", datetime(2026, 6, 1, 10, tzinfo=SH), Money("50000", "CNY"))])
    return store, inputs


@pytest.mark.parametrize("name", ["flat", "tiered", "manager-override"])
def test_each_example_plan_is_shown_verbatim_in_the_how_to(name: str) -> None:
    text = (PLANS / f"{name}.toml").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", HOWTO.read_text(encoding="utf-8"), re.S)
    assert text in blocks
    plan = Plan.from_toml(PLANS / f"{name}.toml")
    assert Plan.from_dict(plan.to_dict()) == plan


def _totals(plan: str, company: tuple[MemoryStore, CommissionInputs]) -> dict[tuple[str, str], str]:
    store, inputs = company
    run = compute_statements(Plan.from_toml(PLANS / f"{plan}.toml"), store, "2026-Q2", inputs=inputs)
    for s in run.statements:
        assert s.total.to_minor() == sum(ln.amount_minor for ln in s.lines)
    return {(s.rep_id, s.period.label): str(s.total.amount) for s in run.statements}


def test_flat_plan_documented_statements(company: tuple[MemoryStore, CommissionInputs]) -> None:
    assert _totals("flat", company) == {
        ("han", "2026-04"): "10000.00", ("han", "2026-05"): "1600.00", ("han", "2026-06"): "1500.00",
        ("li", "2026-04"): "5000.00", ("li", "2026-05"): "2400.00", ("li", "2026-06"): "12500.00",
        ("rep-new", "2026-04"): "0.00", ("rep-new", "2026-05"): "0.00", ("rep-new", "2026-06"): "0.00",
    }


def test_tiered_plan_documented_statements(company: tuple[MemoryStore, CommissionInputs]) -> None:
    assert _totals("tiered", company) == {
        ("han", "2026-Q2"): "8545.00", ("li", "2026-Q2"): "22920.00", ("rep-new", "2026-Q2"): "6000.00"}
    store, inputs = company
    li = compute_statements(Plan.from_toml(PLANS / "tiered.toml"), store, "2026-Q2", inputs=inputs).statement("li")
    # D4 crosses three bands: 2,000 at 4 %, 150,000 at 6 % and 98,000 at 9 % (accelerated)
    assert [(ln.rule, str(ln.amount.amount)) for ln in li.lines if ln.deal_id == "D4"] == [
        ("tier:base", "80.00"), ("tier:target", "9000.00"), ("tier:target+accelerator:above-quota", "8820.00")]


def test_manager_override_plan_documented_statements(company: tuple[MemoryStore, CommissionInputs]) -> None:
    assert _totals("manager-override", company) == {("zhang", "2026-Q2"): "3050.00"}
