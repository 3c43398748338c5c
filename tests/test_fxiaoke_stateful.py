"""The fault-injection stateful sync test (the machine of ``test_sync_stateful``) against the
纷享销客 (Fxiaoke) fake: random CRM-side edits, local edits, syncs and injected faults (errors
inside HTTP 200 included); after every completed sync both sides agree record by record and
nothing is lost or duplicated — creates whose answers were lost included."""

from __future__ import annotations

from hypothesis import settings

from salesprocess_adapters.fakes import FxiaokeHarness
from test_sync_stateful import SETTINGS, SyncMachine


class FxiaokeMachine(SyncMachine):
    harness_class = FxiaokeHarness


class FxiaokeOnSQLiteMachine(SyncMachine):
    harness_class = FxiaokeHarness
    use_sqlite = True


TestFxiaokeStateful = SETTINGS(FxiaokeMachine).TestCase
TestFxiaokeOnSQLiteStateful = settings(SETTINGS, max_examples=6)(FxiaokeOnSQLiteMachine).TestCase
