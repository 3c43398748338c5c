"""Customer lifecycle: stage moves with history, promotion from deals, purchases, preferences,
RFM, next-best products, renewal and upsell deals (also created by automation rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesprocess import (
    Account,
    Deal,
    DealStatus,
    MemoryStore,
    Money,
    Product,
    SalesProcess,
    hookimpl,
)
from salesprocess import lifecycle as lc
from salesprocess.automation import Action, Rule, RuleEngine, RuleSet, Trigger
from salesprocess.errors import CurrencyMismatchError, DomainError

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _won(i: str, acc: str, products: list[str], days_ago: int, amount: str = "1000", cur: str = "CNY") -> Deal:
    return Deal.create(i, process="b2b", stage="won", status=DealStatus.WON, at=T0 - timedelta(days=days_ago),
                       actor="amy", account_id=acc, product_ids=products, amount=Money(amount, cur),
                       owner_id="amy")


def test_stage_moves_history_and_hook() -> None:
    sp = SalesProcess()
    seen: list[str] = []

    class L:
        @hookimpl
        def salesprocess_lifecycle_changed(self, change: Any, store: Any) -> None:
            seen.append(change.stage.value)

    sp.register(L())
    store = MemoryStore()
    sp.set_lifecycle_stage(store, "a1", "lead", at=T0)
    sp.set_lifecycle_stage(store, "a1", "sql", at=T0 + timedelta(days=1))   # skipping MQL is allowed
    with pytest.raises(DomainError):
        sp.set_lifecycle_stage(store, "a1", "mql", at=T0 + timedelta(days=2))
    with pytest.raises(DomainError):
        sp.set_lifecycle_stage(store, "a1", "churned", at=T0 + timedelta(days=2))
    assert sp.set_lifecycle_stage(store, "a1", "sql", at=T0 + timedelta(days=2)) is None
    life = lc.lifecycle(store, "a1")
    assert life.stage is lc.LifecycleStage.SQL
    assert life.stage_at(T0) is lc.LifecycleStage.LEAD
    assert seen == ["lead", "sql"]
    assert lc.LifecycleStage.CHURNED in lc.allowed_moves(lc.LifecycleStage.ADVOCATE)
    assert lc.allowed_moves(lc.LifecycleStage.CHURNED) == (lc.LifecycleStage.OPPORTUNITY, lc.LifecycleStage.CUSTOMER)


def test_sync_promotes_from_deals_and_never_demotes(tmp_path: Path) -> None:
    sp = SalesProcess()
    store = sp.open_store(tmp_path / "l.sqlite")
    b2b = sp.process("b2b")
    store.save_deal(b2b.open_deal("O-1", at=T0, actor="amy", account_id="a-open"), expected_version=None)
    store.save_deal(_won("W-1", "a-won", ["crm"], 1), expected_version=None)
    sp.set_lifecycle_stage(store, "a-adv", "advocate", at=T0 - timedelta(days=5))
    store.save_deal(_won("W-2", "a-adv", ["crm"], 1), expected_version=None)
    changes = sp.sync_lifecycle(store, asof=T0)
    assert {(c.account_id, c.stage.value) for c in changes} == {("a-open", "opportunity"), ("a-won", "customer")}
    assert lc.lifecycle(store, "a-adv").stage is lc.LifecycleStage.ADVOCATE
    assert sp.sync_lifecycle(store, asof=T0 + timedelta(hours=1)) == []
    store.close()


def test_rfm_scores_rank_customers() -> None:
    deals = [_won("1", "a", ["x"], 5, "900"), _won("2", "a", ["x"], 50, "900"), _won("3", "a", ["y"], 90, "900"),
             _won("4", "b", ["x"], 400, "10"), _won("5", "c", ["x"], 20, "300")]
    got = {s.account_id: s for s in lc.rfm(deals, asof=T0)}
    assert (got["a"].recency_days, got["a"].frequency, got["a"].monetary) == (5, 3, Money("2700", "CNY"))
    assert got["a"].r > got["c"].r > got["b"].r
    assert got["a"].segment == "champions"
    assert got["b"].segment == "hibernating"
    with pytest.raises(CurrencyMismatchError):
        lc.rfm([*deals, _won("6", "d", ["x"], 3, "5", "USD")], asof=T0)
    assert [s.account_id for s in lc.rfm([*deals, _won("6", "d", ["x"], 3, "5", "USD")], asof=T0, currency="USD")] == ["d"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 400), st.integers(1, 9999)), min_size=1, max_size=20))
def test_rfm_scores_are_monotone(rows: list[tuple[str, int, int]]) -> None:
    deals = [_won(str(i), a, ["x"], d, str(m)) for i, (a, d, m) in enumerate(rows)]
    scores = lc.rfm(deals, asof=T0)
    assert {s.account_id for s in scores} == {a for a, _, _ in rows}
    for s in scores:
        assert 1 <= s.r <= 5
        assert 1 <= s.f <= 5
        assert 1 <= s.m <= 5
        assert s.segment == lc.rfm_segment(s.r, s.f, s.m)
    for x in scores:
        for y in scores:
            if x.recency_days < y.recency_days:
                assert x.r >= y.r
            if x.monetary.amount > y.monetary.amount:
                assert x.m >= y.m


def test_next_best_products_and_preferences() -> None:
    deals = [_won("1", "a1", ["crm", "bi"], 10), _won("2", "a2", ["crm", "bi", "chat"], 40), _won("3", "a3", ["crm"], 200)]
    got = lc.next_best_products(deals, "a3", asof=T0)
    assert [(s.product_id, s.score) for s in got] == [("bi", Decimal("0.8333")), ("chat", Decimal("0.3333"))]
    assert got[0].because == ("a1", "a2")
    accs = [Account("a1", "A1", industry="retail"), Account("new", "N", industry="retail")]
    assert [s.product_id for s in lc.next_best_products(deals, "new", asof=T0, accounts=accs)] == ["bi", "crm"]
    prefs = lc.preferences("a2", deals, asof=T0, products=[Product("chat", "Chat", family="comms")])
    assert prefs.purchases == 1
    assert prefs.families == ("comms",)
    assert prefs.average_amount == Money("1000.00", "CNY")


def test_renewal_and_upsell_deals_from_rules(tmp_path: Path) -> None:
    sp = SalesProcess()
    store = sp.open_store(tmp_path / "r.sqlite")
    b2b = sp.process("b2b")
    store.save_process(b2b)
    store.put(Account("a3", "A3", owner_id="amy"), Product("bi", "BI", list_price=Money("5000", "CNY")))
    for d in (_won("1", "a1", ["crm", "bi"], 10), _won("2", "a3", ["crm"], 200)):
        store.save_deal(d, expected_version=None)
    rules = RuleSet((
        Rule("renew", Trigger("anniversary", {"of": "customer_since", "offset_days": -60}),
             [Action("create_deal", {"template": "upsell"})]),
        Rule("won", Trigger("stage_entered", {"stage": "won"}), [Action("create_deal", {"template": "renewal"})]),
    ))
    report = sp.run_rules(RuleEngine(rules), store, T0 + timedelta(days=200))
    made = {d.custom.get("kind"): d for d in store.deals() if d.custom.get("kind")}
    assert made["renewal"].amount == Money("1000", "CNY")
    assert made["renewal"].is_open
    assert made["upsell"].product_ids == ("bi",)
    assert made["upsell"].amount == Money("5000", "CNY")
    assert made["upsell"].account_id == "a3"
    assert len([f for f in report.fired if f.rule == "won"]) == 2
    renewals = [d for d in store.deals() if d.custom.get("kind") == "renewal"]
    assert len(renewals) == 2
    assert sp.run_rules(RuleEngine(rules), store, T0 + timedelta(days=201)).fired == ()
    assert lc.renewals_due([_won("1", "a1", ["crm"], 300)], asof=T0, within_days=90)[0][1] == (T0 - timedelta(days=300)).date().replace(year=2026)
    store.close()
