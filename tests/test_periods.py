"""Periods, fiscal calendars, labels, business days and aware instants."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesprocess import (
    BusinessCalendar,
    FiscalCalendar,
    NaiveDatetimeError,
    Period,
    PeriodError,
    PeriodKind,
)
from salesprocess.periods import require_aware
from salesprocess.testing import strategies as sps

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR_KINDS = [
    PeriodKind.DAY,
    PeriodKind.WEEK,
    PeriodKind.MONTH,
    PeriodKind.QUARTER,
    PeriodKind.HALF,
    PeriodKind.YEAR,
]
FISCAL_KINDS = [PeriodKind.FISCAL_QUARTER, PeriodKind.FISCAL_HALF, PeriodKind.FISCAL_YEAR]
ALL_KINDS = CALENDAR_KINDS + FISCAL_KINDS

# --- half-open ranges ---------------------------------------------------------------------------


def test_periods_are_half_open() -> None:
    q = Period.quarter(2026, 3)
    assert (q.start, q.end) == (date(2026, 7, 1), date(2026, 10, 1))
    assert date(2026, 7, 1) in q
    assert date(2026, 9, 30) in q
    assert date(2026, 10, 1) not in q
    assert q.last_day == date(2026, 9, 30)
    assert q.days == 92
    assert not q.overlaps(Period.quarter(2026, 4))
    assert q.next() == Period.quarter(2026, 4)


def test_end_must_follow_start() -> None:
    with pytest.raises(PeriodError):
        Period(date(2026, 1, 2), date(2026, 1, 2))
    with pytest.raises(TypeError):
        Period(datetime(2026, 1, 1, tzinfo=UTC), date(2026, 2, 1))  # type: ignore[arg-type]


def test_month_arithmetic_never_skips_february() -> None:
    jan = Period.month(2026, 1)
    assert jan.next() == Period.month(2026, 2)
    assert Period.month(2024, 2).days == 29
    assert [p.label for p in Period.year(2026).split("month")][:3] == [
        "2026-01",
        "2026-02",
        "2026-03",
    ]


@given(sps.dates(), st.sampled_from(ALL_KINDS), sps.fiscal_calendars())
def test_containing_contains_the_date(d: date, kind: PeriodKind, cal: FiscalCalendar) -> None:
    p = Period.containing(d, kind, cal)
    assert d in p
    assert p.kind is kind
    assert Period.containing(p.start, kind, cal) == p
    assert Period.containing(p.last_day, kind, cal) == p


@given(
    sps.periods(
        kinds=[
            PeriodKind.YEAR,
            PeriodKind.HALF,
            PeriodKind.QUARTER,
            PeriodKind.FISCAL_YEAR,
            PeriodKind.FISCAL_HALF,
            PeriodKind.MONTH,
        ]
    ),
    st.sampled_from(ALL_KINDS),
)
def test_split_covers_the_parent_exactly_without_overlap(parent: Period, kind: PeriodKind) -> None:
    parts = parent.split(kind)
    assert parts[0].start == parent.start
    assert parts[-1].end == parent.end
    for a, b in itertools.pairwise(parts):
        assert a.end == b.start  # contiguous: no gap and no overlap
    assert sum(p.days for p in parts) == parent.days
    assert all(p in parent for p in parts)


@given(sps.periods(), st.integers(-30, 30))
def test_shift_round_trips(p: Period, n: int) -> None:
    moved = p.shift(n)
    assert moved.kind is p.kind
    assert moved.shift(-n) == p
    if n > 0:
        assert moved.start >= p.end
    elif n < 0:
        assert moved.end <= p.start


@pytest.mark.parametrize("start_month", range(1, 13))
def test_fiscal_years_start_in_any_month(start_month: int) -> None:
    cal = FiscalCalendar(start_month)
    fy = Period.fiscal_year(2027, cal)
    assert fy.start.month == start_month
    assert fy.start.day == 1
    assert fy.days in (365, 366)
    quarters = fy.split("fiscal_quarter")
    assert [q.label for q in quarters] == [f"FY2027-Q{i}" for i in range(1, 5)]
    assert fy.shift(1) == Period.fiscal_year(2028, cal)  # shifting keeps the calendar
    assert fy.shift(1).start == fy.end


def test_fiscal_year_naming() -> None:
    april_end = FiscalCalendar(4, "end")
    april_start = FiscalCalendar(4, "start")
    assert Period.fiscal_year(2027, april_end).start == date(2026, 4, 1)
    assert Period.fiscal_year(2026, april_start).start == date(2026, 4, 1)
    assert Period.containing(date(2026, 5, 1), "fiscal_year", april_end).label == "FY2027"
    assert Period.containing(date(2026, 5, 1), "fiscal_year", april_start).label == "FY2026"
    assert Period.containing(date(2026, 2, 1), "fiscal_quarter", april_end).label == "FY2026-Q4"
    assert Period.fiscal_quarter(2027, 2, april_end).fiscal_calendar() == april_end
    assert Period.month(2026, 1).fiscal_calendar() is None


def test_weeks_are_iso_weeks() -> None:
    w = Period.parse("2026-W01")
    assert w.start == date(2025, 12, 29)
    assert w.start.weekday() == 0
    assert w.days == 7
    assert Period.parse("2020-W53").days == 7
    assert Period.week(2026, 7).label == "2026-W07"


# --- labels ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "kind", "start", "end"),
    [
        ("2026-Q3", PeriodKind.QUARTER, date(2026, 7, 1), date(2026, 10, 1)),
        ("2026-W07", PeriodKind.WEEK, date(2026, 2, 9), date(2026, 2, 16)),
        ("2026-03", PeriodKind.MONTH, date(2026, 3, 1), date(2026, 4, 1)),
        ("FY2027", PeriodKind.FISCAL_YEAR, date(2027, 1, 1), date(2028, 1, 1)),
        ("2026-H2", PeriodKind.HALF, date(2026, 7, 1), date(2027, 1, 1)),
        ("2026", PeriodKind.YEAR, date(2026, 1, 1), date(2027, 1, 1)),
        ("2026-03-15", PeriodKind.DAY, date(2026, 3, 15), date(2026, 3, 16)),
        ("fy2027-q1", PeriodKind.FISCAL_QUARTER, date(2027, 1, 1), date(2027, 4, 1)),
        ("2026-01-01..2026-02-15", PeriodKind.CUSTOM, date(2026, 1, 1), date(2026, 2, 15)),
    ],
)
def test_label_parsing(label: str, kind: PeriodKind, start: date, end: date) -> None:
    p = Period.parse(label)
    assert (p.kind, p.start, p.end) == (kind, start, end)


def test_fiscal_labels_use_the_given_calendar() -> None:
    p = Period.parse("FY2027", FiscalCalendar(4))
    assert (p.start, p.end) == (date(2026, 4, 1), date(2027, 4, 1))
    assert Period.parse("FY2027-H2", FiscalCalendar(4)).start == date(2026, 10, 1)


@pytest.mark.parametrize(
    "bad",
    [
        "2026-Q5",
        "2026-Q0",
        "2026-W54",
        "2025-W53",
        "2026-13",
        "2026-00",
        "2026-02-30",
        "FY2027-03",
        "FY2027-W02",
        "26-Q1",
        "Q3 2026",
        "",
        "2026-H3",
        "2026-02-01..2026-01-01",
        "2026-01-01..x",
    ],
)
def test_bad_labels_raise_period_error_naming_the_label(bad: str) -> None:
    with pytest.raises(PeriodError) as info:
        Period.parse(bad)
    assert bad in str(info.value)


def test_non_string_label_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Period.parse(2026)  # type: ignore[arg-type]


@given(sps.period_labels())
def test_labels_round_trip(label: str) -> None:
    p = Period.parse(label)
    assert p.label == label
    assert Period.parse(p.label) == p
    assert Period.parse(label.lower()) == p


# --- business days ------------------------------------------------------------------------------


def test_china_make_up_saturday_counts_and_weekday_holiday_does_not() -> None:
    cn = BusinessCalendar("CN")
    makeup = date(2026, 2, 14)  # a Saturday worked before the Spring Festival
    assert makeup.weekday() == 5
    assert cn.is_working_day(makeup)
    festival = date(2026, 2, 17)  # a Tuesday, Spring Festival
    assert festival.weekday() == 1
    assert not cn.is_working_day(festival)
    assert cn.is_holiday(festival)
    assert not cn.is_working_day(date(2026, 2, 15))  # an ordinary Sunday
    assert cn.is_working_day(date(2026, 2, 13))  # an ordinary Friday


def test_without_a_country_weeks_are_monday_to_friday() -> None:
    plain = BusinessCalendar()
    week = Period.parse("2026-W07")
    assert [d.weekday() for d in plain.working_days(week)] == [0, 1, 2, 3, 4]
    assert plain.count_working_days(week.start, week.end) == 5


def test_custom_holidays_and_working_days() -> None:
    cal = BusinessCalendar(extra_holidays={date(2026, 3, 2)}, extra_working_days={date(2026, 3, 7)})
    assert not cal.is_working_day(date(2026, 3, 2))  # a Monday declared off
    assert cal.is_working_day(date(2026, 3, 7))  # a Saturday declared worked
    assert cal.is_holiday(date(2026, 3, 2))
    assert cal.count_working_days(date(2026, 3, 2), date(2026, 3, 9)) == 5


def test_add_working_days_crosses_the_spring_festival() -> None:
    cn = BusinessCalendar("CN")
    start = date(2026, 2, 13)
    after = cn.add_working_days(start, 1)
    assert after == date(2026, 2, 14)  # the make-up Saturday is the next working day
    assert cn.add_working_days(after, -1) == start
    assert cn.add_working_days(start, 0) == start


@given(sps.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31)), st.integers(0, 40))
def test_add_and_count_working_days_agree(start: date, n: int) -> None:
    cn = BusinessCalendar("CN")
    end = cn.add_working_days(start, n)
    assert cn.count_working_days(start + timedelta(days=1), end + timedelta(days=1)) == n


# --- instants -----------------------------------------------------------------------------------


def test_require_aware() -> None:
    at = datetime(2026, 3, 1, 9, tzinfo=SHANGHAI)
    assert require_aware(at) is at
    with pytest.raises(NaiveDatetimeError) as info:
        require_aware(datetime(2026, 3, 1, 9), "created_at")
    assert info.value.field == "created_at"
    with pytest.raises(TypeError):
        require_aware(date(2026, 3, 1))  # type: ignore[arg-type]


def test_instants_count_by_local_date() -> None:
    march = Period.month(2026, 3)
    late = datetime(2026, 2, 28, 17, 0, tzinfo=UTC)  # 01:00 on 1 March in Shanghai
    assert march.contains_instant(late, SHANGHAI)
    assert not march.contains_instant(late, UTC)
    assert march.start_instant(SHANGHAI).utcoffset() == timedelta(hours=8)
    with pytest.raises(NaiveDatetimeError):
        march.contains_instant(datetime(2026, 3, 1), SHANGHAI)
