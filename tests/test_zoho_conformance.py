"""The adapter conformance kit against the Zoho adapter and its fake (with its default Chinese
pipeline and Blueprint): in-process and over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from salesprocess.store import Store
from salesprocess.testing.adapter_conformance import AdapterConformance
from salesprocess_adapters.fakes import ZohoHarness
from salesprocess_adapters.sqlite import SQLiteStore


class TestZohoInProcess(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[ZohoHarness]:
        h = ZohoHarness("transport")
        yield h
        h.close()


class TestZohoOverHTTP(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[ZohoHarness]:
        h = ZohoHarness("http")
        yield h
        h.close()

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        s = SQLiteStore(tmp_path / "zoho.sqlite")
        yield s
        s.close()
