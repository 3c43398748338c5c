"""The fault-injection stateful sync test (the machine of ``test_sync_stateful``) against the Odoo
fake, over JSON-2 and over JSON-RPC: random CRM-side edits (won stages, lost as archived with a
reason, reopened), local edits, syncs and injected faults; after every completed sync both sides
agree record by record and nothing is lost or duplicated — creates whose answers were lost included.

Odoo keeps no empty amount (``expected_revenue`` is 0.0 when unset), so the local side never holds
a zero amount here: the adapter reads 0 as no amount."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import settings

from salesprocess import Money
from salesprocess_adapters.fakes.odoo import OdooHarness
from test_sync_stateful import SETTINGS, SyncMachine


class _JsonRpcHarness(OdooHarness):
    def __init__(self, mode: str = "transport", **options: Any) -> None:
        super().__init__(mode, protocol="jsonrpc", version=17, **options)


class _NoZeroAmounts(SyncMachine):
    def _money(self, amount: Decimal | None) -> Money | None:
        return None if not amount else Money(amount, "USD")


class OdooMachine(_NoZeroAmounts):
    harness_class = OdooHarness


class OdooJsonRpcOnSQLiteMachine(_NoZeroAmounts):
    harness_class = _JsonRpcHarness
    use_sqlite = True


TestOdooStateful = SETTINGS(OdooMachine).TestCase
TestOdooJsonRpcOnSQLiteStateful = settings(SETTINGS, max_examples=6)(OdooJsonRpcOnSQLiteMachine).TestCase
