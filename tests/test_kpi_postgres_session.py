"""The PostgreSQL KPI pushdown switches JIT off for the duration of a call and puts the
session's setting back (also inside a transaction), with the same answers as Python."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from _kpi_company import ACCOUNTS, PRODUCTS, REPS, SAAS, T0, TEAMS, won
from salesprocess.kpi import Dataset, compute, funnel


@pytest.mark.postgres
def test_jit_is_off_during_a_kpi_call_and_comes_back(pg_store: Any) -> None:
    import salesprocess_adapters.kpi_sql as kpi_sql

    s = pg_store
    deals = [won(f"d{i}", "r1", T0, T0 + timedelta(days=10 * i), f"{100 * i}") for i in range(1, 6)]
    s.save_process(SAAS)
    s.put(*REPS, *TEAMS, *ACCOUNTS, *PRODUCTS)
    s.save_deals((d, None) for d in deals)
    ds = Dataset(
        deals, reps=REPS, teams=TEAMS, accounts=ACCOUNTS, products=PRODUCTS, processes=[SAAS]
    )
    s.query("SET jit = on")
    seen: list[Any] = []
    run = kpi_sql._Postgres.run

    def spy(self: Any, sql: str, params: Any) -> Any:
        seen.append(self.store.query("SELECT current_setting('jit')")[0][0])
        return run(self, sql, params)

    kpi_sql._Postgres.run = spy  # type: ignore[method-assign]
    try:
        t = compute(s, ["win_rate", "median_cycle_days"], by=["owner"], engine="sql")
        assert t.engine == "sql"
        assert funnel(s, engine="sql") == funnel(ds)
        assert set(seen) == {"off"}
        assert s.query("SELECT current_setting('jit')")[0][0] == "on"
        with s.transaction():
            assert funnel(s, engine="sql") == funnel(ds)
        assert s.query("SELECT current_setting('jit')")[0][0] == "on"
        s.query("SET jit = off")  # a session that has it off keeps it off
        assert funnel(s, engine="sql") == funnel(ds)
        assert s.query("SELECT current_setting('jit')")[0][0] == "off"
    finally:
        kpi_sql._Postgres.run = run  # type: ignore[method-assign]
