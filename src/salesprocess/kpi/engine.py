"""The pure-Python KPI engine: filter, group, attribute to periods, calculate.

:func:`compute` returns a :class:`KpiTable` with one row per group (the values of the ``by``
dimensions) and, when ``period`` is given, per period of the window. Each row's values come from the
KPIs' calculators, which see the row's records through a :class:`Cell`.

Rules (the SQL pushdown follows the same ones):

- **As of.** With ``asof``, every deal is rebuilt from its events up to ``asof``; deals created later,
  activities done later and survey responses given later are ignored, and revenue of periods not
  over by then too. Windows never look past ``asof``.
- **Periods.** A closed deal belongs to the period holding the local date (in ``tz``, default UTC)
  of its close instant; a new deal to that of its creation instant; an activity to that of its
  instant; a snapshot KPI (open pipeline…) reads the deals as they stood at the end of the window
  (events before the window's end instant, or at ``asof`` when that comes first). Without a window
  and without ``period``, everything held counts and snapshots read the deals as known at ``asof``.
  With ``period`` but no window, the window runs from the first to the last record's period.
- **Groups.** Every combination of ``by`` values that occurs in the records read by the requested
  KPIs is a row (once per period when ``period`` is given); the whole company is the single row
  when ``by`` is empty.
- **Money.** Sums, means and medians of money stay in one currency. A row mixing currencies raises
  :class:`~salesprocess.errors.CurrencyMismatchError` naming the row: add ``currency`` to ``by``
  (or filter on it) to report each currency separately. Empty sums are zero in the report currency
  (``currency=``, else the only currency of the data; ``None`` when the data holds several). Means and
  medians are rounded half-even to the currency's minor units; deals without an amount are left out
  of money KPIs.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

import attrs

from salesprocess.errors import CurrencyMismatchError, KpiError, PeriodError, Problem
from salesprocess.model import Deal, DealStatus
from salesprocess.money import Money
from salesprocess.periods import CALENDAR_YEAR, FiscalCalendar, Period, PeriodKind, require_aware

from . import stats
from .dimensions import dimension_values, is_dimension
from .facts import (
    ActivityRecord,
    Dataset,
    DealState,
    Stay,
    SurveyRecord,
    View,
    first_done_activity,
)
from .inputs import CostEntry, KpiInputs, SurveyKind
from .registry import Basis, Kpi, KpiRegistry, Value

__all__ = [
    "Cell",
    "Change",
    "KpiRow",
    "KpiTable",
    "compare",
    "compute",
    "default_registry",
    "parse_where",
]

_REGISTRY: KpiRegistry | None = None


def default_registry() -> KpiRegistry:
    """The built-in KPIs (a shared, read-only registry; :attr:`SalesProcess.kpis` adds plugins')."""
    global _REGISTRY
    if _REGISTRY is None:
        from .builtins import builtin_registry

        _REGISTRY = builtin_registry()
    return _REGISTRY


def _where(where: Mapping[str, Any] | None) -> dict[str, frozenset[str | None]]:
    out: dict[str, frozenset[str | None]] = {}
    for k, v in (where or {}).items():
        if v is None or isinstance(v, str):
            out[k] = frozenset([v])
        else:
            out[k] = frozenset(v)
    return out


def parse_where(items: Iterable[str]) -> dict[str, frozenset[str | None]]:
    """``["team=t1", "stage=quote,negotiation"]`` → a ``where`` mapping (empty value means unset)."""
    out: dict[str, set[str | None]] = {}
    problems = []
    for i, s in enumerate(items):
        k, sep, v = s.partition("=")
        if not sep or not k:
            problems.append(
                Problem(f"where[{i}]", "syntax", f"expected DIMENSION=VALUE[,VALUE], got {s!r}")
            )
            continue
        out.setdefault(k.strip(), set()).update((x.strip() or None) for x in v.split(","))
    if problems:
        raise KpiError(problems)
    return {k: frozenset(v) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------


@attrs.frozen
class KpiRow:
    key: dict[str, str | None]
    values: dict[str, Value]

    def as_dict(self) -> dict[str, Any]:
        return {**self.key, **self.values}


@attrs.frozen
class KpiTable:
    """Rows of KPI values; ``by`` lists the key columns (``period`` included when grouped by it)."""

    metrics: tuple[str, ...]
    by: tuple[str, ...]
    rows: tuple[KpiRow, ...]
    periods: tuple[Period, ...] = ()
    currency: str | None = None
    engine: str = "python"

    def as_dicts(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.rows]

    def row(self, **key: str | None) -> KpiRow:
        """The row whose key has these values (every ``by`` dimension must be given)."""
        for r in self.rows:
            if all(r.key.get(k) == v for k, v in key.items()):
                return r
        raise KeyError(f"no row with {key}")

    def value(self, metric: str, **key: str | None) -> Value:
        return self.row(**key).values[metric]

    def to_json_obj(self) -> dict[str, Any]:
        """``{"metrics": [...], "by": [...], "rows": [...]}`` with numbers and money as strings."""

        def enc(v: Value) -> Any:
            if v is None:
                return None
            if isinstance(v, Money):
                return str(v.amount)
            return str(v)

        rows = []
        for r in self.rows:
            d: dict[str, Any] = dict(r.key)
            for m in self.metrics:
                d[m] = enc(r.values[m])
                if isinstance(r.values[m], Money):
                    d[m + "_currency"] = r.values[m].currency  # type: ignore[union-attr]
            rows.append(d)
        return {"metrics": list(self.metrics), "by": list(self.by), "rows": rows}


# ----------------------------------------------------------------------------------------------
# Cells
# ----------------------------------------------------------------------------------------------


class _Group:
    __slots__ = ("buckets", "key", "records", "snapshots")

    def __init__(self, key: tuple[str | None, ...]) -> None:
        self.key = key
        self.records: dict[str, list[Any]] = {
            "deals": [],
            "activities": [],
            "surveys": [],
            "revenue": [],
        }
        self.buckets: dict[str, dict[int, list[Any]]] = {}
        self.snapshots: dict[int, list[tuple[Deal, DealState]]] = {}


class Cell:
    """The records of one result row, as a KPI calculator sees them.

    Attributes: ``key`` (dimension values, ``period`` label included), ``window`` (the row's
    :class:`Period`, or ``None`` for "all time"), ``asof``, ``tz``, ``currency`` (the report
    currency or ``None``), ``param`` (the KPI's parameter) and ``inputs``.
    """

    def __init__(
        self, run: _Run, group: _Group, index: int, param: str | None, metric: str
    ) -> None:
        self._run = run
        self._g = group
        self._i = index
        self.param = param
        self.metric = metric
        self.window: Period | None = run.parts[index]
        self.asof = run.view.asof
        self.tz = run.tz
        self.currency = run.currency
        self.inputs: KpiInputs = run.view.inputs
        self.view: View = run.view
        self.key: dict[str, str | None] = run.row_key(group.key, index)

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.key.items()) or "all"

    # --- deals ------------------------------------------------------------------------------------
    def deals(self) -> list[Deal]:
        """All deals of the row's group as known at ``asof`` (any status, any period)."""
        return self._g.records["deals"]

    def closed(self) -> list[Deal]:
        """Deals closed (won or lost) in the window."""
        return self._run.bucket(self._g, "closed", self._i)

    def won(self) -> list[Deal]:
        return [d for d in self.closed() if d.status is DealStatus.WON]

    def lost(self) -> list[Deal]:
        return [d for d in self.closed() if d.status is DealStatus.LOST]

    def created(self) -> list[Deal]:
        """Deals created in the window."""
        return self._run.bucket(self._g, "created", self._i)

    @property
    def snapshot(self) -> tuple[datetime | None, bool]:
        """The instant snapshots read and whether events at that instant count."""
        return self._run.snapshot(self._i)

    def at_end(self) -> list[tuple[Deal, DealState]]:
        """Every deal of the group with its state at the snapshot instant (existing then)."""
        return self._run.snapshot_states(self._g, self._i)

    def open_at_end(self) -> list[DealState]:
        """States of the deals open at the snapshot instant."""
        return [s for _, s in self.at_end() if s.status is DealStatus.OPEN]

    def stays_left(self) -> list[tuple[Deal, Stay]]:
        """Stage stays that ended (the deal left the stage) in the window."""
        return self._run.bucket(self._g, "stage_exit", self._i)

    def first_activity(self, deal: Deal) -> datetime | None:
        """The first done activity of ``deal`` at or after its creation (as known at ``asof``)."""
        return self._run.first_activity().get(deal.id)

    def new_customers(self) -> list[Deal]:
        """Won deals in the window that are their account's first win."""
        fw = self.view.first_won()
        return [d for d in self.won() if d.account_id and fw.get(d.account_id) == d.id]

    # --- other records ------------------------------------------------------------------------
    def activities(self, kind: str | None = None) -> list[ActivityRecord]:
        acts: list[ActivityRecord] = self._run.bucket(self._g, "activity", self._i)
        if kind is None:
            return acts
        return [a for a in acts if a.activity.kind.value == kind]

    def surveys(self, kind: SurveyKind | str) -> list[SurveyRecord]:
        k = SurveyKind(kind)
        recs: list[SurveyRecord] = self._run.bucket(self._g, "survey", self._i)
        return [r for r in recs if r.response.kind is k]

    def revenue(self) -> tuple[dict[str, Money], dict[str, Money]] | None:
        """Each account's revenue run-rate at the window's start and at its end, or ``None``
        without a window. Entries of the period ending at the window's start give the start;
        those of the period ending at its end give the end."""
        w = self.window
        if w is None:
            return None
        start: dict[str, Money] = {}
        end: dict[str, Money] = {}
        for r in self._g.records["revenue"]:
            e = r.entry
            target = start if e.period.end == w.start else end if e.period.end == w.end else None
            if target is None:
                continue
            have = target.get(e.account_id)
            target[e.account_id] = e.amount if have is None else self._add(have, e.amount)
        return start, end

    def _scope_key(self) -> dict[str, str | None]:
        return {k: v for k, v in self.key.items() if k != "period"}

    def costs(self) -> list[CostEntry]:
        """Cost entries of the row's scope whose period lies inside the window."""
        scope = self._scope_key()
        w = self.window
        return [
            c for c in self.inputs.costs if dict(c.scope) == scope and (w is None or c.period in w)
        ]

    def target(self, metric: str = "won_revenue") -> Money | Decimal | None:
        """The sum of the targets for ``metric`` of the row's scope whose period lies inside the
        window; ``None`` when there is none."""
        scope = self._scope_key()
        w = self.window
        found = [
            t.value
            for t in self.inputs.targets
            if t.metric == metric and dict(t.scope) == scope and (w is None or t.period in w)
        ]
        if not found:
            return None
        money = [v for v in found if isinstance(v, Money)]
        if money:
            if len(money) != len(found):
                raise KpiError(
                    [
                        Problem(
                            f"targets.{metric}",
                            "target",
                            f"targets of {metric} mix money and numbers",
                        )
                    ]
                )
            return self.sum_money(money, f"target of {metric}")
        total = Decimal(0)
        for v in found:
            if isinstance(v, Decimal):
                total = stats.CTX.add(total, v)
        return total

    # --- money helpers ------------------------------------------------------------------------
    def _add(self, a: Money, b: Money) -> Money:
        if a.currency != b.currency:
            raise CurrencyMismatchError(
                a.currency,
                b.currency,
                f"add ({self.metric} for {self.describe()}; group by currency)",
            )
        return a + b

    def _currency_of(self, amounts: Sequence[Money], what: str) -> str | None:
        if not amounts:
            return self.currency
        cur = amounts[0].currency
        for m in amounts:
            if m.currency != cur:
                raise CurrencyMismatchError(
                    cur,
                    m.currency,
                    f"combine {what} ({self.metric} for {self.describe()}); group by currency",
                )
        return cur

    def sum_money(self, amounts: Sequence[Money], what: str = "amounts") -> Money | None:
        """Exact sum in one currency; zero in the report currency when empty (else ``None``)."""
        cur = self._currency_of(amounts, what)
        if cur is None:
            return None
        total = Decimal(0)
        for m in amounts:
            total = stats.CTX.add(total, m.amount)
        return stats.pad_money(total, cur)

    def mean_money(self, amounts: Sequence[Money], what: str = "amounts") -> Money | None:
        if not amounts:
            return None
        cur = self._currency_of(amounts, what)
        assert cur is not None
        m = stats.mean([a.amount for a in amounts])
        assert m is not None
        return stats.round_money(m, cur)

    def percentile_money(
        self, amounts: Sequence[Money], p: Decimal, what: str = "amounts"
    ) -> Money | None:
        if not amounts:
            return None
        cur = self._currency_of(amounts, what)
        assert cur is not None
        v = stats.percentile(sorted(a.amount for a in amounts), p)
        assert v is not None
        return stats.round_money(v, cur)


# ----------------------------------------------------------------------------------------------
# A run of one query
# ----------------------------------------------------------------------------------------------


def _local_date(at: datetime, tz: tzinfo) -> date:
    return at.astimezone(tz).date()


_READS: dict[Basis, str] = {
    Basis.ACTIVITY: "activities",
    Basis.SURVEY: "surveys",
    Basis.REVENUE: "revenue",
}


class _Run:
    def __init__(
        self,
        view: View,
        kpis: Sequence[tuple[str, Kpi, str | None]],
        by: Sequence[str],
        period: PeriodKind | None,
        window: Period | None,
        tz: tzinfo,
        where: Mapping[str, frozenset[str | None]],
        currency: str | None,
        fiscal: FiscalCalendar,
    ) -> None:
        self.view = view
        self.kpis = kpis
        self.dims = [d for d in by if d != "period"]
        self.by = list(by)
        if period is not None and "period" not in self.by:
            self.by.append("period")
        self.period = period
        self.tz = tz
        self.where = where
        self.fiscal = fiscal
        if currency is None:
            cur = view.currencies()
            currency = next(iter(cur)) if len(cur) == 1 else None
        self.currency = currency
        self.reads = {"deals"}
        for _, k, _p in kpis:
            self.reads.update(_kpi_reads(k))
        self._records: dict[str, list[Any]] = {}
        self._first_activity: dict[str, datetime] | None = None
        self.parts: list[Period | None] = self._parts(window)
        self._starts = [p.start for p in self.parts if p is not None]
        self._label_cache: dict[date, int] = {}

    # --- records -------------------------------------------------------------------------------
    def records(self, kind: str) -> list[Any]:
        recs = self._records.get(kind)
        if recs is None:
            v = self.view
            src: Iterable[Any]
            if kind == "deals":
                src = v.deals
            elif kind == "activities":
                src = v.activity_records()
            elif kind == "surveys":
                src = v.survey_records()
            else:
                src = v.revenue_records()
            recs = [r for r in src if self._keep(r)]
            self._records[kind] = recs
        return recs

    def _keep(self, r: Any) -> bool:
        for dim, allowed in self.where.items():
            if not any(x in allowed for x in dimension_values(self.view, r, dim)):
                return False
        return True

    def keys(self, r: Any) -> Iterator[tuple[str | None, ...]]:
        if not self.dims:
            yield ()
            return
        vals = []
        for d in self.dims:
            vs = dimension_values(self.view, r, d)
            allowed = self.where.get(d)
            if allowed is not None:
                vs = tuple(x for x in vs if x in allowed)
            vals.append(vs)
        yield from itertools.product(*vals)

    def groups(self) -> list[_Group]:
        groups: dict[tuple[str | None, ...], _Group] = {}
        if not self.dims:
            groups[()] = _Group(())
        for kind in ("deals", "activities", "surveys", "revenue"):
            if kind not in self.reads:
                continue
            for r in self.records(kind):
                for key in self.keys(r):
                    g = groups.get(key)
                    if g is None:
                        g = groups[key] = _Group(key)
                    g.records[kind].append(r)
        return [
            groups[k] for k in sorted(groups, key=lambda t: tuple((x is None, x or "") for x in t))
        ]

    def first_activity(self) -> dict[str, datetime]:
        if self._first_activity is None:
            recs = [
                r
                for r in self.view.activity_records()
                if r.deal is not None and r.activity.at >= r.deal.created_at
            ]
            self._first_activity = first_done_activity(recs)
        return self._first_activity

    # --- periods ----------------------------------------------------------------------------------
    def _record_dates(self) -> Iterator[date]:
        tz = self.tz
        for d in self.records("deals"):
            yield _local_date(d.created_at, tz)
            if d.closed_at is not None:
                yield _local_date(d.closed_at, tz)
        if "activities" in self.reads:
            for a in self.records("activities"):
                yield _local_date(a.activity.at, tz)
        if "surveys" in self.reads:
            for s in self.records("surveys"):
                yield _local_date(s.response.at, tz)
        if "revenue" in self.reads:
            for e in self.records("revenue"):
                yield e.entry.period.start

    def _parts(self, window: Period | None) -> list[Period | None]:
        if self.period is None:
            return [window]
        if window is None:
            lo = hi = None
            for d in self._record_dates():
                if lo is None or d < lo:
                    lo = d
                if hi is None or d > hi:
                    hi = d
            if self.view.asof is not None and hi is not None:
                hi = min(hi, _local_date(self.view.asof, self.tz))
            if lo is None or hi is None or hi < lo:
                return []
            first = Period.containing(lo, self.period, self.fiscal)
            last = Period.containing(hi, self.period, self.fiscal)
            window = Period(first.start, last.end)
        return list(window.split(self.period, self.fiscal))

    def part_of(self, d: date) -> int | None:
        i = self._label_cache.get(d)
        if i is not None:
            return i if i >= 0 else None
        parts = self.parts
        if parts == [None]:
            i = 0
        else:
            j = bisect.bisect_right(self._starts, d) - 1
            p = parts[j] if j >= 0 else None
            i = j if p is not None and p.start <= d < p.end else -1
        self._label_cache[d] = i
        return i if i >= 0 else None

    def row_key(self, key: tuple[str | None, ...], index: int) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        it = iter(key)
        for d in self.by:
            if d == "period":
                p = self.parts[index]
                out["period"] = p.label if p is not None else None
            else:
                out[d] = next(it)
        return out

    def bucket(self, g: _Group, basis: str, index: int) -> list[Any]:
        b = g.buckets.get(basis)
        if b is None:
            b = {}
            tz = self.tz
            for rec, at in _attributed(self, g, basis):
                i = self.part_of(_local_date(at, tz))
                if i is not None:
                    b.setdefault(i, []).append(rec)
            g.buckets[basis] = b
        return b.get(index, [])

    def snapshot(self, index: int) -> tuple[datetime | None, bool]:
        asof = self.view.asof
        p = self.parts[index]
        if p is None:
            return asof, True
        end = p.end_instant(self.tz)
        if asof is not None and asof < end:
            return asof, True
        return end, False

    def snapshot_states(self, g: _Group, index: int) -> list[tuple[Deal, DealState]]:
        s = g.snapshots.get(index)
        if s is None:
            t, inclusive = self.snapshot(index)
            s = []
            for d in g.records["deals"]:
                st = self.view.state_at(d, t, inclusive)
                if st is not None:
                    s.append((d, st))
            g.snapshots[index] = s
        return s


def _attributed(run: _Run, g: _Group, basis: str) -> Iterator[tuple[Any, datetime]]:
    if basis == "closed":
        for d in g.records["deals"]:
            if d.closed_at is not None and d.status is not DealStatus.OPEN:
                yield d, d.closed_at
    elif basis == "created":
        for d in g.records["deals"]:
            yield d, d.created_at
    elif basis == "activity":
        for a in g.records["activities"]:
            yield a, a.activity.at
    elif basis == "survey":
        for s in g.records["surveys"]:
            yield s, s.response.at
    elif basis == "stage_exit":
        for d in g.records["deals"]:
            for st in run.view.stays(d):
                if st.left is not None:
                    yield (d, st), st.left
    else:  # pragma: no cover - internal
        raise ValueError(basis)


def _kpi_reads(k: Kpi) -> set[str]:
    out = set()
    r = _READS.get(k.basis)
    if r:
        out.add(r)
    return out


# ----------------------------------------------------------------------------------------------
# compute / compare
# ----------------------------------------------------------------------------------------------


def _resolve(
    registry: KpiRegistry,
    metrics: Sequence[str],
    by: Sequence[str],
    where: Mapping[str, Any],
    period: PeriodKind | str | None,
    inputs: KpiInputs,
) -> tuple[list[tuple[str, Kpi, str | None]], PeriodKind | None]:
    problems: list[Problem] = []
    kpis: list[tuple[str, Kpi, str | None]] = []
    if not metrics:
        problems.append(Problem("metrics", "empty", "name at least one KPI"))
    for i, m in enumerate(metrics):
        try:
            k, param = registry.resolve(m, f"metrics[{i}]")
        except KpiError as e:
            problems.extend(e.problems)
            continue
        missing = sorted(k.inputs - inputs.available())
        if missing:
            problems.append(
                Problem(
                    f"metrics[{i}]",
                    "missing_input",
                    f"KPI {m!r} needs inputs the store does not hold: {', '.join(missing)} "
                    "(pass them as KpiInputs)",
                )
            )
        kpis.append((m, k, param))
    if len(set(metrics)) != len(metrics):
        problems.append(Problem("metrics", "duplicate", "a KPI is named twice"))
    pk: PeriodKind | None = None
    if period is not None:
        try:
            pk = PeriodKind(period)
        except ValueError:
            problems.append(
                Problem(
                    "period",
                    "period",
                    f"unknown period kind {period!r} (use "
                    "week, month, quarter, half, year, fiscal_quarter, fiscal_year)",
                )
            )
        if pk is PeriodKind.CUSTOM:
            problems.append(Problem("period", "period", "period kind 'custom' cannot group"))
    for i, d in enumerate(by):
        if d == "period":
            if period is None:
                problems.append(
                    Problem(f"by[{i}]", "period", "grouping by period needs a period kind")
                )
        elif not is_dimension(d):
            problems.append(Problem(f"by[{i}]", "unknown_dimension", f"unknown dimension {d!r}"))
    if len(set(by)) != len(by):
        problems.append(Problem("by", "duplicate", "a dimension is named twice"))
    for d in where:
        if not is_dimension(d):
            problems.append(Problem(f"where.{d}", "unknown_dimension", f"unknown dimension {d!r}"))
    if problems:
        raise KpiError(problems)
    return kpis, pk


def compute(
    data: Dataset | Any,
    metrics: Sequence[str],
    *,
    by: Sequence[str] = (),
    period: PeriodKind | str | None = None,
    window: Period | str | None = None,
    asof: datetime | None = None,
    tz: tzinfo = UTC,
    where: Mapping[str, Any] | None = None,
    currency: str | None = None,
    fiscal: FiscalCalendar = CALENDAR_YEAR,
    inputs: KpiInputs | None = None,
    registry: KpiRegistry | None = None,
    engine: str = "auto",
) -> KpiTable:
    """KPI values for ``metrics`` grouped ``by`` dimensions (and ``period``), as of ``asof``.

    ``data`` is a :class:`Dataset` or a store. With a store that declares
    :attr:`~salesprocess.store.Capability.SQL_PUSHDOWN` and ``engine`` ``"auto"`` or ``"sql"``,
    KPIs that have a SQL form run inside the database; ``engine="python"`` always loads the data.
    ``window`` is a :class:`Period` (or label such as ``2026-Q1``); ``where`` maps dimensions to a
    value or a collection of values to keep.
    """
    if asof is not None:
        require_aware(asof, "asof")
    if isinstance(window, str):
        try:
            window = Period.parse(window, fiscal)
        except PeriodError as e:
            raise KpiError([Problem("window", "period", str(e))]) from e
    reg = registry or default_registry()
    w = _where(where)
    if not isinstance(data, Dataset):
        if engine in ("auto", "sql"):
            from .pushdown import try_pushdown

            res: KpiTable | None = try_pushdown(
                data,
                metrics,
                by=by,
                period=period,
                window=window,
                asof=asof,
                tz=tz,
                where=w,
                currency=currency,
                fiscal=fiscal,
                inputs=inputs,
                registry=reg,
                required=engine == "sql",
            )
            if res is not None:
                return res
        data = Dataset.from_store(data, inputs=inputs)
    else:
        if engine == "sql":
            raise KpiError([Problem("engine", "pushdown",
                                    "engine='sql' needs a store with SQL pushdown, not a Dataset")])
        if inputs is not None:
            data = data.with_inputs(inputs)
    view = data.view(asof)
    kpis, pk = _resolve(reg, metrics, by, w, period, view.inputs)
    run = _Run(view, kpis, by, pk, window, tz, w, currency, fiscal)
    rows: list[KpiRow] = []
    for g in run.groups():
        for i in range(len(run.parts)):
            values: dict[str, Value] = {}
            for name, k, param in kpis:
                values[name] = k.calculator(Cell(run, g, i, param, name))
            rows.append(KpiRow(run.row_key(g.key, i), values))
    return KpiTable(
        tuple(metrics),
        tuple(run.by),
        tuple(rows),
        tuple(p for p in run.parts if p is not None),
        run.currency,
        "python",
    )


@attrs.frozen
class Change:
    """One metric of one group in two periods: ``change`` is current − previous and ``relative``
    is that change divided by the absolute previous value (``None`` when previous is 0 or absent)."""

    key: dict[str, str | None]
    metric: str
    current: Value
    previous: Value
    change: Value
    relative: Decimal | None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.key,
            "metric": self.metric,
            "current": self.current,
            "previous": self.previous,
            "change": self.change,
            "relative": self.relative,
        }


