"""Competitors: encounters saved with the deal, head-to-head by segment, loss reasons, the
market-report section."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesprocess import Account, Deal, Money, Process, SalesProcess
from salesprocess import competitors as comp
from salesprocess.errors import CurrencyMismatchError, DomainError

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
P = Process.from_dict({"key": "p", "name": "P", "flow": {"allow_skip": True}, "stages": [
    {"key": "open", "name": "Open", "probability": "0.3"},
    {"key": "won", "name": "Won", "kind": "won"}, {"key": "lost", "name": "Lost", "kind": "lost"}]})
ACCOUNTS = [Account("a1", "A1", industry="retail", region="east", size_band="smb"),
            Account("a2", "A2", industry="energy", region="west", size_band="enterprise")]


def _deal(i: str, acc: str, outcome: str | None, days: int = 20, amount: str = "1000",
          names: tuple[str, ...] = ("Globex",), reason: str | None = None) -> Deal:
    d = P.open_deal(i, at=T0, actor="amy", account_id=acc, amount=Money(amount, "CNY"), competitors=names)
    if outcome:
        d = P.advance(d, outcome, at=T0 + timedelta(days=days), actor="amy", reason=reason)
    return d


def test_add_to_deal_records_the_encounter_and_the_name(tmp_path: Path) -> None:
    store = SalesProcess().open_store(tmp_path / "c.sqlite")
    store.save_deal(_deal("D-1", "a1", None, names=()), expected_version=None)
    e = comp.DealCompetitor("D-1", "Globex", ["cheap"], ["slow"], Money("800", "CNY"))
    saved = comp.add_to_deal(store, e, at=T0 + timedelta(days=1), actor="amy")
    assert saved.competitors == ("Globex",)
    assert saved.version == 2
    comp.add_to_deal(store, e, at=T0 + timedelta(days=2), actor="amy")  # same competitor again
    assert store.get_deal("D-1").version == 2
    assert comp.deal_competitors(store, "D-1") == [e]
    won = P.advance(store.get_deal("D-1"), "won", at=T0 + timedelta(days=3), actor="amy")
    store.save_deal(won, expected_version=2)
    with pytest.raises(DomainError):
        comp.add_to_deal(store, comp.DealCompetitor("D-1", "Initech", won=True), at=T0 + timedelta(days=4), actor="amy")
    assert store.get_deal("D-1").competitors == ("Globex",)  # nothing half-written
    store.close()


def test_head_to_head_by_segment_and_loss_reasons() -> None:
    deals = [_deal("1", "a1", "won", 10, "1000"), _deal("2", "a1", "lost", reason="price"),
             _deal("3", "a2", "lost", reason="features", names=("Globex", "Hooli")),
             _deal("4", "a2", None), _deal("5", "a2", "won", 30, "500", names=())]
    entries = [comp.DealCompetitor("2", "Globex", won=True, quoted_price=Money("700", "CNY")),
               comp.DealCompetitor("1", "Globex", quoted_price=Money("900", "CNY"))]
    rows = {(r.competitor, r.segment[1]): r for r in comp.head_to_head(deals, entries, accounts=ACCOUNTS, by="industry")}
    retail = rows[("Globex", "retail")]
    assert (retail.deals, retail.won, retail.lost, retail.lost_to, retail.win_rate) == (2, 1, 1, 1, Decimal("0.5"))
    assert retail.won_revenue == Money("1000", "CNY")
    assert retail.cycle_days == Decimal("10.0")
    assert retail.avg_quote == Money("800.00", "CNY")
    energy = rows[("Globex", "energy")]
    assert (energy.deals, energy.open, energy.lost, energy.lost_to) == (2, 1, 1, 0)
    assert rows[("(none)", "energy")].won == 1
    reasons = {(r.competitor, r.reason): r.deals for r in comp.loss_reasons(deals, entries)}
    # deal 2 was taken by Globex; deal 3 by nobody known: it counts against both present
    assert reasons == {("Globex", "price"): 1, ("Globex", "features"): 1, ("Hooli", "features"): 1}
    asof = comp.head_to_head(deals, entries, asof=T0 + timedelta(days=15))
    (globex,) = [r for r in asof if r.competitor == "Globex"]
    assert (globex.won, globex.lost, globex.open) == (1, 0, 3)
    with pytest.raises(CurrencyMismatchError):
        comp.head_to_head([*deals, _deal("6", "a1", "won", amount="5").with_amount(
            Money("5", "USD"), at=T0 + timedelta(days=40), actor="x")])


def test_market_report_section(tmp_path: Path) -> None:
    store = SalesProcess().open_store(tmp_path / "m.sqlite")
    store.put(*ACCOUNTS)
    for d in (_deal("1", "a1", "won"), _deal("2", "a2", "lost", reason="price")):
        store.save_deal(d, expected_version=None)
    rep = comp.market_report(store, dimensions=["region"])
    md = rep.to_markdown()
    assert md.startswith("## Competitors")
    assert "### By region" in md
    assert "| east | Globex |" in md
    assert {r.segment for r in rep.rows} == {("all", "all"), ("region", "east"), ("region", "west")}
    assert rep.as_dict()["loss_reasons"] == [{"competitor": "Globex", "dimension": "all", "segment": "all",
                                              "reason": "price", "deals": 1}]
    store.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a1", "a2"]), st.sampled_from([None, "won", "lost"]),
                          st.sets(st.sampled_from(["G", "H", "I"]), max_size=2)), max_size=12))
def test_segments_add_up_to_the_whole_market(specs: list[tuple[str, str | None, set[str]]]) -> None:
    deals = [_deal(str(i), a, o, names=tuple(sorted(n))) for i, (a, o, n) in enumerate(specs)]
    whole = {r.competitor: r for r in comp.head_to_head(deals, accounts=ACCOUNTS)}
    for by in comp.SEGMENTS:
        parts = comp.head_to_head(deals, accounts=ACCOUNTS, by=by)
        for name, w in whole.items():
            mine = [r for r in parts if r.competitor == name]
            assert sum(r.deals for r in mine) == w.deals
            assert sum(r.won for r in mine) == w.won
            assert sum(r.lost for r in mine) == w.lost
    for w in whole.values():
        assert w.deals == w.open + w.won + w.lost
