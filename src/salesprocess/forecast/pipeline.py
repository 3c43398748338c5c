"""Period forecasts: weighted, categories, historical and Monte Carlo, rolled up rep → team → company.

:func:`forecast` reads the deals *as known at* ``asof`` (each rebuilt from its events up to that
instant), so a forecast of the past never sees a later event. What it counts:

- **closed** — deals won with a close instant (local date in ``tz``) inside the period, by ``asof``;
- **open deals** with an amount, each with a probability and a share expected to close in the
  period (deals without an amount are counted in ``unpriced`` and left out).

Methods:

``weighted``
    amount × probability for open deals whose close date lies in the period; ``forecast`` =
    closed + weighted.
``categories``
    open deals whose close date lies in the period, summed by forecast category (the deal's own,
    else its stage's; an open deal marked ``closed`` counts as commit): ``commit``, ``best_case``,
    ``pipeline``, ``omitted``, and the cumulative calls ``forecast_commit`` = closed + commit,
    ``forecast_best_case`` = that + best case, ``forecast_pipeline`` = that + pipeline.
``historical``
    amount × historical win rate × share expected to close in the period (time-to-close and slip
    history, :mod:`salesprocess.forecast.history`); ``forecast`` = closed + expected.
``montecarlo``
    the historical probabilities and shares simulated (:mod:`salesprocess.forecast.montecarlo`):
    ``p10``, ``p50``, ``p90``, ``mean`` and the probability of reaching the scope's target.

**Probability precedence** (:func:`resolve_probability`): a probability the deal carries from a
source the process's :class:`~salesprocess.process.ProbabilityPolicy` keeps (``user``, ``model``,
``import``, ``crm_sync`` under ``keep_manual``; also ``rule`` under ``keep_any``; none under
``stage_default``) wins; then the model's probability (the historical win rate, or scores passed
in); then the stage default. Every deal line records which source answered.

**Roll-up.** Rows for the company, every team (a team includes its sub-teams through
``Team.parent_id``) and every rep owning a counted deal. **Manager adjustments**
(:class:`~salesprocess.forecast.ledger.ForecastAdjustment`) made by ``asof`` are applied beside
the raw values: a row's adjusted value is its own latest adjustment, else the sum of its children's
adjusted values (reps, sub-teams, deals without an owner). Percentiles do not add up, so ``p10``,
``p50``, ``p90`` and ``mean`` take only a row's own adjustment.

Money is summed exactly and rounded half-even to the currency's minor units at the end.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs

from salesprocess.errors import DomainError
from salesprocess.kpi import Dataset, Target, View
from salesprocess.model import Deal, DealStatus, EventSource, ForecastCategory
from salesprocess.money import Money, Rate
from salesprocess.periods import Period, require_aware
from salesprocess.process import ProbabilityPolicy, Process

from .history import (
    CloseTiming,
    TimingBasis,
    WinRate,
    WinRates,
    learn_close_timing,
    learn_win_rates,
)
from .ledger import ForecastAdjustment, Scope, load_adjustments
from .montecarlo import SimDeal, SimGroup, Simulation, simulate_groups

__all__ = [
    "DealLine",
    "Forecast",
    "ForecastRow",
    "Method",
    "forecast",
    "kept_sources",
    "resolve_probability",
]


class Method(enum.StrEnum):
    WEIGHTED = "weighted"
    CATEGORIES = "categories"
    HISTORICAL = "historical"
    MONTECARLO = "montecarlo"


HEADLINE: dict[Method, str] = {
    Method.WEIGHTED: "forecast",
    Method.CATEGORIES: "forecast_commit",
    Method.HISTORICAL: "forecast",
    Method.MONTECARLO: "p50",
}
"""The measure each method reports as its forecast."""

NON_ADDITIVE = frozenset({"p10", "p50", "p90", "mean"})

_KEEP: dict[ProbabilityPolicy, frozenset[EventSource]] = {
    ProbabilityPolicy.STAGE_DEFAULT: frozenset(),
    ProbabilityPolicy.KEEP_MANUAL: frozenset(
        {EventSource.USER, EventSource.MODEL, EventSource.CRM_SYNC, EventSource.IMPORT}
    ),
    ProbabilityPolicy.KEEP_ANY: frozenset(
        {EventSource.USER, EventSource.MODEL, EventSource.CRM_SYNC, EventSource.IMPORT,
         EventSource.RULE}
    ),
}


def kept_sources(policy: ProbabilityPolicy) -> frozenset[EventSource]:
    """The probability sources ``policy`` keeps over a stage default."""
    return _KEEP[ProbabilityPolicy(policy)]


def resolve_probability(
    deal: Deal,
    process: Process | None,
    *,
    model: Rate | None = None,
    model_source: str = "model",
) -> tuple[Rate, str]:
    """The probability to weight ``deal`` with and the name of the source that answered.

    Order: the deal's own probability when its source is kept by the process's policy (the
    source's name, e.g. ``user``); else ``model`` (named ``model_source``); else the stage default
    (``stage_default``); else the deal's probability whatever its source (``deal``); else 0
    (``none``).
    """
    policy = process.probability_policy if process is not None else ProbabilityPolicy.KEEP_MANUAL
    if deal.probability is not None and deal.probability_source in _KEEP[policy]:
        assert deal.probability_source is not None
        return deal.probability, deal.probability_source.value
    if model is not None:
        return model, model_source
    if process is not None and process.has_stage(deal.stage):
        return process.stage(deal.stage).probability, "stage_default"
    if deal.probability is not None:
        return deal.probability, "deal"
    return Rate(0), "none"


@attrs.frozen
class DealLine:
    """One open deal in a forecast."""

    deal_id: str
    name: str
    owner_id: str | None
    team_id: str | None
    stage: str
    category: ForecastCategory
    amount: Money
    close_date: Any
    probability: Rate
    probability_source: str
    share: Rate
    """Share expected to close inside the period (1 or 0 for weighted and categories)."""
    timing: TimingBasis | None
    expected: Money
    """``amount × probability × share`` (unrounded)."""
    win_rate: WinRate | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "deal_id": self.deal_id, "name": self.name, "owner_id": self.owner_id,
            "team_id": self.team_id, "stage": self.stage, "category": self.category.value,
            "amount": self.amount, "close_date": self.close_date, "probability": self.probability,
            "probability_source": self.probability_source, "share": self.share,
            "timing": self.timing.value if self.timing else None,
            "expected": self.expected.round(ROUND_HALF_EVEN),
            "win_rate_level": self.win_rate.level.value if self.win_rate else None,
        }


@attrs.frozen(eq=False)
class ForecastRow:
    """One roll-up row: raw ``values`` and ``adjusted`` values by measure."""

    level: str
    id: str | None
    name: str
    parent: str | None
    deals: int
    values: Mapping[str, Money]
    adjusted: Mapping[str, Money]
    adjustments: tuple[ForecastAdjustment, ...] = ()
    target: Money | None = None
    simulation: Simulation | None = None

    @property
    def scope(self) -> Scope:
        return Scope(self.level, self.id)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"level": self.level, "id": self.id, "name": self.name,
                             "parent": self.parent, "deals": self.deals}
        d.update(self.values)
        for k, v in self.adjusted.items():
            if v != self.values.get(k):
                d[f"{k}_adjusted"] = v
        if self.target is not None:
            d["target"] = self.target
        if self.simulation is not None and self.simulation.p_target is not None:
            d["p_target"] = self.simulation.p_target
        return d


@attrs.frozen(eq=False)
class Forecast:
    """The result of :func:`forecast`."""

    period: Period
    asof: datetime
    method: Method
    currency: str
    rows: tuple[ForecastRow, ...]
    lines: tuple[DealLine, ...]
    unpriced: int
    """Open deals without an amount (left out)."""
    headline: str

    def row(self, level: str = "company", id: str | None = None) -> ForecastRow:
        for r in self.rows:
            if r.level == level and r.id == id:
                return r
        raise KeyError(f"no {level} row {id!r}")

    @property
    def company(self) -> ForecastRow:
        return self.row("company")

    def value(self, measure: str | None = None, level: str = "company", id: str | None = None,
              adjusted: bool = False) -> Money:
        r = self.row(level, id)
        m = measure or self.headline
        return (r.adjusted if adjusted else r.values)[m]

    def to_json_obj(self) -> dict[str, Any]:
        comp = self.company
        sim = comp.simulation
        return {
            "period": self.period.label or str(self.period), "asof": self.asof.isoformat(),
            "method": self.method.value, "currency": self.currency, "headline": self.headline,
            "unpriced": self.unpriced,
            "rows": [r.as_dict() for r in self.rows],
            "adjustments": [
                {"id": a.id, "scope": str(a.scope), "measure": a.measure, "by": a.by,
                 "at": a.at.isoformat(), "from": a.from_value, "to": a.to_value,
                 "reason": a.reason}
                for r in self.rows for a in r.adjustments
            ],
            "simulation": sim.as_dict() if sim is not None else None,
            "deals": [ln.as_dict() for ln in self.lines],
        }


# ------------------------------------------------------------------------------------------------


def _dataset(source: Dataset | Any) -> Dataset:
    return source if isinstance(source, Dataset) else Dataset.from_store(source)


def _currency(deals: Iterable[Deal], given: str | None, processes: Mapping[str, Process]) -> str:
    if given is not None:
        return given
    found = sorted({d.amount.currency for d in deals if d.amount is not None})
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise DomainError(
            f"the deals are in several currencies ({', '.join(found)}); pass currency= to "
            "forecast one of them"
        )
    procs = sorted({p.currency for p in processes.values() if p.currency})
    if len(procs) == 1:
        return procs[0]
    raise DomainError("no deal has an amount; pass currency= to say which currency to report")


def _category(deal: Deal, process: Process | None) -> ForecastCategory:
    c = deal.forecast_category
    if c is None and process is not None and process.has_stage(deal.stage):
        c = process.stage(deal.stage).effective_forecast_category
    if c is None:
        c = ForecastCategory.PIPELINE
    return ForecastCategory.COMMIT if c is ForecastCategory.CLOSED else c


def _round(d: Decimal, currency: str) -> Money:
    return Money(d, currency).round(ROUND_HALF_EVEN)


class _Tree:
    """Reps and teams of a view: who rolls up into what."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.teams = view.teams
        self.reps = view.reps
        self.children: dict[str | None, list[str]] = {}
        for t in sorted(self.teams.values(), key=lambda t: t.id):
            parent = t.parent_id if t.parent_id in self.teams else None
            self.children.setdefault(parent, []).append(t.id)

    def team_of(self, owner: str | None) -> str | None:
        rep = self.reps.get(owner) if owner else None
        if rep is None or rep.team_id not in self.teams:
            return None
        return rep.team_id

    def ancestors(self, team: str | None) -> list[str]:
        out = []
        seen = set()
        while team is not None and team in self.teams and team not in seen:
            seen.add(team)
            out.append(team)
            team = self.teams[team].parent_id
        return out

    def preorder(self) -> list[str]:
        out: list[str] = []

        def walk(t: str) -> None:
            out.append(t)
            for c in self.children.get(t, ()):
                walk(c)

        for root in self.children.get(None, ()):
            walk(root)
        return out

    def postorder(self) -> list[str]:
        out: list[str] = []

        def walk(t: str) -> None:
            for c in self.children.get(t, ()):
                walk(c)
            out.append(t)

        for root in self.children.get(None, ()):
            walk(root)
        return out


def _stored_goals(store: Any) -> list[Any]:
    from salesprocess.goals import load_goals

    return [g for g in load_goals(store) if g.metric == "won_revenue"]


def _target_for(targets: Sequence[Target], scope: Scope, period: Period) -> Money | None:
    want: tuple[tuple[str, str | None], ...]
    if scope.level == "company":
        want = ()
    elif scope.level == "team":
        want = (("team", scope.id),)
    else:
        want = (("owner", scope.id),)
    for t in targets:
        if t.metric != "won_revenue" or t.scope != want:
            continue
        if (t.period.start, t.period.end) == (period.start, period.end) and isinstance(t.value, Money):
            return t.value
    return None


def forecast(
    source: Dataset | Any,
    period: Period | str,
    *,
    asof: datetime,
    method: Method | str = Method.WEIGHTED,
    tz: tzinfo = UTC,
    currency: str | None = None,
    levels: Sequence[str] = ("company", "team", "rep"),
    segment: str | None = None,
    min_sample: int = 20,
    model: Mapping[str, Rate] | None = None,
    targets: Sequence[Target | Any] | None = None,
    target: Money | None = None,
    adjustments: Iterable[ForecastAdjustment] | None = None,
    trials: int = 10_000,
    seed: int = 0,
    engine: str = "auto",
    movers: int = 10,
    win_rates: WinRates | None = None,
    timing: CloseTiming | None = None,
) -> Forecast:
    """Forecast revenue of ``period`` as known at ``asof`` (see the module documentation).

    ``source`` is a :class:`~salesprocess.kpi.Dataset` or a store (adjustments are then read from
    its documents unless given). ``levels`` picks the roll-up rows. ``segment`` and ``min_sample``
    shape the historical win rates; ``model`` maps deal ids to probabilities from another model
    (win scores), used in place of the historical rate. ``targets`` (:class:`~salesprocess.kpi.Target`
    values or :class:`~salesprocess.goals.Goal` values on ``won_revenue``; with a store and no
    ``targets``, the goals saved in it) or ``target`` (the company's) give each row its target and
    the Monte Carlo the probability of reaching it. ``win_rates``/``timing`` reuse learnt models
    (they must come from the same as-of view).
    """
    require_aware(asof, "asof")
    method = Method(method)
    if isinstance(period, str):
        period = Period.parse(period)
    for lv in levels:
        if lv not in ("company", "team", "rep"):
            raise DomainError(f"levels must be company, team or rep, got {lv!r}")
    data = _dataset(source)
    if targets is None:
        targets = () if isinstance(source, Dataset) else _stored_goals(source)
    targets = [t if isinstance(t, Target) else Target.from_goal(t) for t in targets]
    if adjustments is None:
        adjustments = () if isinstance(source, Dataset) else load_adjustments(source)
    view = data.view(asof)
    today = asof.astimezone(tz).date()
    procs = view.processes
    cur = _currency(
        (d for d in view.deals if d.status is DealStatus.OPEN
         or (d.status is DealStatus.WON and d.closed_at is not None)), currency, procs)
    tree = _Tree(view)
    historical = method in (Method.HISTORICAL, Method.MONTECARLO)
    if historical:
        win_rates = win_rates or learn_win_rates(view, segment=segment, min_sample=min_sample,
                                                tz=tz)
        timing = timing or learn_close_timing(view, min_sample=min_sample, tz=tz)

    closed: dict[str | None, Decimal] = {}
    lines: list[DealLine] = []
    unpriced = 0
    for d in view.deals:
        if d.amount is None:
            if d.status is DealStatus.OPEN:
                unpriced += 1
            continue
        if d.amount.currency != cur:
            continue
        if d.status is DealStatus.WON:
            if d.closed_at is not None and d.closed_at.astimezone(tz).date() in period:
                closed[d.owner_id] = closed.get(d.owner_id, Decimal(0)) + d.amount.amount
            continue
        if d.status is not DealStatus.OPEN:
            continue
        proc = procs.get(d.process)
        wr: WinRate | None = None
        basis: TimingBasis | None = None
        if historical:
            assert win_rates is not None
            assert timing is not None
            given = model.get(d.id) if model else None
            if given is not None:
                prob, src = resolve_probability(d, proc, model=given)
            else:
                wr = win_rates.lookup(d, view)
                prob, src = resolve_probability(d, proc, model=wr.rate,
                                                model_source=f"historical:{wr.level.value}")
            ts = timing.share_in(d, period, asof)
            share, basis = ts.share, ts.basis
        else:
            prob, src = resolve_probability(d, proc, model=model.get(d.id) if model else None)
            inside = d.close_date is not None and d.close_date in period and period.end > today
            share = Rate(1) if inside else Rate(0)
        expected = Money(d.amount.amount * prob.value * share.value, cur)
        lines.append(DealLine(
            d.id, d.name, d.owner_id, tree.team_of(d.owner_id), d.stage, _category(d, proc),
            d.amount, d.close_date, prob, src, share, basis, expected, wr,
        ))

    # --- raw values per leaf (owner) ------------------------------------------------------------
    owners = sorted({ln.owner_id or "" for ln in lines} | {o or "" for o in closed})

    def values_for(sel_lines: Sequence[DealLine], closed_sum: Decimal) -> dict[str, Decimal]:
        v: dict[str, Decimal] = {"closed": closed_sum}
        if method is Method.WEIGHTED:
            inside = [ln for ln in sel_lines if ln.share.value > 0]
            v["open_in_period"] = sum((ln.amount.amount for ln in inside), Decimal(0))
            v["weighted"] = sum((ln.expected.amount for ln in inside), Decimal(0))
            v["forecast"] = closed_sum + v["weighted"]
        elif method is Method.CATEGORIES:
            for c in ("commit", "best_case", "pipeline", "omitted"):
                v[c] = sum((ln.amount.amount for ln in sel_lines
                            if ln.share.value > 0 and ln.category.value == c), Decimal(0))
            v["forecast_commit"] = closed_sum + v["commit"]
            v["forecast_best_case"] = v["forecast_commit"] + v["best_case"]
            v["forecast_pipeline"] = v["forecast_best_case"] + v["pipeline"]
        else:
            v["expected"] = sum((ln.expected.amount for ln in sel_lines), Decimal(0))
            v["forecast"] = closed_sum + v["expected"]
        return v

    by_owner: dict[str, list[DealLine]] = {o: [] for o in owners}
    for ln in lines:
        by_owner[ln.owner_id or ""].append(ln)
    team_lines: dict[str, list[DealLine]] = {}
    team_closed: dict[str, Decimal] = {}
    for o in owners:
        for t in tree.ancestors(tree.team_of(o or None)):
            team_lines.setdefault(t, []).extend(by_owner[o])
            team_closed[t] = team_closed.get(t, Decimal(0)) + closed.get(o or None, Decimal(0))

    # --- simulation -------------------------------------------------------------------------------
    sims: dict[str, Simulation] = {}
    scopes: list[Scope] = []
    if "company" in levels:
        scopes.append(Scope("company"))
    if "team" in levels:
        scopes.extend(Scope("team", t) for t in tree.preorder())
    if "rep" in levels:
        scopes.extend(Scope("rep", o) for o in owners if o and o in tree.reps)
    target_of: dict[str, Money | None] = {}
    for sc in scopes:
        tg = _target_for(targets, sc, period)
        if tg is None and sc.level == "company":
            tg = target
        target_of[str(sc)] = tg
    if method is Method.MONTECARLO:
        sim_deals = [SimDeal(ln.deal_id, ln.amount, Rate(ln.probability.value * ln.share.value),
                             ln.owner_id or "") for ln in lines]
        groups = []
        for sc in scopes:
            if sc.level == "company":
                leaves = set(owners)
                base = sum(closed.values(), Decimal(0))
            elif sc.level == "team":
                assert sc.id is not None
                leaves = {o for o in owners if sc.id in tree.ancestors(tree.team_of(o or None))}
                base = team_closed.get(sc.id, Decimal(0))
            else:
                leaves = {sc.id or ""}
                base = closed.get(sc.id, Decimal(0))
            groups.append(SimGroup(str(sc), frozenset(leaves), Money(base, cur), target_of[str(sc)]))
        sims = simulate_groups(sim_deals, groups, currency=cur, trials=trials, seed=seed,
                               engine=engine, movers=movers)

    def make_values(sc: Scope) -> tuple[dict[str, Money], int]:
        if sc.level == "company":
            sel = lines
            cs = sum(closed.values(), Decimal(0))
        elif sc.level == "team":
            assert sc.id is not None
            sel = team_lines.get(sc.id, [])
            cs = team_closed.get(sc.id, Decimal(0))
        else:
            sel = by_owner.get(sc.id or "", [])
            cs = closed.get(sc.id, Decimal(0))
        raw = {k: _round(v, cur) for k, v in values_for(sel, cs).items()}
        sim = sims.get(str(sc))
        if sim is not None:
            raw.update(mean=sim.mean, p10=sim.p10, p50=sim.p50, p90=sim.p90)
        return raw, len(sel)

    # --- adjustments ------------------------------------------------------------------------------
    latest: dict[tuple[str, str], ForecastAdjustment] = {}
    history: dict[str, list[ForecastAdjustment]] = {}
    for a in sorted(adjustments, key=lambda a: (a.at, a.id)):
        if a.at > asof or (a.period.start, a.period.end) != (period.start, period.end):
            continue
        if a.to_value.currency != cur:
            continue
        latest[(str(a.scope), a.measure)] = a
        history.setdefault(str(a.scope), []).append(a)

    rows_raw: dict[str, tuple[dict[str, Money], int]] = {}
    all_scopes = [Scope("company"), *(Scope("team", t) for t in tree.preorder()),
                  *(Scope("rep", o) for o in owners if o and o in tree.reps)]
    # reps and teams with adjustments but no deals still get rows
    for key in {k for k, _ in latest}:
        sc = Scope.parse(key)
        if sc.level == "rep" and sc.id not in owners:
            owners.append(sc.id or "")
            by_owner[sc.id or ""] = []
            all_scopes.append(sc)
    for sc in all_scopes:
        rows_raw[str(sc)] = make_values(sc)
    adjusted: dict[str, dict[str, Money]] = {}

    def adj(sc: Scope, measure: str, children: Sequence[Scope], extra: Decimal) -> Money:
        a = latest.get((str(sc), measure))
        if a is not None:
            return a.to_value
        own = rows_raw[str(sc)][0][measure]
        if measure in NON_ADDITIVE or sc.level == "rep":
            return own
        total = extra + sum((adjusted[str(c)][measure].amount for c in children), Decimal(0))
        return Money(total, cur).round(ROUND_HALF_EVEN)

    rep_scopes = {o: Scope("rep", o) for o in owners if o and o in tree.reps}
    for sc in rep_scopes.values():
        adjusted[str(sc)] = {m: adj(sc, m, (), Decimal(0)) for m in rows_raw[str(sc)][0]}

    def loose(sel_owners: Iterable[str]) -> dict[str, Decimal]:
        """Raw values of deals whose owner has no rep row (no owner, unknown owner)."""
        sel = [ln for o in sel_owners for ln in by_owner.get(o, [])]
        cs = sum((closed.get(o or None, Decimal(0)) for o in sel_owners), Decimal(0))
        return values_for(sel, cs)

    for t in tree.postorder():
        sc = Scope("team", t)
        kids = [Scope("team", c) for c in tree.children.get(t, ())]
        kids += [rep_scopes[o] for o in rep_scopes if tree.team_of(o) == t]
        adjusted[str(sc)] = {m: adj(sc, m, kids, Decimal(0)) for m in rows_raw[str(sc)][0]}
    top = [Scope("team", c) for c in tree.children.get(None, ())]
    top += [rep_scopes[o] for o in rep_scopes if tree.team_of(o) is None]
    rest = loose([o for o in owners if o not in rep_scopes])
    comp = Scope("company")
    adjusted["company"] = {m: adj(comp, m, top, rest.get(m, Decimal(0)))
                           for m in rows_raw["company"][0]}

    rows: list[ForecastRow] = []
    for sc in all_scopes:
        if sc.level not in levels:
            continue
        raw, n = rows_raw[str(sc)]
        if sc.level == "team" and n == 0 and not history.get(str(sc)):
            if not any(v.amount for v in raw.values()):
                continue  # an empty team: nothing to show
        if sc.level == "company":
            name, parent = "company", None
        elif sc.level == "team":
            team = tree.teams[sc.id or ""]
            name = team.name
            parent = team.parent_id if team.parent_id in tree.teams else None
        else:
            rep = tree.reps.get(sc.id or "")
            name = rep.name if rep else (sc.id or "")
            parent = tree.team_of(sc.id)
        rows.append(ForecastRow(
            sc.level, sc.id, name, parent, n, raw, adjusted[str(sc)],
            tuple(history.get(str(sc), ())), target_of.get(str(sc)), sims.get(str(sc)),
        ))
    return Forecast(period, asof, method, cur, tuple(rows), tuple(lines), unpriced,
                    HEADLINE[method])
