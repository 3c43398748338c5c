"""The sync engine: pulls CRM changes into a store and pushes local changes back.

One :class:`SyncEngine` serves one connection (one CRM account) and one store. It is
vendor-neutral: the adapter speaks the vendor's API, the engine does the rest.

Pull
    For each object kind, the engine asks the adapter for pages changed since the stored cursor
    and applies each page in one store transaction together with the cursor that follows it. A
    sync killed at any point therefore resumes after the last committed page, and a page applied
    twice changes nothing the second time (records are matched by external id, and fields are
    merged against the values both sides last agreed on). Deals are created with their CRM stage
    history as events of source ``crm_sync``; stage moves the local process would not allow are
    accepted and listed as :class:`~salesprocess.sync.Bypass` records.

Merge and conflicts
    For each synced field the engine compares three values: the CRM's, the local one, and the
    base (what both had after the last sync). A side that changed wins; when both changed to
    different values, the :class:`ConflictPolicy` decides and a
    :class:`~salesprocess.sync.Conflict` with both values is recorded.

Push
    Local changes saved through the :class:`~salesprocess.sync.Outbox` are sent in the vendor's
    batch form (only the fields that differ from the base). Every record gets its own result: a
    success updates the base and clears the entry, a failure is kept with its error and retried
    on the next push, and parked after ``max_attempts`` or when the vendor refused it for good.
"""

from __future__ import annotations

import enum
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from ..codec import decode_value, encode_value, instant, iso
from ..errors import AdapterError, ConflictError, DomainError, NotFoundError, RemoteValidationError
from ..model import (
    Account,
    Activity,
    AmountChanged,
    CloseDateChanged,
    Contact,
    Deal,
    DealCreated,
    DealLost,
    DealReopened,
    DealWon,
    DetailsChanged,
    EventSource,
    OwnerChanged,
    ProcessMigrated,
    StageChanged,
    replay,
)
from ..money import Money
from ..process import Process, StageKind
from ..store import Store
from .adapter import (
    OBJECT_KINDS,
    AdapterCapability,
    CrmAdapter,
    ObjectKind,
    Page,
    PushItem,
    PushResult,
    RemoteAccount,
    RemoteActivity,
    RemoteContact,
    RemoteDeal,
    RemoteRecord,
    RemoteStageChange,
)
from .mapping import PipelineMapping, StageMapping, propose
from .outbox import STATE, Outbox
from .reports import (
    Bypass,
    Change,
    Conflict,
    OutboxEntry,
    PullSummary,
    PushSummary,
    RecordFailure,
    SyncStatus,
)

if TYPE_CHECKING:
    from ..app import SalesProcess

__all__ = ["PULL_ONLY_FIELDS", "PUSHED_FIELDS", "SYNCED_FIELDS", "ConflictPolicy", "SyncEngine"]

SYNCED_FIELDS: tuple[str, ...] = (
    "name", "stage", "amount", "close_date", "owner_id", "account_id", "contact_ids",
)
"""Deal fields the engine merges between the CRM and the store."""
PUSHED_FIELDS: tuple[str, ...] = ("name", "stage", "amount", "close_date", "owner_id")
"""Deal fields a push writes to the CRM."""
PULL_ONLY_FIELDS: tuple[str, ...] = ("account_id", "contact_ids")
"""Fields the CRM owns: pulled, never pushed; in a conflict the CRM's value wins."""

LINK = "sync.link"
CURSOR = "sync.cursor"
CONFLICT = "sync.conflict"
BYPASS = "sync.bypass"
FAILURE = "sync.failure"
MAPPING = "sync.mapping"


class ConflictPolicy(enum.StrEnum):
    """Who wins when a field changed on both sides: the CRM, the local store, or the side that
    changed last (ties go to the CRM)."""

    CRM_WINS = "crm-wins"
    LOCAL_WINS = "local-wins"
    NEWEST_WINS = "newest-wins"


class _Rollback(Exception):
    """Raised inside a dry run's transaction so that nothing it did is kept."""


class _RecordFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


_FIELD_EVENTS: dict[str, tuple[type, ...]] = {
    "stage": (StageChanged, ProcessMigrated),
    "amount": (AmountChanged,),
    "close_date": (CloseDateChanged,),
    "owner_id": (OwnerChanged,),
}


def _last_change(deal: Deal, field: str) -> datetime:
    """When ``field`` of ``deal`` last changed (its creation if never since)."""
    types = _FIELD_EVENTS.get(field)
    for e in reversed(deal.events):
        if isinstance(e, DealCreated):
            return e.at
        if types is not None:
            if isinstance(e, types):
                return e.at
        elif isinstance(e, DetailsChanged) and field in e.changes:
            return e.at
    return deal.created_at


def _values(deal: Deal) -> dict[str, Any]:
    return {
        "name": deal.name, "stage": deal.stage, "amount": deal.amount, "close_date": deal.close_date,
        "owner_id": deal.owner_id, "account_id": deal.account_id, "contact_ids": deal.contact_ids,
    }


def _enc(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: encode_value(v) for k, v in values.items()}


def _dec(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: decode_value(v) for k, v in values.items()}


# ------------------------------------------------------------------------------------------------
# Encoding remote records (pull failures keep the record to retry it)
# ------------------------------------------------------------------------------------------------

_RECORD_TYPES: dict[str, type] = {
    "deal": RemoteDeal, "account": RemoteAccount, "contact": RemoteContact, "activity": RemoteActivity,
}
_RECORD_NAMES = {v: k for k, v in _RECORD_TYPES.items()}


def encode_record(rec: RemoteRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"type": _RECORD_NAMES[type(rec)]}
    for a in attrs.fields(type(rec)):
        v = getattr(rec, a.name)
        if a.name == "history":
            out[a.name] = None if v is None else [[h.stage, iso(h.at)] for h in v]
        else:
            out[a.name] = encode_value(v)
    return out


def decode_record(d: Mapping[str, Any]) -> RemoteRecord:
    cls = _RECORD_TYPES[d["type"]]
    kw: dict[str, Any] = {}
    for a in attrs.fields(cls):
        if a.name not in d:
            continue
        v = d[a.name]
        if a.name == "history":
            kw[a.name] = None if v is None else tuple(RemoteStageChange(s, instant(t)) for s, t in v)
        else:
            kw[a.name] = decode_value(v)
    rec: RemoteRecord = cls(**kw)
    return rec


