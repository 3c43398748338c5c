"""The adapter conformance kit against the Pipedrive adapter and its fake: in-process with an API
token (``x-api-token``) and over loopback HTTP with OAuth (access tokens that expire and are
refreshed), the second on a SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from salesprocess.store import Store
from salesprocess.testing.adapter_conformance import AdapterConformance
from salesprocess_adapters.fakes.pipedrive import PipedriveHarness
from salesprocess_adapters.sqlite import SQLiteStore


class TestPipedriveApiTokenInProcess(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[PipedriveHarness]:
        h = PipedriveHarness("transport", auth="api_token")
        yield h
        h.close()


class TestPipedriveOAuthInProcess(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[PipedriveHarness]:
        h = PipedriveHarness("transport", auth="oauth")
        yield h
        h.close()


class TestPipedriveOAuthOverHTTP(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[PipedriveHarness]:
        h = PipedriveHarness("http", auth="oauth")
        yield h
        h.close()

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        s = SQLiteStore(tmp_path / "pipedrive.sqlite")
        yield s
        s.close()
