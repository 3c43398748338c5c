"""``salesprocess kpi`` on a real SQLite file, checked against the library's calculators."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from _kpi_company import ACCOUNTS, PRODUCTS, REPS, SAAS, TEAMS, at, deal, lost, won
from salesprocess.cli import main
from salesprocess.kpi import Dataset, compute
from salesprocess.periods import Period
from salesprocess_adapters.sqlite import SQLiteStore

CORE = [
    "deals_won",
    "deals_lost",
    "win_rate",
    "won_revenue",
    "avg_won_deal_size",
    "median_cycle_days",
    "mean_cycle_days",
    "open_pipeline_value",
    "weighted_pipeline_value",
]


def _deals():
    return [
        won("w1", "r1", at(0), at(10), "100.00", account="a1", products=("p1",)),
        won("w2", "r1", at(2), at(32), "300.00", account="a2", products=("p1", "p2")),
        lost("l1", "r1", at(3), at(23)),
        won("w3", "r2", at(1), at(5), "50.00", account="a1"),
        deal("o1", "r2", at(6), [("demo", at(7))], amount="200.00"),
        deal("o2", "r3", at(8), amount="80.00", account="a3"),
        won("w4", "r3", at(40), at(70), "70.50", account="a3", products=("p2",)),
    ]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "co.sqlite"
    s = SQLiteStore(path)
    s.save_process(SAAS)
    s.put(*REPS, *TEAMS, *ACCOUNTS, *PRODUCTS)
    s.save_deals((d, None) for d in _deals())
    s.close()
    return str(path)


def ds():
    return Dataset(
        _deals(), reps=REPS, teams=TEAMS, accounts=ACCOUNTS, products=PRODUCTS, processes=[SAAS]
    )


def run_json(capsys, *argv):
    capsys.readouterr()
    rc = main(["kpi", *argv, "--format", "json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out)


def as_text(v):
    if v is None:
        return None
    return str(getattr(v, "amount", v))


@pytest.mark.parametrize(
    "by",
    [
        [],
        ["owner"],
        ["team"],
        ["region"],
        ["product"],
        ["account"],
        ["stage"],
        ["owner", "product"],
    ],
)
def test_json_matches_the_library(capsys, db, by):
    obj = run_json(capsys, "--db", db, *(["--by", *by] if by else []))
    assert obj["metrics"] == CORE
    assert obj["by"] == by
    expect = compute(ds(), CORE, by=by, engine="python")
    assert len(obj["rows"]) == len(expect.rows)
    for got, row in zip(obj["rows"], expect.rows, strict=True):
        for k, v in row.key.items():
            assert got[k] == v
        for m in CORE:
            assert got[m] == as_text(row.values[m]), (m, row.key)


def test_period_grouping_window_and_hand_checked_values(capsys, db):
    obj = run_json(
        capsys,
        "--db",
        db,
        "--metric",
        "deals_won",
        "won_revenue",
        "win_rate",
        "--by",
        "owner",
        "--period",
        "month",
        "--from",
        "2026-01-01",
        "--to",
        "2026-03-31",
    )
    assert obj["by"] == ["owner", "period"]
    rows = {(r["owner"], r["period"]): r for r in obj["rows"]}
    # r1 in January: w1 won (100), l1 lost -> 1 won, 1 lost
    assert rows[("r1", "2026-01")]["deals_won"] == "1"
    assert rows[("r1", "2026-01")]["win_rate"] == "0.5"
    assert rows[("r1", "2026-02")]["won_revenue"] == "300.00"
    assert rows[("r3", "2026-03")]["won_revenue"] == "70.50"
    assert rows[("r2", "2026-03")]["won_revenue"] == "0.00"
    assert obj["periods"] == ["2026-01", "2026-02", "2026-03"]


def test_asof_and_where(capsys, db):
    obj = run_json(
        capsys,
        "--db",
        db,
        "--metric",
        "deals_won",
        "open_pipeline_value",
        "--asof",
        at(9).isoformat(),
        "--where",
        "team=t1",
    )
    lib = compute(ds(), ["deals_won", "open_pipeline_value"], asof=at(9), where={"team": "t1"})
    assert obj["rows"][0]["deals_won"] == as_text(lib.value("deals_won")) == "1"
    assert obj["rows"][0]["open_pipeline_value"] == as_text(lib.value("open_pipeline_value"))
    # a date means the end of that day
    obj2 = run_json(capsys, "--db", db, "--metric", "deals_won", "--asof", "2026-01-14")
    assert obj2["rows"][0]["deals_won"] == "1"  # w3 on Jan 10; w1 on Jan 15


def test_csv_and_table(capsys, db):
    capsys.readouterr()
    assert (
        main(
            [
                "kpi",
                "--db",
                db,
                "--metric",
                "deals_won",
                "win_rate",
                "--by",
                "owner",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["owner"] for r in rows] == ["r1", "r2", "r3"]
    assert rows[0]["win_rate"] == "0.6666666667"
    assert main(["kpi", "--db", db, "--metric", "win_rate", "won_revenue"]) == 0
    out = capsys.readouterr().out
    assert "80.0%" in out
    assert "520.50 CNY" in out


def test_compare_month_over_month(capsys, db):
    capsys.readouterr()
    rc = main(
        [
            "kpi",
            "--db",
            db,
            "--metric",
            "deals_won",
            "--from",
            "2026-02-01",
            "--to",
            "2026-02-28",
            "--compare",
            "MoM",
            "--format",
            "json",
        ]
    )
    assert rc == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["period"] == "2026-02"
    r = obj["rows"][0]
    assert (r["current"], r["previous"], r["change"]) == (1, 2, -1)


def test_bad_input_is_one_readable_error(capsys, db):
    capsys.readouterr()
    assert main(["kpi", "--db", db, "--metric", "no_such_kpi", "--by", "colour"]) == 1
    err = capsys.readouterr().err
    assert "no_such_kpi" in err
    assert "colour" in err
    assert main(["kpi", "--db", db, "--to", "2026-01-01"]) == 2
    assert "--to needs --from" in capsys.readouterr().err
    assert main(["kpi", "--db", db, "--tz", "Mars/Base"]) == 2


def test_list_shows_every_kpi(capsys, db):
    capsys.readouterr()
    assert main(["kpi", "--list", "--format", "json"]) == 0
    names = {r["name"] for r in json.loads(capsys.readouterr().out)}
    assert {"win_rate", "won_revenue", "stage_conversion:<stage>", "nps"} <= names


def test_money_strings_are_exact_cents(capsys, db):
    obj = run_json(capsys, "--db", db, "--metric", "won_revenue", "avg_won_deal_size")
    assert obj["rows"][0]["won_revenue"] == "520.50"
    assert Decimal(obj["rows"][0]["avg_won_deal_size"]) == Decimal("130.12")  # 520.50/4 half-even
    assert obj["currency"] == "CNY"
    _ = (date, datetime, UTC, Period)


def test_fiscal_quarters(capsys, db):
    obj = run_json(capsys, "--db", db, "--metric", "deals_won", "--period", "fiscal_quarter",
                   "--fiscal-start", "4")
    # a fiscal year starting in April: January to March 2026 is FY2026-Q4 (not calendar Q1)
    got = {r["period"]: r["deals_won"] for r in obj["rows"]}
    assert got == {"FY2026-Q4": "4"}
    capsys.readouterr()
    assert main(["kpi", "--db", db, "--fiscal-start", "13"]) == 2
