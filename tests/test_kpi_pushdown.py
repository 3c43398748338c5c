"""KPIs computed inside SQLite and PostgreSQL give exactly what the pure-Python path gives."""

from __future__ import annotations

import tempfile
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _kpi_company import ACCOUNTS, PRODUCTS, REPS, SAAS, T0, TEAMS, random_deals, won
from salesprocess.errors import CurrencyMismatchError, KpiError
from salesprocess.generate import generate_company, write_company
from salesprocess.kpi import Dataset, compute, funnel
from salesprocess.money import Money
from salesprocess.periods import Period
from salesprocess_adapters.kpi_sql import SQL_DIMENSIONS, SQL_KPIS
from salesprocess_adapters.sqlite import SQLiteStore

METRICS = sorted(SQL_KPIS)
DIMS = sorted(SQL_DIMENSIONS - {"currency"})

queries = st.fixed_dictionaries(
    {
        "by": st.lists(st.sampled_from(DIMS), max_size=2, unique=True),
        "period": st.sampled_from([None, None, "month", "quarter", "week"]),
        "asof": st.one_of(st.none(), st.integers(0, 260).map(lambda d: T0 + timedelta(days=d))),
        "window": st.one_of(
            st.none(),
            st.sampled_from(["2026-Q1", "2026-03", "2026-H1"]).map(Period.parse),
        ),
        "where": st.one_of(
            st.just({}),
            st.fixed_dictionaries({"owner": st.sampled_from([frozenset({"r1", "r2"}),
                                                             frozenset({None})])}),
            st.fixed_dictionaries({"product": st.just(frozenset({"p1"}))}),
            st.fixed_dictionaries({"status": st.just(frozenset({"won", "lost"}))}),
        ),
    }
)  # fmt: skip


def _fill(store: Any, deals: list[Any]) -> None:
    store.save_process(SAAS)
    store.put(*REPS, *TEAMS, *ACCOUNTS, *PRODUCTS)
    if deals:
        store.save_deals((d, None) for d in deals)


def _dataset(deals: list[Any]) -> Dataset:
    return Dataset(deals, reps=REPS, teams=TEAMS, accounts=ACCOUNTS, products=PRODUCTS,
                   processes=[SAAS])  # fmt: skip


def _same(store: Any, deals: list[Any], q: dict[str, Any]) -> None:
    ds = _dataset(deals)
    try:
        expect = compute(ds, METRICS, **q)
    except CurrencyMismatchError:
        with pytest.raises(CurrencyMismatchError):
            compute(store, METRICS, engine="sql", **q)
        return
    got = compute(store, METRICS, engine="sql", **q)
    assert got.engine == "sql"
    assert got.by == expect.by
    assert got.periods == expect.periods
    assert got.currency == expect.currency
    for a, b in zip(got.rows, expect.rows, strict=True):
        assert a.key == b.key
        for m in METRICS:
            va, vb = a.values[m], b.values[m]
            assert va == vb, (m, a.key, va, vb)
            assert str(va) == str(vb), (m, a.key, va, vb)  # the same digits, not only equal
    assert len(got.rows) == len(expect.rows)
    wq = {k: v for k, v in q.items() if k in ("asof", "window", "by", "where")}
    assert funnel(store, engine="sql", **wq) == funnel(ds, **wq)


@contextmanager
def sqlite_store(deals: list[Any]) -> Iterator[SQLiteStore]:
    with tempfile.TemporaryDirectory() as d:
        s = SQLiteStore(Path(d) / "kpi.sqlite")
        try:
            _fill(s, deals)
            yield s
        finally:
            s.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_deals(max_deals=10), queries)
def test_sqlite_pushdown_equals_python(deals, q):
    with sqlite_store(deals) as s:
        _same(s, deals, q)


@pytest.mark.postgres
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deals=random_deals(max_deals=10), q=queries)
def test_postgres_pushdown_equals_python(pg_dsn, deals, q):
    import psycopg

    from salesprocess_adapters.postgres import PostgresStore

    schema = f"sp_kpi_{uuid.uuid4().hex[:12]}"
    s = PostgresStore(pg_dsn, schema=schema)
    try:
        _fill(s, deals)
        _same(s, deals, q)
    finally:
        s.close()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _mixed() -> list[Any]:
    return [won("u", "r1", T0, T0 + timedelta(days=3), "10.00", currency="USD"),
            won("c", "r1", T0, T0 + timedelta(days=5), "20.50", currency="CNY"),
            won("j", "r2", T0, T0 + timedelta(days=6), "700", currency="JPY")]  # fmt: skip


def test_currencies_never_mix_in_the_database_either(tmp_path):
    deals = _mixed()
    with sqlite_store(deals) as s:
        with pytest.raises(CurrencyMismatchError):
            compute(s, ["won_revenue"], engine="sql")
        t = compute(s, ["won_revenue", "avg_won_deal_size"], by=["currency"], engine="sql")
        assert t.rows == compute(_dataset(deals), ["won_revenue", "avg_won_deal_size"],
                                 by=["currency"]).rows  # fmt: skip
        assert t.value("won_revenue", currency="JPY") == Money("700", "JPY")
        # counts do not care about currencies
        assert compute(s, ["deals_won"], engine="sql").value("deals_won") == 3


