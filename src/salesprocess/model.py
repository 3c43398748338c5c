"""The domain model: frozen, typed values.

Entities (:class:`Account`, :class:`Contact`, :class:`Rep`, :class:`Team`, :class:`Product`,
:class:`Activity`) and the :class:`Deal` with its append-only event history. Every change to a deal
is an event carrying ``at`` (an aware instant), ``actor`` and ``source``; :func:`replay` rebuilds a
deal from its events, and ``replay(deal.events) == deal`` holds for every deal the library makes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import attrs

from ._record import Record
from .errors import DomainError, ReplayError
from .money import Money, Rate
from .periods import require_aware

__all__ = [
    "Account",
    "Activity",
    "ActivityKind",
    "ActivityStatus",
    "AmountChanged",
    "ChecklistItemChanged",
    "CloseDateChanged",
    "Contact",
    "Deal",
    "DealCreated",
    "DealEvent",
    "DealLost",
    "DealReopened",
    "DealStatus",
    "DealWon",
    "DetailsChanged",
    "EventSource",
    "ForecastCategory",
    "ForecastCategoryChanged",
    "FrozenMap",
    "OwnerChanged",
    "ProbabilityChanged",
    "ProcessMigrated",
    "Product",
    "Rep",
    "StageChanged",
    "Team",
    "replay",
]


class EventSource(enum.StrEnum):
    """Who or what made a change."""

    USER = "user"
    RULE = "rule"
    MODEL = "model"
    STAGE_DEFAULT = "stage_default"
    IMPORT = "import"
    CRM_SYNC = "crm_sync"


class DealStatus(enum.StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class ForecastCategory(enum.StrEnum):
    PIPELINE = "pipeline"
    BEST_CASE = "best_case"
    COMMIT = "commit"
    CLOSED = "closed"
    OMITTED = "omitted"


class ActivityKind(enum.StrEnum):
    CALL = "call"
    EMAIL = "email"
    MEETING = "meeting"
    VISIT = "visit"
    NOTE = "note"
    TASK = "task"


class ActivityStatus(enum.StrEnum):
    PLANNED = "planned"
    DONE = "done"
    CANCELLED = "cancelled"


# ----------------------------------------------------------------------------------------------
# A hashable read-only mapping for custom fields and external ids
# ----------------------------------------------------------------------------------------------

_SCALARS = (str, int, bool, Decimal, date, type(None))


def _freeze_value(v: object, key: str) -> object:
    if isinstance(v, float):
        raise TypeError(f"custom field {key!r}: float is refused; use str or Decimal")
    if isinstance(v, (*_SCALARS, Money, Rate)):
        return v
    if isinstance(v, list | tuple):
        return tuple(_freeze_value(x, key) for x in v)
    if isinstance(v, Mapping):
        return FrozenMap(v)
    raise TypeError(f"custom field {key!r}: unsupported value type {type(v).__name__}")


class FrozenMap(Mapping[str, Any]):
    """An immutable, hashable mapping (str keys; scalar, tuple or nested FrozenMap values)."""

    __slots__ = ("_d", "_h")

    def __init__(self, data: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        items = data.items() if isinstance(data, Mapping) else data
        d: dict[str, Any] = {}
        for k, v in items:
            if not isinstance(k, str):
                raise TypeError(f"keys must be str, got {k!r}")
            d[k] = _freeze_value(v, k)
        self._d = d
        self._h: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        if self._h is None:
            self._h = hash(frozenset(self._d.items()))
        return self._h

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._d == other._d
        if isinstance(other, Mapping):
            return self._d == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"

    def set(self, key: str, value: Any) -> FrozenMap:
        d = dict(self._d)
        d[key] = value
        return FrozenMap(d)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._d)


EMPTY: FrozenMap = FrozenMap()


def _frozenmap(v: Mapping[str, Any] | None) -> FrozenMap:
    if v is None:
        return EMPTY
    if isinstance(v, FrozenMap):
        return v
    return FrozenMap(v) if v else EMPTY


def _aware(_inst: object, a: attrs.Attribute[Any], v: datetime | None) -> None:
    if v is not None:
        require_aware(v, a.name)


def _opt_money(_inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if v is not None and not isinstance(v, Money):
        raise TypeError(f"{a.name}: expected Money or None, got {type(v).__name__}")


def _opt_prob(v: object) -> Rate | None:
    if v is None:
        return None
    r = v if isinstance(v, Rate) else Rate(v)
    if not r.is_probability():
        raise DomainError(f"probability must be within [0, 1], got {r.value}")
    return r


def _event_at(_inst: object, _a: object, v: datetime) -> None:
    # events are built on hot paths: the cheap test first, the full one only when it fails
    if v.__class__ is not datetime or v.tzinfo is None or v.utcoffset() is None:
        require_aware(v, "at")


def _utc(at: datetime) -> datetime:
    """``at`` in UTC: compares real instants even when two values share a zone and one is in a
    DST fold (same-zone comparison in Python ignores ``fold``)."""
    return at.astimezone(UTC)


def _before(a: datetime, b: datetime) -> bool:
    """Whether instant ``a`` is before instant ``b`` (fast when both share a fixed offset)."""
    tz = a.tzinfo
    if tz is b.tzinfo and type(tz) is timezone:
        return a < b
    return a.astimezone(UTC) < b.astimezone(UTC)


def _tuple_str(v: Iterable[str] | None) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    return tuple(v)


# ----------------------------------------------------------------------------------------------
# Entities
# ----------------------------------------------------------------------------------------------


@attrs.frozen
class Account:
    """A customer organisation."""

    id: str
    name: str
    industry: str | None = None
    size_band: str | None = None
    region: str | None = None
    country: str | None = None
    parent_id: str | None = None
    owner_id: str | None = None
    credit_limit: Money | None = attrs.field(default=None, validator=_opt_money)
    created_at: datetime | None = attrs.field(default=None, validator=_aware)
    external_ids: FrozenMap = attrs.field(default=EMPTY, converter=_frozenmap)
    custom: FrozenMap = attrs.field(default=EMPTY, converter=_frozenmap)


@attrs.frozen
class Contact:
    """A person at an account."""

    id: str
    name: str
    account_id: str | None = None
    email: str | None = None
    phone: str | None = None
    title: str | None = None
    role: str | None = None
    language: str | None = None
    external_ids: FrozenMap = attrs.field(default=EMPTY, converter=_frozenmap)
    custom: FrozenMap = attrs.field(default=EMPTY, converter=_frozenmap)


@attrs.frozen
class Team:
    """A sales team; ``parent_id`` builds the hierarchy (region → team → squad)."""

    id: str
    name: str
    manager_id: str | None = None
    parent_id: str | None = None
    region: str | None = None
    external_ids: FrozenMap = attrs.field(default=EMPTY, converter=_frozenmap)


@attrs.frozen
class Rep:
    """A salesperson (or manager). ``capacity`` is a relative weight for quota splits."""

    id: str
    name: str
    email: str | None = None
    team_id: str | None = None
    manager_id: str | None = None
    region: str | None = None
    role: str = "ae"
    hired_on: date | None = None
    capacity: Decimal = attrs.field(default=Decimal(1), converter=Decimal)
    active: bool = True
    language: str | None = None
    external_ids: FrozenMap = attrs.field(default=EMPTY, converter=_frozenmap)


@attrs.frozen
class Product:
    id: str
    name: str
    family: str | None = None
    list_price: Money | None = attrs.field(default=None, validator=_opt_money)
    external_ids: FrozenMap = attrs.field(default=EMPTY, converter=_frozenmap)


@attrs.frozen
class Activity:
    """A call, e-mail, meeting, visit, note or task, linked to a deal, account and/or contact."""

    id: str
    kind: ActivityKind = attrs.field(converter=ActivityKind)
    at: datetime = attrs.field(validator=_aware)
    """When it happened (done) or is due (planned)."""
    subject: str = ""
    status: ActivityStatus = attrs.field(default=ActivityStatus.DONE, converter=ActivityStatus)
    deal_id: str | None = None
    account_id: str | None = None
    contact_id: str | None = None
    owner_id: str | None = None
    outcome: str | None = None
    duration_minutes: int | None = None
    external_ids: FrozenMap = attrs.field(default=EMPTY, converter=_frozenmap)

    @property
    def done(self) -> bool:
        return self.status is ActivityStatus.DONE


# ----------------------------------------------------------------------------------------------
# Events
# ----------------------------------------------------------------------------------------------

_E = TypeVar("_E", bound="DealEvent")


class DealEvent(Record):
    """Base of every deal event: ``deal_id``, ``at`` (aware), ``actor`` and ``source``.

    Events are immutable typed records (see :mod:`salesprocess._record`): they are the most
    numerous objects the library holds and are built on the stage machine's hot path. Fields are
    declared with annotations; build events positionally or by keyword; equality takes the event
    type into account. ``kind`` is a stable string used in storage and export. Subclasses apply
    themselves to the replay state through :meth:`apply`.
    """

    __slots__ = ()
    kind: ClassVar[str] = "event"

    deal_id: str
    at: datetime
    actor: str
    source: EventSource

    @classmethod
    def _check(cls, values: list[Any]) -> None:
        if not isinstance(values[0], str):
            raise TypeError(f"{cls.__name__}.deal_id must be a str")
        _event_at(None, None, values[1])
        values[3] = EventSource(values[3])

    def apply(self, s: dict[str, Any]) -> None:
        raise NotImplementedError

    def payload(self) -> dict[str, Any]:
        """Event-specific fields (everything but deal_id, at, actor, source)."""
        return dict(zip(self._fields[4:], self[4:], strict=True))


class DealCreated(DealEvent):
    """The first event of every deal: a full snapshot of the fields that later events change."""

    kind: ClassVar[str] = "created"
    __slots__ = ()
    process: str
    process_version: int
    stage: str
    status: DealStatus
    name: str
    amount: Money | None = None
    close_date: date | None = None
    owner_id: str | None = None
    account_id: str | None = None
    probability: Rate | None = None
    probability_source: EventSource | None = None
    forecast_category: ForecastCategory | None = None
    details: FrozenMap = EMPTY
    """Other fields at creation: competitors, lost_reason, contact_ids, product_ids, custom,
    external_ids, checklist."""

    def apply(self, s: dict[str, Any]) -> None:
        s.update(
            id=self.deal_id,
            process=self.process,
            process_version=self.process_version,
            name=self.name,
            stage=self.stage,
            status=self.status,
            amount=self.amount,
            close_date=self.close_date,
            owner_id=self.owner_id,
            account_id=self.account_id,
            probability=self.probability,
            probability_source=self.probability_source,
            forecast_category=self.forecast_category,
            created_at=self.at,
            stage_entered_at=self.at,
            closed_at=self.at if self.status is not DealStatus.OPEN else None,
        )
        for k, v in self.details.items():
            s[k] = frozenset(v) if k == "checklist" else v


class StageChanged(DealEvent):
    """The deal moved between stages; ``probability``/``probability_source`` and
    ``forecast_category`` are the deal's values after the move (which source won is recorded)."""

    kind: ClassVar[str] = "stage_changed"
    __slots__ = ()
    from_stage: str
    to_stage: str
    probability: Rate | None = None
    probability_source: EventSource | None = None
    forecast_category: ForecastCategory | None = None
    reason: str | None = None

    status: ClassVar[DealStatus] = DealStatus.OPEN

    def apply(self, s: dict[str, Any]) -> None:
        s["stage"] = self.to_stage
        s["probability"] = self.probability
        s["probability_source"] = self.probability_source
        s["forecast_category"] = self.forecast_category
        s["stage_entered_at"] = self.at
        s["status"] = self.status
        if self.status is DealStatus.OPEN:
            s["closed_at"] = None
        else:
            s["closed_at"] = self.at


