"""Scorecards, 360° reviews, the combined evaluation, training, persistence and the CLI."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesprocess.cli import main
from salesprocess.evaluation import (
    Competency,
    EvaluationConfig,
    EvaluationError,
    EvaluationPolicy,
    RaterGroup,
    RatingBand,
    Review,
    ReviewPolicy,
    Scorecard,
    ScoreItem,
    TrainingCatalog,
    TrainingModule,
    TrainingRecord,
    aggregate_reviews,
    band_for,
    check_reviews,
    evaluate,
    load_evaluations,
    load_reviews,
    load_training_records,
    save_evaluations,
    save_reviews,
    save_training_records,
    score_reps,
)
from salesprocess.goals import Goal, GoalScope
from salesprocess.incentives import PlanFileError
from salesprocess.model import Activity, Deal, DealLost, DealWon, EventSource, Rep
from salesprocess.money import Money
from salesprocess.periods import Period

Q2 = Period.parse("2026-Q2")
ROOT = Path(__file__).resolve().parent.parent


def closed(did: str, owner: str, amount: str, when: datetime, cycle: int, won: bool = True) -> Deal:
    d = Deal.create(did, process="p", stage="open", at=when - timedelta(days=cycle), actor="t",
                    amount=Money(amount, "CNY"), owner_id=owner)
    ev = DealWon if won else DealLost
    return d.append(ev(did, when, "t", EventSource.USER, "open", "won" if won else "lost"))


def at(m: int, d: int) -> datetime:
    return datetime(2026, m, d, 12, tzinfo=UTC)


REPS = [Rep("a", "Ann", role="ae"), Rep("b", "Bo", role="ae"), Rep("z", "Zed", role="ae"), Rep("m", "Max", role="manager")]


def company() -> Any:
    from salesprocess.store import MemoryStore

    s = MemoryStore()
    s.put(*REPS)
    s.put(*[Activity(f"a{i}", "call", at(4, 1 + i), owner_id="a") for i in range(10)])
    s.put(*[Activity(f"b{i}", "call", at(5, 1 + i), owner_id="b") for i in range(4)])
    s.save_deals([(d, None) for d in [
        closed("a1", "a", "800", at(4, 10), 20), closed("a2", "a", "400", at(5, 10), 40),
        closed("b1", "b", "200", at(4, 10), 60), closed("b2", "b", "100", at(5, 10), 10, won=False),
        closed("b3", "b", "100", at(6, 10), 10, won=False)]])
    return s


CARD = Scorecard("ae", [
    ScoreItem("won_revenue", "50", Money("1000", "CNY")),
    ScoreItem("win_rate", "25", "0.5"),
    ScoreItem("median_cycle_days", "25", "30"),
])


def test_scorecard_normalises_caps_and_ranks_by_hand() -> None:
    res = score_reps(CARD, company(), Q2)
    by = {r.rep_id: r for r in res}
    # a: 1200/1000 = 1.2; 2/2 won = 1.0 vs 0.5 → 2.0 capped 1.5; median 30 days → 1.0
    assert [(i.metric, i.ratio) for i in by["a"].items] == [
        ("won_revenue", Decimal("1.2")), ("win_rate", Decimal("1.5")), ("median_cycle_days", Decimal("1"))]
    assert by["a"].score == Decimal("122.50")  # (50 × 1.2 + 25 × 1.5 + 25 × 1) / 100 × 100
    # b: 200/1000 = 0.2; 1/3 won → 0.6667; 60 days → 0.5 (lower is better)
    assert by["b"].score == Decimal("39.17")
    assert by["z"].score == Decimal("0.00")  # no data scores 0, noted
    assert {i.note for i in by["z"].items} == {"no data: counts 0"}
    assert [(r.rep_id, r.rank, r.band) for r in res] == [("a", 1, "outstanding"), ("b", 2, "below"), ("z", 3, "below")]
    assert all(r.of == 3 for r in res)


def test_targets_come_from_explicit_targets_then_goals_then_defaults() -> None:
    goal = Goal("g1", "won_revenue", GoalScope("rep", "a"), Money("2400", "CNY"), Q2)
    other = Goal("g2", "won_revenue", GoalScope("rep", "b"), Money("1", "CNY"), Period.parse("2026-Q1"))
    res = score_reps(CARD, company(), Q2, goals=[goal, other], targets={("b", "win_rate"): Decimal("0.25")})
    by = {r.rep_id: r for r in res}
    assert (by["a"].item("won_revenue").ratio, by["a"].item("won_revenue").target_source) == (Decimal("0.5"), "goal")
    assert by["b"].item("won_revenue").target_source == "default"  # the Q1 goal is not this period's
    assert (by["b"].item("win_rate").ratio, by["b"].item("win_rate").target_source) == (Decimal("1.3333"), "explicit")


def test_missing_targets_are_problems_unless_not_strict() -> None:
    card = Scorecard("ae", [ScoreItem("won_revenue", "1", Money("1000", "CNY")), ScoreItem("deals_won", "1")])
    with pytest.raises(EvaluationError) as ei:
        score_reps(card, company(), Q2)
    assert sorted(p.path for p in ei.value.problems) == [
        "targets[a][deals_won]", "targets[b][deals_won]", "targets[z][deals_won]"]
    res = score_reps(card, company(), Q2, strict=False)
    a = next(r for r in res if r.rep_id == "a")
    assert a.score == Decimal("120.00")  # deals_won left out, its weight shared
    assert a.item("deals_won").note == "no target: left out"


def test_floor_and_training_metrics() -> None:
    card = Scorecard("ae", [ScoreItem("won_revenue", "1", Money("1000", "CNY"), floor="0.5"),
                            ScoreItem("training_hours", "1", "10")])
    cat = TrainingCatalog([TrainingModule("x", "X", hours="6"), TrainingModule("y", "Y", hours="2")])
    recs = [TrainingRecord("b", "x", date(2026, 4, 2)), TrainingRecord("b", "y", date(2026, 5, 2)),
            TrainingRecord("b", "x", date(2026, 3, 30))]
    by = {r.rep_id: r for r in score_reps(card, company(), Q2, training=recs, catalog=cat)}
    assert (by["b"].item("won_revenue").ratio, by["b"].item("won_revenue").note) == (Decimal(0), "below the floor 0.5: counts 0")
    assert (by["b"].item("training_hours").actual, by["b"].item("training_hours").ratio) == (Decimal(8), Decimal("0.8"))


def test_scorecard_definitions_are_checked() -> None:
    with pytest.raises(EvaluationError) as ei:
        Scorecard("ae", [ScoreItem("won_revenue", "0"), ScoreItem("won_revenue", "1", floor="2")])
    assert {p.code for p in ei.value.problems} == {"range", "duplicate"}
    assert band_for(Decimal("84.99"), [RatingBand("meets", "85"), RatingBand("below", "0")]) == "below"
    assert band_for(None, [RatingBand("x", "0")]) is None


# ------------------------------------------------------------------------------------------------
# 360° reviews
# ------------------------------------------------------------------------------------------------

POLICY = ReviewPolicy([Competency("c1", "One"), Competency("c2", "Two")])


def rv(rid: str, rater: str, group: str, c1: int, c2: int, subject: str = "a") -> Review:
    return Review(rid, subject, rater, group, Q2, {"c1": c1, "c2": c2})


def test_groups_below_their_minimum_are_hidden_and_weights_renormalised() -> None:
    reviews = [rv("1", "a", "self", 5, 5), rv("2", "m", "manager", 2, 4),
               rv("3", "p1", "peer", 4, 3), rv("4", "p2", "peer", 4, 3),  # two peers: hidden (min 3)
               rv("5", "k1", "customer", 3, 5), rv("6", "k2", "customer", 5, 5)]
    r = aggregate_reviews(reviews, POLICY, "a", Q2)
    assert r.hidden == (RaterGroup.PEER,)
    peer = next(g for g in r.groups if g.group is RaterGroup.PEER)
    assert (peer.raters, peer.shown, dict(peer.scores)) == (2, False, {"c1": None, "c2": None})
    c1 = r.competency("c1")
    # manager 2 (weight 0.4) and customers 4 (weight 0.2): (0.8 + 0.8) / 0.6
    assert c1.others == Decimal("2.67")
    assert (c1.self_score, c1.gap) == (Decimal("5.00"), Decimal("2.33"))
    assert dict(c1.by_group) == {RaterGroup.MANAGER: Decimal("2.00"), RaterGroup.CUSTOMER: Decimal("4.00")}
    assert r.competency("c2").others == Decimal("4.33")
    assert r.overall == Decimal("3.50")
    assert r.normalised == Decimal("62.50")


@settings(max_examples=30, deadline=None)
@given(peers=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=0, max_size=6))
def test_a_hidden_group_never_moves_the_result(peers: list[tuple[int, int]]) -> None:
    base = [rv("m", "m", "manager", 3, 3), rv("k1", "k1", "customer", 4, 2), rv("k2", "k2", "customer", 2, 4)]
    with_peers = base + [rv(f"p{i}", f"p{i}", "peer", x, y) for i, (x, y) in enumerate(peers)]
    r = aggregate_reviews(with_peers, POLICY, "a", Q2)
    if len(peers) < 3:
        assert r == aggregate_reviews(base, POLICY, "a", Q2) or r.hidden == (RaterGroup.PEER,)
        assert r.competency("c1").others == aggregate_reviews(base, POLICY, "a", Q2).competency("c1").others
    else:
        assert RaterGroup.PEER not in r.hidden


def test_review_problems_are_all_reported() -> None:
    bad = [rv("1", "b", "self", 3, 3), rv("2", "a", "peer", 3, 3), rv("3", "m", "manager", 9, 3),
           Review("4", "a", "m", "manager", Q2, {"c9": 3}), rv("4", "x", "peer", 3, 3)]
    probs = check_reviews(bad, POLICY)
    assert sorted((p.path, p.code) for p in probs) == sorted([
        ("reviews[1]", "self"), ("reviews[2]", "self"), ("reviews[3].ratings.c1", "range"),
        ("reviews[4].ratings.c9", "unknown"), ("reviews[4]", "duplicate"), ("reviews[4]", "duplicate")])
    with pytest.raises(EvaluationError):
        aggregate_reviews(bad, POLICY, "a", Q2)


# ------------------------------------------------------------------------------------------------
# training and the combined evaluation
# ------------------------------------------------------------------------------------------------

CATALOG = TrainingCatalog([
    TrainingModule("basics", "Basics", competencies=["c1"]),
    TrainingModule("advanced", "Advanced", competencies=["c1"], prerequisites=["basics"]),
    TrainingModule("speed", "Speed", kpis=["median_cycle_days"]),
    TrainingModule("closing", "Closing", kpis=["win_rate", "won_revenue"]),
])


def test_recommendations_skip_recent_modules_and_put_prerequisites_first() -> None:
    gaps = [("competency", "c1", Decimal("0.5"), "c1 low"), ("kpi", "median_cycle_days", Decimal("0.2"), "slow")]
    recs = CATALOG.recommend(gaps, [], rep_id="a", on=date(2026, 6, 30), limit=0)
    assert [(r.priority, r.module.id) for r in recs] == [(1, "basics"), (2, "advanced"), (3, "speed")]
    assert "prerequisite of advanced" in recs[0].reasons
    done = [TrainingRecord("a", "basics", date(2026, 1, 5)), TrainingRecord("a", "speed", date(2025, 1, 5))]
    recs = CATALOG.recommend(gaps, done, rep_id="a", on=date(2026, 6, 30))
    assert [r.module.id for r in recs] == ["advanced", "speed"]  # speed was taken over a year ago
    with pytest.raises(EvaluationError):
        TrainingCatalog([TrainingModule("x", "X", prerequisites=["nope"])])


def test_evaluation_combines_lists_strengths_weaknesses_and_follows_up_on_training() -> None:
    store = company()
    reviews = [rv("1", "b", "self", 5, 3, subject="b"), rv("2", "m", "manager", 2, 3, subject="b")]
    policy = EvaluationPolicy(quantitative="0.5", qualitative="0.5")
    evs = evaluate(store, Q2, scorecards=CARD, reviews=reviews, review_policy=POLICY, policy=policy,
                   catalog=CATALOG, training=[TrainingRecord("b", "basics", date(2026, 2, 1))])
    b = next(e for e in evs if e.rep_id == "b")
    # scorecard 39.17; reviews: manager c1 2 → 25, c2 3 → 50: 37.50 on 0–100
    assert (b.quantitative, b.qualitative) == (Decimal("39.17"), Decimal("37.50"))
    assert b.score == Decimal("38.33")  # from the unrounded 39.1666… and 37.5
    # ordered by distance from the threshold: 1 − 0.2; gap 3 of a 4-point scale; 1 − 0.5; 1 − 0.667; (3 − 2) / 4
    assert [(o.kind, o.key) for o in b.weaknesses] == [
        ("kpi", "won_revenue"), ("blind_spot", "c1"), ("kpi", "median_cycle_days"), ("kpi", "win_rate"),
        ("competency", "c1")]
    assert [r.module.id for r in b.recommendations] == ["closing", "advanced", "speed"]
    a = next(e for e in evs if e.rep_id == "a")
    assert a.notes == ("no 360° score: the scorecard alone counts",)
    assert a.score == a.quantitative
    assert [(e.rep_id, e.rank) for e in evs] == [("a", 1), ("b", 2), ("z", 3)]
    # next quarter: b took 'speed' and closes faster
    store.save_deals([(closed("b9", "b", "900", at(8, 1), 15), None)])
    q3 = Period.parse("2026-Q3")
    later = evaluate(store, q3, scorecards=CARD, catalog=CATALOG, previous=evs, reps=[REPS[1]],
                     training=[TrainingRecord("b", "speed", date(2026, 7, 2))])
    (fu,) = [f for f in later[0].follow_up if f.module_id == "speed"]
    assert (fu.kind, fu.key, fu.before, fu.after, fu.improved) == ("kpi", "median_cycle_days", Decimal("0.5"),
                                                                    Decimal("1.5"), True)
    assert [r.module_id for r in later[0].training_completed] == ["speed"]


def test_reviews_training_and_evaluations_persist_in_sqlite(tmp_path: Path) -> None:
    from salesprocess_adapters.sqlite import SQLiteStore

    s = SQLiteStore(tmp_path / "e.sqlite")
    reviews = [rv("1", "a", "self", 5, 4), rv("2", "m", "manager", 3, 4)]
    save_reviews(s, reviews)
    save_training_records(s, [TrainingRecord("a", "basics", date(2026, 1, 2), Decimal("88"))])
    assert {r.id: r for r in load_reviews(s, period=Q2, subject_id="a")} == {r.id: r for r in reviews}
    assert load_reviews(s, period=Period.parse("2026-Q1")) == []
    assert load_training_records(s, "a") == [TrainingRecord("a", "basics", date(2026, 1, 2), Decimal("88"))]
    for r in reviews:
        s.put_document("x", r.id, {})
    s.save_deals([(d, None) for d in company().deals()])
    s.put(*REPS)
    evs = evaluate(s, Q2, scorecards=CARD, reviews=load_reviews(s, period=Q2), review_policy=POLICY, catalog=CATALOG)
    save_evaluations(s, evs)
    back = {e.rep_id: e for e in load_evaluations(s)}
    for e in evs:
        assert back[e.rep_id].to_dict() == e.to_dict()
    s.close()


def test_the_how_to_configuration_file_loads(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "how-to" / "evaluation.md").read_text(encoding="utf-8")
    (toml,) = re.findall(r"```toml\n(.*?)```", text, re.S)
    cfg = EvaluationConfig.from_toml(toml)
    card = cfg.scorecard("ae")
    assert [i.metric for i in card.items] == ["won_revenue", "win_rate", "median_cycle_days", "activities"]
    assert card.items[0].target == Money("400000", "CNY")
    assert cfg.review_policy is not None
    assert cfg.review_policy.weight(RaterGroup.MANAGER) == Decimal("0.5")
    assert cfg.review_policy.minimum(RaterGroup.PEER) == 3
    assert [b.name for b in cfg.policy.bands] == ["outstanding", "meets", "below"]
    assert cfg.catalog is not None
    assert cfg.catalog.get("spin").kpis == frozenset({"win_rate"})
    bad = tmp_path / "bad.toml"
    bad.write_text('[evaluation]\nquantitative = 0.6\n\n[[scorecards]]\nrole = "ae"\n\n'
                   '[[scorecards.items]]\nmetric = "won_revenue"\n', encoding="utf-8")
    with pytest.raises(PlanFileError) as ei:
        EvaluationConfig.from_toml(bad)
    assert {(p.path, ei.value.line_of(p)) for p in ei.value.problems} == {
        ("evaluation.quantitative", 2), ("scorecards[0].items[0].weight", 7)}


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------

CONFIG = """
[[scorecards]]
role = "ae"

