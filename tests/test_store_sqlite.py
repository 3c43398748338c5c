from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from salesprocess.model import Deal
from salesprocess.testing.store_conformance import StoreConformance
from salesprocess_adapters.sqlite import SQLiteStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class TestSQLiteStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SQLiteStore]:
        s = SQLiteStore(tmp_path / "store.sqlite")
        yield s
        s.close()


def _page_size(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("PRAGMA page_size").fetchone()[0])
    finally:
        con.close()


def test_new_file_gets_the_store_page_size_and_an_old_file_keeps_its_own(tmp_path: Path) -> None:
    new = tmp_path / "new.sqlite"
    with SQLiteStore(new) as s:
        s.save_deal(Deal.create("d1", process="b2b", stage="lead", at=T0, actor="t"), expected_version=None)
    assert _page_size(new) == SQLiteStore.PAGE_BYTES == 16384
    with SQLiteStore(new) as s:
        assert s.page_size == 500  # deals per page of a streaming read, a different thing
    # a file made with SQLite's default page size (as earlier versions left it) opens unchanged
    old = tmp_path / "old.sqlite"
    with SQLiteStore(old, page_bytes=4096) as s:
        s.save_deal(Deal.create("d1", process="b2b", stage="lead", at=T0, actor="t"), expected_version=None)
    with SQLiteStore(old) as s:
        assert s.get_deal("d1").id == "d1"
        s.save_deal(Deal.create("d2", process="b2b", stage="lead", at=T0, actor="t"), expected_version=None)
        with s.reopen() as r:
            assert r.count_deals() == 2
    assert _page_size(old) == 4096


@pytest.mark.parametrize("bad", [0, 1000, 256, 131072])
def test_page_size_must_be_a_power_of_two_sqlite_accepts(tmp_path: Path, bad: int) -> None:
    with pytest.raises(ValueError, match="page_bytes"):
        SQLiteStore(tmp_path / "x.sqlite", page_bytes=bad)
