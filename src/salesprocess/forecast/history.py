"""What the history of closed deals teaches: stage win rates and time to close.

Both learners read a :class:`~salesprocess.kpi.View` — the deals *as known at* one instant — so a
model learnt for an as-of forecast never sees a deal closed later.

**Win rates.** For each open stage, the share of closed deals that had been in the stage and were
won: a deal counts once per distinct open stage it visited (reopened deals included). Rates can be
learnt per *segment* (any KPI dimension: ``team``, ``owner``, ``region``, ``industry``,
``size_band``, ``product``, ``product_family``, ``custom.FIELD``). A lookup walks the fallback chain
segment → process → stage default and answers from the first level with at least ``min_sample``
closed deals; the answer says which level it came from.

**Time to close.** From won deals, two empirical distributions in whole days (local dates in
``tz``):

- *remaining days by stage*: for every stay in an open stage, the days from entering the stage to
  the win. For an open deal that has been in its stage ``a`` days, the remaining time is drawn from
  the stays that lasted at least ``a`` days (minus ``a``).
- *close-date slip*: at every stage entry of a won deal, the actual close date minus the expected
  close date the deal had then (positive = slipped later), kept per stage and per number of earlier
  pushes (0, 1, 2 or more). A deal's close date plus a slip is its predicted close date.

:meth:`CloseTiming.share_in` gives the share of a deal expected to close inside a period: the slip
model when the deal has a close date and the conditional slip sample is large enough, else the
remaining-days model, else the close date as given, else nothing (basis ``no_timing``).
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

import attrs

from salesprocess.errors import DomainError
from salesprocess.kpi import View
from salesprocess.kpi.dimensions import dimension_values, is_dimension
from salesprocess.model import (
    CloseDateChanged,
    Deal,
    DealCreated,
    DealStatus,
    ProcessMigrated,
    StageChanged,
)
from salesprocess.money import Rate
from salesprocess.periods import Period
from salesprocess.process import Process, StageKind

__all__ = [
    "CloseTiming",
    "Level",
    "TimingBasis",
    "TimingShare",
    "WinRate",
    "WinRates",
    "learn_close_timing",
    "learn_win_rates",
    "push_count",
]

RATE_PLACES = 4
"""Learnt rates and shares are rounded half-even to this many decimal places."""


def _q(num: int, den: int) -> Rate:
    return Rate((Decimal(num) / Decimal(den)).quantize(Decimal(1).scaleb(-RATE_PLACES)))


class Level(enum.StrEnum):
    """Which level of the fallback chain answered a win-rate lookup."""

    SEGMENT = "segment"
    PROCESS = "process"
    STAGE_DEFAULT = "stage_default"


@attrs.frozen
class WinRate:
    """A win probability for one stage and where it came from.

    ``wins`` and ``closed`` are the counts behind the rate (both 0 for a stage default);
    ``segment`` names the segment value(s) when ``level`` is ``segment``.
    """

    process: str
    stage: str
    rate: Rate
    level: Level
    wins: int = 0
    closed: int = 0
    segment: tuple[str, ...] = ()
    age_days: int | None = None
    """When set, the rate is a competing-risks estimate for deals still in the process this many
    days after entering the stage: ``closed`` counts the deals at risk, ``wins`` the wins after."""

    def explain(self) -> str:
        if self.level is Level.STAGE_DEFAULT:
            return f"stage {self.stage!r}: default probability {self.rate} (not enough history)"
        where = (f"segment {'/'.join(self.segment)}" if self.level is Level.SEGMENT
                 else f"process {self.process!r}")
        if self.age_days is not None:
            return (f"stage {self.stage!r}: {self.rate} of deals still in the process "
                    f"{self.age_days} days after entering it end won ({self.closed} deals at risk, "
                    f"{self.wins} wins after; open deals censored) in {where}")
        return (f"stage {self.stage!r}: {self.wins} of {self.closed} closed deals won "
                f"({self.rate}) in {where}")


def _first_entries(deal: Deal) -> dict[str, datetime]:
    """Each stage the deal stood in, with the instant it first entered it (in visiting order)."""
    first = deal.events[0]
    assert isinstance(first, DealCreated)
    out: dict[str, datetime] = {first.stage: first.at}
    cur = first.stage
    for e in deal.events[1:]:
        if isinstance(e, StageChanged) or (isinstance(e, ProcessMigrated) and e.to_stage != cur):
            cur = e.to_stage
            out.setdefault(cur, e.at)
    return out


def _first_entry(deal: Deal, stage: str) -> datetime:
    return _first_entries(deal).get(stage, deal.stage_entered_at)


class _Cif:
    """Competing-risks (Aalen–Johansen) estimate of the chance to end won, on the scale of days
    since the deal first entered the stage: won and lost are the competing events, deals still open
    are censored at their current time in the process."""

    __slots__ = ("cif_before", "cif_total", "s_before", "s_end", "t_obs", "times", "wins_after")

    def __init__(self, obs: Sequence[tuple[int, int]]) -> None:
        # obs: (days, outcome) with outcome 1 won, 0 lost, -1 still open (censored)
        self.t_obs = sorted(t for t, _ in obs)
        events: dict[int, list[int]] = {}
        for t, o in obs:
            if o >= 0:
                events.setdefault(t, [0, 0])[o] += 1
        self.times = sorted(events)
        s = 1.0
        cif = 0.0
        self.s_before: list[float] = []
        self.cif_before: list[float] = []
        won_after = [0] * (len(self.times) + 1)
        for t in self.times:
            at_risk = len(self.t_obs) - bisect.bisect_left(self.t_obs, t)
            lost, won = events[t]
            self.s_before.append(s)
            self.cif_before.append(cif)
            cif += s * won / at_risk
            s *= 1 - (won + lost) / at_risk
        for k in range(len(self.times) - 1, -1, -1):
            won_after[k] = won_after[k + 1] + events[self.times[k]][1]
        self.wins_after = won_after
        self.cif_total = cif
        self.s_end = s

    def at_risk(self, age: int) -> int:
        return len(self.t_obs) - bisect.bisect_left(self.t_obs, age)

    def rate(self, age: int) -> tuple[Decimal, int]:
        """P(won eventually | still in the process ``age`` days after entering the stage), and the
        wins observed from then on."""
        k = bisect.bisect_left(self.times, age)
        if k == len(self.times):
            return Decimal(0), 0
        sa = self.s_before[k]
        if sa <= 0:
            return Decimal(0), 0
        p = (self.cif_total - self.cif_before[k]) / sa
        return Decimal(repr(min(max(p, 0.0), 1.0))).quantize(Decimal(1).scaleb(-RATE_PLACES)), self.wins_after[k]


class WinRates:
    """Learnt stage win rates with the fallback chain; build with :func:`learn_win_rates`."""

    def __init__(
        self,
        *,
        segment: str | None,
        min_sample: int,
        process_counts: Mapping[tuple[str, str], tuple[int, int]],
        segment_counts: Mapping[tuple[str, str, str | None], tuple[int, int]],
        processes: Mapping[str, Process],
        view: View | None = None,
        survival: Mapping[tuple[str, str], Sequence[tuple[int, int]]] | None = None,
        tz: tzinfo = UTC,
        asof: datetime | None = None,
    ) -> None:
        self.segment = segment
        self.min_sample = min_sample
        self._proc = dict(process_counts)
        self._seg = dict(segment_counts)
        self._processes = dict(processes)
        self._view = view
        self._cif = {k: _Cif(v) for k, v in (survival or {}).items()}
        self.tz = tz
        self.asof = asof

    def counts(self, process: str, stage: str) -> tuple[int, int]:
        """(wins, closed) for a stage over the whole process."""
        return self._proc.get((process, stage), (0, 0))

    def stage_default(self, process: str, stage: str) -> Rate | None:
        p = self._processes.get(process)
        if p is None or not p.has_stage(stage):
            return None
        return p.stage(stage).probability

    def lookup(self, deal: Deal, view: View | None = None) -> WinRate:
        """The win rate for ``deal``'s current stage, walking segment → process → stage default."""
        stage, proc = deal.stage, deal.process
        if self.segment is not None:
            v = view or self._view
            if v is None:
                raise DomainError("a segmented WinRates lookup needs the view the deal belongs to")
            values = list(dimension_values(v, deal, self.segment))
            wins = closed = 0
            for val in dict.fromkeys(values):
                w, n = self._seg.get((proc, stage, val), (0, 0))
                wins += w
                closed += n
            if closed >= self.min_sample and closed > 0:
                seg = tuple("∅" if x is None else str(x) for x in dict.fromkeys(values))
                return WinRate(proc, stage, _q(wins, closed), Level.SEGMENT, wins, closed,
                               (f"{self.segment}={','.join(seg)}",))
        src = view or self._view
        asof = src.asof if src is not None and src.asof is not None else self.asof
        cif = self._cif.get((proc, stage))
        if cif is not None and asof is not None:
            first = _first_entry(deal, stage)
            age = max(0, (_local(asof, self.tz) - _local(first, self.tz)).days)
            n = cif.at_risk(age)
            if n < self.min_sample and len(cif.t_obs) >= self.min_sample:
                # older than all but a few: answer for the oldest age with enough deals at risk
                age = cif.t_obs[len(cif.t_obs) - self.min_sample]
                n = cif.at_risk(age)
            if n >= self.min_sample:
                rate, wins = cif.rate(age)
                return WinRate(proc, stage, Rate(rate), Level.PROCESS, wins, n, age_days=age)
        wins, closed = self._proc.get((proc, stage), (0, 0))
        if closed >= self.min_sample and closed > 0:
            return WinRate(proc, stage, _q(wins, closed), Level.PROCESS, wins, closed)
        default = self.stage_default(proc, stage)
        if default is None:
            default = deal.probability if deal.probability is not None else Rate(0)
        return WinRate(proc, stage, default, Level.STAGE_DEFAULT, wins, closed)

    def table(self) -> list[WinRate]:
        """Process-level rates of every open stage of the known processes (for reports)."""
        out = []
        for key, p in sorted(self._processes.items()):
            for s in p.stages:
                if s.kind is not StageKind.OPEN:
                    continue
                wins, closed = self._proc.get((key, s.key), (0, 0))
                if closed >= self.min_sample and closed > 0:
                    out.append(WinRate(key, s.key, _q(wins, closed), Level.PROCESS, wins, closed))
                else:
                    out.append(WinRate(key, s.key, s.probability, Level.STAGE_DEFAULT, wins, closed))
        return out