def test_what_sql_cannot_do_falls_back_or_is_refused(tmp_path):
    deals = [won("a", "r1", T0, T0 + timedelta(days=3), "10.00")]
    with sqlite_store(deals) as s:
        t = compute(s, ["activities"], engine="auto")
        assert t.engine == "python"
        with pytest.raises(KpiError, match="no SQL form"):
            compute(s, ["activities"], engine="sql")
        with pytest.raises(KpiError, match="no SQL form"):
            compute(s, ["deals_won"], by=["custom.segment"], engine="sql")
        assert compute(s, ["deals_won"], by=["owner"]).engine == "sql"


def test_sqlite_refuses_amounts_finer_than_minor_units(tmp_path):
    d = won("a", "r1", T0, T0 + timedelta(days=3), "10.005")
    with sqlite_store([d]) as s:
        with pytest.raises(KpiError, match="minor units"):
            compute(s, ["won_revenue"], engine="sql")
        t = compute(s, ["won_revenue"])  # auto: computed in Python, exactly
        assert (t.engine, t.value("won_revenue")) == ("python", Money("10.005", "CNY"))


@pytest.mark.slow
def test_pushdown_keeps_python_memory_flat(tmp_path):
    """The rows stay in the database: the Python heap does not grow with the company."""
    peaks = []
    for n in (300, 1200):
        path = tmp_path / f"c{n}.sqlite"
        s = SQLiteStore(path)
        write_company(s, generate_company(deals=n, seed=5, start=date(2025, 1, 1), months=12))
        tracemalloc.start()
        compute(s, ["win_rate", "avg_won_deal_size", "median_cycle_days"], by=["owner"],
                period="month", engine="sql")  # fmt: skip
        funnel(s, engine="sql")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        tracemalloc.start()
        Dataset.from_store(s)
        python_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        s.close()
    # 4× the deals: the database path's heap barely moves, loading the data grows with it
    assert peaks[1] < peaks[0] * 1.5 + 200_000
    assert python_peak > 4 * peaks[1]


def test_a_migration_that_keeps_the_stage_does_not_split_a_stay():
    from _kpi_company import deal
    from salesprocess import migrate_deals

    v2 = SAAS.with_version(2)
    base = [deal(f"m{i}", "r1", T0, [("demo", T0 + timedelta(days=1))]) for i in range(3)]
    moved = migrate_deals(SAAS, v2, base, at=T0 + timedelta(days=2), actor="t")
    done = [v2.advance(d, "closed_lost", at=T0 + timedelta(days=5), actor="t") for d in moved]
    with tempfile.TemporaryDirectory() as tmp:
        s = SQLiteStore(Path(tmp) / "m.sqlite")
        _fill(s, [])
        s.save_process(v2)
        s.save_deals((d, None) for d in done)
        ds = Dataset(done, reps=REPS, teams=TEAMS, processes=[SAAS, v2])
        (got,) = funnel(s, engine="sql")
        (want,) = funnel(ds)
        assert got == want
        assert got.stage("demo").median_days == 4  # one stay: day 1 to day 5
        s.close()


def test_sqlite_sorts_spill_to_disk_during_a_kpi_call_and_settings_come_back(tmp_path):
    """The KPI queries run with temporary files and a bounded cache (so a whole-table sort does
    not sit in memory); the store's own settings are back afterwards, and a call inside a
    transaction (where SQLite refuses the switch) still answers, with the same numbers."""
    import salesprocess_adapters.kpi_sql as kpi_sql

    s = SQLiteStore(tmp_path / "s.sqlite")
    _fill(s, [won(f"d{i}", "r1", T0, T0 + timedelta(days=10 * i), f"{100 * i}") for i in range(1, 6)])
    before = (s.query("PRAGMA temp_store"), s.query("PRAGMA cache_size"))
    seen: list[Any] = []
    run = kpi_sql._SQLite.run

    def spy(self: Any, sql: str, params: Any) -> Any:
        seen.append((self.store.query("PRAGMA temp_store")[0][0],
                     self.store.query("PRAGMA cache_size")[0][0]))  # fmt: skip
        return run(self, sql, params)

    kpi_sql._SQLite.run = spy  # type: ignore[method-assign]
    try:
        t = compute(s, ["win_rate", "median_cycle_days"], by=["owner"], engine="sql")
        (f,) = funnel(s, engine="sql")
        assert seen
        assert set(seen) == {(1, -kpi_sql._SQLITE_SORT_KIB)}
        assert (s.query("PRAGMA temp_store"), s.query("PRAGMA cache_size")) == before
        with s.transaction():
            assert compute(s, ["win_rate", "median_cycle_days"], by=["owner"], engine="sql") == t
            assert funnel(s, engine="sql") == [f]
        assert (s.query("PRAGMA temp_store"), s.query("PRAGMA cache_size")) == before
        # temporary tables of the caller survive: the switch is skipped while they exist
        s.query("CREATE TEMP TABLE mine (x)")
        seen.clear()
        compute(s, ["win_rate"], by=["owner"], engine="sql")
        assert {ts for ts, _ in seen} == {2}
        assert s.query("SELECT COUNT(*) FROM temp.mine") == [(0,)]
    finally:
        kpi_sql._SQLite.run = run  # type: ignore[method-assign]
        s.close()
