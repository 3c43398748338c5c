"""The adapter conformance kit: one test suite every CRM adapter must pass.

Subclass :class:`AdapterConformance` in a test module and give it one fixture,
``adapter_factory``, that yields a harness (an :class:`AdapterHarness`): something that builds
adapters and drives the CRM side (a vendor fake, a sandbox account)::

    class TestMyCrm(AdapterConformance):
        @pytest.fixture
        def adapter_factory(self):
            h = MyCrmHarness()
            yield h
            h.close()

The harness's ``capabilities`` (and the adapter's) decide what is skipped: no push tests for a
read-only adapter, no fault tests when the CRM side cannot inject faults. Each test gets a fresh
store from the ``store`` fixture (a :class:`~salesprocess.store.MemoryStore` unless the subclass
overrides it, e.g. with a SQLite file in ``tmp_path``).

Covered: pipelines and the proposed process, initial and incremental pull, equal timestamps at a
page boundary, stage history as events, bypasses, dry run, push (create, update, partial failure),
the three conflict policies, resuming an interrupted pull and push, retries on every fault kind,
typed errors when retries run out, client-side rate limiting, and secret hygiene.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import pytest

from ..errors import AdapterError, AuthError, StoreError
from ..model import Deal, DealWon, EventSource, StageChanged
from ..money import Money
from ..store import MemoryStore, Store
from ..sync import (
    FAULTS,
    AdapterCapability,
    ConflictPolicy,
    CrmAdapter,
    InMemoryCrm,
    ManualClock,
    ObjectKind,
    Page,
    PushItem,
    PushResult,
    ReferenceAdapter,
    RetryPolicy,
    SyncEngine,
)

__all__ = ["AdapterConformance", "AdapterHarness", "ReferenceHarness", "RemoteControl"]

CONNECTION = "conformance"


@runtime_checkable
class RemoteControl(Protocol):
    """The CRM side of a harness, in neutral values (stage ids are the CRM's)."""

    status_counts: Mapping[str, int]
    """Calls per outcome; the kit reads ``"throttled"``: calls the CRM refused as too many,
    whatever form the refusal took (HubSpot 429, Salesforce 403 ``REQUEST_LIMIT_EXCEEDED``)."""

    def stage_ids(self) -> list[str]:
        """Every stage of the default pipeline, in order (open stages, then won, then lost)."""
        ...

    def open_stage_ids(self) -> list[str]: ...

    def create_deal(self, name: str, stage: str, *, amount: Decimal | str | None = None,
                    close_date: date | None = None) -> str: ...

    def update_deal(self, remote_id: str, **fields: Any) -> None:
        """Change ``name``, ``stage``, ``amount`` or ``close_date`` as a CRM user would."""
        ...

    def get_deal(self, remote_id: str) -> Mapping[str, Any]:
        """``name``, ``stage``, ``amount`` (Decimal or None), ``close_date``, ``local_id``."""
        ...

    def deal_ids(self) -> list[str]: ...

    def fail_next(self, fault: str, n: int = 1) -> None: ...

    def clear_faults(self) -> None: ...

    def reject_names(self, prefix: str | None) -> None:
        """Refuse, record by record, pushed deals whose name starts with ``prefix``."""
        ...

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or restart) the CRM's record clock."""
        ...

    def now(self) -> datetime: ...

    def advance(self, seconds: float) -> None:
        """Move the CRM's record clock forward."""
        ...

    def set_rate_limit(self, limit: tuple[int, float] | None) -> None: ...


@runtime_checkable
class AdapterHarness(Protocol):
    """What the ``adapter_factory`` fixture yields."""

    remote: RemoteControl
    capabilities: frozenset[str]
    secrets: tuple[str, ...]
    """Every secret the harness handed to adapters (none may leak)."""

    def adapter(
        self, *, page_size: int | None = None, rate_limit: tuple[int, float] | bool | None = True,
        token: str | None = None, retry: RetryPolicy | None = None,
    ) -> CrmAdapter:
        """A new adapter. ``rate_limit=True`` keeps the adapter's default limiter, ``None`` turns
        it off, a pair sets it; ``token`` replaces the valid token and turns token refresh off (to
        test refusals)."""
        ...

    def close(self) -> None: ...