def learn_win_rates(
    view: View, *, segment: str | None = None, min_sample: int = 20, tz: tzinfo = UTC
) -> WinRates:
    """Stage win rates from the closed deals of ``view`` (see the module documentation)."""
    if segment is not None and not is_dimension(segment):
        raise DomainError(f"unknown segment dimension {segment!r}")
    if isinstance(min_sample, bool) or not isinstance(min_sample, int) or min_sample < 1:
        raise DomainError(f"min_sample must be a positive integer, got {min_sample!r}")
    proc: dict[tuple[str, str], list[int]] = {}
    seg: dict[tuple[str, str, str | None], list[int]] = {}
    surv: dict[tuple[str, str], list[tuple[int, int]]] = {}
    today = _local(view.asof, tz) if view.asof is not None else None
    for d in view.deals:
        p = view.processes.get(d.process)
        entries = _first_entries(d)
        if d.status is DealStatus.OPEN:
            end = today if today is not None else _local(d.updated_at, tz)
            for st, at in entries.items():
                if p is None or not p.has_stage(st) or p.stage(st).kind is StageKind.OPEN:
                    surv.setdefault((d.process, st), []).append((max(0, (end - _local(at, tz)).days), -1))
            continue
        won = 1 if d.status is DealStatus.WON else 0
        assert d.closed_at is not None
        closed_day = _local(d.closed_at, tz)
        values: Sequence[str | None] = ()
        if segment is not None:
            values = list(dict.fromkeys(dimension_values(view, d, segment)))
        for st, at in entries.items():
            if p is not None and p.has_stage(st) and p.stage(st).kind is not StageKind.OPEN:
                continue
            c = proc.setdefault((d.process, st), [0, 0])
            c[0] += won
            c[1] += 1
            surv.setdefault((d.process, st), []).append((max(0, (closed_day - _local(at, tz)).days), won))
            for v in values:
                c2 = seg.setdefault((d.process, st, v), [0, 0])
                c2[0] += won
                c2[1] += 1
    return WinRates(
        segment=segment,
        min_sample=min_sample,
        process_counts={k: (v[0], v[1]) for k, v in proc.items()},
        segment_counts={k: (v[0], v[1]) for k, v in seg.items()},
        processes=view.processes,
        view=view,
        survival=surv,
        tz=tz,
        asof=view.asof,
    )


