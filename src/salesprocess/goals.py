"""SMART goals: targets on any KPI for a scope and a period, their checks, exact decomposition,
re-cutting, consistency and progress.

A :class:`Goal` names a metric (any registered KPI), a :class:`GoalScope` (a rep, a team, a region,
a product or the whole company), a target (``Money`` for money KPIs, else a ``Decimal``), the
direction that counts as success and a :class:`~salesprocess.periods.Period`. Goals persist as store
documents of kind ``"goal"`` (:func:`save_goal`, :func:`load_goals`).

Everything here is pure: progress is computed, never announced. The shell
(:meth:`salesprocess.SalesProcess.goal_progress`) fires the ``salesprocess_goal_milestone`` hook.

**Exact splits.** Children of a goal on an *additive* KPI (sums and counts, see
:attr:`~salesprocess.kpi.Kpi.additive`) always add up exactly to the parent: money is split in
integer minor units with :func:`~salesprocess.money.allocate`, counts with
:func:`~salesprocess.money.allocate_int` (largest remainder, ties to the earlier part). Children of
a goal on a rate, average or duration carry the parent's target unchanged.

**Status thresholds** (:class:`StatusThresholds`) compare the projected attainment with 1: at least
``ahead`` (1.10) is *ahead*, at least ``on_track`` (0.95) *on track*, at least ``at_risk`` (0.80)
*at risk*, below that *behind*; before the period starts the status is *not started*.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs
from dateutil.relativedelta import relativedelta

from salesprocess.errors import GoalError, KpiError, Problem
from salesprocess.kpi import stats
from salesprocess.kpi.engine import compute, default_registry
from salesprocess.kpi.facts import Dataset
from salesprocess.kpi.registry import Direction, Kpi, KpiRegistry, Unit, Value
from salesprocess.model import Rep
from salesprocess.money import Money, allocate, allocate_int, minor_units, to_decimal
from salesprocess.periods import (
    CALENDAR_YEAR,
    BusinessCalendar,
    FiscalCalendar,
    Period,
    PeriodKind,
    require_aware,
)

__all__ = [
    "DOCUMENT_KIND",
    "MILESTONES",
    "Finding",
    "Goal",
    "GoalScope",
    "Method",
    "Progress",
    "RampUp",
    "Recut",
    "ScopeKind",
    "SmartReport",
    "Status",
    "StatusThresholds",
    "actual",
    "check_consistency",
    "delete_goal",
    "elapsed",
    "load_goal",
    "load_goals",
    "progress",
    "recut",
    "save_goal",
    "split_members",
    "split_scopes",
    "split_time",
    "validate",
]

DOCUMENT_KIND = "goal"
"""The store document kind goals are saved under (key: the goal id)."""

MILESTONES: tuple[Decimal, ...] = (Decimal("0.5"), Decimal("0.9"), Decimal("1"))
"""Attainment milestones reported by :func:`progress` (50 %, 90 %, 100 %)."""


# ----------------------------------------------------------------------------------------------
# Scope and goal
# ----------------------------------------------------------------------------------------------


class ScopeKind(enum.StrEnum):
    REP = "rep"
    TEAM = "team"
    REGION = "region"
    PRODUCT = "product"
    COMPANY = "company"


_SCOPE_DIMENSION = {
    ScopeKind.REP: "owner",
    ScopeKind.TEAM: "team",
    ScopeKind.REGION: "region",
    ScopeKind.PRODUCT: "product",
}


@attrs.frozen
class GoalScope:
    """Who a goal is for: ``GoalScope("rep", "r1")``, ``GoalScope("company")``.

    Parse the short form with :meth:`parse`: ``rep:r1``, ``team:t1``, ``region:east``,
    ``product:p1``, ``company``.
    """

    kind: ScopeKind = attrs.field(converter=ScopeKind)
    id: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.kind is ScopeKind.COMPANY and self.id is not None:
            raise GoalError([Problem("scope", "scope", "the company scope takes no id")])
        if self.kind is not ScopeKind.COMPANY and not self.id:
            raise GoalError([Problem("scope", "scope", f"a {self.kind.value} scope needs an id")])

    @classmethod
    def parse(cls, s: str) -> GoalScope:
        kind, _, ident = s.partition(":")
        try:
            return cls(kind.strip().lower(), ident.strip() or None)
        except ValueError:
            raise GoalError([Problem("scope", "scope", f"bad scope {s!r}: expected rep:ID, "
                                     "team:ID, region:NAME, product:ID or company")]) from None

    def dimensions(self) -> dict[str, str | None]:
        """The KPI ``where``/``by`` dimensions this scope stands for (``{}`` for the company)."""
        d = _SCOPE_DIMENSION.get(self.kind)
        return {} if d is None else {d: self.id}

    def __str__(self) -> str:
        return self.kind.value if self.id is None else f"{self.kind.value}:{self.id}"


def _target(v: object) -> Money | Decimal:
    if isinstance(v, Money):
        return v
    return to_decimal(v, field="target")


def _direction(v: str | Direction | None) -> Direction | None:
    return None if v is None else Direction(v)


@attrs.frozen
class Goal:
    """A SMART goal. ``direction`` defaults to the KPI's (``higher`` means "reach at least the
    target", ``lower`` "stay at or below it"). ``parent_id`` links a child to the goal it was
    split from; ``objective`` names a declared company objective the goal serves."""

    id: str
    metric: str
    scope: GoalScope
    target: Money | Decimal = attrs.field(converter=_target)
    period: Period
    direction: Direction | None = attrs.field(default=None, converter=_direction)
    parent_id: str | None = None
    objective: str | None = None
    name: str = ""

    def direction_for(self, kpi: Kpi) -> Direction:
        return self.direction or kpi.direction

    # --- documents --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "id": self.id,
            "metric": self.metric,
            "scope": str(self.scope),
            "target": {"amount": str(t.amount), "currency": t.currency}
            if isinstance(t, Money)
            else {"value": str(t)},
            "period": {
                "start": self.period.start.isoformat(),
                "end": self.period.end.isoformat(),
                "kind": self.period.kind.value,
                "label": self.period.label,
            },
            "direction": None if self.direction is None else self.direction.value,
            "parent_id": self.parent_id,
            "objective": self.objective,
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "goal") -> Goal:
        """Rebuild a goal from :meth:`to_dict` output; every bad field is reported at once."""
        problems: list[Problem] = []

        def get(key: str, typ: type) -> Any:
            v = d.get(key)
            if v is None:
                problems.append(Problem(f"{source}.{key}", "missing", f"{key} is required"))
                return None
            if not isinstance(v, typ):
                problems.append(
                    Problem(f"{source}.{key}", "type", f"{key} must be a {typ.__name__}")
                )
                return None
            return v

        gid = get("id", str)
        metric = get("metric", str)
        scope: GoalScope | None = None
        period: Period | None = None
        target: Money | Decimal | None = None
        s = get("scope", str)
        if s is not None:
            try:
                scope = GoalScope.parse(s)
            except GoalError as e:
                problems.extend(Problem(f"{source}.scope", p.code, p.message) for p in e.problems)
        t = get("target", dict)
        if t is not None:
            try:
                target = (
                    Money(t["amount"], t["currency"]) if "amount" in t else to_decimal(t["value"])
                )
            except (KeyError, ValueError, TypeError) as e:
                problems.append(Problem(f"{source}.target", "target", f"bad target: {e}"))
        p = get("period", dict)
        if p is not None:
            try:
                period = Period(
                    date.fromisoformat(p["start"]),
                    date.fromisoformat(p["end"]),
                    p.get("kind", "custom"),
                    p.get("label", ""),
                )
            except (KeyError, ValueError, TypeError) as e:
                problems.append(Problem(f"{source}.period", "period", f"bad period: {e}"))
        direction = d.get("direction")
        if direction is not None and direction not in ("higher", "lower"):
            problems.append(
                Problem(f"{source}.direction", "direction", "direction must be higher or lower")
            )
        if problems:
            gid_ = d.get("id")
            raise GoalError(problems, goal_id=gid_ if isinstance(gid_, str) else None)
        if gid is None or metric is None or scope is None or target is None or period is None:
            raise AssertionError("unreachable: problems were raised above")
        return cls(
            gid, metric, scope, target, period, direction, d.get("parent_id"),
            d.get("objective"), d.get("name") or "",
        )  # fmt: skip


def save_goal(store: Any, *goals: Goal) -> None:
    """Save goals as store documents of kind ``"goal"`` (in one transaction)."""
    with store.transaction():
        for g in goals:
            store.put_document(DOCUMENT_KIND, g.id, g.to_dict())


def load_goal(store: Any, goal_id: str) -> Goal:
    d = store.get_document(DOCUMENT_KIND, goal_id)
    if d is None:
        raise GoalError(
            [Problem("goal", "not_found", f"no goal {goal_id!r} in the store")], goal_id=goal_id
        )
    return Goal.from_dict(d, source=f"goal {goal_id}")


def load_goals(store: Any) -> list[Goal]:
    """Every goal in the store, ordered by id (all bad documents are reported together)."""
    out: list[Goal] = []
    problems: list[Problem] = []
    for key, d in store.documents(DOCUMENT_KIND):
        try:
            out.append(Goal.from_dict(d, source=f"goal {key}"))
        except GoalError as e:
            problems.extend(e.problems)
    if problems:
        raise GoalError(problems)
    return out


def delete_goal(store: Any, goal_id: str) -> None:
    store.delete_document(DOCUMENT_KIND, goal_id)


# ----------------------------------------------------------------------------------------------
# Evaluating a goal's metric
# ----------------------------------------------------------------------------------------------


def _kpi(goal: Goal, registry: KpiRegistry | None) -> Kpi:
    return (registry or default_registry()).resolve(goal.metric, "metric")[0]


def actual(
    goal: Goal,
    data: Dataset | Any,
    *,
    window: Period | None = None,
    asof: datetime | None = None,
    tz: tzinfo = UTC,
    registry: KpiRegistry | None = None,
    fiscal: FiscalCalendar = CALENDAR_YEAR,
) -> Value:
    """The goal's metric for its scope over ``window`` (default: the goal's period) as of
    ``asof``."""
    t = compute(
        data,
        [goal.metric],
        window=window or goal.period,
        asof=asof,
        tz=tz,
        where=goal.scope.dimensions(),
        registry=registry,
        fiscal=fiscal,
        currency=goal.target.currency if isinstance(goal.target, Money) else None,
    )
    return t.rows[0].values[goal.metric] if t.rows else None


def _number(v: Value) -> Decimal | None:
    if v is None:
        return None
    if isinstance(v, Money):
        return v.amount
    return Decimal(v)


# ----------------------------------------------------------------------------------------------
# SMART validation
# ----------------------------------------------------------------------------------------------


@attrs.frozen
class Finding:
    """One SMART check: ``letter`` (S, M, A, R or T), ``level`` (``ok``, ``warning``, ``error``),
    a ``code``, a sentence, and the numbers behind it."""

    letter: str
    level: str
    code: str
    message: str
    numbers: dict[str, Any] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        return self.level == "ok"


@attrs.frozen
class SmartReport:
    goal_id: str
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return all(f.level != "error" for f in self.findings)

    def letter(self, letter: str) -> list[Finding]:
        return [f for f in self.findings if f.letter == letter]

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"goal": self.goal_id, "letter": f.letter, "level": f.level, "code": f.code,
             "message": f.message}
            for f in self.findings
        ]  # fmt: skip


def _comparable(period: Period, history: int, fiscal: FiscalCalendar) -> list[Period]:
    out: list[Period] = []
    if period.kind is PeriodKind.CUSTOM:
        span = period.end - period.start
        out.extend(
            Period(period.start - span * i, period.end - span * i) for i in range(1, history + 1)
        )
    else:
        out.extend(period.shift(-i, fiscal) for i in range(1, history + 1))
    ya = Period(
        period.start - relativedelta(years=1),
        period.end - relativedelta(years=1),
        label=f"{period.label} a year earlier",
    )
    if all((p.start, p.end) != (ya.start, ya.end) for p in out):
        out.append(ya)
    return out


def validate(
    goal: Goal,
    data: Dataset | Any,
    *,
    goals: Iterable[Goal] = (),
    objectives: Collection[str] = (),
    registry: KpiRegistry | None = None,
    factor: Decimal | str = "1.5",
    history: int = 4,
    asof: datetime | None = None,
    tz: tzinfo = UTC,
    fiscal: FiscalCalendar = CALENDAR_YEAR,
) -> SmartReport:
    """Check each SMART letter of ``goal`` and explain every finding.

    - **S**pecific: the metric is a registered KPI and the scope exists in the data (the rep,
      team, product, or a region some rep, team or account has).
    - **M**easurable: the KPI's inputs are available, and the target is Money for money KPIs (in
      a currency the data holds), a whole number for counts, a fraction in [0, 1] for rates.
    - **A**chievable: the target against the scope's best comparable period — the ``history``
      periods of the same kind before the goal's and the same period a year earlier: a
      higher-is-better target above ``best × factor`` (a lower-is-better one below
      ``best / factor``) is a warning, with the numbers. No history is a warning too.
    - **R**elevant: the goal has a parent among ``goals`` (same metric, a period inside the
      parent's) or names one of the declared ``objectives``.
    - **T**ime-bound: the period is a closed range of days; one already over at ``asof`` is a
      warning.
    """
    f = to_decimal(factor, field="factor")
    out: list[Finding] = []
    ds = data if isinstance(data, Dataset) else Dataset.from_store(data)
    kpi: Kpi | None = None
    # --- S ---
    try:
        kpi = _kpi(goal, registry)
        out.append(Finding("S", "ok", "metric", f"metric {goal.metric!r}: {kpi.definition}"))
    except KpiError as e:
        out.append(Finding("S", "error", "metric", str(e)))
    scope_ok, why = _scope_exists(goal.scope, ds)
    out.append(Finding("S", "ok" if scope_ok else "error", "scope", why))
    # --- M ---
    if kpi is not None:
        missing = sorted(kpi.inputs - ds.inputs.available())
        if missing:
            out.append(Finding("M", "error", "inputs", f"{goal.metric} needs "
                               f"{', '.join(missing)}, which the data does not hold",
                               {"missing": missing}))  # fmt: skip
        else:
            out.append(Finding("M", "ok", "inputs",
                               f"{goal.metric} is computable from the data held"))  # fmt: skip
        out.append(_check_target(goal, kpi, ds))
    # --- A ---
    if kpi is not None and scope_ok and not kpi.inputs - ds.inputs.available():
        out.append(_achievable(goal, kpi, ds, f, history, asof, tz, registry, fiscal))
    # --- R ---
    out.extend(_relevant(goal, {g.id: g for g in goals}, objectives))
    # --- T ---
    p = goal.period
    msg = f"runs {p.start.isoformat()} to {p.last_day.isoformat()} ({p.days} days, {p.label})"
    if asof is not None and p.end <= asof.astimezone(tz).date():
        out.append(Finding("T", "warning", "period_over", msg + "; it is already over",
                           {"days": p.days}))  # fmt: skip
    else:
        out.append(Finding("T", "ok", "period", msg, {"days": p.days}))
    return SmartReport(goal.id, tuple(out))


def _scope_exists(scope: GoalScope, data: Dataset) -> tuple[bool, str]:
    k = scope.kind
    if k is ScopeKind.COMPANY:
        return True, "the whole company"
    ident = scope.id or ""
    if k is ScopeKind.REP:
        rep = data.reps.get(ident)
        return rep is not None, f"rep {ident} ({rep.name})" if rep else f"no rep {ident!r}"
    if k is ScopeKind.TEAM:
        team = data.teams.get(ident)
        return team is not None, f"team {ident} ({team.name})" if team else f"no team {ident!r}"
    if k is ScopeKind.PRODUCT:
        prod = data.products.get(ident)
        return prod is not None, (
            f"product {ident} ({prod.name})" if prod else f"no product {ident!r}"
        )
    regions = {r.region for r in data.reps.values()} | {t.region for t in data.teams.values()}
    regions |= {a.region for a in data.accounts.values()}
    ok = ident in regions
    return ok, f"region {ident}" if ok else f"no rep, team or account is in region {ident!r}"


def _check_target(goal: Goal, kpi: Kpi, data: Dataset) -> Finding:
    t = goal.target
    if kpi.unit is Unit.MONEY:
        if not isinstance(t, Money):
            return Finding("M", "error", "target_unit",
                           f"{goal.metric} is money; the target {t} has no currency")  # fmt: skip
        cur = data.view().currencies()
        if cur and t.currency not in cur:
            return Finding(
                "M", "error", "target_currency",
                f"the target is in {t.currency} but the data holds {', '.join(sorted(cur))}",
                {"currencies": sorted(cur)},
            )  # fmt: skip
        return Finding("M", "ok", "target", f"target {t}")
    if isinstance(t, Money):
        return Finding("M", "error", "target_unit",
                       f"{goal.metric} is measured in {kpi.unit.value}, not money")  # fmt: skip
    if kpi.unit is Unit.COUNT and t != t.to_integral_value():
        return Finding("M", "error", "target_unit",
                       f"{goal.metric} counts; the target {t} is not whole")  # fmt: skip
    if kpi.unit is Unit.RATE and not Decimal(0) <= t <= Decimal(1):
        return Finding("M", "error", "target_range",
                       f"{goal.metric} is a fraction in [0, 1]; the target {t} is outside")  # fmt: skip
    return Finding("M", "ok", "target", f"target {t} ({kpi.unit.value})")


def _achievable(
    goal: Goal, kpi: Kpi, data: Dataset, factor: Decimal, history: int,
    asof: datetime | None, tz: tzinfo, registry: KpiRegistry | None, fiscal: FiscalCalendar,
) -> Finding:  # fmt: skip
    past = _comparable(goal.period, history, fiscal)
    values: list[tuple[Period, Decimal]] = []
    for p in past:
        v = _number(actual(goal, data, window=p, asof=asof, tz=tz, registry=registry,
                           fiscal=fiscal))  # fmt: skip
        if v is not None:
            values.append((p, v))
    higher = goal.direction_for(kpi) is Direction.HIGHER
    seen = {p.label: str(v) for p, v in values}
    looked = ", ".join(p.label for p in past)
    if not values or (higher and all(v == 0 for _, v in values)):
        return Finding("A", "warning", "no_history",
                       f"no comparable history to judge the target against (looked at {looked})",
                       {"history": seen})  # fmt: skip
    best_p, best = (max if higher else min)(values, key=lambda pv: pv[1])
    target = _number(goal.target)
    assert target is not None
    nums: dict[str, Any] = {
        "target": str(target), "best": str(best), "best_period": best_p.label,
        "factor": str(factor), "history": seen,
    }  # fmt: skip
    where = f"the best comparable period ({best} in {best_p.label})"
    if higher:
        limit = stats.CTX.multiply(best, factor)
        nums["limit"] = str(stats.tidy(limit, 4))
        if target > limit:
            return Finding("A", "warning", "stretch",
                           f"target {target} is more than {factor}× {where}; "
                           f"limit {nums['limit']}", nums)  # fmt: skip
        return Finding("A", "ok", "achievable", f"target {target} is within {factor}× {where}",
                       nums)  # fmt: skip
    limit = stats.CTX.divide(best, factor)
    nums["limit"] = str(stats.tidy(limit, 4))
    if target < limit:
        return Finding("A", "warning", "stretch",
                       f"target {target} is below {where} divided by {factor} "
                       f"({nums['limit']})", nums)  # fmt: skip
    return Finding("A", "ok", "achievable", f"target {target} is within {factor}× of {where}",
                   nums)  # fmt: skip


def _relevant(goal: Goal, goals: Mapping[str, Goal], objectives: Collection[str]) -> list[Finding]:
    out: list[Finding] = []
    if goal.parent_id is not None:
        parent = goals.get(goal.parent_id)
        if parent is None:
            out.append(Finding("R", "error", "parent",
                               f"parent goal {goal.parent_id!r} does not exist"))  # fmt: skip
        elif parent.metric != goal.metric or goal.period not in parent.period:
            out.append(Finding(
                "R", "warning", "parent",
                f"parent goal {parent.id} measures {parent.metric} over {parent.period.label}; "
                f"this goal measures {goal.metric} over {goal.period.label}",
            ))  # fmt: skip
        else:
            out.append(Finding("R", "ok", "parent", f"contributes to goal {parent.id} "
                               f"({parent.scope}, {parent.period.label})"))  # fmt: skip
    if goal.objective is not None:
        if goal.objective in objectives:
            out.append(Finding("R", "ok", "objective",
                               f"serves the objective {goal.objective!r}"))  # fmt: skip
        else:
            out.append(Finding("R", "error", "objective", f"objective {goal.objective!r} is not "
                               "one of the declared company objectives"))  # fmt: skip
    if not out:
        out.append(Finding("R", "error", "unlinked",
                           "the goal has neither a parent goal nor a declared company objective"))
    return out


# ----------------------------------------------------------------------------------------------
# Decomposition
# ----------------------------------------------------------------------------------------------


class Method(enum.StrEnum):
    EQUAL = "equal"
    CALENDAR_DAYS = "calendar_days"
    BUSINESS_DAYS = "business_days"
    SEASONALITY = "seasonality"
    CAPACITY = "capacity"
    RAMP = "ramp"
    WEIGHTS = "weights"


def _factors(v: Iterable[Any]) -> tuple[Decimal, ...]:
    return tuple(to_decimal(x, field="ramp factor") for x in v)


@attrs.frozen
class RampUp:
    """How much of a full quota a new rep carries in each month after ``hired_on``:
    ``factors[0]`` in the first month, ``factors[1]`` in the second... and 1 afterwards (0 before
    the hire date)."""

    factors: tuple[Decimal, ...] = attrs.field(
        default=(Decimal("0.25"), Decimal("0.5"), Decimal("0.75")), converter=_factors
    )

    def factor(self, hired_on: date | None, d: date) -> Decimal:
        if hired_on is None:
            return Decimal(1)
        if d < hired_on:
            return Decimal(0)
        rd = relativedelta(d, hired_on)
        months = rd.years * 12 + rd.months
        return self.factors[months] if months < len(self.factors) else Decimal(1)

    def weight(self, rep: Rep, period: Period) -> Decimal:
        """``rep.capacity`` × the mean ramp factor over the days of ``period``."""
        total = sum((self.factor(rep.hired_on, d) for d in period.dates()), Decimal(0))
        return stats.CTX.divide(stats.CTX.multiply(rep.capacity, total), Decimal(period.days))


def _split_target(goal: Goal, kpi: Kpi, weights: Sequence[Decimal]) -> list[Money | Decimal]:
    """The parent's target split by ``weights`` (exactly, for additive KPIs)."""
    t = goal.target
    if not kpi.additive:
        return [t] * len(weights)
    if isinstance(t, Money):
        if t.round(ROUND_HALF_EVEN).amount != t.amount:
            raise GoalError([Problem(
                "target", "target",
                f"target {t} has more digits than {t.currency} has minor units "
                f"({minor_units(t.currency)})",
            )], goal_id=goal.id)  # fmt: skip
        return list(allocate(t, list(weights)))
    if t != t.to_integral_value():
        raise GoalError([Problem("target", "target", f"target {t} of a count is not whole")],
                        goal_id=goal.id)  # fmt: skip
    return [Decimal(x) for x in allocate_int(int(t), list(weights))]


def _explicit(
    weights: Mapping[str, Any] | Sequence[Any] | None, keys: Sequence[str], goal: Goal
) -> list[Decimal]:
    if weights is None:
        raise GoalError([Problem("weights", "missing", "the weights method needs weights")],
                        goal_id=goal.id)  # fmt: skip
    if isinstance(weights, Mapping):
        problems = [Problem(f"weights.{k}", "missing", f"no weight for {k}")
                    for k in keys if k not in weights]  # fmt: skip
        problems += [Problem(f"weights.{k}", "unknown", f"{k} is not a part of this split")
                     for k in weights if k not in keys]  # fmt: skip
        if problems:
            raise GoalError(problems, goal_id=goal.id)
        vals = [weights[k] for k in keys]
    else:
        if len(weights) != len(keys):
            raise GoalError([Problem("weights", "count",
                                     f"{len(weights)} weights for {len(keys)} parts")],
                            goal_id=goal.id)  # fmt: skip
        vals = list(weights)
    out = [to_decimal(v, field="weight") for v in vals]
    bad = [Problem(f"weights.{k}", "negative", f"weight {w} is negative")
           for k, w in zip(keys, out, strict=True) if w < 0]  # fmt: skip
    if bad:
        raise GoalError(bad, goal_id=goal.id)
    return out


def _time_weights(
    goal: Goal,
    parts: Sequence[Period],
    method: Method,
    *,
    calendar: BusinessCalendar | None,
    weights: Mapping[str, Any] | Sequence[Any] | None,
    data: Dataset | Any,
    history_years: int,
    tz: tzinfo,
    registry: KpiRegistry | None,
) -> list[Decimal]:
    if method is Method.EQUAL:
        return [Decimal(1)] * len(parts)
    if method is Method.CALENDAR_DAYS:
        return [Decimal(p.days) for p in parts]
    if method is Method.BUSINESS_DAYS:
        cal = calendar or BusinessCalendar()
        return [Decimal(cal.count_working_days(p.start, p.end)) for p in parts]
    if method is Method.WEIGHTS:
        return _explicit(weights, [p.label for p in parts], goal)
    if method is Method.SEASONALITY:
        if data is None:
            raise GoalError([Problem("method", "data",
                                     "seasonality needs the scope's history (pass data)")],
                            goal_id=goal.id)  # fmt: skip
        ds = data if isinstance(data, Dataset) else Dataset.from_store(data)
        out = []
        for p in parts:
            w = Decimal(0)
            for k in range(1, history_years + 1):
                back = Period(p.start - relativedelta(years=k), p.end - relativedelta(years=k))
                v = _number(actual(goal, ds, window=back, tz=tz, registry=registry))
                w += max(v or Decimal(0), Decimal(0))
            out.append(w)
        return out
    raise GoalError([Problem("method", "method",
                             f"{method.value} splits among people, not periods; use "
                             "split_members")], goal_id=goal.id)  # fmt: skip


def split_time(
    goal: Goal,
    into: PeriodKind | str,
    method: Method | str = Method.EQUAL,
    *,
    calendar: BusinessCalendar | None = None,
    weights: Mapping[str, Any] | Sequence[Any] | None = None,
    data: Dataset | Any = None,
    history_years: int = 1,
    fiscal: FiscalCalendar = CALENDAR_YEAR,
    tz: tzinfo = UTC,
    registry: KpiRegistry | None = None,
) -> list[Goal]:
    """Children of ``goal``, one per ``into`` period inside its period (year → quarters → months
    → ISO weeks; weeks are clipped at the period's edges), weighted by ``method``:

    ``equal``; ``calendar_days``; ``business_days`` (``calendar``, e.g.
    ``BusinessCalendar("CN")`` with China's make-up working days); ``seasonality`` (the scope's
    actuals on the same dates of the previous ``history_years`` years, from ``data``);
    ``weights`` (explicit, by child period label or in order). All-zero weights split equally.
    """
    kpi = _kpi(goal, registry)
    parts = goal.period.split(into, fiscal)
    w = _time_weights(goal, parts, Method(method), calendar=calendar, weights=weights, data=data,
                      history_years=history_years, tz=tz, registry=registry)  # fmt: skip
    targets = _split_target(goal, kpi, w)
    return [
        Goal(f"{goal.id}/{p.label}", goal.metric, goal.scope, t, p, goal.direction, goal.id,
             goal.objective, f"{goal.name or goal.id} {p.label}")
        for p, t in zip(parts, targets, strict=True)
    ]  # fmt: skip


def split_scopes(
    goal: Goal,
    scopes: Sequence[GoalScope],
    weights: Sequence[Any],
    *,
    registry: KpiRegistry | None = None,
) -> list[Goal]:
    """Children of ``goal`` for each scope (same period), weighted by ``weights``."""
    kpi = _kpi(goal, registry)
    w = _explicit(list(weights), [str(s) for s in scopes], goal)
    targets = _split_target(goal, kpi, w)
    return [
        Goal(f"{goal.id}/{s.id or s.kind.value}", goal.metric, s, t, goal.period, goal.direction,
             goal.id, goal.objective, f"{goal.name or goal.id} {s}")
        for s, t in zip(scopes, targets, strict=True)
    ]  # fmt: skip


def split_members(
    goal: Goal,
    reps: Iterable[Rep],
    method: Method | str = Method.EQUAL,
    *,
    ramp: RampUp | None = None,
    weights: Mapping[str, Any] | Sequence[Any] | None = None,
    registry: KpiRegistry | None = None,
) -> list[Goal]:
    """Children of a team (or region, company) goal for each active rep of ``reps``: ``equal``,
    ``capacity`` (``Rep.capacity``), ``ramp`` (capacity × the mean ramp-up factor over the goal's
    period from ``Rep.hired_on``, see :class:`RampUp`) or ``weights`` (by rep id)."""
    members = sorted((r for r in reps if r.active), key=lambda r: r.id)
    if not members:
        raise GoalError([Problem("members", "empty",
                                 f"goal {goal.id} has no active members to split among")],
                        goal_id=goal.id)  # fmt: skip
    m = Method(method)
    if m is Method.EQUAL:
        w: list[Decimal] = [Decimal(1)] * len(members)
    elif m is Method.CAPACITY:
        w = [r.capacity for r in members]
    elif m is Method.RAMP:
        rr = ramp or RampUp()
        w = [rr.weight(r, goal.period) for r in members]
    elif m is Method.WEIGHTS:
        w = _explicit(weights, [r.id for r in members], goal)
    else:
        raise GoalError([Problem("method", "method",
                                 f"{m.value} splits periods, not people; use split_time")],
                        goal_id=goal.id)  # fmt: skip
    kpi = _kpi(goal, registry)
    targets = _split_target(goal, kpi, w)
    return [
        Goal(f"{goal.id}/{r.id}", goal.metric, GoalScope(ScopeKind.REP, r.id), t, goal.period,
             goal.direction, goal.id, goal.objective, f"{goal.name or goal.id} {r.name}")
        for r, t in zip(members, targets, strict=True)
    ]  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Re-cutting mid-period
# ----------------------------------------------------------------------------------------------


@attrs.frozen
class Recut:
    """New children after a re-cut. ``achieved`` holds what each child achieved before the cut
    (kept); ``remainder`` is the parent's target minus all of it, spread over the days still to
    come. When the parent is already exceeded (``exceeded``), the days to come get zero and the
    children add up to what was achieved."""

    children: tuple[Goal, ...]
    achieved: dict[str, Money | Decimal]
    remainder: Money | Decimal
    exceeded: bool


def _add(a: Money | Decimal, b: Money | Decimal) -> Money | Decimal:
    if isinstance(a, Money) and isinstance(b, Money):
        return a + b
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a + b
    raise GoalError([Problem("target", "unit", f"cannot add {a} and {b}")])


def recut(
    parent: Goal,
    children: Sequence[Goal],
    cut: date,
    achieved: Mapping[str, Value] | Callable[[Goal, Period], Value],
    method: Method | str = Method.CALENDAR_DAYS,
    *,
    calendar: BusinessCalendar | None = None,
    registry: KpiRegistry | None = None,
) -> Recut:
    """Re-cut a time split at ``cut`` (the first day still to come).

    Each child keeps what it achieved on the days before ``cut`` (``achieved``: by child id, or a
    function ``(child, past_part) -> value``); the rest of the parent's target is spread over
    the days from ``cut`` on by ``method``: ``equal`` over the children with days left,
    ``calendar_days`` or ``business_days`` of each child's days left.
    """
    kpi = _kpi(parent, registry)
    if not kpi.additive:
        raise GoalError([Problem("metric", "additive",
                                 f"{parent.metric} does not add up over periods; its children "
                                 "keep the parent's target")], goal_id=parent.id)  # fmt: skip
    m = Method(method)
    kids = sorted(children, key=lambda g: g.period.start)
    zero: Money | Decimal = (
        Money.zero(parent.target.currency) if isinstance(parent.target, Money) else Decimal(0)
    )
    kept: dict[str, Money | Decimal] = {}
    future: list[tuple[Goal, Period]] = []
    for k in kids:
        v: Value = None
        if k.period.start < cut:
            past = Period(k.period.start, min(k.period.end, cut))
            v = achieved(k, past) if callable(achieved) else achieved.get(k.id)
        val: Money | Decimal = zero if v is None else (Decimal(v) if isinstance(v, int) else v)
        kept[k.id] = val
        if k.period.end > cut:
            future.append((k, Period(max(k.period.start, cut), k.period.end)))
    total: Money | Decimal = zero
    for val in kept.values():
        total = _add(total, val)
    remainder = _add(parent.target, -total)
    rem = _number(remainder)
    exceeded = rem is not None and rem < 0
    shares: list[Money | Decimal] = []
    if future:
        if m is Method.EQUAL:
            w = [Decimal(1)] * len(future)
        elif m is Method.CALENDAR_DAYS:
            w = [Decimal(p.days) for _, p in future]
        elif m is Method.BUSINESS_DAYS:
            cal = calendar or BusinessCalendar()
            w = [Decimal(cal.count_working_days(p.start, p.end)) for _, p in future]
        else:
            raise GoalError([Problem("method", "method",
                                     "re-cut with equal, calendar_days or business_days")],
                            goal_id=parent.id)  # fmt: skip
        shares = _split_target(attrs.evolve(parent, target=zero if exceeded else remainder), kpi, w)
    elif rem:
        if not exceeded:
            raise GoalError([Problem("cut", "cut", f"no day is left after {cut} to carry the "
                                     f"remaining {remainder}")], goal_id=parent.id)  # fmt: skip
    share_of = {g.id: s for (g, _), s in zip(future, shares, strict=True)}
    out = []
    for k in kids:
        new = kept[k.id]
        if k.id in share_of:
            new = _add(new, share_of[k.id])
        out.append(attrs.evolve(k, target=new))
    return Recut(tuple(out), kept, remainder, exceeded)


# ----------------------------------------------------------------------------------------------
# Consistency
# ----------------------------------------------------------------------------------------------


def check_consistency(
    goals: Iterable[Goal],
    *,
    reps: Iterable[Rep] = (),
    registry: KpiRegistry | None = None,
) -> list[Problem]:
    """Every inconsistency of a set of goals, as problems (``path`` is the goal id):

    - ``target_mismatch`` — a parent on an additive KPI whose children no longer add up to it;
    - ``no_target`` — days of a parent's period that no child covers (time splits), or active
      reps of a team goal's team without a child goal (member splits; pass ``reps``);
    - ``orphan`` — a child whose parent is not among the goals;
    - ``outside`` — a child whose period is not inside its parent's.
    """
    reg = registry or default_registry()
    gs = list(goals)
    by_id = {g.id: g for g in gs}
    kids: dict[str, list[Goal]] = {}
    out: list[Problem] = []
    for g in gs:
        if g.parent_id is None:
            continue
        if g.parent_id not in by_id:
            out.append(Problem(g.id, "orphan", f"parent goal {g.parent_id!r} is missing"))
            continue
        kids.setdefault(g.parent_id, []).append(g)
    team_reps: dict[str, list[Rep]] = {}
    for r in reps:
        if r.active and r.team_id:
            team_reps.setdefault(r.team_id, []).append(r)
    for pid, ch in sorted(kids.items()):
        parent = by_id[pid]
        for c in ch:
            if c.period not in parent.period:
                out.append(Problem(c.id, "outside", f"period {c.period.label} is not inside "
                                   f"the parent's {parent.period.label}"))  # fmt: skip
        try:
            kpi = reg.resolve(parent.metric)[0]
        except KpiError:
            kpi = None
        if kpi is not None and kpi.additive:
            total: Money | Decimal | None = None
            try:
                for c in ch:
                    total = c.target if total is None else _add(total, c.target)
            except (GoalError, ValueError):
                total = None
            if total is None or total != parent.target:
                out.append(Problem(pid, "target_mismatch", f"children add up to {total} but "
                                   f"the goal's target is {parent.target}"))  # fmt: skip
        if all(c.scope == parent.scope for c in ch):
            d = parent.period.start
            gaps = []
            for s, e in sorted((c.period.start, c.period.end) for c in ch):
                if s > d:
                    gaps.append(f"{d.isoformat()}..{s.isoformat()}")
                d = max(d, e)
            if d < parent.period.end:
                gaps.append(f"{d.isoformat()}..{parent.period.end.isoformat()}")
            out.extend(Problem(pid, "no_target", f"no child goal covers {gap}") for gap in gaps)
        elif parent.scope.kind is ScopeKind.TEAM:
            have = {c.scope.id for c in ch if c.scope.kind is ScopeKind.REP}
            for r in sorted(team_reps.get(parent.scope.id or "", []), key=lambda r: r.id):
                if r.id not in have:
                    out.append(Problem(pid, "no_target", f"rep {r.id} ({r.name}) of team "
                                       f"{parent.scope.id} has no {parent.metric} goal"))  # fmt: skip
    return out


# ----------------------------------------------------------------------------------------------
# Progress
# ----------------------------------------------------------------------------------------------


class Status(enum.StrEnum):
    NOT_STARTED = "not_started"
    AHEAD = "ahead"
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BEHIND = "behind"


def _dec(v: object) -> Decimal:
    return to_decimal(v, field="threshold")


@attrs.frozen
class StatusThresholds:
    """Projected attainment at or above ``ahead`` is ahead, at or above ``on_track`` on track, at
    or above ``at_risk`` at risk, else behind."""

    ahead: Decimal = attrs.field(default=Decimal("1.10"), converter=_dec)
    on_track: Decimal = attrs.field(default=Decimal("0.95"), converter=_dec)
    at_risk: Decimal = attrs.field(default=Decimal("0.80"), converter=_dec)

    def status(self, projected: Decimal | None) -> Status:
        if projected is None:
            return Status.BEHIND
        if projected >= self.ahead:
            return Status.AHEAD
        if projected >= self.on_track:
            return Status.ON_TRACK
        if projected >= self.at_risk:
            return Status.AT_RISK
        return Status.BEHIND


@attrs.frozen
class Progress:
    """Where a goal stands at ``asof``.

    ``actual`` is the metric so far; ``attainment`` is actual ÷ target (target ÷ actual for
    lower-is-better goals); ``elapsed`` the share of the period gone by (linear time or business
    days); ``expected`` the target × elapsed for additive KPIs (the target itself otherwise);
    ``gap`` target − actual (what is still needed; negative once exceeded); ``projection`` the
    run-rate actual ÷ elapsed for additive KPIs (the actual otherwise); ``projected_attainment``
    the projection judged like attainment, which gives ``status``; ``milestones`` the attainment
    milestones reached.
    """

    goal_id: str
    asof: datetime
    actual: Value
    target: Money | Decimal
    attainment: Decimal | None
    elapsed: Decimal
    expected: Money | Decimal
    gap: Money | Decimal
    projection: Value
    projected_attainment: Decimal | None
    status: Status
    milestones: tuple[Decimal, ...]

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False)


