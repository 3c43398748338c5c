"""The built-in KPIs. :func:`builtin_registry` returns a fresh registry holding them.

Each calculator is pure and reads one result row through :class:`~salesprocess.kpi.engine.Cell`.
The reference page ``docs/reference/kpis.md`` lists every KPI with its formula; it is generated
from the ``definition`` and ``formula`` given here.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from salesprocess.errors import CurrencyMismatchError, KpiError, Problem
from salesprocess.model import Deal, DealStatus
from salesprocess.money import Money

from . import stats
from .engine import Cell
from .funnel import stage_ranks
from .inputs import SurveyKind
from .registry import Basis, Direction, Kpi, KpiRegistry, Unit, Value

__all__ = ["BUILTIN_KPIS", "builtin_registry"]

HALF = Decimal("0.5")
P90 = Decimal("0.9")


def _amounts(deals: Sequence[Deal]) -> list[Money]:
    return [d.amount for d in deals if d.amount is not None]


def _cycle_micros(deals: Sequence[Deal]) -> list[int]:
    return [
        stats.micros_between(d.created_at, d.closed_at) for d in deals if d.closed_at is not None
    ]


def _mean_days(micros: Sequence[int]) -> Decimal | None:
    m = stats.mean(micros)
    return None if m is None else stats.days(m)


def _pct_days(micros: Sequence[int], p: Decimal) -> Decimal | None:
    v = stats.percentile(sorted(micros), p)
    return None if v is None else stats.days(v)


# --- outcomes (closed in the window) -------------------------------------------------------------


def won_revenue(c: Cell) -> Value:
    return c.sum_money(_amounts(c.won()), "won amounts")


def deals_won(c: Cell) -> Value:
    return len(c.won())


def deals_lost(c: Cell) -> Value:
    return len(c.lost())


def deals_closed(c: Cell) -> Value:
    return len(c.closed())


def win_rate(c: Cell) -> Value:
    closed = c.closed()
    won = sum(1 for d in closed if d.status is DealStatus.WON)
    return stats.div(won, len(closed))


def avg_won_deal_size(c: Cell) -> Value:
    return c.mean_money(_amounts(c.won()), "won amounts")


def median_won_deal_size(c: Cell) -> Value:
    return c.percentile_money(_amounts(c.won()), HALF, "won amounts")


def mean_cycle_days(c: Cell) -> Value:
    return _mean_days(_cycle_micros(c.won()))


def median_cycle_days(c: Cell) -> Value:
    return _pct_days(_cycle_micros(c.won()), HALF)


def p90_cycle_days(c: Cell) -> Value:
    return _pct_days(_cycle_micros(c.won()), P90)


def mean_cycle_days_closed(c: Cell) -> Value:
    return _mean_days(_cycle_micros(c.closed()))


def median_cycle_days_closed(c: Cell) -> Value:
    return _pct_days(_cycle_micros(c.closed()), HALF)


def p90_cycle_days_closed(c: Cell) -> Value:
    return _pct_days(_cycle_micros(c.closed()), P90)


# --- creation ------------------------------------------------------------------------------------


def new_deals(c: Cell) -> Value:
    return len(c.created())


def lead_response_time(c: Cell) -> Value:
    micros = []
    for d in c.created():
        first = c.first_activity(d)
        if first is not None:
            micros.append(stats.micros_between(d.created_at, first))
    return _pct_days(micros, HALF)


# --- snapshots -----------------------------------------------------------------------------------


def open_pipeline_count(c: Cell) -> Value:
    return len(c.open_at_end())


def open_pipeline_value(c: Cell) -> Value:
    return c.sum_money([s.amount for s in c.open_at_end() if s.amount is not None], "open amounts")


def weighted_pipeline_value(c: Cell) -> Value:
    parts = [
        Money(stats.CTX.multiply(s.amount.amount, s.probability.value), s.amount.currency)
        if s.probability is not None
        else Money.zero(s.amount.currency)
        for s in c.open_at_end()
        if s.amount is not None
    ]
    total = c.sum_money(parts, "weighted amounts")
    return None if total is None else stats.round_money(total.amount, total.currency)


def _remaining_target(c: Cell) -> Money | None:
    target = c.target("won_revenue")
    if not isinstance(target, Money):
        return None
    won = c.sum_money(_amounts(c.won()), "won amounts")
    remaining = target - won if won is not None else target
    return remaining if remaining.amount > 0 else None


def pipeline_coverage(c: Cell) -> Value:
    remaining = _remaining_target(c)
    if remaining is None:
        return None
    w = c.window
    pipe = [
        s.amount
        for s in c.open_at_end()
        if s.amount is not None and (w is None or (s.close_date is not None and s.close_date in w))
    ]
    total = c.sum_money(pipe, "open amounts")
    if total is None:
        return None
    _same(c, total, remaining)
    return stats.div(total.amount, remaining.amount)


def _same(c: Cell, a: Money, b: Money) -> None:
    if a.currency != b.currency:
        raise CurrencyMismatchError(
            a.currency, b.currency, f"compare ({c.metric} for {c.describe()}; group by currency)"
        )


def velocity_from(
    n_open: int, n_won: int, n_closed: int, won_total: Money | None, won_cycle_micros: int
) -> Money | None:
    """Pipeline velocity from its parts (shared with the SQL pushdown):
    ``n_open × (n_won / n_closed) × (won_total / n_won) / (won_cycle_micros / n_won / µs per day)``,
    rounded half-even to minor units; ``None`` when nothing was won or closed."""
    if not n_closed or not n_won or won_total is None or won_cycle_micros == 0:
        return None
    num = stats.CTX.multiply(
        stats.CTX.multiply(Decimal(n_open * n_won), won_total.amount),
        Decimal(stats.MICROS_PER_DAY),
    )
    den = stats.CTX.multiply(Decimal(n_closed), Decimal(won_cycle_micros))
    return stats.round_money(stats.CTX.divide(num, den), won_total.currency)


def pipeline_velocity(c: Cell) -> Value:
    closed = c.closed()
    won = [d for d in closed if d.status is DealStatus.WON]
    total = c.sum_money(_amounts(won), "won amounts")
    return velocity_from(len(c.open_at_end()), len(won), len(closed), total,
                         sum(_cycle_micros(won)))


def quota_attainment(c: Cell) -> Value:
    target = c.target("won_revenue")
    if not isinstance(target, Money) or target.amount == 0:
        return None
    won = c.sum_money(_amounts(c.won()), "won amounts")
    if won is None:
        won = Money.zero(target.currency)
    _same(c, won, target)
    return stats.div(won.amount, target.amount)


# --- stages --------------------------------------------------------------------------------------


def _furthest(c: Cell, d: Deal, ranks: dict[str, int]) -> int:
    best = -1
    for st in c.view.stays(d):
        r = ranks.get(st.stage)
        if r is not None and r > best:
            best = r
    return best


def _stage_cohort(c: Cell) -> tuple[int, int, int]:
    """(reached the stage, reached a later one, lost with the stage as furthest)."""
    stage = c.param or ""
    reached = later = lost = 0
    known = False
    for d in c.created():
        proc = c.view.processes.get(d.process)
        if proc is None:
            raise KpiError(
                [
                    Problem(
                        c.metric,
                        "process",
                        f"deal {d.id} follows process {d.process!r}, which the data does not hold",
                    )
                ]
            )
        ranks = stage_ranks(proc)
        r = ranks.get(stage)
        if r is None:
            continue
        known = True
        f = _furthest(c, d, ranks)
        if f >= r:
            reached += 1
            if f > r:
                later += 1
            elif d.status is DealStatus.LOST:
                lost += 1
    if (
        not known
        and c.view.processes
        and not any(stage in stage_ranks(p) for p in c.view.processes.values())
    ):
        raise KpiError(
            [Problem(c.metric, "stage", f"no process has an open or won stage {stage!r}")]
        )
    return reached, later, lost


def stage_conversion(c: Cell) -> Value:
    reached, later, _ = _stage_cohort(c)
    return stats.div(later, reached)


def stage_drop_off(c: Cell) -> Value:
    reached, _, lost = _stage_cohort(c)
    return stats.div(lost, reached)


def time_in_stage(c: Cell) -> Value:
    stage = c.param
    micros = [
        stats.micros_between(st.entered, st.left)
        for _, st in c.stays_left()
        if st.stage == stage and st.left is not None
    ]
    return _pct_days(micros, HALF)


# --- activities ----------------------------------------------------------------------------------


def activities(c: Cell) -> Value:
    return len(c.activities(c.param))


# --- customers (inputs) --------------------------------------------------------------------------


def new_customers(c: Cell) -> Value:
    return len(c.new_customers())


def customer_acquisition_cost(c: Cell) -> Value:
    n = len(c.new_customers())
    costs = c.costs()
    if n == 0 or not costs:
        return None
    total = c.sum_money([x.amount for x in costs], "costs")
    assert total is not None
    return stats.round_money(stats.CTX.divide(total.amount, Decimal(n)), total.currency)


def _revenue(c: Cell) -> tuple[dict[str, Money], dict[str, Money]] | None:
    r = c.revenue()
    if r is None:
        return None
    start, end = r
    start = {a: m for a, m in start.items() if m.amount > 0}
    return start, end


def _sum(c: Cell, ms: Sequence[Money]) -> Decimal:
    t = c.sum_money(ms, "revenue")
    return Decimal(0) if t is None else t.amount


def logo_churn(c: Cell) -> Value:
    r = _revenue(c)
    if r is None:
        return None
    start, end = r
    churned = sum(1 for a in start if a not in end or end[a].amount <= 0)
    return stats.div(churned, len(start))


def _start_end(c: Cell) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
    """(starting revenue, kept revenue, lost revenue, ending revenue of starting accounts)."""
    r = _revenue(c)
    if r is None or not r[0]:
        return None
    start, end = r
    s = _sum(c, list(start.values()))
    kept = lost = fin = Decimal(0)
    for a, m in start.items():
        e = end.get(a)
        if e is not None:
            _same(c, m, e)
        ea = Decimal(0) if e is None else e.amount
        kept += min(m.amount, ea)
        lost += max(Decimal(0), m.amount - ea)
        fin += ea
    return s, kept, lost, fin


def revenue_churn(c: Cell) -> Value:
    r = _start_end(c)
    return None if r is None else stats.div(r[2], r[0])


def gross_revenue_retention(c: Cell) -> Value:
    r = _start_end(c)
    return None if r is None else stats.div(r[1], r[0])


def net_revenue_retention(c: Cell) -> Value:
    r = _start_end(c)
    return None if r is None else stats.div(r[3], r[0])


def customer_lifetime_value(c: Cell) -> Value:
    r = _revenue(c)
    if r is None or not r[0]:
        return None
    start, end = r
    paying = [m for m in end.values() if m.amount > 0]
    churned = sum(1 for a in start if a not in end or end[a].amount <= 0)
    if not paying or churned == 0:
        return None
    total = c.sum_money(paying, "revenue")
    assert total is not None
    margin = c.inputs.gross_margin.value
    # ARPA × margin / churn = (Σ end / n_paying) × margin × n_start / n_churned
    num = stats.CTX.multiply(stats.CTX.multiply(total.amount, margin), Decimal(len(start)))
    den = Decimal(len(paying) * churned)
    return stats.round_money(stats.CTX.divide(num, den), total.currency)


def csat(c: Cell) -> Value:
    rs = c.surveys(SurveyKind.CSAT)
    return stats.div(sum(1 for r in rs if r.response.score >= 4), len(rs))


def nps(c: Cell) -> Value:
    rs = c.surveys(SurveyKind.NPS)
    if not rs:
        return None
    pro = sum(1 for r in rs if r.response.score >= 9)
    det = sum(1 for r in rs if r.response.score <= 6)
    return stats.div(100 * (pro - det), len(rs))


def ces(c: Cell) -> Value:
    rs = c.surveys(SurveyKind.CES)
    return stats.div(sum(r.response.score for r in rs), len(rs))


# --- the table -----------------------------------------------------------------------------------

M, N, R, X, D, S = Unit.MONEY, Unit.COUNT, Unit.RATE, Unit.RATIO, Unit.DAYS, Unit.SCORE
HI, LO = Direction.HIGHER, Direction.LOWER
CL, CR, SN, AC, SE, SV, RV, MX = (
    Basis.CLOSED,
    Basis.CREATED,
    Basis.SNAPSHOT,
    Basis.ACTIVITY,
    Basis.STAGE_EXIT,
    Basis.SURVEY,
    Basis.REVENUE,
    Basis.MIXED,
)

BUILTIN_KPIS: tuple[Kpi, ...] = (
    Kpi(
        "won_revenue",
        "Bookings: the amounts of the deals won in the window.",
        "Σ amount of deals won",
        M,
        HI,
        won_revenue,
        CL,
        additive=True,
    ),
    Kpi(
        "deals_won",
        "Number of deals won in the window.",
        "count(won)",
        N,
        HI,
        deals_won,
        CL,
        additive=True,
    ),
    Kpi(
        "deals_lost",
        "Number of deals lost in the window.",
        "count(lost)",
        N,
        LO,
        deals_lost,
        CL,
        additive=True,
    ),
    Kpi(
        "deals_closed",
        "Number of deals won or lost in the window.",
        "count(won) + count(lost)",
        N,
        HI,
        deals_closed,
        CL,
        additive=True,
    ),
    Kpi(
        "win_rate",
        "Share of the deals closed in the window that were won.",
        "count(won) / (count(won) + count(lost))",
        R,
        HI,
        win_rate,
        CL,
    ),
    Kpi(
        "avg_won_deal_size",
        "Mean amount of the deals won in the window.",
        "Σ amount(won) / count(won with an amount), rounded to minor units",
        M,
        HI,
        avg_won_deal_size,
        CL,
    ),
    Kpi(
        "median_won_deal_size",
        "Median amount of the deals won in the window.",
        "percentile₀.₅(amount(won)) by linear interpolation, rounded to minor units",
        M,
        HI,
        median_won_deal_size,
        CL,
    ),
    Kpi(
        "mean_cycle_days",
        "Mean sales cycle of the deals won in the window: creation to close.",
        "mean(closed_at − created_at) over won deals, in days",
        D,
        LO,
        mean_cycle_days,
        CL,
    ),
    Kpi(
        "median_cycle_days",
        "Median sales cycle of the deals won in the window.",
        "percentile₀.₅(closed_at − created_at) over won deals, in days",
        D,
        LO,
        median_cycle_days,
        CL,
    ),
    Kpi(
        "p90_cycle_days",
        "90th percentile of the sales cycle of the deals won in the window.",
        "percentile₀.₉(closed_at − created_at) over won deals (linear), in days",
        D,
        LO,
        p90_cycle_days,
        CL,
    ),
    Kpi(
        "mean_cycle_days_closed",
        "Mean time to close of all deals closed (won or lost) in the window.",
        "mean(closed_at − created_at) over closed deals, in days",
        D,
        LO,
        mean_cycle_days_closed,
        CL,
    ),
    Kpi(
        "median_cycle_days_closed",
        "Median time to close of all deals closed in the window.",
        "percentile₀.₅(closed_at − created_at) over closed deals, in days",
        D,
        LO,
        median_cycle_days_closed,
        CL,
    ),
    Kpi(
        "p90_cycle_days_closed",
        "90th percentile of the time to close of all deals closed in the window.",
        "percentile₀.₉(closed_at − created_at) over closed deals (linear), in days",
        D,
        LO,
        p90_cycle_days_closed,
        CL,
    ),
    Kpi(
        "new_deals",
        "Number of deals created in the window.",
        "count(created)",
        N,
        HI,
        new_deals,
        CR,
        additive=True,
    ),
    Kpi(
        "lead_response_time",
        "Median time from a deal's creation to its first done activity, "
        "over deals created in the window that have one.",
        "percentile₀.₅(first activity at − created_at), in days",
        D,
        LO,
        lead_response_time,
        CR,
    ),
    Kpi(
        "open_pipeline_count",
        "Number of open deals at the end of the window.",
        "count(open at end)",
        N,
        HI,
        open_pipeline_count,
        SN,
    ),
    Kpi(
        "open_pipeline_value",
        "Total amount of the open deals at the end of the window.",
        "Σ amount(open at end)",
        M,
        HI,
        open_pipeline_value,
        SN,
    ),
    Kpi(
        "weighted_pipeline_value",
        "Open amounts weighted by each deal's probability at the end of the window.",
        "Σ amount × probability (open at end), rounded to minor units",
        M,
        HI,
        weighted_pipeline_value,
        SN,
    ),
    Kpi(
        "pipeline_coverage",
        "Open pipeline expected to close in the window (close date inside it) "
        "over the target still to win.",
        "Σ amount(open at end, close date in window) / (target − won revenue)",
        X,
        HI,
        pipeline_coverage,
        MX,
        inputs={"targets"},
    ),
    Kpi(
        "pipeline_velocity",
        "Money the pipeline turns into per day.",
        "open opportunities × win rate × average won size / mean won cycle (days)",
        M,
        HI,
        pipeline_velocity,
        MX,
    ),
    Kpi(
        "quota_attainment",
        "Won revenue in the window over the target of the scope.",
        "won_revenue / target",
        X,
        HI,
        quota_attainment,
        CL,
        inputs={"targets"},
    ),
    Kpi(
        "stage_conversion",
        "Of the deals created in the window that reached the stage (or a later "
        "one), the share that reached a later stage.",
        "reached(after stage) / reached(stage or later)",
        R,
        HI,
        stage_conversion,
        CR,
        parameter="stage",
    ),
    Kpi(
        "stage_drop_off",
        "Of the deals created in the window that reached the stage, the share "
        "lost with that stage as their furthest.",
        "lost(furthest = stage) / reached(stage or later)",
        R,
        LO,
        stage_drop_off,
        CR,
        parameter="stage",
    ),
    Kpi(
        "time_in_stage",
        "Median time deals spent in the stage, over stays that ended in the window.",
        "percentile₀.₅(left − entered), in days",
        D,
        LO,
        time_in_stage,
        SE,
        parameter="stage",
    ),
    Kpi(
        "activities",
        "Number of done activities in the window (of one kind when given).",
        "count(done activities [of kind])",
        N,
        HI,
        activities,
        AC,
        additive=True,
        parameter="kind",
        parameter_required=False,
    ),
    Kpi(
        "new_customers",
        "Accounts whose first won deal closed in the window.",
        "count(won deals that are their account's first win)",
        N,
        HI,
        new_customers,
        CL,
        additive=True,
    ),
    Kpi(
        "customer_acquisition_cost",
        "Sales and marketing cost per new customer.",
        "Σ costs / new_customers",
        M,
        LO,
        customer_acquisition_cost,
        MX,
        inputs={"costs"},
    ),
    Kpi(
        "logo_churn",
        "Share of the accounts paying at the window's start that pay nothing at its end.",
        "count(start > 0, end = 0) / count(start > 0)",
        R,
        LO,
        logo_churn,
        RV,
        inputs={"revenue"},
    ),
    Kpi(
        "revenue_churn",
        "Revenue lost to churn and contraction, over starting revenue.",
        "Σ max(0, start − end) / Σ start",
        R,
        LO,
        revenue_churn,
        RV,
        inputs={"revenue"},
    ),
    Kpi(
        "gross_revenue_retention",
        "Starting revenue kept, ignoring expansion.",
        "Σ min(start, end) / Σ start",
        R,
        HI,
        gross_revenue_retention,
        RV,
        inputs={"revenue"},
    ),
    Kpi(
        "net_revenue_retention",
        "Revenue of the starting accounts at the window's end over their "
        "starting revenue (expansion included).",
        "Σ end / Σ start (starting accounts)",
        X,
        HI,
        net_revenue_retention,
        RV,
        inputs={"revenue"},
    ),
    Kpi(
        "customer_lifetime_value",
        "Average revenue per paying account times gross margin, divided "
        "by the logo churn of the window.",
        "(Σ end / count(end > 0)) × margin / logo_churn",
        M,
        HI,
        customer_lifetime_value,
        RV,
        inputs={"revenue"},
    ),
    Kpi(
        "csat",
        "Share of CSAT responses (1–5) in the window that are satisfied (4 or 5).",
        "count(score ≥ 4) / count(responses)",
        R,
        HI,
        csat,
        SV,
        inputs={"surveys"},
    ),
    Kpi(
        "nps",
        "Net promoter score of the NPS responses (0–10) in the window.",
        "100 × (count(9–10) − count(0–6)) / count(responses)",
        S,
        HI,
        nps,
        SV,
        inputs={"surveys"},
    ),
    Kpi(
        "ces",
        "Mean customer effort score (1–7, higher is easier) of the responses in the window.",
        "Σ score / count(responses)",
        S,
        HI,
        ces,
        SV,
        inputs={"surveys"},
    ),
)


def builtin_registry() -> KpiRegistry:
    reg = KpiRegistry()
    for k in BUILTIN_KPIS:
        reg.register(k)
    return reg
