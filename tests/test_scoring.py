"""Win scoring: rule points, the naive Bayes model and its explanations, calibration."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _risk_fixtures import MINI, REPS, TEAMS, at, company, dataset, make
from salesprocess.app import SalesProcess
from salesprocess.errors import DefinitionError, DomainError
from salesprocess.money import Rate
from salesprocess.scoring import (
    DEFAULT_FEATURES,
    NaiveBayesModel,
    RuleSet,
    calibration_report,
    score_deals,
    train,
)
from salesprocess.scoring.calibration import metrics

RULES = """
base = 10

[[rules]]
name = "enterprise"
points = 15
when = { size_band = "enterprise" }

[[rules]]
name = "late_stage"
points = "20.5"
when = { stage = ["b", "c"], amount = { min = 500 } }

[[rules]]
name = "competitor"
points = -8
when = { has_competitor = true }
"""


def run(argv: list[str]) -> int:
    """The command line. Imported when called: importing ``salesprocess.cli.main`` at collection
    would shadow the ``salesprocess.cli.main`` function other test modules import."""
    from salesprocess.cli.main import run as _run

    return _run(argv)


def test_rule_points_add_up_and_name_each_rule() -> None:
    rs = RuleSet.from_toml(RULES)
    s = rs.score("d", {"size_band": "enterprise", "stage": "c", "amount": Decimal(800),
                       "has_competitor": True})
    assert [r.name for r in s.matched] == ["enterprise", "late_stage", "competitor"]
    assert s.score == Decimal("37.5")
    assert s.score == s.base + sum(r.points for r in s.matched)
    assert rs.score("e", {"size_band": "smb", "stage": "c", "amount": Decimal(100),
                          "has_competitor": False}).score == Decimal(10)


def test_rule_file_errors_are_all_reported() -> None:
    bad = """
[[rules]]
points = "many"
when = { colour = "red", amount = { above = 3 } }

