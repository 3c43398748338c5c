"""Facts about a deal at one instant, shared by the risk signals and the win-scoring model.

:class:`FactsBuilder` indexes a :class:`~salesprocess.kpi.View` once (activities per deal, working
days, historical stage stays) and then computes a :class:`DealFacts` per deal cheaply. Everything
is read *as of* the builder's instant: activities done later, planned activities created for later
and events after it are not seen.

Definitions:

- ``days_in_stage`` / ``business_days_in_stage`` — whole days (local dates in ``tz``) since the deal
  entered its stage; business days count working days of the calendar in ``[entered, today)``.
- ``days_since_activity`` / ``business_days_since_activity`` — since the last *done* activity linked
  to the deal (``None`` when there is none; then counted from the deal's creation).
- ``contacts_engaged`` — distinct contacts of the deal's done activities; when none of them names a
  contact, the number of contacts linked to the deal.
- ``pushes`` — times the close date moved later (or was removed); ``slip_days`` the days added.
- ``amount_cut`` — ``1 − amount / peak amount`` (same currency), 0 when never cut.
- ``discount`` — the deal's custom field ``discount`` (a fraction such as ``"0.25"``, or a
  percentage such as ``"25%"``), ``None`` when absent.
- ``next_step_at`` — the earliest *planned* activity of the deal due at or after the instant.
- ``days_overdue`` — days the expected close date lies in the past (0 when not past).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from salesprocess.kpi import View
from salesprocess.kpi.facts import stays_of
from salesprocess.model import (
    ActivityStatus,
    AmountChanged,
    CloseDateChanged,
    Deal,
    DealStatus,
)
from salesprocess.periods import BusinessCalendar

__all__ = ["DealFacts", "FactsBuilder", "Workdays"]

_MISSING: Any = object()
_ZERO = Decimal(0)
_CLOSE = CloseDateChanged
_AMOUNT = AmountChanged


class Workdays:
    """Fast working-day counts: a cumulative index over the calendar, grown on demand."""

    def __init__(self, calendar: BusinessCalendar | None = None) -> None:
        self.calendar = calendar or BusinessCalendar()
        self._first: date | None = None
        self._cum: list[int] = [0]

    def _ensure(self, lo: date, hi: date) -> None:
        first = self._first
        if first is not None and lo >= first and hi <= first + timedelta(days=len(self._cum) - 1):
            return
        if first is not None:
            lo = min(lo, first)
            hi = max(hi, first + timedelta(days=len(self._cum) - 1))
        start = lo - timedelta(days=366)
        stop = hi + timedelta(days=366)
        cum = [0]
        d = start
        one = timedelta(days=1)
        working = self.calendar.is_working_day
        while d < stop:
            cum.append(cum[-1] + working(d))
            d += one
        self._first = start
        self._cum = cum

    def count(self, start: date, end: date) -> int:
        """Working days in ``[start, end)`` (0 when ``end <= start``)."""
        if end <= start:
            return 0
        first = self._first
        if first is not None:
            a = (start - first).days
            b = (end - first).days
            if a >= 0 and b < len(self._cum):
                return self._cum[b] - self._cum[a]
        self._ensure(start, end)
        assert self._first is not None
        return self._cum[(end - self._first).days] - self._cum[(start - self._first).days]


class DealFacts:
    """What the signals and the scoring model know about one deal at one instant."""

    __slots__ = (
        "activities_30d",
        "activities_total",
        "age_days",
        "amount_cut",
        "business_days_in_stage",
        "business_days_since_activity",
        "contacts_engaged",
        "days_in_stage",
        "days_overdue",
        "days_since_activity",
        "deal",
        "discount",
        "last_activity_at",
        "next_step_at",
        "p75_scope",
        "p75_stage_days",
        "pushes",
        "slip_days",
        "team_id",
        "today",
    )

    deal: Deal
    today: date
    team_id: str | None
    age_days: int
    days_in_stage: int
    business_days_in_stage: int
    last_activity_at: datetime | None
    days_since_activity: int
    business_days_since_activity: int
    activities_30d: int
    activities_total: int
    contacts_engaged: int
    pushes: int
    slip_days: int
    amount_cut: Decimal
    discount: Decimal | None
    next_step_at: datetime | None
    days_overdue: int
    p75_stage_days: Decimal | None
    p75_scope: str | None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if k != "deal"} | {"deal_id": self.deal.id}


def _discount(v: object) -> Decimal | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        if isinstance(v, str):
            s = v.strip()
            if s.endswith("%"):
                return Decimal(s[:-1]) / 100
            return Decimal(s)
        if isinstance(v, Decimal | int):
            return Decimal(v)
    except InvalidOperation:
        return None
    return None


class FactsBuilder:
    """Index a view once, then compute :class:`DealFacts` for its deals."""

    def __init__(
        self,
        view: View,
        asof: datetime,
        *,
        tz: tzinfo = UTC,
        calendar: BusinessCalendar | None = None,
        workdays: Workdays | None = None,
        p75_min_sample: int = 10,
        stay_stats: bool = True,
    ) -> None:
        self.view = view
        self.asof = asof
        self.tz = tz
        self.today = asof.astimezone(tz).date()
        self.workdays = workdays or Workdays(calendar)
        done: dict[str, list[tuple[datetime, str | None]]] = {}
        planned: dict[str, list[datetime]] = {}
        for a in view.data.activities:
            if a.deal_id is None:
                continue
            if a.status is ActivityStatus.DONE:
                if a.at <= asof:
                    done.setdefault(a.deal_id, []).append((a.at, a.contact_id))
            elif a.status is ActivityStatus.PLANNED and a.at >= asof:
                planned.setdefault(a.deal_id, []).append(a.at)
        self._done = {k: sorted(v, key=lambda x: x[0]) for k, v in done.items()}
        self._done_at = {k: [x[0] for x in v] for k, v in self._done.items()}
        self._planned = {k: min(v) for k, v in planned.items()}
        self.p75_min_sample = p75_min_sample
        self._utc = tz is UTC
        self._teams: dict[str | None, str | None] = {}
        self._p75_cache: dict[tuple[str, str, str | None], tuple[Decimal | None, str | None]] = {}
        self._p75: dict[tuple[str, str, str | None], Decimal] = {}
        if stay_stats:
            self._learn_stays()

    # --- historical time in stage ---------------------------------------------------------------
    def _learn_stays(self) -> None:
        from salesprocess.kpi.stats import percentile

        per: dict[tuple[str, str, str | None], list[int]] = {}
        for d in self.view.deals:
            team = self.team_of(d.owner_id)
            for st in stays_of(d):
                if st.left is None:
                    continue
                days = (st.left.astimezone(self.tz).date() - st.entered.astimezone(self.tz).date()).days
                per.setdefault((d.process, st.stage, team), []).append(days)
                per.setdefault((d.process, st.stage, None), []).append(days)
        for k, v in per.items():
            if len(v) >= self.p75_min_sample:
                p = percentile(sorted(v), Decimal("0.75"))
                if p is not None:
                    self._p75[k] = p

    def p75(self, process: str, stage: str, team: str | None) -> tuple[Decimal | None, str | None]:
        """The p75 of completed stays in the stage for the team, else for the whole process."""
        if team is not None:
            v = self._p75.get((process, stage, team))
            if v is not None:
                return v, f"team {team}"
        v = self._p75.get((process, stage, None))
        return (v, f"process {process}") if v is not None else (None, None)

    def team_of(self, owner: str | None) -> str | None:
        rep = self.view.reps.get(owner) if owner else None
        return rep.team_id if rep is not None else None

    def activities_of(self, deal_id: str) -> Sequence[tuple[datetime, str | None]]:
        return self._done.get(deal_id, ())

    # --- per deal --------------------------------------------------------------------------------
    def facts(self, deal: Deal, at: datetime | None = None) -> DealFacts:
        """Facts of ``deal`` at the builder's instant, or at an earlier instant ``at`` (then only
        activities done by ``at`` count, and ``deal`` should be the deal as it stood then)."""
        day = self._day
        asof = self.asof if at is None else at
        today = self.today if at is None else day(at)
        f = DealFacts()
        f.deal = deal
        f.today = today
        owner = deal.owner_id
        team = self._teams.get(owner, _MISSING)
        if team is _MISSING:
            team = self._teams[owner] = self.team_of(owner)
        f.team_id = team
        created = day(deal.created_at)
        entered = day(deal.stage_entered_at)
        f.age_days = (today - created).days
        f.days_in_stage = (today - entered).days
        wd = self.workdays
        f.business_days_in_stage = wd.count(entered, today)
        acts = self._done.get(deal.id, ())
        if acts and at is not None:
            acts = acts[: bisect.bisect_right(self._done_at[deal.id], at)]
        if acts:
            last = acts[-1][0]
            f.last_activity_at = last
            since = day(last)
            ats = self._done_at[deal.id][: len(acts)]
            f.activities_30d = len(ats) - bisect.bisect_left(ats, asof - timedelta(days=30))
            f.activities_total = len(ats)
            contacts = {c for _, c in acts if c}
            f.contacts_engaged = len(contacts) if contacts else len(deal.contact_ids)
        else:
            f.last_activity_at = None
            since = created
            f.activities_30d = 0
            f.activities_total = 0
            f.contacts_engaged = len(deal.contact_ids)
        f.days_since_activity = (today - since).days
        f.business_days_since_activity = wd.count(since, today)
        pushes = 0
        slip = 0
        peak = None
        for e in deal.events:
            cls = e.__class__
            if cls is _CLOSE or (cls is not _AMOUNT and isinstance(e, CloseDateChanged)):
                if e.old is not None and (e.new is None or e.new > e.old):  # type: ignore[attr-defined]
                    pushes += 1
                    if e.new is not None:  # type: ignore[attr-defined]
                        slip += (e.new - e.old).days  # type: ignore[attr-defined]
            elif cls is _AMOUNT and e.old is not None:  # type: ignore[attr-defined]
                e_old: Any = e.old  # type: ignore[attr-defined]
                if peak is None or (e_old.currency == peak.currency and e_old.amount > peak.amount):
                    peak = e_old
        f.pushes = pushes
        f.slip_days = slip
        amt = deal.amount
        if amt is not None and peak is not None and peak.currency == amt.currency and peak.amount > amt.amount:
            f.amount_cut = 1 - amt.amount / peak.amount
        else:
            f.amount_cut = _ZERO
        f.discount = _discount(deal.custom.get("discount")) if deal.custom else None
        f.next_step_at = self._planned.get(deal.id) if at is None else None
        cd = deal.close_date
        f.days_overdue = (today - cd).days if cd is not None and cd < today and deal.status is DealStatus.OPEN else 0
        key = (deal.process, deal.stage, team)
        p = self._p75_cache.get(key)
        if p is None:
            p = self._p75_cache[key] = self.p75(deal.process, deal.stage, team)
        f.p75_stage_days, f.p75_scope = p
        return f

    def _day(self, at: datetime) -> date:
        """The local date of ``at`` in the builder's timezone (no conversion when both are UTC)."""
        if self._utc and at.tzinfo is UTC:
            return at.date()
        return at.astimezone(self.tz).date()

