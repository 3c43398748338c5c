"""Stage funnel and pipeline change."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _kpi_company import ACCOUNTS, PRODUCTS, REPS, SAAS, TEAMS, at, deal, move, random_deals
from salesprocess.cli import main
from salesprocess.errors import KpiError
from salesprocess.kpi import ChangeReason, Dataset, funnel, pipeline_change
from salesprocess.model import DealStatus
from salesprocess.money import Money
from salesprocess.periods import Period
from salesprocess_adapters.sqlite import SQLiteStore


def data(deals):
    return Dataset(
        deals, reps=REPS, teams=TEAMS, accounts=ACCOUNTS, products=PRODUCTS, processes=[SAAS]
    )


def cny(s):
    return Money(s, "CNY")


# --------------------------------------------------------------------------------------------
# Funnel
# --------------------------------------------------------------------------------------------


@pytest.fixture
def cohort():
    return [
        # straight to won through every stage: 1 d, 2 d, 3 d, 4 d in the stages
        deal(
            "a",
            "r1",
            at(0),
            [("demo", at(1)), ("trial", at(3)), ("proposal", at(6)), ("closed_won", at(10))],
        ),
        # skips trial: demo -> proposal -> won
        deal("b", "r1", at(0), [("demo", at(2)), ("proposal", at(4)), ("closed_won", at(8))]),
        # lost in demo
        deal("c", "r2", at(0), [("demo", at(1)), ("closed_lost", at(5))]),
        # lost straight from discovery
        deal("d", "r2", at(0), [("closed_lost", at(2))]),
        # still open in trial
        deal("e", "r3", at(0), [("demo", at(1)), ("trial", at(2))]),
        # went back from trial to demo, still open there
        deal("f", "r3", at(0), [("demo", at(1)), ("trial", at(2)), ("demo", at(3))]),
    ]


def test_funnel_counts_conversions_and_drop_off(cohort):
    (f,) = funnel(data(cohort))
    assert [s.stage for s in f.stages] == ["discovery", "demo", "trial", "proposal", "closed_won"]
    by = {s.stage: s for s in f.stages}
    # furthest steps: a, b won; c demo; d discovery; e, f trial (b skipped trial: counted)
    assert [by[k].reached for k in by] == [6, 5, 4, 2, 2]
    assert [by[k].entered for k in by] == [6, 5, 3, 2, 2]
    assert by["demo"].conversion == Decimal("0.8")  # 4 of 5 got past demo
    # b skipped trial: demo -> trial directly for a, e, f only
    assert by["demo"].adjacent == 3
    assert by["demo"].adjacent_conversion == Decimal("0.6")
    assert by["trial"].adjacent == 1  # a: trial -> proposal
    assert by["proposal"].adjacent == 2  # a and b: proposal -> won
    assert by["discovery"].lost == 1
    assert by["demo"].lost == 1
    assert by["demo"].drop_off == Decimal("0.2")
    assert by["discovery"].drop_off == Decimal("0.1666666667")
    assert by["trial"].open == 2  # e, and f whose furthest is trial
    assert f.cohort == 6
    assert f.won == 2
    assert f.overall_conversion == Decimal("0.3333333333")
    # time in demo over completed stays: a 2, b 2, c 4, e 1, f 1 (first stay) -> median 2
    assert by["demo"].median_days == 2
    assert by["demo"].p90_days == Decimal("3.2")  # h = 3.6 over [1, 1, 2, 2, 4]
    assert by["closed_won"].median_days is None
    assert f.bottleneck == "demo"  # 0.2 beats 0.1667 without history


def test_bottleneck_is_judged_against_the_scopes_own_history():
    old = [deal(f"o{i}", "r1", at(i), [("closed_lost", at(i + 1))]) for i in range(4)]
    old += [deal("ow", "r1", at(0), [("demo", at(1)), ("closed_lost", at(2))])]
    # history: discovery drop-off 4/5 = 0.8, demo 1/1 = 1
    new = [
        deal(f"n{i}", "r1", at(60), [("demo", at(61)), ("closed_lost", at(62))]) for i in range(2)
    ]
    new += [deal(f"m{i}", "r1", at(60), [("closed_lost", at(61))]) for i in range(2)]
    new += [deal("w", "r1", at(60), [("demo", at(61)), ("trial", at(62))])]
    # now: discovery 2/5 = 0.4, demo 2/3 = 0.667, trial nothing lost: both better than history
    w = Period(date(2026, 3, 1), date(2026, 4, 1))
    (f,) = funnel(data(old + new), window=w)
    by = {s.stage: s for s in f.stages}
    assert by["discovery"].baseline_drop_off == Decimal("0.8")
    assert by["demo"].baseline_drop_off == 1
    assert by["discovery"].drop_off == Decimal("0.4")
    # excess: discovery 0.4 - 0.8 = -0.4, demo 0.6667 - 1 = -0.3333: demo is the relatively worst
    assert f.bottleneck == "demo"
    assert f.bottleneck_excess == Decimal("-0.3333333333")


def test_funnel_by_owner_and_process_choice(cohort):
    fs = funnel(data(cohort), by=["owner"])
    assert [f.key for f in fs] == [{"owner": "r1"}, {"owner": "r2"}, {"owner": "r3"}]
    assert fs[0].won == 2
    assert fs[1].won == 0
    with pytest.raises(KpiError, match="no process"):
        funnel(data(cohort), process="b2b")


@settings(max_examples=60, deadline=None)
@given(random_deals(max_deals=12))
def test_funnel_accounting_identities(deals):
    if not deals:
        return
    (f,) = funnel(data(deals))
    reached = [s.reached for s in f.stages]
    assert reached == sorted(reached, reverse=True)
    won = sum(1 for d in deals if d.status is DealStatus.WON)
    assert sum(s.open for s in f.stages) + sum(s.lost for s in f.stages) + won == f.cohort
    for s in f.stages:
        assert s.entered <= s.reached
        if s.conversion is not None:
            assert 0 <= s.conversion <= 1


# --------------------------------------------------------------------------------------------
# Pipeline change
# --------------------------------------------------------------------------------------------


def test_pipeline_change_lists_each_deal_once_by_precedence():
    t0, t1 = at(10), at(17)
    base = [
        deal(k, "r1", at(0), [("demo", at(1))], amount="100.00", close_date=date(2026, 2, 1))
        for k in "abcdefghij"
    ]
    d = {x.id: x for x in base}
    d["a"] = move(d["a"], "closed_won", at(12))
    d["b"] = move(d["b"], "closed_lost", at(12))
    d["c"] = d["c"].with_close_date(date(2026, 3, 1), at=at(12), actor="t")  # pushed
    d["c"] = d["c"].with_amount(cny("150.00"), at=at(13), actor="t")  # also amount up
    d["d"] = d["d"].with_close_date(date(2026, 1, 25), at=at(12), actor="t")  # pulled in
    d["e"] = d["e"].with_amount(cny("80.00"), at=at(12), actor="t")
    d["f"] = move(d["f"], "trial", at(12))
    d["g"] = move(d["g"], "discovery", at(12))
    d["h"] = d["h"].with_forecast_category("commit", at=at(12), actor="t")
    d["i"] = d["i"].with_owner("r2", at=at(12), actor="t")
    d["j"] = move(d["j"], "closed_lost", at(5))
    d["j"] = move(d["j"], "discovery", at(12))  # reopened
    created = deal("n", "r1", at(14), amount="70.00")
    won_new = deal("m", "r1", at(14), [("closed_won", at(15))], amount="30.00")
    later = d["a"].with_amount(cny("999.00"), at=at(20), actor="t")  # after t1: ignored
    ch = pipeline_change(
        data([*[x for k, x in d.items() if k != "a"], later, created, won_new]), t0, t1
    )
    got = {c.deal_id: c.reason for c in ch.changes}
    R = ChangeReason
    assert got == {
        "a": R.WON,
        "m": R.WON,
        "b": R.LOST,
        "n": R.NEW,
        "j": R.REOPENED,
        "c": R.PUSHED,
        "d": R.PULLED_IN,
        "e": R.AMOUNT_DOWN,
        "f": R.STAGE_FORWARD,
        "g": R.STAGE_BACK,
        "h": R.FORECAST_UP,
        "i": R.REASSIGNED,
    }
    c = next(x for x in ch.changes if x.deal_id == "c")
    assert c.reasons == (R.PUSHED, R.AMOUNT_UP)
    assert [x.reason for x in ch.changes] == sorted(
        (x.reason for x in ch.changes), key=list(R).index
    )
    br = ch.bridge["CNY"]
    assert br["start"] == cny("900.00")  # a..i open at t0 (j was lost)
    assert br["won"] == cny("100.00")
    assert br["lost"] == cny("100.00")
    assert br["new"] == cny("70.00")
    assert br["reopened"] == cny("100.00")
    assert br["changed"] == cny("30.00")  # +50 (c) - 20 (e)
    assert br["end"] == cny("900.00")
    summary = {r["reason"]: r for r in ch.summary()}
    assert summary["won"]["deals"] == 2


@settings(max_examples=60, deadline=None)
@given(random_deals(max_deals=10), st.integers(0, 200), st.integers(0, 60))
def test_pipeline_bridge_reconciles(deals, start_day, span):
    t0 = at(start_day)
    t1 = t0 + timedelta(days=span)
    ch = pipeline_change(data(deals), t0, t1)
    assert len({c.deal_id for c in ch.changes}) == len(ch.changes)
    for cur, b in ch.bridge.items():
        total = b["start"] + b["new"] + b["reopened"] - b["won"] - b["lost"] + b["changed"]
        assert total == b["end"], cur


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def test_funnel_and_pipeline_change_commands(tmp_path, capsys, cohort):
    db = tmp_path / "f.sqlite"
    s = SQLiteStore(db)
    s.save_process(SAAS)
    s.put(*REPS, *TEAMS)
    s.save_deals((d, None) for d in cohort)
    s.close()
    capsys.readouterr()
    assert main(["funnel", "--db", str(db), "--format", "json", "--engine", "python"]) == 0
    (obj,) = json.loads(capsys.readouterr().out)
    assert obj["bottleneck"] == "demo"
    assert [s["reached"] for s in obj["stages"]] == [6, 5, 4, 2, 2]
    assert main(["funnel", "--db", str(db), "--by", "team"]) == 0
    assert "◀" in capsys.readouterr().out
    assert (
        main(
            [
                "pipeline-change",
                "--db",
                str(db),
                "--since",
                at(4).isoformat(),
                "--until",
                at(9).isoformat(),
                "--format",
                "json",
            ]
        )
        == 0
    )
    obj = json.loads(capsys.readouterr().out)
    reasons = {c["deal"]: c["reason"] for c in obj["changes"]}
    assert reasons["c"] == "lost"  # lost on day 5
    # trial -> proposal on day 6, and the amount was set for the proposal: amount first
    a = next(c for c in obj["changes"] if c["deal"] == "a")
    assert a["reasons"] == ["amount_up", "stage_forward", "forecast_up"]  # best case -> commit