[[rules]]
name = "x"
points = 1
speed = 3
"""
    with pytest.raises(DefinitionError) as e:
        RuleSet.from_toml(bad)
    paths = {p.path for p in e.value.problems}
    assert {"rules[0].name", "rules[0].points", "rules[0].when.colour", "rules[0].when.amount",
            "rules[1].speed"} <= paths


def test_model_math_on_a_tiny_history() -> None:
    m = NaiveBayesModel(["stage"], 1.0, {"stage": {"b": (3, 1), "c": (1, 3)}}, 4, 4, [])
    s = m.score_attributes("x", {"stage": "b"})
    # K = 2 seen values + 1; P(b|won) = 4/7, P(b|lost) = 2/7 → ln 2
    assert s.factors[0].contribution == Decimal(repr(math.log(2))).quantize(Decimal("0.0001"))
    assert s.intercept == Decimal("0.0000")
    assert s.probability == Rate("0.6667")
    unseen = m.score_attributes("y", {"stage": "zzz"})
    assert unseen.factors[0].contribution == Decimal("0.0000")  # (0+1)/7 on both sides


@settings(max_examples=60, deadline=None)
@given(
    counts=st.dictionaries(st.sampled_from("abcde"), st.tuples(st.integers(0, 50), st.integers(0, 50)),
                           min_size=1),
    value=st.sampled_from("abcdez"),
    a=st.floats(0.2, 3.0),
    b=st.floats(-2.0, 2.0),
)
def test_contributions_add_up_to_the_logit(counts: dict[str, tuple[int, int]], value: str,
                                           a: float, b: float) -> None:
    nw = sum(w for w, _ in counts.values()) + 1
    nl = sum(lo for _, lo in counts.values()) + 1
    m = NaiveBayesModel(["f", "g"], 1.0, {"f": counts, "g": counts}, nw, nl, [], a=a, b=b)
    s = m.score_attributes("x", {"f": value, "g": value})
    assert s.intercept + sum(f.contribution for f in s.factors) == s.logit
    assert abs(float(s.probability.value) - 1 / (1 + math.exp(-float(s.logit)))) <= 5e-5


def test_training_uses_only_deals_closed_by_then() -> None:
    ds = company()
    asof = at(0).replace(year=2025, month=6, day=1)
    m1 = train(ds, asof=asof)
    assert m1.samples > 100
    assert set(m1.counts) == set(DEFAULT_FEATURES)
    # deals closing later change nothing
    later = train(ds.view(asof), asof=asof)
    assert (later.n_won, later.n_lost, later.counts) == (m1.n_won, m1.n_lost, m1.counts)
    assert (later.a, later.b) == (m1.a, m1.b)


def test_too_little_history_is_refused() -> None:
    ds = dataset([make("only", stage="b", moves=[("won", 3)])])
    with pytest.raises(DomainError, match="not enough history"):
        train(ds, asof=at(10))


def test_score_deals_explains_each_deal() -> None:
    ds = company()
    asof = at(0).replace(year=2025, month=10, day=1)
    scores = score_deals(ds, asof=asof, rules=RuleSet.from_toml(RULES))
    assert scores
    for s in scores[:20]:
        assert s.win.intercept + sum(f.contribution for f in s.win.factors) == s.win.logit
        assert {f.feature for f in s.win.factors} == set(DEFAULT_FEATURES)
        assert s.rules is not None
        assert s.win.explain()[-1].startswith("log-odds")


def test_calibration_metrics() -> None:
    perfect = metrics("p", [1.0, 0.0, 1.0], [True, False, True])
    assert perfect.brier == Decimal("0.0000")
    coin = metrics("c", [0.5] * 4, [True, False, True, False])
    assert coin.brier == Decimal("0.2500")
    assert coin.log_loss == Decimal(repr(math.log(2))).quantize(Decimal("0.0001"))
    assert coin.bins[5].samples == 4
    assert coin.bins[5].observed == Rate("0.5")
    assert sum(b.samples for b in coin.bins) == 4


def test_calibration_report_compares_with_stage_defaults() -> None:
    ds = company()
    rep = calibration_report(ds, asof=at(0).replace(year=2026, month=1, day=1))
    names = [p.name for p in rep.predictors]
    assert names == ["model", "stage_default", "historical"]
    n = rep.predictors[0].samples
    for p in rep.predictors:
        assert p.samples == n
        assert sum(b.samples for b in p.bins) == n
        assert Decimal(0) <= p.brier <= Decimal(1)
    assert rep.train_deals > rep.test_deals > 0


def test_cli_score_explain_and_calibration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.sqlite"
    store = SalesProcess().open_store(db)
    try:
        store.save_process(MINI)
        store.put(*TEAMS, *REPS)
        deals = [make(f"h{i}", owner="r1" if i % 2 else "r3", created=i, stage="b",
                      moves=[("won" if i % 3 else "lost", i + 5)]) for i in range(40)]
        deals.append(make("open", owner="r1", created=50, stage="c"))
        store.save_deals((d, None) for d in deals)
    finally:
        store.close()
    assert run(["score", "--db", str(db), "--asof", "2026-03-01", "--explain", "open",
                "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["deal_id"] == "open"
    logit = Decimal(out["intercept"]) + sum(Decimal(f["contribution"]) for f in out["factors"])
    assert logit == Decimal(out["logit"])
    assert run(["score", "--db", str(db), "--asof", "2026-03-01", "--calibration",
                "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in rep["predictors"]] == ["model", "stage_default", "historical"]


def test_platt_scaling_stays_sane_on_separable_data() -> None:
    from salesprocess.scoring.bayes import _platt

    z = [float(i) for i in range(-20, 20)]
    y = [v > 0 for v in z]  # perfectly separable: plain maximum likelihood runs to infinity
    a, b = _platt(z, y)
    assert 0 < a < 10
    assert abs(b) < 5
    assert _platt([0.0] * 30, [True] * 15 + [False] * 15) == pytest.approx((1.0, 0.0), abs=1e-6)
