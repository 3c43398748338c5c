"""The weekly review (周会): last week's results, what is off target and why, and what to do next.

:func:`weekly_review` reads a store and assembles a :class:`WeeklyReview`, a frozen value with one
section per topic of the meeting. It only composes the library's calculators — goal progress
(:mod:`salesprocess.goals`), pipeline change and the funnel (:mod:`salesprocess.kpi`), the forecast
(:mod:`salesprocess.forecast`), deal risk (:mod:`salesprocess.risk`), contests
(:mod:`salesprocess.incentives`), feedback (:mod:`salesprocess.feedback`) and to-dos
(:mod:`salesprocess.activities`) — and adds the few sums that tie them together (the quarter's
pipeline waterfall, the risk heat table, suggested actions). Rendering lives in
:mod:`salesprocess.report`.

Every section carries a :class:`SectionStatus`: ``ok``; ``empty`` when there is nothing to show
(no goals for the period, no feedback this week...), with a :attr:`Section.note` code saying what
is missing; ``unavailable`` when the capability is not installed; ``error`` when its calculator
refused the data (the message is kept in :attr:`Section.detail`). A section never disappears.

Everything is computed *as of the end of the week* (the instant the next week starts, in ``tz``):
no later event counts, so a review of a past week shows what the team could have known then.
"""

from __future__ import annotations

import enum
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from .errors import DomainError, PeriodError, SalesProcessError
from .model import Activity, ActivityStatus, DealStatus, Rep, Team
from .money import Money, Rate
from .periods import Period, PeriodKind, require_aware

__all__ = [
    "Action",
    "ActionKind",
    "ChangedDeal",
    "CommitLine",
    "ComplaintLine",
    "ContestBoard",
    "ContestSection",
    "FeedbackSection",
    "ForecastLine",
    "ForecastSection",
    "FunnelSection",
    "FunnelStep",
    "GoalLine",
    "GoalsSection",
    "HeatRow",
    "PipelineSection",
    "ReasonCount",
    "ResponseLine",
    "RiskLine",
    "RiskSection",
    "Section",
    "SectionStatus",
    "StageName",
    "StandingLine",
    "Waterfall",
    "WeekPoint",
    "WeeklyReview",
    "default_contests",
    "funnel_window",
    "review_week",
    "weekly_review",
]

S = TypeVar("S", bound="Section")


class SectionStatus(enum.StrEnum):
    OK = "ok"
    EMPTY = "empty"
    UNAVAILABLE = "unavailable"
    ERROR = "error"


@attrs.frozen
class StageName:
    """A stage as the report names it: ``key``, the process's ``name`` (often Chinese) and its
    translations (``names``: language → name)."""

    key: str
    name: str
    names: tuple[tuple[str, str], ...] = ()

    def display(self, language: str | None = None) -> str:
        for lang, n in self.names:
            if lang == language:
                return n
        return self.name


@attrs.frozen(kw_only=True)
class Section:
    """What every section shares: its ``status``, a ``note`` code when it is not ``ok``
    (``no_goals``, ``no_changes``, ``no_cohort``, ``no_deals``, ``no_open_deals``,
    ``no_participants``, ``no_feedback``, ``no_actions``, ``capability_missing``, ``error``) and a
    ``detail`` (the missing module, the error message)."""

    status: SectionStatus = SectionStatus.OK
    note: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is SectionStatus.OK


# ------------------------------------------------------------------------------------------------
# Goals
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class GoalLine:
    """One goal's progress (:func:`salesprocess.goals.progress`) with the name of its scope."""

    goal_id: str
    metric: str
    scope: str
    """``company``, ``team``, ``rep``, ``region`` or ``product``."""
    scope_id: str | None
    name: str
    target: Money | Decimal
    actual: Any
    attainment: Decimal | None
    elapsed: Decimal
    expected: Money | Decimal
    gap: Money | Decimal
    projection: Any
    projected_attainment: Decimal | None
    status: str
    """A :class:`salesprocess.goals.Status` value: ``ahead``, ``on_track``, ``at_risk``,
    ``behind`` or ``not_started``."""


@attrs.frozen(kw_only=True)
class GoalsSection(Section):
    period: Period | None = None
    elapsed: Decimal | None = None
    lines: tuple[GoalLine, ...] = ()


# ------------------------------------------------------------------------------------------------
# Pipeline change
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class ReasonCount:
    """How many deals changed for one :class:`~salesprocess.kpi.ChangeReason` and their amount
    (at the end of the week; at its start for won and lost), from ``PipelineChange.summary()``."""

    reason: str
    deals: int
    amount: Money | None


@attrs.frozen
class ChangedDeal:
    """A deal listed by :func:`~salesprocess.kpi.pipeline_change`, with its owner's name."""

    deal_id: str
    name: str
    reason: str
    reasons: tuple[str, ...]
    owner_id: str | None
    owner: str
    stage_before: StageName | None
    stage_after: StageName
    amount_before: Money | None
    amount_after: Money | None
    close_before: Any
    close_after: Any
    forecast_before: str | None
    forecast_after: str | None


@attrs.frozen
class Waterfall:
    """The open pipeline expected to close in ``period`` (close date inside it, in the review's
    currency) at the week's start and end, and what moved it:

    ``end = start + new + reopened + pulled_in + changed − won − lost − slipped``

    ``won``/``lost``/``slipped`` are the amounts the deals carried in the period's pipeline at the
    start (positive numbers); ``slipped`` counts deals still open whose close date left the period
    (or that lost their amount); ``pulled_in`` deals whose close date moved into it; ``changed``
    the net amount change of deals in it at both instants. ``start`` and ``end`` equal the weighted
    forecast's ``open_in_period`` at those instants."""

    period: Period
    start: Money
    new: Money
    reopened: Money
    pulled_in: Money
    won: Money
    lost: Money
    slipped: Money
    changed: Money
    end: Money
    deals: tuple[tuple[str, str], ...] = ()
    """(part, deal id) for every deal that moved the period's pipeline."""

    def steps(self) -> list[tuple[str, Money]]:
        """The signed steps between start and end, in chart order."""
        return [("new", self.new), ("reopened", self.reopened), ("pulled_in", self.pulled_in),
                ("won", -self.won), ("lost", -self.lost), ("slipped", -self.slipped),
                ("changed", self.changed)]


