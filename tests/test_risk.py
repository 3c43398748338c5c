"""Risk: deal signals with their numbers, per-stage settings, scores that add up and only grow with
severity, plugin signals, and settings files."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _risk_fixtures import at, dataset, make, usd
from salesprocess import SalesProcess, hookimpl
from salesprocess.errors import DefinitionError, PluginValidationError, ProcessFileError
from salesprocess.model import Activity, Deal
from salesprocess.risk import RiskConfig, RiskFinding, assess, combine

ASOF = at(30)


def _risk(deal: Deal, activities: tuple[Activity, ...] = (), config: RiskConfig | None = None,
          **kw: Any) -> Any:
    return assess(dataset([deal], activities), asof=ASOF, config=config, customers=False,
                  **kw).deal(deal.id)


def _finding(r: Any, name: str) -> RiskFinding | None:
    return next((f for f in r.findings if f.signal == name), None)


def _planned(deal_id: str, day: float) -> Activity:
    return Activity(f"next-{deal_id}", "meeting", at(day), status="planned", deal_id=deal_id)


def _done(deal_id: str, day: float, contact: str | None = None, n: int = 0) -> Activity:
    return Activity(f"a-{deal_id}-{n}", "call", at(day), deal_id=deal_id, contact_id=contact)


def test_stalled_beyond_the_business_day_sla() -> None:
    d = make("s", stage="b")  # entered b on Monday 2026-01-05; asof is 30 days later
    r = _risk(d, (_planned("s", 31), _done("s", 29)))
    f = _finding(r, "stalled")
    assert f is not None
    assert f.severity == Decimal("1.0000")  # 22 business days = 4.4× a 5-day SLA
    assert "22 business days against a 5-business day SLA" in f.explanation
    assert dict(f.facts)["business_days_in_stage"] == 22


def test_stalled_at_the_calendar_sla_is_half_severe() -> None:
    d = make("s", stage="a", created=20)
    f = _finding(_risk(d, (_planned("s", 31), _done("s", 29))), "stalled")
    assert f is not None
    assert f.severity == Decimal("0.5000")
    assert "10 days against a 10-day SLA" in f.explanation


def test_no_activity_counts_business_days_since_the_last_one() -> None:
    d = make("n", stage="c")
    f = _finding(_risk(d, (_done("n", 2), _planned("n", 40))), "no_activity")
    assert f is not None
    # last activity Wednesday 2026-01-07, asof Wednesday 2026-02-04: 20 business days
    assert "No done activity for 20 business days (threshold 10); the last on 2026-01-07" in f.explanation
    assert f.severity == Decimal("0.7500")  # 0.5 at 10, 1 at 30


def test_pushed_cut_competitor_discount_and_past_close_date() -> None:
    d = make("p", stage="c", close_date=at(5).date(), competitors=("Globex",),
             custom={"discount": "25%"}, contact_ids=("c1", "c2", "c3"))
    d = d.with_close_date(at(10).date(), at=at(1), actor="r1")
    d = d.with_close_date(at(20).date(), at=at(2), actor="r1")
    d = d.with_amount(usd(600), at=at(3), actor="r1")
    r = _risk(d, (_done("p", 29), _planned("p", 31)))
    got = {f.signal: f for f in r.findings}
    assert set(got) == {"close_date_pushed", "amount_cut", "competitor", "discount", "close_date_past"}
    assert got["close_date_pushed"].severity == Decimal("0.5000")
    assert "pushed 2 times (threshold 2), 15 days later in all" in got["close_date_pushed"].explanation
    assert got["amount_cut"].severity == Decimal("0.8333")  # 40 % cut: 0.5 + 0.5 × 0.2/0.3
    assert "Amount cut by 40% from its peak, now 600.00 USD" in got["amount_cut"].explanation
    assert got["competitor"].explanation == "1 competitor(s) on the deal: Globex."
    assert got["discount"].severity == Decimal("0.6250")
    assert "2026-01-25 is 10 days in the past" in got["close_date_past"].explanation


def test_single_threaded_and_no_next_step() -> None:
    d = make("t", stage="c", contact_ids=("c1",))
    r = _risk(d, (_done("t", 29, contact="c1"),))
    assert _finding(r, "single_threaded") is not None
    assert _finding(r, "no_next_step") is not None
    r2 = _risk(d, (_done("t", 28, contact="c1"), _done("t", 29, contact="c2", n=1),
                   _planned("t", 33)))
    assert _finding(r2, "single_threaded") is None
    assert _finding(r2, "no_next_step") is None


def test_signals_are_configurable_per_stage() -> None:
    d = make("cfg", stage="b", contact_ids=("c1",))
    acts = (_planned("cfg", 33), _done("cfg", 29))
    assert _finding(_risk(d, acts), "single_threaded") is not None
    cfg = RiskConfig.from_toml("""
[deal.single_threaded.stages.b]
enabled = false