class DealWon(StageChanged):
    kind: ClassVar[str] = "won"
    __slots__ = ()
    status: ClassVar[DealStatus] = DealStatus.WON


class DealLost(StageChanged):
    kind: ClassVar[str] = "lost"
    __slots__ = ()
    status: ClassVar[DealStatus] = DealStatus.LOST

    def apply(self, s: dict[str, Any]) -> None:
        super().apply(s)
        if self.reason is not None:
            s["lost_reason"] = self.reason


class DealReopened(StageChanged):
    kind: ClassVar[str] = "reopened"
    __slots__ = ()
    status: ClassVar[DealStatus] = DealStatus.OPEN

    def apply(self, s: dict[str, Any]) -> None:
        super().apply(s)
        s["lost_reason"] = None


class AmountChanged(DealEvent):
    kind: ClassVar[str] = "amount_changed"
    __slots__ = ()
    old: Money | None
    new: Money | None

    def apply(self, s: dict[str, Any]) -> None:
        s["amount"] = self.new


class CloseDateChanged(DealEvent):
    kind: ClassVar[str] = "close_date_changed"
    __slots__ = ()
    old: date | None
    new: date | None

    def apply(self, s: dict[str, Any]) -> None:
        s["close_date"] = self.new


class OwnerChanged(DealEvent):
    kind: ClassVar[str] = "owner_changed"
    __slots__ = ()
    old: str | None
    new: str | None

    def apply(self, s: dict[str, Any]) -> None:
        s["owner_id"] = self.new