@attrs.frozen(kw_only=True)
class PipelineSection(Section):
    start: datetime | None = None
    end: datetime | None = None
    counts: tuple[ReasonCount, ...] = ()
    changes: tuple[ChangedDeal, ...] = ()
    bridge: Mapping[str, Money] = attrs.field(factory=dict)
    """The whole open pipeline's bridge from ``PipelineChange.bridge`` in the review currency:
    start, new, reopened, won, lost, changed, end."""
    waterfall: Waterfall | None = None

    def by_reason(self, reason: str) -> list[ChangedDeal]:
        return [c for c in self.changes if c.reason == reason]


# ------------------------------------------------------------------------------------------------
# Funnel
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class FunnelStep:
    """One step of :func:`~salesprocess.kpi.funnel` (see ``FunnelStage``)."""

    stage: StageName
    reached: int
    advanced: int
    conversion: Decimal | None
    lost: int
    drop_off: Decimal | None
    baseline_drop_off: Decimal | None
    open: int
    median_days: Decimal | None


@attrs.frozen(kw_only=True)
class FunnelSection(Section):
    window: Period | None = None
    process: str | None = None
    cohort: int = 0
    won: int = 0
    overall_conversion: Decimal | None = None
    steps: tuple[FunnelStep, ...] = ()
    bottleneck: StageName | None = None
    bottleneck_excess: Decimal | None = None


# ------------------------------------------------------------------------------------------------
# Forecast
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class WeekPoint:
    """Revenue won in the period from its start to ``end`` (exclusive), for the fan chart."""

    label: str
    end: Any
    won: Money


@attrs.frozen
class ForecastLine:
    """A team or rep row of the Monte Carlo forecast, with the commit category beside it."""

    level: str
    id: str | None
    name: str
    closed: Money
    p10: Money | None
    p50: Money | None
    p90: Money | None
    target: Money | None
    p_target: Rate | None
    forecast_commit: Money | None


@attrs.frozen
class CommitLine:
    """The latest forecast submission of one scope for the period, made by the week's end."""

    scope: str
    submitted_by: str
    at: datetime
    commit: Money
    best_case: Money | None
    note: str


@attrs.frozen(kw_only=True)
class ForecastSection(Section):
    period: Period | None = None
    currency: str | None = None
    trials: int = 0
    closed: Money | None = None
    expected: Money | None = None
    mean: Money | None = None
    p10: Money | None = None
    p50: Money | None = None
    p90: Money | None = None
    target: Money | None = None
    p_target: Rate | None = None
    commit: Money | None = None
    best_case: Money | None = None
    forecast_commit: Money | None = None
    forecast_best_case: Money | None = None
    unpriced: int = 0
    lines: tuple[ForecastLine, ...] = ()
    submissions: tuple[CommitLine, ...] = ()
    weeks: tuple[WeekPoint, ...] = ()
    elapsed: Decimal | None = None


# ------------------------------------------------------------------------------------------------
# Risk
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class RiskLine:
    """An at-risk deal: score, level and the reasons (signal, severity, explanation), worst first."""

    deal_id: str
    name: str
    stage: StageName
    owner_id: str | None
    owner: str
    amount: Money | None
    score: Decimal
    level: str
    reasons: tuple[tuple[str, Decimal, str], ...]


@attrs.frozen
class HeatRow:
    """One owner's open deals: how many fire each signal (``counts``, in the order of
    :attr:`RiskSection.signals`), the mean severity of those that fire (``severity``), and how
    many deals are at or above the section's level (``at_risk``) out of ``open``."""

    owner_id: str | None
    owner: str
    open: int
    at_risk: int
    counts: tuple[int, ...]
    severity: tuple[Decimal | None, ...]


@attrs.frozen(kw_only=True)
class RiskSection(Section):
    level: str = "high"
    open: int = 0
    levels: Mapping[str, int] = attrs.field(factory=dict)
    deals: tuple[RiskLine, ...] = ()
    signals: tuple[str, ...] = ()
    heat: tuple[HeatRow, ...] = ()


# ------------------------------------------------------------------------------------------------
# Contests
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class StandingLine:
    rank: int | None
    participant: str
    name: str
    value: Any
    qualified: bool
    winner: bool
    shared: bool
    note: str


@attrs.frozen
class ContestBoard:
    """One contest's leaderboard for the period holding the week (a :class:`Leaderboard`)."""

    key: str
    name: str
    metric: str
    period: Period
    standings: tuple[StandingLine, ...]
    champion: str | None


@attrs.frozen(kw_only=True)
class ContestSection(Section):
    boards: tuple[ContestBoard, ...] = ()


# ------------------------------------------------------------------------------------------------
# Feedback
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class ResponseLine:
    id: str
    kind: str
    score: int
    at: datetime
    account_id: str | None
    account: str
    deal_id: str | None
    owner: str
    comment: str
    low: bool


@attrs.frozen
class ComplaintLine:
    id: str
    account_id: str
    account: str
    subject: str
    severity: str
    at: datetime
    status: str
    owner: str


@attrs.frozen(kw_only=True)
class FeedbackSection(Section):
    responses: tuple[ResponseLine, ...] = ()
    complaints: tuple[ComplaintLine, ...] = ()
    scores: Mapping[str, Any] = attrs.field(factory=dict)
    """The week's ``csat``, ``nps`` and ``ces`` KPIs (``None`` without responses)."""
    unsolved: int = 0


