"""Local fakes of the CRM vendors' APIs, for tests and demos (no network, no account).

Each fake is a :class:`FakeApp`: use it in-process with ``fake.transport()`` (an
``httpx.MockTransport`` to hand to an adapter) or over real HTTP with ``fake.serve()`` (a
loopback server in a thread; ``salesprocess fake hubspot --port N`` does the same from the shell).
Fakes keep a deterministic record clock, enforce the vendor's batch limits and paging shapes, and
have fault knobs (``fail_next("429" | "5xx" | "timeout" | "truncated" | "expired_token" |
"duplicate_page", n)``). The harnesses wire a fake to adapters for the adapter conformance kit.
"""

from __future__ import annotations

from ._server import FakeApp, FakeClock, FakeRequest, FakeResponse, FakeServer, RateWindow
from .fxiaoke import FxiaokeFake, FxiaokeHarness
from .hubspot import HubSpotFake, HubSpotHarness
from .odoo import OdooFake, OdooHarness
from .pipedrive import PipedriveFake, PipedriveHarness
from .salesforce import SalesforceFake, SalesforceHarness
from .zoho import ZohoFake, ZohoHarness

__all__ = [
    "FakeApp",
    "FakeClock",
    "FakeRequest",
    "FakeResponse",
    "FakeServer",
    "FxiaokeFake",
    "FxiaokeHarness",
    "HubSpotFake",
    "HubSpotHarness",
    "OdooFake",
    "OdooHarness",
    "PipedriveFake",
    "PipedriveHarness",
    "RateWindow",
    "SalesforceFake",
    "SalesforceHarness",
    "ZohoFake",
    "ZohoHarness",
]