class ReferenceHarness:
    """The harness of the reference adapter (:class:`~salesprocess.sync.ReferenceAdapter`).

    Rate limits count on a :class:`~salesprocess.sync.ManualClock` shared by the CRM and the
    adapter, so throttling tests run without waiting.
    """

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.crm = InMemoryCrm(monotonic=self.clock.now, token="ref-token-0")
        self.remote = _ReferenceRemote(self.crm)
        caps = InMemoryCrm.capabilities | ReferenceAdapter.capabilities
        self.capabilities = frozenset(caps)
        self.secrets = ("ref-token-0", "ref-refresh")

    def adapter(
        self, *, page_size: int | None = None, rate_limit: tuple[int, float] | bool | None = True,
        token: str | None = None, retry: RetryPolicy | None = None,
    ) -> ReferenceAdapter:
        rl = self.remote.limit if rate_limit is True else (None if rate_limit is False else rate_limit)
        return ReferenceAdapter(
            self.crm, token=token or "ref-token-0", refresh_token=None if token else "ref-refresh",
            page_size=page_size or 50, retry=retry or RetryPolicy(attempts=5, base=0.01, cap=0.1),
            rate_limit=rl, clock=self.clock.now, sleep=self.clock.sleep, seed=7,
        )

    def close(self) -> None:
        pass


class _ReferenceRemote:
    def __init__(self, crm: InMemoryCrm) -> None:
        self.crm = crm
        self.limit: tuple[int, float] | None = None

    @property
    def status_counts(self) -> Mapping[str, int]:
        return self.crm.status_counts

    def stage_ids(self) -> list[str]:
        return self.crm.stage_ids()

    def open_stage_ids(self) -> list[str]:
        return self.crm.open_stage_ids()

    def create_deal(self, name: str, stage: str, *, amount: Decimal | str | None = None,
                    close_date: date | None = None) -> str:
        return self.crm.create_deal(name, stage, amount=amount, close_date=close_date)

    def update_deal(self, remote_id: str, **fields: Any) -> None:
        self.crm.update_deal(remote_id, **fields)

    def get_deal(self, remote_id: str) -> Mapping[str, Any]:
        return self.crm.get_deal(remote_id)

    def deal_ids(self) -> list[str]:
        return self.crm.deal_ids()

    def fail_next(self, fault: str, n: int = 1) -> None:
        self.crm.fail_next(fault, n)

    def clear_faults(self) -> None:
        self.crm.clear_faults()

    def reject_names(self, prefix: str | None) -> None:
        self.crm.reject_names(prefix)

    def freeze(self, frozen: bool = True) -> None:
        self.crm.freeze(frozen)

    def now(self) -> datetime:
        return self.crm.now()

    def advance(self, seconds: float) -> None:
        self.crm.advance(seconds)

    def set_rate_limit(self, limit: tuple[int, float] | None) -> None:
        self.limit = limit
        self.crm.rate_limit = limit


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


class _Interrupted(Exception):
    """Stands for a sync killed mid-way (the process died)."""


class _StopAfterPages:
    """An adapter whose pull dies after ``pages`` pages (as if the process was killed)."""

    def __init__(self, inner: CrmAdapter, pages: int) -> None:
        self.inner = inner
        self.pages = pages
        self.name = inner.name
        self.capabilities = inner.capabilities
        self.push_batch_size = inner.push_batch_size

    def pipelines(self) -> Any:
        return self.inner.pipelines()

    def pull(self, kind: str, cursor: Mapping[str, Any] | None) -> Iterator[Page]:
        for i, page in enumerate(self.inner.pull(kind, cursor)):
            if i >= self.pages:
                raise _Interrupted(f"killed after {self.pages} pages")
            yield page

    def push(self, items: Sequence[PushItem]) -> Sequence[PushResult]:
        results = self.inner.push(items)
        raise _Interrupted("killed after the CRM accepted the batch, before the results were saved")
        return results  # pragma: no cover

    def close(self) -> None:
        self.inner.close()


class _FailingStore:
    """A store whose ``fail_at``-th ``save_deals`` raises inside the page's transaction."""

    def __init__(self, inner: Store, fail_at: int) -> None:
        self._inner = inner
        self._n = 0
        self._fail_at = fail_at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def save_deals(self, items: Any) -> int:
        self._n += 1
        if self._n == self._fail_at:
            list(items)
            raise StoreError("disk full (simulated)")
        return self._inner.save_deals(items)


def _amount(v: Any) -> Decimal | None:
    return None if v is None else Decimal(str(v))