# ------------------------------------------------------------------------------------------------
# Actions
# ------------------------------------------------------------------------------------------------


class ActionKind(enum.StrEnum):
    FORECAST_GAP = "forecast_gap"
    BEHIND_PACE = "behind_pace"
    CRITICAL_DEAL = "critical_deal"
    NO_NEXT_STEP = "no_next_step"
    OVERDUE_TODOS = "overdue_todos"
    BOTTLENECK = "bottleneck"
    COMPLAINT = "complaint"
    LOW_SCORE = "low_score"


@attrs.frozen
class Action:
    """A suggested action for the week: what (``kind``), for whom (``owner``), about what
    (``subject_id``/``subject``) and the numbers behind it (``values``). ``priority`` 1 is the
    most urgent."""

    kind: ActionKind
    priority: int
    owner_id: str | None
    owner: str
    subject_id: str | None
    subject: str
    values: Mapping[str, Any] = attrs.field(factory=dict)


# ------------------------------------------------------------------------------------------------
# The review
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class WeeklyReview:
    """Everything the weekly meeting looks at (see the module documentation)."""

    week: Period
    period: Period
    start: datetime
    asof: datetime
    tz: tzinfo
    currency: str | None
    scope: tuple[str, ...]
    """The team ids the review is restricted to (empty: the whole company)."""
    scope_names: tuple[str, ...]
    deals: int
    goals: GoalsSection
    pipeline: PipelineSection
    funnel: FunnelSection
    forecast: ForecastSection
    risk: RiskSection
    contests: ContestSection
    feedback: FeedbackSection
    actions: tuple[Action, ...]

    def sections(self) -> list[tuple[str, Section]]:
        """The data sections in report order (suggested actions come last and are a list)."""
        return [("goals", self.goals), ("pipeline", self.pipeline), ("funnel", self.funnel),
                ("forecast", self.forecast), ("risk", self.risk), ("contests", self.contests),
                ("feedback", self.feedback)]


def review_week(asof: datetime | Any, tz: tzinfo = UTC) -> Period:
    """The latest ISO week complete at ``asof`` (an aware instant, or a date: the week before the
    one holding it)."""
    if isinstance(asof, datetime):
        require_aware(asof, "asof")
        asof = asof.astimezone(tz).date()
    return Period.containing(asof, PeriodKind.WEEK).previous()


def default_contests() -> list[Any]:
    """The contests a review shows unless told otherwise: the quarterly champion (季度冠军) on won
    revenue (tie-breaks: win rate, then deals won) and the week's leaderboard on won revenue."""
    from .incentives import Contest

    return [
        Contest("quarterly-champion", "Quarterly champion 季度冠军", "won_revenue",
                period=PeriodKind.QUARTER, tie_break=("win_rate", "deals_won")),
        Contest("weekly-leaderboard", "Weekly leaderboard 本周排行", "won_revenue",
                period=PeriodKind.WEEK, tie_break=("deals_won",)),
    ]


def weekly_review(
    store: Any,
    week: Period | str,
    *,
    team: str | Sequence[str] | None = None,
    period: Period | str | None = None,
    tz: tzinfo = UTC,
    currency: str | None = None,
    contests: Sequence[Any] | None = None,
    risk_level: str = "high",
    funnel_weeks: int = 13,
    trials: int = 10_000,
    seed: int = 0,
    app: Any = None,
    data: Any = None,
) -> WeeklyReview:
    """Assemble the review of ``week`` (a week :class:`Period` or a label such as ``2026-W40``).

    - ``team``: restrict the review to the deals owned by the reps of these teams (and their
      sub-teams), by the deals' current owners; goals, contests, feedback and actions follow.
    - ``period``: the period goals, the forecast, the waterfall and the quarterly contests look at
      (default: the quarter holding the week's last day).
    - ``currency``: the currency of the forecast and the waterfall when deals are in several.
    - ``contests``: :class:`~salesprocess.incentives.Contest` values (default
      :func:`default_contests`); each runs for its kind of period holding the week's last day.
    - ``risk_level``: the lowest risk level listed among the at-risk deals.
    - ``funnel_weeks``: the funnel's cohort is the deals created in the weeks ending with the
      reviewed one; their drop-off is compared with the deals created before.
    - ``trials``/``seed``: the Monte Carlo forecast's.
    - ``app``: a :class:`~salesprocess.SalesProcess` whose plugin KPIs and risk signals to use.
    - ``data``: a :class:`~salesprocess.kpi.Dataset` already loaded from ``store``.
    """
    from .kpi import Dataset

    wk = _week(week)
    if funnel_weeks < 1:
        raise DomainError(f"funnel_weeks must be at least 1, got {funnel_weeks}")
    per = _period(period, wk)
    start, end = wk.start_instant(tz), wk.end_instant(tz)
    full = data if data is not None else Dataset.from_store(store)
    teams = _team_ids(team, full)
    ds, members = _scoped(full, teams)
    cur = _currency(ds, currency)
    names = _Names(ds)
    registry = getattr(app, "kpis", None)

    goals, goal_list = _guard(GoalsSection, lambda: _goals(store, ds, per, end, tz, teams, members,
                                                           names, registry))
    pipeline = _guard(PipelineSection, lambda: _pipeline(ds, start, end, per, tz, cur, names))
    fnl = _guard(FunnelSection, lambda: _funnel(ds, wk, funnel_weeks, end, tz))
    fc = _guard(ForecastSection, lambda: _forecast(store, ds, per, end, tz, cur, teams, goal_list,
                                                    trials, seed))
    risk, report = _guard(RiskSection, lambda: _risk(ds, end, tz, risk_level, names, app))
    board = _guard(ContestSection, lambda: _contests(ds, wk, end, tz, contests, members, registry))
    fb = _guard(FeedbackSection, lambda: _feedback(store, ds, start, end, tz, teams, members, names))
    actions = _actions(full.activities, cur, goals, fnl, fc, risk, report, fb, end, members, names)
    return WeeklyReview(
        wk, per, start, end, tz, cur, tuple(teams),
        tuple(names.team(t) for t in teams), len(ds.deals),
        goals, pipeline, fnl, fc, risk, board, fb, tuple(actions),
    )


