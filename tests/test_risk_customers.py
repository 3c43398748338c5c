"""Customer risk: credit exposure and grades, the credit-limit guard, churn signals, alerts that
fire once per condition, and the risk command."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from _risk_fixtures import ACCOUNTS, MINI, REPS, TEAMS, at, dataset, make, usd
from salesprocess import SalesProcess, hookimpl
from salesprocess.errors import ImportDataError, TransitionNotAllowed
from salesprocess.kpi import AccountRevenue, SurveyResponse
from salesprocess.money import Rate
from salesprocess.periods import Period
from salesprocess.risk import (
    ALERT_KIND,
    ChurnInputs,
    Complaint,
    CreditInputs,
    Invoice,
    Order,
    Payment,
    RiskConfig,
    assess,
    assess_credit,
    inputs_from_dict,
)

ASOF = at(30)  # 2026-02-04
CFG = RiskConfig.default()


def run(argv: list[str]) -> int:
    """The command line. Imported when called: importing ``salesprocess.cli.main`` at collection
    would shadow the ``salesprocess.cli.main`` function other test modules import."""
    from salesprocess.cli.main import run as _run

    return _run(argv)


def day(n: int) -> date:
    return at(n).date()


def _inputs(extra_order: str | None = None) -> CreditInputs:
    orders = [Order("o1", "acc1", usd(1000), day(15))]
    if extra_order:
        orders.append(Order("o2", "acc1", usd(extra_order), day(16)))
    return CreditInputs(
        invoices=[
            Invoice("i0", "acc1", usd(1000), day(-100), day(-70)),  # paid 20 days late
            Invoice("i1", "acc1", usd(5000), day(-60), day(-30)),  # 2000 paid, 3000 overdue
            Invoice("i2", "acc1", usd(4000), day(10), day(40)),  # not due yet
            Invoice("later", "acc1", usd(9999), day(31), day(60)),  # issued after asof
        ],
        payments=[
            Payment("p0", "i0", usd(1000), day(-50)),
            Payment("p1", "i1", usd(2000), day(-20)),
            Payment("p2", "i1", usd(3000), day(35)),  # after asof: not yet received
        ],
        orders=orders,
    )


def test_credit_exposure_utilisation_and_grade() -> None:
    acc1 = ACCOUNTS[0]
    deals = [make("e", stage="b", amount="2000")]  # weighted 1000 (stage default 0.5)
    a = assess_credit(acc1, _inputs(), deals, asof=ASOF, config=CFG.credit, processes={"mini": MINI})
    assert (a.receivables, a.overdue, a.uninvoiced, a.pipeline) == (
        usd("7000.00"), usd("3000.00"), usd("1000.00"), usd("1000.00"))
    assert a.exposure == usd("9000.00")
    assert a.utilisation == Rate("0.9")
    assert a.days_overdue == 60  # due 2026-01-05… asof 2026-02-04
    assert a.late_share == Rate(1)
    assert not a.over_limit
    assert a.score == sum(c.points for c in a.contributions)
    util = next(c for c in a.contributions if c.signal == "utilisation")
    assert util.severity == Decimal("0.9000")  # 0.5 at 50 %, 1 at 100 %
    assert a.grade == CFG.credit.grade(a.score)
    assert any("9,000.00 USD is 90% of the 10,000.00 USD credit limit" in t for t in a.explain())
    over = assess_credit(acc1, _inputs("2001"), deals, asof=ASOF, config=CFG.credit,
                         processes={"mini": MINI})
    assert over.over_limit
    assert over.score >= a.score


def test_credit_inputs_report_every_problem() -> None:
    with pytest.raises(ImportDataError) as e:
        CreditInputs(
            invoices=[Invoice("i", "a", usd(1), day(5), day(1)), Invoice("i", "a", usd(1), day(1), day(2))],
            payments=[Payment("p", "nope", usd(1), day(3))],
        )
    paths = {p.path for p in e.value.report}
    assert paths == {"invoices[0].due", "invoices[1].id", "payments[0].invoice_id"}


def test_inputs_from_json_shaped_data() -> None:
    credit, churn = inputs_from_dict({
        "invoices": [{"id": "i1", "account_id": "acc1", "amount": "10", "currency": "USD",
                      "issued": "2026-01-01", "due": "2026-01-31"}],
        "limits": {"acc2": {"amount": "500", "currency": "USD"}},
        "surveys": [{"id": "s", "kind": "nps", "score": 3, "at": "2026-01-10T00:00:00+00:00",
                     "account_id": "acc2"}],
    })
    assert credit.invoices[0].amount == usd(10)
    assert credit.limit_of(ACCOUNTS[1]) == usd(500)
    assert churn.surveys[0].score == 3
    with pytest.raises(ImportDataError) as e:
        inputs_from_dict({"invoices": [{"id": "x", "amount": 1.5, "currency": "USD"}],
                          "orders": "no", "colour": []})
    assert {p.path for p in e.value.report} == {"colour", "invoices[0]", "orders"}


def test_the_credit_guard_blocks_moves_of_over_limit_accounts() -> None:
    sp = SalesProcess()
    data = MINI.to_dict()
    for s in data["stages"]:
        if s["key"] == "c":
            s["entry"] = {"guards": ["credit_within_limit"]}
    proc = sp.process_from_dict(data)
    d1 = make("g1", stage="b", account="acc1")
    d2 = make("g2", stage="b", account="acc2")
    ds = dataset([d1, d2])
    # nothing known yet: the move passes
    assert proc.check(d1, "c", at=at(31), actor="r1") == []
    report = sp.assess_risk(ds, asof=ASOF, credit=_inputs("5000"))
    assert report.customer("acc1").over_limit
    assert sp.credit_book.get("acc1") is report.customer("acc1").credit
    with pytest.raises(TransitionNotAllowed, match="over its credit limit") as e:
        sp.advance(proc, d1, "c", at=at(31), actor="r1")
    assert [p.code for p in e.value.unmet] == ["guard"]
    moved = sp.advance(proc, d2, "c", at=at(31), actor="r3")
    assert moved.stage == "c"
    # blocked by name: no guard plugin, the process cannot use the guard
    assert "credit_within_limit" not in SalesProcess(block=["salesprocess.credit"]).guards


def test_churn_signals() -> None:
    churn = ChurnInputs(
        surveys=[
            SurveyResponse("s1", "csat", 5, at(-100), account_id="acc2"),
            SurveyResponse("s2", "csat", 5, at(-80), account_id="acc2"),
            SurveyResponse("s3", "csat", 3, at(-10), account_id="acc2"),
            SurveyResponse("s4", "csat", 3, at(0), account_id="acc2"),
            SurveyResponse("late", "csat", 1, at(40), account_id="acc2"),  # after asof
        ],
        complaints=[Complaint("c1", "acc2", at(-5)), Complaint("c2", "acc2", at(1), "high"),
                    Complaint("old", "acc2", at(-200))],
        revenue=[AccountRevenue("acc2", Period.parse("2025-12"), usd(1000)),
                 AccountRevenue("acc2", Period.parse("2026-01"), usd(600))],
    )
    from salesprocess.model import Activity

    acts = [Activity("x", "visit", at(-70), account_id="acc2")]
    report = assess(dataset([], acts), asof=ASOF, churn=churn)
    c = report.customer("acc2")
    got = {f.signal: f for f in c.findings}
    assert got["csat_drop"].severity == Decimal("1.0000")  # drop of 2 points ≥ full 1.5
    assert "CSAT fell from 5.00 to 3.00" in got["csat_drop"].explanation
    assert got["complaints"].severity == Decimal("0.7500")
    assert "2 complaint(s) in the last 90 days (2 unresolved)" in got["complaints"].explanation
    assert got["shrinking_purchases"].severity == Decimal("0.8750")  # 40 %: 0.5 + 0.5 × 0.3/0.4
    assert got["inactivity"].severity == Decimal("0.6667")  # 100 days: 0.5 + 0.5 × 40/120
    assert c.score == sum(x.points for x in c.contributions)


class Recorder:
    def __init__(self) -> None:
        self.alerts: list[Any] = []

    @hookimpl
    def salesprocess_risk_alert(self, alert: Any) -> None:
        self.alerts.append(alert)


def test_alerts_fire_once_until_the_condition_clears_and_returns(tmp_path: Path) -> None:
    rec = Recorder()
    sp = SalesProcess([rec])
    store = sp.open_store(tmp_path / "alerts.sqlite")
    cfg = RiskConfig.from_toml("""