class ProbabilityChanged(DealEvent):
    """A probability set directly; the event's ``source`` becomes the deal's probability source."""

    kind: ClassVar[str] = "probability_changed"
    __slots__ = ()
    old: Rate | None
    new: Rate | None

    def apply(self, s: dict[str, Any]) -> None:
        s["probability"] = self.new
        s["probability_source"] = self.source if self.new is not None else None


class ForecastCategoryChanged(DealEvent):
    kind: ClassVar[str] = "forecast_category_changed"
    __slots__ = ()
    old: ForecastCategory | None
    new: ForecastCategory | None

    def apply(self, s: dict[str, Any]) -> None:
        s["forecast_category"] = self.new


class ChecklistItemChanged(DealEvent):
    """A playbook checklist item was ticked (``done=True``) or unticked."""

    kind: ClassVar[str] = "checklist_changed"
    __slots__ = ()
    item: str
    done: bool = True

    def apply(self, s: dict[str, Any]) -> None:
        cl: frozenset[str] = s.get("checklist", frozenset())
        s["checklist"] = cl | {self.item} if self.done else cl - {self.item}


class DetailsChanged(DealEvent):
    """Other fields changed: ``changes`` maps each field name to its new value.

    Fields: name, account_id, competitors, lost_reason, contact_ids, product_ids, custom,
    external_ids.
    """

    kind: ClassVar[str] = "details_changed"
    __slots__ = ()
    changes: FrozenMap

    def apply(self, s: dict[str, Any]) -> None:
        for k, v in self.changes.items():
            s[k] = v