# ------------------------------------------------------------------------------------------------
# Plumbing
# ------------------------------------------------------------------------------------------------


def _week(week: Period | str) -> Period:
    if isinstance(week, str):
        week = Period.parse(week)
    if week.kind is not PeriodKind.WEEK:
        raise PeriodError(f"a weekly review needs a week such as 2026-W40, got {week.label!r}")
    return week


def _period(period: Period | str | None, wk: Period) -> Period:
    if period is None:
        return Period.containing(wk.last_day, PeriodKind.QUARTER)
    if isinstance(period, str):
        period = Period.parse(period)
    if not period.overlaps(wk):
        raise PeriodError(f"period {period.label} does not overlap week {wk.label}")
    return period


def _guard(cls: type[S], build: Callable[[], Any]) -> Any:
    """Run one section's assembly; a missing capability or a refusal becomes the section's status
    instead of stopping the whole review."""
    try:
        return build()
    except ImportError as e:
        sec: Any = cls(status=SectionStatus.UNAVAILABLE, note="capability_missing",
                       detail=getattr(e, "name", None) or str(e))
    except SalesProcessError as e:
        sec = cls(status=SectionStatus.ERROR, note="error", detail=str(e))
    return (sec, None) if cls in (GoalsSection, RiskSection) else sec


def _team_ids(team: str | Sequence[str] | None, data: Any) -> list[str]:
    if team is None:
        return []
    wanted = [team] if isinstance(team, str) else list(team)
    known: dict[str, Team] = data.teams
    missing = [t for t in wanted if t not in known]
    if missing:
        from .errors import NotFoundError

        raise NotFoundError("team", ", ".join(missing))
    return sorted(dict.fromkeys(wanted))


def _descendants(teams: Sequence[str], known: Mapping[str, Team]) -> set[str]:
    children: dict[str | None, list[str]] = defaultdict(list)
    for team in known.values():
        children[team.parent_id].append(team.id)
    out: set[str] = set()
    todo = list(teams)
    while todo:
        t = todo.pop()
        if t in out:
            continue
        out.add(t)
        todo.extend(children.get(t, []))
    return out


def _scoped(data: Any, teams: Sequence[str]) -> tuple[Any, set[str] | None]:
    """The dataset restricted to the deals of the teams' reps (all of it without teams)."""
    from .kpi import Dataset

    if not teams:
        return data, None
    all_teams = _descendants(teams, data.teams)
    members = {r.id for r in data.reps.values() if r.team_id in all_teams}
    deals = [d for d in data.deals if d.owner_id in members]
    ids = {d.id for d in deals}
    acts = [a for a in data.activities if a.deal_id in ids or (a.deal_id is None and a.owner_id in members)]
    sub = Dataset(deals, reps=data.reps.values(), teams=data.teams.values(),
                  accounts=data.accounts.values(), products=data.products.values(), activities=acts,
                  processes=data.processes.values(), inputs=data.inputs)
    return sub, members


def _currency(data: Any, given: str | None) -> str | None:
    found = sorted({d.amount.currency for d in data.deals if d.amount is not None})
    if given is not None:
        return given
    if len(found) > 1:
        raise DomainError(f"deals are in several currencies ({', '.join(found)}): "
                          "say which one the review shows (currency=...)")
    return found[0] if found else None


class _Names:
    def __init__(self, data: Any) -> None:
        self.reps: Mapping[str, Rep] = data.reps
        self.teams: Mapping[str, Team] = data.teams
        self.accounts: Mapping[str, Any] = data.accounts
        self.processes: Mapping[str, Any] = data.processes
        self._stages: dict[tuple[str, str], StageName] = {}

    def rep(self, rep_id: str | None) -> str:
        if rep_id is None:
            return ""
        r = self.reps.get(rep_id)
        return r.name if r is not None and r.name else rep_id

    def team(self, team_id: str | None) -> str:
        if team_id is None:
            return ""
        t = self.teams.get(team_id)
        return t.name if t is not None and t.name else team_id

    def account(self, account_id: str | None) -> str:
        if account_id is None:
            return ""
        a = self.accounts.get(account_id)
        return getattr(a, "name", None) or account_id

    def stage(self, process: str | None, key: str) -> StageName:
        k = (process or "", key)
        s = self._stages.get(k)
        if s is None:
            st = None
            mine = self.processes.get(process or "")
            procs = [mine] if mine is not None else list(self.processes.values())
            for p in procs:
                if p.has_stage(key):
                    st = p.stage(key)
                    break
            s = StageName(key, st.name, tuple(st.names)) if st is not None else StageName(key, key)
            self._stages[k] = s
        return s


# ------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------

_SCOPE_ORDER = {"company": 0, "region": 1, "team": 2, "product": 3, "rep": 4}


