"""The store contract and the in-memory store.

A store keeps processes (versioned), deals with their event history, the other entities
(accounts, contacts, teams, reps, products, activities) and named documents (goals, plans, sync
cursors, outboxes...). Every store — in-memory, SQLite, PostgreSQL — implements :class:`Store` and
passes the same conformance kit (:mod:`salesprocess.testing.store_conformance`).

Writes of a deal are optimistic: :meth:`Store.save_deal` takes the version the writer loaded
(``expected_version``; ``None`` for a new deal). If the store holds another version, nothing is
written and :class:`~salesprocess.errors.ConflictError` is raised. The new events and the new
current state are written in one transaction.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

import attrs

from .codec import ENTITY_KIND
from .errors import ConflictError, DomainError, NotFoundError
from .model import Deal, DealEvent, DealStatus
from .periods import Period
from .process import Process

__all__ = ["Capability", "DealFilter", "MemoryStore", "Store"]

E = TypeVar("E")


class Capability:
    """Capability flags a store may declare in ``capabilities``."""

    PERSISTENT = "persistent"
    """Data survives closing and reopening the store."""
    MULTI_PROCESS = "multi_process"
    """Several OS processes may write the same store safely."""
    SQL_PUSHDOWN = "sql_pushdown"
    """Grouped KPIs can be computed inside the database."""
    TRANSACTIONS = "transactions"
    """``transaction()`` groups writes atomically."""


@attrs.frozen
class DealFilter:
    """Filters for :meth:`Store.deals`; every given field must match."""

    ids: tuple[str, ...] | None = None
    owner_id: str | None = None
    team_id: str | None = None
    """Deals whose owner is a rep of this team."""
    stage: str | None = None
    status: DealStatus | None = None
    process: str | None = None
    account_id: str | None = None
    updated_since: datetime | None = None
    """Deals changed at or after this instant."""
    created_in: Period | None = None
    closed_in: Period | None = None
    external_source: str | None = None
    """Deals with an external id from this source (e.g. ``hubspot``)."""


@runtime_checkable
class Store(Protocol):
    """What every store offers. Reads return frozen model values; writes are transactional."""

    capabilities: frozenset[str]

    def close(self) -> None: ...

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them commit, or none does. Nested calls join the outer one."""
        ...

    # processes
    def save_process(self, process: Process) -> None:
        """Store a process version. Saving the same (key, version) again with other content raises
        :class:`ConflictError`; identical content is a no-op."""
        ...

    def get_process(self, key: str, version: int | None = None) -> Process:
        """A process version (the latest when ``version`` is None)."""
        ...

    def process_versions(self, key: str) -> list[int]: ...

    def process_keys(self) -> list[str]: ...

    # deals
    def save_deal(self, deal: Deal, *, expected_version: int | None) -> Deal:
        """Append the deal's events past ``expected_version`` and store its state atomically."""
        ...

    def save_deals(self, items: Iterable[tuple[Deal, int | None]]) -> int:
        """Save many deals in one transaction (all or nothing); returns how many were written."""
        ...

    def get_deal(self, deal_id: str) -> Deal: ...

    def find_deal(self, source: str, external_id: str) -> Deal | None:
        """The deal whose ``external_ids[source] == external_id``."""
        ...

    def deals(self, filter: DealFilter | None = None, **criteria: Any) -> Iterator[Deal]:
        """Matching deals, streamed (ordered by id)."""
        ...

    def count_deals(self, filter: DealFilter | None = None, **criteria: Any) -> int: ...

    def deal_events(self, deal_id: str) -> tuple[DealEvent, ...]: ...

    def events(self, *, since: datetime | None = None, until: datetime | None = None) -> Iterator[DealEvent]:
        """All deal events with ``since <= at < until``, ordered by (at, deal_id, seq)."""
        ...

    # entities
    def put(self, *items: Any) -> None:
        """Insert or replace entities (Account, Contact, Team, Rep, Product, Activity) by id."""
        ...

    def get(self, cls: type[E], id: str) -> E: ...

    def all(self, cls: type[E], **criteria: Any) -> Iterator[E]:
        """Entities of one type, ordered by id; ``criteria`` match attributes by equality
        (e.g. ``all(Activity, deal_id="d1")``, ``all(Rep, team_id="t1")``)."""
        ...

    def delete(self, cls: type[Any], id: str) -> None: ...

    # documents
    def put_document(self, kind: str, key: str, data: Mapping[str, Any]) -> None:
        """Store a JSON-safe document (goals, plans, sync cursors...) under (kind, key)."""
        ...

    def get_document(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def documents(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def delete_document(self, kind: str, key: str) -> None: ...


def check_append(deal: Deal, stored_version: int | None, expected_version: int | None, kind: str = "deal") -> Sequence[DealEvent]:
    """Shared optimistic-concurrency rule; returns the events to append."""
    if stored_version != expected_version:
        raise ConflictError(kind, deal.id, expected_version if expected_version is not None else 0, stored_version)
    start = expected_version or 0
    if deal.version < start:
        raise DomainError(f"deal {deal.id} has {deal.version} events, fewer than expected version {start}")
    return deal.events[start:]


def match_deal(d: Deal, f: DealFilter, team_of: Mapping[str, str | None]) -> bool:
    if f.ids is not None and d.id not in f.ids:
        return False
    if f.owner_id is not None and d.owner_id != f.owner_id:
        return False
    if f.team_id is not None and (d.owner_id is None or team_of.get(d.owner_id) != f.team_id):
        return False
    if f.stage is not None and d.stage != f.stage:
        return False
    if f.status is not None and d.status != f.status:
        return False
    if f.process is not None and d.process != f.process:
        return False
    if f.account_id is not None and d.account_id != f.account_id:
        return False
    if f.updated_since is not None and d.updated_at < f.updated_since:
        return False
    # periods are calendar days in UTC, the zone every store keeps instants in
    if f.created_in is not None and d.created_at.astimezone(UTC).date() not in f.created_in:
        return False
    if f.closed_in is not None and (
        d.closed_at is None or d.closed_at.astimezone(UTC).date() not in f.closed_in
    ):
        return False
    return not (f.external_source is not None and f.external_source not in d.external_ids)


def make_filter(filter: DealFilter | None, criteria: Mapping[str, Any]) -> DealFilter:
    if filter is not None and criteria:
        return attrs.evolve(filter, **criteria)
    if criteria:
        return DealFilter(**criteria)
    return filter or DealFilter()


_MISSING = object()


class MemoryStore:
    """A store in memory: for tests and small apps. Thread-safe.

    Transactions keep an undo journal of the writes they make, so opening one costs nothing
    whatever the store holds; an exception rolls back to where the (possibly nested) transaction
    began, like a savepoint.
    """

    capabilities: frozenset[str] = frozenset({Capability.TRANSACTIONS})

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._processes: dict[tuple[str, int], Process] = {}
        self._deals: dict[str, Deal] = {}
        self._ext: dict[tuple[str, str], str] = {}
        self._entities: dict[str, dict[str, Any]] = {k: {} for k in ENTITY_KIND.values()}
        self._docs: dict[str, dict[str, dict[str, Any]]] = {}
        self._journal: list[tuple[dict[Any, Any], Any, Any]] | None = None

    def close(self) -> None:
        pass

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # every write goes through these two, which journal the old value inside a transaction
    def _set(self, mapping: dict[Any, Any], key: Any, value: Any) -> None:
        if self._journal is not None:
            self._journal.append((mapping, key, mapping.get(key, _MISSING)))
        mapping[key] = value

    def _pop(self, mapping: dict[Any, Any], key: Any) -> Any:
        old = mapping.pop(key, _MISSING)
        if old is not _MISSING and self._journal is not None:
            self._journal.append((mapping, key, old))
        return None if old is _MISSING else old

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outer = self._journal is None
            if outer:
                self._journal = []
            journal = self._journal
            assert journal is not None
            mark = len(journal)
            try:
                yield
            except BaseException:
                while len(journal) > mark:
                    mapping, key, old = journal.pop()
                    if old is _MISSING:
                        mapping.pop(key, None)
                    else:
                        mapping[key] = old
                raise
            finally:
                if outer:
                    self._journal = None

    # processes
    def save_process(self, process: Process) -> None:
        with self._lock:
            k = (process.key, process.version)
            have = self._processes.get(k)
            if have is not None:
                if have.to_dict() != process.to_dict():
                    raise ConflictError("process", f"{process.key} v{process.version}", process.version, process.version)
                return
            self._set(self._processes, k, process)

    def get_process(self, key: str, version: int | None = None) -> Process:
        with self._lock:
            if version is None:
                vs = self.process_versions(key)
                if not vs:
                    raise NotFoundError("process", key)
                version = vs[-1]
            try:
                return self._processes[(key, version)]
            except KeyError:
                raise NotFoundError("process", f"{key} v{version}") from None

    def process_versions(self, key: str) -> list[int]:
        return sorted(v for k, v in self._processes if k == key)

    def process_keys(self) -> list[str]:
        return sorted({k for k, _ in self._processes})

    # deals
    def save_deal(self, deal: Deal, *, expected_version: int | None) -> Deal:
        with self.transaction():
            have = self._deals.get(deal.id)
            check_append(deal, None if have is None else have.version, expected_version)
            for src, ext in deal.external_ids.items():  # check every clash before changing anything
                other = self._ext.get((src, str(ext)))
                if other is not None and other != deal.id:
                    raise ConflictError("deal external id", f"{src}:{ext}", 0, None)
            if have is not None:
                for src, ext in have.external_ids.items():
                    self._pop(self._ext, (src, str(ext)))
            for src, ext in deal.external_ids.items():
                self._set(self._ext, (src, str(ext)), deal.id)
            self._set(self._deals, deal.id, deal)
            return deal

    def save_deals(self, items: Iterable[tuple[Deal, int | None]]) -> int:
        """All or nothing, also inside an enclosing transaction (which may carry on)."""
        n = 0
        with self.transaction():
            for d, v in items:
                self.save_deal(d, expected_version=v)
                n += 1
        return n

    def get_deal(self, deal_id: str) -> Deal:
        try:
            return self._deals[deal_id]
        except KeyError:
            raise NotFoundError("deal", deal_id) from None

    def find_deal(self, source: str, external_id: str) -> Deal | None:
        i = self._ext.get((source, str(external_id)))
        return None if i is None else self._deals[i]

    def _team_of(self) -> dict[str, str | None]:
        return {r.id: r.team_id for r in self._entities["rep"].values()}

    def deals(self, filter: DealFilter | None = None, **criteria: Any) -> Iterator[Deal]:
        f = make_filter(filter, criteria)
        team_of = self._team_of() if f.team_id is not None else {}
        with self._lock:
            items = sorted(self._deals.items())
        for _, d in items:
            if match_deal(d, f, team_of):
                yield d

    def count_deals(self, filter: DealFilter | None = None, **criteria: Any) -> int:
        return sum(1 for _ in self.deals(filter, **criteria))

    def deal_events(self, deal_id: str) -> tuple[DealEvent, ...]:
        return self.get_deal(deal_id).events

    def events(self, *, since: datetime | None = None, until: datetime | None = None) -> Iterator[DealEvent]:
        with self._lock:
            deals = list(self._deals.values())
        keyed = []
        for d in deals:
            for i, e in enumerate(d.events):
                if (since is None or e.at >= since) and (until is None or e.at < until):
                    keyed.append(((e.at, e.deal_id, i), e))
        keyed.sort(key=lambda x: x[0])
        for _, e in keyed:
            yield e

    # entities
    def put(self, *items: Any) -> None:
        with self.transaction():
            for it in items:
                kind = ENTITY_KIND.get(type(it))
                if kind is None:
                    raise TypeError(f"cannot store {type(it).__name__}; use save_deal for deals")
                self._set(self._entities[kind], it.id, it)

    def get(self, cls: type[E], id: str) -> E:
        kind = ENTITY_KIND.get(cls)
        if kind is None:
            raise TypeError(f"not an entity type: {cls.__name__}")
        try:
            return self._entities[kind][id]  # type: ignore[no-any-return]
        except KeyError:
            raise NotFoundError(kind, id) from None

    def all(self, cls: type[E], **criteria: Any) -> Iterator[E]:
        kind = ENTITY_KIND.get(cls)
        if kind is None:
            raise TypeError(f"not an entity type: {cls.__name__}")
        with self._lock:
            items = sorted(self._entities[kind].items())
        for _, it in items:
            if all(getattr(it, k) == v for k, v in criteria.items()):
                yield it

    def delete(self, cls: type[Any], id: str) -> None:
        kind = ENTITY_KIND[cls]
        with self._lock:
            if self._pop(self._entities[kind], id) is None:
                raise NotFoundError(kind, id)

    # documents
    def put_document(self, kind: str, key: str, data: Mapping[str, Any]) -> None:
        with self._lock:
            if kind not in self._docs:
                self._set(self._docs, kind, {})
            self._set(self._docs[kind], key, copy.deepcopy(dict(data)))

    def get_document(self, kind: str, key: str) -> dict[str, Any] | None:
        d = self._docs.get(kind, {}).get(key)
        return None if d is None else copy.deepcopy(d)

    def documents(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        with self._lock:
            items = sorted(self._docs.get(kind, {}).items())
        for k, v in items:
            yield k, copy.deepcopy(v)

    def delete_document(self, kind: str, key: str) -> None:
        with self._lock:
            if kind in self._docs:
                self._pop(self._docs[kind], key)


