"""KPI scorecards: weighted KPIs per role, each normalised against its goal, into a score,
a rating band and a rank."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs

from ..errors import KpiError, Problem
from ..money import _CTX, Money
from ..periods import CALENDAR_YEAR, FiscalCalendar, Period
from ._common import (
    DEFAULT_BANDS,
    HUNDRED,
    EvaluationError,
    RatingBand,
    _dec,
    _tup,
    band_for,
    competition_ranks,
    number,
    q2,
)
from ._training import TrainingCatalog, TrainingRecord

__all__ = ["TRAINING_METRICS", "ItemScore", "ScoreItem", "Scorecard", "ScorecardResult", "score_reps"]

_RATIO = Decimal("0.0001")
TRAINING_METRICS = ("training_hours", "training_modules")
"""Scorecard metrics computed from training records (hours and modules completed in the period)."""


def _opt_dec(v: Any) -> Decimal | None:
    return None if v is None else _dec(v)


def _target(v: Any) -> Money | Decimal | None:
    if v is None or isinstance(v, Money):
        return v
    return _dec(v)


@attrs.frozen
class ScoreItem:
    """One KPI of a scorecard.

    ``weight`` is relative (weights are normalised). ``target`` is the default target for the
    role; a rep's own goal or an explicit target wins. ``direction`` overrides the KPI's
    (``higher`` or ``lower`` is better). The item's score is ``actual / target`` (or
    ``target / actual`` when lower is better), limited to ``cap``; below ``floor`` it counts 0.
    """

    metric: str
    weight: Decimal = attrs.field(converter=_dec)
    target: Money | Decimal | None = attrs.field(default=None, converter=_target)
    direction: str | None = None
    cap: Decimal = attrs.field(default=Decimal("1.5"), converter=_dec)
    floor: Decimal = attrs.field(default=Decimal(0), converter=_dec)
    name: str = ""


@attrs.frozen
class Scorecard:
    """The scorecard of a role: its items and rating bands."""

    role: str
    items: tuple[ScoreItem, ...] = attrs.field(converter=_tup)
    bands: tuple[RatingBand, ...] = attrs.field(default=DEFAULT_BANDS, converter=_tup)
    name: str = ""

    def __attrs_post_init__(self) -> None:
        probs = []
        if not self.items:
            probs.append(Problem(f"scorecards[{self.role}].items", "missing", "a scorecard needs items"))
        seen: set[str] = set()
        for i, it in enumerate(self.items):
            p = f"scorecards[{self.role}].items[{i}]"
            if it.weight <= 0:
                probs.append(Problem(f"{p}.weight", "range", "weights must be positive"))
            if it.cap <= 0:
                probs.append(Problem(f"{p}.cap", "range", "the cap must be positive"))
            if it.floor < 0 or it.floor > it.cap:
                probs.append(Problem(f"{p}.floor", "range", "the floor lies between 0 and the cap"))
            if it.direction not in (None, "higher", "lower"):
                probs.append(Problem(f"{p}.direction", "choice", "direction is higher or lower"))
            if it.metric in seen:
                probs.append(Problem(f"{p}.metric", "duplicate", f"{it.metric} listed twice"))
            seen.add(it.metric)
        if probs:
            raise EvaluationError(probs)

    @property
    def total_weight(self) -> Decimal:
        return sum((i.weight for i in self.items), Decimal(0))


@attrs.frozen
class ItemScore:
    """How one KPI scored: the actual value, the target used (and where it came from), the
    normalised ratio (after cap and floor), the points it adds to the score (out of
    ``weight × 100``), and a note when something was missing."""

    metric: str
    name: str
    weight: Decimal
    actual: Any
    target: Any
    target_source: str
    direction: str
    ratio: Decimal | None
    points: Decimal
    note: str = ""


@attrs.frozen
class ScorecardResult:
    """A rep's scorecard for a period: ``score`` (100 = every target met exactly; up to the
    items' caps × 100), ``band`` and ``rank`` among the reps scored (ties share a rank)."""

    rep_id: str
    name: str | None
    role: str
    period: Period
    items: tuple[ItemScore, ...]
    score: Decimal
    band: str | None
    rank: int | None = None
    of: int = 0
    exact: Decimal | None = attrs.field(default=None, repr=False)
    """The score before rounding (what ranks and combined evaluations use)."""

    def item(self, metric: str) -> ItemScore:
        for it in self.items:
            if it.metric == metric:
                return it
        raise KeyError(metric)


