"""Contests: rankings by any KPI, qualifiers, tie-breaks, team scope, recurrence and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from salesprocess.cli import main
from salesprocess.errors import DefinitionError
from salesprocess.incentives import (
    Contest,
    IncentiveError,
    PlanFileError,
    Prize,
    Qualifier,
    run_contest,
    run_season,
)
from salesprocess.model import Deal, DealLost, DealWon, EventSource, Rep, Team
from salesprocess.money import Money
from salesprocess.periods import Period


def closed(did: str, owner: str, amount: str, when: datetime, *, won: bool = True, cycle: int = 30) -> Deal:
    d = Deal.create(did, process="p", stage="open", at=when - timedelta(days=cycle), actor="t",
                    amount=Money(amount, "CNY"), owner_id=owner)
    ev = DealWon if won else DealLost
    return d.append(ev(did, when, "t", EventSource.USER, "open", "won" if won else "lost"))


def at(m: int, d: int) -> datetime:
    return datetime(2026, m, d, 12, tzinfo=UTC)


REPS = [Rep("a", "Ann", team_id="t1", role="ae"), Rep("b", "Bo", team_id="t1", role="ae"),
        Rep("c", "Cy", team_id="t2", role="ae"), Rep("d", "Di", team_id="t2", role="ae"),
        Rep("m", "Max", team_id="t1", role="manager")]
TEAMS = [Team("t1", "One"), Team("t2", "Two")]
DEALS = [
    closed("a1", "a", "100", at(4, 1), cycle=10), closed("a2", "a", "100", at(4, 2), cycle=50),
    closed("b1", "b", "200", at(5, 1), cycle=20), closed("b2", "b", "1", at(5, 2), won=False),
    closed("c1", "c", "150", at(5, 3), cycle=5), closed("c2", "c", "50", at(6, 3), cycle=5),
    closed("c3", "c", "10", at(6, 4), won=False),
    closed("d1", "d", "300", at(6, 5), cycle=40),
    closed("m1", "m", "999", at(6, 6)),
    closed("q1a", "a", "500", at(2, 1)), closed("q1b", "a", "10", at(2, 2)), closed("q1c", "c", "400", at(3, 1)),
]


@pytest.fixture
def store() -> Any:
    from salesprocess.store import MemoryStore

    s = MemoryStore()
    s.put(*REPS, *TEAMS)
    s.save_deals([(d, None) for d in DEALS])
    return s


def test_qualifiers_tie_breaks_and_shared_ranks(store: Any) -> None:
    c = Contest("champ", "Champion", "won_revenue", roles={"ae"}, tie_break=("win_rate",),
                qualify=[Qualifier("deals_won", Decimal(2))], winners=2,
                prizes=[Prize(1, "gold"), Prize(2, "silver")])
    board = run_contest(c, store, "2026-Q2")
    got = [(s.participant, s.rank, s.qualified, s.shared, s.winner, s.prize) for s in board.standings]
    # a 200 (2 of 2 won), c 200 (2 of 3), b and d 1 won only; the manager m takes no part
    assert got == [("a", 1, True, False, True, "gold"), ("c", 2, True, False, True, "silver"),
                   ("b", None, False, False, False, None), ("d", None, False, False, False, None)]
    assert board.champion is not None
    assert board.champion.participant == "a"
    assert board.standing("b").reasons == ("deals_won 1 is below the minimum 2",)
    shared = run_contest(Contest("s", "s", "won_revenue", roles={"ae"}, qualify=[Qualifier("deals_won", Decimal(2))]),
                         store, "2026-Q2")
    assert [(s.participant, s.rank, s.shared) for s in shared.standings if s.qualified] == [("a", 1, True), ("c", 1, True)]
    assert shared.champion is None  # rank 1 is shared


def test_lower_is_better_kpis_rank_ascending_and_direction_can_be_overridden(store: Any) -> None:
    fast = run_contest(Contest("fast", "Fastest", "median_cycle_days", roles={"ae"}), store, "2026-Q2")
    assert [s.participant for s in fast.standings] == ["c", "b", "a", "d"]  # 5, 20, 30, 40 days
    slow = run_contest(Contest("slow", "Slowest", "median_cycle_days", roles={"ae"}, direction="higher"), store, "2026-Q2")
    assert [s.participant for s in slow.standings] == ["d", "a", "b", "c"]


def test_team_scope_ranks_teams_with_every_member(store: Any) -> None:
    board = run_contest(Contest("team", "Team", "won_revenue", scope="team"), store, "2026-Q2")
    assert [(s.participant, s.name, s.value) for s in board.standings] == [
        ("t1", "One", Money("1399", "CNY")), ("t2", "Two", Money("500", "CNY"))]


def test_a_season_recurs_by_period_and_keeps_a_hall_of_fame(store: Any) -> None:
    c = Contest("champ", "Champion", "won_revenue", period="quarter", roles={"ae"},
                qualify=[Qualifier("deals_won", Decimal(2))], tie_break=("win_rate",))
    season = run_season(c, store, date(2026, 1, 1), date(2026, 7, 1))
    assert [(lb.period.label, [s.participant for s in lb.winners]) for lb in season.leaderboards] == [
        ("2026-Q1", ["a"]), ("2026-Q2", ["a"])]
    assert season.hall_of_fame == [("a", 2)]
    bounded = attrs_evolve(c, start=date(2026, 4, 15), end=date(2026, 5, 20))
    assert [p.label for p in bounded.periods(date(2026, 1, 1), date(2027, 1, 1))] == ["2026-Q2"]
    monthly = Contest("m", "Monthly", "deals_won", period="month")
    assert [p.label for p in monthly.periods(date(2026, 4, 20), date(2026, 6, 2))] == ["2026-04", "2026-05", "2026-06"]


def attrs_evolve(c: Contest, **kw: Any) -> Contest:
    import attrs

    return attrs.evolve(c, **kw)


def test_unknown_kpis_and_bad_definitions_are_reported(store: Any, tmp_path: Path) -> None:
    with pytest.raises(IncentiveError) as ei:
        run_contest(Contest("x", "x", "no_such_kpi", tie_break=("nor_this",)), store, "2026-Q2")
    assert {p.path for p in ei.value.problems} == {"metrics[0]", "metrics[1]"}
    with pytest.raises(DefinitionError) as de:
        Contest("x", "x", "won_revenue", scope="galaxy", winners=0)
    assert {p.path for p in de.value.problems} == {"scope", "winners"}
    f = tmp_path / "c.toml"
    f.write_text('key = "k"\nmetric = "won_revenue"\n\n[[qualify]]\nmetric = "deals_won"\nmin = 2.5\n', encoding="utf-8")
    with pytest.raises(PlanFileError) as pe:
        Contest.from_toml(f)
    (p,) = pe.value.problems
    assert (p.path, p.code, pe.value.line_of(p)) == ("qualify[0].min", "float", 6)


def test_contest_round_trips_through_its_dict() -> None:
    c = Contest("k", "n", "won_revenue", period="month", scope="team", direction="higher",
                qualify=[Qualifier("deals_won", Decimal(1), Decimal(9))], tie_break=("win_rate",), winners=3,
                prizes=[Prize(1, "cup")], roles={"ae"}, start=date(2026, 1, 1), end=date(2026, 12, 31))
    assert Contest.from_dict(c.to_dict()) == c


def test_asof_ranks_from_what_was_known_then(store: Any) -> None:
    c = Contest("k", "k", "won_revenue", roles={"ae"})
    early = run_contest(c, store, Period.parse("2026-Q2"), asof=at(5, 15))
    assert {s.participant: s.value for s in early.standings} == {
        "a": Money("200", "CNY"), "b": Money("200", "CNY"), "c": Money("150", "CNY"), "d": Money("0", "CNY")}
    assert [(s.participant, s.rank, s.shared) for s in early.standings][:2] == [("a", 1, True), ("b", 1, True)]


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> str:
    from salesprocess_adapters.sqlite import SQLiteStore

    path = tmp_path / "sales.sqlite"
    s = SQLiteStore(path)
    s.put(*REPS, *TEAMS)
    s.save_deals([(d, None) for d in DEALS])
    s.close()
    return str(path)


def test_cli_contest_from_a_file_as_json(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "champ.toml"
    f.write_text('key = "champ"\nname = "季度冠军"\nmetric = "won_revenue"\nroles = ["ae"]\n'
                 'tie_break = ["win_rate"]\n\n[[qualify]]\nmetric = "deals_won"\nmin = "2"\n', encoding="utf-8")
    assert main(["contest", "--db", db, "--contest", str(f), "--period", "2026-Q2", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["champion"] == "a"
    assert [(r["participant"], r["rank"], r["won_revenue"]) for r in out["standings"]][:2] == [
        ("a", 1, "200.00"), ("c", 2, "200.00")]


def test_cli_quick_contest_and_season(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contest", "--db", db, "--metric", "won_revenue", "--min", "deals_won=2", "--tie-break", "win_rate",
                 "--role", "ae", "--season", "2026-01-01..2026-06-30"]) == 0
    out = capsys.readouterr().out
    assert "2026-Q1" in out
    assert "2026-Q2" in out
    assert "hall of fame" in out
    assert main(["contest", "--db", db, "--metric", "won_revenue", "--team", "--period", "2026-Q2",
                 "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("1,t1,One,1399.00")
    assert main(["contest", "--db", db, "--metric", "won_revenue", "--min", "deals_won", "--period", "2026-Q2"]) == 2
