"""CRM sync: the vendor-neutral engine, the adapter contract, and the reference adapter.

- :class:`SyncEngine` pulls CRM changes into a store (cursor per connection and object kind,
  stage history imported as events, bypasses listed) and pushes local changes back from the
  :class:`Outbox` (vendor batches, per-record results), settling conflicts by a
  :class:`ConflictPolicy`.
- :class:`CrmAdapter` is what an adapter implements; the records it exchanges are the
  ``Remote*`` values, :class:`Page`, :class:`PushItem` and :class:`PushResult`.
- :func:`propose` turns CRM pipelines into local processes and a :class:`StageMapping`.
- :class:`InMemoryCrm` and :class:`ReferenceAdapter` are the reference implementation the
  adapter conformance kit (:mod:`salesprocess.testing.adapter_conformance`) runs against.
"""

from __future__ import annotations

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
    RemotePipeline,
    RemoteRecord,
    RemoteStage,
    RemoteStageChange,
    RemoteTransition,
)
from .connections import Connection, load_connections, parse_rate
from .engine import PULL_ONLY_FIELDS, PUSHED_FIELDS, SYNCED_FIELDS, ConflictPolicy, SyncEngine
from .mapping import PipelineMapping, Proposal, StageMapping, propose, slug
from .outbox import Outbox, save_deal
from .reference import FAULTS, CrmFault, InMemoryCrm, ReferenceAdapter
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
from .timing import ManualClock, RateLimiter, RetryPolicy, Secret

__all__ = [
    "FAULTS",
    "OBJECT_KINDS",
    "PULL_ONLY_FIELDS",
    "PUSHED_FIELDS",
    "SYNCED_FIELDS",
    "AdapterCapability",
    "Bypass",
    "Change",
    "Conflict",
    "ConflictPolicy",
    "Connection",
    "CrmAdapter",
    "CrmFault",
    "InMemoryCrm",
    "ManualClock",
    "ObjectKind",
    "Outbox",
    "OutboxEntry",
    "Page",
    "PipelineMapping",
    "Proposal",
    "PullSummary",
    "PushItem",
    "PushResult",
    "PushSummary",
    "RateLimiter",
    "RecordFailure",
    "ReferenceAdapter",
    "RemoteAccount",
    "RemoteActivity",
    "RemoteContact",
    "RemoteDeal",
    "RemotePipeline",
    "RemoteRecord",
    "RemoteStage",
    "RemoteStageChange",
    "RemoteTransition",
    "RetryPolicy",
    "Secret",
    "StageMapping",
    "SyncEngine",
    "SyncStatus",
    "load_connections",
    "parse_rate",
    "propose",
    "save_deal",
    "slug",
]
