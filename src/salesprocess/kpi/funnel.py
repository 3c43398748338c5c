"""The stage funnel of a process.

The **cohort** is the deals created in the window (all deals without a window) as known at
``asof``, optionally filtered and grouped like any KPI. The funnel's steps are the process's open
stages in order followed by the won step (all won stages together); lost stages are not steps.

For each step ``s`` (rank ``r``):

- ``entered`` — cohort deals that were ever in ``s``.
- ``reached`` — cohort deals whose *furthest* step is ``s`` or a later one ("reached this stage or
  any later one"; skipped stages count as passed).
- ``advanced`` — deals whose furthest step is later than ``s``; ``conversion = advanced / reached``.
- ``adjacent`` — deals that moved directly from ``s`` to the next step (for the last open stage:
  to any won stage); ``adjacent_conversion = adjacent / entered``.
- ``lost`` — lost deals whose furthest step is ``s``; ``drop_off = lost / reached``.
- ``open`` — deals still open whose furthest step is ``s``.
- ``median_days``, ``p75_days``, ``p90_days`` — time in ``s`` over the cohort's completed stays
  (entered → left; a deal still in ``s`` is not counted), percentiles by linear interpolation;
  none for the won step.

The **bottleneck** is the open stage whose drop-off exceeds the scope's own history the most: the
history is the same funnel over the scope's deals created before the window (as known at
``asof``). With no window or no history, it is the stage with the largest drop-off. Ties go to the
earlier stage; a funnel with no drop-off has no bottleneck.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

import attrs

from salesprocess.errors import KpiError, Problem
from salesprocess.model import Deal, DealStatus, StageChanged
from salesprocess.periods import CALENDAR_YEAR, FiscalCalendar, Period, require_aware
from salesprocess.process import Process, StageKind

from . import stats
from .facts import Dataset, View

__all__ = ["WON_STEP", "Funnel", "FunnelStage", "funnel", "stage_ranks"]

WON_STEP = "won"
"""The key of the funnel's final step when a process has several won stages."""


def stage_ranks(process: Process) -> dict[str, int]:
    """Funnel rank of each open stage (process order) and of each won stage (after all open ones)."""
    ranks: dict[str, int] = {}
    i = 0
    for s in process.stages:
        if s.kind is StageKind.OPEN:
            ranks[s.key] = i
            i += 1
    for s in process.stages:
        if s.kind is StageKind.WON:
            ranks[s.key] = i
    return ranks


def steps_of(process: Process) -> list[tuple[str, str]]:
    """(key, name) of each funnel step."""
    out = [(s.key, s.name) for s in process.stages if s.kind is StageKind.OPEN]
    won = [s for s in process.stages if s.kind is StageKind.WON]
    if len(won) == 1:
        out.append((won[0].key, won[0].name))
    elif won:
        out.append((WON_STEP, "Won"))
    return out


@attrs.frozen
class FunnelStage:
    stage: str
    name: str
    entered: int
    reached: int
    advanced: int
    conversion: Decimal | None
    adjacent: int
    adjacent_conversion: Decimal | None
    lost: int
    drop_off: Decimal | None
    open: int
    median_days: Decimal | None
    p75_days: Decimal | None
    p90_days: Decimal | None
    baseline_drop_off: Decimal | None = None

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Funnel:
    process: str
    key: dict[str, str | None]
    window: Period | None
    stages: tuple[FunnelStage, ...]
    cohort: int
    won: int
    overall_conversion: Decimal | None
    bottleneck: str | None
    bottleneck_excess: Decimal | None
    """How far the bottleneck's drop-off exceeds its history (its drop-off without history)."""

    def stage(self, key: str) -> FunnelStage:
        for s in self.stages:
            if s.stage == key:
                return s
        raise KeyError(key)

    def rows(self) -> list[dict[str, Any]]:
        return [
            {**self.key, **s.as_dict(), "bottleneck": s.stage == self.bottleneck}
            for s in self.stages
        ]


