"""Periods, instants and business-day calendars.

A :class:`Period` is a half-open range of calendar days ``[start, end)`` of one kind (day, ISO week,
month, quarter, half, year, fiscal year), built with ``relativedelta`` from the first day so month
arithmetic never skips February. Labels parse both ways: ``2026-Q3``, ``2026-W07``, ``2026-03``,
``2026-H1``, ``2026``, ``FY2027``, ``FY2027-Q1`` and ``2026-03-15``.

Instants are timezone-aware ``datetime`` values; :func:`require_aware` refuses naive ones. Nothing in
this module reads the clock.

:class:`BusinessCalendar` wraps the ``holidays`` package: public holidays of a country (and
subdivision) are days off, weekends are days off unless the country declares a make-up working day
(China's 调休, e.g. Saturday 2026-02-14), and callers may add their own holidays and working days.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, Final

import attrs
from dateutil.relativedelta import relativedelta

from .errors import NaiveDatetimeError, PeriodError

__all__ = [
    "BusinessCalendar",
    "FiscalCalendar",
    "Period",
    "PeriodKind",
    "require_aware",
]


def require_aware(value: datetime, field: str = "at") -> datetime:
    """Return ``value`` if it is a timezone-aware datetime, else raise :class:`NaiveDatetimeError`."""
    if not isinstance(value, datetime):
        raise TypeError(f"{field}: expected an aware datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise NaiveDatetimeError(field, value)
    return value


class PeriodKind(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    HALF = "half"
    YEAR = "year"
    FISCAL_QUARTER = "fiscal_quarter"
    FISCAL_HALF = "fiscal_half"
    FISCAL_YEAR = "fiscal_year"
    CUSTOM = "custom"


_MONTHS: Final[dict[PeriodKind, int]] = {
    PeriodKind.MONTH: 1,
    PeriodKind.QUARTER: 3,
    PeriodKind.HALF: 6,
    PeriodKind.YEAR: 12,
    PeriodKind.FISCAL_QUARTER: 3,
    PeriodKind.FISCAL_HALF: 6,
    PeriodKind.FISCAL_YEAR: 12,
}


@attrs.frozen(order=False)
class FiscalCalendar:
    """Fiscal years starting on day 1 of ``start_month``.

    ``named_by`` says which calendar year names the fiscal year: ``"end"`` (FY2027 runs
    2026-04-01 → 2027-04-01 when ``start_month=4``; the usual convention) or ``"start"``.
    """

    start_month: int = attrs.field(default=1, validator=attrs.validators.in_(range(1, 13)))
    named_by: str = attrs.field(default="end", validator=attrs.validators.in_(("end", "start")))

    def year_start(self, fy: int) -> date:
        if self.start_month == 1:
            return date(fy, 1, 1)
        y = fy - 1 if self.named_by == "end" else fy
        return date(y, self.start_month, 1)

    def fiscal_year_of(self, d: date) -> int:
        if self.start_month == 1:
            return d.year
        started_this_year = d.month >= self.start_month
        if self.named_by == "end":
            return d.year + 1 if started_this_year else d.year
        return d.year if started_this_year else d.year - 1


CALENDAR_YEAR: Final = FiscalCalendar()


@attrs.frozen(order=False)
class Period:
    """A half-open range of days ``[start, end)`` with its kind and label."""

    start: date = attrs.field()
    end: date = attrs.field()
    kind: PeriodKind = attrs.field(default=PeriodKind.CUSTOM, converter=PeriodKind)
    label: str = attrs.field(default="")

    @start.validator
    def _check_start(self, _a: Any, v: date) -> None:
        if not isinstance(v, date) or isinstance(v, datetime):
            raise TypeError("Period.start must be a date (not a datetime)")

    @end.validator
    def _check_end(self, _a: Any, v: date) -> None:
        if not isinstance(v, date) or isinstance(v, datetime):
            raise TypeError("Period.end must be a date (not a datetime)")
        if v <= self.start:
            raise PeriodError(f"period end {v} must be after start {self.start}")

    def __attrs_post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", f"{self.start.isoformat()}..{self.end.isoformat()}")

    def __str__(self) -> str:
        return self.label

    def __lt__(self, other: Period) -> bool:
        return (self.start, self.end) < (other.start, other.end)

    # --- named constructors --------------------------------------------------------------------
    @classmethod
    def day(cls, d: date) -> Period:
        return cls(d, d + timedelta(days=1), PeriodKind.DAY, d.isoformat())

    @classmethod
    def week(cls, iso_year: int, week: int) -> Period:
        try:
            start = date.fromisocalendar(iso_year, week, 1)
        except ValueError as e:
            raise PeriodError(f"no ISO week {week} in {iso_year}: {e}") from None
        return cls(start, start + timedelta(days=7), PeriodKind.WEEK, f"{iso_year}-W{week:02d}")

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        if not 1 <= month <= 12:
            raise PeriodError(f"month must be 1..12, got {month}")
        start = date(year, month, 1)
        return cls(start, start + relativedelta(months=1), PeriodKind.MONTH, f"{year}-{month:02d}")

    @classmethod
    def quarter(cls, year: int, q: int) -> Period:
        if not 1 <= q <= 4:
            raise PeriodError(f"quarter must be 1..4, got {q}")
        start = date(year, 3 * (q - 1) + 1, 1)
        return cls(start, start + relativedelta(months=3), PeriodKind.QUARTER, f"{year}-Q{q}")

    @classmethod
    def half(cls, year: int, h: int) -> Period:
        if h not in (1, 2):
            raise PeriodError(f"half must be 1 or 2, got {h}")
        start = date(year, 6 * (h - 1) + 1, 1)
        return cls(start, start + relativedelta(months=6), PeriodKind.HALF, f"{year}-H{h}")

    @classmethod
    def year(cls, year: int) -> Period:
        return cls(date(year, 1, 1), date(year + 1, 1, 1), PeriodKind.YEAR, str(year))

    @classmethod
    def fiscal_year(cls, fy: int, calendar: FiscalCalendar = CALENDAR_YEAR) -> Period:
        start = calendar.year_start(fy)
        return cls(start, start + relativedelta(years=1), PeriodKind.FISCAL_YEAR, f"FY{fy}")

    @classmethod
    def fiscal_quarter(cls, fy: int, q: int, calendar: FiscalCalendar = CALENDAR_YEAR) -> Period:
        if not 1 <= q <= 4:
            raise PeriodError(f"quarter must be 1..4, got {q}")
        start = calendar.year_start(fy) + relativedelta(months=3 * (q - 1))
        return cls(
            start, start + relativedelta(months=3), PeriodKind.FISCAL_QUARTER, f"FY{fy}-Q{q}"
        )

    @classmethod
    def fiscal_half(cls, fy: int, h: int, calendar: FiscalCalendar = CALENDAR_YEAR) -> Period:
        if h not in (1, 2):
            raise PeriodError(f"half must be 1 or 2, got {h}")
        start = calendar.year_start(fy) + relativedelta(months=6 * (h - 1))
        return cls(start, start + relativedelta(months=6), PeriodKind.FISCAL_HALF, f"FY{fy}-H{h}")

    @classmethod
    def containing(
        cls, d: date | datetime, kind: PeriodKind | str, calendar: FiscalCalendar = CALENDAR_YEAR
    ) -> Period:
        """The period of ``kind`` that contains ``d`` (a datetime counts by its own local date)."""
        if isinstance(d, datetime):
            d = d.date()
        k = PeriodKind(kind)
        if k is PeriodKind.DAY:
            return cls.day(d)
        if k is PeriodKind.WEEK:
            iy, iw, _ = d.isocalendar()
            return cls.week(iy, iw)
        if k is PeriodKind.MONTH:
            return cls.month(d.year, d.month)
        if k is PeriodKind.QUARTER:
            return cls.quarter(d.year, (d.month - 1) // 3 + 1)
        if k is PeriodKind.HALF:
            return cls.half(d.year, 1 if d.month <= 6 else 2)
        if k is PeriodKind.YEAR:
            return cls.year(d.year)
        fy = calendar.fiscal_year_of(d)
        months_in = (d.month - calendar.start_month) % 12
        if k is PeriodKind.FISCAL_YEAR:
            return cls.fiscal_year(fy, calendar)
        if k is PeriodKind.FISCAL_QUARTER:
            return cls.fiscal_quarter(fy, months_in // 3 + 1, calendar)
        if k is PeriodKind.FISCAL_HALF:
            return cls.fiscal_half(fy, months_in // 6 + 1, calendar)
        raise PeriodError(f"cannot find a {k} period containing a date")

    @classmethod
    def parse(cls, label: str, calendar: FiscalCalendar = CALENDAR_YEAR) -> Period:
        """Parse a label: ``2026``, ``2026-H1``, ``2026-Q3``, ``2026-03``, ``2026-W07``,
        ``2026-03-15``, ``FY2027``, ``FY2027-Q1``, ``FY2027-H2`` or ``START..END`` (ISO dates)."""
        if not isinstance(label, str):
            raise TypeError(f"period label must be a str, got {type(label).__name__}")
        s = label.strip().upper()
        m = _LABEL.fullmatch(s)
        if m is None:
            if ".." in s:
                a, _, b = s.partition("..")
                try:
                    return cls(date.fromisoformat(a), date.fromisoformat(b))
                except ValueError as e:
                    raise PeriodError(f"bad period range {label!r}: {e}", label=label) from None
            raise PeriodError(
                f"cannot parse period {label!r}: expected e.g. 2026, 2026-H1, 2026-Q3, 2026-03, "
                "2026-W07, 2026-03-15, FY2027, FY2027-Q1",
                label=label,
            )
        g = m.groupdict()
        year = int(g["year"])
        try:
            if g["fy"]:
                if g["q"]:
                    return cls.fiscal_quarter(year, int(g["q"]), calendar)
                if g["h"]:
                    return cls.fiscal_half(year, int(g["h"]), calendar)
                if g["w"] or g["m"]:
                    raise PeriodError(f"fiscal labels take Q or H, not {label!r}", label=label)
                return cls.fiscal_year(year, calendar)
            if g["q"]:
                return cls.quarter(year, int(g["q"]))
            if g["h"]:
                return cls.half(year, int(g["h"]))
            if g["w"]:
                return cls.week(year, int(g["w"]))
            if g["m"] and g["d"]:
                return cls.day(date(year, int(g["m"]), int(g["d"])))
            if g["m"]:
                return cls.month(year, int(g["m"]))
            return cls.year(year)
        except ValueError as e:
            if isinstance(e, PeriodError):
                if e.label is None:
                    raise PeriodError(f"bad period {label!r}: {e}", label=label) from None
                raise
            raise PeriodError(f"bad period {label!r}: {e}", label=label) from None

    # --- queries -------------------------------------------------------------------------------
    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, datetime):
            return self.start <= item.date() < self.end
        if isinstance(item, date):
            return self.start <= item < self.end
        if isinstance(item, Period):
            return self.start <= item.start and item.end <= self.end
        return False

    def contains_instant(self, at: datetime, tz: tzinfo) -> bool:
        """Whether the aware instant ``at`` falls in this period in the timezone ``tz``."""
        require_aware(at)
        return self.start <= at.astimezone(tz).date() < self.end

    def start_instant(self, tz: tzinfo) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=tz)

    def end_instant(self, tz: tzinfo) -> datetime:
        return datetime(self.end.year, self.end.month, self.end.day, tzinfo=tz)

    def overlaps(self, other: Period) -> bool:
        return self.start < other.end and other.start < self.end

    def intersect(self, other: Period) -> Period | None:
        s, e = max(self.start, other.start), min(self.end, other.end)
        if s >= e:
            return None
        if (s, e) == (other.start, other.end):
            return other
        return Period(s, e, other.kind, f"{other.label}[{s.isoformat()}..{e.isoformat()}]")

    def dates(self) -> Iterator[date]:
        d = self.start
        one = timedelta(days=1)
        while d < self.end:
            yield d
            d += one

    def fiscal_calendar(self) -> FiscalCalendar | None:
        """The fiscal calendar a fiscal period was built with, read back from its label and start
        (``None`` for other kinds or labels that do not name a fiscal period)."""
        if self.kind not in _FISCAL:
            return None
        m = _FISCAL_LABEL.fullmatch(self.label)
        if m is None:
            return None
        fy = int(m.group("fy"))
        q, h = m.group("q"), m.group("h")
        offset = 3 * (int(q) - 1) if q else 6 * (int(h) - 1) if h else 0
        year_start = self.start - relativedelta(months=offset)
        if year_start.day != 1:
            return None
        if year_start.month == 1:
            return CALENDAR_YEAR
        if fy == year_start.year + 1:
            return FiscalCalendar(year_start.month, "end")
        if fy == year_start.year:
            return FiscalCalendar(year_start.month, "start")
        return None

    def _calendar(self, calendar: FiscalCalendar | None) -> FiscalCalendar:
        if calendar is not None:
            return calendar
        return self.fiscal_calendar() or CALENDAR_YEAR

    def shift(self, n: int = 1, calendar: FiscalCalendar | None = None) -> Period:
        """The period ``n`` steps later (earlier when negative) of the same kind.

        Fiscal periods keep the fiscal calendar they were built with unless ``calendar`` is given.
        """
        calendar = self._calendar(calendar)
        k = self.kind
        if k is PeriodKind.DAY:
            return Period.day(self.start + timedelta(days=n))
        if k is PeriodKind.WEEK:
            return Period.containing(self.start + timedelta(weeks=n), k)
        if k in _MONTHS:
            return Period.containing(self.start + relativedelta(months=_MONTHS[k] * n), k, calendar)
        span = self.end - self.start
        return Period(self.start + span * n, self.end + span * n)

    def next(self) -> Period:
        return self.shift(1)

    def previous(self) -> Period:
        return self.shift(-1)

    def year_ago(self) -> Period:
        """The same period one year earlier (ISO week number kept for weeks)."""
        if self.kind is PeriodKind.WEEK:
            y, w, _ = self.start.isocalendar()
            return Period.week(y - 1, min(w, date(y - 1, 12, 28).isocalendar()[1]))
        if self.kind in _MONTHS or self.kind is PeriodKind.DAY:
            return Period.containing(
                self.start - relativedelta(years=1), self.kind, self._calendar(None)
            )
        return Period(self.start - relativedelta(years=1), self.end - relativedelta(years=1))

    def split(
        self, kind: PeriodKind | str, calendar: FiscalCalendar | None = None
    ) -> list[Period]:
        """The periods of ``kind`` covering this one, clipped to it (ISO weeks clip at month ends).

        The parts are disjoint and their union is exactly this period. A fiscal period splits by
        the fiscal calendar it was built with unless ``calendar`` is given.
        """
        calendar = self._calendar(calendar)
        k = PeriodKind(kind)
        out: list[Period] = []
        d = self.start
        while d < self.end:
            p = Period.containing(d, k, calendar)
            part = self.intersect(p)
            assert part is not None
            out.append(part)
            d = part.end
        return out


_FISCAL: Final = frozenset(
    {PeriodKind.FISCAL_YEAR, PeriodKind.FISCAL_QUARTER, PeriodKind.FISCAL_HALF}
)
_FISCAL_LABEL = re.compile(r"FY(?P<fy>\d{4})(?:-Q(?P<q>[1-4])|-H(?P<h>[12]))?")

_LABEL = re.compile(
    r"(?P<fy>FY)?(?P<year>\d{4})"
    r"(?:-(?:Q(?P<q>\d)|H(?P<h>\d)|W(?P<w>\d{1,2})|(?P<m>\d{1,2})(?:-(?P<d>\d{1,2}))?))?"
)


@lru_cache(maxsize=256)
def _holiday_year(country: str, subdiv: str | None, year: int) -> tuple[frozenset[date], frozenset[date], frozenset[int]]:
    import holidays

    try:
        h = holidays.country_holidays(country, subdiv=subdiv, years=year)
    except NotImplementedError:
        raise ValueError(f"the holidays package has no calendar for {country!r}/{subdiv!r}") from None
    days = frozenset(d for d in h if d.year == year)
    make_up = frozenset(d for d in getattr(h, "weekend_workdays", ()) if d.year == year)
    weekend = frozenset(getattr(h, "weekend", {5, 6}))
    return days, make_up, weekend


@attrs.frozen
class BusinessCalendar:
    """Working days of a country (and subdivision), from the ``holidays`` package.

    A day is a working day when it is listed in ``extra_working_days``, or when it is not a public
    holiday nor listed in ``extra_holidays`` and it is either a weekday or an official make-up working
    day (China's 调休 Saturdays and Sundays). ``country=None`` gives plain Monday–Friday weeks.
    """

    country: str | None = None
    subdivision: str | None = None
    extra_holidays: frozenset[date] = attrs.field(default=frozenset(), converter=frozenset)
    extra_working_days: frozenset[date] = attrs.field(default=frozenset(), converter=frozenset)

    def _year(self, year: int) -> tuple[frozenset[date], frozenset[date], frozenset[int]]:
        if self.country is None:
            return frozenset(), frozenset(), frozenset({5, 6})
        return _holiday_year(self.country, self.subdivision, year)

    def is_holiday(self, d: date) -> bool:
        return d in self.extra_holidays or d in self._year(d.year)[0]

    def is_working_day(self, d: date) -> bool:
        if d in self.extra_working_days:
            return True
        if d in self.extra_holidays:
            return False
        hol, make_up, weekend = self._year(d.year)
        if d in hol:
            return False
        return d in make_up or d.weekday() not in weekend

    def working_days(self, period: Period) -> list[date]:
        return [d for d in period.dates() if self.is_working_day(d)]

    def count_working_days(self, start: date, end: date) -> int:
        """Working days in ``[start, end)``."""
        n = 0
        d = start
        one = timedelta(days=1)
        while d < end:
            if self.is_working_day(d):
                n += 1
            d += one
        return n

    def add_working_days(self, start: date, n: int) -> date:
        """The date ``n`` working days after ``start`` (``n`` may be 0 or negative)."""
        step = timedelta(days=1 if n >= 0 else -1)
        d = start
        left = abs(n)
        while left:
            d += step
            if self.is_working_day(d):
                left -= 1
        return d

    def holidays_in(self, period: Period) -> Iterable[date]:
        return [d for d in period.dates() if self.is_holiday(d)]
