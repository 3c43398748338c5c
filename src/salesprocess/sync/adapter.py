"""The adapter contract: what a CRM connector gives the sync engine, in vendor-neutral values.

An adapter turns a vendor's API into a handful of calls: :meth:`CrmAdapter.pipelines`,
:meth:`CrmAdapter.pull` (pages of remote records plus the cursor to resume after each page) and
:meth:`CrmAdapter.push` (one batch of deal upserts, a result per record). It never touches the
store: the :class:`~salesprocess.sync.SyncEngine` maps records to the model, persists cursors and
decides conflicts. Adapters raise only :class:`~salesprocess.errors.AdapterError` subclasses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import attrs

from ..model import ActivityKind, ActivityStatus, FrozenMap
from ..periods import require_aware

__all__ = [
    "OBJECT_KINDS",
    "AdapterCapability",
    "CrmAdapter",
    "ObjectKind",
    "Page",
    "PushItem",
    "PushResult",
    "RemoteAccount",
    "RemoteActivity",
    "RemoteContact",
    "RemoteDeal",
    "RemotePipeline",
    "RemoteRecord",
    "RemoteStage",
    "RemoteStageChange",
    "RemoteTransition",
]


class ObjectKind:
    """The object kinds an adapter may pull (the keys of cursors and summaries)."""

    ACCOUNTS = "accounts"
    CONTACTS = "contacts"
    DEALS = "deals"
    ACTIVITIES = "activities"


OBJECT_KINDS: tuple[str, ...] = (
    ObjectKind.ACCOUNTS,
    ObjectKind.CONTACTS,
    ObjectKind.DEALS,
    ObjectKind.ACTIVITIES,
)
"""Every kind, in the order a full pull takes them (accounts first, so deals can refer to them)."""


class AdapterCapability:
    """Capability flags an adapter (or a conformance harness) declares in ``capabilities``."""

    PUSH = "push"
    """Deals can be written back (``push``)."""
    STAGE_HISTORY = "stage_history"
    """Pulled deals carry their stage history."""
    PIPELINES = "pipelines"
    """``pipelines()`` lists the CRM's pipelines and stages."""
    ACCOUNTS = "accounts"
    CONTACTS = "contacts"
    ACTIVITIES = "activities"
    RATE_LIMITS = "rate_limits"
    """The adapter limits its own request rate and retries throttled calls."""
    CREDENTIALS = "credentials"
    """The adapter authenticates with a secret (so secret hygiene is tested)."""
    FAULTS = "faults"
    """(harness) the remote side can inject faults: throttling, 5xx, timeouts, broken bodies."""
    CLOCK = "clock"
    """(harness) the remote clock can be frozen, so several changes share one timestamp."""


def _aware(_i: object, a: attrs.Attribute[Any], v: datetime | None) -> None:
    if v is not None:
        require_aware(v, a.name)


def _tuple(v: Any) -> tuple[Any, ...]:
    return tuple(v) if v is not None else ()


@attrs.frozen
class RemoteStageChange:
    """One entry of a deal's stage history on the CRM side: it entered ``stage`` at ``at``."""

    stage: str
    at: datetime = attrs.field(validator=_aware)


@attrs.frozen
class RemoteStage:
    """A CRM pipeline stage. ``probability`` is in [0, 1] (``None`` when the CRM has none)."""

    id: str
    label: str
    order: int = 0
    probability: Decimal | None = None
    closed: bool = False
    won: bool = False


@attrs.frozen
class RemoteTransition:
    """A move the CRM's own process rules allow (a Zoho Blueprint transition): from stage
    ``source`` to stage ``target`` (CRM stage ids). ``required`` names the deal fields the CRM
    insists on for the move, as local field names (``amount``, ``close_date``, ``custom.NAME``)."""

    source: str
    target: str
    name: str = ""
    id: str | None = None
    required: tuple[str, ...] = attrs.field(default=(), converter=_tuple)


def _opt_tuple(v: Any) -> tuple[Any, ...] | None:
    return None if v is None else tuple(v)


@attrs.frozen
class RemotePipeline:
    """A CRM pipeline. ``transitions`` lists the moves the CRM allows between its stages when it
    enforces a process of its own (``None``: any move is allowed)."""

    id: str
    label: str
    stages: tuple[RemoteStage, ...] = attrs.field(converter=_tuple)
    transitions: tuple[RemoteTransition, ...] | None = attrs.field(default=None, converter=_opt_tuple)


