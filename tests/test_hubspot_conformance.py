"""The adapter conformance kit against the HubSpot adapter and its fake: in-process and over
loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from salesprocess.store import Store
from salesprocess.testing.adapter_conformance import AdapterConformance
from salesprocess_adapters.fakes import HubSpotHarness
from salesprocess_adapters.sqlite import SQLiteStore


class TestHubSpotInProcess(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[HubSpotHarness]:
        h = HubSpotHarness("transport")
        yield h
        h.close()


class TestHubSpotOverHTTP(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[HubSpotHarness]:
        h = HubSpotHarness("http")
        yield h
        h.close()

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        s = SQLiteStore(tmp_path / "hubspot.sqlite")
        yield s
        s.close()