def _day_fraction(d: date, at: datetime, tz: tzinfo) -> Decimal:
    day0 = datetime(d.year, d.month, d.day, tzinfo=tz)
    nxt = d + timedelta(days=1)
    day1 = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    return stats.CTX.divide(
        Decimal(stats.micros_between(day0, at)), Decimal(stats.micros_between(day0, day1))
    )


def elapsed(
    period: Period, asof: datetime, tz: tzinfo = UTC, pace: str = "linear",
    calendar: BusinessCalendar | None = None,
) -> Decimal:  # fmt: skip
    """The share of ``period`` gone by at ``asof``: by time (``linear``) or by working days of
    ``calendar`` (``business_days``; the current working day counts by its elapsed time)."""
    start, end = period.start_instant(tz), period.end_instant(tz)
    if asof <= start:
        return Decimal(0)
    if asof >= end:
        return Decimal(1)
    linear = stats.CTX.divide(
        Decimal(stats.micros_between(start, asof)), Decimal(stats.micros_between(start, end))
    )
    if pace == "linear":
        return linear
    if pace != "business_days":
        raise GoalError([Problem("pace", "pace",
                                 f"pace must be linear or business_days, not {pace!r}")])
    cal = calendar or BusinessCalendar()
    total = cal.count_working_days(period.start, period.end)
    if total == 0:
        return linear
    today = asof.astimezone(tz).date()
    done = Decimal(cal.count_working_days(period.start, today))
    if cal.is_working_day(today):
        done += _day_fraction(today, asof.astimezone(tz), tz)
    return stats.CTX.divide(done, Decimal(total))


