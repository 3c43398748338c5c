"""SalesProcess.save_deal saves through the store and tells listeners what was new."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from salesprocess import ConflictError, MemoryStore, Money, SalesProcess, hookimpl

T = datetime(2026, 5, 4, 9, tzinfo=UTC)


class Listener:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], Any]] = []

    @hookimpl
    def salesprocess_deal_saved(self, deal: Any, events: Any, store: Any) -> None:
        self.calls.append((deal.id, [e.kind for e in events], store))


def test_save_deal_fires_with_only_the_new_events_and_not_on_conflict() -> None:
    app = SalesProcess()
    listener = Listener()
    app.register(listener)
    store = MemoryStore()
    p = app.process("saas")
    d = p.open_deal("D1", at=T, actor="amy", amount=Money("900", "EUR"))
    d = app.save_deal(store, d, expected_version=None)
    d2 = d.with_owner("amy", at=T + timedelta(hours=1), actor="amy")
    d2 = app.advance(p, d2, "demo", at=T + timedelta(hours=2), actor="amy")
    app.save_deal(store, d2, expected_version=1)
    assert listener.calls == [
        ("D1", ["created"], store),
        ("D1", ["owner_changed", "stage_changed"], store),
    ]
    stale = d.with_amount(Money("1000", "EUR"), at=T + timedelta(hours=3), actor="bob")
    with pytest.raises(ConflictError):
        app.save_deal(store, stale, expected_version=1)
    assert len(listener.calls) == 2
    assert store.get_deal("D1") == d2