@attrs.frozen
class DealPath:
    """What the funnel needs of one deal (the SQL path builds these from rows too)."""

    furthest: int
    status: DealStatus
    entered: frozenset[int]
    adjacent: frozenset[int]
    stays: tuple[tuple[int, int], ...]
    """(rank, microseconds) of each completed stay in a ranked stage."""


def deal_path(view: View, d: Deal, ranks: Mapping[str, int], last_open: int) -> DealPath:
    stays = view.stays(d)
    entered = set()
    done = []
    furthest = -1
    for st in stays:
        r = ranks.get(st.stage)
        if r is None:
            continue
        entered.add(r)
        furthest = max(furthest, r)
        if st.left is not None:
            done.append((r, stats.micros_between(st.entered, st.left)))
    adjacent = set()
    for e in d.events:
        if isinstance(e, StageChanged):
            a, b = ranks.get(e.from_stage), ranks.get(e.to_stage)
            if a is not None and b is not None and b == a + 1 and a <= last_open:
                adjacent.add(a)
    return DealPath(furthest, d.status, frozenset(entered), frozenset(adjacent), tuple(done))


PERCENTILES: tuple[Decimal, ...] = (Decimal("0.5"), Decimal("0.75"), Decimal("0.9"))
"""The time-in-stage percentiles of a funnel step (median, p75, p90)."""


@attrs.frozen
class FunnelCounts:
    """What a funnel is computed from (the SQL pushdown fills it from the database).

    ``furthest`` counts deals by (furthest step, status); ``entered`` and ``adjacent`` count deals
    per step; ``durations`` holds, per step, the time-in-stage percentiles of :data:`PERCENTILES`
    in microseconds (``None`` without completed stays).
    """

    furthest: dict[tuple[int, DealStatus], int]
    entered: list[int]
    adjacent: list[int]
    durations: list[tuple[Decimal | None, ...]]


def count_paths(paths: Sequence[DealPath], n: int) -> FunnelCounts:
    furthest: dict[tuple[int, DealStatus], int] = {}
    entered = [0] * n
    adjacent = [0] * n
    durations: list[list[int]] = [[] for _ in range(n)]
    for p in paths:
        if p.furthest >= 0:
            k = (p.furthest, p.status)
            furthest[k] = furthest.get(k, 0) + 1
        for r in p.entered:
            entered[r] += 1
        for r in p.adjacent:
            adjacent[r] += 1
        for r, us in p.stays:
            if r < n - 1:  # the won step is not a stage deals spend time in
                durations[r].append(us)
    pct = []
    for ds in durations:
        ds.sort()
        pct.append(tuple(stats.percentile(ds, q) for q in PERCENTILES))
    return FunnelCounts(furthest, entered, adjacent, pct)


def _reached_lost(furthest: Mapping[tuple[int, DealStatus], int], n: int) -> tuple[list[int], list[int], list[int]]:
    reached = [0] * n
    lost = [0] * n
    opened = [0] * n
    for (f, st), cnt in furthest.items():
        for r in range(f + 1):
            reached[r] += cnt
        if st is DealStatus.LOST:
            lost[f] += cnt
        elif st is DealStatus.OPEN:
            opened[f] += cnt
    return reached, lost, opened


def _days(us: Decimal | None) -> Decimal | None:
    return None if us is None else stats.days(us)


