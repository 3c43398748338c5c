"""Forecasts: probability precedence, methods, roll-ups and adjustments, history learners, as-of
safety and backtests."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _risk_fixtures import MINI, D, at, company, dataset, make, usd
from salesprocess.errors import DomainError
from salesprocess.forecast import (
    ForecastAdjustment,
    Level,
    Method,
    Scope,
    TimingBasis,
    backtest,
    forecast,
    learn_close_timing,
    learn_win_rates,
    resolve_probability,
)
from salesprocess.forecast.history import _Cif
from salesprocess.kpi import Dataset, Target
from salesprocess.model import EventSource, replay_until
from salesprocess.money import Money, Rate
from salesprocess.periods import Period
from salesprocess.process import Process

Q1 = Period.parse("2026-Q1")


# --- probability precedence --------------------------------------------------------------------


def test_manual_probability_wins_over_stage_default_under_keep_manual() -> None:
    d = make("d1", stage="b").with_probability("0.9", at=at(1), actor="r1")
    assert resolve_probability(d, MINI) == (Rate("0.9"), "user")
    # a model probability does not override a kept manual one
    assert resolve_probability(d, MINI, model=Rate("0.1")) == (Rate("0.9"), "user")


def test_rule_probability_gives_way_to_the_model_then_the_stage_default() -> None:
    d = make("d1", stage="b").with_probability("0.9", at=at(1), actor="bot",
                                                source=EventSource.RULE)
    assert resolve_probability(d, MINI) == (Rate("0.5"), "stage_default")
    assert resolve_probability(d, MINI, model=Rate("0.3"), model_source="historical:process") == (
        Rate("0.3"), "historical:process")
    keep_any = Process.from_dict({**MINI.to_dict(), "probability_policy": "keep_any"})
    assert resolve_probability(d, keep_any) == (Rate("0.9"), "rule")


def test_stage_default_policy_ignores_manual_probabilities() -> None:
    strict = Process.from_dict({**MINI.to_dict(), "probability_policy": "stage_default"})
    d = make("d1", stage="c").with_probability("0.1", at=at(1), actor="r1")
    assert resolve_probability(d, strict) == (Rate("0.8"), "stage_default")


# --- weighted and categories ---------------------------------------------------------------------


def _pipeline() -> Dataset:
    deals = [
        make("w1", owner="r1", stage="b", amount="1000", close_date=date(2026, 2, 10)),
        make("w2", owner="r2", stage="c", amount="2000", close_date=date(2026, 3, 1)),
        make("w3", owner="r3", stage="a", amount="500", close_date=date(2026, 3, 30)),
        # closes next quarter: not in Q1
        make("w4", owner="r3", stage="c", amount="9999", close_date=date(2026, 4, 2)),
        # already won in Q1
        make("w5", owner="r1", stage="c", amount="700", moves=[("won", 20)]),
        # won in the previous quarter: not counted
        make("w6", owner="r1", created=-60, stage="c", amount="123", moves=[("won", -30)]),
        # no amount: left out and counted as unpriced
        make("w7", owner="r2", stage="b", amount=None, close_date=date(2026, 2, 1)),
    ]
    return dataset(deals)


def test_weighted_forecast_adds_closed_and_weighted_open_amounts() -> None:
    f = forecast(_pipeline(), Q1, asof=at(30), method="weighted")
    comp = f.company
    assert comp.values["closed"] == usd("700.00")
    # 1000×0.5 + 2000×0.8 + 500×0.2
    assert comp.values["weighted"] == usd("2200.00")
    assert comp.values["open_in_period"] == usd("3500.00")
    assert comp.values["forecast"] == usd("2900.00")
    assert f.unpriced == 1
    assert {ln.deal_id for ln in f.lines if ln.share == Rate(1)} == {"w1", "w2", "w3"}


def test_categories_forecast_sums_by_category_and_cumulates() -> None:
    ds = _pipeline()
    ds.deals[0] = ds.deals[0].with_forecast_category("commit", at=at(2), actor="r1")
    f = forecast(ds, Q1, asof=at(30), method="categories")
    v = f.company.values
    assert (v["commit"], v["best_case"], v["pipeline"]) == (usd("3000.00"), usd("0.00"), usd("500.00"))
    assert v["forecast_commit"] == usd("3700.00")
    assert v["forecast_best_case"] == usd("3700.00")
    assert v["forecast_pipeline"] == usd("4200.00")
    assert f.headline == "forecast_commit"


def test_roll_up_reps_into_teams_into_company() -> None:
    f = forecast(_pipeline(), Q1, asof=at(30), method="weighted")
    east = f.row("team", "east").values["forecast"]
    west = f.row("team", "west").values["forecast"]
    reps = sum((r.values["forecast"] for r in f.rows if r.level == "rep"), usd(0))
    assert east + west == f.company.values["forecast"] == reps
    assert f.row("team", "sales").values["forecast"] == f.company.values["forecast"]
    assert f.row("rep", "r1").parent == "east"
    # r1: 1000×0.5 + 700 won; r2: 2000×0.8 (its unpriced deal left out); r3: 500×0.2
    assert (east, west) == (usd("2800.00"), usd("100.00"))


def test_adjustments_show_beside_raw_values_and_roll_up() -> None:
    ds = _pipeline()
    adj = [
        ForecastAdjustment("a1", Scope("rep", "r1"), Q1, "forecast", "m1", at(25), usd(1200),
                           usd(1500), "r1 expects an upsell"),
        ForecastAdjustment("a2", Scope("rep", "r1"), Q1, "forecast", "m1", at(26), usd(1500),
                           usd(1400), "half of the upsell"),
        ForecastAdjustment("late", Scope("team", "west"), Q1, "forecast", "m2", at(40), usd(100),
                           usd(0), "after asof: ignored"),
    ]
    f = forecast(ds, Q1, asof=at(30), method="weighted", adjustments=adj)
    r1 = f.row("rep", "r1")
    assert r1.values["forecast"] == usd("1200.00")
    assert r1.adjusted["forecast"] == usd("1400")
    assert [a.id for a in r1.adjustments] == ["a1", "a2"]
    east = f.row("team", "east")
    assert east.adjusted["forecast"] == usd("1400") + f.row("rep", "r2").values["forecast"]
    assert f.company.adjusted["forecast"] == east.adjusted["forecast"] + f.row("team", "west").values["forecast"]
    assert f.row("team", "west").adjusted["forecast"] == f.row("team", "west").values["forecast"]
    # a team's own adjustment overrides what its reps roll up to
    adj.append(ForecastAdjustment("a3", Scope("team", "east"), Q1, "forecast", "vp", at(28),
                                  usd(3000), usd(2500), "cautious"))
    f2 = forecast(ds, Q1, asof=at(30), method="weighted", adjustments=adj)
    assert f2.row("team", "east").adjusted["forecast"] == usd("2500")
    assert f2.company.adjusted["forecast"] == usd("2500") + f2.row("team", "west").values["forecast"]


def test_adjustment_needs_a_reason_and_a_person() -> None:
    with pytest.raises(DomainError, match="reason"):
        ForecastAdjustment("x", Scope("company"), Q1, "forecast", "vp", at(1), usd(1), usd(2), " ")
    with pytest.raises(DomainError, match="by"):
        ForecastAdjustment("x", Scope("company"), Q1, "forecast", "", at(1), usd(1), usd(2), "why")


def test_mixed_currencies_must_be_chosen() -> None:
    ds = dataset([make("u", amount="10"),
                  MINI.open_deal("e", at=at(0), actor="t", amount=Money("5", "EUR"), owner_id="r1")])
    with pytest.raises(DomainError, match="EUR, USD"):
        forecast(ds, Q1, asof=at(1))
    f = forecast(ds, Q1, asof=at(1), currency="EUR")
    assert f.currency == "EUR"
    assert [ln.deal_id for ln in f.lines] == ["e"]


# --- history ------------------------------------------------------------------------------------


def test_win_rates_fall_back_from_segment_to_process_to_stage_default() -> None:
    deals = [make(f"h{i}", owner="r1" if i < 6 else "r3", created=-100, stage="b",
                  moves=[("won" if i % 3 else "lost", -50)]) for i in range(9)]
    open_deal = make("o", owner="r1", created=0, stage="b")
    view = dataset([*deals, open_deal]).view(at(1))
    seg = learn_win_rates(view, segment="owner", min_sample=5)
    wr = seg.lookup(open_deal, view)
    assert wr.level is Level.SEGMENT
    assert (wr.wins, wr.closed) == (4, 6)  # r1's deals h0..h5: h0, h3 lost
    assert wr.rate == Rate("0.6667")
    proc = learn_win_rates(view, min_sample=8)
    wr2 = proc.lookup(open_deal, view)
    assert wr2.level is Level.PROCESS
    assert wr2.closed >= 8
    none = learn_win_rates(view, min_sample=50)
    wr3 = none.lookup(open_deal, view)
    assert wr3.level is Level.STAGE_DEFAULT
    assert wr3.rate == Rate("0.5")
    assert "not enough history" in wr3.explain()


def test_competing_risks_estimate_matches_counts_without_censoring() -> None:
    obs = [(5, 1), (7, 0), (9, 1), (12, 1), (20, 0)]
    cif = _Cif(obs)
    assert cif.rate(0)[0] == D("0.6")  # 3 of 5, nothing censored
    assert cif.rate(10)[0] == D("0.5")  # among the two still going at day 10: one win
    # censoring: an open deal leaves the risk set without counting as a loss
    cif2 = _Cif([*obs, (3, -1)])
    assert cif2.rate(0)[0] == D("0.6")
    assert cif2.at_risk(0) == 6


def test_close_timing_counts_only_the_share_inside_the_period() -> None:
    # won deals entered stage b and won 10, 20, 30 ... 100 days later
    won = [make(f"t{i}", created=-200 - i, stage="b", moves=[("won", -200 - i + 10 * (i + 1))])
           for i in range(10)]
    d = make("now", created=0, stage="b")
    view = dataset([*won, d]).view(at(0))
    timing = learn_close_timing(view, min_sample=5)
    assert timing.remaining_days("mini", "b") == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    p = Period(at(0).date(), at(45).date())  # remaining days 0..44: 10, 20, 30, 40
    share = timing.share_in(d, p, at(0))
    assert share.basis is TimingBasis.REMAINING
    assert share.share == Rate("0.4")
    assert share.sample == 10


def test_slip_history_moves_close_dates() -> None:
    # won deals whose close date at stage entry was day +10 and that closed 30 days later than that
    won = []
    for i in range(6):
        w = make(f"s{i}", created=-300 - i, stage="c", close_date=at(-290 - i).date(),
                 moves=[("won", -260 - i)])
        won.append(w)
    d = make("late", created=0, stage="c", close_date=at(10).date())
    view = dataset([*won, d]).view(at(0))
    timing = learn_close_timing(view, min_sample=5)
    assert set(timing.slip_days("mini", "c")) == {30}
    # a close date on day 10 slips to day 40: inside [day 30, day 50), not inside [day 0, day 30)
    assert timing.share_in(d, Period(at(30).date(), at(50).date()), at(0)).share == Rate(1)
    early = timing.share_in(d, Period(at(0).date(), at(30).date()), at(0))
    assert (early.share, early.basis) == (Rate(0), TimingBasis.SLIP)


# --- Monte Carlo in a forecast, targets ------------------------------------------------------------


def test_montecarlo_forecast_reports_percentiles_and_target_probability() -> None:
    ds = company()
    asof = datetime(2025, 7, 1, tzinfo=at(0).tzinfo)
    period = Period.parse("2025-Q3")
    tgt = Target(period, usd("100000"), metric="won_revenue")
    f = forecast(ds, period, asof=asof, method="montecarlo", trials=400, seed=3, targets=[tgt],
                 levels=("company", "team"))
    comp = f.company
    sim = comp.simulation
    assert sim is not None
    assert comp.values["p10"] <= comp.values["p50"] <= comp.values["p90"]
    assert comp.target == usd("100000")
    assert sim.p_target is not None
    assert Rate(0) <= sim.p_target <= Rate(1)
    again = forecast(ds, period, asof=asof, method="montecarlo", trials=400, seed=3, targets=[tgt],
                     levels=("company", "team"))
    assert again.company.values == comp.values
    # historical expected equals the analytic Monte Carlo expectation
    hist = forecast(ds, period, asof=asof, method="historical", levels=("company",))
    assert hist.company.values["forecast"] == sim.expected


# --- as of: no later event is used ------------------------------------------------------------


def _future_events(draw: st.DrawFn, deal, asof: datetime):  # type: ignore[no-untyped-def]
    d = deal
    t = max(asof, d.updated_at) + timedelta(minutes=1)
    for _ in range(draw(st.integers(0, 3))):
        t += timedelta(days=draw(st.integers(0, 40)))
        kind = draw(st.sampled_from(["amount", "close", "stage", "win", "lose", "prob"]))
        if d.is_closed:
            break
        if kind == "amount":
            d = d.with_amount(usd(draw(st.integers(1, 5000))), at=t, actor="x")
        elif kind == "close":
            d = d.with_close_date(t.date() + timedelta(days=draw(st.integers(0, 90))), at=t, actor="x")
        elif kind == "prob":
            d = d.with_probability(Rate(draw(st.sampled_from(["0.1", "0.9"]))), at=t, actor="x")
        elif kind == "stage":
            nxt = {"a": "b", "b": "c", "c": "a"}[d.stage]
            d = MINI.advance(d, nxt, at=t, actor="x")
        elif kind == "win":
            d = MINI.advance(d, "won", at=t, actor="x")
        else:
            d = d.with_details(lost_reason="price", at=t, actor="x")
            d = MINI.advance(d, "lost", at=t, actor="x", reason="price")
    return d


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), method=st.sampled_from(list(Method)))
def test_appending_future_events_never_changes_an_asof_forecast(data: st.DataObject, method: Method) -> None:
    base = _pipeline().deals + [
        make(f"hist{i}", created=-120 - i, stage="b", close_date=at(-100).date(),
             moves=[("won" if i % 2 else "lost", -90 + i)]) for i in range(6)
    ]
    asof = at(30)
    before = forecast(dataset(base), Q1, asof=asof, method=method, min_sample=2, trials=64)
    later = [_future_events(data.draw, d, asof) for d in base]
    if data.draw(st.booleans()):  # a deal created after the instant
        later.append(make("future", created=31, stage="c", close_date=at(40).date()))
    after = forecast(dataset(later), Q1, asof=asof, method=method, min_sample=2, trials=64)
    assert after.to_json_obj() == before.to_json_obj()


def test_backtest_forecasts_only_from_the_past() -> None:
    ds = company()
    periods = ["2025-Q2", "2025-Q3"]
    bt = backtest(ds, periods, methods=["weighted", "historical"], trials=100)
    assert [r.period.label for r in bt.rows] == ["2025-Q2", "2025-Q2", "2025-Q3", "2025-Q3"]
    for row in bt.rows:
        # the same forecast from a dataset cut at the instant: every deal replayed up to it
        cut = [x for x in (replay_until(d.events, row.asof) for d in ds.deals) if x is not None]
        truncated = Dataset(cut, reps=ds.reps.values(), teams=ds.teams.values(),
                            accounts=ds.accounts.values(), products=ds.products.values(),
                            activities=ds.activities, processes=ds.processes.values())
        f = forecast(truncated, row.period, asof=row.asof, method=row.method, levels=("company",))
        assert f.value() == row.forecast
        assert row.error == row.forecast - row.actual
    score = bt.score("weighted")
    assert score.periods == 2
    assert score.mape is not None


def test_backtest_skips_periods_not_over() -> None:
    ds = company()
    end = datetime(2026, 1, 1, tzinfo=at(0).tzinfo)
    bt = backtest(ds, ["2025-Q4", "2026-Q1"], methods=["weighted"], final_asof=end)
    assert [p.label for p in bt.skipped] == ["2026-Q1"]
    assert len(bt.rows) == 1