def _goals(store: Any, data: Any, per: Period, end: datetime, tz: tzinfo, teams: Sequence[str],
           members: set[str] | None, names: _Names, registry: Any) -> tuple[GoalsSection, list[Any]]:
    from .goals import load_goals, progress

    scope_teams = _descendants(teams, data.teams) if teams else None
    chosen = []
    for g in load_goals(store):
        if g.period != per:
            continue
        kind, sid = g.scope.kind.value, g.scope.id
        if members is not None and not (
            (kind == "rep" and sid in members) or (kind == "team" and scope_teams and sid in scope_teams)
        ):
            continue
        chosen.append(g)
    if not chosen:
        return GoalsSection(status=SectionStatus.EMPTY, note="no_goals", period=per), []
    lines = []
    elapsed = None
    actuals = _actuals(chosen, data, end, tz, registry)
    for g in chosen:
        p = progress(g, None, end, tz=tz, registry=registry, value=actuals[g.id])
        elapsed = p.elapsed
        kind, sid = g.scope.kind.value, g.scope.id
        name = names.rep(sid) if kind == "rep" else names.team(sid) if kind == "team" else (sid or "")
        lines.append(GoalLine(g.id, g.metric, kind, sid, name or g.name or g.id, p.target, p.actual,
                              p.attainment, p.elapsed, p.expected, p.gap, p.projection,
                              p.projected_attainment, p.status.value))
    lines.sort(key=lambda x: (_SCOPE_ORDER.get(x.scope, 9), x.metric, x.name, x.goal_id))
    return GoalsSection(period=per, elapsed=elapsed, lines=tuple(lines)), chosen


def _actuals(goals: Sequence[Any], data: Any, end: datetime, tz: tzinfo, registry: Any) -> dict[str, Any]:
    """Each goal's actual (what :func:`salesprocess.goals.actual` gives), one KPI query per metric,
    period and kind of scope instead of one per goal."""
    from .kpi import compute

    groups: dict[tuple[str, Period, tuple[str, ...]], list[Any]] = defaultdict(list)
    for g in goals:
        groups[(g.metric, g.period, tuple(g.scope.dimensions()))].append(g)
    out: dict[str, Any] = {}
    for (metric, per, dims), gs in groups.items():
        table = compute(data, [metric], by=dims, window=per, asof=end, tz=tz, registry=registry)
        for g in gs:
            key = g.scope.dimensions()
            row = next((r for r in table.rows if all(r.key.get(k) == v for k, v in key.items())), None)
            out[g.id] = row.values[metric] if row is not None else _empty(table, metric)
    return out


def _empty(table: Any, metric: str) -> Any:
    """A scope without records: the KPI of nothing (an empty sum in the report currency)."""
    row = table.rows[0] if table.rows else None
    v = row.values[metric] if row is not None else None
    if isinstance(v, Money):
        return Money.zero(v.currency)
    if isinstance(v, int):
        return 0
    return None


def _in_period(state: Any, per: Period, cur: str | None, today: Any) -> Decimal:
    if (
        state is None
        or state.status is not DealStatus.OPEN
        or state.amount is None
        or state.amount.currency != cur
        or state.close_date is None
        or state.close_date not in per
        or today >= per.end
    ):
        return Decimal(0)
    return Decimal(state.amount.amount)


def _waterfall(data: Any, start: datetime, end: datetime, per: Period, tz: tzinfo,
               cur: str) -> Waterfall:
    view = data.view(end)
    parts = dict.fromkeys(("start", "new", "reopened", "pulled_in", "won", "lost", "slipped",
                           "changed", "end"), Decimal(0))
    moved: list[tuple[str, str]] = []
    t0, t1 = start.astimezone(tz).date(), end.astimezone(tz).date()
    for d in view.deals:
        b = view.state_at(d, start, True)
        a = view.state_at(d, end, True)
        s = _in_period(b, per, cur, t0)
        e = _in_period(a, per, cur, t1)
        parts["start"] += s
        parts["end"] += e
        if (not s and not e) or a is None:
            continue  # never in the period's pipeline
        b_open = b is not None and b.status is DealStatus.OPEN
        if a.status is DealStatus.WON and (b is None or b_open):
            part, amount = "won", s
        elif a.status is DealStatus.LOST and (b is None or b_open):
            part, amount = "lost", s
        elif b is None:
            part, amount = "new", e
        elif not b_open and a.status is DealStatus.OPEN:
            part, amount = "reopened", e
        elif not b_open:
            continue  # closed at both: never in the pipeline
        elif s and e:
            part, amount = "changed", e - s
        elif s:
            part, amount = "slipped", s
        else:
            part, amount = "pulled_in", e
        if amount == 0:
            continue
        parts[part] += amount
        moved.append((part, d.id))
    m = {k: Money(v, cur).round("ROUND_HALF_EVEN") for k, v in parts.items()}
    return Waterfall(per, m["start"], m["new"], m["reopened"], m["pulled_in"], m["won"], m["lost"],
                     m["slipped"], m["changed"], m["end"], tuple(sorted(moved)))


def _pipeline(data: Any, start: datetime, end: datetime, per: Period, tz: tzinfo, cur: str | None,
              names: _Names) -> PipelineSection:
    from .kpi import pipeline_change

    pc = pipeline_change(data, start, end)
    procs = {d.id: d.process for d in data.deals}
    counts = []
    for row in pc.summary():
        amounts = [m for m in row["amount"] if m.currency == cur]
        counts.append(ReasonCount(row["reason"], row["deals"],
                                  amounts[0] if amounts else Money.zero(cur) if cur else None))
    changes = []
    for c in pc.changes:
        b, a = c.before, c.after
        p = procs.get(c.deal_id)
        changes.append(ChangedDeal(
            c.deal_id, c.name, c.reason.value, tuple(r.value for r in c.reasons), a.owner_id,
            names.rep(a.owner_id), names.stage(p, b.stage) if b else None,
            names.stage(p, a.stage), b.amount if b else None, a.amount, b.close_date if b else None, a.close_date,
            _val(b.forecast_category) if b else None, _val(a.forecast_category)))
    bridge = dict(pc.bridge.get(cur, {})) if cur else {}
    wf = _waterfall(data, start, end, per, tz, cur) if cur else None
    status = SectionStatus.OK if changes or (wf and (wf.start or wf.end)) else SectionStatus.EMPTY
    return PipelineSection(status=status, note=None if status is SectionStatus.OK else "no_changes",
                           start=start, end=end, counts=tuple(counts), changes=tuple(changes),
                           bridge=bridge, waterfall=wf)


