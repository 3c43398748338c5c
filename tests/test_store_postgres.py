from __future__ import annotations

from typing import Any

import pytest

from salesprocess.testing.store_conformance import StoreConformance

pytestmark = pytest.mark.postgres


class TestPostgresStore(StoreConformance):
    @pytest.fixture
    def store(self, pg_store: Any) -> Any:
        return pg_store
