"""First-party adapters for salesprocess: stores, import/export, CRM connectors, notifiers.

Each module is a plugin registered by :class:`salesprocess.SalesProcess`; heavy dependencies are
imported inside factories so importing a plugin module stays cheap.
"""

from __future__ import annotations

FIRST_PARTY: tuple[str, ...] = (
    "salesprocess_adapters.memory",
    "salesprocess_adapters.sqlite",
    "salesprocess_adapters.postgres",
    "salesprocess_adapters.hubspot",
    "salesprocess_adapters.salesforce",
    "salesprocess_adapters.zoho",
    "salesprocess_adapters.fxiaoke",
    "salesprocess_adapters.pipedrive",
    "salesprocess_adapters.odoo",
    "salesprocess_adapters.smtp",
    "salesprocess_adapters.webhook",
)
