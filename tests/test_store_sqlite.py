from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from salesprocess.testing.store_conformance import StoreConformance
from salesprocess_adapters.sqlite import SQLiteStore


class TestSQLiteStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SQLiteStore]:
        s = SQLiteStore(tmp_path / "store.sqlite")
        yield s
        s.close()
