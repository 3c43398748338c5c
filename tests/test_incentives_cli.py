"""``salesprocess commissions`` on a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from salesprocess.cli import main
from salesprocess.model import AmountChanged, Deal, DealWon, EventSource, Rep
from salesprocess.money import Money

PLAN = """
key = "cli"
name = "CLI plan"
currency = "CNY"
settlement = "month"
attainment = "quarter"

[[versions]]
version = 1
effective_from = 2026-01-01
quota = "1000"
eligible = { roles = ["ae"] }

[versions.rates]
mode = "retroactive"

[[versions.rates.tiers]]
name = "low"
from = "0"
rate = "0.05"

[[versions.rates.tiers]]
name = "high"
from = "1"
rate = "0.10"

[versions.clawback]
days = 60
"""


def won(did: str, owner: str, amount: str, when: datetime) -> Deal:
    d = Deal.create(did, process="p", stage="open", at=when - timedelta(days=9), actor="t",
                    amount=Money(amount, "CNY"), owner_id=owner)
    return d.append(DealWon(did, when, "t", EventSource.USER, "open", "won"))


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    from salesprocess_adapters.sqlite import SQLiteStore

    db = tmp_path / "pay.sqlite"
    s = SQLiteStore(db)
    s.put(Rep("r1", "One", role="ae"), Rep("r2", "Two", role="ae"))
    s.save_deals([(won("a", "r1", "600", datetime(2026, 4, 3, tzinfo=UTC)), None),
                  (won("b", "r1", "600", datetime(2026, 6, 3, tzinfo=UTC)), None),
                  (won("c", "r2", "300.50", datetime(2026, 5, 3, tzinfo=UTC)), None)])
    s.close()
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN, encoding="utf-8")
    return str(db), str(plan)


def test_table_and_json_statements(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, plan = files
    assert main(["commissions", "--db", db, "--plan", plan, "--period", "2026-Q2"]) == 0
    out = capsys.readouterr().out
    assert "6 statement(s), total 135.03 CNY" in out
    assert main(["commissions", "--db", db, "--plan", plan, "--period", "2026-Q2", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == "135.03"
    june = next(s for s in data["statements"] if s["rep_id"] == "r1" and s["period"] == "2026-06")
    # the quota is passed in June: 'a' earns its true-up to 10 %, 'b' earns 10 %
    assert [(ln["kind"], ln["deal_id"], ln["amount"], ln["rule"]) for ln in june["lines"]] == [
        ("true_up", "a", "60.00", "tier:high"), ("true_up", "a", "-30.00", "tier:low"),
        ("commission", "b", "60.00", "tier:high")]
    assert june["total"] == "90.00"
    assert june["attainment"] == "1.2"
    assert len(june["digest"]) == 64


def test_lines_as_csv_for_one_rep(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, plan = files
    assert main(["commissions", "--db", db, "--plan", plan, "--period", "2026-05", "--rep", "r2", "--lines",
                 "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["rep"], r["kind"], r["amount"], r["event"], r["base"], r["rate"]) for r in rows] == [
        ("r2", "commission", "15.03", "c#1", "300.50", "0.05")]


def test_save_then_check_finds_a_changed_history(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, plan = files
    assert main(["commissions", "--db", db, "--plan", plan, "--period", "2026-Q2", "--save"]) == 0
    capsys.readouterr()
    assert main(["commissions", "--db", db, "--plan", plan, "--period", "2026-Q2", "--check"]) == 0
    assert "changed" not in capsys.readouterr().out
    # the plan was kept too: its key now names it
    assert main(["commissions", "--db", db, "--plan", "cli", "--period", "2026-05", "--rep", "r2"]) == 0
    assert "15.03 CNY" in capsys.readouterr().out
    from salesprocess_adapters.sqlite import SQLiteStore

    s = SQLiteStore(db)
    d = s.get_deal("c")
    s.save_deal(d.append(AmountChanged("c", datetime(2026, 5, 20, tzinfo=UTC), "t", EventSource.USER,
                                       Money("300.50", "CNY"), Money("400", "CNY"))), expected_version=d.version)
    s.close()
    assert main(["commissions", "--db", db, "--plan", plan, "--period", "2026-Q2", "--check", "--format", "json"]) == 1
    checks = json.loads(capsys.readouterr().out)
    changed = [(c["rep"], c["period"]) for c in checks if c["status"] == "changed"]
    # May gains the raise; June's attainment to date moves with it
    assert changed == [("r2", "2026-05"), ("r2", "2026-06")]
    assert main(["commissions", "--db", db, "--plan", plan, "--period", "2026-Q2", "--save"]) == 1
    assert "--replace" in capsys.readouterr().err


def test_what_if_and_inputs_file(files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, plan = files
    assert main(["commissions", "--db", db, "--plan", plan, "--period", "2026-Q2", "--rep", "r2",
                 "--what-if", "800", "--at", "2026-06-10T10:00:00+00:00", "--format", "json"]) == 0
    w = json.loads(capsys.readouterr().out)
    # 300.50 + 800 passes the quota: 80 on the new deal, and 'c' goes from 15.03 (5 %, rounded) to 30.05
    assert (w["commission"], w["true_up"], w["estimate"]) == ("80.00", "15.02", "95.02")
    inputs = tmp_path / "q2.json"
    inputs.write_text(json.dumps({"refunds": [{"id": "R1", "deal_id": "b", "at": "2026-07-02T00:00:00+00:00"}]}),
                      encoding="utf-8")
    assert main(["commissions", "--db", db, "--plan", plan, "--period", "2026-07", "--rep", "r1", "--lines",
                 "--inputs", str(inputs), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["kind"], r["amount"], r["event"]) for r in rows] == [
        ("clawback", "-60.00", "refund:R1"), ("carry_forward", "60.00", "")]


def test_problems_and_bad_files_exit_1_naming_them(files: tuple[str, str], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    db, plan = files
    bad = tmp_path / "bad.toml"
    bad.write_text(PLAN.replace('rate = "0.10"', "rate = 0.10"), encoding="utf-8")
    assert main(["commissions", "--db", db, "--plan", str(bad), "--period", "2026-Q2"]) == 1
    assert f"{bad}:25: versions[0].rates.tiers[1].rate" in capsys.readouterr().err
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"splits": [{"deal_id": "a", "rep_id": "r1", "share": "0.5"}]}), encoding="utf-8")
    assert main(["commissions", "--db", db, "--plan", plan, "--period", "2026-Q2", "--inputs", str(inputs)]) == 1
    err = capsys.readouterr().err
    assert "splits[a]" in err
    assert "50" in err
    assert "--no-strict" in err
    assert main(["commissions", "--db", db, "--plan", plan, "--period", "2026-Q2", "--inputs", str(inputs),
                 "--no-strict"]) == 0
    assert "warning: splits[a]" in capsys.readouterr().err
    assert main(["commissions", "--db", db, "--plan", plan, "--period", "2026-13"]) == 2