# ------------------------------------------------------------------------------------------------
# Time to close
# ------------------------------------------------------------------------------------------------


class TimingBasis(enum.StrEnum):
    """How a deal's share in a period was found."""

    SLIP = "slip"
    """its close date shifted by the historical slip of deals in its stage"""
    REMAINING = "remaining"
    """the historical remaining days of won deals from its stage, given its age in the stage"""
    CLOSE_DATE = "close_date"
    """its close date as given (too little history)"""
    NO_TIMING = "no_timing"
    """no close date and too little history: nothing is counted"""


@attrs.frozen
class TimingShare:
    """The share of a deal expected to close inside a period, with the basis and sample size."""

    share: Rate
    basis: TimingBasis
    sample: int = 0


def push_count(deal: Deal, until: datetime | None = None) -> int:
    """How many times the deal's close date was moved later (or removed), up to ``until``."""
    n = 0
    for e in deal.events:
        if until is not None and e.at > until:
            break
        if isinstance(e, CloseDateChanged) and e.old is not None and (e.new is None or e.new > e.old):
            n += 1
    return n


def _local(at: datetime, tz: tzinfo) -> date:
    return at.astimezone(tz).date()


class _Sorted:
    __slots__ = ("v",)

    def __init__(self, values: Iterable[int]) -> None:
        self.v = sorted(values)

    def __len__(self) -> int:
        return len(self.v)

    def count(self, lo: int | None, hi: int | None) -> int:
        """Values with ``lo <= x < hi`` (``None``: unbounded)."""
        a = 0 if lo is None else bisect.bisect_left(self.v, lo)
        b = len(self.v) if hi is None else bisect.bisect_left(self.v, hi)
        return max(0, b - a)