def _scale(v: Money | Decimal, f: Decimal) -> Money | Decimal:
    if isinstance(v, Money):
        return stats.round_money(stats.CTX.multiply(v.amount, f), v.currency)
    return stats.tidy(stats.CTX.multiply(v, f))


def progress(
    goal: Goal,
    data: Dataset | Any,
    asof: datetime,
    *,
    pace: str = "linear",
    calendar: BusinessCalendar | None = None,
    thresholds: StatusThresholds | None = None,
    milestones: Sequence[Decimal] = MILESTONES,
    tz: tzinfo = UTC,
    registry: KpiRegistry | None = None,
    value: Value = None,
) -> Progress:
    """The goal's progress at ``asof`` (see :class:`Progress`). ``value`` gives the actual
    directly (pass ``data=None`` then); otherwise it is computed from ``data`` as of ``asof``."""
    require_aware(asof, "asof")
    kpi = _kpi(goal, registry)
    th = thresholds or StatusThresholds()
    act = value if data is None else actual(goal, data, asof=asof, tz=tz, registry=registry)
    a = _number(act)
    t = _number(goal.target)
    assert t is not None
    higher = goal.direction_for(kpi) is Direction.HIGHER
    f = elapsed(goal.period, asof, tz, pace, calendar)

    def attain(x: Decimal | None) -> Decimal | None:
        if x is None:
            return None
        return stats.div(x, t) if higher else stats.div(t, x)

    att = attain(a)
    proj: Value
    pv: Decimal | None
    expected: Money | Decimal
    if kpi.additive:
        expected = _scale(goal.target, f)
        if a is None or f == 0:
            proj, pv = None, None
        else:
            pv = stats.CTX.divide(a, f)
            proj = (
                stats.round_money(pv, goal.target.currency)
                if isinstance(goal.target, Money)
                else stats.tidy(pv)
            )
    else:
        expected = goal.target
        proj, pv = act, a
    pa = attain(pv)
    if pa is None and not higher and pv == 0:
        pa = th.ahead  # nothing at all, where less is better
    gap: Money | Decimal
    if isinstance(goal.target, Money):
        gap = goal.target - act if isinstance(act, Money) else goal.target
    else:
        gap = stats.tidy(t - (a or Decimal(0)))
    status = Status.NOT_STARTED if f == 0 else th.status(pa)
    reached = tuple(m for m in milestones if att is not None and att >= m)
    return Progress(goal.id, asof, act, goal.target, att, stats.tidy(f), expected, gap, proj, pa,
                    status, reached)  # fmt: skip
