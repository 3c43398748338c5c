"""The adapter conformance kit against the Odoo adapter and its fake: JSON-2 (Odoo 19) in-process,
JSON-RPC ``execute_kw`` (an Odoo 17 server) in-process, and JSON-2 over loopback HTTP on a SQLite
store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from salesprocess.store import Store
from salesprocess.testing.adapter_conformance import AdapterConformance
from salesprocess_adapters.fakes.odoo import OdooHarness
from salesprocess_adapters.sqlite import SQLiteStore


class TestOdooJson2InProcess(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[OdooHarness]:
        h = OdooHarness("transport", protocol="json2")
        yield h
        h.close()


class TestOdooJsonRpcInProcess(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[OdooHarness]:
        h = OdooHarness("transport", protocol="jsonrpc", version=17)
        yield h
        h.close()


class TestOdooJson2OverHTTP(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[OdooHarness]:
        h = OdooHarness("http", protocol="json2")
        yield h
        h.close()

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        s = SQLiteStore(tmp_path / "odoo.sqlite")
        yield s
        s.close()