[[alerts]]
name = "competitor_on_deal"
subject = "deal"
signal = "competitor"
severity = "medium"
notify = ["owner", "manager", "sales-ops@example.com"]
""")
    d = make("al", stage="c", competitors=("Globex",))
    try:
        def run_at(deal: Any, n: int) -> Any:
            report = sp.assess_risk(dataset([deal]), asof=at(n), config=cfg)
            return sp.run_risk_alerts(store, report, at=at(n), config=cfg)

        assert [a.name for a in cfg.alerts] == ["competitor_on_deal"]  # the file's list replaces
        r1 = run_at(d, 30)
        assert [a.subject_id for a in r1.raised] == ["al"]
        assert rec.alerts[0].recipients == ("r1", "m1", "sales-ops@example.com")
        assert "competitor" in rec.alerts[0].message
        r2 = run_at(d, 31)
        assert (len(r2.raised), len(r2.active)) == (0, 1)
        assert len(rec.alerts) == 1
        cleared = d.with_details(competitors=(), at=at(32), actor="r1")
        r3 = run_at(cleared, 33)
        assert r3.cleared == ("competitor_on_deal|deal|al",)
        back = cleared.with_details(competitors=("Hooli",), at=at(34), actor="r1")
        r4 = run_at(back, 35)
        assert [a.subject_id for a in r4.raised] == ["al"]
        assert len(rec.alerts) == 2
        doc = store.get_document(ALERT_KIND, "competitor_on_deal|deal|al")
        assert doc is not None
        assert doc["times_raised"] == 2
        assert doc["active"] is True
    finally:
        store.close()


def _db(tmp_path: Path) -> str:
    db = tmp_path / "risk.sqlite"
    store = SalesProcess().open_store(db)
    try:
        store.save_process(MINI)
        store.put(*TEAMS, *REPS, *ACCOUNTS)
        store.save_deals((d, None) for d in [
            make("quiet", stage="b", account="acc1", competitors=("Globex",)),
            make("fresh", stage="c", created=29, account="acc2", contact_ids=("c1", "c2")),
        ])
    finally:
        store.close()
    return str(db)


def test_cli_risk_json_levels_inputs_and_alerts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _db(tmp_path)
    assert run(["risk", "--db", db, "--asof", "2026-02-04", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    by = {d["deal_id"]: d for d in out["deals"]}
    assert Decimal(by["quiet"]["score"]) > Decimal(by["fresh"]["score"])
    for d in out["deals"]:
        assert Decimal(d["score"]) == sum(Decimal(c["points"]) for c in d["contributions"])
    assert run(["risk", "--db", db, "--asof", "2026-02-04", "--min-severity", "high",
                "--format", "json"]) == 0
    high = json.loads(capsys.readouterr().out)
    assert [d["deal_id"] for d in high["deals"]] == ["quiet"]
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({
        "orders": [{"id": "o", "account_id": "acc1", "amount": "20000", "currency": "USD",
                    "on": "2026-01-20"}],
    }), encoding="utf-8")
    assert run(["risk", "--db", db, "--asof", "2026-02-04", "--inputs", str(inputs), "--customers",
                "--alerts", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    acc1 = next(c for c in out["customers"] if c["account_id"] == "acc1")
    assert acc1["over_limit"] is True
    rules = {a["rule"] for a in out["alerts"]["raised"]}
    assert "customer_over_credit_limit" in rules
    assert run(["risk", "--db", db, "--asof", "2026-02-04", "--explain", "quiet"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("quiet: risk ")
    assert "stalled" in text
