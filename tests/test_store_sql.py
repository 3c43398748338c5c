"""What the SQL stores promise beyond the Store protocol: URLs, columns that agree with the event
history, exact amounts in SQL, streaming with flat memory, schema handling, clear errors."""

from __future__ import annotations

import json
import sqlite3
import sys
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from salesprocess import SalesProcess
from salesprocess.codec import encode_deal_state, encode_value
from salesprocess.errors import PluginError, SchemaError, StoreError
from salesprocess.model import Deal
from salesprocess.money import CURRENCY_MINOR_UNITS, Money
from salesprocess.testing.store_conformance import DealRecipe, deal_recipes, money_values, move
from salesprocess_adapters._sql import amount_minor, event_from_row, event_json
from salesprocess_adapters.sqlite import SQLiteStore, sqlite_path

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_prop = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_counter = iter(range(10**9))


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "s.sqlite")
    yield s
    s.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "s.sqlite")
        yield s
        s.close()
    else:
        yield request.getfixturevalue("pg_store")


# ------------------------------------------------------------------------------------------------
# Opening by URL
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("plain.sqlite", "plain.sqlite"),
        ("sqlite:///rel/x.db", "rel/x.db"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
        ("sqlite3:///y.db", "y.db"),
        ("sqlite:///:memory:", ":memory:"),
        (Path("p/q.sqlite"), "p/q.sqlite"),
    ],
)
def test_sqlite_url_forms(url: Any, path: str) -> None:
    assert sqlite_path(url) == path


def test_open_store_picks_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sp = SalesProcess()
    for url, file in (("a.sqlite", tmp_path / "a.sqlite"), ("sqlite:///b.db", tmp_path / "b.db"),
                      (f"sqlite:///{tmp_path}/c.db", tmp_path / "c.db")):  # fmt: skip
        store = sp.open_store(url)
        try:
            assert isinstance(store, SQLiteStore)
            store.save_deal(Deal.create("d", process="b2b", stage="lead", at=T0, actor="t"), expected_version=None)
        finally:
            store.close()
        assert file.is_file()
        with sqlite3.connect(file) as con:
            assert con.execute("SELECT id FROM deals").fetchall() == [("d",)]
    mem = sp.open_store("sqlite:///:memory:")
    assert "persistent" not in mem.capabilities
    mem.close()


def test_sqlite_file_settings(sqlite_store: SQLiteStore) -> None:
    assert sqlite_store.query("PRAGMA journal_mode") == [("wal",)]
    assert sqlite_store.query("PRAGMA foreign_keys") == [(1,)]
    assert sqlite_store.query("PRAGMA busy_timeout")[0][0] == 30_000
    assert sqlite_store.dialect == "sqlite"


def test_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        SQLiteStore(tmp_path / "no" / "such" / "dir" / "x.sqlite")


def test_closed_store_says_so(sqlite_store: SQLiteStore) -> None:
    sqlite_store.close()
    sqlite_store.close()
    with pytest.raises(StoreError, match="closed"):
        sqlite_store.count_deals()


def test_postgres_needs_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from salesprocess_adapters.postgres import PostgresStore

    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(PluginError, match=r"salesprocess\[postgres\]"):
        PostgresStore("postgresql://nobody@127.0.0.1/none")
    with pytest.raises(PluginError, match="postgres"):
        SalesProcess().open_store("postgresql://nobody@127.0.0.1/none")


