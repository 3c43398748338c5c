"""The bulk lane of deal imports stores exactly what the general path stores.

New deals of a fresh import are encoded straight into rows (``tabular/_lane.py``); every other
row goes the general way. These tests import the same files with the lane on and off and compare
the stores table by table, the reports, and the errors.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesprocess.errors import ConflictError, ImportDataError
from salesprocess.model import DealCreated, EventSource, replay
from salesprocess_adapters.sqlite import SQLiteStore
from salesprocess_adapters.tabular import ImportMapping, _importer, import_file

HEADER = "opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value,currency,title"
MAPPING = """\
process = "b2b"
currency = "USD"
timezone = "Asia/Shanghai"
date_format = "%Y-%m-%d"
source = "crm"
asof = 2017-12-31

[columns]
external_id = "opportunity_id"
owner = "sales_agent"
account = "account"
products = "product"
stage = "deal_stage"
created_at = "engage_date"
closed_at = "close_date"
amount = "close_value"
currency = "currency"
name = "title"

[stages]
Prospecting = "lead"
Engaging = "needs_analysis"
Won = "won"
Lost = "lost"

[values.products]
GTXPro = "GTX Pro"

[values.amount]
"0" = ""
"""
TABLES = ("deals", "deal_events", "deal_external_ids", "reps", "accounts", "products", "processes")


def dump(store: Any) -> dict[str, list[tuple[Any, ...]]]:
    out = {t: sorted(store.query(f"SELECT * FROM {t}"), key=repr) for t in TABLES}
    if store.dialect == "sqlite":  # the schema too: indexes dropped for a load are back
        out["schema"] = store.query("SELECT type, name, sql FROM sqlite_master ORDER BY name")
    return out


def run(path: Path, *, lane: bool, on_error: str = "fail", batch_size: int = 3,
        store: Any = None) -> tuple[Any, dict[str, list[tuple[Any, ...]]], Any]:
    """Import ``path`` with the lane on or off: (report or error text, tables, store)."""
    saved = _importer._BULK_LANE
    _importer._BULK_LANE = lane
    try:
        s = store or SQLiteStore(":memory:")
        m = ImportMapping.from_toml(MAPPING, kind="deals")
        try:
            out: Any = import_file(s, "deals", path, mapping=m, on_error=on_error, batch_size=batch_size).to_dict()
        except ImportDataError as e:
            out = (str(e), e.report.to_dict())
        return out, dump(s), s
    finally:
        _importer._BULK_LANE = saved


def test_the_lane_is_taken_and_stores_what_the_general_path_stores(tmp_path: Path) -> None:
    f = tmp_path / "d.csv"
    f.write_text("\n".join([
        HEADER,
        "A1,Moses Frase,GTX Pro,Cancity,Won,2016-10-20,2017-03-01,1054.50,USD,First",
        "A2,Darcel Schlecht,GTXPro,Isdom,Lost,2016-10-25,2017-03-11,0,,",
        "A3,Moses Frase,MG Special;GTX Pro,,Engaging,2016-11-02,,,,",
        "A4,Anna Snelling,,Codehow,Prospecting,,,,,\"Quote \"\"big\"\" 大单\"",
        "A5,Moses Frase,GTX Pro,Cancity,Won,2016-10-20T23:30:00+00:00,2017-03-01T20:00:00Z,7,EUR,",
        "A6,Moses Frase,GTX Pro,Cancity,Prospecting,2016-10-20,2017-03-01,12,JPY,",
    ]) + "\n", encoding="utf-8")
    calls: list[int] = []
    real = SQLiteStore.insert_new_deals

    def spy(self: SQLiteStore, rows: Any, **kw: Any) -> bool:
        calls.append(len(rows))
        return real(self, rows, **kw)

    SQLiteStore.insert_new_deals = spy  # type: ignore[method-assign]
    try:
        a, ta, sa = run(f, lane=True)
    finally:
        SQLiteStore.insert_new_deals = real  # type: ignore[method-assign]
    b, tb, sb = run(f, lane=False)
    assert sum(calls) >= 2  # rows with a reference seen for the first time go the general way
    assert a == b
    assert ta == tb
    # the indexes built after the load are those the schema has
    indexes = "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"
    assert sa.query(indexes) == sb.query(indexes)
    assert {"deals_owner", "deal_events_at"} <= {r[0] for r in sa.query(indexes)}
    for d in sa.deals():
        assert replay(d.events) == d


def test_reimport_after_a_lane_import_is_unchanged(tmp_path: Path) -> None:
    f = tmp_path / "d.csv"
    f.write_text(HEADER + "\n" + "".join(
        f"X{i},Rep {i % 3},GTX Pro,Acc {i % 4},{['Won', 'Lost', 'Engaging', 'Prospecting'][i % 4]},"
        f"2016-10-{10 + i % 9:02d},2017-03-{10 + i % 9:02d},{100 + i},USD,\n" for i in range(40)
    ), encoding="utf-8")
    a, ta, sa = run(f, lane=True, batch_size=7)
    b, tb, sb = run(f, lane=False, batch_size=7)
    assert (a, ta) == (b, tb)
    again_a, ta2, _ = run(f, lane=True, store=sa)
    again_b, tb2, _ = run(f, lane=False, store=sb)
    assert again_a == again_b
    assert again_a["unchanged"] == 40
    assert ta2 == tb2 == ta


def test_a_taken_deal_id_fails_the_same_way_in_both_lanes(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    f = tmp_path / "d.csv"
    f.write_text(HEADER + "\n" + "".join(
        f"X{i},Rep,GTX Pro,Acc,Won,2016-10-10,2017-03-10,{i},USD,\n" for i in range(6)
    ), encoding="utf-8")
    errors = []
    for lane in (True, False):
        s = SQLiteStore(":memory:")
        first = DealCreated._make(("crm-X4", datetime(2016, 1, 1, tzinfo=UTC), "u", EventSource.USER, "b2b", 1,
                                   "lead", "open", "", None, None, None, None, None, None, None,
                                   _importer.EMPTY))
        from salesprocess.app import SalesProcess

        s.save_process(SalesProcess().process("b2b"))
        s.save_deal(replay([first]), expected_version=None)
        before = dump(s)
        with pytest.raises(ConflictError) as e:
            run(f, lane=lane, batch_size=100, store=s)
        errors.append(str(e.value))
        assert dump(s) == before
    assert errors[0] == errors[1]


@pytest.mark.postgres
def test_lane_equals_general_path_on_postgres(tmp_path: Path, pg_dsn: str, pg_store: Any) -> None:
    import uuid

    import psycopg

    from salesprocess_adapters.postgres import PostgresStore

    f = tmp_path / "d.csv"
    f.write_text(HEADER + "\n" + "".join(
        f"X{i},Rep {i % 3},GTX Pro;MG Special,Acc {i % 4},{['Won', 'Lost', 'Engaging', 'Prospecting'][i % 4]},"
        f"2016-10-{10 + i % 9:02d},2017-03-{10 + i % 9:02d}T22:00:00Z,{100 + i}.5,{['USD', 'JPY'][i % 2]},"
        f"Deal {i}\n" for i in range(300)
    ), encoding="utf-8")
    a, ta, _ = run(f, lane=True, batch_size=70, store=pg_store)
    schema = f"sp_test_{uuid.uuid4().hex[:12]}"
    other = PostgresStore(pg_dsn, schema=schema)
    try:
        b, tb, _ = run(f, lane=False, batch_size=70, store=other)
    finally:
        other.close()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    assert a == b
    assert a["created"] == 300
    assert ta == tb


def test_rows_the_filter_has_seen_go_the_general_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key looks seen (a filter of false hits): the lane writes what it queued and hands
    each row to the general path, which asks the store."""
    f = tmp_path / "d.csv"
    f.write_text(HEADER + "\n" + "".join(
        f"X{i % 5},Rep,GTX Pro,Acc,Won,2016-10-10,2017-03-{10 + i:02d},{i},USD,\n" for i in range(9)
    ), encoding="utf-8")
    b, tb, _ = run(f, lane=False)
    hits = iter([False] * 3 + [True] * 100)
    monkeypatch.setattr(_importer._Seen, "__contains__", lambda self, key: next(hits))
    monkeypatch.setattr(_importer._Seen, "add_new", lambda self, key: not next(hits))
    a, ta, _ = run(f, lane=True)
    assert (a, ta) == (b, tb)


