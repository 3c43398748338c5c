"""The outbox: local changes waiting to be pushed to a CRM.

Save a local change through :meth:`Outbox.save_deal` (or :func:`save_deal` for several
connections) and the deal and its outbox entry are written in one store transaction: a crash
leaves either both or neither, so no change is ever saved without being queued. Each deal has at
most one entry per connection; a newer change replaces the entry (a push sends the deal's current
values, so the newest state is what goes out).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..model import Deal
from ..store import Store
from .reports import OutboxEntry

__all__ = ["Outbox", "save_deal"]

OUTBOX = "sync.outbox"
STATE = "sync.state"


def next_seq(store: Store, connection: str, n: int = 1) -> int:
    """Reserve ``n`` sequence numbers of a connection; returns the first. Call inside a
    transaction so the reservation commits with what uses it."""
    st = store.get_document(STATE, connection) or {}
    first = int(st.get("seq", 0)) + 1
    st["seq"] = first + n - 1
    store.put_document(STATE, connection, st)
    return first


class Outbox:
    """The outbox of one connection in one store."""

    def __init__(self, store: Store, connection: str) -> None:
        self.store = store
        self.connection = connection

    def __repr__(self) -> str:
        return f"Outbox({self.connection!r})"

    def key(self, deal_id: str) -> str:
        return f"{self.connection}/{deal_id}"

    def save_deal(self, deal: Deal, *, expected_version: int | None) -> Deal:
        """Save a locally changed deal and queue it for the push, in one transaction."""
        with self.store.transaction():
            saved = self.store.save_deal(deal, expected_version=expected_version)
            self.enqueue(saved)
        return saved

    def enqueue(self, deal: Deal) -> OutboxEntry:
        """Queue ``deal`` (its current version). Call inside the transaction that saved it."""
        with self.store.transaction():
            entry = OutboxEntry(self.connection, deal.id, deal.version, next_seq(self.store, self.connection))
            self.store.put_document(OUTBOX, self.key(deal.id), entry.to_doc())
        return entry

    def get(self, deal_id: str) -> OutboxEntry | None:
        d = self.store.get_document(OUTBOX, self.key(deal_id))
        return None if d is None else OutboxEntry.from_doc(d)

    def entries(self, status: str | None = None) -> Iterator[OutboxEntry]:
        """Entries of this connection in queue order (``status``: ``pending`` or ``parked``)."""
        prefix = self.connection + "/"
        found = [
            OutboxEntry.from_doc(d)
            for k, d in self.store.documents(OUTBOX)
            if k.startswith(prefix) and (status is None or d.get("status") == status)
        ]
        found.sort(key=lambda e: e.seq)
        return iter(found)

    def count(self, status: str | None = None) -> int:
        return sum(1 for _ in self.entries(status))

    def put(self, entry: OutboxEntry) -> None:
        self.store.put_document(OUTBOX, self.key(entry.deal_id), entry.to_doc())

    def remove(self, deal_id: str) -> None:
        self.store.delete_document(OUTBOX, self.key(deal_id))

    def retry_parked(self) -> int:
        """Put every parked entry back in the queue (attempts reset); returns how many."""
        n = 0
        with self.store.transaction():
            for e in list(self.entries("parked")):
                self.put(OutboxEntry(e.connection, e.deal_id, e.version, e.seq, "pending", 0, e.error))
                n += 1
        return n


def save_deal(
    store: Store, deal: Deal, *, expected_version: int | None, connections: Iterable[str]
) -> Deal:
    """Save a locally changed deal and queue it in the outbox of every connection, atomically."""
    conns: list[Any] = list(connections)
    with store.transaction():
        saved = store.save_deal(deal, expected_version=expected_version)
        for c in conns:
            Outbox(store, c).enqueue(saved)
    return saved
