"""The fault-injection stateful sync test (the machine of ``test_sync_stateful``) against the
Pipedrive fake: random CRM-side edits (won and lost by status included), local edits, syncs and
injected faults; after every completed sync both sides agree record by record and nothing is lost
or duplicated — creates whose answers were lost included.

Pipedrive keeps no empty deal value (0 stands for none), so the local side never holds a zero
amount here: the adapter reads 0 as no amount."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import settings

from salesprocess import Money
from salesprocess_adapters.fakes.pipedrive import PipedriveHarness
from test_sync_stateful import SETTINGS, SyncMachine


class _ApiTokenHarness(PipedriveHarness):
    def __init__(self, mode: str = "transport", **options: Any) -> None:
        super().__init__(mode, auth="api_token", **options)


class _NoZeroAmounts(SyncMachine):
    def _money(self, amount: Decimal | None) -> Money | None:
        # Pipedrive keeps no empty value (0 is what it stores for none): local deals say none too
        return None if not amount else Money(amount, "USD")


class PipedriveMachine(_NoZeroAmounts):
    harness_class = PipedriveHarness


class PipedriveApiTokenOnSQLiteMachine(_NoZeroAmounts):
    harness_class = _ApiTokenHarness
    use_sqlite = True


TestPipedriveStateful = SETTINGS(PipedriveMachine).TestCase
TestPipedriveApiTokenOnSQLiteStateful = settings(SETTINGS, max_examples=6)(PipedriveApiTokenOnSQLiteMachine).TestCase