def _val(x: Any) -> str | None:
    return None if x is None else str(getattr(x, "value", x))


def funnel_window(week: Period, weeks: int) -> Period:
    """The funnel's cohort window: the ``weeks`` weeks ending with ``week``."""
    return Period(week.end - timedelta(weeks=weeks), week.end)


def _funnel(data: Any, wk: Period, weeks: int, end: datetime, tz: tzinfo) -> FunnelSection:
    from .kpi import funnel

    window = funnel_window(wk, weeks)
    if not data.deals:
        return FunnelSection(status=SectionStatus.EMPTY, note="no_deals", window=window)
    processes = Counter(d.process for d in data.deals)
    process = processes.most_common(1)[0][0]
    fs = funnel(data, process=process, window=window, asof=end, tz=tz)
    if not fs or fs[0].cohort == 0:
        return FunnelSection(status=SectionStatus.EMPTY, note="no_cohort", window=window,
                             process=process)
    f = fs[0]
    names = _Names(data)
    steps = tuple(
        FunnelStep(names.stage(process, s.stage), s.reached, s.advanced, s.conversion, s.lost,
                   s.drop_off, s.baseline_drop_off, s.open, s.median_days)
        for s in f.stages
    )
    bn = names.stage(process, f.bottleneck) if f.bottleneck else None
    return FunnelSection(window=window, process=process, cohort=f.cohort, won=f.won,
                         overall_conversion=f.overall_conversion, steps=steps, bottleneck=bn,
                         bottleneck_excess=f.bottleneck_excess)


def _forecast(store: Any, data: Any, per: Period, end: datetime, tz: tzinfo, cur: str | None,
              teams: Sequence[str], goals: Sequence[Any], trials: int, seed: int) -> ForecastSection:
    from .forecast import forecast, load_submissions
    from .goals import elapsed
    from .kpi import Target, compute

    if cur is None:
        return ForecastSection(status=SectionStatus.EMPTY, note="no_deals", period=per)
    targets = [Target.from_goal(g) for g in goals
               if g.metric == "won_revenue" and isinstance(g.target, Money) and g.target.currency == cur]
    if teams:
        targets = [t for t in targets if t.scope]  # a company goal is not this scope's
        by_team = {dict(t.scope).get("team"): t.value for t in targets if dict(t.scope).get("team")}
        parts = [_team_target(t, by_team, data.teams) for t in teams]
        if parts and all(isinstance(x, Money) for x in parts):
            targets.append(Target(per, sum((x for x in parts if x is not None), Money.zero(cur))))
    mc = forecast(data, per, asof=end, method="montecarlo", tz=tz, currency=cur, targets=targets,
                  adjustments=(), trials=trials, seed=seed)
    cat = forecast(data, per, asof=end, method="categories", tz=tz, currency=cur, targets=targets,
                   adjustments=())
    co, cc = mc.company, cat.company
    sim = co.simulation
    cat_rows = {(r.level, r.id): r for r in cat.rows}
    lines = []
    for r in mc.rows:
        if r.level == "company":
            continue
        s = r.simulation
        crow = cat_rows.get((r.level, r.id))
        lines.append(ForecastLine(r.level, r.id, r.name, r.values["closed"],
                                  r.values.get("p10"), r.values.get("p50"), r.values.get("p90"),
                                  r.target, s.p_target if s is not None else None,
                                  crow.values.get("forecast_commit") if crow else None))
    subs: dict[str, Any] = {}
    scope_teams = _descendants(teams, data.teams) if teams else None
    members = {r.id for r in data.reps.values() if scope_teams and r.team_id in scope_teams}
    for sub in load_submissions(store):
        if sub.period != per or sub.at > end or sub.commit.currency != cur:
            continue
        if scope_teams is not None and not (
            (sub.scope.level == "team" and sub.scope.id in scope_teams)
            or (sub.scope.level == "rep" and sub.scope.id in members)
        ):
            continue
        key = str(sub.scope)
        if key not in subs or (sub.at, sub.id) > (subs[key].at, subs[key].id):
            subs[key] = sub
    commits = tuple(CommitLine(str(x.scope), x.submitted_by, x.at, x.commit, x.best_case, x.note)
                    for x in sorted(subs.values(), key=lambda x: (_SCOPE_ORDER.get(x.scope.level, 9),
                                                                 str(x.scope))))
    weekly = compute(data, ["won_revenue"], period="week", window=per, asof=end, tz=tz,
                     currency=cur, where={"currency": cur})
    won_in = {r.key["period"]: r.values["won_revenue"] for r in weekly.rows}
    weeks = []
    last = min(end.astimezone(tz).date(), per.end)
    running = Money.zero(cur)
    for w in per.split(PeriodKind.WEEK):
        if w.end > last:
            break
        v = won_in.get(w.label)  # the KPI table labels the clipped edge weeks as split() does
        running = running + v if isinstance(v, Money) else running
        weeks.append(WeekPoint(w.label, w.end, running))
    return ForecastSection(
        period=per, currency=cur, trials=sim.trials if sim else 0, closed=co.values["closed"],
        expected=co.values.get("expected"), mean=co.values.get("mean"), p10=co.values.get("p10"),
        p50=co.values.get("p50"), p90=co.values.get("p90"), target=co.target,
        p_target=sim.p_target if sim else None, commit=cc.values.get("commit"),
        best_case=cc.values.get("best_case"), forecast_commit=cc.values.get("forecast_commit"),
        forecast_best_case=cc.values.get("forecast_best_case"), unpriced=mc.unpriced,
        lines=tuple(lines), submissions=commits, weeks=tuple(weeks),
        elapsed=elapsed(per, end, tz, "linear", None),
    )


