"""Export of a store's records as CSV or JSON Lines, in the layout the importer reads back.

Every kind is written in a stable order (by id; events by deal, then sequence), so two exports of
the same data are identical byte for byte. Decimals travel as strings, instants as ISO 8601 in
UTC, lists and maps as JSON (inside a CSV cell, as JSON text).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import IO, Any

import attrs

from salesprocess.codec import encode_deal_state, encode_event, encode_value, iso
from salesprocess.model import Account, Activity, Contact, FrozenMap, Product, Rep, Team
from salesprocess.money import Money

__all__ = ["EXPORT_KINDS", "columns_for", "export", "export_rows"]

EXPORT_KINDS = ("deals", "events", "accounts", "contacts", "teams", "reps", "products", "activities", "processes")

_ENTITY: dict[str, type] = {
    "accounts": Account,
    "contacts": Contact,
    "teams": Team,
    "reps": Rep,
    "products": Product,
    "activities": Activity,
}
_MONEY = {"credit_limit", "list_price"}
_DEAL_COLUMNS = (
    "id", "process", "process_version", "name", "stage", "status", "amount", "currency", "close_date",
    "owner_id", "account_id", "probability", "probability_source", "forecast_category", "created_at",
    "stage_entered_at", "closed_at", "updated_at", "version", "competitors", "lost_reason",
    "contact_ids", "product_ids", "external_ids", "custom",
)
_EVENT_COLUMNS = ("deal_id", "seq", "kind", "at", "actor", "source", "data")
_PROCESS_COLUMNS = ("key", "version", "definition")


def columns_for(kind: str) -> list[str]:
    """The columns (CSV header, JSON keys) of an export of ``kind``."""
    if kind == "deals":
        return list(_DEAL_COLUMNS)
    if kind == "events":
        return list(_EVENT_COLUMNS)
    if kind == "processes":
        return list(_PROCESS_COLUMNS)
    cls = _ENTITY.get(kind)
    if cls is None:
        raise ValueError(f"unknown export kind {kind!r}; choose one of {', '.join(EXPORT_KINDS)}")
    out: list[str] = []
    for a in attrs.fields(cls):
        out.append(a.name)
        if a.name in _MONEY:
            out.append(f"{a.name}_currency")
    return out


def _plain(v: Any, name: str) -> Any:
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, FrozenMap):
        return {k: encode_value(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [encode_value(x) for x in v]
    return encode_value(v)


def _entity_row(obj: Any) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for a in attrs.fields(type(obj)):
        v = getattr(obj, a.name)
        if a.name in _MONEY:
            row[a.name] = None if v is None else str(v.amount)
            row[f"{a.name}_currency"] = None if v is None else v.currency
        elif isinstance(v, Money):  # pragma: no cover - no other money fields today
            row[a.name] = str(v.amount)
        else:
            row[a.name] = _plain(v, a.name)
    return row


def export_rows(store: Any, kind: str) -> Iterator[dict[str, Any]]:
    """The rows of an export as JSON-ready dicts, streamed in a stable order."""
    if kind == "deals":
        for d in store.deals():
            yield encode_deal_state(d)
    elif kind == "events":
        for d in store.deals():
            for i, e in enumerate(d.events):
                ev = encode_event(e)
                yield {"deal_id": ev["deal_id"], "seq": i, "kind": ev["kind"], "at": ev["at"],
                       "actor": ev["actor"], "source": ev["source"], "data": ev["data"]}
    elif kind == "processes":
        for key in store.process_keys():
            for v in store.process_versions(key):
                p = store.get_process(key, v)
                yield {"key": p.key, "version": p.version, "definition": p.to_dict()}
    else:
        cls = _ENTITY.get(kind)
        if cls is None:
            raise ValueError(f"unknown export kind {kind!r}; choose one of {', '.join(EXPORT_KINDS)}")
        for obj in store.all(cls):
            yield _entity_row(obj)


def _json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=str)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    return _json(v)


def export(store: Any, kind: str, out: IO[str], *, format: str = "csv") -> int:
    """Write every record of ``kind`` to ``out`` as ``csv`` (with a header) or ``jsonl``;
    returns the number of records written."""
    if format not in ("csv", "jsonl"):
        raise ValueError(f"format must be csv or jsonl, got {format!r}")
    cols = columns_for(kind)
    n = 0
    if format == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(cols)
        for row in export_rows(store, kind):
            w.writerow([_cell(row.get(c)) for c in cols])
            n += 1
    else:
        for row in export_rows(store, kind):
            out.write(_json({c: row.get(c) for c in cols}))
            out.write("\n")
            n += 1
    return n
