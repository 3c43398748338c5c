"""Goals: SMART checks, exact decomposition, re-cuts, consistency, progress and milestones."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _kpi_company import ACCOUNTS, PRODUCTS, REPS, SAAS, TEAMS, won
from salesprocess import SalesProcess, hookimpl
from salesprocess.cli import main
from salesprocess.errors import GoalError
from salesprocess.goals import (
    Goal,
    GoalScope,
    RampUp,
    Status,
    check_consistency,
    load_goal,
    load_goals,
    progress,
    recut,
    save_goal,
    split_members,
    split_time,
    validate,
)
from salesprocess.kpi import Dataset
from salesprocess.model import Rep
from salesprocess.money import Money
from salesprocess.periods import BusinessCalendar, Period
from salesprocess.store import MemoryStore
from salesprocess_adapters.sqlite import SQLiteStore

Q1 = Period.parse("2026-Q1")


def cny(s: str) -> Money:
    return Money(s, "CNY")


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def goal(
    target: Money | str = "3000.00",
    metric: str = "won_revenue",
    scope: str = "company",
    period: Period = Q1,
    **kw: object,
) -> Goal:
    t = cny(target) if isinstance(target, str) and metric in ("won_revenue",) else target
    return Goal(kw.pop("id", "g"), metric, GoalScope.parse(scope), t, period, **kw)  # type: ignore[arg-type]


def data(deals=(), **kw):
    return Dataset(
        deals,
        reps=kw.get("reps", REPS),
        teams=TEAMS,
        accounts=ACCOUNTS,
        products=PRODUCTS,
        processes=[SAAS],
    )


# --------------------------------------------------------------------------------------------
# Persistence
# --------------------------------------------------------------------------------------------

periods = st.sampled_from(["2026", "2026-Q2", "2026-03", "2026-W07", "FY2027", "2026-H1"]).map(
    Period.parse
)


@given(
    st.integers(0, 10**12),
    periods,
    st.sampled_from(["rep:r1", "team:t1", "company"]),
    st.sampled_from([None, "higher", "lower"]),
)
def test_goal_document_round_trip(units, period, scope, direction):
    g = Goal(
        "g1",
        "won_revenue",
        GoalScope.parse(scope),
        Money.from_minor(units, "CNY"),
        period,
        direction,
        parent_id="p",
        objective="grow",
        name="增长 goal",
    )
    assert Goal.from_dict(g.to_dict()) == g


def test_bad_goal_document_reports_every_field():
    with pytest.raises(GoalError) as e:
        Goal.from_dict(
            {
                "id": "x",
                "scope": "planet:mars",
                "target": {"value": "abc"},
                "period": {"start": "2026-13-01", "end": "2026-02-01"},
            }
        )
    paths = {p.path for p in e.value.problems}
    assert paths == {"goal.metric", "goal.scope", "goal.target", "goal.period"}


def test_goals_persist_in_a_real_sqlite_file(tmp_path):
    s = SQLiteStore(tmp_path / "g.sqlite")
    g = goal()
    kids = split_time(g, "month")
    save_goal(s, g, *kids)
    s.close()
    s = SQLiteStore(tmp_path / "g.sqlite")
    assert load_goal(s, "g") == g
    assert [x.id for x in load_goals(s)] == ["g", "g/2026-01", "g/2026-02", "g/2026-03"]
    with pytest.raises(GoalError, match="no goal"):
        load_goal(s, "nope")
    s.close()


# --------------------------------------------------------------------------------------------
# Decomposition
# --------------------------------------------------------------------------------------------


def test_year_to_quarters_months_and_iso_weeks_sum_exactly():
    year = goal("1000000.00", period=Period.parse("2026"), id="y")
    quarters = split_time(year, "quarter")
    assert [q.period.label for q in quarters] == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    assert sum(q.target.amount for q in quarters) == Decimal("1000000.00")
    months = split_time(quarters[0], "month", "calendar_days")
    # 31 + 28 + 31 days of 250000.00
    assert [m.target for m in months] == [cny("86111.11"), cny("77777.78"), cny("86111.11")]
    weeks = split_time(months[1], "week")
    assert weeks[0].period.start == date(2026, 2, 1)  # clipped at the month's start (a Sunday)
    assert weeks[-1].period.end == date(2026, 3, 1)
    assert sum(w.target.amount for w in weeks) == months[1].target.amount
    assert all(w.parent_id == months[1].id for w in weeks)


def test_business_days_with_holidays_and_make_up_days():
    # Mon–Fri weeks; Jan 1 off, Saturday Feb 7 worked: 21, 21 and 22 working days
    cal = BusinessCalendar(extra_holidays={date(2026, 1, 1)}, extra_working_days={date(2026, 2, 7)})
    months = split_time(goal("64000.00"), "month", "business_days", calendar=cal)
    assert [m.target for m in months] == [cny("21000.00"), cny("21000.00"), cny("22000.00")]


def test_china_spring_festival_week_gets_nothing_and_the_make_up_saturday_counts():
    feb = goal("100.00", period=Period.parse("2026-02"))
    cn = {
        w.period.label: w.target
        for w in split_time(feb, "week", "business_days", calendar=BusinessCalendar("CN"))
    }
    plain = {w.period.label: w.target for w in split_time(feb, "week", "business_days")}
    assert cn["2026-W08"] == cny("0.00")  # Feb 16–22: Spring Festival
    assert plain["2026-W08"] > cny("0.00")
    # W07 (Feb 9–15) works Mon–Sat in China: 6 of the month's 16 working days (Feb 2–6,
    # Feb 9–14, Tue Feb 24 – Sat Feb 28)
    assert cn["2026-W07"] == cny("37.50")


def test_seasonality_learns_from_last_year():
    hist = [
        won("a", "r1", utc(2025, 1, 5), utc(2025, 2, 1), "100.00"),
        won("b", "r1", utc(2025, 6, 5), utc(2025, 8, 1), "100.00"),
        won("c", "r1", utc(2025, 9, 5), utc(2025, 11, 1), "150.00"),
        won("d", "r1", utc(2025, 9, 5), utc(2025, 12, 1), "50.00"),
    ]
    year = goal("4000.00", period=Period.parse("2026"))
    qs = split_time(year, "quarter", "seasonality", data=data(hist))
    assert [q.target for q in qs] == [cny("1000.00"), cny("0.00"), cny("1000.00"), cny("2000.00")]


def test_team_to_members_equal_capacity_and_ramp():
    reps = [
        Rep("a", "A", team_id="t1"),
        Rep("b", "B", team_id="t1", capacity=Decimal(2)),
        Rep("c", "C", team_id="t1"),
        Rep("gone", "G", team_id="t1", active=False),
    ]
    g = goal("1000.00", scope="team:t1")
    eq = split_members(g, reps)
    assert [(k.scope.id, k.target) for k in eq] == [
        ("a", cny("333.34")),
        ("b", cny("333.33")),
        ("c", cny("333.33")),
    ]
    cap = split_members(g, reps, "capacity")
    assert [k.target for k in cap] == [cny("250.00"), cny("500.00"), cny("250.00")]
    # hired Jan 1: 0.25 in January (31 d), 0.5 in February (28 d), 0.75 in March (31 d) -> 0.5
    new = Rep("n", "New", team_id="t1", hired_on=date(2026, 1, 1))
    vet = Rep("v", "Vet", team_id="t1")
    assert RampUp().weight(new, Q1) == Decimal("0.5")
    ramp = split_members(goal("3000.00", scope="team:t1"), [new, vet], "ramp")
    assert [k.target for k in ramp] == [cny("1000.00"), cny("2000.00")]


def test_rates_are_not_split_but_inherited():
    g = goal(Decimal("0.3"), metric="win_rate")
    assert {k.target for k in split_time(g, "month")} == {Decimal("0.3")}


def test_count_targets_split_in_whole_numbers_and_refuse_fractions():
    months = split_time(goal(Decimal(10), metric="deals_won"), "month")
    assert [m.target for m in months] == [4, 3, 3]
    with pytest.raises(GoalError, match="not whole"):
        split_time(goal(Decimal("10.5"), metric="deals_won"), "month")
    with pytest.raises(GoalError, match="minor units"):
        split_time(goal(cny("10.005")), "month")


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 10**13),
    periods,
    st.sampled_from(["month", "week", "quarter", "day"]),
    st.sampled_from(["equal", "calendar_days", "business_days"]),
    st.sampled_from(["CNY", "JPY", "KWD"]),
)
def test_children_always_sum_exactly_to_the_parent(units, period, into, method, currency):
    g = Goal("g", "won_revenue", GoalScope("company"), Money.from_minor(units, currency), period)
    kids = split_time(g, into, method)
    assert sum(k.target.amount for k in kids) == g.target.amount
    assert all(k.target.amount >= 0 for k in kids)
    assert [k.period for k in kids] == period.split(into)
    assert not check_consistency([g, *kids])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.lists(st.integers(0, 1000), min_size=1, max_size=8))
def test_count_splits_by_weight_sum_exactly(total, ws):
    reps = [Rep(f"r{i}", f"R{i}", team_id="t") for i in range(len(ws))]
    g = Goal("g", "deals_won", GoalScope("team", "t"), Decimal(total), Q1)
    kids = split_members(
        g, reps, "weights", weights={r.id: w for r, w in zip(reps, ws, strict=False)}
    )
    assert sum(k.target for k in kids) == total
    assert all(k.target == int(k.target) for k in kids)


# --------------------------------------------------------------------------------------------
# Consistency and re-cuts
# --------------------------------------------------------------------------------------------


def test_consistency_reports_mismatch_gaps_missing_members_and_orphans():
    team = goal("900.00", scope="team:t1", id="team")
    kids = split_members(team, [REPS[0]])  # r2 of t1 forgotten
    q = goal("300.00", id="q")
    months = split_time(q, "month")
    changed = [
        m
        if m.id != months[1].id
        else Goal(m.id, m.metric, m.scope, cny("1.00"), m.period, parent_id="q")
        for m in months
    ]
    orphan = Goal("o", "won_revenue", GoalScope("company"), cny("1.00"), Q1, parent_id="zzz")
    problems = check_consistency([team, *kids, q, *changed[:2], orphan], reps=REPS)
    found = {(p.path, p.code) for p in problems}
    assert ("team", "no_target") in found  # r2 has no goal
    assert ("q", "target_mismatch") in found
    assert ("q", "no_target") in found  # March is not covered any more
    assert ("o", "orphan") in found
    assert any("2026-03-01..2026-04-01" in p.message for p in problems)


def test_recut_keeps_what_was_achieved_and_spreads_the_rest():
    q = goal("3000.00")
    months = split_time(q, "month")
    r = recut(q, months, date(2026, 2, 1), {"g/2026-01": cny("400.00")})
    # 2600.00 over February (28 d) and March (31 d): 1233.898… and 1366.101…, cents by largest
    # remainder
    assert [m.target for m in r.children] == [cny("400.00"), cny("1233.90"), cny("1366.10")]
    assert not r.exceeded
    # mid-month: January done (900), February so far (100); the rest over the days left
    r2 = recut(
        q,
        months,
        date(2026, 2, 15),
        lambda g, past: {"2026-01": cny("900.00"), "2026-02": cny("100.00")}.get(g.period.label),
        "equal",
    )
    assert [m.target for m in r2.children] == [cny("900.00"), cny("1100.00"), cny("1000.00")]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 10**9),
    st.lists(st.integers(0, 10**8), min_size=3, max_size=3),
    st.dates(date(2026, 1, 1), date(2026, 3, 31)),
)
def test_recut_children_sum_to_the_parent_unless_already_exceeded(units, got, cut):
    q = Goal("g", "won_revenue", GoalScope("company"), Money.from_minor(units, "CNY"), Q1)
    months = split_time(q, "month")
    ach = {m.id: Money.from_minor(x, "CNY") for m, x in zip(months, got, strict=False)}
    r = recut(q, months, cut, ach)
    total = sum(m.target.amount for m in r.children)
    kept = sum(ach[m.id].amount for m in months if m.period.start < cut)
    if r.exceeded:
        assert total == kept
    else:
        assert total == q.target.amount
    for m in r.children:  # nothing achieved is taken away
        if m.period.start < cut:
            assert m.target.amount >= ach[m.id].amount


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------


def test_progress_linear_pace_projection_and_status():
    deals = [
        won("a", "r1", utc(2026, 1, 2), utc(2026, 1, 20), "400.00"),
        won("b", "r1", utc(2026, 1, 2), utc(2026, 2, 10), "200.00"),
        won("late", "r1", utc(2026, 1, 2), utc(2026, 3, 10), "999.00"),
    ]
    g = goal("1000.00")
    p = progress(g, data(deals), utc(2026, 2, 15))  # 45 of 90 days
    assert p.elapsed == Decimal("0.5")
    assert p.actual == cny("600.00")
    assert p.expected == cny("500.00")
    assert p.gap == cny("400.00")
    assert p.projection == cny("1200.00")
    assert p.attainment == Decimal("0.6")
    assert p.status is Status.AHEAD  # projected 1.2
    assert p.milestones == (Decimal("0.5"),)
    early = progress(g, data(deals), utc(2025, 12, 31))
    assert early.status is Status.NOT_STARTED
    behind = progress(goal("2000.00"), data(deals), utc(2026, 2, 15))
    assert behind.status is Status.BEHIND  # projected 0.6


def test_progress_business_day_pace():
    cal = BusinessCalendar()  # Mon–Fri
    g = goal("1000.00", period=Period.parse("2026-W07"))
    p = progress(g, None, utc(2026, 2, 11), pace="business_days", calendar=cal, value=cny("400.00"))
    # Mon and Tue done of 5 working days
    assert p.elapsed == Decimal("0.4")
    assert p.expected == cny("400.00")
    assert p.status is Status.ON_TRACK


def test_progress_of_a_lower_is_better_goal():
    g = goal(Decimal(30), metric="mean_cycle_days")
    p = progress(g, None, utc(2026, 2, 15), value=Decimal(20))
    assert p.attainment == Decimal("1.5")
    assert p.status is Status.AHEAD
    assert p.expected == 30  # rates and durations are not prorated


class Listener:
    def __init__(self):
        self.seen = []

    @hookimpl
    def salesprocess_goal_milestone(self, goal, milestone, progress):
        self.seen.append((goal.id, milestone, progress.asof))


def test_milestones_fire_once_through_the_shell():
    lis = Listener()
    sp = SalesProcess(plugins=[lis])
    store = MemoryStore()
    store.save_process(SAAS)
    for d in [
        won("a", "r1", utc(2026, 1, 2), utc(2026, 1, 20), "600.00"),
        won("b", "r1", utc(2026, 1, 2), utc(2026, 3, 1), "400.00"),
    ]:
        store.save_deal(d, expected_version=None)
    g = goal("1000.00")
    sp.goal_progress(g, store, utc(2026, 2, 1))
    assert lis.seen == [("g", Decimal("0.5"), utc(2026, 2, 1))]
    sp.goal_progress(g, store, utc(2026, 2, 2))
    assert len(lis.seen) == 1  # already announced
    sp.goal_progress(g, store, utc(2026, 3, 2))
    assert [m for _, m, _ in lis.seen] == [Decimal("0.5"), Decimal("0.9"), Decimal("1")]
    # with `since`: crossings between two instants, regardless of the record
    lis.seen.clear()
    sp.goal_progress(g, store, utc(2026, 3, 2), since=utc(2026, 2, 1))
    assert [m for _, m, _ in lis.seen] == [Decimal("0.9"), Decimal("1")]
    # pure progress never fires
    lis.seen.clear()
    progress(g, store, utc(2026, 3, 2))
    assert lis.seen == []


# --------------------------------------------------------------------------------------------
# SMART validation
# --------------------------------------------------------------------------------------------


def _levels(report):
    return {(f.letter, f.code): f.level for f in report.findings}


def test_validate_explains_each_letter():
    hist = [
        won("a", "r1", utc(2025, 10, 2), utc(2025, 11, 20), "1000.00"),
        won("b", "r1", utc(2025, 4, 2), utc(2025, 5, 20), "400.00"),
    ]
    ds = data(hist)
    ok = validate(goal("1400.00", scope="rep:r1", objective="grow"), ds, objectives={"grow"})
    assert ok.ok
    a = ok.letter("A")[0]
    assert a.level == "ok"
    assert a.numbers["best"] == "1000.00"
    assert a.numbers["best_period"] == "2025-Q4"
    assert Decimal(a.numbers["limit"]) == 1500
    stretch = validate(goal("1600.00", scope="rep:r1", objective="grow"), ds, objectives={"grow"})
    assert _levels(stretch)[("A", "stretch")] == "warning"
    assert "1.5×" in stretch.letter("A")[0].message
    bad = validate(Goal("x", "won_revnue", GoalScope("rep", "nobody"), Decimal(5), Q1), ds)
    lv = _levels(bad)
    assert lv[("S", "metric")] == "error"
    assert lv[("S", "scope")] == "error"
    assert lv[("R", "unlinked")] == "error"
    assert lv[("T", "period")] == "ok"
    assert not bad.ok
    wrong_unit = validate(
        goal(cny("5.00"), metric="deals_won", objective="grow"), ds, objectives={"grow"}
    )
    assert _levels(wrong_unit)[("M", "target_unit")] == "error"
    needs = validate(goal(Decimal("0.5"), metric="csat", objective="grow"), ds, objectives={"grow"})
    assert _levels(needs)[("M", "inputs")] == "error"
    parent = goal("9000.00", period=Period.parse("2026"), id="year", objective="grow")
    child = split_time(parent, "quarter")[0]
    rel = validate(child, ds, goals=[parent], objectives={"grow"})
    assert _levels(rel)[("R", "parent")] == "ok"
    assert _levels(validate(child, ds))[("R", "parent")] == "error"
    over = validate(goal(objective="grow"), ds, objectives={"grow"}, asof=utc(2026, 5, 1))
    assert _levels(over)[("T", "period_over")] == "warning"
    nohist = validate(goal(objective="grow", scope="rep:r2"), ds, objectives={"grow"})
    assert _levels(nohist)[("A", "no_history")] == "warning"


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def test_goals_commands_on_a_sqlite_file(tmp_path, capsys):
    db = str(tmp_path / "g.sqlite")
    s = SQLiteStore(db)
    s.save_process(SAAS)
    s.put(*REPS, *TEAMS)
    s.save_deals(
        (d, None)
        for d in [
            won("a", "r1", utc(2026, 1, 2), utc(2026, 1, 20), "400.00"),
            won("b", "r2", utc(2026, 1, 2), utc(2026, 2, 10), "200.00"),
        ]
    )
    s.close()
    assert (
        main(
            [
                "goals",
                "add",
                "--db",
                db,
                "--id",
                "t1q1",
                "--metric",
                "won_revenue",
                "--scope",
                "team:t1",
                "--target",
                "1000.00",
                "--currency",
                "CNY",
                "--period",
                "2026-Q1",
                "--objective",
                "grow",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "goals",
                "decompose",
                "--db",
                db,
                "--goal",
                "t1q1",
                "--into",
                "members",
                "--save",
                "--format",
                "json",
            ]
        )
        == 0
    )
    kids = json.loads(capsys.readouterr().out)
    assert [(k["scope"], k["target"]["amount"]) for k in kids] == [
        ("rep:r1", "500.00"),
        ("rep:r2", "500.00"),
    ]
    assert (
        main(
            [
                "goals",
                "progress",
                "--db",
                db,
                "--asof",
                "2026-02-14T00:00:00+00:00",
                "--format",
                "json",
            ]
        )
        == 0
    )
    rows = {r["goal"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["t1q1"]["actual"] == "600.00"
    assert rows["t1q1/r1"]["actual"] == "400.00"
    assert rows["t1q1/r2"]["status"] == "at_risk"  # 200 by Feb 14 (44/90): projected 409.09
    assert (
        main(
            [
                "goals",
                "validate",
                "--db",
                db,
                "--objective",
                "grow",
                "--asof",
                "2026-02-14",
                "--format",
                "json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["errors"] == 0
    # break the split: the children no longer add up, and the validation fails
    s = SQLiteStore(db)
    g = load_goal(s, "t1q1/r2")
    save_goal(
        s,
        Goal(
            g.id, g.metric, g.scope, cny("1.00"), g.period, parent_id=g.parent_id, objective="grow"
        ),
    )
    s.close()
    assert main(["goals", "validate", "--db", db, "--objective", "grow", "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [f["code"] for f in out["findings"] if f["level"] == "error"] == ["target_mismatch"]