class ProcessMigrated(DealEvent):
    """The deal was moved to another version of its process (stage mapped ``from_stage`` → ``to_stage``)."""

    kind: ClassVar[str] = "process_migrated"
    __slots__ = ()
    process: str
    from_version: int
    to_version: int
    from_stage: str
    to_stage: str

    def apply(self, s: dict[str, Any]) -> None:
        s["process"] = self.process
        s["process_version"] = self.to_version
        if self.to_stage != s["stage"]:
            s["stage"] = self.to_stage
            s["stage_entered_at"] = self.at


EVENT_TYPES: dict[str, type[DealEvent]] = {
    cls.kind: cls
    for cls in (
        DealCreated,
        StageChanged,
        DealWon,
        DealLost,
        DealReopened,
        AmountChanged,
        CloseDateChanged,
        OwnerChanged,
        ProbabilityChanged,
        ForecastCategoryChanged,
        ChecklistItemChanged,
        DetailsChanged,
        ProcessMigrated,
    )
}

DETAIL_FIELDS: frozenset[str] = frozenset(
    {
        "name",
        "account_id",
        "competitors",
        "lost_reason",
        "contact_ids",
        "product_ids",
        "custom",
        "external_ids",
    }
)


# ----------------------------------------------------------------------------------------------
# Deal
# ----------------------------------------------------------------------------------------------