def build_funnel(
    process: Process,
    key: dict[str, str | None],
    window: Period | None,
    counts: FunnelCounts,
    history: Mapping[tuple[int, DealStatus], int] | None,
) -> Funnel:
    """The funnel of ``process`` from its counts (``history``: furthest-step counts of the scope's
    deals created before the window, or ``None``)."""
    steps = steps_of(process)
    n = len(steps)
    reached, lost, opened = _reached_lost(counts.furthest, n)
    base: list[Decimal | None] = [None] * n
    if history is not None:
        hr, hl, _ = _reached_lost(history, n)
        base = [stats.div(hl[i], hr[i]) for i in range(n)]
    out = []
    for i, (k, name) in enumerate(steps):
        adv = reached[i + 1] if i + 1 < n else 0
        med, p75, p90 = counts.durations[i]
        out.append(
            FunnelStage(
                k, name, counts.entered[i], reached[i], adv,
                stats.div(adv, reached[i]) if i + 1 < n else None,
                counts.adjacent[i],
                stats.div(counts.adjacent[i], counts.entered[i]) if i + 1 < n else None,
                lost[i], stats.div(lost[i], reached[i]), opened[i],
                _days(med), _days(p75), _days(p90), base[i],
            )
        )
    best: str | None = None
    best_x: Decimal | None = None
    for fs in out[:-1]:
        if fs.drop_off is None or fs.lost == 0:
            continue
        x = fs.drop_off - fs.baseline_drop_off if fs.baseline_drop_off is not None else fs.drop_off
        if best_x is None or x > best_x:
            best, best_x = fs.stage, x
    won = reached[-1] if n else 0
    return Funnel(
        process.key, key, window, tuple(out), reached[0] if n else 0, won,
        stats.div(won, reached[0]) if n else None, best,
        None if best_x is None else stats.tidy(best_x),
    )  # fmt: skip


def _pick_process(view: View, deals: Sequence[Deal], process: str | Process | None) -> Process:
    if isinstance(process, Process):
        return process
    if process is None:
        keys = sorted({d.process for d in deals})
        if len(keys) > 1:
            raise KpiError(
                [
                    Problem(
                        "process",
                        "ambiguous",
                        f"the deals follow several processes ({', '.join(keys)}); name one",
                    )
                ]
            )
        if not keys:
            keys = sorted(view.processes)[:1]
        if not keys:
            raise KpiError(
                [Problem("process", "missing", "no deals and no process to build a funnel")]
            )
        process = keys[0]
    p = view.processes.get(process)
    if p is None:
        raise KpiError(
            [Problem("process", "unknown_process", f"the data holds no process {process!r}")]
        )
    return p


def funnel(
    data: Dataset | Any,
    *,
    process: str | Process | None = None,
    window: Period | str | None = None,
    asof: datetime | None = None,
    by: Sequence[str] = (),
    where: Mapping[str, Any] | None = None,
    tz: tzinfo = UTC,
    fiscal: FiscalCalendar = CALENDAR_YEAR,
    engine: str = "auto",
) -> list[Funnel]:
    """The funnel of ``process`` for each group of the cohort (see the module documentation)."""
    from .engine import _resolve, _Run, _where, default_registry

    if asof is not None:
        require_aware(asof, "asof")
    if isinstance(window, str):
        window = Period.parse(window, fiscal)
    w = _where(where)
    if not isinstance(data, Dataset):
        if engine in ("auto", "sql"):
            from .pushdown import try_funnel_pushdown

            res: list[Funnel] | None = try_funnel_pushdown(
                data,
                process=process,
                window=window,
                asof=asof,
                by=by,
                where=w,
                tz=tz,
                fiscal=fiscal,
                required=engine == "sql",
            )
            if res is not None:
                return res
        data = Dataset.from_store(data)
    view = data.view(asof)
    _resolve(default_registry(), ["deals_won"], by, w, None, view.inputs)
    run = _Run(view, [], by, None, window, tz, w, None, fiscal)
    groups = run.groups()
    cohort_all = [d for g in groups for d in run.bucket(g, "created", 0)]
    proc = _pick_process(view, list(cohort_all), process)
    ranks = stage_ranks(proc)
    last_open = len(steps_of(proc)) - 2
    out = []
    for g in groups:
        deals = [d for d in run.bucket(g, "created", 0) if d.process == proc.key]
        n = len(steps_of(proc))
        counts = count_paths([deal_path(view, d, ranks, last_open) for d in deals], n)
        history = None
        if window is not None:
            start = window.start_instant(tz)
            hist = [d for d in g.records["deals"] if d.process == proc.key and d.created_at < start]
            if hist:
                history = count_paths([deal_path(view, d, ranks, last_open) for d in hist],
                                      n).furthest
        out.append(build_funnel(proc, run.row_key(g.key, 0), window, counts, history))
    return out