class CloseTiming:
    """Learnt time-to-close distributions; build with :func:`learn_close_timing`."""

    def __init__(
        self,
        *,
        remaining: Mapping[tuple[str, str], Iterable[int]],
        slips: Mapping[tuple[str, str, int], Iterable[int]],
        min_sample: int,
        tz: tzinfo,
    ) -> None:
        self.min_sample = min_sample
        self.tz = tz
        self._rem = {k: _Sorted(v) for k, v in remaining.items()}
        self._slip = {k: _Sorted(v) for k, v in slips.items()}
        rem_all: dict[str, list[int]] = {}
        for (p, _s), v in self._rem.items():
            rem_all.setdefault(p, []).extend(v.v)
        self._rem_proc = {k: _Sorted(v) for k, v in rem_all.items()}
        slip_stage: dict[tuple[str, str], list[int]] = {}
        for (p, s, _k), v in self._slip.items():
            slip_stage.setdefault((p, s), []).extend(v.v)
        self._slip_stage = {k: _Sorted(v) for k, v in slip_stage.items()}

    def remaining_days(self, process: str, stage: str) -> list[int]:
        d = self._rem.get((process, stage))
        return list(d.v) if d else []

    def slip_days(self, process: str, stage: str) -> list[int]:
        d = self._slip_stage.get((process, stage))
        return list(d.v) if d else []

    def share_in(self, deal: Deal, period: Period, asof: datetime) -> TimingShare:
        """The share of ``deal`` (open at ``asof``) expected to close inside ``period``."""
        today = _local(asof, self.tz)
        start = max(period.start, today)
        end = period.end
        if end <= start:
            return TimingShare(Rate(0), TimingBasis.CLOSE_DATE if deal.close_date else TimingBasis.NO_TIMING)
        key = (deal.process, deal.stage)
        if deal.close_date is not None:
            pushes = min(push_count(deal, asof), 2)
            cd = deal.close_date
            m = (today - cd).days  # a slip must land on or after today
            for dist in (self._slip.get((*key, pushes)), self._slip_stage.get(key)):
                if dist is None:
                    continue
                den = dist.count(m, None)
                if den >= self.min_sample:
                    num = dist.count((start - cd).days, (end - cd).days)
                    return TimingShare(_q(num, den), TimingBasis.SLIP, den)
        age = (today - _local(deal.stage_entered_at, self.tz)).days
        dist = self._rem.get(key)
        if dist is not None:
            den = dist.count(age, None)
            if den >= self.min_sample:
                lo = age + (start - today).days
                hi = age + (end - today).days
                return TimingShare(_q(dist.count(lo, hi), den), TimingBasis.REMAINING, den)
        if deal.close_date is not None:
            # an overdue close date is taken as "today"
            expected = max(deal.close_date, today)
            inside = period.start <= expected < period.end
            return TimingShare(Rate(1) if inside else Rate(0), TimingBasis.CLOSE_DATE)
        return TimingShare(Rate(0), TimingBasis.NO_TIMING)


def learn_close_timing(view: View, *, min_sample: int = 20, tz: tzinfo = UTC) -> CloseTiming:
    """Time-to-close distributions from the won deals of ``view`` (see the module docs)."""
    if isinstance(min_sample, bool) or not isinstance(min_sample, int) or min_sample < 1:
        raise DomainError(f"min_sample must be a positive integer, got {min_sample!r}")
    remaining: dict[tuple[str, str], list[int]] = {}
    slips: dict[tuple[str, str, int], list[int]] = {}
    for d in view.deals:
        if d.status is not DealStatus.WON or d.closed_at is None:
            continue
        closed = _local(d.closed_at, tz)
        s: dict[str, Any] = {}
        pushes = 0
        first = True
        for e in d.events:
            if isinstance(e, CloseDateChanged) and e.old is not None and (e.new is None or e.new > e.old):
                pushes += 1
            prev_stage = s.get("stage")
            e.apply(s)
            entered = first or (isinstance(e, StageChanged) and s["stage"] != prev_stage) or (
                getattr(e, "kind", "") == "process_migrated" and s["stage"] != prev_stage
            )
            first = False
            if not entered or s["status"] is not DealStatus.OPEN:
                continue
            key = (d.process, s["stage"])
            remaining.setdefault(key, []).append((closed - _local(e.at, tz)).days)
            cd = s.get("close_date")
            if cd is not None:
                slips.setdefault((*key, min(pushes, 2)), []).append((closed - cd).days)
    return CloseTiming(remaining=remaining, slips=slips, min_sample=min_sample, tz=tz)
