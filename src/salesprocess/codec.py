"""Plain-data encoding of the model (JSON-safe dicts), shared by stores, export and sync.

Decimals and money travel as strings, dates and instants as ISO 8601 (instants normalised to UTC),
enums as their values. ``decode_*(encode_*(x)) == x`` for every value the library makes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from .errors import DomainError
from .model import (
    EVENT_TYPES,
    Account,
    Activity,
    Contact,
    Deal,
    DealEvent,
    DealStatus,
    EventSource,
    ForecastCategory,
    FrozenMap,
    Product,
    Rep,
    Team,
)
from .money import Money, Rate

__all__ = [
    "ENTITY_TYPES",
    "decode_entity",
    "decode_event",
    "dumps",
    "encode_entity",
    "encode_event",
    "encode_value",
    "instant",
    "iso",
    "loads",
]

ENTITY_TYPES: dict[str, type] = {
    "account": Account,
    "contact": Contact,
    "team": Team,
    "rep": Rep,
    "product": Product,
    "activity": Activity,
}
ENTITY_KIND: dict[type, str] = {v: k for k, v in ENTITY_TYPES.items()}

T = TypeVar("T")


def iso(at: datetime) -> str:
    """An aware instant as ISO 8601 in UTC (``2026-03-01T09:30:00+00:00``)."""
    return at.astimezone(UTC).isoformat()


def instant(s: str) -> datetime:
    d = datetime.fromisoformat(s)
    if d.tzinfo is None:
        raise DomainError(f"instant {s!r} has no timezone")
    return d


def encode_value(v: Any) -> Any:
    """A JSON-safe form of a model value (tagged where the type would be lost)."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, Money):
        return {"$money": [str(v.amount), v.currency]}
    if isinstance(v, Rate):
        return {"$rate": str(v.value)}
    if isinstance(v, Decimal):
        return {"$dec": str(v)}
    if isinstance(v, datetime):
        return {"$at": iso(v)}
    if isinstance(v, date):
        return {"$date": v.isoformat()}
    if isinstance(v, FrozenMap):
        return {"$map": {k: encode_value(x) for k, x in v.items()}}
    if isinstance(v, frozenset):
        return {"$set": sorted(encode_value(x) for x in v)}
    if isinstance(v, tuple | list):
        return [encode_value(x) for x in v]
    if hasattr(v, "value") and isinstance(getattr(v, "value", None), str):  # enums
        return v.value
    raise TypeError(f"cannot encode {type(v).__name__}")


def decode_value(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(decode_value(x) for x in v)
    if isinstance(v, dict) and len(v) == 1:
        (tag, x), = v.items()
        if tag == "$money":
            return Money(x[0], x[1])
        if tag == "$rate":
            return Rate(x)
        if tag == "$dec":
            return Decimal(x)
        if tag == "$at":
            return instant(x)
        if tag == "$date":
            return date.fromisoformat(x)
        if tag == "$map":
            return FrozenMap({k: decode_value(y) for k, y in x.items()})
        if tag == "$set":
            return frozenset(decode_value(y) for y in x)
    return v


_EVENT_ENUMS = {
    "status": DealStatus,
    "probability_source": EventSource,
    "forecast_category": ForecastCategory,
    "old": None,
    "new": None,
}


def encode_event(e: DealEvent) -> dict[str, Any]:
    """``{"deal_id", "seq"?, "kind", "at", "actor", "source", "data": {...}}``."""
    return {
        "deal_id": e.deal_id,
        "kind": e.kind,
        "at": iso(e.at),
        "actor": e.actor,
        "source": e.source.value,
        "data": {k: encode_value(v) for k, v in e.payload().items()},
    }


def decode_event(d: Mapping[str, Any]) -> DealEvent:
    cls = EVENT_TYPES.get(d["kind"])
    if cls is None:
        raise DomainError(f"unknown event kind {d['kind']!r}")
    data = d.get("data") or {}
    if isinstance(data, str):
        data = json.loads(data)
    kw: dict[str, Any] = {}
    for k, v in data.items():
        val = decode_value(v)
        if k == "status":
            val = DealStatus(val)
        elif k == "probability_source" and val is not None:
            val = EventSource(val)
        elif (k == "forecast_category" and val is not None) or (k in ("old", "new") and cls.kind == "forecast_category_changed" and val is not None):
            val = ForecastCategory(val)
        elif k in ("details", "changes") and not isinstance(val, FrozenMap):
            val = FrozenMap(val or {})
        kw[k] = val
    at = d["at"] if isinstance(d["at"], datetime) else instant(d["at"])
    ev: DealEvent = cls(deal_id=d["deal_id"], at=at, actor=d["actor"], source=EventSource(d["source"]), **kw)
    return ev


def encode_entity(obj: Any) -> dict[str, Any]:
    """An entity (Account, Contact, Team, Rep, Product, Activity) as a dict; ``entity`` names
    its type (``decode_entity`` reads it back)."""
    kind = ENTITY_KIND.get(type(obj))
    if kind is None:
        raise TypeError(f"not an entity: {type(obj).__name__}")
    # "entity" names the type; "kind" too, except for an Activity, whose own field it is
    out: dict[str, Any] = {"kind": kind, "entity": kind}
    for a in attrs.fields(type(obj)):
        out[a.name] = encode_value(getattr(obj, a.name))
    return out


def decode_entity(d: Mapping[str, Any], cls: type[T] | None = None) -> T:
    typ = cls or ENTITY_TYPES[d.get("entity") or d["kind"]]
    names = {a.name for a in attrs.fields(typ)}
    kw = {k: decode_value(v) for k, v in d.items() if k in names}
    for k in ("external_ids", "custom"):
        if k in kw and not isinstance(kw[k], FrozenMap):
            kw[k] = FrozenMap(kw[k] or {})
    obj: T = typ(**kw)
    return obj


def encode_deal_state(deal: Deal) -> dict[str, Any]:
    """The deal's current state (no events) as plain data, for exports and SQL columns."""
    return {
        "id": deal.id,
        "process": deal.process,
        "process_version": deal.process_version,
        "name": deal.name,
        "stage": deal.stage,
        "status": deal.status.value,
        "amount": None if deal.amount is None else str(deal.amount.amount),
        "currency": None if deal.amount is None else deal.amount.currency,
        "close_date": None if deal.close_date is None else deal.close_date.isoformat(),
        "owner_id": deal.owner_id,
        "account_id": deal.account_id,
        "probability": None if deal.probability is None else str(deal.probability.value),
        "probability_source": None if deal.probability_source is None else deal.probability_source.value,
        "forecast_category": None if deal.forecast_category is None else deal.forecast_category.value,
        "created_at": iso(deal.created_at),
        "stage_entered_at": iso(deal.stage_entered_at),
        "closed_at": None if deal.closed_at is None else iso(deal.closed_at),
        "updated_at": iso(deal.updated_at),
        "version": deal.version,
        "competitors": list(deal.competitors),
        "lost_reason": deal.lost_reason,
        "contact_ids": list(deal.contact_ids),
        "product_ids": list(deal.product_ids),
        "external_ids": deal.external_ids.to_dict(),
        "custom": encode_value(deal.custom) if deal.custom else {},
    }


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def loads(s: str | bytes) -> Any:
    return json.loads(s)


