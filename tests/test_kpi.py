"""The KPI library: registry, core KPIs, grouping, periods, as-of, currencies, inputs, comparisons."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _kpi_company import (
    ACCOUNTS,
    PRODUCTS,
    REPS,
    SAAS,
    TEAMS,
    at,
    deal,
    lost,
    random_activities,
    random_deals,
    won,
)
from salesprocess import SalesProcess, hookimpl
from salesprocess.errors import CurrencyMismatchError, KpiError, PluginValidationError
from salesprocess.kpi import (
    AccountRevenue,
    CostEntry,
    Dataset,
    Kpi,
    KpiInputs,
    SurveyResponse,
    Target,
    compare,
    compute,
    default_registry,
    stats,
)
from salesprocess.model import Activity, DealStatus, replay_until
from salesprocess.money import Money, Rate
from salesprocess.periods import Period
from salesprocess.store import MemoryStore

CNY = "CNY"


def data(deals, **kw):
    kw.setdefault("reps", REPS)
    kw.setdefault("teams", TEAMS)
    kw.setdefault("accounts", ACCOUNTS)
    kw.setdefault("products", PRODUCTS)
    kw.setdefault("processes", [SAAS])
    return Dataset(deals, **kw)


def cny(s: str) -> Money:
    return Money(s, CNY)


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def test_percentile_is_linear_interpolation_between_closest_ranks():
    vals = list(range(1, 11))  # 1..10
    assert stats.percentile(vals, Decimal("0.5")) == Decimal("5.5")
    # h = 9 * 0.9 = 8.1 -> 9 + 0.1 * (10 - 9)
    assert stats.percentile(vals, Decimal("0.9")) == Decimal("9.1")
    assert stats.percentile([7], Decimal("0.9")) == 7
    assert stats.percentile([], Decimal("0.5")) is None


def test_days_are_microseconds_rounded_to_four_places():
    assert stats.days(86_400_000_000) == 1
    assert stats.days(43_200_000_000) == Decimal("0.5")
    assert stats.days(1) == 0  # one microsecond rounds away


@given(
    st.lists(st.integers(-(10**9), 10**9), min_size=1, max_size=30),
    st.sampled_from(["0", "0.25", "0.5", "0.75", "0.9", "1"]),
)
def test_percentile_lies_between_min_and_max_and_is_monotone(vals, p):
    s = sorted(vals)
    v = stats.percentile(s, Decimal(p))
    assert s[0] <= v <= s[-1]
    assert stats.percentile(s, Decimal("0")) == s[0]
    assert stats.percentile(s, Decimal("1")) == s[-1]


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


REQUIRED = {
    "won_revenue",
    "deals_won",
    "deals_lost",
    "win_rate",
    "avg_won_deal_size",
    "median_won_deal_size",
    "mean_cycle_days",
    "median_cycle_days",
    "p90_cycle_days",
    "mean_cycle_days_closed",
    "median_cycle_days_closed",
    "p90_cycle_days_closed",
    "open_pipeline_count",
    "open_pipeline_value",
    "weighted_pipeline_value",
    "pipeline_coverage",
    "pipeline_velocity",
    "stage_conversion",
    "stage_drop_off",
    "time_in_stage",
    "activities",
    "lead_response_time",
    "new_deals",
    "quota_attainment",
    "customer_acquisition_cost",
    "logo_churn",
    "revenue_churn",
    "net_revenue_retention",
    "gross_revenue_retention",
    "csat",
    "nps",
    "ces",
    "customer_lifetime_value",
}


def test_registry_holds_every_required_kpi_with_its_description():
    reg = default_registry()
    assert set(reg) >= REQUIRED
    for k in reg.values():
        assert k.definition
        assert k.formula
        assert k.unit.value in ("money", "count", "rate", "ratio", "days", "score")
        assert k.direction.value in ("higher", "lower")


def test_unknown_metric_and_dimension_are_all_reported():
    with pytest.raises(KpiError) as e:
        compute(data([]), ["win_rat", "deals_won", "nps"], by=["owner", "colour"])
    codes = sorted(p.code for p in e.value.problems)
    assert codes == ["missing_input", "unknown_dimension", "unknown_kpi"]
    assert "win_rat" in str(e.value)
    assert "colour" in str(e.value)


def test_parametric_kpi_needs_its_parameter():
    with pytest.raises(KpiError, match="needs a stage"):
        compute(data([]), ["stage_conversion"])
    with pytest.raises(KpiError, match="takes no parameter"):
        compute(data([]), ["win_rate:x"])


def test_plugin_kpi_is_registered_through_the_hook_and_computes():
    def deals_with_amount(cell):
        return sum(1 for d in cell.deals() if d.amount is not None)

    class Plugin:
        @hookimpl
        def salesprocess_register_kpis(self, register):
            register(
                Kpi(
                    "deals_with_amount",
                    "Deals that have an amount.",
                    "count(amount set)",
                    "count",
                    "higher",
                    deals_with_amount,
                )
            )

    sp = SalesProcess(plugins=[Plugin()])
    assert sp.kpis["deals_with_amount"].plugin is not None
    assert "win_rate" in sp.kpis
    ds = data([won("a", "r1", at(0), at(3), "10.00"), deal("b", "r1", at(1))])
    t = compute(ds, ["deals_with_amount"], registry=sp.kpis)
    assert t.value("deals_with_amount") == 1


def test_plugin_kpi_name_clash_names_both_sources():
    class Clash:
        @hookimpl
        def salesprocess_register_kpis(self, register):
            register(Kpi("win_rate", "x", "x", "rate", "higher", lambda c: None))

    with pytest.raises(PluginValidationError, match="registered twice"):
        SalesProcess(plugins=[Clash()]).kpis  # noqa: B018


def test_kpi_names_must_be_snake_case():
    with pytest.raises(ValueError, match="snake_case"):
        Kpi("WinRate", "x", "x", "rate", "higher", lambda c: None)


# --------------------------------------------------------------------------------------------
# Core KPIs on a hand-computed company
# --------------------------------------------------------------------------------------------


@pytest.fixture
def company():
    deals = [
        # r1: won 100 (cycle 10 d), won 300 (cycle 30 d), lost one (cycle 20 d)
        won("w1", "r1", at(0), at(10), "100.00", account="a1"),
        won("w2", "r1", at(2), at(32), "300.00", account="a2"),
        lost("l1", "r1", at(3), at(23)),
        # r2: won 50 (cycle 4 d); an open deal of 200 at probability 0.30 (demo)
        won("w3", "r2", at(1), at(5), "50.00", account="a1"),
        deal("o1", "r2", at(6), [("demo", at(7))], amount="200.00"),
        # r3: open deal of 80 in discovery (probability 0.10)
        deal("o2", "r3", at(8), amount="80.00"),
    ]
    return data(deals)


def test_core_kpis_for_the_whole_company(company):
    t = compute(
        company,
        [
            "deals_won",
            "deals_lost",
            "deals_closed",
            "win_rate",
            "won_revenue",
            "avg_won_deal_size",
            "median_won_deal_size",
            "new_deals",
            "open_pipeline_count",
            "open_pipeline_value",
            "weighted_pipeline_value",
            "mean_cycle_days",
            "median_cycle_days",
            "p90_cycle_days",
            "mean_cycle_days_closed",
        ],
    )
    r = t.rows[0].values
    assert r["deals_won"] == 3
    assert r["deals_lost"] == 1
    assert r["deals_closed"] == 4
    assert r["win_rate"] == Decimal("0.75")
    assert r["won_revenue"] == cny("450.00")
    assert r["avg_won_deal_size"] == cny("150.00")
    assert r["median_won_deal_size"] == cny("100.00")
    assert r["new_deals"] == 6
    assert r["open_pipeline_count"] == 2
    assert r["open_pipeline_value"] == cny("280.00")
    assert r["weighted_pipeline_value"] == cny("68.00")  # 200 × 0.30 + 80 × 0.10
    # cycles of won deals 10, 30, 4 days
    assert r["mean_cycle_days"] == Decimal("14.6667")
    assert r["median_cycle_days"] == 10
    assert r["p90_cycle_days"] == Decimal("26")  # h = 1.8: 10 + 0.8 × 20
    assert r["mean_cycle_days_closed"] == Decimal("16")  # (10 + 30 + 4 + 20) / 4


def test_grouping_by_owner_and_team(company):
    t = compute(company, ["deals_won", "win_rate", "won_revenue"], by=["owner"])
    assert [r.key["owner"] for r in t.rows] == ["r1", "r2", "r3"]
    assert t.value("win_rate", owner="r1") == Decimal("0.6666666667")
    assert t.value("won_revenue", owner="r2") == cny("50.00")
    assert t.value("win_rate", owner="r3") is None  # nothing closed
    assert t.value("won_revenue", owner="r3") == cny("0.00")
    t = compute(company, ["deals_won", "open_pipeline_value"], by=["team", "region"])
    assert t.value("deals_won", team="t1", region="east") == 3
    assert t.value("open_pipeline_value", team="t2", region="west") == cny("80.00")


def test_group_values_add_up_to_the_company(company):
    by_owner = compute(company, ["won_revenue", "deals_won", "new_deals"], by=["owner"])
    whole = compute(company, ["won_revenue", "deals_won", "new_deals"]).rows[0].values
    for m in ("deals_won", "new_deals"):
        assert sum(r.values[m] for r in by_owner.rows) == whole[m]
    assert sum(r.values["won_revenue"].amount for r in by_owner.rows) == whole["won_revenue"].amount


def test_where_filters_records(company):
    t = compute(company, ["deals_won"], by=["owner"], where={"team": "t1", "status": "won"})
    assert {r.key["owner"] for r in t.rows} == {"r1", "r2"}
    assert compute(company, ["new_deals"], where={"owner": None}).value("new_deals") == 0


def test_product_dimension_counts_a_deal_under_each_product():
    ds = data(
        [
            won("x", "r1", at(0), at(1), "10.00", products=("p1", "p2")),
            won("y", "r1", at(0), at(1), "5.00", products=("p2",)),
            won("z", "r1", at(0), at(1), "1.00"),
        ]
    )
    t = compute(ds, ["deals_won", "won_revenue"], by=["product"])
    assert t.value("deals_won", product="p1") == 1
    assert t.value("won_revenue", product="p2") == cny("15.00")
    assert t.value("deals_won", product=None) == 1
    t = compute(ds, ["deals_won"], by=["product_family"])
    assert t.value("deals_won", product_family="addons") == 2


# --------------------------------------------------------------------------------------------
# Periods and timezones
# --------------------------------------------------------------------------------------------


def test_period_attribution_uses_the_close_instants_local_date():
    # closed 2026-01-31 20:00 UTC = 2026-02-01 04:00 in Shanghai
    closed = datetime(2026, 1, 31, 20, tzinfo=UTC)
    ds = data([won("x", "r1", datetime(2026, 1, 10, tzinfo=UTC), closed, "10.00")])
    utc = compute(ds, ["deals_won"], period="month")
    assert [(r.key["period"], r.values["deals_won"]) for r in utc.rows] == [("2026-01", 1)]
    sh = compute(ds, ["deals_won"], period="month", tz=ZoneInfo("Asia/Shanghai"))
    assert [(r.key["period"], r.values["deals_won"]) for r in sh.rows] == [
        ("2026-01", 0),
        ("2026-02", 1),
    ]


def test_new_deals_count_by_creation_and_won_by_close(company):
    t = compute(
        company,
        ["new_deals", "deals_won"],
        period="week",
        window=Period(date(2026, 1, 5), date(2026, 1, 26)),
    )
    assert [r.key["period"] for r in t.rows] == ["2026-W02", "2026-W03", "2026-W04"]
    # created on days 0, 1, 2, 3, 6 (Jan 5-11, W02) and 8 (Jan 13, W03)
    assert [r.values["new_deals"] for r in t.rows] == [5, 1, 0]
    # w3 closes day 5 (W02), w1 day 10 (W03), w2 day 32 is outside the window
    assert [r.values["deals_won"] for r in t.rows] == [1, 1, 0]


def test_monthly_values_sum_to_the_window(company):
    w = Period(date(2026, 1, 1), date(2026, 4, 1))
    monthly = compute(company, ["deals_won", "won_revenue"], period="month", window=w)
    whole = compute(company, ["deals_won", "won_revenue"], window=w).rows[0].values
    assert sum(r.values["deals_won"] for r in monthly.rows) == whole["deals_won"]
    assert sum(r.values["won_revenue"].amount for r in monthly.rows) == whole["won_revenue"].amount


def test_snapshot_kpis_read_the_deals_at_each_periods_end():
    # an open deal of 100 in January, amount raised to 150 in February, won in March
    d = deal("x", "r1", at(0), amount="100.00")
    d = d.with_amount(cny("150.00"), at=datetime(2026, 2, 10, tzinfo=UTC), actor="t")
    d = SAAS.advance(d, "closed_won", at=datetime(2026, 3, 3, tzinfo=UTC), actor="t")
    t = compute(
        data([d]),
        ["open_pipeline_value", "open_pipeline_count"],
        period="month",
        window=Period(date(2026, 1, 1), date(2026, 4, 1)),
    )
    assert [r.values["open_pipeline_value"] for r in t.rows] == [
        cny("100.00"),
        cny("150.00"),
        cny("0.00"),
    ]
    assert [r.values["open_pipeline_count"] for r in t.rows] == [1, 1, 0]


# --------------------------------------------------------------------------------------------
# As of
# --------------------------------------------------------------------------------------------


def test_asof_sees_only_what_was_known_then(company):
    asof = at(9)  # w1 (closes day 10) and w2 are still open; w3 won day 5
    t = compute(
        company, ["deals_won", "won_revenue", "open_pipeline_count", "new_deals"], asof=asof
    )
    v = t.rows[0].values
    assert v["deals_won"] == 1
    assert v["won_revenue"] == cny("50.00")
    assert v["new_deals"] == 6
    assert v["open_pipeline_count"] == 5  # w1, w2, l1, o1, o2


def _brute_win_rate(deals, asof):
    won = lost = 0
    for d in deals:
        status = None
        for e in d.events:
            if e.at > asof:
                break
            if e.kind == "created":
                status = e.status
            elif e.kind in ("won", "lost", "stage_changed", "reopened"):
                status = {"won": DealStatus.WON, "lost": DealStatus.LOST}.get(
                    e.kind, DealStatus.OPEN
                )
        won += status is DealStatus.WON
        lost += status is DealStatus.LOST
    return None if won + lost == 0 else stats.div(won, won + lost)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_appending_events_after_asof_never_changes_the_result(draw):
    deals = draw.draw(random_deals(max_deals=8))
    asof = at(draw.draw(st.integers(0, 250)))
    acts = draw.draw(random_activities(deals))
    metrics = [
        "deals_won",
        "deals_lost",
        "win_rate",
        "won_revenue",
        "new_deals",
        "open_pipeline_value",
        "weighted_pipeline_value",
        "median_cycle_days",
        "activities",
        "lead_response_time",
        "stage_conversion:demo",
    ]
    kw = {
        "by": ["owner"],
        "period": "month",
        "asof": asof,
        "window": Period(date(2026, 1, 1), date(2026, 10, 1)),
    }
    before = compute(data(deals, activities=acts), metrics, **kw)
    # the future: every deal moves on after asof, new deals and activities appear
    later = []
    for d in deals:
        t = max(d.updated_at, asof) + timedelta(hours=1)
        for to in SAAS.graph_targets(d.stage):
            try:
                d = SAAS.advance(
                    d.with_amount(cny("999.00"), at=t, actor="t"),
                    to,
                    at=t,
                    actor="t",
                    activities=[Activity("f", "meeting", t, deal_id=d.id)],
                )
                break
            except Exception:
                continue
        later.append(d.with_owner("r3", at=t + timedelta(hours=1), actor="t"))
    later.append(won("future", "r1", asof + timedelta(seconds=1), asof + timedelta(days=2), "5.00"))
    acts2 = [*acts, Activity("late", "call", asof + timedelta(seconds=1), owner_id="r1")]
    after = compute(data(later, activities=acts2), metrics, **kw)
    assert before == after
    # and the win rate matches a brute-force walk over the events
    whole = compute(data(deals), ["win_rate"], asof=asof)
    assert whole.value("win_rate") == _brute_win_rate(deals, asof)


@settings(max_examples=40, deadline=None)
@given(random_deals(max_deals=10), st.integers(0, 250))
def test_asof_equals_computing_over_deals_replayed_until_then(deals, day):
    asof = at(day)
    metrics = ["deals_won", "won_revenue", "open_pipeline_value", "mean_cycle_days_closed"]
    a = compute(data(deals), metrics, by=["owner"], asof=asof)
    replayed = [x for x in (replay_until(d.events, asof) for d in deals) if x is not None]
    b = compute(data(replayed), metrics, by=["owner"])
    assert a.rows == b.rows


# --------------------------------------------------------------------------------------------
# Currencies
# --------------------------------------------------------------------------------------------


def test_mixing_currencies_in_one_row_raises_and_grouping_by_currency_splits():
    ds = data(
        [
            won("a", "r1", at(0), at(1), "10.00", currency="USD"),
            won("b", "r1", at(0), at(2), "20.00", currency="CNY"),
        ]
    )
    with pytest.raises(CurrencyMismatchError, match="group by currency"):
        compute(ds, ["won_revenue"])
    t = compute(ds, ["won_revenue", "deals_won"], by=["currency"])
    assert t.value("won_revenue", currency="USD") == Money("10.00", "USD")
    assert t.value("won_revenue", currency="CNY") == cny("20.00")
    # counts never mix currencies
    assert compute(ds, ["deals_won"]).value("deals_won") == 2


def test_empty_money_sum_is_zero_in_the_report_currency():
    t = compute(data([deal("x", "r1", at(0))]), ["won_revenue"], currency="JPY")
    assert t.value("won_revenue") == Money("0", "JPY")
    assert compute(data([deal("x", "r1", at(0))]), ["won_revenue"]).value("won_revenue") is None


# --------------------------------------------------------------------------------------------
# Activities, lead response, stages
# --------------------------------------------------------------------------------------------


def test_activity_counts_per_rep_and_kind():
    acts = [
        Activity("1", "call", at(1), owner_id="r1"),
        Activity("2", "call", at(2), owner_id="r1"),
        Activity("3", "email", at(2), owner_id="r2"),
        Activity("4", "call", at(3), owner_id="r2", status="planned"),
    ]
    t = compute(data([], activities=acts), ["activities", "activities:call"], by=["owner"])
    assert t.value("activities", owner="r1") == 2
    assert t.value("activities:call", owner="r2") == 0
    assert t.value("activities", owner="r2") == 1  # the planned call does not count


def test_lead_response_time_is_the_median_time_to_the_first_done_activity():
    d1, d2, d3 = deal("d1", "r1", at(0)), deal("d2", "r1", at(0)), deal("d3", "r1", at(0))
    acts = [
        Activity("a", "call", at(0, 2), deal_id="d1"),
        Activity("b", "call", at(0, 30), deal_id="d1"),  # not the first
        Activity("c", "email", at(1), deal_id="d2"),
        Activity("e", "email", at(0, 1), deal_id="d3", status="planned"),
    ]
    t = compute(data([d1, d2, d3], activities=acts), ["lead_response_time"])
    # 2 h and 24 h → median 13 h = 0.5417 days
    assert t.value("lead_response_time") == Decimal("0.5417")


def test_stage_conversion_drop_off_and_time_in_stage(company):
    t = compute(
        company,
        [
            "stage_conversion:demo",
            "stage_drop_off:discovery",
            "time_in_stage:demo",
            "stage_conversion:discovery",
        ],
    )
    v = t.rows[0].values
    # reached discovery: 6; lost l1 went straight from discovery; drop-off 1/6
    assert v["stage_drop_off:discovery"] == Decimal("0.1666666667")
    assert v["stage_conversion:discovery"] == Decimal("0.6666666667")  # w1 w2 w3 o1 past it
    # reached demo or later: w1 w2 w3 o1 -> past demo: the 3 won
    assert v["stage_conversion:demo"] == Decimal("0.75")
    # demo stays ended: w1 5 d, w2 15 d, w3 2 d -> median 5
    assert v["time_in_stage:demo"] == 5


def test_pipeline_velocity_and_coverage(company):
    tgt = Target(Period(date(2026, 1, 1), date(2026, 4, 1)), cny("1000.00"))
    t = compute(
        company,
        ["pipeline_velocity", "quota_attainment", "pipeline_coverage"],
        window=Period(date(2026, 1, 1), date(2026, 4, 1)),
        inputs=KpiInputs(targets=[tgt]),
    )
    v = t.rows[0].values
    # 2 open × (3/4) × 150 / (44/3 days) = 15.34...
    assert v["pipeline_velocity"] == cny("15.34")
    assert v["quota_attainment"] == Decimal("0.45")
    # no open deal has a close date in the window -> coverage 0
    assert v["pipeline_coverage"] == 0


# --------------------------------------------------------------------------------------------
# Customer KPIs from inputs
# --------------------------------------------------------------------------------------------


def test_survey_kpis():
    s = [
        SurveyResponse(f"c{i}", "csat", sc, at(1), account_id="a1")
        for i, sc in enumerate([5, 4, 2, 3])
    ]
    s += [SurveyResponse(f"n{i}", "nps", sc, at(1)) for i, sc in enumerate([10, 9, 8, 6, 0])]
    s += [SurveyResponse(f"e{i}", "ces", sc, at(1)) for i, sc in enumerate([7, 5, 6])]
    t = compute(data([]), ["csat", "nps", "ces"], inputs=KpiInputs(surveys=s))
    v = t.rows[0].values
    assert v["csat"] == Decimal("0.5")
    assert v["nps"] == 0  # 2 promoters, 2 detractors of 5
    assert v["ces"] == 6
    with pytest.raises(ValueError, match=r"0\.\.10"):
        SurveyResponse("x", "nps", 11, at(0))


def test_revenue_retention_and_churn():
    jan, feb = Period.parse("2026-01"), Period.parse("2026-02")
    rev = [
        AccountRevenue("a1", jan, cny("100.00")),
        AccountRevenue("a1", feb, cny("120.00")),
        AccountRevenue("a2", jan, cny("50.00")),
        AccountRevenue("a2", feb, cny("30.00")),
        AccountRevenue("a3", jan, cny("50.00")),  # churned
        AccountRevenue("a4", feb, cny("999.00")),  # new: not in retention
    ]
    t = compute(
        data([]),
        [
            "logo_churn",
            "revenue_churn",
            "gross_revenue_retention",
            "net_revenue_retention",
            "customer_lifetime_value",
        ],
        window=feb,
        inputs=KpiInputs(revenue=rev, gross_margin=Rate("0.8")),
    )
    v = t.rows[0].values
    assert v["logo_churn"] == Decimal("0.3333333333")
    assert v["revenue_churn"] == Decimal("0.35")  # (20 + 50) / 200
    assert v["gross_revenue_retention"] == Decimal("0.65")  # (100 + 30) / 200
    assert v["net_revenue_retention"] == Decimal("0.75")  # (120 + 30) / 200
    # ARPA (120 + 30 + 999) / 3 = 383 × 0.8 / (1/3) = 919.20
    assert v["customer_lifetime_value"] == cny("919.20")


def test_customer_acquisition_cost():
    deals = [
        won("x", "r1", at(0), at(3), "10.00", account="a1"),
        won("y", "r1", at(0), at(5), "10.00", account="a1"),  # second win of a1
        won("z", "r1", at(0), at(6), "10.00", account="a2"),
    ]
    costs = [CostEntry(Period.parse("2026-01"), cny("900.00"))]
    t = compute(
        data(deals),
        ["customer_acquisition_cost", "new_customers"],
        window=Period.parse("2026-01"),
        inputs=KpiInputs(costs=costs),
    )
    assert t.value("new_customers") == 2
    assert t.value("customer_acquisition_cost") == cny("450.00")


# --------------------------------------------------------------------------------------------
# Period over period
# --------------------------------------------------------------------------------------------


def test_month_over_month_change(company):
    rows = compare(company, ["deals_won", "won_revenue"], "2026-02", "MoM")
    by = {r.metric: r for r in rows}
    # January: w1 (day 10), w3 (day 5): 150; February: w2 (day 32): 300
    assert by["deals_won"].current == 1
    assert by["deals_won"].previous == 2
    assert by["deals_won"].change == -1
    assert by["deals_won"].relative == Decimal("-0.5")
    assert by["won_revenue"].change == cny("150.00")
    assert by["won_revenue"].relative == 1
    with pytest.raises(KpiError, match="compares weeks"):
        compare(company, ["deals_won"], "2026-02", "WoW")
    yoy = compare(company, ["deals_won"], "2026-02", "YoY")
    assert yoy[0].previous == 0
    assert yoy[0].relative is None


def test_store_and_dataset_give_the_same_table(company):
    store = MemoryStore()
    store.save_process(SAAS)
    store.put(*REPS, *TEAMS, *ACCOUNTS, *PRODUCTS)
    for d in company.deals:
        store.save_deal(d, expected_version=None)
    m = ["deals_won", "won_revenue", "win_rate", "open_pipeline_value"]
    assert compute(store, m, by=["team"]).rows == compute(company, m, by=["team"]).rows


def test_reference_page_lists_every_kpi_with_unit_and_direction():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "reference" / "kpis.md").read_text(
        encoding="utf-8"
    )
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells
    for k in default_registry().values():
        d = k.describe()
        assert d["name"] in rows, f"{d['name']} is missing from docs/reference/kpis.md"
        _, definition, formula, unit, direction, basis = rows[d["name"]]
        assert definition.startswith(k.definition)
        assert (formula, unit, direction, basis) == (k.formula, d["unit"], d["direction"], d["basis"])


def test_engine_sql_needs_a_database(company):
    with pytest.raises(KpiError, match="SQL pushdown"):
        compute(company, ["deals_won"], engine="sql")
    with pytest.raises(KpiError, match="no SQL pushdown"):
        compute(MemoryStore(), ["deals_won"], engine="sql")