def _pg_url(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(dsn)
    return f"postgresql://{p.get('user', '')}@{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}/{p['dbname']}"


@pytest.mark.postgres
def test_open_store_picks_postgres_and_its_schema(pg_dsn: str, pg_schema: str) -> None:
    from salesprocess_adapters.postgres import PostgresStore, split_schema

    url = _pg_url(pg_dsn)
    assert split_schema(f"{url}?schema=abc&connect_timeout=5") == (f"{url}?connect_timeout=5", "abc")
    sp = SalesProcess()
    a = sp.open_store(f"{url}?schema={pg_schema}")
    b = sp.open_store(url.replace("postgresql://", "postgres://"), schema=pg_schema + "_b")
    try:
        assert isinstance(a, PostgresStore)
        assert a.schema == pg_schema
        a.save_deal(Deal.create("only-in-a", process="b2b", stage="lead", at=T0, actor="t"), expected_version=None)
        assert b.count_deals() == 0
        assert a.query("SELECT current_schema()") == [(pg_schema,)]
        assert b.query("SELECT current_schema()") == [(pg_schema + "_b",)]
    finally:
        a.close()
        b.close()
        import psycopg

        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{pg_schema}_b" CASCADE')
    with pytest.raises(ValueError, match="identifier"):
        PostgresStore(pg_dsn, schema="bad; drop table x")


@pytest.mark.postgres
def test_postgres_newer_schema_is_refused(pg_store: Any) -> None:
    pg_store.query("UPDATE schema_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaError, match="99"):
        pg_store.reopen()


@pytest.mark.postgres
def test_postgres_refuses_nul_with_a_clear_error(pg_store: Any) -> None:
    with pytest.raises(StoreError, match="U\\+0000"):
        pg_store.save_deal(Deal.create("nul", process="b2b", stage="lead", at=T0, actor="t", name="a\x00b"),
                           expected_version=None)  # fmt: skip
    assert pg_store.count_deals() == 0
    pg_store.save_deal(Deal.create("ok", process="b2b", stage="lead", at=T0, actor="t"), expected_version=None)
    assert pg_store.count_deals() == 1


# ------------------------------------------------------------------------------------------------
# The state columns agree with the history
# ------------------------------------------------------------------------------------------------


def _state_columns(store: Any, deal_id: str) -> dict[str, Any]:
    cols = ("id", "process", "process_version", "name", "stage", "status", "amount", "currency", "close_date",
            "owner_id", "account_id", "probability", "probability_source", "forecast_category", "created_at",
            "stage_entered_at", "closed_at", "updated_at", "version")  # fmt: skip
    ph = "?" if store.dialect == "sqlite" else "%s"
    (row,) = store.query(f"SELECT {', '.join(cols)} FROM deals WHERE id = {ph}", (deal_id,))
    return dict(zip(cols, row, strict=True))


def _normalise(col: str, v: Any) -> Any:
    """Column values and encode_deal_state values in one comparable form."""
    if v is None:
        return None
    if col in ("amount", "probability"):
        return Decimal(v)
    if col.endswith("_at"):
        return v if isinstance(v, datetime) else datetime.fromisoformat(v)
    if col == "close_date":
        return v if isinstance(v, date) else date.fromisoformat(v)
    return v


@_prop
@given(recipe=deal_recipes())
def test_state_columns_equal_the_replayed_deal(sql_store: Any, recipe: DealRecipe) -> None:
    d = recipe.build(f"s{next(_counter)}")
    sql_store.save_deal(d, expected_version=None)
    loaded = sql_store.get_deal(d.id)
    expected = encode_deal_state(loaded)
    got = _state_columns(sql_store, d.id)
    for col, v in got.items():
        assert _normalise(col, v) == _normalise(col, expected[col]), col
    if loaded.amount is not None and sql_store.dialect == "sqlite":  # the text keeps the very digits
        assert Decimal(got["amount"]).as_tuple() == loaded.amount.amount.as_tuple()


def test_stage_columns_of_events(sql_store: Any) -> None:
    d = Deal.create("st", process="b2b", stage="lead", at=T0, actor="t")
    d = move(d, "qualify", T0 + timedelta(hours=1))
    d = d.with_owner("r1", at=T0 + timedelta(hours=2), actor="t")
    d = move(d, "closed_won", T0 + timedelta(hours=3), outcome="won")
    sql_store.save_deal(d, expected_version=None)
    rows = sql_store.query("SELECT seq, kind, from_stage, to_stage FROM deal_events ORDER BY seq")
    assert rows == [(1, "created", None, None), (2, "stage_changed", "lead", "qualify"),
                    (3, "owner_changed", None, None), (4, "won", "qualify", "closed_won")]  # fmt: skip


@_prop
@given(recipe=deal_recipes())
def test_event_text_is_the_codec_encoding(recipe: DealRecipe) -> None:
    for e in recipe.build("x").events:
        codec = {k: encode_value(v) for k, v in e.payload().items() if v is not None}
        assert json.loads(event_json(e)) == json.loads(json.dumps(codec))
        assert event_from_row(e.deal_id, e.kind, e.at, e.actor, e.source.value, event_json(e)) == e


# ------------------------------------------------------------------------------------------------
# Exact amounts in SQL
# ------------------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(m=money_values(("JPY", "USD", "KWD", "CLF")))
def test_amount_minor_is_exact_or_absent(m: Money) -> None:
    exact = Fraction(m.amount) * 10 ** CURRENCY_MINOR_UNITS[m.currency]
    expected = int(exact) if exact.denominator == 1 and -(2**63) <= exact < 2**63 else None
    assert amount_minor(m.amount, m.currency) == expected


def test_amounts_sum_exactly_in_sql(sqlite_store: SQLiteStore) -> None:
    amounts = ["0.10", "0.20", "1234567890123.45", "0.01", "99.99"] * 20
    sqlite_store.save_deals(
        (Deal.create(f"a{i}", process="b2b", stage="lead", at=T0, actor="t", amount=Money(a, "USD"), owner_id="r1"), None)
        for i, a in enumerate(amounts)
    )
    (total,) = sqlite_store.query("SELECT sum(amount_minor) FROM deals GROUP BY owner_id")
    assert Decimal(total[0]).scaleb(-2) == sum(Decimal(a) for a in amounts)


@pytest.mark.postgres
def test_postgres_amounts_are_numeric(pg_store: Any) -> None:
    amounts = ["0.10", "0.20", "1234567890123.45", "0.000001"] * 5
    pg_store.save_deals(
        (Deal.create(f"a{i}", process="b2b", stage="lead", at=T0, actor="t", amount=Money(a, "USD"), owner_id="r1"), None)
        for i, a in enumerate(amounts)
    )
    assert pg_store.query("SELECT sum(amount) FROM deals GROUP BY owner_id") == [(sum(Decimal(a) for a in amounts),)]


# ------------------------------------------------------------------------------------------------
# Streaming keeps memory flat
# ------------------------------------------------------------------------------------------------


def test_streaming_reads_keep_memory_flat(sql_store: Any) -> None:
    n = 4000
    sql_store.save_deals(
        (Deal.create(f"m{i:05d}", process="b2b", stage="lead", at=T0, actor="t", name="名" * 40), None)
        for i in range(n)
    )
    sql_store.page_size = 50

    def peak(consume: Any) -> int:
        tracemalloc.start()
        try:
            consume()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    for _ in sql_store.events(until=T0 + timedelta(days=1)):  # warm caches before measuring
        pass
    streamed = peak(lambda: sum(1 for _ in sql_store.deals()))
    held = peak(lambda: len(list(sql_store.deals())))
    streamed_events = peak(lambda: sum(1 for _ in sql_store.events()))
    held_events = peak(lambda: len(list(sql_store.events())))
    assert streamed * 5 < held, (streamed, held)
    assert streamed_events * 3 < held_events, (streamed_events, held_events)