_cell = st.sampled_from
GOOD = [
    [f"A{i}" for i in range(100)],
    ["Moses Frase", "Darcel"],
    ["GTX Pro", "GTXPro", "MG Special;GTX Pro", ""],
    ["Cancity", "", "Isdom"],
    ["Prospecting", "Engaging", "Won", "Lost"],
    ["2016-10-20", "2016-12-31", "2016-10-20T23:30:00+00:00"],
    ["2017-03-01", "", "2017-03-01T20:00:00Z"],
    ["1054", "0", "", "12.345", "1054.0", "12.3450"],  # equal amounts written differently
    ["", "USD", "eur", "JPY"],
    ["", "Deal \"big\"", "大单", "a,b"],
]
ODD = [
    ["", "A1", "A2"],
    ["", "Anna"],
    [";", "New Thing"],
    ["Big Co"],
    ["won", "Bogus", ""],
    ["", "2016-13-01"],
    ["2016-01-01", "soon"],
    ["-5", "1e3", "9" * 25],
    ["XXY"],
    ["x"],
]
"""Cells that make a row bad, a duplicate, or a first reference (rows the general path takes)."""


@st.composite
def deal_row(draw: st.DrawFn) -> tuple[str, ...]:
    row = [draw(_cell(c)) for c in GOOD]
    if draw(st.integers(0, 9)) == 0:
        i = draw(st.integers(0, len(ODD) - 1))
        row[i] = draw(_cell(ODD[i]))
    return tuple(row)


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(deal_row(), min_size=1, max_size=24), on_error=_cell(["fail", "skip"]), batch=st.integers(1, 5))
def test_lane_equals_general_path(rows: list[tuple[str, ...]], on_error: str, batch: int) -> None:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER.split(","))
    w.writerows(rows)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "d.csv"
        f.write_text(buf.getvalue(), encoding="utf-8")
        a, ta, _ = run(f, lane=True, on_error=on_error, batch_size=batch)
        b, tb, _ = run(f, lane=False, on_error=on_error, batch_size=batch)
    assert a == b
    assert ta == tb


def test_seen_filter_has_no_false_misses_and_few_false_hits() -> None:
    seen = _importer._Seen(bits=1 << 20)
    keys = [f"K{i}" for i in range(20_000)]
    fresh = sum(seen.add_new(k) for k in keys)
    assert all(k in seen for k in keys)
    assert not any(seen.add_new(k) for k in keys)  # a key added before never looks new
    assert fresh >= len(keys) - 50
    assert sum(f"other{i}" in seen for i in range(20_000)) < 100
    seen.add("late")
    assert "late" in seen
