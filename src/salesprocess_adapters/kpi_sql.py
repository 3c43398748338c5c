"""KPIs computed inside SQLite and PostgreSQL: generated SQL for the grouped core KPIs and the
stage funnel.

The database does the scanning, filtering, grouping and ranking; it returns counts, exact sums
(SQLite: integer minor units; PostgreSQL: ``numeric``) and, for each percentile, the two ranked
values to interpolate between. The final arithmetic is the pure-Python path's own
(:mod:`salesprocess.kpi.stats`), so both paths give the same digits. Only result rows travel to
Python.

Entry points: :func:`compute` and :func:`funnel`, called by :mod:`salesprocess.kpi.pushdown` for
stores that declare :attr:`~salesprocess.store.Capability.SQL_PUSHDOWN`. Both raise
:class:`Unsupported` for a query they cannot express (the caller then computes in Python).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from salesprocess.errors import CurrencyMismatchError, KpiError, Problem, StoreError
from salesprocess.kpi import stats
from salesprocess.kpi.builtins import velocity_from
from salesprocess.kpi.engine import KpiRow, KpiTable, _resolve
from salesprocess.kpi.funnel import (
    PERCENTILES,
    Funnel,
    FunnelCounts,
    build_funnel,
    stage_ranks,
    steps_of,
)
from salesprocess.kpi.inputs import KpiInputs
from salesprocess.kpi.registry import KpiRegistry, Value
from salesprocess.model import DealStatus
from salesprocess.money import CURRENCY_MINOR_UNITS, Money
from salesprocess.periods import CALENDAR_YEAR, FiscalCalendar, Period, PeriodKind
from salesprocess.process import Process

__all__ = ["SQL_DIMENSIONS", "SQL_KPIS", "Unsupported", "compute", "funnel"]


class Unsupported(Exception):
    """The query has no SQL form here (the reason is the message)."""


SQL_KPIS: frozenset[str] = frozenset({
    "deals_won", "deals_lost", "deals_closed", "win_rate", "won_revenue", "avg_won_deal_size",
    "median_won_deal_size", "mean_cycle_days", "median_cycle_days", "p90_cycle_days",
    "mean_cycle_days_closed", "median_cycle_days_closed", "p90_cycle_days_closed", "new_deals",
    "open_pipeline_count", "open_pipeline_value", "weighted_pipeline_value", "pipeline_velocity",
})  # fmt: skip
"""The built-in KPIs computed in the database."""

SQL_DIMENSIONS: frozenset[str] = frozenset({
    "owner", "team", "region", "manager", "account", "industry", "size_band", "country",
    "product", "product_family", "stage", "status", "process", "currency", "forecast_category",
})  # fmt: skip
"""The dimensions the database groups and filters by."""

_MULTI = ("product", "product_family")
_STATUS_KINDS = ("created", "stage_changed", "won", "lost", "reopened")
_HALF, _P75, _P90 = Decimal("0.5"), Decimal("0.75"), Decimal("0.9")
_FRACTIONS = {_HALF: (1, 2), _P75: (3, 4), _P90: (9, 10)}
_SQLITE_SORT_KIB = 16_384
"""SQLite's page cache while the KPI queries run, in KiB; its sorter spills sorted runs of this
size to temporary files (see :meth:`_SQLite.session`)."""


# ------------------------------------------------------------------------------------------------
# Dialects
# ------------------------------------------------------------------------------------------------


class _Dialect:
    name = ""

    def __init__(self, store: Any) -> None:
        self.store = store

    def run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return list(self.store.query(self.q(sql), list(params)))

    def q(self, sql: str) -> str:
        return sql

    @contextmanager
    def session(self) -> Iterator[None]:
        """Connection settings for the duration of one KPI call (restored afterwards)."""
        yield

    # values
    def j(self, col: str, *path: str | int) -> str:
        """The JSON value at ``path`` as text (SQL NULL for JSON null or a missing key)."""
        raise NotImplementedError

    def jraw(self, col: str, *path: str | int) -> str:
        """The JSON value at ``path`` as JSON (for arrays)."""
        raise NotImplementedError

    def jhas(self, col: str, *path: str | int) -> str:
        raise NotImplementedError

    def micros(self, col: str) -> str:
        """Microseconds since the epoch of an instant column."""
        raise NotImplementedError

    def ts(self, at: datetime) -> Any:
        raise NotImplementedError

    def current_amount(self) -> tuple[str, str]:
        """(amount expression, exactness flag expression) over ``deals d``."""
        raise NotImplementedError

    def asof_amount(self, text: str, currency: str) -> tuple[str, str]:
        raise NotImplementedError

    def products(self, col: str, source: str) -> str:
        """Rows (id, product) of the JSON array column ``col`` of ``source`` (deduplicated,
        one NULL row for a deal without products)."""
        raise NotImplementedError

    def amount_value(self, v: Any, currency: str) -> Decimal:
        raise NotImplementedError

    def plain(self, col: str) -> str:
        """A column used as a grouping key."""
        return col

    def prob_value(self, v: Any) -> Decimal | None:
        return None if v is None else Decimal(str(v))


class _SQLite(_Dialect):
    name = "sqlite"

    @contextmanager
    def session(self) -> Iterator[None]:
        """Bounded memory for the whole-table sorts of the KPI queries.

        With ``temp_store = MEMORY`` SQLite's sorter never spills: grouping or windowing nine
        million events sorts them all in the process's memory (a gigabyte for a million deals).
        With temporary files it sorts runs the size of the page cache and merges them from disk,
        so the cache size bounds the sort. Both settings are put back afterwards. Inside a
        transaction (SQLite refuses to change ``temp_store`` there) or while the connection holds
        temporary tables (changing it would drop them) the store's settings are kept.
        """
        st = self.store
        undo: list[str] = []
        try:
            ((temp,),) = st.query("PRAGMA temp_store")
            ((cache,),) = st.query("PRAGMA cache_size")
            if int(temp) == 2 and not st.query("SELECT 1 FROM temp.sqlite_master LIMIT 1"):
                st.query("PRAGMA temp_store = FILE")
                undo.append(f"PRAGMA temp_store = {int(temp)}")
            if int(cache) < 0:
                kib = -int(cache)
            else:
                ((page,),) = st.query("PRAGMA page_size")
                kib = int(cache) * int(page) // 1024
            if kib > _SQLITE_SORT_KIB:
                st.query(f"PRAGMA cache_size = -{_SQLITE_SORT_KIB}")
                undo.append(f"PRAGMA cache_size = {int(cache)}")
        except StoreError:
            pass  # in a transaction: run with the store's settings
        try:
            yield
        finally:
            for sql in reversed(undo):
                try:
                    st.query(sql)
                except StoreError:  # pragma: no cover - the connection went away
                    pass

    @staticmethod
    def _path(path: Sequence[str | int]) -> str:
        out = "$"
        for p in path:
            out += f"[{p}]" if isinstance(p, int) else f'."{p}"'
        return out

    def j(self, col: str, *path: str | int) -> str:
        return f"json_extract({col}, '{self._path(path)}')"

    def jraw(self, col: str, *path: str | int) -> str:
        return f"json_extract({col}, '{self._path(path)}')"

    def jhas(self, col: str, *path: str | int) -> str:
        return f"(json_type({col}, '{self._path(path)}') IS NOT NULL)"

    def micros(self, col: str) -> str:
        return (f"(CAST(strftime('%s', substr({col}, 1, 19)) AS INTEGER) * 1000000 "
                f"+ CAST(substr({col}, 21, 6) AS INTEGER))")  # fmt: skip

    def ts(self, at: datetime) -> Any:
        return at.astimezone(UTC).isoformat(timespec="microseconds")

    def current_amount(self) -> tuple[str, str]:
        return "d.amount_minor", "(d.amount IS NULL OR d.amount_minor IS NOT NULL)"

    def asof_amount(self, text: str, currency: str) -> tuple[str, str]:
        scale = "CASE " + " ".join(
            f"WHEN {currency} IN ({', '.join(repr(c) for c in sorted(cs))}) THEN {10**e}"
            for e, cs in _by_exponent().items()
        ) + " END"
        amt = f"CAST(ROUND(CAST({text} AS REAL) * ({scale})) AS INTEGER)"
        exp = "CASE " + " ".join(
            f"WHEN {currency} IN ({', '.join(repr(c) for c in sorted(cs))}) THEN {e}"
            for e, cs in _by_exponent().items()
        ) + " END"
        ok = (f"({text} IS NULL OR ({text} NOT LIKE '%e%' AND {text} NOT LIKE '%E%' "
              f"AND (instr({text}, '.') = 0 OR length({text}) - instr({text}, '.') <= ({exp})) "
              f"AND abs(CAST({text} AS REAL)) < 1e13))")  # fmt: skip
        return amt, ok

    def products(self, col: str, source: str) -> str:
        return (f"SELECT DISTINCT s.id AS id, je.value AS product FROM {source} s, "
                f"json_each(s.{col}) je "
                f"UNION ALL SELECT s.id, NULL FROM {source} s "
                f"WHERE s.{col} IS NULL OR json_array_length(s.{col}) = 0")  # fmt: skip

    def amount_value(self, v: Any, currency: str) -> Decimal:
        return Decimal(int(v)).scaleb(-CURRENCY_MINOR_UNITS[currency])

    def plain(self, col: str) -> str:
        # unary + keeps SQLite from walking an index on the column to group a whole table (one
        # random row read per deal); a scan and a sort are much faster
        return f"+{col}"


class _Postgres(_Dialect):
    name = "postgresql"

    def q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextmanager
    def session(self) -> Iterator[None]:
        """No JIT compilation while the KPI queries run (the session's setting is put back).

        The whole-table scans and aggregates of the KPI queries cost far above the JIT
        thresholds, and compiling their expressions takes longer than it saves: close to a
        second per funnel query on a million deals.
        """
        st = self.store
        old = st.query("SELECT current_setting('jit')")[0][0]
        if old == "off":
            yield
            return
        st.query("SELECT set_config('jit', 'off', false)")
        try:
            yield
        finally:
            st.query("SELECT set_config('jit', %s, false)", [old])

    @staticmethod
    def _path(path: Sequence[str | int]) -> str:
        return "{" + ",".join(str(p) for p in path) + "}"

    def j(self, col: str, *path: str | int) -> str:
        return f"({col} #>> '{self._path(path)}')"

    def jraw(self, col: str, *path: str | int) -> str:
        return f"({col} #> '{self._path(path)}')"

    def jhas(self, col: str, *path: str | int) -> str:
        return f"(({col} #> '{self._path(path)}') IS NOT NULL)"

    def micros(self, col: str) -> str:
        return f"(EXTRACT(EPOCH FROM {col}) * 1000000)::bigint"

    def ts(self, at: datetime) -> Any:
        return at.astimezone(UTC)

    def current_amount(self) -> tuple[str, str]:
        return "d.amount", "TRUE"

    def asof_amount(self, text: str, currency: str) -> tuple[str, str]:
        return f"({text})::numeric", "TRUE"

    def products(self, col: str, source: str) -> str:
        return (f"SELECT DISTINCT s.id AS id, je.value AS product FROM {source} s "
                f"CROSS JOIN LATERAL jsonb_array_elements_text(s.{col}) je(value) "
                f"WHERE jsonb_typeof(s.{col}) = 'array' "
                f"UNION ALL SELECT s.id, NULL FROM {source} s WHERE s.{col} IS NULL "
                f"OR jsonb_typeof(s.{col}) <> 'array' OR jsonb_array_length(s.{col}) = 0")  # fmt: skip

    def amount_value(self, v: Any, currency: str) -> Decimal:
        return v if isinstance(v, Decimal) else Decimal(str(v))


def _by_exponent() -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for c, e in CURRENCY_MINOR_UNITS.items():
        out.setdefault(e, []).append(c)
    return out


def dialect_of(store: Any) -> _Dialect:
    d = getattr(store, "dialect", None)
    if d == "sqlite":
        return _SQLite(store)
    if d == "postgresql":
        return _Postgres(store)
    raise Unsupported(f"no SQL dialect for {type(store).__name__}")


# ------------------------------------------------------------------------------------------------
# Facts: the deals as known at an instant, one row each
# ------------------------------------------------------------------------------------------------

_FACT_COLS = ("id", "status", "stage", "process", "currency", "amt", "amt_ok", "prob",
              "owner_id", "account_id", "created_at", "closed_at", "forecast_category",
              "products")  # fmt: skip


def _current_facts(dl: _Dialect) -> str:
    amt, ok = dl.current_amount()
    prods = dl.jraw("d.data", "product_ids")
    return (f"SELECT d.id AS id, d.status AS status, d.stage AS stage, d.process AS process, "
            f"d.currency AS currency, {amt} AS amt, {ok} AS amt_ok, d.probability AS prob, "
            f"d.owner_id AS owner_id, d.account_id AS account_id, d.created_at AS created_at, "
            f"d.closed_at AS closed_at, d.forecast_category AS forecast_category, "
            f"{prods} AS products FROM deals d")  # fmt: skip


def _kinds(kinds: Sequence[str]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def _asof_ctes(dl: _Dialect, inclusive: bool, prefix: str = "") -> str:
    """CTEs ``l``, ``x`` and ``f``: the deals rebuilt from their events up to a parameter
    instant. One scan of the events finds, per deal, the last event that set each field; the
    values are then read from those events by primary key."""
    op = "<=" if inclusive else "<"
    j = dl.j
    last = {
        "st": _kinds(_STATUS_KINDS),
        "stg": _kinds((*_STATUS_KINDS, "process_migrated")),
        "amt": _kinds(("created", "amount_changed")),
        "own": _kinds(("created", "owner_changed")),
        "pr": _kinds((*_STATUS_KINDS, "probability_changed")),
        "fc": _kinds((*_STATUS_KINDS, "forecast_category_changed")),
        "acc": f"kind = 'created' OR (kind = 'details_changed' AND "
               f"{dl.jhas('data', 'changes', '$map', 'account_id')})",
        "prd": f"kind = 'created' OR (kind = 'details_changed' AND "
               f"{dl.jhas('data', 'changes', '$map', 'product_ids')})",
    }  # fmt: skip
    cols = ", ".join(f"MAX(CASE WHEN {cond} THEN seq END) AS {k}" for k, cond in last.items())
    cols += ", MIN(seq) AS cr"
    L, X, F = prefix + "l", prefix + "x", prefix + "f"
    l_cte = f"{L} AS (SELECT deal_id, {cols} FROM deal_events WHERE at {op} ? GROUP BY deal_id)"

    def val(field: str, expr: str) -> str:
        # one primary-key lookup per value: cheap to plan and to run on both databases
        return (f"(SELECT {expr} FROM deal_events e WHERE e.deal_id = l.deal_id "
                f"AND e.seq = l.{field})")  # fmt: skip

    def money(i: int) -> str:
        return (f"CASE e.kind WHEN 'created' THEN {j('e.data', 'amount', '$money', i)} "
                f"ELSE {j('e.data', 'new', '$money', i)} END")  # fmt: skip

    created_status = j("e.data", "status")
    inner = f"""SELECT l.deal_id AS id,
        {val('st', f"CASE e.kind WHEN 'created' THEN {created_status} WHEN 'won' THEN 'won' "
                   f"WHEN 'lost' THEN 'lost' ELSE 'open' END")} AS status,
        {val('st', f"CASE WHEN e.kind IN ('won', 'lost') OR (e.kind = 'created' "
                   f"AND {created_status} <> 'open') THEN e.at END")} AS closed_at,
        {val('stg', f"CASE e.kind WHEN 'created' THEN {j('e.data', 'stage')} ELSE e.to_stage END")}
            AS stage,
        {val('cr', j('e.data', 'process'))} AS process,
        {val('amt', money(0))} AS amt_text,
        {val('amt', money(1))} AS currency,
        {val('pr', f"CASE e.kind WHEN 'probability_changed' THEN {j('e.data', 'new', '$rate')} "
                   f"ELSE {j('e.data', 'probability', '$rate')} END")} AS prob,
        {val('own', f"CASE e.kind WHEN 'created' THEN {j('e.data', 'owner_id')} "
                    f"ELSE {j('e.data', 'new')} END")} AS owner_id,
        {val('acc', f"CASE e.kind WHEN 'created' THEN {j('e.data', 'account_id')} "
                    f"ELSE {j('e.data', 'changes', '$map', 'account_id')} END")} AS account_id,
        {val('cr', 'e.at')} AS created_at,
        {val('fc', f"CASE e.kind WHEN 'forecast_category_changed' THEN {j('e.data', 'new')} "
                   f"ELSE {j('e.data', 'forecast_category')} END")} AS forecast_category,
        {val('prd', f"CASE e.kind WHEN 'created' THEN "
                    f"{dl.jraw('e.data', 'details', '$map', 'product_ids')} "
                    f"ELSE {dl.jraw('e.data', 'changes', '$map', 'product_ids')} END")} AS products
      FROM {L} l"""
    amt, ok = dl.asof_amount("x.amt_text", "x.currency")
    return ",\n".join([
        l_cte,
        f"{X} AS ({inner})",
        f"{F} AS MATERIALIZED (SELECT x.id, x.status, x.stage, x.process, x.currency, "
        f"{amt} AS amt, {ok} AS amt_ok, x.prob, x.owner_id, x.account_id, x.created_at, "
        f"x.closed_at, x.forecast_category, x.products FROM {X} x)",
    ])  # fmt: skip


class _Facts:
    """``WITH`` clauses that define ``f`` (facts) for one instant, with their parameters;
    ``prefix`` renames the clauses (``s_f``...) so two instants fit in one statement."""

    def __init__(self, dl: _Dialect, at: datetime | None, inclusive: bool = True,
                 prefix: str = "") -> None:  # fmt: skip
        self.name = prefix + "f"
        if at is None:
            self.sql = f"{self.name} AS ({_current_facts(dl)})"
            self.params: list[Any] = []
        else:
            self.sql = _asof_ctes(dl, inclusive, prefix)
            self.params = [dl.ts(at)]


# ------------------------------------------------------------------------------------------------
# Keys: the facts with their dimension values (one row per deal and product when needed)
# ------------------------------------------------------------------------------------------------


def _dim_expr(dl: _Dialect, dim: str) -> str:
    j = dl.j
    if dim == "owner":
        return dl.plain("f.owner_id")
    if dim == "team":
        return dl.plain("r.team_id")
    if dim == "region":
        return (f"COALESCE(NULLIF({j('r.data', 'region')}, ''), NULLIF({j('t.data', 'region')}, ''), "
                f"NULLIF({j('a.data', 'region')}, ''))")  # fmt: skip
    if dim == "manager":
        return "COALESCE(NULLIF(r.manager_id, ''), NULLIF(t.manager_id, ''))"
    if dim == "account":
        return dl.plain("f.account_id")
    if dim in ("industry", "size_band", "country"):
        return j("a.data", dim)
    if dim in ("stage", "status", "process", "currency", "forecast_category"):
        return dl.plain(f"f.{dim}")
    if dim == "product":
        return "px.product"
    if dim == "product_family":
        return "pf.family"
    raise Unsupported(f"dimension {dim!r} has no SQL form")


def _in(expr: str, allowed: Iterable[str | None]) -> tuple[str, list[Any]]:
    vals = [v for v in allowed if v is not None]
    parts = []
    if vals:
        parts.append(f"{expr} IN ({', '.join('?' * len(vals))})")
    if any(v is None for v in allowed):
        parts.append(f"{expr} IS NULL")
    return "(" + (" OR ".join(parts) or "1 = 0") + ")", vals


class _Keys:
    """``k``: the facts of ``f`` with columns k0, k1... for the ``by`` dimensions, filtered."""

    def __init__(self, dl: _Dialect, by: Sequence[str], where: Mapping[str, frozenset[str | None]]) -> None:
        self.by = list(by)
        used = {*by, *where}
        joins = []
        if used & {"team", "region", "manager"}:
            joins.append("LEFT JOIN reps r ON r.id = f.owner_id")
        if used & {"region", "manager"}:
            joins.append("LEFT JOIN teams t ON t.id = r.team_id")
        if used & {"region", "industry", "size_band", "country"}:
            joins.append("LEFT JOIN accounts a ON a.id = f.account_id")
        ctes: list[str] = []
        params: list[Any] = []
        conds: list[str] = []
        cparams: list[Any] = []
        need_px = any(d in _MULTI for d in (*by, *where))
        if need_px:
            ctes.append(f"px0 AS ({dl.products('products', 'f')})")
            ctes.append("pf0 AS (SELECT DISTINCT px0.id AS id, p.family AS family FROM px0 "
                        "LEFT JOIN products p ON p.id = px0.product)")
        if "product" in by:
            cond, ps = "1 = 1", list[Any]()
            if "product" in where:
                cond, ps = _in("px.product", where["product"])
            joins.append(f"JOIN px0 px ON px.id = f.id AND {cond}")
            params.extend(ps)
        if "product_family" in by:
            cond, ps = "1 = 1", list[Any]()
            if "product_family" in where:
                cond, ps = _in("pf.family", where["product_family"])
            joins.append(f"JOIN pf0 pf ON pf.id = f.id AND {cond}")
            params.extend(ps)
        for dim, allowed in where.items():
            if dim in by and dim in _MULTI:
                continue
            if dim == "product":
                c, ps = _in("w.product", allowed)
                conds.append(f"EXISTS (SELECT 1 FROM px0 w WHERE w.id = f.id AND {c})")
            elif dim == "product_family":
                c, ps = _in("w.family", allowed)
                conds.append(f"EXISTS (SELECT 1 FROM pf0 w WHERE w.id = f.id AND {c})")
            else:
                c, ps = _in(_dim_expr(dl, dim), allowed)
                conds.append(c)
            cparams.extend(ps)
        cols = ", ".join(f"{_dim_expr(dl, d)} AS k{i}" for i, d in enumerate(by))
        sel = "f.*" + (", " + cols if cols else "")
        where_sql = " AND ".join(conds) if conds else "1 = 1"
        ctes.append(f"k AS (SELECT {sel} FROM f {' '.join(joins)} WHERE {where_sql})")
        self.sql = ",\n".join(ctes)
        self.params = params + cparams
        self.cols = [f"k{i}" for i in range(len(by))]


def _key(row: Sequence[Any], n: int) -> tuple[str | None, ...]:
    return tuple(None if v is None else str(v) for v in row[:n])


# ------------------------------------------------------------------------------------------------
# Periods
# ------------------------------------------------------------------------------------------------


def _part_case(dl: _Dialect, col: str, parts: Sequence[Period | None], tz: tzinfo) -> tuple[str, list[Any]]:
    """An expression giving the index of the part ``col`` falls in (NULL outside every part): a
    balanced tree of comparisons with the parts' boundary instants, so each row costs about
    log2(parts) comparisons."""
    if parts == [None]:
        return f"CASE WHEN {col} IS NULL THEN NULL ELSE 0 END", []
    ps = [p for p in parts if p is not None]
    bounds = [dl.ts(p.start_instant(tz)) for p in ps] + [dl.ts(ps[-1].end_instant(tz))]
    params: list[Any] = []

    def tree(lo: int, hi: int) -> str:
        # parts lo..hi-1; the row is known to be >= bounds[lo] and < bounds[hi]
        if hi - lo == 1:
            return str(lo)
        mid = (lo + hi) // 2
        params.append(bounds[mid])
        left = tree(lo, mid)
        right = tree(mid, hi)
        return f"CASE WHEN {col} < ? THEN {left} ELSE {right} END"

    params.extend([bounds[0], bounds[-1]])
    head = f"CASE WHEN {col} IS NULL OR {col} < ? OR {col} >= ? THEN NULL ELSE "
    body = tree(0, len(ps))
    return head + body + " END", params


def _local(at: Any, dl: _Dialect, tz: tzinfo) -> date:
    dt = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    return dt.astimezone(tz).date()


# ------------------------------------------------------------------------------------------------
# compute
# ------------------------------------------------------------------------------------------------


def _with(*parts: tuple[str, list[Any]]) -> tuple[str, list[Any]]:
    sqls = [s for s, _ in parts if s]
    params = [p for _, ps in parts for p in ps]
    return "WITH " + ",\n".join(sqls), params


def compute(
    store: Any,
    metrics: Sequence[str],
    *,
    by: Sequence[str],
    period: PeriodKind | str | None,
    window: Period | None,
    asof: datetime | None,
    tz: tzinfo,
    where: Mapping[str, frozenset[str | None]],
    currency: str | None,
    fiscal: FiscalCalendar = CALENDAR_YEAR,
    inputs: KpiInputs | None,
    registry: KpiRegistry,
) -> KpiTable:
    """:func:`salesprocess.kpi.compute` in the database; :class:`Unsupported` when it cannot."""
    with dialect_of(store).session():
        return _compute(store, metrics, by=by, period=period, window=window, asof=asof, tz=tz,
                        where=where, currency=currency, fiscal=fiscal, inputs=inputs,
                        registry=registry)  # fmt: skip


def _compute(
    store: Any,
    metrics: Sequence[str],
    *,
    by: Sequence[str],
    period: PeriodKind | str | None,
    window: Period | None,
    asof: datetime | None,
    tz: tzinfo,
    where: Mapping[str, frozenset[str | None]],
    currency: str | None,
    fiscal: FiscalCalendar,
    inputs: KpiInputs | None,
    registry: KpiRegistry,
) -> KpiTable:
    if inputs is not None and inputs.available():
        raise Unsupported("KPI inputs are not in the database")
    kpis, pk = _resolve(registry, metrics, by, where, period, inputs or KpiInputs())
    for name, k, _ in kpis:
        if k.name not in SQL_KPIS or k.calculator is not _builtin(k.name).calculator:
            raise Unsupported(f"KPI {name!r} has no SQL form")
    for d in (*by, *where):
        if d != "period" and d not in SQL_DIMENSIONS:
            raise Unsupported(f"dimension {d!r} has no SQL form")
    dl = dialect_of(store)
    dims = [d for d in by if d != "period"]
    out_by = list(by)
    if pk is not None and "period" not in out_by:
        out_by.append("period")
    names = {k.name for _, k, _ in kpis}
    facts = _Facts(dl, asof, True)
    keys = _Keys(dl, dims, where)
    n = len(dims)
    kc = ", ".join(keys.cols)
    kcs = kc + ", " if kc else ""

    def q(body: str, *extra: tuple[str, list[Any]]) -> list[tuple[Any, ...]]:
        w, ps = _with((facts.sql, facts.params), *extra)
        return dl.run(f"{w}\n{body}", ps)

    # one scan of the facts: exactness (SQLite keeps amounts in minor units only when exact) and
    # the report currency (the only currency of the data as known at asof, before filters)
    bad, cmin, ncur = q("SELECT SUM(CASE WHEN amt_ok THEN 0 ELSE 1 END), MIN(currency), "
                        "COUNT(DISTINCT currency) FROM f")[0]  # fmt: skip
    if bad:
        raise Unsupported("an amount has more digits than its currency's minor units")
    if currency is None and ncur == 1:
        currency = cmin
    kk = (keys.sql, keys.params)
    # one scan of the keyed facts: the groups and the span of the data
    spans = q(f"SELECT {kcs}MIN(created_at), MAX(created_at), MIN(closed_at), MAX(closed_at) "
              f"FROM k" + (f" GROUP BY {kc}" if kc else ""), kk)  # fmt: skip
    found = {_key(r, n) for r in spans} if n else {()}
    groups = sorted(found, key=lambda t: tuple((x is None, x or "") for x in t))
    # periods
    parts: list[Period | None]
    if pk is None:
        parts = [window]
    else:
        w = window
        if w is None:
            ds = [_local(v, dl, tz) for r in spans for v in r[n:] if v is not None]
            if not ds:
                parts = []
            else:
                lo, hi = min(ds), max(ds)
                if asof is not None:
                    hi = min(hi, asof.astimezone(tz).date())
                if hi < lo:
                    parts = []
                else:
                    w = Period(Period.containing(lo, pk, fiscal).start,
                               Period.containing(hi, pk, fiscal).end)  # fmt: skip
        if w is not None:
            parts = list(w.split(pk, fiscal))
    cells: dict[tuple[tuple[str | None, ...], int], dict[str, Any]] = {}

    def cell(key: tuple[str | None, ...], i: int) -> dict[str, Any]:
        c = cells.get((key, i))
        if c is None:
            c = cells[(key, i)] = {}
        return c

    closed_names = names & {"deals_won", "deals_lost", "deals_closed", "win_rate", "won_revenue",
                            "avg_won_deal_size", "mean_cycle_days", "mean_cycle_days_closed",
                            "pipeline_velocity"}  # fmt: skip
    if parts and closed_names:
        case, cps = _part_case(dl, "k.closed_at", parts, tz)
        need_cyc = bool(names & {"mean_cycle_days", "mean_cycle_days_closed", "pipeline_velocity"})
        cyc = f"({dl.micros('k.closed_at')} - {dl.micros('k.created_at')})" if need_cyc else "0"
        rows = q(
            f"SELECT {kcs}p, SUM(CASE WHEN status = 'won' THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN status = 'lost' THEN 1 ELSE 0 END), "
            f"COUNT(CASE WHEN status = 'won' AND amt IS NOT NULL THEN 1 END), "
            f"SUM(CASE WHEN status = 'won' THEN amt END), "
            f"MIN(CASE WHEN status = 'won' AND amt IS NOT NULL THEN currency END), "
            f"MAX(CASE WHEN status = 'won' AND amt IS NOT NULL THEN currency END), "
            f"SUM(CASE WHEN status = 'won' THEN cyc END), SUM(cyc) "
            f"FROM (SELECT k.*, {case} AS p, {cyc} AS cyc FROM k WHERE k.status IN ('won', 'lost') "
            f"AND k.closed_at IS NOT NULL) x WHERE p IS NOT NULL GROUP BY {kcs}p",
            kk, ("", cps),
        )
        for r in rows:
            c = cell(_key(r, n), int(r[n]))
            (c["won"], c["lost"], c["won_n_amt"], c["won_sum"], c["cur_min"], c["cur_max"],
             c["won_cyc"], c["closed_cyc"]) = r[n + 1:]  # fmt: skip
        del rows  # the raw rows go before the result rows are built
    pct_specs: list[tuple[str, str, str, Decimal]] = []
    for nm, val, cond, p in (
        ("median_won_deal_size", "amt", "status = 'won' AND amt IS NOT NULL", _HALF),
        ("median_cycle_days", "cyc", "status = 'won'", _HALF),
        ("p90_cycle_days", "cyc", "status = 'won'", _P90),
        ("median_cycle_days_closed", "cyc", "1 = 1", _HALF),
        ("p90_cycle_days_closed", "cyc", "1 = 1", _P90),
    ):
        if nm in names:
            pct_specs.append((nm, val, cond, p))
    if parts:
        for nm, val, cond, p in pct_specs:
            case, cps = _part_case(dl, "k.closed_at", parts, tz)
            cyc = f"({dl.micros('k.closed_at')} - {dl.micros('k.created_at')})"
            a, b = _FRACTIONS[p]
            vexpr = "k.amt" if val == "amt" else cyc
            cur_in = (", MIN(currency) OVER wp AS cmin, MAX(currency) OVER wp AS cmax"
                      if val == "amt" else "")  # fmt: skip
            cur_out = ", cmin, cmax" if val == "amt" else ""
            rows = q(
                f"SELECT {kcs}p, n, rn, v{cur_out} FROM ("
                f"SELECT {kcs}p, v, ROW_NUMBER() OVER w - 1 AS rn, COUNT(*) OVER wp AS n{cur_in} "
                f"FROM (SELECT k.*, {case} AS p, {vexpr} AS v FROM k "
                f"WHERE k.status IN ('won', 'lost') AND k.closed_at IS NOT NULL) y "
                f"WHERE p IS NOT NULL AND {cond} "
                f"WINDOW w AS (PARTITION BY {kcs}p ORDER BY v), wp AS (PARTITION BY {kcs}p)) z "
                f"WHERE rn = ((n - 1) * {a}) / {b} OR rn = ((n - 1) * {a} + {b} - 1) / {b}",
                kk, ("", cps),
            )
            for r in rows:
                c = cell(_key(r, n), int(r[n]))
                c.setdefault(nm, {})[int(r[n + 2])] = r[n + 3]
                c[nm + "#n"] = int(r[n + 1])
                if val == "amt":
                    c[nm + "#cur"] = (r[n + 4], r[n + 5])
            del rows
    if parts and "new_deals" in names:
        case, cps = _part_case(dl, "k.created_at", parts, tz)
        rows = q(f"SELECT {kcs}p, COUNT(*) FROM (SELECT k.*, {case} AS p FROM k) x "
                 f"WHERE p IS NOT NULL GROUP BY {kcs}p", kk, ("", cps))  # fmt: skip
        for r in rows:
            cell(_key(r, n), int(r[n]))["new"] = int(r[n + 1])
        del rows
    snap_names = names & {"open_pipeline_count", "open_pipeline_value", "weighted_pipeline_value",
                          "pipeline_velocity"}  # fmt: skip
    if snap_names:
        for i in range(len(parts)):
            at, inclusive = _snapshot(parts[i], asof, tz)
            _snapshot_query(dl, facts, keys, n, at, inclusive, asof, i, cell, kcs,
                            "weighted_pipeline_value" in names)
    # assemble
    rows_out: list[KpiRow] = []
    for g in groups:
        for i in range(len(parts)):
            c = cells.pop((g, i), {})  # each cell freed once its row is built
            key = _row_key(out_by, g, parts[i])
            desc = _Desc(key)
            values: dict[str, Value] = {}
            for name, k, _ in kpis:
                values[name] = _value(k.name, c, currency, dl, desc)
            rows_out.append(KpiRow(key, values))
    return KpiTable(tuple(metrics), tuple(out_by), tuple(rows_out),
                    tuple(p for p in parts if p is not None), currency, "sql")  # fmt: skip


def _builtin(name: str) -> Any:
    from salesprocess.kpi.engine import default_registry

    return default_registry().get(name)


def _row_key(by: Sequence[str], g: tuple[str | None, ...], p: Period | None) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    it = iter(g)
    for d in by:
        out[d] = (p.label if p is not None else None) if d == "period" else next(it)
    return out


def _snapshot(p: Period | None, asof: datetime | None, tz: tzinfo) -> tuple[datetime | None, bool]:
    if p is None:
        return asof, True
    end = p.end_instant(tz)
    if asof is not None and asof < end:
        return asof, True
    return end, False


def _snapshot_query(
    dl: _Dialect, facts: _Facts, keys: _Keys, n: int, at: datetime | None, inclusive: bool,
    asof: datetime | None, i: int, cell: Callable[[tuple[str | None, ...], int], dict[str, Any]],
    kcs: str, weighted: bool,
) -> None:  # fmt: skip
    kk = (keys.sql, keys.params)
    if at == asof and inclusive:
        src = "k"
        pre: tuple[str, list[Any]] = ("", [])
    else:
        if at is not None:
            latest = dl.run("SELECT MAX(updated_at) FROM deals", [])
            last = latest[0][0] if latest else None
            if last is not None and (_as_dt(last) < at or (inclusive and _as_dt(last) == at)):
                at = None
        snap = _Facts(dl, at, inclusive, prefix="s_")
        pre = (snap.sql, snap.params)
        src = "(SELECT k.*, s.status AS s_status, s.amt AS s_amt, s.currency AS s_cur, " \
              "s.prob AS s_prob FROM k JOIN s_f s ON s.id = k.id)"
    w, ps = _with((facts.sql, facts.params), pre, kk)
    cols = ("status", "amt", "currency", "prob") if src == "k" else ("s_status", "s_amt", "s_cur",
                                                                     "s_prob")  # fmt: skip
    st, amt, cur, prob = cols
    rows = dl.run(
        f"{w}\nSELECT {kcs}COUNT(*), SUM({amt}), MIN(CASE WHEN {amt} IS NOT NULL THEN {cur} END), "
        f"MAX(CASE WHEN {amt} IS NOT NULL THEN {cur} END) FROM {src} x WHERE {st} = 'open' "
        + (f"GROUP BY {kcs.rstrip(', ')}" if kcs else ""),
        ps,
    )
    for r in rows:
        c = cell(_key(r, n), i)
        c["open_n"], c["open_sum"], c["open_cmin"], c["open_cmax"] = r[n:n + 4]
    if weighted:
        rows = dl.run(
            f"{w}\nSELECT {kcs}{prob}, SUM({amt}) FROM {src} x WHERE {st} = 'open' AND "
            f"{amt} IS NOT NULL GROUP BY {kcs}{prob}",
            ps,
        )
        for r in rows:
            c = cell(_key(r, n), i)
            c.setdefault("wsum", []).append((r[n], r[n + 1]))


def _as_dt(v: Any) -> datetime:
    return v if isinstance(v, datetime) else datetime.fromisoformat(str(v))


def _money_sum(total: Any, cmin: Any, cmax: Any, currency: str | None, dl: _Dialect,
               what: str, metric: str, desc: object) -> Money | None:  # fmt: skip
    if cmin is not None and cmin != cmax:
        raise CurrencyMismatchError(cmin, cmax, f"combine {what} ({metric} for {desc}); group by currency")
    cur = cmin if cmin is not None else currency
    if cur is None:
        return None
    amount = Decimal(0) if total is None else dl.amount_value(total, cur)
    return stats.pad_money(amount, cur)


def _pct(c: Mapping[str, Any], nm: str, p: Decimal) -> Decimal | None:
    ranks = c.get(nm)
    if not ranks:
        return None
    lo, hi, w = stats.percentile_positions(c[nm + "#n"], p)
    return stats.interpolate(Decimal(ranks[lo]), Decimal(ranks[hi]), w)


class _Desc:
    """A result row described for error messages (built only when an error needs it)."""

    __slots__ = ("key",)

    def __init__(self, key: Mapping[str, str | None]) -> None:
        self.key = key

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.key.items()) or "all"


def _value(name: str, c: Mapping[str, Any], currency: str | None, dl: _Dialect, desc: object) -> Value:
    won = int(c.get("won") or 0)
    lost = int(c.get("lost") or 0)
    if name == "deals_won":
        return won
    if name == "deals_lost":
        return lost
    if name == "deals_closed":
        return won + lost
    if name == "win_rate":
        return stats.div(won, won + lost)
    if name == "new_deals":
        return int(c.get("new") or 0)
    if name == "won_revenue":
        return _money_sum(c.get("won_sum"), c.get("cur_min"), c.get("cur_max"), currency, dl,
                          "won amounts", name, desc)  # fmt: skip
    if name == "avg_won_deal_size":
        nn = int(c.get("won_n_amt") or 0)
        if nn == 0:
            return None
        total = _money_sum(c.get("won_sum"), c.get("cur_min"), c.get("cur_max"), currency, dl,
                           "won amounts", name, desc)  # fmt: skip
        assert total is not None
        return stats.round_money(stats.CTX.divide(total.amount, Decimal(nn)), total.currency)
    if name == "median_won_deal_size":
        ranks = c.get(name)
        if not ranks:
            return None
        cmin, cmax = c[name + "#cur"]
        if cmin != cmax or cmin is None:
            raise CurrencyMismatchError(str(cmin), str(cmax), f"combine won amounts ({name} "
                                        f"for {desc}); group by currency")  # fmt: skip
        lo, hi, w = stats.percentile_positions(c[name + "#n"], _HALF)
        v = stats.interpolate(dl.amount_value(ranks[lo], cmin), dl.amount_value(ranks[hi], cmin), w)
        return stats.round_money(v, cmin)
    if name in ("mean_cycle_days", "mean_cycle_days_closed"):
        nn = won if name == "mean_cycle_days" else won + lost
        total = c.get("won_cyc" if name == "mean_cycle_days" else "closed_cyc")
        if not nn or total is None:
            return None
        return stats.days(stats.CTX.divide(Decimal(int(total)), Decimal(nn)))
    if name in ("median_cycle_days", "median_cycle_days_closed", "p90_cycle_days",
                "p90_cycle_days_closed"):
        pv = _pct(c, name, _HALF if name.startswith("median") else _P90)
        return None if pv is None else stats.days(pv)
    if name == "open_pipeline_count":
        return int(c.get("open_n") or 0)
    if name == "open_pipeline_value":
        return _money_sum(c.get("open_sum"), c.get("open_cmin"), c.get("open_cmax"), currency, dl,
                          "open amounts", name, desc)  # fmt: skip
    if name == "weighted_pipeline_value":
        cmin, cmax = c.get("open_cmin"), c.get("open_cmax")
        if cmin is not None and cmin != cmax:
            raise CurrencyMismatchError(str(cmin), str(cmax), f"combine weighted amounts ({name} "
                                        f"for {desc}); group by currency")  # fmt: skip
        cur = cmin if cmin is not None else currency
        if cur is None:
            return None
        weighted = Decimal(0)
        for prob, s in c.get("wsum", ()):
            pr = dl.prob_value(prob)
            if pr is not None:
                weighted = stats.CTX.add(weighted, stats.CTX.multiply(dl.amount_value(s, cur), pr))
        return stats.round_money(weighted, cur)
    if name == "pipeline_velocity":
        total = _money_sum(c.get("won_sum"), c.get("cur_min"), c.get("cur_max"), currency, dl,
                           "won amounts", name, desc)  # fmt: skip
        return velocity_from(int(c.get("open_n") or 0), won, won + lost, total,
                             int(c.get("won_cyc") or 0))  # fmt: skip
    raise Unsupported(name)  # pragma: no cover - guarded by SQL_KPIS


# ------------------------------------------------------------------------------------------------
# funnel
# ------------------------------------------------------------------------------------------------


def funnel(
    store: Any,
    *,
    process: Any,
    window: Period | None,
    asof: datetime | None,
    by: Sequence[str],
    where: Mapping[str, frozenset[str | None]],
    tz: tzinfo,
) -> list[Funnel]:
    """:func:`salesprocess.kpi.funnel` in the database; :class:`Unsupported` when it cannot."""
    with dialect_of(store).session():
        return _funnel(store, process=process, window=window, asof=asof, by=by, where=where, tz=tz)


def _funnel(
    store: Any,
    *,
    process: Any,
    window: Period | None,
    asof: datetime | None,
    by: Sequence[str],
    where: Mapping[str, frozenset[str | None]],
    tz: tzinfo,
) -> list[Funnel]:
    for d in (*by, *where):
        if d not in SQL_DIMENSIONS:
            raise Unsupported(f"dimension {d!r} has no SQL form")
    dl = dialect_of(store)
    facts = _Facts(dl, asof, True)
    keys = _Keys(dl, by, where)
    n = len(by)
    kc = ", ".join(keys.cols)
    kcs = kc + ", " if kc else ""
    kk = (keys.sql, keys.params)
    win_cond, win_params = "1 = 1", []
    if window is not None:
        win_cond = "k.created_at >= ? AND k.created_at < ?"
        win_params = [dl.ts(window.start_instant(tz)), dl.ts(window.end_instant(tz))]

    def q(body: str, *extra: tuple[str, list[Any]]) -> list[tuple[Any, ...]]:
        w, ps = _with((facts.sql, facts.params), kk, *extra)
        return dl.run(f"{w}\n{body}", ps)

    groups = sorted({_key(r, n) for r in q(f"SELECT DISTINCT {kc or '1'} FROM k")} if n else {()},
                    key=lambda t: tuple((x is None, x or "") for x in t))  # fmt: skip
    procs = [r[0] for r in q(f"SELECT DISTINCT process FROM k WHERE {win_cond}", ("", win_params))]
    if isinstance(process, Process):
        proc = process
    else:
        if process is None:
            if len(procs) > 1:
                raise KpiError([Problem("process", "ambiguous", "the deals follow several processes "
                                        f"({', '.join(sorted(procs))}); name one")])  # fmt: skip
            keys_ = procs or store.process_keys()[:1]
            if not keys_:
                raise KpiError([Problem("process", "missing", "no deals and no process to build a funnel")])
            process = keys_[0]
        try:
            proc = store.get_process(process)
        except KeyError:
            raise KpiError([Problem("process", "unknown_process",
                                    f"the data holds no process {process!r}")]) from None
    ranks = stage_ranks(proc)
    nsteps = len(steps_of(proc))
    last_open = nsteps - 2
    rank_rows = ", ".join("(CAST(? AS TEXT), CAST(? AS INTEGER))" for _ in ranks)
    rank_params: list[Any] = [x for kv in ranks.items() for x in kv]
    # the stays of each deal (events up to asof), ranked
    op = "<="
    ev_at = [dl.ts(asof)] if asof is not None else []
    ev_cond = f"e.at {op} ?" if asof is not None else "1 = 1"
    stage_of = f"CASE e.kind WHEN 'created' THEN {dl.j('e.data', 'stage')} ELSE e.to_stage END"
    # stays with their end (a migration that keeps the stage does not end a stay)
    entries = (
        f"rk(stage, rnk) AS (VALUES {rank_rows}),\n"
        f"se AS (SELECT e.deal_id, e.seq, e.kind, e.at, {stage_of} AS stage FROM deal_events e "
        f"WHERE {ev_cond} AND e.kind IN ('created', 'stage_changed', 'won', 'lost', 'reopened', "
        f"'process_migrated'))"
    )
    migrated = dl.run("SELECT 1 FROM deal_events WHERE kind = 'process_migrated' LIMIT 1", [])
    if migrated:
        kept = ("se2 AS (SELECT se.*, LAG(stage) OVER (PARTITION BY deal_id ORDER BY seq) AS prev "
                "FROM se),\nse3 AS (SELECT deal_id, seq, at, stage FROM se2 "
                "WHERE NOT (kind = 'process_migrated' AND stage = prev)),\n")  # fmt: skip
    else:  # no migration anywhere: every stage entry starts a stay (one sort instead of two)
        kept = "se3 AS (SELECT deal_id, seq, at, stage FROM se),\n"
    stays = (
        entries + ",\n" + kept
        + "sy AS (SELECT deal_id, stage, at AS entered, LEAD(at) OVER (PARTITION BY deal_id "
        "ORDER BY seq) AS lft FROM se3),\n"
        "ry AS (SELECT sy.deal_id, rk.rnk, sy.entered, sy.lft FROM sy JOIN rk ON rk.stage = sy.stage)"
    )
    stays_params = rank_params + ev_at

    hist_cond, hist_params = "1 = 0", list[Any]()
    if window is not None:
        hist_cond, hist_params = "k.created_at < ?", [dl.ts(window.start_instant(tz))]
    distinct = "DISTINCT " if any(d in _MULTI for d in by) else ""
    co = (f"co AS MATERIALIZED (SELECT {distinct}{kcs}k.id, k.status, "
          f"CASE WHEN {win_cond} THEN 1 ELSE 0 END AS cur, "
          f"CASE WHEN {hist_cond} THEN 1 ELSE 0 END AS hist FROM k WHERE k.process = ?)")  # fmt: skip
    co_params = [*win_params, *hist_params, proc.key]
    # one pass over each deal's stage events: furthest step, entered steps, adjacent moves
    moves = "('stage_changed', 'won', 'lost', 'reopened')"
    flags = ", ".join(
        [f"MAX(CASE WHEN t.rnk = {r} THEN 1 ELSE 0 END) AS e{r}" for r in range(nsteps)]
        + [f"MAX(CASE WHEN se.kind IN {moves} AND fr.rnk = {r} AND t.rnk = {r + 1} THEN 1 "
           f"ELSE 0 END) AS a{r}" for r in range(last_open + 1)]
    )  # fmt: skip
    se_sql = (f"se AS (SELECT e.deal_id, e.kind, {stage_of} AS stage, e.from_stage FROM deal_events e "
              f"WHERE {ev_cond} AND e.kind IN ('created', 'stage_changed', 'won', 'lost', 'reopened', "
              f"'process_migrated'))")  # fmt: skip
    co_ds = co
    if dl.name == "postgresql":
        # PostgreSQL runs no part of a plan that reads a CTE in parallel workers: the ranks
        # inline (VALUES lists) and the cohort unmaterialised let it split the scan and the
        # per-deal aggregate of the events over parallel workers
        rank_vals = f"(VALUES {rank_rows})"
        per_deal = (f"{se_sql},\n"
                    f"ds AS (SELECT se.deal_id, MAX(t.rnk) AS mx, {flags} FROM se "
                    f"LEFT JOIN {rank_vals} t(stage, rnk) ON t.stage = se.stage "
                    f"LEFT JOIN {rank_vals} fr(stage, rnk) ON fr.stage = se.from_stage "
                    f"GROUP BY se.deal_id)")  # fmt: skip
        per_deal_params = [*ev_at, *rank_params, *rank_params]
        co_ds = co.replace("co AS MATERIALIZED", "co AS NOT MATERIALIZED", 1)
    else:
        per_deal = (f"rk(stage, rnk) AS (VALUES {rank_rows}),\n{se_sql},\n"
                    f"ds AS (SELECT se.deal_id, MAX(t.rnk) AS mx, {flags} FROM se "
                    f"LEFT JOIN rk t ON t.stage = se.stage LEFT JOIN rk fr ON fr.stage = se.from_stage "
                    f"GROUP BY se.deal_id)")  # fmt: skip
        per_deal_params = [*rank_params, *ev_at]
    ck = kcs.replace("k", "co.k")
    dur, v_out = f"({dl.micros('ry.lft')} - {dl.micros('ry.entered')})", "v"
    if dl.name == "postgresql":  # sort the intervals, convert only the picked rows to microseconds
        dur, v_out = "(ry.lft - ry.entered)", dl.micros("v")
    conds = " OR ".join(f"rn = ((n - 1) * {a}) / {b} OR rn = ((n - 1) * {a} + {b} - 1) / {b}"
                        for a, b in _FRACTIONS.values())  # fmt: skip
    cur: dict[tuple[str | None, ...], dict[tuple[int, DealStatus], int]] = {}
    hist: dict[tuple[str | None, ...], dict[tuple[int, DealStatus], int]] = {}
    ent: dict[tuple[tuple[str | None, ...], int], int] = {}
    adjc: dict[tuple[tuple[str | None, ...], int], int] = {}
    sums = ", ".join([f"SUM(ds.e{r})" for r in range(nsteps)]
                     + [f"SUM(ds.a{r})" for r in range(last_open + 1)])  # fmt: skip
    # the cohort (and the history before the window) by furthest step and status
    for fr_ in q(f"SELECT {ck}ds.mx, co.status, co.cur, COUNT(*), {sums} FROM co "
                 f"JOIN ds ON ds.deal_id = co.id WHERE (co.cur = 1 OR co.hist = 1) "
                 f"AND ds.mx IS NOT NULL GROUP BY {ck}ds.mx, co.status, co.cur",
                 (per_deal, per_deal_params), (co_ds, co_params)):  # fmt: skip
        g = _key(fr_, n)
        is_cur = int(fr_[n + 2]) == 1
        tally = (cur if is_cur else hist).setdefault(g, {})
        fk = (int(fr_[n]), DealStatus(str(fr_[n + 1])))
        tally[fk] = tally.get(fk, 0) + int(fr_[n + 3])
        if is_cur:
            rest = fr_[n + 4:]
            for r in range(nsteps):
                ent[(g, r)] = ent.get((g, r), 0) + int(rest[r] or 0)
            for r in range(last_open + 1):
                adjc[(g, r)] = adjc.get((g, r), 0) + int(rest[nsteps + r] or 0)
    pct_rows = [tuple(pr) for pr in q(
        f"SELECT {kcs}rnk, n, rn, {v_out} FROM (SELECT {kcs}rnk, v, ROW_NUMBER() OVER w - 1 AS rn, "
        f"COUNT(*) OVER wp AS n FROM (SELECT {ck}ry.rnk AS rnk, {dur} AS v FROM co JOIN ry "
        f"ON ry.deal_id = co.id WHERE co.cur = 1 AND ry.lft IS NOT NULL AND ry.rnk < {nsteps - 1}) y "
        f"WINDOW w AS (PARTITION BY {kcs}rnk ORDER BY v), wp AS (PARTITION BY {kcs}rnk)) z "
        f"WHERE {conds}", (stays, stays_params), (co, co_params))]  # fmt: skip
    ranked: dict[tuple[tuple[str | None, ...], int], tuple[int, dict[int, int]]] = {}
    for row in pct_rows:
        g, rk_ = _key(row, n), int(row[n])
        nn, rn, v = int(row[n + 1]), int(row[n + 2]), int(row[n + 3])
        ranked.setdefault((g, rk_), (nn, {}))[1][rn] = v
    out = []
    for g in groups:
        durations: list[tuple[Decimal | None, ...]] = []
        for r in range(nsteps):
            got = ranked.get((g, r))
            if got is None:
                durations.append((None,) * len(PERCENTILES))
                continue
            nn, vals = got
            pcts: list[Decimal | None] = []
            for pq in PERCENTILES:
                lo, hi, wt = stats.percentile_positions(nn, pq)
                pcts.append(stats.interpolate(vals[lo], vals[hi], wt))
            durations.append(tuple(pcts))
        counts = FunnelCounts(
            cur.get(g, {}),
            [ent.get((g, r), 0) for r in range(nsteps)],
            [adjc.get((g, r), 0) for r in range(nsteps)],
            durations,
        )
        history = hist.get(g) if window is not None else None
        key = dict(zip(by, g, strict=True))
        out.append(build_funnel(proc, key, window, counts, history))
    return out
