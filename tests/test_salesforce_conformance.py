"""The adapter conformance kit against the Salesforce adapter and its fake: in-process and over
loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from salesprocess.store import Store
from salesprocess.testing.adapter_conformance import AdapterConformance
from salesprocess_adapters.fakes import SalesforceHarness
from salesprocess_adapters.sqlite import SQLiteStore


class TestSalesforceInProcess(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[SalesforceHarness]:
        h = SalesforceHarness("transport")
        yield h
        h.close()


class TestSalesforceOverHTTP(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[SalesforceHarness]:
        h = SalesforceHarness("http")
        yield h
        h.close()

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        s = SQLiteStore(tmp_path / "salesforce.sqlite")
        yield s
        s.close()