def deal_values(deal: Deal) -> dict[str, Any]:
    return {
        "name": deal.name, "stage": deal.stage,
        "amount": None if deal.amount is None else deal.amount.amount, "close_date": deal.close_date,
    }


class AdapterConformance:
    """The suite. Subclass it and provide the ``adapter_factory`` fixture."""

    page_size = 3
    """Records per page in the tests: small, so several pages are always involved."""

    # --- fixtures ----------------------------------------------------------------------------
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        s = MemoryStore()
        yield s
        s.close()

    @pytest.fixture
    def h(self, adapter_factory: AdapterHarness) -> AdapterHarness:
        return adapter_factory

    # --- helpers -------------------------------------------------------------------------------
    def need(self, h: AdapterHarness, *caps: str) -> None:
        missing = [c for c in caps if c not in h.capabilities]
        if missing:
            pytest.skip(f"needs capabilities: {', '.join(missing)}")

    def engine(self, h: AdapterHarness, store: Store, *, adapter: CrmAdapter | None = None,
               policy: ConflictPolicy | str = ConflictPolicy.NEWEST_WINS, prefetch: int = 2,
               all_kinds: bool = False) -> SyncEngine:
        """An engine on ``store``; it pulls deals only unless ``all_kinds``."""
        return SyncEngine(
            store, adapter or h.adapter(page_size=self.page_size), connection=CONNECTION,
            policy=policy, prefetch=prefetch, kinds=None if all_kinds else (ObjectKind.DEALS,),
        )

    def seed(self, h: AdapterHarness, n: int, *, prefix: str = "Deal") -> list[str]:
        stages = h.remote.open_stage_ids()
        return [
            h.remote.create_deal(f"{prefix} {i}", stages[0], amount=Decimal(100 + i),
                                 close_date=date(2026, 6, 1) + timedelta(days=i))
            for i in range(n)
        ]

    def local_of(self, store: Store, remote_id: str) -> Deal:
        d = store.find_deal(CONNECTION, remote_id)
        assert d is not None, f"CRM deal {remote_id} was not pulled"
        return d

    def assert_agree(self, h: AdapterHarness, eng: SyncEngine) -> None:
        """Both sides agree record by record, and nothing is duplicated."""
        store = eng.store
        remote_ids = h.remote.deal_ids()
        assert len(set(remote_ids)) == len(remote_ids)
        locals_ = [d for d in store.deals() if CONNECTION in d.external_ids]
        linked = [d.external_ids[CONNECTION] for d in locals_]
        assert len(set(linked)) == len(linked), "two local deals are linked to one CRM deal"
        assert set(linked) == set(remote_ids), (
            f"CRM-only: {sorted(set(remote_ids) - set(linked))}, local-only: {sorted(set(linked) - set(remote_ids))}"
        )
        for d in locals_:
            r = h.remote.get_deal(d.external_ids[CONNECTION])
            pm = eng.mapping.for_pipeline(None) or eng.mapping.pipelines[0]
            assert pm.local_stage(r["stage"]) == d.stage, (d.id, r["stage"], d.stage)
            assert r["name"] == d.name, (d.id, r["name"], d.name)
            assert _amount(r["amount"]) == (None if d.amount is None else d.amount.amount), (d.id, r["amount"], d.amount)
            assert r["close_date"] == d.close_date, (d.id, r["close_date"], d.close_date)
        local_ids = [r.get("local_id") for r in (h.remote.get_deal(i) for i in remote_ids)]
        named = [x for x in local_ids if x]
        assert len(set(named)) == len(named), "two CRM deals carry the same local id"

    # --- contract -------------------------------------------------------------------------------
    def test_adapter_honours_the_protocol(self, h: AdapterHarness) -> None:
        a = h.adapter()
        assert isinstance(a, CrmAdapter)
        assert isinstance(h.remote, RemoteControl)
        assert isinstance(a.name, str)
        assert a.name
        assert a.push_batch_size >= 1
        assert set(a.capabilities) <= set(h.capabilities)
        a.close()

    def test_pipelines_propose_a_valid_process(self, h: AdapterHarness, store: Store) -> None:
        self.need(h, AdapterCapability.PIPELINES)
        eng = self.engine(h, store)
        mapping = eng.mapping
        pm = mapping.for_pipeline(None) or mapping.pipelines[0]
        proc = eng.process(pm.process)
        for sid in h.remote.stage_ids():
            local = pm.local_stage(sid)
            assert local is not None, f"CRM stage {sid} is not mapped"
            assert proc.has_stage(local), f"CRM stage {sid} maps to a missing stage"
        assert proc.won_stages
        assert proc.lost_stages
        assert proc.open_stages
        stages = h.remote.stage_ids()
        assert proc.stage(pm.local_stage(stages[0]) or "").kind.value == "open"

    # --- pull -------------------------------------------------------------------------------------
    def test_initial_pull_creates_every_deal(self, h: AdapterHarness, store: Store) -> None:
        ids = self.seed(h, 8)
        eng = self.engine(h, store, all_kinds=True)
        s = eng.pull()
        assert (s.created, s.failed) == (8, 0)
        assert s.fetched >= 8
        assert s.pages >= 3
        for i, rid in enumerate(ids):
            d = self.local_of(store, rid)
            assert d.name == f"Deal {i}"
            assert d.amount == Money(100 + i, d.amount.currency if d.amount else "USD")
            assert d.events[0].source is EventSource.CRM_SYNC
        self.assert_agree(h, eng)

    def test_pull_again_changes_nothing(self, h: AdapterHarness, store: Store) -> None:
        self.seed(h, 5)
        eng = self.engine(h, store)
        eng.pull()
        before = {d.id: d.version for d in store.deals()}
        s = eng.pull()
        assert (s.created, s.updated, s.failed) == (0, 0, 0)
        assert {d.id: d.version for d in store.deals()} == before
        eng.reset_cursor()
        s = eng.pull()  # a full re-read is idempotent too
        assert (s.created, s.updated, s.unchanged) == (0, 0, 5)
        assert {d.id: d.version for d in store.deals()} == before

    def test_incremental_pull_fetches_only_changes(self, h: AdapterHarness, store: Store) -> None:
        ids = self.seed(h, 9)
        eng = self.engine(h, store)
        eng.pull()
        h.remote.update_deal(ids[2], name="Renamed")
        h.remote.update_deal(ids[5], amount=Decimal("999.50"))
        new = h.remote.create_deal("Fresh", h.remote.open_stage_ids()[0])
        s = eng.pull()
        assert (s.created, s.updated, s.failed) == (1, 2, 0)
        assert s.fetched <= 3 + 2, "an incremental pull re-read unchanged records"
        assert self.local_of(store, ids[2]).name == "Renamed"
        assert self.local_of(store, ids[5]).amount == Money("999.50", "USD")
        assert self.local_of(store, new).name == "Fresh"
        self.assert_agree(h, eng)

    def test_equal_timestamps_at_a_page_boundary(self, h: AdapterHarness, store: Store) -> None:
        self.need(h, AdapterCapability.CLOCK)
        self.seed(h, 2, prefix="Before")
        eng = self.engine(h, store)
        eng.pull()
        h.remote.freeze(True)
        try:
            tied = self.seed(h, self.page_size * 2 + 1, prefix="Tied")
        finally:
            h.remote.freeze(False)
        s = eng.pull()
        assert s.created == len(tied)
        for rid in tied:
            self.local_of(store, rid)
        later = self.seed(h, 1, prefix="After")
        s = eng.pull()
        assert (s.created, s.failed) == (1, 0)
        self.local_of(store, later[0])
        self.assert_agree(h, eng)

    def test_stage_history_becomes_events(self, h: AdapterHarness, store: Store) -> None:
        self.need(h, AdapterCapability.STAGE_HISTORY)
        stages = h.remote.stage_ids()
        opens = h.remote.open_stage_ids()
        rid = h.remote.create_deal("Walker", opens[0], amount=Decimal(10))
        h.remote.update_deal(rid, stage=opens[1])
        won = next(s for s in stages if s not in opens)
        eng = self.engine(h, store)
        pm = eng.mapping.for_pipeline(None) or eng.mapping.pipelines[0]
        if len(opens) > 2:
            h.remote.update_deal(rid, stage=opens[2])
        h.remote.update_deal(rid, stage=won)
        eng.pull()
        d = self.local_of(store, rid)
        moves = [e for e in d.events if isinstance(e, StageChanged)]
        expected = [pm.local_stage(s) for s in ([*opens[1:3], won] if len(opens) > 2 else [opens[1], won])]
        assert [e.to_stage for e in moves] == expected
        assert all(e.source is EventSource.CRM_SYNC for e in d.events)
        assert isinstance(moves[-1], DealWon)
        assert d.status.value == "won"
        assert [e.at for e in moves] == sorted(e.at for e in moves)
        # a later move arrives incrementally, as its own event
        h.remote.update_deal(rid, stage=opens[0])
        eng.pull()
        d2 = self.local_of(store, rid)
        assert d2.stage == pm.local_stage(opens[0])
        assert d2.status.value == "open"
        assert d2.events[: d.version] == d.events

    def test_bypass_is_accepted_and_reported(self, h: AdapterHarness, store: Store) -> None:
        opens = h.remote.open_stage_ids()
        assert len(opens) >= 3, "the default pipeline needs three open stages"
        rid = h.remote.create_deal("Skipper", opens[0])
        eng = self.engine(h, store)
        eng.pull()
        h.remote.update_deal(rid, stage=opens[2])  # skips opens[1]
        s = eng.pull()
        pm = eng.mapping.for_pipeline(None) or eng.mapping.pipelines[0]
        d = self.local_of(store, rid)
        assert d.stage == pm.local_stage(opens[2]), "a CRM move is a fact, never refused"
        assert s.bypasses >= 1
        found = [b for b in eng.bypasses() if b.deal_id == d.id]
        assert found
        assert found[-1].kind == "skipped_stage"
        assert found[-1].to_stage == d.stage
        assert found[-1].problems

    def test_dry_run_writes_nothing(self, h: AdapterHarness, store: Store) -> None:
        ids = self.seed(h, 4)
        eng = self.engine(h, store)
        s = eng.pull(dry_run=True)
        assert s.dry_run
        assert s.created == 4
        assert {c.remote_id for c in s.changes if c.action == "created"} == set(ids)
        assert store.count_deals() == 0
        assert eng.cursor("deals") is None
        s2 = eng.pull()
        assert s2.created == 4

    # --- push -----------------------------------------------------------------------------------
    def test_push_creates_then_updates(self, h: AdapterHarness, store: Store) -> None:
        self.need(h, AdapterCapability.PUSH)
        self.seed(h, 1)
        eng = self.engine(h, store)
        eng.pull()
        pm = eng.mapping.for_pipeline(None) or eng.mapping.pipelines[0]
        proc = eng.process(pm.process)
        at = h.remote.now() + timedelta(minutes=1)
        d = proc.open_deal("local-1", at=at, actor="tester", name="Made here",
                           amount=Money("1234.50", "USD"), close_date=date(2026, 9, 30))
        eng.outbox.save_deal(d, expected_version=None)
        assert eng.outbox.count("pending") == 1
        s = eng.push()
        assert (s.sent, s.created, s.failed) == (1, 1, 0)
        d = store.get_deal("local-1")
        rid = d.external_ids[CONNECTION]
        r = h.remote.get_deal(rid)
        assert r["name"] == "Made here"
        assert _amount(r["amount"]) == Decimal("1234.50")
        assert eng.outbox.count() == 0
        d2 = d.with_amount(Money("2000", "USD"), at=at + timedelta(minutes=1), actor="tester")
        eng.outbox.save_deal(d2, expected_version=d.version)
        s = eng.push()
        assert (s.sent, s.updated, s.created) == (1, 1, 0)
        assert _amount(h.remote.get_deal(rid)["amount"]) == Decimal("2000")
        s = eng.push()
        assert s.sent == 0
        self.assert_agree(h, eng)

    def test_push_partial_failure_is_reported_per_record(self, h: AdapterHarness, store: Store) -> None:
        self.need(h, AdapterCapability.PUSH)
        eng = self.engine(h, store)
        pm = eng.mapping.for_pipeline(None) or eng.mapping.pipelines[0]
        proc = eng.process(pm.process)
        at = h.remote.now()
        h.remote.reject_names("REFUSED")
        names = ["Good A", "REFUSED B", "Good C"]
        for i, n in enumerate(names):
            eng.outbox.save_deal(proc.open_deal(f"p-{i}", at=at, actor="t", name=n, close_date=date(2026, 7, 1)),
                                 expected_version=None)
        eng.max_attempts = 2
        s = eng.push()
        assert (s.sent, s.created, s.failed) == (3, 2, 1)
        assert [f.record_id for f in s.failures] == ["p-1"]
        assert s.failures[0].code
        assert CONNECTION in store.get_deal("p-0").external_ids
        assert CONNECTION not in store.get_deal("p-1").external_ids
        entry = eng.outbox.get("p-1")
        assert entry is not None, "a refused record is kept, never dropped"
        assert entry.error is not None
        for _ in range(eng.max_attempts):  # retried while the CRM says it may pass, then parked
            if entry.status == "parked":
                break
            assert eng.push().failed == 1
            entry = eng.outbox.get("p-1")
            assert entry is not None
        assert entry.status == "parked"
        assert 1 <= entry.attempts <= eng.max_attempts
        assert eng.push().sent == 0, "parked records wait for retry_parked"
        h.remote.reject_names(None)
        s3 = eng.push(retry_parked=True)
        assert (s3.sent, s3.created) == (1, 1)
        assert eng.outbox.count() == 0
        self.assert_agree(h, eng)

    @pytest.mark.parametrize(
        ("policy", "local_later", "winner"),
        [("crm-wins", True, "crm"), ("local-wins", False, "local"),
         ("newest-wins", True, "local"), ("newest-wins", False, "crm")],
    )
    def test_conflict_policy(self, h: AdapterHarness, store: Store, policy: str, local_later: bool,
                             winner: str) -> None:
        self.need(h, AdapterCapability.PUSH)
        (rid,) = self.seed(h, 1)
        eng = self.engine(h, store, policy=policy)
        eng.pull()
        d = self.local_of(store, rid)
        h.remote.update_deal(rid, amount=Decimal("222"))
        remote_at = h.remote.now()
        local_at = remote_at + timedelta(hours=1) if local_later else max(d.updated_at, remote_at - timedelta(hours=1))
        if not local_later and local_at >= remote_at:
            pytest.skip("the CRM's clock does not allow a local change older than the CRM's")
        eng.outbox.save_deal(d.with_amount(Money("111", "USD"), at=local_at, actor="tester"), expected_version=d.version)
        eng.push()
        expected = Decimal("222") if winner == "crm" else Decimal("111")
        after = self.local_of(store, rid)
        assert after.amount is not None
        assert after.amount.amount == expected
        assert _amount(h.remote.get_deal(rid)["amount"]) == expected
        (c,) = [c for c in eng.conflicts() if c.deal_id == after.id]
        assert c.field == "amount"
        assert c.winner == winner
        assert c.policy == policy
        assert c.local == Money("111", "USD")
        assert c.remote == Money("222", "USD")
        assert c.base == Money(100, "USD")
        self.assert_agree(h, eng)
        eng.push()
        assert len(eng.conflicts()) == 1, "a settled conflict is not reported again"

    # --- resume -----------------------------------------------------------------------------------
    def test_interrupted_pull_resumes_to_the_same_state(self, h: AdapterHarness, store: Store) -> None:
        ids = self.seed(h, 10)
        h.remote.update_deal(ids[3], stage=h.remote.open_stage_ids()[1])
        reference = MemoryStore()
        ref_eng = self.engine(h, reference)
        ref_eng.pull()
        eng = self.engine(h, store, adapter=_StopAfterPages(h.adapter(page_size=self.page_size), 2))
        with pytest.raises(_Interrupted):
            eng.pull()
        partial = store.count_deals()
        assert 0 < partial < 10
        failing = _FailingStore(store, fail_at=2)
        eng2 = self.engine(h, failing)
        with pytest.raises(StoreError):
            eng2.pull()
        self.engine(h, store).pull()
        assert _state(store) == _state(reference)
        assert store.count_deals() == 10
        self.assert_agree(h, self.engine(h, store))

    def test_interrupted_push_does_not_duplicate(self, h: AdapterHarness, store: Store) -> None:
        self.need(h, AdapterCapability.PUSH)
        eng = self.engine(h, store)
        pm = eng.mapping.for_pipeline(None) or eng.mapping.pipelines[0]
        proc = eng.process(pm.process)
        at = h.remote.now()
        for i in range(4):
            eng.outbox.save_deal(proc.open_deal(f"x-{i}", at=at, actor="t", name=f"X {i}", close_date=date(2026, 8, 1)),
                                 expected_version=None)
        dying = self.engine(h, store, adapter=_StopAfterPages(h.adapter(page_size=self.page_size), 99))
        with pytest.raises(_Interrupted):
            dying.push()
        assert eng.outbox.count("pending") == 4, "nothing recorded: every entry is still queued"
        assert len(h.remote.deal_ids()) == 4
        s = eng.push()
        assert s.failed == 0
        assert len(h.remote.deal_ids()) == 4, "the retried push duplicated records"
        assert eng.outbox.count() == 0
        assert eng.pull().created == 0
        self.assert_agree(h, eng)

    # --- faults -------------------------------------------------------------------------------------
    @pytest.mark.parametrize("fault", FAULTS)
    def test_transient_faults_are_retried(self, h: AdapterHarness, store: Store, fault: str) -> None:
        self.need(h, AdapterCapability.FAULTS)
        ids = self.seed(h, 7)
        eng = self.engine(h, store)
        eng.mapping  # noqa: B018  (reads the pipelines before the faults start)
        h.remote.fail_next(fault, 1 if fault == "expired_token" else 2)
        s = eng.pull()
        assert s.created == 7
        assert s.failed == 0
        for rid in ids:
            self.local_of(store, rid)
        self.assert_agree(h, eng)

    def test_retries_run_out_with_a_typed_error(self, h: AdapterHarness, store: Store) -> None:
        self.need(h, AdapterCapability.FAULTS)
        self.seed(h, 4)
        eng = self.engine(h, store)
        eng.mapping  # noqa: B018
        h.remote.fail_next("5xx", 50)
        with pytest.raises(AdapterError) as ei:
            eng.pull()
        assert not isinstance(ei.value, AuthError)
        assert eng.cursor("deals") is None
        assert store.count_deals() == 0
        h.remote.clear_faults()
        assert eng.pull().created == 4

    def test_client_side_rate_limit_avoids_throttling(self, h: AdapterHarness, store: Store) -> None:
        self.need(h, AdapterCapability.FAULTS, AdapterCapability.RATE_LIMITS)
        self.seed(h, 12)
        h.remote.set_rate_limit((4, 0.25))
        try:
            # the client keeps a margin over the CRM's window, as a real configuration would: on a
            # busy machine a request can leave well after the limiter let it go
            eng = self.engine(h, store, adapter=h.adapter(page_size=2, rate_limit=(4, 0.4)))
            before = h.remote.status_counts.get("throttled", 0)
            assert eng.pull().created == 12
            assert h.remote.status_counts.get("throttled", 0) == before, "the limiter let the CRM throttle us"
            other = MemoryStore()
            patient = RetryPolicy(attempts=10, base=0.05, cap=0.4)  # the CRM may give no wait hint
            eager = self.engine(h, other, adapter=h.adapter(page_size=2, rate_limit=None, retry=patient))
            assert eager.pull().created == 12, "throttled calls are retried until they pass"
            assert h.remote.status_counts.get("throttled", 0) > before
        finally:
            h.remote.set_rate_limit(None)

    # --- secrets -------------------------------------------------------------------------------------
    def test_secrets_never_leak(self, h: AdapterHarness, store: Store, caplog: pytest.LogCaptureFixture) -> None:
        self.need(h, AdapterCapability.CREDENTIALS)
        caplog.set_level(logging.DEBUG)
        self.seed(h, 3)
        a = h.adapter()
        eng = self.engine(h, store, adapter=a)
        eng.pull()
        texts = [repr(a), str(a), repr(eng), repr(vars(a)) if hasattr(a, "__dict__") else ""]
        bad = h.adapter(token="wrong-" + "x" * 12)
        texts.append(repr(bad))
        with pytest.raises(AuthError) as ei:
            SyncEngine(MemoryStore(), bad, connection=CONNECTION).pull()
        err = ei.value
        texts += [str(err), repr(err), repr(err.args), repr(vars(err)), str(err.__cause__ or ""),
                  str(err.__context__ or "")]
        texts += [r.getMessage() for r in caplog.records]
        texts += [str(d) for kind in ("sync.cursor", "sync.link", "sync.state", "sync.mapping")
                  for _, d in store.documents(kind)]
        blob = "\n".join(texts)
        for secret in (*h.secrets, "wrong-" + "x" * 12):
            assert secret not in blob, "a secret leaked into a repr, an error, a log or the store"


def _state(store: Store) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in store.deals():
        out[d.id] = (deal_values(d), [(type(e).__name__, e.at, getattr(e, "to_stage", None)) for e in d.events])
    return out