class Deal(Record):
    """A sales opportunity: its current state and the events that produced it.

    Build deals with :meth:`Deal.create` (or ``Process.open_deal``); change them through the stage
    machine and the ``with_*`` methods, each of which appends an event. ``version`` is the number
    of events and is what stores use for optimistic concurrency.

    A deal is an immutable typed record (see :mod:`salesprocess._record`): copying one on every
    stage move must be cheap, and a large pipeline holds many of them.
    """

    __slots__ = ()

    id: str
    process: str
    process_version: int
    name: str
    stage: str
    status: DealStatus
    amount: Money | None
    close_date: date | None
    owner_id: str | None
    account_id: str | None
    probability: Rate | None
    probability_source: EventSource | None
    forecast_category: ForecastCategory | None
    created_at: datetime
    stage_entered_at: datetime
    closed_at: datetime | None
    competitors: tuple[str, ...]
    lost_reason: str | None
    contact_ids: tuple[str, ...]
    product_ids: tuple[str, ...]
    checklist: frozenset[str]
    custom: FrozenMap
    external_ids: FrozenMap
    events: tuple[DealEvent, ...]

    @property
    def version(self) -> int:
        return len(self.events)

    @property
    def updated_at(self) -> datetime:
        return self.events[-1].at

    @property
    def is_open(self) -> bool:
        return self.status is DealStatus.OPEN

    @property
    def is_closed(self) -> bool:
        return self.status is not DealStatus.OPEN

    @property
    def weighted_amount(self) -> Money | None:
        if self.amount is None:
            return None
        if self.probability is None:
            return Money.zero(self.amount.currency)
        return self.amount * self.probability

    def __repr__(self) -> str:
        return (
            f"Deal(id={self.id!r}, stage={self.stage!r}, status={self.status.value!r}, "
            f"amount={self.amount!r}, owner_id={self.owner_id!r}, version={self.version})"
        )

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        id: str,
        *,
        process: str,
        stage: str,
        at: datetime,
        actor: str,
        source: EventSource = EventSource.USER,
        name: str = "",
        process_version: int = 1,
        status: DealStatus = DealStatus.OPEN,
        amount: Money | None = None,
        close_date: date | None = None,
        owner_id: str | None = None,
        account_id: str | None = None,
        probability: Rate | str | Decimal | None = None,
        probability_source: EventSource | None = None,
        forecast_category: ForecastCategory | None = None,
        competitors: Iterable[str] = (),
        lost_reason: str | None = None,
        contact_ids: Iterable[str] = (),
        product_ids: Iterable[str] = (),
        checklist: Iterable[str] = (),
        custom: Mapping[str, Any] | None = None,
        external_ids: Mapping[str, str] | None = None,
    ) -> Deal:
        """A new deal with its :class:`DealCreated` event."""
        _check_new(id, at, amount, close_date)
        prob = _opt_prob(probability)
        if prob is not None and probability_source is None:
            probability_source = source
        details: dict[str, Any] = {}
        if competitors:
            details["competitors"] = _tuple_str(competitors)
        if lost_reason is not None:
            details["lost_reason"] = lost_reason
        if contact_ids:
            details["contact_ids"] = _tuple_str(contact_ids)
        if product_ids:
            details["product_ids"] = _tuple_str(product_ids)
        if checklist:
            details["checklist"] = tuple(sorted(set(checklist)))
        if custom:
            details["custom"] = _frozenmap(custom)
        if external_ids:
            details["external_ids"] = _frozenmap(external_ids)
        if status.__class__ is not DealStatus:
            status = DealStatus(status)
        if forecast_category is not None and forecast_category.__class__ is not ForecastCategory:
            forecast_category = ForecastCategory(forecast_category)
        if probability_source is not None and probability_source.__class__ is not EventSource:
            probability_source = EventSource(probability_source)
        ev = DealCreated._make((
            id,
            at,
            actor,
            source if source.__class__ is EventSource else EventSource(source),
            process,
            process_version,
            stage,
            status,
            name,
            amount,
            close_date,
            owner_id,
            account_id,
            prob,
            probability_source,
            forecast_category,
            FrozenMap(details) if details else EMPTY,
        ))
        if details:
            return replay((ev,))
        # the common case, built directly (same result as replay)
        return _tnew(Deal, (
            id, process, process_version, name, stage, status, amount, close_date, owner_id,
            account_id, prob, probability_source, forecast_category, at, at,
            None if status is DealStatus.OPEN else at,
            (), None, (), (), _EMPTY_SET, EMPTY, EMPTY, (ev,),
        ))

    # --- fast internal copy ---------------------------------------------------------------------
    def _with(self, events: tuple[DealEvent, ...], **changes: Any) -> Deal:
        """Copy with ``changes`` and ``events`` without re-running validation (internal)."""
        v = list(self)
        for k, val in changes.items():
            v[_INDEX[k]] = val
        v[_EVENTS] = events
        return _tnew(Deal, v)

    def append(self, event: DealEvent) -> Deal:
        """The deal with ``event`` applied and appended (checks ``deal_id`` and time order)."""
        if event.deal_id != self.id:
            raise DomainError(f"event for deal {event.deal_id!r} appended to deal {self.id!r}")
        require_aware(event.at, "at")
        if isinstance(event, DealCreated):
            raise DomainError(f"deal {self.id}: a deal is created only once")
        if _utc(event.at) < _utc(self.events[-1].at):
            raise DomainError(
                f"deal {self.id}: event at {event.at.isoformat()} is earlier than the last change "
                f"at {self.events[-1].at.isoformat()}"
            )
        s = dict(zip(_FIELD_ORDER, self, strict=True))
        event.apply(s)
        s["events"] = self.events + (event,)
        return _tnew(Deal, [s[k] for k in _FIELD_ORDER])

    def extend(self, events: Iterable[DealEvent]) -> Deal:
        d = self
        for e in events:
            d = d.append(e)
        return d

    def events_since(self, earlier: Deal) -> tuple[DealEvent, ...]:
        """Events appended after ``earlier`` (a previous version of this deal)."""
        return self.events[earlier.version :]

    # --- simple field changes (each appends one event) --------------------------------------------
    def with_amount(
        self, amount: Money | None, *, at: datetime, actor: str, source: EventSource = EventSource.USER
    ) -> Deal:
        if amount is not None:
            if not isinstance(amount, Money):
                raise TypeError(f"amount: expected Money, got {type(amount).__name__}")
            if amount.amount < 0:
                raise DomainError(f"deal {self.id}: amount must not be negative, got {amount}")
        if amount == self.amount:
            return self
        return self.append(AmountChanged(self.id, at, actor, source, self.amount, amount))

    def with_close_date(
        self, close_date: date | None, *, at: datetime, actor: str, source: EventSource = EventSource.USER
    ) -> Deal:
        if close_date == self.close_date:
            return self
        return self.append(CloseDateChanged(self.id, at, actor, source, self.close_date, close_date))

    def with_owner(
        self, owner_id: str | None, *, at: datetime, actor: str, source: EventSource = EventSource.USER
    ) -> Deal:
        if owner_id == self.owner_id:
            return self
        return self.append(OwnerChanged(self.id, at, actor, source, self.owner_id, owner_id))

    def with_probability(
        self,
        probability: Rate | str | Decimal | None,
        *,
        at: datetime,
        actor: str,
        source: EventSource = EventSource.USER,
    ) -> Deal:
        p = _opt_prob(probability)
        if p == self.probability and (p is None or source == self.probability_source):
            return self
        return self.append(ProbabilityChanged(self.id, at, actor, source, self.probability, p))

    def with_forecast_category(
        self,
        category: ForecastCategory | str | None,
        *,
        at: datetime,
        actor: str,
        source: EventSource = EventSource.USER,
    ) -> Deal:
        c = None if category is None else ForecastCategory(category)
        if c == self.forecast_category:
            return self
        return self.append(
            ForecastCategoryChanged(self.id, at, actor, source, self.forecast_category, c)
        )

    def with_checklist_item(
        self, item: str, done: bool = True, *, at: datetime, actor: str,
        source: EventSource = EventSource.USER,
    ) -> Deal:
        if (item in self.checklist) == done:
            return self
        return self.append(ChecklistItemChanged(self.id, at, actor, source, item, done))

    def with_details(
        self, *, at: datetime, actor: str, source: EventSource = EventSource.USER, **changes: Any
    ) -> Deal:
        """Change name, account_id, competitors, lost_reason, contact_ids, product_ids, custom or
        external_ids in one :class:`DetailsChanged` event."""
        unknown = set(changes) - DETAIL_FIELDS
        if unknown:
            raise DomainError(f"not a detail field: {', '.join(sorted(unknown))}")
        norm: dict[str, Any] = {}
        for k, v in changes.items():
            if k in ("competitors", "contact_ids", "product_ids"):
                v = _tuple_str(v)
            elif k in ("custom", "external_ids"):
                v = _frozenmap(v)
            if getattr(self, k) != v:
                norm[k] = v
        if not norm:
            return self
        return self.append(DetailsChanged(self.id, at, actor, source, FrozenMap(norm)))