[deal.stalled.stages.b]
points = 40
""")
    r = _risk(d, acts, config=cfg)
    assert _finding(r, "single_threaded") is None
    stalled = next(c for c in r.contributions if c.signal == "stalled")
    assert stalled.weight == Decimal(40)
    assert stalled.points == Decimal("40.00")


def test_contributions_add_up_to_the_score() -> None:
    d = make("sum", stage="b", competitors=("A", "B"), close_date=at(1).date())
    r = _risk(d)
    assert r.score == sum(c.points for c in r.contributions)
    assert r.level == "critical" if r.score >= 75 else r.level in ("high", "medium", "low")
    assert len(r.explain()) == len(r.contributions)


parts = st.lists(
    st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 60).map(Decimal),
              st.floats(0, 1, allow_nan=False)),
    max_size=8, unique_by=lambda p: p[0],
)


@settings(max_examples=200, deadline=None)
@given(ps=parts, i=st.integers(0, 7), bump=st.floats(0, 1, allow_nan=False))
def test_scores_add_up_and_are_monotone_in_every_severity(ps: list[tuple[str, Decimal, float]],
                                                         i: int, bump: float) -> None:
    score, contribs = combine(ps)
    assert score == sum((c.points for c in contribs), Decimal(0))
    assert Decimal(0) <= score <= Decimal(100)
    if not ps:
        return
    j = i % len(ps)
    name, pts, sev = ps[j]
    higher = list(ps)
    higher[j] = (name, pts, min(1.0, sev + bump))
    assert combine(higher)[0] >= score


@settings(max_examples=25, deadline=None)
@given(days=st.lists(st.integers(1, 29), min_size=2, max_size=2, unique=True))
def test_an_older_last_activity_never_lowers_the_risk(days: list[int]) -> None:
    recent, older = max(days), min(days)
    d = make("m", stage="c", contact_ids=("c1", "c2", "c3"))
    r_recent = _risk(d, (_done("m", recent), _planned("m", 31)))
    r_older = _risk(d, (_done("m", older), _planned("m", 31)))
    assert r_older.score >= r_recent.score


# --- plugins -----------------------------------------------------------------------------------


class PressPlugin:
    @hookimpl
    def salesprocess_register_risk_signals(self, register: Any) -> None:
        def bad_press(deal: Deal, context: Any) -> tuple[str, str] | None:
            if deal.account_id == "acc1":
                return ("0.8", "The customer was in the news for layoffs this week.")
            return None

        def on_hold(account: Any, context: Any) -> RiskFinding:
            return RiskFinding("on_hold", Decimal("0.5"), f"{account.name} put purchases on hold.")

        register("bad_press", bad_press, "news about the customer", "deal")
        register("on_hold", on_hold, "purchases on hold", applies_to="customer")


def test_plugins_add_deal_and_customer_signals() -> None:
    sp = SalesProcess([PressPlugin()])
    assert sp.risk_signals["bad_press"].plugin is not None
    ds = dataset([make("x", stage="c", account="acc1"), make("y", stage="c", account="acc2")])
    report = sp.assess_risk(ds, asof=ASOF)
    fx = _finding(report.deal("x"), "bad_press")
    assert fx is not None
    assert fx.severity == Decimal("0.8000")
    assert next(c for c in report.deal("x").contributions if c.signal == "bad_press").points == Decimal("8.00")
    assert _finding(report.deal("y"), "bad_press") is None
    cust = report.customer("acc2")
    assert _finding(cust, "on_hold") is not None
    assert "+5.00 on_hold: Beta put purchases on hold." in cust.explain()


class BrokenPlugin:
    @hookimpl
    def salesprocess_register_risk_signals(self, register: Any) -> None:
        register("broken", lambda deal, ctx: (2, "too much"))


def test_a_plugin_signal_out_of_range_is_refused() -> None:
    sp = SalesProcess([BrokenPlugin()])
    with pytest.raises(PluginValidationError, match="within \\[0, 1\\]") as e:
        sp.assess_risk(dataset([make("z", stage="c")]), asof=ASOF)
    assert e.value.hook == "salesprocess_register_risk_signals"


def test_a_signal_name_must_be_an_identifier() -> None:
    class Bad:
        @hookimpl
        def salesprocess_register_risk_signals(self, register: Any) -> None:
            register("not a name", lambda d, c: None)

    with pytest.raises(PluginValidationError, match="identifier"):
        _ = SalesProcess([Bad()]).risk_signals


# --- settings -----------------------------------------------------------------------------------


def test_settings_file_errors_are_all_reported(tmp_path: Any) -> None:
    text = """
unknown_section = 1

[levels]
high = "x"
supreme = 99

[deal.stalled]
basis = "vibes"
threshold = 3
full = 2

[credit.grades]
B = 50
C = 40

[[alerts]]
subject = "planet"
severity = "apocalyptic"
"""
    with pytest.raises(DefinitionError) as e:
        RiskConfig.from_toml(text)
    paths = {p.path for p in e.value.problems}
    assert {"unknown_section", "levels.high", "levels.supreme", "deal.stalled.basis",
            "deal.stalled.full", "credit.grades.C", "alerts[0].subject", "alerts[0].severity",
            "alerts[0].name", "alerts[0]"} <= paths
    f = tmp_path / "r.toml"
    f.write_text("[levels\n", encoding="utf-8")
    with pytest.raises(ProcessFileError) as e2:
        RiskConfig.from_toml(f)
    assert e2.value.line == 1
    assert e2.value.path == str(f)


def test_defaults_are_laid_under_a_partial_file() -> None:
    cfg = RiskConfig.from_toml("[deal.no_activity]\nthreshold = 3\n")
    na = cfg.deal_signal("no_activity")
    assert na is not None
    assert na.base.threshold == Decimal(3)
    assert na.base.points == Decimal(20)  # from the defaults
    assert cfg.level_of(Decimal(60)) == "high"
    assert [a.name for a in cfg.alerts] == ["deal_high_risk", "customer_over_credit_limit"]