@attrs.frozen
class RemoteDeal:
    """A deal as the CRM has it, in neutral values.

    ``stage`` and ``pipeline`` are the CRM's ids; ``owner``, ``account`` and ``contacts`` the
    CRM's ids of those records. ``local_id`` is our deal id when the CRM stores it (the external-id
    property pushes write). ``history`` is the stage history, oldest first, or ``None`` when the
    adapter did not fetch it.
    """

    id: str
    modified_at: datetime = attrs.field(validator=_aware)
    name: str = ""
    stage: str | None = None
    pipeline: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    close_date: date | None = None
    owner: str | None = None
    account: str | None = None
    contacts: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    created_at: datetime | None = attrs.field(default=None, validator=_aware)
    local_id: str | None = None
    history: tuple[RemoteStageChange, ...] | None = None
    archived: bool = False


@attrs.frozen
class RemoteAccount:
    id: str
    modified_at: datetime = attrs.field(validator=_aware)
    name: str = ""
    industry: str | None = None
    country: str | None = None
    owner: str | None = None
    parent: str | None = None


@attrs.frozen
class RemoteContact:
    id: str
    modified_at: datetime = attrs.field(validator=_aware)
    name: str = ""
    email: str | None = None
    phone: str | None = None
    title: str | None = None
    account: str | None = None


@attrs.frozen
class RemoteActivity:
    """A call, meeting, e-mail, note or task; ``deal``/``account``/``contact`` are CRM ids."""

    id: str
    modified_at: datetime = attrs.field(validator=_aware)
    kind: ActivityKind = attrs.field(converter=ActivityKind)
    at: datetime = attrs.field(validator=_aware)
    subject: str = ""
    status: ActivityStatus = attrs.field(default=ActivityStatus.DONE, converter=ActivityStatus)
    deal: str | None = None
    account: str | None = None
    contact: str | None = None
    owner: str | None = None
    duration_minutes: int | None = None


RemoteRecord = RemoteDeal | RemoteAccount | RemoteContact | RemoteActivity


@attrs.frozen
class Page:
    """One page of a pull: the records (duplicates allowed; the engine keeps the newest of each
    id) and the cursor that resumes the pull right after this page. ``cursor`` is JSON-safe and
    opaque to the engine, which stores it in the same transaction as the page's records."""

    records: tuple[RemoteRecord, ...] = attrs.field(converter=_tuple)
    cursor: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class PushItem:
    """One deal to write: ``remote_id`` when the CRM already has it (update), else ``None``
    (upsert by ``local_id`` through the CRM's external-id property, so a retried create never
    duplicates). ``values`` holds only the fields to write: ``name``, ``stage`` (CRM stage id),
    ``amount`` (Decimal), ``currency``, ``close_date`` (date), ``owner`` (CRM owner id)."""

    local_id: str
    remote_id: str | None
    values: FrozenMap = attrs.field(converter=FrozenMap)
    pipeline: str | None = None


@attrs.frozen
class PushResult:
    """The outcome for one :class:`PushItem`. A failure says whether retrying may help."""

    local_id: str
    ok: bool
    remote_id: str | None = None
    created: bool = False
    code: str | None = None
    message: str = ""
    retriable: bool = False
    fields: tuple[str, ...] = attrs.field(default=(), converter=_tuple)


@runtime_checkable
class CrmAdapter(Protocol):
    """What the sync engine needs from a CRM connector."""

    name: str
    """The adapter's name (``hubspot``, ``salesforce``, ...)."""
    capabilities: frozenset[str]
    """:class:`AdapterCapability` flags."""
    push_batch_size: int
    """The most records :meth:`push` takes in one call (the vendor's batch limit)."""

    def pipelines(self) -> Sequence[RemotePipeline]:
        """The CRM's deal pipelines with their stages, in display order."""
        ...

    def pull(self, kind: str, cursor: Mapping[str, Any] | None) -> Iterator[Page]:
        """Pages of records of ``kind`` (an :data:`OBJECT_KINDS` value) changed since ``cursor``
        (everything when ``None``), oldest change first. Each page's cursor resumes right after
        it; pulling again from the last cursor returns only what changed since (records changed
        at exactly the cursor's instant may come again)."""
        ...

    def push(self, items: Sequence[PushItem]) -> Sequence[PushResult]:
        """Write one batch (at most :attr:`push_batch_size` items); one result per item, in order.
        Raises an :class:`~salesprocess.errors.AdapterError` only when the whole call failed."""
        ...

    def close(self) -> None: ...
