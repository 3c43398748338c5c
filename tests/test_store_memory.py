from __future__ import annotations

from collections.abc import Iterator

import pytest

from salesprocess.store import MemoryStore
from salesprocess.testing.store_conformance import StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[MemoryStore]:
        s = MemoryStore()
        yield s
        s.close()
