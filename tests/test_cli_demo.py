"""`salesprocess demo`: generates into a SQLite file, summarises it, and reuses it next time."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from salesprocess import DealStatus, SalesProcess
from salesprocess.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_demo_summary_matches_the_store_and_is_reused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "demo.sqlite"
    rc, out, err = _run(capsys, "demo", "--db", str(db), "--deals", "120", "--seed", "3",
                        "--months", "9", "--format", "json")
    assert rc == 0, err
    assert "generating deals" in err  # progress is shown while it works
    first = json.loads(out)
    assert first["store"]["action"] == "created"
    assert first["store"]["deals"] == 120

    store = SalesProcess().open_store(str(db))
    try:
        deals = list(store.deals())
    finally:
        store.close()
    assert len(deals) == 120
    by_stage: dict[str, int] = {}
    for d in deals:
        by_stage[d.stage] = by_stage.get(d.stage, 0) + 1
    assert {r["stage"]: r["deals"] for r in first["deals_by_stage"]} == by_stage
    won = [d for d in deals if d.status is DealStatus.WON]
    lost = [d for d in deals if d.status is DealStatus.LOST]
    assert first["deals_won"] == len(won)
    assert first["deals_lost"] == len(lost)
    assert Decimal(first["won_value"]) == sum((d.amount.amount for d in won if d.amount), Decimal(0))
    open_value = sum((d.amount.amount for d in deals if d.is_open and d.amount), Decimal(0))
    assert Decimal(first["open_pipeline_value"]) == open_value
    if won or lost:
        assert Decimal(first["win_rate"]) == Decimal(len(won)) / (len(won) + len(lost))
    for s in first["stalled"]:
        assert s["days_in_stage"] > s["sla_days"]

    rc, out, _ = _run(capsys, "demo", "--db", str(db), "--format", "json")
    assert rc == 0
    again = json.loads(out)
    assert again["store"]["action"] == "reused"
    assert again["deals_by_stage"] == first["deals_by_stage"]
    assert again["won_value"] == first["won_value"]


def test_demo_same_seed_same_company(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outs = []
    for name in ("a.sqlite", "b.sqlite"):
        rc, out, _ = _run(capsys, "demo", "--db", str(tmp_path / name), "--deals", "60", "--seed", "11",
                          "--months", "6", "--format", "json", "--quiet")
        assert rc == 0
        data = json.loads(out)
        data.pop("store")
        outs.append(data)
    assert outs[0] == outs[1]


def test_demo_table_output_and_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.sqlite"
    rc, out, _ = _run(capsys, "demo", "--db", str(db), "--deals", "40", "--months", "4", "--quiet")
    assert rc == 0
    for heading in ("Deals by stage", "Pipeline", "Stalled deals", "Top reps"):
        assert heading in out
    assert "潜在客户识别" in out  # Chinese stage names of the shipped B2B process
    rc, _, err = _run(capsys, "demo", "--db", str(db), "--fresh")
    assert rc == 2
    assert "--fresh" in err


def test_demo_writes_the_weekly_review_of_the_latest_week(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from salesprocess.codec import instant
    from salesprocess.goals import load_goals
    from salesprocess.review import review_week

    db = tmp_path / "r.sqlite"
    rc, out, _ = _run(capsys, "demo", "--db", str(db), "--deals", "150", "--months", "6", "--quiet",
                      "--format", "json")
    assert rc == 0
    data = json.loads(out)
    path = Path(data["review"]["path"])
    assert path == tmp_path / "salesprocess-review.html"  # next to the database
    assert data["review"]["week"] == review_week(instant(data["store"]["asof"])).label
    html = path.read_text(encoding="utf-8")
    for section in ("summary", "goals", "pipeline", "funnel", "forecast", "risk", "contests", "feedback", "actions"):
        assert f'<section id="{section}"' in html
    assert 'id="chart-attainment-fig"' in html  # the demo company got goals for the quarter
    store = SalesProcess().open_store(str(db))
    try:
        goals = len(load_goals(store))
    finally:
        store.close()
    assert goals > 3

    rc, out, _ = _run(capsys, "demo", "--db", str(db), "--quiet", "--review-out", str(tmp_path / "w.html"))
    assert rc == 0
    assert str(tmp_path / "w.html") in out
    assert (tmp_path / "w.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    store = SalesProcess().open_store(str(db))
    try:
        assert len(load_goals(store)) == goals  # goals are set once
    finally:
        store.close()

    rc, out, _ = _run(capsys, "demo", "--db", str(db), "--quiet", "--no-review", "--format", "json")
    assert rc == 0
    assert "review" not in json.loads(out)
