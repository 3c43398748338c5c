"""The adapter conformance kit against the reference adapter, on a memory and a SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from salesprocess.store import Store
from salesprocess.testing.adapter_conformance import AdapterConformance, ReferenceHarness
from salesprocess_adapters.sqlite import SQLiteStore


class TestReferenceAdapter(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[ReferenceHarness]:
        h = ReferenceHarness()
        yield h
        h.close()


class TestReferenceAdapterOnSQLite(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[ReferenceHarness]:
        h = ReferenceHarness()
        yield h
        h.close()

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        s = SQLiteStore(tmp_path / "sync.sqlite")
        yield s
        s.close()
