"""What a sync reports: summaries, conflicts, bypasses, record failures and status.

Conflicts, bypasses and failures are kept in the store as documents (kinds ``sync.conflict``,
``sync.bypass``, ``sync.failure``), written in the same transaction as the change they describe,
so a report is never lost and never doubled by a retried sync.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from ..codec import decode_value, encode_value, instant, iso

__all__ = [
    "Bypass",
    "Change",
    "Conflict",
    "OutboxEntry",
    "PullSummary",
    "PushSummary",
    "RecordFailure",
    "SyncStatus",
]


def _opt_at(v: str | None) -> datetime | None:
    return None if v is None else instant(v)


def _opt_iso(v: datetime | None) -> str | None:
    return None if v is None else iso(v)


@attrs.frozen
class Conflict:
    """One field changed on both sides since the last sync, to different values.

    ``local`` and ``remote`` are the two values (model values: ``Money``, ``date``, ``str``...),
    ``base`` the value both sides last agreed on, ``winner`` ``"crm"`` or ``"local"`` as the
    policy decided, ``local_at``/``remote_at`` when each side last changed.
    """

    seq: int
    connection: str
    deal_id: str
    remote_id: str
    field: str
    local: Any
    remote: Any
    base: Any
    winner: str
    policy: str
    local_at: datetime | None = None
    remote_at: datetime | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "connection": self.connection, "deal_id": self.deal_id,
            "remote_id": self.remote_id, "field": self.field, "local": encode_value(self.local),
            "remote": encode_value(self.remote), "base": encode_value(self.base),
            "winner": self.winner, "policy": self.policy, "local_at": _opt_iso(self.local_at),
            "remote_at": _opt_iso(self.remote_at),
        }

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> Conflict:
        return cls(
            d["seq"], d["connection"], d["deal_id"], d["remote_id"], d["field"],
            decode_value(d["local"]), decode_value(d["remote"]), decode_value(d["base"]),
            d["winner"], d["policy"], _opt_at(d.get("local_at")), _opt_at(d.get("remote_at")),
        )


@attrs.frozen
class Bypass:
    """A change the CRM made that the local process would not have allowed; accepted as a fact.

    ``kind`` is ``skipped_stage``, ``moved_backwards``, ``missing_criteria``, ``not_allowed``,
    ``reopened``, ``created_late`` (created past the initial stage) or ``pipeline_changed``;
    ``problems`` are the unmet criteria as ``{"path", "code", "message"}`` dicts.
    """

    seq: int
    connection: str
    deal_id: str
    remote_id: str
    kind: str
    from_stage: str | None
    to_stage: str
    at: datetime
    problems: tuple[Mapping[str, str], ...] = ()

    def to_doc(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "connection": self.connection, "deal_id": self.deal_id,
            "remote_id": self.remote_id, "kind": self.kind, "from_stage": self.from_stage,
            "to_stage": self.to_stage, "at": iso(self.at), "problems": [dict(p) for p in self.problems],
        }

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> Bypass:
        return cls(
            d["seq"], d["connection"], d["deal_id"], d["remote_id"], d["kind"], d.get("from_stage"),
            d["to_stage"], instant(d["at"]), tuple(d.get("problems", ())),
        )

    @property
    def message(self) -> str:
        why = "; ".join(p.get("message", "") for p in self.problems) or self.kind.replace("_", " ")
        return f"deal {self.deal_id}: {self.from_stage or '(new)'} → {self.to_stage}: {why}"


@attrs.frozen
class RecordFailure:
    """A record that could not be applied (pull) or written (push). Pull failures keep the
    record and are retried at the end of every pull until they apply."""

    connection: str
    kind: str
    direction: str
    """``pull`` or ``push``."""
    record_id: str
    code: str
    message: str
    attempts: int = 1
    parked: bool = False


@attrs.frozen
class OutboxEntry:
    """A local change waiting to be pushed: deal ``deal_id`` at ``version``, queued as ``seq``.
    ``status`` is ``pending`` or ``parked`` (failed ``attempts`` times or refused for good)."""

    connection: str
    deal_id: str
    version: int
    seq: int
    status: str = "pending"
    attempts: int = 0
    error: Mapping[str, Any] | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "connection": self.connection, "deal_id": self.deal_id, "version": self.version,
            "seq": self.seq, "status": self.status, "attempts": self.attempts,
            "error": None if self.error is None else dict(self.error),
        }

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> OutboxEntry:
        return cls(
            d["connection"], d["deal_id"], d["version"], d["seq"], d.get("status", "pending"),
            d.get("attempts", 0), d.get("error"),
        )


@attrs.frozen
class Change:
    """One record a sync changed (or, in a dry run, would change): ``action`` is ``created``,
    ``updated`` or ``failed``; ``fields`` maps each changed field to ``(old, new)``."""

    kind: str
    remote_id: str
    local_id: str | None
    action: str
    fields: Mapping[str, tuple[Any, Any]] = attrs.field(factory=dict)
    message: str = ""


@attrs.frozen
class PullSummary:
    """Counts of one pull, over every object kind (``by_kind`` has the same counts per kind)."""

    connection: str
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    conflicts: int = 0
    bypasses: int = 0
    pages: int = 0
    dry_run: bool = False
    by_kind: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)
    changes: tuple[Change, ...] = ()
    """Every created, updated or failed record (kept for dry runs; empty otherwise)."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "connection": self.connection, "fetched": self.fetched, "created": self.created,
            "updated": self.updated, "unchanged": self.unchanged, "failed": self.failed,
            "conflicts": self.conflicts, "bypasses": self.bypasses, "pages": self.pages,
            "dry_run": self.dry_run, "by_kind": {k: dict(v) for k, v in self.by_kind.items()},
        }
        if self.dry_run:
            out["changes"] = [
                {"kind": c.kind, "remote_id": c.remote_id, "local_id": c.local_id, "action": c.action,
                 "fields": {f: [encode_value(o), encode_value(n)] for f, (o, n) in c.fields.items()},
                 "message": c.message}
                for c in self.changes
            ]
        return out


@attrs.frozen
class PushSummary:
    """Counts of one push: ``sent`` records went out, ``created``/``updated`` succeeded,
    ``failed`` were refused this time (``parked`` of them for good), ``skipped`` needed nothing."""

    connection: str
    sent: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    parked: int = 0
    skipped: int = 0
    batches: int = 0
    dry_run: bool = False
    failures: tuple[RecordFailure, ...] = ()
    pull: PullSummary | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "connection": self.connection, "sent": self.sent, "created": self.created,
            "updated": self.updated, "failed": self.failed, "parked": self.parked,
            "skipped": self.skipped, "batches": self.batches, "dry_run": self.dry_run,
            "failures": [attrs.asdict(f) for f in self.failures],
        }
        if self.pull is not None:
            out["pull"] = self.pull.as_dict()
        return out


@attrs.frozen
class SyncStatus:
    """Where a connection stands: cursors, the outbox, and the reports kept so far."""

    connection: str
    cursors: Mapping[str, Any]
    pending: int
    parked: int
    conflicts: int
    bypasses: int
    failures: int
    linked_deals: int
    last_pull: Mapping[str, Any] | None = None
    last_push: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "connection": self.connection, "cursors": dict(self.cursors), "pending": self.pending,
            "parked": self.parked, "conflicts": self.conflicts, "bypasses": self.bypasses,
            "failures": self.failures, "linked_deals": self.linked_deals,
            "last_pull": None if self.last_pull is None else dict(self.last_pull),
            "last_push": None if self.last_push is None else dict(self.last_push),
        }
