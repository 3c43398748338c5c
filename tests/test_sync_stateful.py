"""Random sequences of CRM-side edits, local edits, syncs and injected faults, against the
reference CRM and both vendor fakes (in-process). After every sync that completes, both sides
agree record by record, nothing is duplicated, and every field changed on both sides to different
values since the previous completed sync is in the conflict report."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from salesprocess import Deal, MemoryStore, Money
from salesprocess.errors import AdapterError
from salesprocess.sync import ObjectKind, RetryPolicy, SyncEngine
from salesprocess.testing.adapter_conformance import (
    CONNECTION,
    AdapterConformance,
    ReferenceHarness,
)
from salesprocess_adapters.fakes import HubSpotHarness, SalesforceHarness
from salesprocess_adapters.sqlite import SQLiteStore

FIELDS = ("name", "amount", "close_date", "stage")
names = st.sampled_from(["Alpha", "Beta", "Gamma", "Delta", "华东制造", "Ωmega"])
amounts = st.one_of(st.none(), st.integers(0, 50).map(lambda n: Decimal(n * 250) / 4))
close_dates = st.integers(0, 40).map(lambda n: date(2026, 3, 1) + timedelta(days=n))
faults = st.sampled_from(["429", "5xx", "timeout", "truncated", "expired_token", "duplicate_page"])


class SyncMachine(RuleBasedStateMachine):
    harness_class: Any = ReferenceHarness
    use_sqlite = False

    def __init__(self) -> None:
        super().__init__()
        self.h = self.harness_class() if self.harness_class is ReferenceHarness else self.harness_class("transport")
        self._tmp = tempfile.TemporaryDirectory() if self.use_sqlite else None
        self.store: Any = SQLiteStore(Path(self._tmp.name) / "s.sqlite") if self._tmp else MemoryStore()
        self.kit = AdapterConformance()
        self.n_local = 0
        self.eng: SyncEngine | None = None
        self.failed_since_check = False
        self.before: dict[tuple[str, str], Any] | None = None
        self.remote_changed: set[tuple[str, str]] = set()
        self.local_changed: set[tuple[str, str]] = set()
        self.reported = 0
        self.completed = 0

    def teardown(self) -> None:
        if self.eng is not None:
            self.eng.adapter.close()
        self.h.close()
        self.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    @initialize(policy=st.sampled_from(["crm-wins", "local-wins", "newest-wins"]), seed=st.integers(0, 3))
    def start(self, policy: str, seed: int) -> None:
        stages = self.h.remote.open_stage_ids()
        for i in range(seed):
            self.h.remote.create_deal(f"Seed {i}", stages[i % len(stages)], amount=Decimal(100 * (i + 1)),
                                      close_date=date(2026, 4, 1) + timedelta(days=i))
        adapter = self.h.adapter(page_size=2, retry=RetryPolicy(attempts=4, base=0.01, cap=0.05))
        self.eng = SyncEngine(self.store, adapter, connection=CONNECTION, policy=policy,
                              kinds=(ObjectKind.DEALS,), prefetch=1)
        self.eng.mapping  # noqa: B018  (read the pipelines before any fault is injected)
        self.eng.push()
        self._agreed()

    # --- helpers ----------------------------------------------------------------------------
    @property
    def engine(self) -> SyncEngine:
        assert self.eng is not None
        return self.eng

    def _pm(self) -> Any:
        m = self.engine.mapping
        return m.for_pipeline(None) or m.pipelines[0]

    def _linked(self) -> list[Deal]:
        return sorted((d for d in self.store.deals() if CONNECTION in d.external_ids), key=lambda d: d.id)

    def _remote_value(self, rid: str, field: str) -> Any:
        r = self.h.remote.get_deal(rid)
        if field == "stage":
            return self._pm().local_stage(r["stage"])
        if field == "amount":
            return None if r["amount"] is None else Decimal(str(r["amount"]))
        return r[field]

    def _money(self, amount: Decimal | None) -> Money | None:
        """A local amount (a CRM that keeps no empty amount overrides this: zero is none there)."""
        return None if amount is None else Money(amount, "USD")

    @staticmethod
    def _local_value(d: Deal, field: str) -> Any:
        if field == "amount":
            return None if d.amount is None else d.amount.amount
        return getattr(d, field)

    def _agreed(self) -> None:
        """After a completed sync: remember the agreed values and start a new window."""
        self.before = {(d.id, f): self._local_value(d, f) for d in self._linked() for f in FIELDS}
        self.remote_changed.clear()
        self.local_changed.clear()
        self.failed_since_check = False
        self.reported = len(self.engine.conflicts())

    def _now(self) -> Any:
        self.h.remote.advance(2)
        return self.h.remote.now()

    # --- CRM side -----------------------------------------------------------------------------
    @rule(name=names, amount=amounts, close=close_dates)
    def crm_create(self, name: str, amount: Decimal | None, close: date) -> None:
        self._now()
        self.h.remote.create_deal(name, self.h.remote.open_stage_ids()[0], amount=amount, close_date=close)

    @precondition(lambda self: bool(self.h.remote.deal_ids()))
    @rule(data=st.data(), field=st.sampled_from(FIELDS))
    def crm_edit(self, data: st.DataObject, field: str) -> None:
        rid = data.draw(st.sampled_from(sorted(self.h.remote.deal_ids())), label="crm deal")
        if field == "stage":
            value: Any = data.draw(st.sampled_from(self.h.remote.stage_ids()), label="stage")
        else:
            value = data.draw({"name": names, "amount": amounts, "close_date": close_dates}[field], label=field)
        self._now()
        self.h.remote.update_deal(rid, **{field: value})
        local = self.store.find_deal(CONNECTION, rid)
        if local is not None:
            self.remote_changed.add((local.id, field))

    # --- local side ------------------------------------------------------------------------------
    @rule(name=names, amount=amounts, close=close_dates)
    def local_create(self, name: str, amount: Decimal | None, close: date) -> None:
        proc = self.engine.process(self._pm().process)
        self.n_local += 1
        d = proc.open_deal(f"L{self.n_local}", at=self._now(), actor="rep", name=name,
                           amount=self._money(amount), close_date=close)
        self.engine.outbox.save_deal(d, expected_version=None)

    @precondition(lambda self: self.store.count_deals() > 0)
    @rule(data=st.data(), field=st.sampled_from(FIELDS))
    def local_edit(self, data: st.DataObject, field: str) -> None:
        deals = sorted(self.store.deals(), key=lambda d: d.id)
        d = data.draw(st.sampled_from(deals), label="local deal")
        at = max(self._now(), d.updated_at) + timedelta(milliseconds=500)
        if field == "stage":
            proc = self.engine.process(d.process)
            targets = proc.allowed_targets(d)
            if not targets:
                return
            new = proc.advance(d, data.draw(st.sampled_from(targets), label="to"), at=at, actor="rep")
        elif field == "name":
            new = d.with_details(name=data.draw(names, label="name"), at=at, actor="rep")
        elif field == "amount":
            a = data.draw(amounts, label="amount")
            new = d.with_amount(self._money(a), at=at, actor="rep")
        else:
            new = d.with_close_date(data.draw(close_dates, label="close"), at=at, actor="rep")
        if new is d:
            return
        self.engine.outbox.save_deal(new, expected_version=d.version)
        if CONNECTION in d.external_ids:
            self.local_changed.add((d.id, field))

    @precondition(lambda self: bool(self._linked()))
    @rule(data=st.data(), field=st.sampled_from(("name", "amount", "close_date")))
    def edit_both_sides(self, data: st.DataObject, field: str) -> None:
        """The same field of one deal changed in the CRM and locally (a conflict, unless equal)."""
        d = data.draw(st.sampled_from(self._linked()), label="deal")
        strat = {"name": names, "amount": amounts, "close_date": close_dates}[field]
        remote_value, local_value = data.draw(strat, label="crm value"), data.draw(strat, label="local value")
        self._now()
        self.h.remote.update_deal(d.external_ids[CONNECTION], **{field: remote_value})
        self.remote_changed.add((d.id, field))
        at = max(self._now(), d.updated_at) + timedelta(milliseconds=500)
        if field == "name":
            new = d.with_details(name=local_value, at=at, actor="rep")
        elif field == "amount":
            new = d.with_amount(self._money(local_value), at=at, actor="rep")
        else:
            new = d.with_close_date(local_value, at=at, actor="rep")
        if new is not d:
            self.engine.outbox.save_deal(new, expected_version=d.version)
            self.local_changed.add((d.id, field))

    # --- faults and syncs ----------------------------------------------------------------------------
    @rule(fault=faults, n=st.sampled_from([1, 2, 9]))
    def inject(self, fault: str, n: int) -> None:
        self.h.remote.fail_next(fault, 1 if fault == "expired_token" else n)

    @rule()
    def sync(self) -> None:
        both = self.local_changed & self.remote_changed
        expected = set()
        assert self.before is not None
        for key in both:
            deal_id, field = key
            d = self.store.get_deal(deal_id)
            lv = self._local_value(d, field)
            rv = self._remote_value(d.external_ids[CONNECTION], field)
            base = self.before.get(key)
            if lv != base and rv != base and lv != rv:
                expected.add(key)
        try:
            self.engine.push()
        except AdapterError:
            self.failed_since_check = True
            return
        self.completed += 1
        self.h.remote.clear_faults()
        self.kit.assert_agree(self.h, self.engine)
        new_conflicts = self.engine.conflicts()[self.reported:]
        if not self.failed_since_check:
            reported = {(c.deal_id, c.field if c.field != "close_date" else "close_date") for c in new_conflicts}
            missing = expected - reported
            assert not missing, f"conflicts not in the report: {sorted(missing)}"
        for c in new_conflicts:
            assert c.local != c.remote, "a conflict records two different values"
        assert self.engine.outbox.count("pending") == 0
        self._agreed()

    @invariant()
    def no_duplicates(self) -> None:
        if self.eng is None:
            return
        linked = [d.external_ids[CONNECTION] for d in self._linked()]
        assert len(linked) == len(set(linked))


SETTINGS = settings(max_examples=12, stateful_step_count=18, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


class ReferenceMachine(SyncMachine):
    harness_class = ReferenceHarness


class HubSpotMachine(SyncMachine):
    harness_class = HubSpotHarness


class SalesforceMachine(SyncMachine):
    harness_class = SalesforceHarness


class SalesforceOnSQLiteMachine(SyncMachine):
    harness_class = SalesforceHarness
    use_sqlite = True


TestReferenceStateful = SETTINGS(ReferenceMachine).TestCase
TestHubSpotStateful = SETTINGS(HubSpotMachine).TestCase
TestSalesforceStateful = SETTINGS(SalesforceMachine).TestCase
TestSalesforceOnSQLiteStateful = settings(SETTINGS, max_examples=6)(SalesforceOnSQLiteMachine).TestCase
