"""The adapter conformance kit against the 纷享销客 (Fxiaoke) adapter and its fake (商机2.0 with
Chinese stage names): in-process and over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from salesprocess.store import Store
from salesprocess.testing.adapter_conformance import AdapterConformance
from salesprocess_adapters.fakes import FxiaokeHarness
from salesprocess_adapters.sqlite import SQLiteStore


class TestFxiaokeInProcess(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[FxiaokeHarness]:
        h = FxiaokeHarness("transport")
        yield h
        h.close()


class TestFxiaokeOverHTTP(AdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Iterator[FxiaokeHarness]:
        h = FxiaokeHarness("http")
        yield h
        h.close()

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        s = SQLiteStore(tmp_path / "fxiaoke.sqlite")
        yield s
        s.close()
