"""Bulk writes of the SQL stores: ``save_deals(isolated=False)`` inside a transaction takes no
savepoint when the batch checks out, and stores what the isolated way stores; a batch that does
not check out reports the same conflicts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from salesprocess.errors import BatchConflictError, ConflictError
from salesprocess.model import Deal, EventSource
from salesprocess.money import Money
from salesprocess_adapters.sqlite import SQLiteStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TABLES = ("deals", "deal_events", "deal_external_ids")


def deal(i: int) -> Deal:
    return Deal.create(
        f"D{i:04d}", process="b2b", stage="lead", at=T0 + timedelta(minutes=i), actor="t",
        source=EventSource.IMPORT, amount=Money(f"{i}.50", "CNY"), owner_id=f"rep-{i % 3}",
        external_ids={"crm": f"X{i}"},
    )  # fmt: skip


def dump(store: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(store.query(f"SELECT * FROM {t}"), key=repr) for t in TABLES}


def savepoints(store: Any) -> list[str]:
    seen: list[str] = []
    real = store._cursor_exec

    def spy(sql: str, params: Any) -> Any:
        if "SAVEPOINT" in sql:
            seen.append(sql)
        return real(sql, params)

    store._cursor_exec = spy
    return seen


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    if request.param == "sqlite":
        yield SQLiteStore(":memory:"), SQLiteStore(":memory:")
        return
    import uuid

    import psycopg

    from salesprocess_adapters.postgres import PostgresStore

    dsn = request.getfixturevalue("pg_dsn")
    names = [f"sp_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    a, b = (PostgresStore(dsn, schema=n) for n in names)
    yield a, b
    for s in (a, b):
        s.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n in names:
            conn.execute(f'DROP SCHEMA IF EXISTS "{n}" CASCADE')


def test_unisolated_batches_store_the_same_without_savepoints(stores: tuple[Any, Any]) -> None:
    bare, isolated = stores
    first = [deal(i) for i in range(12)]
    later = [d.with_amount(Money("99", "CNY"), at=T0 + timedelta(days=1), actor="t") for d in first[:5]]
    sps = savepoints(bare)
    for store, iso in ((bare, False), (isolated, True)):
        store.chunk_size = 4
        with store.transaction():
            assert store.save_deals([(d, None) for d in first], isolated=iso) == 12
            assert store.save_deals([(d, 1) for d in later] + [(deal(50), None)], isolated=iso) == 6
    assert sps == []
    assert dump(bare) == dump(isolated)


def test_unisolated_batches_that_conflict_report_it_and_leave_nothing(stores: tuple[Any, Any]) -> None:
    store, _ = stores
    with store.transaction():
        store.save_deals([(deal(1), None), (deal(2), None)], isolated=False)
    before = dump(store)
    stale = deal(1).with_amount(Money("5", "CNY"), at=T0 + timedelta(days=1), actor="t")
    with store.transaction():
        with pytest.raises(ConflictError):
            store.save_deals([(deal(3), None), (stale, 0)], isolated=False)
        with pytest.raises(BatchConflictError):
            store.save_deals([(deal(4), None), (deal(2), None), (stale, 2)], isolated=False)
        with pytest.raises(ConflictError):  # an external id another deal has
            taken = Deal.create("D9999", process="b2b", stage="lead", at=T0, actor="t",
                                external_ids={"crm": "X1"})
            store.save_deals([(taken, None)], isolated=False)
    assert dump(store) == before