def _ratio(actual: Decimal | None, target: Decimal, higher: bool) -> Decimal | None:
    if actual is None:
        return None
    if target == 0:
        return Decimal(1) if (actual >= 0 if higher else actual <= 0) else Decimal(0)
    if higher:
        return _CTX.divide(actual, target)
    if actual <= 0:
        return None  # nothing to divide: the caller applies the cap
    return _CTX.divide(target, actual)


def score_reps(
    scorecard: Scorecard,
    data: Any,
    period: Period | str,
    *,
    reps: Iterable[Any] | None = None,
    goals: Iterable[Any] = (),
    targets: Mapping[tuple[str, str], Money | Decimal] | None = None,
    training: Iterable[TrainingRecord] = (),
    catalog: TrainingCatalog | None = None,
    asof: datetime | None = None,
    tz: tzinfo = UTC,
    inputs: Any = None,
    registry: Any = None,
    fiscal: FiscalCalendar = CALENDAR_YEAR,
    strict: bool = True,
) -> list[ScorecardResult]:
    """Score every rep of the scorecard's role for ``period``, best first.

    KPI values come from :func:`salesprocess.kpi.compute` grouped by owner (``data`` is a store
    or a :class:`~salesprocess.kpi.Dataset`); ``training_hours`` and ``training_modules`` come
    from ``training`` records (hours from the ``catalog``). The target of an item is, in order:
    ``targets[(rep_id, metric)]``, a goal (:class:`salesprocess.goals.Goal`) for the rep, the
    metric and exactly this period, or the item's default target. A missing target is a
    problem (raised with ``strict``; otherwise the item is left out of that rep's score and its
    weight shared by the others). A missing actual value scores 0.
    """
    from ..kpi import compute, default_registry
    from ..model import Rep

    p = period if isinstance(period, Period) else Period.parse(period, fiscal)
    reg = registry or default_registry()
    problems: list[Problem] = []
    kpi_metrics = [i.metric for i in scorecard.items if i.metric not in TRAINING_METRICS]
    higher: dict[str, bool] = {}
    for n, it in enumerate(scorecard.items):
        if it.metric in TRAINING_METRICS:
            higher[it.metric] = it.direction != "lower"
            continue
        try:
            kpi, _ = reg.resolve(it.metric, f"scorecards[{scorecard.role}].items[{n}].metric")
        except KpiError as e:
            problems.extend(e.problems)
            continue
        higher[it.metric] = (it.direction or kpi.direction.value) == "higher"
    if problems:
        raise EvaluationError(problems)
    if reps is None:
        if callable(getattr(data, "all", None)):
            reps = [r for r in data.all(Rep) if r.role == scorecard.role]
        else:
            reps = []
    people = [r for r in reps if isinstance(r, str) or getattr(r, "role", scorecard.role) == scorecard.role]
    ids = [r if isinstance(r, str) else r.id for r in people]
    names = {(r if isinstance(r, str) else r.id): (None if isinstance(r, str) else r.name) for r in people}
    values: dict[str, dict[str, Any]] = {}
    if kpi_metrics and ids:
        table = compute(data, kpi_metrics, by=("owner",), window=p, asof=asof, tz=tz, inputs=inputs,
                        registry=reg, fiscal=fiscal, where={"owner": ids})
        for row in table.rows:
            o = row.key.get("owner")
            if o is not None:
                values[o] = dict(row.values)
    hours = {m.id: m.hours for m in (catalog.modules if catalog is not None else ())}
    for r in training:
        if r.rep_id in names and p.start <= r.completed_on < p.end:
            v = values.setdefault(r.rep_id, {})
            v["training_modules"] = v.get("training_modules", 0) + 1
            v["training_hours"] = v.get("training_hours", Decimal(0)) + hours.get(r.module_id, Decimal(0))
    goal_targets: dict[tuple[str, str], Any] = {}
    for g in goals:
        scope = g.scope
        if getattr(scope, "kind", None) is not None and scope.kind.value == "rep" and (
                g.period.start, g.period.end) == (p.start, p.end):
            goal_targets[(scope.id, g.metric)] = g.target
    results: list[tuple[Decimal, ScorecardResult]] = []
    for rid in ids:
        vals = values.get(rid, {})
        items: list[ItemScore] = []
        wsum = Decimal(0)
        psum = Decimal(0)
        for it in scorecard.items:
            src = "default"
            tgt: Any = None
            if targets is not None and (rid, it.metric) in targets:
                tgt, src = targets[(rid, it.metric)], "explicit"
            elif (rid, it.metric) in goal_targets:
                tgt, src = goal_targets[(rid, it.metric)], "goal"
            else:
                tgt = it.target
            actual = vals.get(it.metric)
            direction = "higher" if higher[it.metric] else "lower"
            name = it.name or it.metric
            if tgt is None:
                problems.append(Problem(f"targets[{rid}][{it.metric}]", "missing_target",
                                        f"no target of {it.metric} for {rid} in {p.label}"))
                items.append(ItemScore(it.metric, name, it.weight, actual, None, "none", direction, None,
                                       Decimal(0), "no target: left out"))
                continue
            if isinstance(tgt, Money) and isinstance(actual, Money) and tgt.currency != actual.currency:
                problems.append(Problem(f"targets[{rid}][{it.metric}]", "currency",
                                        f"target of {it.metric} for {rid} is in {tgt.currency}, "
                                        f"the actual in {actual.currency}"))
                continue
            a = number(actual)
            t = number(tgt)
            assert t is not None
            ratio = _ratio(a, t, higher[it.metric])
            note = ""
            if a is None:
                ratio = Decimal(0)
                note = "no data: counts 0"
            elif ratio is None:  # lower is better and the actual is 0
                ratio = it.cap
            ratio = min(max(ratio, Decimal(0)), it.cap)
            if ratio < it.floor:
                note = note or f"below the floor {it.floor}: counts 0"
                ratio = Decimal(0)
            pts = _CTX.multiply(_CTX.multiply(ratio, it.weight), HUNDRED)
            wsum += it.weight
            psum += pts
            shown = ratio.quantize(_RATIO, rounding=ROUND_HALF_EVEN).normalize()
            if shown == shown.to_integral_value():
                shown = shown.quantize(Decimal(1))
            items.append(ItemScore(it.metric, name, it.weight, actual, tgt, src, direction, shown, pts, note))
        exact = _CTX.divide(psum, wsum) if wsum else Decimal(0)
        # points as shares of the whole (weights normalised over the items scored)
        norm = tuple(attrs.evolve(i, points=q2(_CTX.divide(i.points, wsum)) if wsum else Decimal(0))
                     for i in items)
        score = q2(exact)
        results.append((exact, ScorecardResult(rid, names.get(rid), scorecard.role, p, norm, score,
                                               band_for(score, scorecard.bands), exact=exact)))
    if problems and strict:
        raise EvaluationError(problems)
    results.sort(key=lambda x: (-x[0], x[1].rep_id))
    ranks = competition_ranks([x[0] for x in results])
    return [attrs.evolve(r, rank=k, of=len(results)) for (_e, r), k in zip(results, ranks, strict=True)]


def period_of(d: date, kind: str, fiscal: FiscalCalendar = CALENDAR_YEAR) -> Period:
    return Period.containing(d, kind, fiscal)