# ------------------------------------------------------------------------------------------------
# Per-page work
# ------------------------------------------------------------------------------------------------


@attrs.define
class _Counts:
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    conflicts: int = 0
    bypasses: int = 0

    def add(self, other: _Counts) -> None:
        for f in attrs.fields(_Counts):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@attrs.define
class _PageCtx:
    kind: str
    seq: int
    counts: _Counts = attrs.Factory(_Counts)
    saves: dict[str, tuple[Deal, int | None]] = attrs.Factory(dict)
    conflicts: list[Conflict] = attrs.Factory(list)
    bypasses: list[tuple[Bypass, str]] = attrs.Factory(list)
    changes: list[Change] = attrs.Factory(list)
    enqueue: list[str] = attrs.Factory(list)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


_GROUP_RECORDS = 1000
"""Pages waiting in the prefetch queue are applied together, in one transaction, up to this
many records (a client that fell behind catches up with fewer commits)."""


def _prefetch(pages: Iterator[Page], depth: int, group: int = _GROUP_RECORDS) -> Iterator[list[Page]]:
    """Fetch pages in a background thread, ``depth`` ahead of the consumer, so that network
    waits overlap with applying pages to the store. Each item is one page, plus the pages
    already waiting behind it (up to ``group`` records): when applying falls behind fetching,
    the consumer takes the backlog at once instead of one page at a time."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for p in pages:
                while not stop.is_set():
                    try:
                        q.put(("page", p), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as e:  # handed to the consumer, which re-raises it
            q.put(("error", e))
        finally:
            with suppress(Exception):
                close = getattr(pages, "close", None)
                if close is not None:
                    close()

    t = threading.Thread(target=produce, name="salesprocess-sync-prefetch", daemon=True)
    t.start()
    try:
        what, value = q.get()
        while what == "page":
            batch: list[Page] = [value]
            size = len(value.records)
            what, value = "", None
            while size < group:
                try:
                    what, value = q.get_nowait()
                except queue.Empty:
                    break
                if what != "page":
                    break
                batch.append(value)
                size += len(value.records)
                what, value = "", None
            yield batch  # the pages before an error are applied, then the error is raised
            if not what:
                what, value = q.get()
        if what == "error":
            raise value
    finally:
        stop.set()
        with suppress(queue.Empty):
            while True:
                q.get_nowait()
        t.join(timeout=5)


class SyncEngine:
    """Sync one CRM connection with one store.

    :param store: any :class:`~salesprocess.store.Store`.
    :param adapter: a :class:`~salesprocess.sync.CrmAdapter`.
    :param connection: the connection's name; keys cursors, outbox and reports.
    :param source: the key of the CRM's ids in ``external_ids`` (default: ``connection``).
    :param policy: the :class:`ConflictPolicy` (default newest-wins).
    :param mapping: an explicit :class:`~salesprocess.sync.StageMapping`; without one the engine
        uses the mapping stored by an earlier sync, or proposes one from the CRM's pipelines
        (and stores the proposed processes).
    :param processes: local processes by key, looked up before the store and the shell.
    :param app: a :class:`~salesprocess.SalesProcess` shell: contributed processes, and the
        ``salesprocess_sync_*`` hooks fire through it (after each commit).
    :param currency: the currency of CRM amounts that come without one.
    :param owners: CRM owner id → local rep id (unlisted owners keep the CRM's id).
    :param max_attempts: pushes a record may fail before it is parked.
    :param prefetch: pages fetched ahead in a background thread (0 to fetch inline); pages
        already waiting when the engine is ready for the next are applied together, in one
        transaction (each with its own cursor, conflicts and bypasses, as if one by one).
    :param kinds: the object kinds to pull (default: every kind the adapter supports).
    """

    def __init__(
        self,
        store: Store,
        adapter: CrmAdapter,
        *,
        connection: str,
        source: str | None = None,
        policy: ConflictPolicy | str = ConflictPolicy.NEWEST_WINS,
        mapping: StageMapping | None = None,
        processes: Mapping[str, Process] | None = None,
        app: SalesProcess | None = None,
        currency: str = "USD",
        owners: Mapping[str, str] | None = None,
        max_attempts: int = 5,
        actor: str | None = None,
        prefetch: int = 4,
        kinds: Iterable[str] | None = None,
    ) -> None:
        if not connection or "/" in connection:
            raise ValueError(f"connection name must be non-empty and contain no '/', got {connection!r}")
        self.store = store
        self.adapter = adapter
        self.connection = connection
        self.source = source or connection
        self.policy = ConflictPolicy(policy)
        self._explicit_mapping = mapping
        self._mapping: StageMapping | None = None
        self._given = dict(processes or {})
        self._processes: dict[str, Process] = {}
        self.app = app
        self.currency = currency
        self.owners = dict(owners or {})
        self._owners_back = {v: k for k, v in self.owners.items()}
        self.max_attempts = max_attempts
        self.actor = actor or f"crm:{connection}"
        self.prefetch = prefetch
        self._kinds = None if kinds is None else tuple(kinds)
        self.outbox = Outbox(store, connection)
        self._touched: set[str] = set()
        self._failed_keys: set[str] = set()
        self._fresh = False
        self._optimistic = False

    def __repr__(self) -> str:
        return f"SyncEngine(connection={self.connection!r}, adapter={self.adapter!r})"

    # --- keys --------------------------------------------------------------------------------
    def _key(self, *parts: str) -> str:
        return "/".join((self.connection, *parts))

    def local_id(self, remote_id: str) -> str:
        """The id a deal (or account, contact, activity) created from the CRM gets locally."""
        return f"{self.source}-{remote_id}"

    # --- processes and mapping ----------------------------------------------------------------
    def process(self, key: str) -> Process:
        """A local process: given to the engine, stored, or contributed through the shell."""
        p = self._processes.get(key)
        if p is not None:
            return p
        p = self._given.get(key)
        if p is None:
            try:
                p = self.store.get_process(key)
            except NotFoundError:
                p = None
        if p is None:
            if self.app is not None:
                p = self.app.process(key)
            else:
                from .. import processes as shipped

                if key not in shipped.SHIPPED:
                    raise NotFoundError("process", key) from None
                p = shipped.load(key)
        self._processes[key] = p
        return p

    @property
    def mapping(self) -> StageMapping:
        """The stage mapping in use (explicit, stored, or proposed from the CRM's pipelines)."""
        if self._mapping is None:
            if self._explicit_mapping is not None:
                self._mapping = self._explicit_mapping
            else:
                doc = self.store.get_document(MAPPING, self.connection)
                if doc is not None:
                    self._mapping = StageMapping.from_dict(doc)
                else:
                    proposal = propose(self.adapter.pipelines(), source=self.source)
                    for p in proposal.processes:
                        self._given.setdefault(p.key, p)
                    self._mapping = proposal.mapping
        return self._mapping

    def _persist_mapping(self) -> None:
        """Store the mapping and the processes it names that the store does not have yet."""
        m = self.mapping
        if self.store.get_document(MAPPING, self.connection) != m.to_dict():
            self.store.put_document(MAPPING, self.connection, m.to_dict())
        for key in m.process_keys():
            p = self.process(key)
            if p.version not in self.store.process_versions(key):
                self.store.save_process(p)

    # --- state ---------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return self.store.get_document(STATE, self.connection) or {}

    def cursor(self, kind: str) -> Mapping[str, Any] | None:
        return self.store.get_document(CURSOR, self._key(kind))

    def reset_cursor(self, kind: str | None = None) -> None:
        """Forget the cursor(s): the next pull fetches everything again (idempotently)."""
        for k in [kind] if kind else OBJECT_KINDS:
            self.store.delete_document(CURSOR, self._key(k))

    def kinds(self) -> tuple[str, ...]:
        """The object kinds a pull takes: those given to the engine, else every kind the
        adapter supports."""
        if self._kinds is not None:
            return self._kinds
        caps = self.adapter.capabilities
        out = []
        for k in OBJECT_KINDS:
            if k == ObjectKind.DEALS or k in caps:
                out.append(k)
        return tuple(out)

    # --- pull ----------------------------------------------------------------------------------
    def pull(self, *, dry_run: bool = False, kinds: Iterable[str] | None = None,
             progress: Callable[[str, int], None] | None = None) -> PullSummary:
        """Fetch what changed in the CRM since the last pull and apply it.

        With ``dry_run`` nothing is written (the work happens in a transaction that is rolled
        back) and the summary lists every change in ``changes``. ``progress(kind, n)`` is called
        after each page with the number of records it held.
        """
        ks = tuple(kinds) if kinds is not None else self.kinds()
        for k in ks:
            if k not in OBJECT_KINDS:
                raise ValueError(f"unknown object kind {k!r}; expected one of {OBJECT_KINDS}")
        if not dry_run:
            summary = self._pull(ks, False, progress)
            with self.store.transaction():
                st = self._state()
                st["last_pull"] = summary.as_dict()
                self.store.put_document(STATE, self.connection, st)
            self._fire("salesprocess_sync_finished", connection=self.connection, direction="pull", summary=summary)
            return summary
        result: list[PullSummary] = []
        try:
            with self.store.transaction():
                result.append(self._pull(ks, True, progress))
                raise _Rollback
        except _Rollback:
            pass
        return result[0]

    def _pull(self, kinds: tuple[str, ...], dry: bool, progress: Callable[[str, int], None] | None) -> PullSummary:
        with self.store.transaction():
            self._persist_mapping()
        total = _Counts()
        by_kind: dict[str, _Counts] = {}
        pages = 0
        changes: list[Change] = []
        for kind in kinds:
            kc = by_kind.setdefault(kind, _Counts())
            self._touched = set()
            prefix = self._key(kind) + "/"
            self._failed_keys = {k for k, _ in self.store.documents(FAILURE) if k.startswith(prefix)}
            # with no deal of this connection in the store yet, creates need no lookup (a page that
            # meets a deal after all is redone with lookups)
            self._fresh = kind == ObjectKind.DEALS and self.store.count_deals(external_source=self.source) == 0
            it = self.adapter.pull(kind, self.cursor(kind))
            batches: Iterator[list[Page]] = (
                _prefetch(it, self.prefetch) if self.prefetch > 0 else ([p] for p in it))
            for batch in batches:
                for page, ctx in zip(batch, self._apply_pages(kind, batch, dry), strict=True):
                    kc.add(ctx.counts)
                    changes.extend(ctx.changes)
                    pages += 1
                    if progress is not None:
                        progress(kind, len(page.records))
            # records that failed in an earlier pull and did not come again: try them once more
            for ctx in self._retry_failures(kind, dry, skip=self._touched):
                kc.add(ctx.counts)
                changes.extend(ctx.changes)
            total.add(kc)
        return PullSummary(
            connection=self.connection, fetched=total.fetched, created=total.created,
            updated=total.updated, unchanged=total.unchanged, failed=total.failed,
            conflicts=total.conflicts, bypasses=total.bypasses, pages=pages, dry_run=dry,
            by_kind={k: attrs.asdict(v) for k, v in by_kind.items()},
            changes=tuple(changes) if dry else (),
        )

    def _retry_failures(self, kind: str, dry: bool, skip: set[str]) -> Iterator[_PageCtx]:
        prefix = self._key(kind) + "/"
        stored = [(k, d) for k, d in self.store.documents(FAILURE) if k.startswith(prefix) and k not in skip]
        for i in range(0, len(stored), 100):
            chunk = stored[i:i + 100]
            records = tuple(decode_record(d["record"]) for _, d in chunk)
            yield self._apply_records(kind, [(records, None)], dry, retrying=True)[0]

    def _apply_pages(self, kind: str, pages: Sequence[Page], dry: bool) -> list[_PageCtx]:
        """Apply pages in order, in one transaction; one context per page."""
        parts = []
        for page in pages:
            newest: dict[str, RemoteRecord] = {}
            for r in page.records:
                have = newest.get(r.id)
                if have is None or r.modified_at >= have.modified_at:
                    newest[r.id] = r
            parts.append((tuple(newest.values()), page.cursor))
        ctxs = self._apply_records(kind, parts, dry)
        for page, ctx in zip(pages, ctxs, strict=True):
            ctx.counts.fetched = len(page.records)
        return ctxs

    def _apply_records(
        self, kind: str, parts: Sequence[tuple[tuple[RemoteRecord, ...], Mapping[str, Any] | None]],
        dry: bool, retrying: bool = False,
    ) -> list[_PageCtx]:
        """Apply each part (records and the cursor after them) as a page of its own, all in
        one transaction: the result is the same as one transaction per part, with one commit."""
        attempt = 0
        failed_keys, touched = set(self._failed_keys), set(self._touched)
        while True:
            attempt += 1
            try:
                with self.store.transaction():
                    self._optimistic = self._fresh and attempt == 1 and not dry
                    state = self._state()
                    seq = int(state.get("seq", 0))
                    ctxs: list[_PageCtx] = []
                    cursor: Mapping[str, Any] | None = None
                    for records, part_cursor in parts:
                        ctx = _PageCtx(kind, seq)
                        self._apply_part(kind, records, ctx, dry, retrying)
                        seq = ctx.seq
                        ctxs.append(ctx)
                        if part_cursor is not None:
                            cursor = part_cursor
                    if cursor is not None:
                        self.store.put_document(CURSOR, self._key(kind), dict(cursor))
                    state = self._state()
                    state["seq"] = max(seq, int(state.get("seq", 0)))
                    self.store.put_document(STATE, self.connection, state)
            except ConflictError:
                if dry or attempt >= 3:
                    raise
                # a deal existed after all, or a local writer changed one: redo the pages from
                # what was known before them (the rolled-back attempt's failures are undone too)
                self._failed_keys, self._touched = set(failed_keys), set(touched)
                continue
            break
        if not dry:
            for ctx in ctxs:
                self._notify(ctx)
        return ctxs

    def _apply_part(self, kind: str, records: tuple[RemoteRecord, ...], ctx: _PageCtx, dry: bool,
                    retrying: bool) -> None:
        for rec in records:
            self._apply_one(kind, rec, ctx, dry, retrying)
        if ctx.saves:
            self.store.save_deals(ctx.saves.values())
        for deal_id in ctx.enqueue:
            if self.outbox.get(deal_id) is None:
                self.outbox.enqueue(self.store.get_deal(deal_id))
        if ctx.conflicts:  # one report document per page
            self.store.put_document(CONFLICT, self._key(f"{ctx.conflicts[0].seq:012d}"),
                                    {"items": [c.to_doc() for c in ctx.conflicts]})
        if ctx.bypasses:
            self.store.put_document(BYPASS, self._key(f"{ctx.bypasses[0][0].seq:012d}"),
                                    {"items": [b.to_doc() for b, _ in ctx.bypasses]})

    def _notify(self, ctx: _PageCtx) -> None:
        if self.app is None:
            return
        hook = self.app.pm.hook
        for deal, expected in ctx.saves.values():
            self.app.notify_saved(deal, deal.events[expected or 0:], self.store)
        for c in ctx.conflicts:
            hook.salesprocess_sync_conflict(connection=self.connection, conflict=c)
        for b, deal_id in ctx.bypasses:
            hook.salesprocess_sync_bypass(connection=self.connection, bypass=b, deal=self._saved(ctx, deal_id))

    def _saved(self, ctx: _PageCtx, deal_id: str) -> Deal:
        pair = ctx.saves.get(deal_id)
        return pair[0] if pair is not None else self.store.get_deal(deal_id)

    def _fire(self, name: str, **kw: Any) -> None:
        if self.app is not None:
            getattr(self.app.pm.hook, name)(**kw)

    def _apply_one(self, kind: str, rec: RemoteRecord, ctx: _PageCtx, dry: bool, retrying: bool) -> None:
        fkey = self._key(kind, rec.id)
        if fkey in self._failed_keys:
            self._touched.add(fkey)
        try:
            if isinstance(rec, RemoteDeal):
                action, local_id, fields = self._apply_deal(rec, ctx)
            elif isinstance(rec, RemoteAccount):
                action, local_id, fields = self._apply_entity(self._account(rec))
            elif isinstance(rec, RemoteContact):
                action, local_id, fields = self._apply_entity(self._contact(rec))
            elif isinstance(rec, RemoteActivity):
                action, local_id, fields = self._apply_entity(self._activity(rec, ctx))
            else:  # pragma: no cover - the adapter broke its contract
                raise _RecordFailed("unknown_record", f"unknown record type {type(rec).__name__}")
        except _RecordFailed as f:
            ctx.counts.failed += 1
            old = self.store.get_document(FAILURE, fkey) if fkey in self._failed_keys else None
            attempts = (old or {}).get("attempts", 0) + 1
            self._failed_keys.add(fkey)
            self._touched.add(fkey)
            self.store.put_document(FAILURE, fkey, {
                "kind": kind, "remote_id": rec.id, "code": f.code, "message": f.message,
                "attempts": attempts, "record": encode_record(rec),
            })
            if dry:
                ctx.changes.append(Change(kind, rec.id, None, "failed", {}, f.message))
            return
        if retrying or fkey in self._failed_keys:
            self.store.delete_document(FAILURE, fkey)
            self._failed_keys.discard(fkey)
        setattr(ctx.counts, action, getattr(ctx.counts, action) + 1)
        if dry and action != "unchanged":
            ctx.changes.append(Change(kind, rec.id, local_id, action, fields))

    # --- entities -----------------------------------------------------------------------------
    def _apply_entity(self, obj: Any) -> tuple[str, str, dict[str, tuple[Any, Any]]]:
        try:
            have = self.store.get(type(obj), obj.id)
        except NotFoundError:
            have = None
        if have == obj:
            return "unchanged", obj.id, {}
        fields: dict[str, tuple[Any, Any]] = {}
        for a in attrs.fields(type(obj)):
            old = getattr(have, a.name) if have is not None else None
            new = getattr(obj, a.name)
            if old != new:
                fields[a.name] = (old, new)
        self.store.put(obj)
        return ("created" if have is None else "updated"), obj.id, fields

    def _ref(self, remote_id: str | None) -> str | None:
        return None if remote_id is None else self.local_id(remote_id)

    def _owner(self, remote: str | None) -> str | None:
        return None if remote is None else self.owners.get(remote, remote)

    def _account(self, r: RemoteAccount) -> Account:
        return Account(
            id=self.local_id(r.id), name=r.name, industry=r.industry, country=r.country,
            owner_id=self._owner(r.owner), parent_id=self._ref(r.parent), external_ids={self.source: r.id},
        )

    def _contact(self, r: RemoteContact) -> Contact:
        return Contact(
            id=self.local_id(r.id), name=r.name, account_id=self._ref(r.account), email=r.email,
            phone=r.phone, title=r.title, external_ids={self.source: r.id},
        )

    def _deal_ref(self, remote_id: str | None, ctx: _PageCtx) -> str | None:
        if remote_id is None:
            return None
        d = self.store.find_deal(self.source, remote_id)
        return d.id if d is not None else self.local_id(remote_id)

    def _activity(self, r: RemoteActivity, ctx: _PageCtx) -> Activity:
        return Activity(
            id=self.local_id(r.id), kind=r.kind, at=r.at, subject=r.subject, status=r.status,
            deal_id=self._deal_ref(r.deal, ctx), account_id=self._ref(r.account),
            contact_id=self._ref(r.contact), owner_id=self._owner(r.owner),
            duration_minutes=r.duration_minutes, external_ids={self.source: r.id},
        )

    # --- deals ---------------------------------------------------------------------------------
    def _pipeline(self, rd: RemoteDeal) -> tuple[PipelineMapping, Process, str]:
        pm = self.mapping.for_pipeline(rd.pipeline)
        if pm is None:
            raise _RecordFailed("unmapped_pipeline", f"deal {rd.id}: pipeline {rd.pipeline!r} maps to no local process")
        try:
            process = self.process(pm.process)
        except (NotFoundError, AdapterError, DomainError) as e:
            raise _RecordFailed("unknown_process", f"deal {rd.id}: {e}") from None
        if rd.stage is None:
            raise _RecordFailed("no_stage", f"deal {rd.id} has no stage")
        stage = pm.local_stage(rd.stage)
        if stage is None or not process.has_stage(stage):
            raise _RecordFailed(
                "unmapped_stage",
                f"deal {rd.id}: CRM stage {rd.stage!r} of pipeline {rd.pipeline!r} maps to no stage of process {process.key!r}",
            )
        return pm, process, stage

    def _incoming(self, rd: RemoteDeal, stage: str) -> dict[str, Any]:
        amount = None
        if rd.amount is not None:
            try:
                amount = Money(rd.amount, rd.currency or self.currency)
            except (DomainError, ValueError, TypeError) as e:
                raise _RecordFailed("invalid_amount", f"deal {rd.id}: amount {rd.amount!r}: {e}") from None
            if amount.amount < 0:
                raise _RecordFailed("invalid_amount", f"deal {rd.id}: amount {rd.amount} is negative")
        return {
            "name": rd.name, "stage": stage, "amount": amount, "close_date": rd.close_date,
            "owner_id": self._owner(rd.owner), "account_id": self._ref(rd.account),
            "contact_ids": tuple(self.local_id(c) for c in rd.contacts),
        }

    def _load_local(self, rd: RemoteDeal, ctx: _PageCtx) -> tuple[Deal | None, bool]:
        local = None if self._optimistic and not rd.local_id else self.store.find_deal(self.source, rd.id)
        if local is not None:
            pending = ctx.saves.get(local.id)
            return (pending[0] if pending else local), False
        if rd.local_id:
            try:
                d = self.store.get_deal(rd.local_id)
            except NotFoundError:
                return None, False
            other = d.external_ids.get(self.source)
            if other is not None and other != rd.id:
                raise _RecordFailed(
                    "identity", f"deal {rd.id} names local deal {rd.local_id}, which is linked to {other}"
                )
            return d, True
        return None, False

    def _apply_deal(self, rd: RemoteDeal, ctx: _PageCtx) -> tuple[str, str, dict[str, tuple[Any, Any]]]:
        pm, process, stage = self._pipeline(rd)
        incoming = self._incoming(rd, stage)
        local, adopted = self._load_local(rd, ctx)
        if local is None:
            deal = self._create(rd, process, pm, stage, incoming, ctx)
            ctx.saves[deal.id] = (deal, None)
            if rd.pipeline is not None and self.mapping.for_process(process.key) is not pm:
                self._put_link(deal.id, rd, incoming, pm)  # the pipeline cannot be told from the process
            return "created", deal.id, {f: (None, v) for f, v in incoming.items() if v not in (None, ())}
        link = self._link(local)
        local_vals = _values(local)
        base = _dec(link["base"]) if link else dict(local_vals)
        last_remote = instant(link["modified"]) if link and link.get("modified") else None
        changes: dict[str, Any] = {}
        dirty = False
        for f in SYNCED_FIELDS:
            b, lv, r = base.get(f), local_vals[f], incoming[f]
            if r == b:
                if lv != b and f in PUSHED_FIELDS:
                    dirty = True
            elif lv in (b, r):
                if lv != r:
                    changes[f] = r
            else:
                winner = self._winner(f, local, rd)
                ctx.conflicts.append(Conflict(
                    ctx.next_seq(), self.connection, local.id, rd.id, f, lv, r, b, winner,
                    self.policy.value, _last_change(local, f), rd.modified_at,
                ))
                ctx.counts.conflicts += 1
                if winner == "crm":
                    changes[f] = r
                elif f in PUSHED_FIELDS:
                    dirty = True
        deal = local
        if changes:
            deal = self._apply_changes(local, changes, rd, process, pm, last_remote, ctx)
        if adopted and deal.external_ids.get(self.source) != rd.id:
            deal = deal.with_details(
                external_ids=deal.external_ids.set(self.source, rd.id), at=deal.updated_at,
                actor=self.actor, source=EventSource.CRM_SYNC,
            )
        if deal is not local:
            prev = ctx.saves.get(local.id)
            ctx.saves[local.id] = (deal, prev[1] if prev else local.version)
        if dirty:
            ctx.enqueue.append(local.id)
        self._put_link(local.id, rd, incoming, pm, link)
        if changes:
            return "updated", local.id, {f: (local_vals[f], v) for f, v in changes.items()}
        return "unchanged", local.id, {}

    def _put_link(self, local_id: str, rd: RemoteDeal, base: Mapping[str, Any], pm: PipelineMapping,
                  old: Mapping[str, Any] | None = None) -> None:
        link = {
            "remote": rd.id, "pipeline": rd.pipeline if rd.pipeline is not None else pm.pipeline,
            "base": _enc(base), "modified": iso(rd.modified_at),
        }
        if link != old:
            self.store.put_document(LINK, self._key(local_id), link)

    def _link(self, deal: Deal) -> dict[str, Any] | None:
        """What both sides last agreed on for ``deal``: the stored link, or, for a deal a pull
        created and nothing but local edits changed since, the state after its last sync event
        (such deals get no link document: an initial pull writes one row less per deal)."""
        link = self.store.get_document(LINK, self._key(deal.id))
        if link is not None:
            return link
        remote = deal.external_ids.get(self.source)
        if remote is None or not deal.events or deal.events[0].source is not EventSource.CRM_SYNC \
                or deal.events[0].actor != self.actor:
            return None
        last = max(i for i, e in enumerate(deal.events) if e.source is EventSource.CRM_SYNC and e.actor == self.actor)
        synced = replay(deal.events[: last + 1])
        return {"remote": remote, "pipeline": None, "base": _enc(_values(synced)),
                "modified": iso(synced.updated_at)}

    def _winner(self, field: str, local: Deal, rd: RemoteDeal) -> str:
        if field in PULL_ONLY_FIELDS or self.policy is ConflictPolicy.CRM_WINS:
            return "crm"
        if self.policy is ConflictPolicy.LOCAL_WINS:
            return "local"
        return "local" if _last_change(local, field) > rd.modified_at else "crm"

    def _create(
        self, rd: RemoteDeal, process: Process, pm: PipelineMapping, stage: str,
        incoming: Mapping[str, Any], ctx: _PageCtx,
    ) -> Deal:
        hist = [
            (s, h.at) for h in (rd.history or ())
            if (s := pm.local_stage(h.stage)) is not None and process.has_stage(s)
        ]
        created = rd.created_at or (hist[0][1] if hist else rd.modified_at)
        if hist and hist[0][1] < created:
            created = hist[0][1]
        first = hist[0][0] if hist else stage
        local_id = self.local_id(rd.id)
        deal = process.open_deal(
            local_id, at=created, actor=self.actor, source=EventSource.CRM_SYNC, stage=first,
            name=incoming["name"], amount=incoming["amount"], close_date=incoming["close_date"],
            owner_id=incoming["owner_id"], account_id=incoming["account_id"],
            contact_ids=incoming["contact_ids"], external_ids={self.source: rd.id},
        )
        if first != process.initial_stage.key:
            ctx.bypasses.append((Bypass(
                ctx.next_seq(), self.connection, local_id, rd.id, "created_late", None, first, created,
                ({"path": "stage", "code": "created_late",
                  "message": f"created in {first!r}; the process starts at {process.initial_stage.key!r}"},),
            ), local_id))
            ctx.counts.bypasses += 1
        for s, at in hist[1:]:
            if s != deal.stage:
                deal = self._move(deal, process, s, max(at, deal.updated_at), rd, ctx)
        if deal.stage != stage:
            deal = self._move(deal, process, stage, max(rd.modified_at, deal.updated_at), rd, ctx)
        return deal

    def _apply_changes(
        self, deal: Deal, changes: Mapping[str, Any], rd: RemoteDeal, process: Process,
        pm: PipelineMapping, last_remote: datetime | None, ctx: _PageCtx,
    ) -> Deal:
        moves: list[tuple[str, datetime]] = []
        if "stage" in changes:
            for h in rd.history or ():
                if last_remote is not None and h.at <= last_remote:
                    continue
                s = pm.local_stage(h.stage)
                if s is not None and process.has_stage(s):
                    moves.append((s, h.at))
            if not moves or moves[-1][0] != changes["stage"]:
                moves.append((changes["stage"], rd.modified_at))
        first_move = min((at for _, at in moves), default=rd.modified_at)
        at = max(deal.updated_at, min(first_move, rd.modified_at))
        kw: dict[str, Any] = {"at": at, "actor": self.actor, "source": EventSource.CRM_SYNC}
        if "amount" in changes:
            deal = deal.with_amount(changes["amount"], **kw)
        if "close_date" in changes:
            deal = deal.with_close_date(changes["close_date"], **kw)
        if "owner_id" in changes:
            deal = deal.with_owner(changes["owner_id"], **kw)
        details = {f: changes[f] for f in ("name", "account_id", "contact_ids") if f in changes}
        if details:
            deal = deal.with_details(**kw, **details)
        if deal.process != process.key:
            deal = self._migrate(deal, process, moves[-1][0] if moves else deal.stage, rd, ctx)
        for s, when in moves:
            if s != deal.stage:
                deal = self._move(deal, process, s, max(when, deal.updated_at), rd, ctx)
        return deal

    def _migrate(self, deal: Deal, process: Process, target: str, rd: RemoteDeal, ctx: _PageCtx) -> Deal:
        """The CRM moved the deal to a pipeline of another local process."""
        kind = StageKind(deal.status.value)
        same = [s.key for s in process.stages if s.kind is kind]
        to = target if process.stage(target).kind is kind else (
            process.initial_stage.key if kind is StageKind.OPEN else same[0]
        )
        at = max(rd.modified_at, deal.updated_at)
        ev = ProcessMigrated(
            deal.id, at, self.actor, EventSource.CRM_SYNC, process.key, deal.process_version,
            process.version, deal.stage, to,
        )
        b = Bypass(
            ctx.next_seq(), self.connection, deal.id, rd.id, "pipeline_changed", deal.stage, to, at,
            ({"path": "process", "code": "pipeline_changed",
              "message": f"moved from process {deal.process!r} to {process.key!r} in the CRM"},),
        )
        ctx.bypasses.append((b, deal.id))
        ctx.counts.bypasses += 1
        return deal.append(ev)

    def _move(self, deal: Deal, process: Process, to: str, at: datetime, rd: RemoteDeal, ctx: _PageCtx) -> Deal:
        """Append the CRM's stage move as a fact; list it as a bypass when the process objects."""
        src = process.stage(deal.stage)
        dst = process.stage(to)
        edge = process.edge(deal.stage, to)
        if edge is not None and not (edge.guards or dst.entry or (src.exit and not src.is_closed)):
            problems: list[Any] = []  # a plain edge of the graph: nothing to check
        else:
            needs_activities = bool(dst.entry.activities or src.exit.activities)
            acts = list(self.store.all(Activity, deal_id=deal.id)) if needs_activities else []
            problems = process.check(deal, to, at=at, actor=self.actor, activities=acts)
        if problems:
            if edge is not None:
                kind = "missing_criteria"
            elif src.is_closed and not dst.is_closed:
                kind = "reopened"
            elif not src.is_closed and not dst.is_closed and process.order(to) < process.order(deal.stage):
                kind = "moved_backwards"
            elif not src.is_closed and (dst.kind is StageKind.WON or process.order(to) > process.order(deal.stage)):
                kind = "skipped_stage"
            else:
                kind = "not_allowed"
            ctx.bypasses.append((Bypass(
                ctx.next_seq(), self.connection, deal.id, rd.id, kind, deal.stage, to, at,
                tuple(p.as_dict() for p in problems),
            ), deal.id))
            ctx.counts.bypasses += 1
        cls: type[StageChanged]
        if dst.kind is StageKind.WON:
            cls = DealWon
        elif dst.kind is StageKind.LOST:
            cls = DealLost
        elif src.is_closed:
            cls = DealReopened
        else:
            cls = StageChanged
        psrc = deal.probability_source
        if dst.is_closed or deal.probability is None or psrc in (None, EventSource.STAGE_DEFAULT, EventSource.RULE):
            prob, psrc = dst.probability, EventSource.STAGE_DEFAULT
        else:
            prob = deal.probability
        # every field is already a checked value (aware instant, enums): build the event directly
        ev = cls._make((deal.id, at, self.actor, EventSource.CRM_SYNC, deal.stage, to, prob, psrc,
                        dst.effective_forecast_category, None))
        return deal.append(ev)

    # --- push ----------------------------------------------------------------------------------
    def push(self, *, dry_run: bool = False, pull_first: bool = True, retry_parked: bool = False) -> PushSummary:
        """Send the outbox to the CRM (after a pull, so conflicts are settled first).

        ``retry_parked`` puts parked entries back in the queue first. With ``dry_run`` nothing is
        sent or written; the summary counts what would be sent.
        """
        pulled = self.pull(dry_run=dry_run) if pull_first else None
        if AdapterCapability.PUSH not in self.adapter.capabilities:
            raise AdapterError(f"the {self.adapter.name} adapter cannot push")
        if dry_run:
            result: list[PushSummary] = []
            try:
                with self.store.transaction():
                    result.append(self._push(True, retry_parked, pulled))
                    raise _Rollback
            except _Rollback:
                pass
            return result[0]
        summary = self._push(False, retry_parked, pulled)
        with self.store.transaction():
            st = self._state()
            st["last_push"] = summary.as_dict()
            self.store.put_document(STATE, self.connection, st)
        self._fire("salesprocess_sync_finished", connection=self.connection, direction="push", summary=summary)
        return summary

    def _push(self, dry: bool, retry_parked: bool, pulled: PullSummary | None) -> PushSummary:
        if retry_parked:
            self.outbox.retry_parked()
        with self.store.transaction():
            self._persist_mapping()
        counts = {"sent": 0, "created": 0, "updated": 0, "failed": 0, "parked": 0, "skipped": 0, "batches": 0}
        failures: list[RecordFailure] = []
        work: list[tuple[PushItem, OutboxEntry, dict[str, Any]]] = []
        for entry in self.outbox.entries("pending"):
            built = self._build_item(entry, failures, counts, dry)
            if built is not None:
                work.append(built)
        size = max(1, int(self.adapter.push_batch_size))
        for i in range(0, len(work), size):
            batch = work[i:i + size]
            counts["batches"] += 1
            counts["sent"] += len(batch)
            if dry:
                continue
            results = self._send([w[0] for w in batch])
            with self.store.transaction():
                for (item, entry, snap), res in zip(batch, results, strict=True):
                    self._record_result(item, entry, snap, res, failures, counts)
        return PushSummary(
            connection=self.connection, sent=counts["sent"], created=counts["created"],
            updated=counts["updated"], failed=counts["failed"], parked=counts["parked"],
            skipped=counts["skipped"], batches=counts["batches"], dry_run=dry,
            failures=tuple(failures), pull=pulled,
        )

    def _park(self, entry: OutboxEntry, code: str, message: str, failures: list[RecordFailure],
              counts: dict[str, int], dry: bool, *, retriable: bool = False, fields: Sequence[str] = ()) -> None:
        attempts = entry.attempts + 1
        parked = not retriable or attempts >= self.max_attempts
        failures.append(RecordFailure(self.connection, ObjectKind.DEALS, "push", entry.deal_id, code, message, attempts, parked))
        counts["failed"] += 1
        counts["parked"] += int(parked)
        if not dry:
            self.outbox.put(OutboxEntry(
                entry.connection, entry.deal_id, entry.version, entry.seq,
                "parked" if parked else "pending", attempts,
                {"code": code, "message": message, "fields": list(fields)},
            ))

    def _push_values(self, deal: Deal, remote_stage: str) -> dict[str, Any]:
        return {
            "name": deal.name, "stage": remote_stage,
            "amount": None if deal.amount is None else deal.amount.amount,
            "currency": None if deal.amount is None else deal.amount.currency,
            "close_date": deal.close_date,
            "owner": None if deal.owner_id is None else self._owners_back.get(deal.owner_id, deal.owner_id),
        }

    def _build_item(
        self, entry: OutboxEntry, failures: list[RecordFailure], counts: dict[str, int], dry: bool,
    ) -> tuple[PushItem, OutboxEntry, dict[str, Any]] | None:
        try:
            deal = self.store.get_deal(entry.deal_id)
        except NotFoundError:
            self._park(entry, "deleted", f"deal {entry.deal_id} no longer exists", failures, counts, dry)
            return None
        link = self._link(deal)
        remote_id = deal.external_ids.get(self.source)
        if remote_id is None and link is not None:
            remote_id = link.get("remote")
        pipeline = link.get("pipeline") if link else None
        pm = self.mapping.for_pipeline(pipeline) if pipeline is not None else self.mapping.for_process(deal.process)
        if pm is None or pm.process != deal.process:
            self._park(entry, "unmapped_process", f"deal {deal.id}: no CRM pipeline maps process {deal.process!r}", failures, counts, dry)
            return None
        remote_stage = pm.remote_stage(deal.stage)
        if remote_stage is None:
            self._park(entry, "unmapped_stage", f"deal {deal.id}: stage {deal.stage!r} maps to no CRM stage", failures, counts, dry)
            return None
        local_vals = _values(deal)
        values = self._push_values(deal, remote_stage)
        if remote_id is not None:
            base = _dec(link["base"]) if link else {}
            send: dict[str, Any] = {}
            for f in PUSHED_FIELDS:
                if local_vals[f] != base.get(f, object()):
                    if f == "amount":
                        send["amount"] = values["amount"]
                        send["currency"] = values["currency"]
                    elif f == "owner_id":
                        send["owner"] = values["owner"]
                    else:
                        send[f] = values[f]
            if not send:
                counts["skipped"] += 1
                if not dry:
                    with self.store.transaction():
                        fresh = self.outbox.get(deal.id)
                        if fresh is not None and fresh.seq == entry.seq:
                            self.outbox.remove(deal.id)
                return None
        else:
            send = values
        item = PushItem(deal.id, remote_id, send, pm.pipeline if pm.pipeline != "*" else pipeline)
        return item, entry, local_vals

    def _send(self, batch: list[PushItem]) -> list[PushResult]:
        try:
            results = list(self.adapter.push(batch))
        except RemoteValidationError as e:
            if len(batch) == 1:
                return [PushResult(batch[0].local_id, False, code=e.vendor_code or "invalid",
                                   message=str(e), retriable=False, fields=e.fields)]
            mid = len(batch) // 2  # find the record the vendor refuses the whole batch for
            return self._send(batch[:mid]) + self._send(batch[mid:])
        if len(results) != len(batch) or any(r.local_id != i.local_id for r, i in zip(results, batch, strict=False)):
            raise AdapterError(
                f"the {self.adapter.name} adapter returned {len(results)} results for {len(batch)} records, "
                "or not in order"
            )
        return results

    def _record_result(
        self, item: PushItem, entry: OutboxEntry, snap: Mapping[str, Any], res: PushResult,
        failures: list[RecordFailure], counts: dict[str, int],
    ) -> None:
        fresh = self.outbox.get(item.local_id) or entry
        if not res.ok:
            self._park(fresh, res.code or "refused", res.message or "refused by the CRM", failures,
                       counts, False, retriable=res.retriable, fields=res.fields)
            return
        remote_id = res.remote_id or item.remote_id
        if remote_id is None:
            self._park(fresh, "no_id", "the CRM accepted the record but returned no id", failures, counts, False)
            return
        deal = self.store.get_deal(item.local_id)
        if deal.external_ids.get(self.source) != remote_id:
            d2 = deal.with_details(
                external_ids=deal.external_ids.set(self.source, remote_id), at=deal.updated_at,
                actor=self.actor, source=EventSource.CRM_SYNC,
            )
            self.store.save_deal(d2, expected_version=deal.version)
        key = self._key(item.local_id)
        link = self._link(self.store.get_deal(item.local_id))
        if link is None or item.remote_id is None:
            base: dict[str, Any] = {f: snap[f] for f in PUSHED_FIELDS}
            base.update(account_id=None, contact_ids=())
            if link is not None:
                old = _dec(link["base"])
                base.update({f: old[f] for f in PULL_ONLY_FIELDS if f in old})
        else:
            base = _dec(link["base"])
            sent = set(item.values)
            for f in PUSHED_FIELDS:
                if f in sent or (f == "owner_id" and "owner" in sent):
                    base[f] = snap[f]
        self.store.put_document(LINK, key, {
            "remote": remote_id, "pipeline": (link or {}).get("pipeline") or item.pipeline,
            "base": _enc(base), "modified": None if link is None else link.get("modified"),
        })
        if fresh.seq == entry.seq:
            self.outbox.remove(item.local_id)
        counts["created" if (res.created or item.remote_id is None) else "updated"] += 1

    def sync(self, *, dry_run: bool = False) -> PushSummary:
        """Pull, then push: after it completes, both sides agree on every synced field."""
        if AdapterCapability.PUSH in self.adapter.capabilities:
            return self.push(dry_run=dry_run)
        pulled = self.pull(dry_run=dry_run)
        return PushSummary(connection=self.connection, dry_run=dry_run, pull=pulled)

    # --- reports --------------------------------------------------------------------------------
    def _docs(self, kind: str) -> Iterator[dict[str, Any]]:
        prefix = self.connection + "/"
        for k, d in self.store.documents(kind):
            if k.startswith(prefix):
                yield d

    def conflicts(self) -> list[Conflict]:
        """Every conflict recorded for this connection, oldest first."""
        return [Conflict.from_doc(x) for d in self._docs(CONFLICT) for x in d["items"]]

    def bypasses(self) -> list[Bypass]:
        """Every bypass recorded for this connection, oldest first."""
        return [Bypass.from_doc(x) for d in self._docs(BYPASS) for x in d["items"]]

    def failures(self) -> list[RecordFailure]:
        """Records that failed: pulled records waiting to be applied (tried again at the end of
        every pull unless a newer version came), pushes failing or parked."""
        out = [
            RecordFailure(self.connection, d["kind"], "pull", d["remote_id"], d["code"], d["message"], d["attempts"])
            for d in self._docs(FAILURE)
        ]
        for e in self.outbox.entries():
            if e.error is not None:
                out.append(RecordFailure(
                    self.connection, ObjectKind.DEALS, "push", e.deal_id, e.error.get("code", ""),
                    e.error.get("message", ""), e.attempts, e.status == "parked",
                ))
        return out

    def status(self) -> SyncStatus:
        cursors = {k: c for k in OBJECT_KINDS if (c := self.cursor(k)) is not None}
        st = self._state()
        entries = list(self.outbox.entries())
        return SyncStatus(
            connection=self.connection, cursors=cursors,
            pending=sum(1 for e in entries if e.status == "pending"),
            parked=sum(1 for e in entries if e.status == "parked"),
            conflicts=sum(len(d["items"]) for d in self._docs(CONFLICT)),
            bypasses=sum(len(d["items"]) for d in self._docs(BYPASS)),
            failures=sum(1 for _ in self._docs(FAILURE)),
            linked_deals=self.store.count_deals(external_source=self.source),
            last_pull=st.get("last_pull"), last_push=st.get("last_push"),
        )

