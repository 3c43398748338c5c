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


def test_nested_transaction_rolls_back_only_its_own_writes() -> None:
    """A failing inner transaction caught by the caller undoes only what it wrote (a savepoint)."""
    import pytest

    from salesprocess import Account, MemoryStore

    s = MemoryStore()
    s.put(Account("a0", "Before"))
    with s.transaction():
        s.put(Account("a1", "Outer"))
        s.put_document("goal", "g1", {"target": "10"})
        with pytest.raises(RuntimeError), s.transaction():
            s.put(Account("a2", "Inner"), Account("a0", "Renamed inside"))
            s.delete_document("goal", "g1")
            s.put_document("goal", "g2", {"target": "20"})
            raise RuntimeError("inner fails")
        s.put(Account("a3", "After inner"))
    assert [a.id for a in s.all(Account)] == ["a0", "a1", "a3"]
    assert s.get(Account, "a0").name == "Before"
    assert s.get_document("goal", "g1") == {"target": "10"}
    assert s.get_document("goal", "g2") is None
    with pytest.raises(ValueError), s.transaction():
        s.put(Account("a4", "Doomed"))
        raise ValueError("outer fails")
    assert [a.id for a in s.all(Account)] == ["a0", "a1", "a3"]