def _check_new(id: str, at: datetime, amount: Money | None, close_date: date | None) -> None:
    """The checks of a new deal's own values (shared by :meth:`Deal.create` and its fast path)."""
    if not isinstance(id, str) or not id:
        raise DomainError("deal id must be a non-empty string")
    tz = at.tzinfo if at.__class__ is datetime else None
    if tz is None or (tz.__class__ is not timezone and at.utcoffset() is None):
        require_aware(at, "at")
    if amount is not None:
        if not isinstance(amount, Money):
            raise TypeError(f"amount: expected Money, got {type(amount).__name__}")
        if amount.amount < _DZERO:
            raise DomainError(f"deal {id}: amount must not be negative, got {amount}")
    if close_date is not None and (
        not isinstance(close_date, date) or isinstance(close_date, datetime)
    ):
        raise TypeError("close_date must be a date")


def _open_deal(
    id: str,
    process: str,
    process_version: int,
    stage: str,
    status: DealStatus,
    at: datetime,
    actor: str,
    source: EventSource,
    name: str,
    amount: Money | None,
    close_date: date | None,
    owner_id: str | None,
    account_id: str | None,
    probability: Rate,
    forecast_category: ForecastCategory,
) -> Deal:
    """:meth:`Deal.create` for a deal in a stage of a validated process (``Process.open_deal``):
    ``status``, ``forecast_category`` and the stage's ``probability`` come from the process and
    are already valid; the probability's source is the stage default and there are no detail
    fields. Checks the caller's values exactly as :meth:`Deal.create` does."""
    # the values of almost every call pass this cheap test; the full checks run when it fails
    if not (
        id.__class__ is str and id and at.__class__ is datetime and at.tzinfo.__class__ is timezone
        and (amount is None or (amount.__class__ is Money and amount.amount >= _DZERO))
        and close_date is None
    ):
        _check_new(id, at, amount, close_date)
    if source.__class__ is not EventSource:
        source = EventSource(source)
    ev = _tnew(DealCreated, (
        id, at, actor, source, process, process_version, stage, status, name, amount,
        close_date, owner_id, account_id, probability, _STAGE_DEFAULT, forecast_category, EMPTY,
    ))
    return _tnew(Deal, (
        id, process, process_version, name, stage, status, amount, close_date, owner_id,
        account_id, probability, _STAGE_DEFAULT, forecast_category, at, at,
        None if status is _OPEN else at,
        (), None, (), (), _EMPTY_SET, EMPTY, EMPTY, (ev,),
    ))


