"""Submissions, adjustments and snapshots in a real store; the accuracy ledger; the forecast CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from _risk_fixtures import MINI, REPS, TEAMS, at, dataset, make, usd
from salesprocess.app import SalesProcess
from salesprocess.forecast import (
    ForecastAdjustment,
    ForecastSnapshot,
    ForecastSubmission,
    Scope,
    Verdict,
    accuracy_ledger,
    forecast,
    load_adjustments,
    load_snapshots,
    load_submissions,
    save_adjustment,
    save_snapshot,
    save_submission,
)
from salesprocess.money import Rate
from salesprocess.periods import Period

MONTHS = [Period.parse(f"2026-{m:02d}") for m in (1, 2, 3, 4)]


def run(argv: list[str]) -> int:
    """The command line. Imported when called: importing ``salesprocess.cli.main`` at collection
    would shadow the ``salesprocess.cli.main`` function other test modules import."""
    from salesprocess.cli.main import run as _run

    return _run(argv)


def _history() -> list:  # type: ignore[type-arg]
    """r1 and r3 each win 1000 USD in every month of January–April 2026."""
    deals = []
    for i, p in enumerate(MONTHS):
        day = (p.start - at(0).date()).days + 10
        deals.append(make(f"r1-{i}", owner="r1", created=day - 5, stage="c", moves=[("won", day)]))
        deals.append(make(f"r3-{i}", owner="r3", created=day - 5, stage="c", moves=[("won", day)]))
    return deals


def test_ledger_names_sandbaggers_and_happy_ears() -> None:
    subs = []
    for i, p in enumerate(MONTHS):
        when = datetime.combine(p.start, datetime.min.time(), UTC)
        subs.append(ForecastSubmission(f"a{i}", "r1", Scope("rep", "r1"), p, when, usd(500)))
        subs.append(ForecastSubmission(f"b{i}", "r3", Scope("rep", "r3"), p, when, usd(1600)))
        subs.append(ForecastSubmission(f"c{i}", "m1", Scope("team", "east"), p, when, usd(1020)))
    # a forecast made after its period ended is not a forecast
    subs.append(ForecastSubmission("late", "m1", Scope("team", "east"), MONTHS[0], at(200), usd(1)))
    led = accuracy_ledger(dataset(_history()), asof=at(150), submissions=subs)
    assert led.sandbaggers == ["r1"]
    assert led.happy_ears == ["r3"]
    m1 = led.submitter("m1")
    assert m1.verdict is Verdict.ACCURATE
    assert m1.bias == Rate("0.02")
    assert m1.entries == 4  # May is not over at day 150? April is; the late one is dropped
    r1 = led.submitter("r1")
    assert (r1.mape, r1.bias, r1.over_share) == (Rate("0.5"), Rate("-0.5"), Rate(0))
    assert "sandbagging" in r1.explain()
    few = accuracy_ledger(dataset(_history()), asof=at(150), submissions=subs, min_periods=5)
    assert few.submitter("r1").verdict is Verdict.INSUFFICIENT


def test_model_snapshots_enter_the_ledger() -> None:
    snaps = [ForecastSnapshot(f"s{i}", "weighted", Scope("company"), p,
                              datetime.combine(p.start, datetime.min.time(), UTC), usd(2000))
             for i, p in enumerate(MONTHS)]
    led = accuracy_ledger(dataset(_history()), asof=at(150), snapshots=snaps)
    s = led.submitter("model:weighted")
    assert (s.mape, s.bias) == (Rate(0), Rate(0))
    assert all(e.actual == usd("2000") for e in led.entries)


def test_documents_round_trip_in_sqlite(tmp_path: Path) -> None:
    store = SalesProcess().open_store(tmp_path / "f.sqlite")
    try:
        q = Period.parse("2026-Q1")
        sub = ForecastSubmission("s1", "r1", Scope("rep", "r1"), q, at(3), usd("12.50"),
                                 usd(20), "two deals")
        adj = ForecastAdjustment("a1", Scope("team", "east"), q, "forecast", "m1", at(4), usd(100),
                                 usd(90), "slip")
        snap = ForecastSnapshot("n1", "montecarlo", Scope("company"), q, at(5), usd(7))
        save_submission(store, sub)
        save_adjustment(store, adj)
        save_snapshot(store, snap)
        assert load_submissions(store) == [sub]
        assert load_adjustments(store) == [adj]
        assert load_snapshots(store) == [snap]
    finally:
        store.close()


def _store_with_pipeline(path: Path) -> str:
    store = SalesProcess().open_store(path)
    try:
        store.save_process(MINI)
        store.put(*TEAMS, *REPS)
        deals = dataset([
            make("p1", owner="r1", stage="b", amount="1000", close_date=at(40).date()),
            make("p2", owner="r3", stage="c", amount="2000", close_date=at(50).date()),
            make("p3", owner="r2", stage="c", amount="700", moves=[("won", 20)]),
        ]).deals
        store.save_deals((d, None) for d in deals)
    finally:
        store.close()
    return str(path)


def test_cli_forecast_json_adjust_and_submit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _store_with_pipeline(tmp_path / "cli.sqlite")
    assert run(["forecast", "--db", db, "--period", "2026-Q1", "--asof", "2026-02-01",
                "--by", "team", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    comp = out["rows"][0]
    assert (comp["level"], comp["closed"], comp["weighted"]) == ("company", "700.00", "2100.00")
    assert {r["id"] for r in out["rows"] if r["level"] == "team"} == {"sales", "east", "west"}
    assert run(["forecast", "adjust", "--db", db, "--period", "2026-Q1", "--asof", "2026-02-02",
                "--scope", "team:west", "--method", "weighted", "--to", "1000 USD", "--by", "m2",
                "--reason", "customer delayed"]) == 0
    assert "1,600.00 USD → 1,000.00 USD" in capsys.readouterr().out
    assert run(["forecast", "--db", db, "--period", "2026-Q1", "--asof", "2026-02-03",
                "--by", "team", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    comp = out["rows"][0]
    assert comp["forecast"] == "2800.00"
    assert comp["forecast_adjusted"] == "2200.00"  # 700 won + 500 (east raw) + 1000 (west adjusted)
    assert out["adjustments"][0]["by"] == "m2"
    assert run(["forecast", "submit", "--db", db, "--period", "2026-Q1", "--scope", "rep:r1",
                "--by", "r1", "--commit", "900", "--currency", "USD", "--asof", "2026-02-03"]) == 0
    store = SalesProcess().open_store(db)
    try:
        subs = load_submissions(store)
    finally:
        store.close()
    assert [(s.submitted_by, s.commit) for s in subs] == [("r1", usd("900"))]


def test_cli_refuses_a_bad_period(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _store_with_pipeline(tmp_path / "bad.sqlite")
    assert run(["forecast", "--db", db, "--period", "2026-Q9"]) == 2
    assert "--period" in capsys.readouterr().err


def test_montecarlo_matches_between_store_and_dataset(tmp_path: Path) -> None:
    db = _store_with_pipeline(tmp_path / "mc.sqlite")
    store = SalesProcess().open_store(db)
    try:
        f1 = forecast(store, "2026-Q1", asof=at(27), method="montecarlo", trials=300, seed=5)
    finally:
        store.close()
    assert f1.company.values["p10"] <= f1.company.values["p90"]
    assert f1.company.values["closed"] == usd("700.00")


def test_saved_goals_give_each_scope_its_target(tmp_path: Path) -> None:
    from salesprocess.goals import Goal, GoalScope, save_goal

    db = _store_with_pipeline(tmp_path / "goals.sqlite")
    q1 = Period.parse("2026-Q1")
    store = SalesProcess().open_store(db)
    try:
        save_goal(store,
                  Goal("g-east", "won_revenue", GoalScope("team", "east"), usd(900), q1),
                  Goal("g-all", "won_revenue", GoalScope("company"), usd(100_000), q1),
                  Goal("g-deals", "deals_won", GoalScope("company"), Decimal(5), q1))
        f = forecast(store, q1, asof=at(27), method="montecarlo", trials=500, seed=2,
                     levels=("company", "team"))
    finally:
        store.close()
    east, comp = f.row("team", "east"), f.company
    assert (east.target, comp.target) == (usd(900), usd(100_000))
    assert f.row("team", "west").target is None
    assert east.simulation is not None
    assert comp.simulation is not None
    # east has won 700 and has 1000 at 50 %: it reaches 900 exactly when that deal is won
    assert Rate("0.4") < east.simulation.p_target < Rate("0.6")
    assert comp.simulation.p_target == Rate(0)  # 3,700 at most: never 100,000
