"""The fault-injection stateful sync test (the machine of ``test_sync_stateful``) against the Zoho
fake: random CRM-side edits, local edits, syncs and injected faults; after every completed sync
both sides agree record by record and nothing is lost or duplicated.

Local stage moves reach Zoho through Blueprint transitions (chains of them when the engine
settles a conflict with a jump). The Blueprint is the fake's default one without mandatory fields:
with them Zoho would rightly refuse some moves, which the adapter tests cover.
"""

from __future__ import annotations

from typing import Any

from salesprocess_adapters.fakes import ZohoHarness
from salesprocess_adapters.fakes.zoho import DEFAULT_BLUEPRINT
from test_sync_stateful import SETTINGS, SyncMachine

NO_MANDATORY = tuple((name, src, dst, ()) for name, src, dst, _ in DEFAULT_BLUEPRINT)


class _BlueprintHarness(ZohoHarness):
    def __init__(self, mode: str = "transport", **options: Any) -> None:
        super().__init__(mode, blueprint=NO_MANDATORY, **options)


class ZohoMachine(SyncMachine):
    harness_class = _BlueprintHarness


TestZohoStateful = SETTINGS(ZohoMachine).TestCase