[[scorecards.items]]
metric = "won_revenue"
weight = "50"
target = "1000"
currency = "CNY"

[[scorecards.items]]
metric = "win_rate"
weight = "25"
target = "0.5"

[[scorecards.items]]
metric = "median_cycle_days"
weight = "25"
target = "30"

[reviews]

[[reviews.competencies]]
key = "c1"

[[reviews.competencies]]
key = "c2"

[[training]]
id = "closing"
title = "Closing"
kpis = ["won_revenue"]
"""


@pytest.fixture
def db(tmp_path: Path) -> str:
    from salesprocess_adapters.sqlite import SQLiteStore

    path = tmp_path / "sales.sqlite"
    s = SQLiteStore(path)
    s.put(*REPS)
    s.save_deals([(d, None) for d in company().deals()])
    s.close()
    return str(path)


def test_cli_evaluate_saves_and_follows_up(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "eval.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    reviews = tmp_path / "reviews.json"
    reviews.write_text(json.dumps([r.to_dict() for r in [rv("1", "m", "manager", 2, 3, subject="b")]]), encoding="utf-8")
    training = tmp_path / "training.json"
    training.write_text(json.dumps([{"rep_id": "b", "module_id": "closing", "completed_on": "2026-07-03"}]),
                        encoding="utf-8")
    assert main(["evaluate", "--db", db, "--config", str(cfg), "--period", "2026-Q2", "--reviews", str(reviews),
                 "--save", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(e["rep_id"], e["rank"], e["score"]) for e in out] == [("a", 1, "122.50"), ("b", 2, "38.50"),
                                                                   ("z", 3, "0.00")]
    assert out[1]["recommendations"][0]["module"] == "closing"
    assert main(["evaluate", "--db", db, "--config", str(cfg), "--period", "2026-Q3", "--training", str(training),
                 "--rep", "b"]) == 0
    text = capsys.readouterr().out
    assert "closing (2026-07-03): won_revenue 0.2 →" in text
    assert main(["evaluate", "--db", db, "--config", str(cfg), "--period", "2026-Q2", "--rep", "m"]) == 1
    capsys.readouterr()
    assert main(["evaluate", "--db", db, "--config", str(cfg), "--period", "2026-Q2"]) == 0
    table = capsys.readouterr().out
    assert re.search(r"^\s*1\s+a\s+Ann", table, re.M)