_DZERO = Decimal(0)
_OPEN = DealStatus.OPEN
_STAGE_DEFAULT = EventSource.STAGE_DEFAULT
_FIELD_ORDER: tuple[str, ...] = Deal._fields
_INDEX: dict[str, int] = {k: i for i, k in enumerate(_FIELD_ORDER)}
_EVENTS = _INDEX["events"]
_tnew = tuple.__new__
_EMPTY_SET: frozenset[str] = frozenset()

_STATE_DEFAULTS: dict[str, Any] = {
    "competitors": (),
    "lost_reason": None,
    "contact_ids": (),
    "product_ids": (),
    "checklist": _EMPTY_SET,
    "custom": EMPTY,
    "external_ids": EMPTY,
}


def replay(events: Iterable[DealEvent]) -> Deal:
    """Rebuild a deal from its events; the first must be :class:`DealCreated`.

    Raises :class:`ReplayError` when the history is empty, does not start with creation, mixes
    deals, creates twice or goes back in time.
    """
    evs = tuple(events)
    if not evs:
        raise ReplayError("?", 0, "empty history")
    first = evs[0]
    if not isinstance(first, DealCreated):
        raise ReplayError(first.deal_id, 0, f"history must start with 'created', not {first.kind!r}")
    s: dict[str, Any] = dict.fromkeys(_FIELD_ORDER)
    s.update(_STATE_DEFAULTS)
    last = first.at
    deal_id = first.deal_id
    for i, e in enumerate(evs):
        if e.deal_id != deal_id:
            raise ReplayError(deal_id, i, f"event belongs to deal {e.deal_id!r}")
        if i and isinstance(e, DealCreated):
            raise ReplayError(deal_id, i, "a second 'created' event")
        if _before(e.at, last):
            raise ReplayError(deal_id, i, f"{e.at.isoformat()} is before {last.isoformat()}")
        last = e.at
        e.apply(s)
    s["events"] = evs
    return _tnew(Deal, [s[k] for k in _FIELD_ORDER])


def replay_until(events: Iterable[DealEvent], asof: datetime) -> Deal | None:
    """The deal as it was known at ``asof`` (events with ``at <= asof``), or None if not yet created."""
    limit = _utc(require_aware(asof, "asof"))
    kept = []
    for e in events:
        if _utc(e.at) > limit:
            break
        kept.append(e)
    return replay(kept) if kept else None