_COMPARISONS: dict[str, tuple[tuple[PeriodKind, ...], str]] = {
    "wow": ((PeriodKind.WEEK,), "previous"),
    "mom": ((PeriodKind.MONTH,), "previous"),
    "qoq": ((PeriodKind.QUARTER, PeriodKind.FISCAL_QUARTER), "previous"),
    "yoy": ((), "year_ago"),
    "previous": ((), "previous"),
    "year_ago": ((), "year_ago"),
}


def _diff(cur: Value, prev: Value) -> tuple[Value, Decimal | None]:
    if cur is None or prev is None:
        return None, None
    if isinstance(cur, Money) or isinstance(prev, Money):
        if not (isinstance(cur, Money) and isinstance(prev, Money)):
            return None, None
        ch: Money = cur - prev
        rel = stats.div(ch.amount, abs(prev.amount)) if prev.amount != 0 else None
        return ch, rel
    d = Decimal(cur) - Decimal(prev)
    chv: Value = int(d) if isinstance(cur, int) and isinstance(prev, int) else stats.tidy(d)
    rel = stats.div(d, abs(Decimal(prev))) if prev != 0 else None
    return chv, rel


def compare(
    data: Dataset | Any,
    metrics: Sequence[str],
    period: Period | str,
    against: str = "previous",
    *,
    fiscal: FiscalCalendar = CALENDAR_YEAR,
    **kw: Any,
) -> list[Change]:
    """Period-over-period change of ``metrics`` for ``period``.

    ``against`` is ``"WoW"``, ``"MoM"``, ``"QoQ"`` (the previous week/month/quarter; ``period``
    must be of that kind), ``"YoY"`` (the same period a year earlier, any kind), ``"previous"`` or
    ``"year_ago"``. Other keywords go to :func:`compute` (``by``, ``asof``, ``where``...).
    """
    p = Period.parse(period, fiscal) if isinstance(period, str) else period
    spec = _COMPARISONS.get(against.lower())
    if spec is None:
        raise KpiError(
            [
                Problem(
                    "against",
                    "comparison",
                    f"unknown comparison {against!r} "
                    "(use WoW, MoM, QoQ, YoY, previous or year_ago)",
                )
            ]
        )
    kinds, how = spec
    if kinds and p.kind not in kinds:
        raise KpiError(
            [
                Problem(
                    "period",
                    "comparison",
                    f"{against} compares {kinds[0].value}s; {p.label} is a {p.kind.value}",
                )
            ]
        )
    if how == "previous" and p.kind is PeriodKind.CUSTOM:
        prev = Period(p.start - (p.end - p.start), p.start)
    else:
        prev = p.shift(-1, fiscal) if how == "previous" else p.year_ago()
    cur_t = compute(data, metrics, window=p, fiscal=fiscal, **kw)
    prev_t = compute(data, metrics, window=prev, fiscal=fiscal, **kw)
    prev_rows = {tuple(r.key.items()): r for r in prev_t.rows}
    cur_rows = {tuple(r.key.items()): r for r in cur_t.rows}
    keys = list(cur_rows) + [k for k in prev_rows if k not in cur_rows]
    out: list[Change] = []
    for k in keys:
        c, pr = cur_rows.get(k), prev_rows.get(k)
        for m in metrics:
            cv = c.values[m] if c else None
            pv = pr.values[m] if pr else None
            ch, rel = _diff(cv, pv)
            out.append(Change(dict(k), m, cv, pv, ch, rel))
    return out


CalculatorT = Callable[[Cell], Value]
