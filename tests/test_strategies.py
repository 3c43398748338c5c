"""The shipped Hypothesis strategies generate valid values and honour their parameters."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesprocess import (
    Account,
    Activity,
    Deal,
    FiscalCalendar,
    Money,
    Period,
    PeriodKind,
    ProbabilityPolicy,
    Process,
    Rate,
    Rep,
    StageKind,
    processes,
    replay,
)
from salesprocess.model import DealCreated, StageChanged
from salesprocess.money import minor_units
from salesprocess.testing import strategies as sps

heavy = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(sps.currencies(codes=["JPY", "KWD"]), st.data())
def test_decimals_and_money_use_minor_units(currency: str, data: st.DataObject) -> None:
    amount = data.draw(sps.decimals_for(currency, min_value=5, max_value=50))
    assert Decimal(5) <= amount <= Decimal(50)
    assert -amount.as_tuple().exponent <= minor_units(currency)
    m = data.draw(sps.money(currency=currency, max_value=10))
    assert m.currency == currency
    assert Money(0, currency) <= m <= Money(10, currency)
    m2 = data.draw(sps.money(currency=st.just("CNY")))
    assert m2.currency == "CNY"


@given(sps.rates(min_value="0.5", max_value=2, places=2), sps.probabilities())
def test_rates_and_probabilities(r: Rate, p: Rate) -> None:
    assert Rate("0.5") <= r <= Rate(2)
    assert -r.value.as_tuple().exponent <= 2
    assert p.is_probability()


@given(sps.aware_datetimes(), sps.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31)))
def test_datetimes_are_aware_and_dates_in_range(at: datetime, d: date) -> None:
    assert at.tzinfo is not None
    assert at.utcoffset() is not None
    assert d.year == 2026


def test_aware_datetimes_cover_shanghai() -> None:
    seen: set[str] = set()

    @settings(max_examples=200, database=None)
    @given(sps.aware_datetimes())
    def collect(at: datetime) -> None:
        seen.add(str(at.tzinfo))

    collect()
    assert "Asia/Shanghai" in seen
    assert len(seen) >= 4


@given(sps.periods(kinds=[PeriodKind.FISCAL_QUARTER], calendars=FiscalCalendar(4)))
def test_periods_honour_kinds_and_calendars(p: Period) -> None:
    assert p.kind is PeriodKind.FISCAL_QUARTER
    assert p.start.month in (4, 7, 10, 1)
    assert p.fiscal_calendar() == FiscalCalendar(4)


@given(sps.period_labels(kinds=st.sampled_from(["week", "quarter"])))
def test_period_labels_parse(label: str) -> None:
    assert Period.parse(label).kind in (PeriodKind.WEEK, PeriodKind.QUARTER)


@heavy
@given(sps.processes(min_open=3, max_open=3, linear=False, policy="keep_any"))
def test_processes_honour_their_parameters(p: Process) -> None:
    assert len(p.open_stages) == 3
    assert p.transitions  # an explicit graph
    assert p.probability_policy is ProbabilityPolicy.KEEP_ANY
    assert p.validate() == []
    assert len(p.won_stages) == 1
    assert 1 <= len(p.lost_stages) <= 2
    assert all(s.probability == Rate(1) for s in p.won_stages)


@heavy
@given(sps.processes(linear=True, with_criteria=True))
def test_linear_processes_with_criteria(p: Process) -> None:
    assert not p.transitions
    assert p.validate() == []
    assert all(s.probability.is_probability() for s in p.stages)


@given(sps.stages(kind="open", key="谈判"))
def test_stages(stage: object) -> None:
    from salesprocess import Stage

    assert isinstance(stage, Stage)
    assert stage.kind is StageKind.OPEN
    assert stage.key == "谈判"


@heavy
@given(sps.deals(process=processes.load("b2b")))
def test_deals_are_opened_through_the_process(deal: Deal) -> None:
    assert deal.version == 1
    assert isinstance(deal.events[0], DealCreated)
    assert deal.process == "b2b"
    assert deal.stage == "lead"
    assert replay(deal.events) == deal


@heavy
@given(sps.deals(process=processes.load("saas"), any_stage=True))
def test_deals_can_start_in_any_stage(deal: Deal) -> None:
    assert deal.stage in {s.key for s in processes.load("saas").stages}


@heavy
@given(sps.deal_histories(process=processes.load("b2b"), max_steps=12))
def test_histories_only_contain_moves_the_process_allows(deal: Deal) -> None:
    b2b = processes.load("b2b")
    assert replay(deal.events) == deal
    instants = [e.at.astimezone(UTC) for e in deal.events]
    assert instants == sorted(instants)
    for e in deal.events:
        if isinstance(e, StageChanged):
            assert b2b.edge(e.from_stage, e.to_stage) is not None
    assert deal.version <= 1 + 12 * 6  # creation, and per step at most a move with its preparation


def test_histories_reach_closed_stages() -> None:
    stages: set[str] = set()

    @settings(
        max_examples=80, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(sps.deal_histories(process=processes.load("saas"), max_steps=10))
    def collect(deal: Deal) -> None:
        stages.update(e.to_stage for e in deal.events if isinstance(e, StageChanged))

    collect()
    assert {"closed_won", "closed_lost"} <= stages
    assert len(stages) >= 4


@given(
    sps.accounts(),
    sps.reps(team_id="team-1"),
    sps.activities(deal_id="d-1", kinds=["visit"], status="done"),
)
def test_entities(account: Account, rep: Rep, act: Activity) -> None:
    assert account.id.startswith("acct-")
    assert rep.team_id == "team-1"
    assert rep.capacity > 0
    assert act.deal_id == "d-1"
    assert act.kind.value == "visit"
    assert act.done


def test_from_type_yields_valid_deals_in_a_fresh_interpreter() -> None:
    code = textwrap.dedent(
        """
        from hypothesis import given, settings, strategies as st
        from salesprocess import Deal, Money, Period, Process, Rep, replay

        seen = []

        @settings(max_examples=15, database=None, deadline=None)
        @given(st.from_type(Deal), st.from_type(Money), st.from_type(Period), st.from_type(Process),
               st.from_type(Rep))
        def check(deal, money, period, process, rep):
            assert replay(deal.events) == deal
            assert isinstance(money, Money) and isinstance(period, Period)
            assert process.validate() == [] and isinstance(rep, Rep)
            seen.append(deal.id)

        check()
        print("ok", len(seen))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")


def test_importing_the_strategies_first_works_in_a_fresh_interpreter() -> None:
    code = (
        "import salesprocess.testing.strategies as s\n"
        "from hypothesis import strategies as st\n"
        "from salesprocess import Deal\n"
        "print(type(st.from_type(Deal).example()).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Deal"


def test_register_type_strategies_is_idempotent() -> None:
    sps.register_type_strategies()
    sps.register_type_strategies()

    @settings(max_examples=5, database=None, deadline=None)
    @given(st.from_type(Deal))
    def check(deal: Deal) -> None:
        assert deal.version >= 1

    check()