def _team_target(team: str, goals: Mapping[str | None, Any], teams: Mapping[str, Team]) -> Money | None:
    """A team's won-revenue target: its own goal, else the sum of its sub-teams' (when each has
    one)."""
    own = goals.get(team)
    if isinstance(own, Money):
        return own
    children = [t.id for t in teams.values() if t.parent_id == team]
    if not children:
        return None
    parts = [_team_target(c, goals, teams) for c in children]
    if not all(isinstance(x, Money) for x in parts):
        return None
    return sum((x for x in parts if x is not None), Money.zero(next(x for x in parts if x).currency))


def _risk(data: Any, end: datetime, tz: tzinfo, level: str, names: _Names,
          app: Any) -> tuple[RiskSection, Any]:
    from .risk import LEVELS, assess

    if level not in LEVELS:
        raise DomainError(f"risk_level must be one of {', '.join(LEVELS)}, got {level!r}")
    signals = getattr(app, "risk_signals", None)
    report = assess(data, asof=end, tz=tz, customers=False, signals=signals)
    if not report.deals:
        return RiskSection(status=SectionStatus.EMPTY, note="no_open_deals", level=level), report
    floor = LEVELS.index(level)
    procs = {d.id: d.process for d in data.deals}
    levels = Counter(d.level for d in report.deals)
    fired: list[str] = []
    per_owner: dict[str | None, dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    open_by: Counter[str | None] = Counter()
    risky_by: Counter[str | None] = Counter()
    lines = []
    for d in report.deals:
        open_by[d.owner_id] += 1
        risky = LEVELS.index(d.level) >= floor
        for f in d.findings:
            if f.signal not in fired:
                fired.append(f.signal)
            per_owner[d.owner_id][f.signal].append(f.severity)
        if not risky:
            continue
        risky_by[d.owner_id] += 1
        reasons = tuple(sorted(((f.signal, f.severity, f.explanation) for f in d.findings),
                               key=lambda x: -x[1]))
        lines.append(RiskLine(d.deal_id, d.name, names.stage(procs.get(d.deal_id), d.stage),
                              d.owner_id, names.rep(d.owner_id), d.amount, d.score, d.level,
                              reasons))
    lines.sort(key=lambda x: (-x.score, -(x.amount.amount if x.amount else 0), x.deal_id))
    order = _signal_order()
    sigs = tuple(sorted(fired, key=lambda s: (order.get(s, len(order)), s)))
    heat = []
    for owner in sorted(open_by, key=lambda o: (-risky_by[o], names.rep(o), o or "")):
        counts = tuple(len(per_owner[owner].get(s, ())) for s in sigs)
        sev = tuple(_mean(per_owner[owner].get(s, ())) for s in sigs)
        heat.append(HeatRow(owner, names.rep(owner) or "—", open_by[owner], risky_by[owner],
                            counts, sev))
    return RiskSection(level=level, open=len(report.deals),
                       levels={lv: levels.get(lv, 0) for lv in LEVELS}, deals=tuple(lines),
                       signals=sigs, heat=tuple(heat)), report


def _signal_order() -> dict[str, int]:
    from .risk import BUILTIN_DEAL_SIGNALS

    return {s: i for i, s in enumerate(BUILTIN_DEAL_SIGNALS)}


def _mean(xs: Sequence[Decimal]) -> Decimal | None:
    if not xs:
        return None
    return (sum(xs, Decimal(0)) / len(xs)).quantize(Decimal("0.01"))


def _contests(data: Any, wk: Period, end: datetime, tz: tzinfo, contests: Sequence[Any] | None,
              members: set[str] | None, registry: Any) -> ContestSection:
    from .incentives import run_contest

    chosen = list(contests) if contests is not None else default_contests()
    owners = {d.owner_id for d in data.deals if d.owner_id}
    people = [r for r in data.reps.values()
              if r.id in owners and (members is None or r.id in members)]
    teams = list(data.teams.values())
    if not chosen or not people:
        return ContestSection(status=SectionStatus.EMPTY, note="no_participants")
    boards = []
    for c in chosen:
        per = Period.containing(wk.last_day, c.period)
        parts: Sequence[Any] = people if c.scope == "individual" else teams
        if c.scope == "individual" and c.roles:
            parts = [r for r in people if r.role in c.roles]
        lb = run_contest(c, data, per, participants=parts, asof=end, tz=tz, registry=registry)
        standings = tuple(
            StandingLine(s.rank, s.participant, s.name or s.participant, s.value, s.qualified,
                         s.winner, s.shared, "; ".join(s.reasons))
            for s in lb.standings
        )
        champ = lb.champion
        boards.append(ContestBoard(c.key, c.name, c.metric, per, standings,
                                   champ.participant if champ else None))
    return ContestSection(boards=tuple(boards))


def _feedback(store: Any, data: Any, start: datetime, end: datetime, tz: tzinfo,
              teams: Sequence[str], members: set[str] | None, names: _Names) -> FeedbackSection:
    from .feedback import LOW_SCORES, complaints, responses, unsolved
    from .kpi import KpiInputs, compute

    deal_ids = {d.id for d in data.deals}
    owners = {d.id: d.owner_id for d in data.deals}

    def mine(owner: str | None, deal: str | None, account: str | None) -> bool:
        if members is None:
            return True
        if owner in members or (deal is not None and deal in deal_ids):
            return True
        acc = data.accounts.get(account) if account else None
        return getattr(acc, "owner_id", None) in members

    resp = []
    week_resp = []
    for r in responses(store, asof=end):
        x = r.response
        if not mine(x.owner_id, x.deal_id, x.account_id):
            continue
        resp.append(x)
        if x.at < start:
            continue
        owner = x.owner_id or owners.get(x.deal_id or "")
        week_resp.append(ResponseLine(x.id, x.kind.value, x.score, x.at, x.account_id,
                                      names.account(x.account_id), x.deal_id, names.rep(owner),
                                      r.comment, r.is_low()))
    comp = []
    for c in complaints(store, asof=end):
        if c.at < start or not mine(c.owner_id, c.deal_id, c.account_id):
            continue
        st = c.status_at(end)
        comp.append(ComplaintLine(c.id, c.account_id, names.account(c.account_id), c.subject,
                                  c.severity, c.at, st.value if st else "", names.rep(c.owner_id)))
    open_problems = [p for p in unsolved(store, asof=end, thresholds=LOW_SCORES)
                     if mine(p.owner_id, None, p.account_id)]
    if not week_resp and not comp:
        return FeedbackSection(status=SectionStatus.EMPTY, note="no_feedback",
                               unsolved=len(open_problems))
    wk = Period(start.astimezone(tz).date(), end.astimezone(tz).date())
    table = compute(data.with_inputs(KpiInputs(surveys=resp)), ["csat", "nps", "ces"], window=wk,
                    asof=end, tz=tz)
    scores = {m: table.value(m) for m in ("csat", "nps", "ces")} if table.rows else {}
    return FeedbackSection(responses=tuple(week_resp), complaints=tuple(comp), scores=scores,
                           unsolved=len(open_problems))


_PRIORITY = {
    ActionKind.FORECAST_GAP: 1, ActionKind.BEHIND_PACE: 1, ActionKind.CRITICAL_DEAL: 1,
    ActionKind.COMPLAINT: 1, ActionKind.NO_NEXT_STEP: 2, ActionKind.OVERDUE_TODOS: 2,
    ActionKind.LOW_SCORE: 2, ActionKind.BOTTLENECK: 3,
}


def _actions(activities: Sequence[Activity], cur: str | None, goals: GoalsSection, fnl: FunnelSection, fc: ForecastSection,
             risk: RiskSection, report: Any, fb: FeedbackSection, end: datetime,
             members: set[str] | None, names: _Names) -> list[Action]:
    out: list[Action] = []

    def add(kind: ActionKind, owner: str | None, sid: str | None, subject: str, **values: Any) -> None:
        out.append(Action(kind, _PRIORITY[kind], owner, names.rep(owner), sid, subject, values))

    if fc.ok and fc.target is not None and fc.p50 is not None and fc.p50 < fc.target:
        add(ActionKind.FORECAST_GAP, None, None, fc.period.label if fc.period else "",
            target=fc.target, p50=fc.p50, gap=fc.target - fc.p50, p_target=fc.p_target)
    for g in goals.lines:
        if g.status in ("behind", "at_risk") and g.scope in ("rep", "team"):
            owner = g.scope_id if g.scope == "rep" else _manager(names, g.scope_id)
            add(ActionKind.BEHIND_PACE, owner, g.scope_id, g.name, status=g.status,
                attainment=g.attainment, elapsed=g.elapsed, gap=g.gap, metric=g.metric)
    if report is not None:
        crit = [d for d in report.deals if d.level == "critical"]
        for d in sorted(crit, key=lambda d: (-d.score, d.deal_id)):
            add(ActionKind.CRITICAL_DEAL, d.owner_id, d.deal_id, d.name, score=d.score,
                amount=d.amount, signals=tuple(f.signal for f in d.findings))
        none_next: dict[str | None, list[Any]] = defaultdict(list)
        for d in report.deals:
            if any(f.signal == "no_next_step" for f in d.findings):
                none_next[d.owner_id].append(d)
        for owner, ds in none_next.items():
            ds.sort(key=lambda d: (-(d.amount.amount if d.amount else 0), d.deal_id))
            priced = [d.amount for d in ds if d.amount is not None and d.amount.currency == cur]
            total = sum(priced, Money.zero(cur)) if cur else None
            add(ActionKind.NO_NEXT_STEP, owner, None, names.rep(owner), deals=len(ds),
                amount=total, top=tuple((d.deal_id, d.name) for d in ds[:3]))
    # Overdue to-dos: planned activities due before the week's end (what
    # salesprocess.activities.overdue lists), read from the data already loaded.
    late: Counter[str | None] = Counter()
    for act in activities:
        if act.status is ActivityStatus.PLANNED and act.at < end:
            if members is None or act.owner_id in members:
                late[act.owner_id] += 1
    for owner, n in late.items():
        add(ActionKind.OVERDUE_TODOS, owner, None, names.rep(owner), todos=n)
    if fnl.ok and fnl.bottleneck is not None:
        step = next(s for s in fnl.steps if s.stage.key == fnl.bottleneck.key)
        add(ActionKind.BOTTLENECK, None, fnl.bottleneck.key, fnl.bottleneck.name,
            stage=fnl.bottleneck, drop_off=step.drop_off, baseline=step.baseline_drop_off,
            excess=fnl.bottleneck_excess)
    for c in fb.complaints:
        if c.status in ("open", "in_progress"):
            out.append(Action(ActionKind.COMPLAINT, 1, None, c.owner, c.id, c.subject or c.account,
                              {"account": c.account, "severity": c.severity}))
    for r in fb.responses:
        if r.low:
            out.append(Action(ActionKind.LOW_SCORE, 2, None, r.owner, r.id, r.account,
                              {"kind": r.kind, "score": r.score, "deal": r.deal_id}))
    kind_order = list(ActionKind)

    def key(a: Action) -> tuple[Any, ...]:
        amount = a.values.get("amount")
        size = -(amount.amount if isinstance(amount, Money) else 0)
        return (a.priority, kind_order.index(a.kind), size, a.owner, a.subject_id or "")

    out.sort(key=key)
    return out


def _manager(names: _Names, team_id: str | None) -> str | None:
    t = names.teams.get(team_id or "")
    return t.manager_id if t is not None else None

