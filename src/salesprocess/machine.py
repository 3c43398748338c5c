"""The stage machine: checking and performing moves, listing allowed targets, migrating deals.

All functions are pure: they take a process, a deal and an instant, and return new values or
problems. Hooks (vetoes, notifications) fire only in :class:`salesprocess.SalesProcess`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from .errors import DomainError, MigrationError, Problem
from .guards import Move
from .model import Deal, DealStatus, EventSource, ProcessMigrated
from .periods import require_aware
from .process import Criteria

if TYPE_CHECKING:
    from .model import Activity
    from .process import Process, _Edge

__all__ = ["advance", "allowed_targets", "check", "migrate_deals"]


def _field_missing(deal: Deal, field: str, move: Move) -> bool:
    if field.startswith("custom."):
        v = deal.custom.get(field[7:])
    elif field == "lost_reason":
        return not (move.reason or deal.lost_reason)
    else:
        v = getattr(deal, field)
    if v is None or v == "" or v == () or v == frozenset():
        return True
    return False


def _criteria_problems(
    process: Process, deal: Deal, crit: Criteria, side: str, stage: str, move: Move, out: list[Problem]
) -> None:
    for f in crit.fields:
        if _field_missing(deal, f, move):
            out.append(Problem(f"{side}.fields.{f}", "field", f"{stage}: field {f!r} is required"))
    if crit.activities:
        done = {a.kind.value for a in move.activities if a.done and a.deal_id in (None, deal.id)}
        for k in crit.activities:
            if k not in done:
                out.append(Problem(f"{side}.activities.{k}", "activity", f"{stage}: a done {k} activity is required"))
    for item in crit.checklist:
        if item not in deal.checklist:
            out.append(Problem(f"{side}.checklist.{item}", "checklist", f"{stage}: checklist item {item!r} is not done"))
    for g in crit.guards:
        msg = process.guards[g].func(deal, move)
        if msg:
            out.append(Problem(f"{side}.guards.{g}", "guard", f"{stage}: {msg}"))


def _edge_problems(process: Process, deal: Deal, edge: _Edge, move: Move) -> list[Problem]:
    out: list[Problem] = []
    if edge.exit is not None:
        _criteria_problems(process, deal, edge.exit, "exit", edge.source, move, out)
    if edge.entry is not None:
        _criteria_problems(process, deal, edge.entry, "entry", edge.target, move, out)
    for g, func in edge.guard_funcs:
        msg = func(deal, move)
        if msg:
            out.append(Problem(f"transition.guards.{g}", "guard", msg))
    return out


def _missing_edge(process: Process, deal: Deal, to: str) -> list[Problem]:
    if not process.has_stage(to):
        return [Problem("target", "unknown_stage", f"process {process.key!r} has no stage {to!r}")]
    if to == deal.stage:
        return [Problem("target", "same_stage", f"the deal is already in {to!r}")]
    if deal.status is not DealStatus.OPEN:
        return [Problem("transition", "closed", f"the deal is {deal.status.value}; it moves only by a reopen transition, and none leads to {to!r}")]
    return [Problem("transition", "transition", f"no transition from {deal.stage!r} to {to!r}")]


def _check_deal(process: Process, deal: Deal) -> None:
    if deal.process != process.key:
        raise DomainError(f"deal {deal.id} follows process {deal.process!r}, not {process.key!r}")


def check(
    process: Process,
    deal: Deal,
    to: str,
    *,
    at: datetime | None = None,
    actor: str = "",
    reason: str | None = None,
    activities: Sequence[Activity] = (),
) -> list[Problem]:
    """Every unmet criterion for the move; empty when it is allowed. Never raises for unmet criteria."""
    _check_deal(process, deal)
    if at is not None:
        require_aware(at, "at")
    edge = process._edges.get((deal.stage, to))
    if edge is None:
        return _missing_edge(process, deal, to)
    when = at if at is not None else deal.updated_at
    return _edge_problems(process, deal, edge, Move(process, deal.stage, to, when, actor, reason, activities))


def allowed_targets(
    process: Process, deal: Deal, *, at: datetime | None = None, activities: Sequence[Activity] = ()
) -> list[str]:
    """Stages the deal may move to now, in process order."""
    _check_deal(process, deal)
    if at is not None:
        require_aware(at, "at")
    when = at if at is not None else deal.updated_at
    out = []
    for to in process.graph_targets(deal.stage):
        edge = process._edges[(deal.stage, to)]
        if not _edge_problems(process, deal, edge, Move(process, deal.stage, to, when, "", None, activities)):
            out.append(to)
    return sorted(out, key=process.order)


def advance(
    process: Process,
    deal: Deal,
    to: str,
    *,
    at: datetime,
    actor: str,
    reason: str | None = None,
    source: EventSource = EventSource.USER,
    activities: Sequence[Activity] = (),
) -> Deal:
    """Move ``deal`` to ``to``: the new deal with one new event appended (see :meth:`Process.advance`).

    Raises :class:`TransitionNotAllowed` with every unmet criterion, :class:`DomainError` if the deal
    follows another process or ``at`` is before the deal's last change, and
    :class:`~salesprocess.errors.NaiveDatetimeError` for a naive ``at``.
    """
    return process.advance(
        deal, to, at=at, actor=actor, reason=reason, source=source, activities=activities
    )


def migrate_deals(
    old: Process,
    new: Process,
    deals: Iterable[Deal],
    *,
    mapping: Mapping[str, str] | None = None,
    at: datetime,
    actor: str,
    source: EventSource = EventSource.USER,
) -> list[Deal]:
    """Move deals of ``old`` onto ``new``; stages map by ``mapping`` or, failing that, by equal key.

    A deal whose stage maps nowhere, or maps an open deal onto a closed stage (or the reverse), is a
    problem; all problems are reported together in one :class:`MigrationError` and no deal moves.
    """
    require_aware(at, "at")
    if old.key != new.key:
        raise DomainError(f"cannot migrate from process {old.key!r} to another process {new.key!r}")
    mp = dict(mapping or {})
    problems: list[Problem] = []
    for src, dst in mp.items():
        if not old.has_stage(src):
            problems.append(Problem(f"mapping.{src}", "unknown_stage", f"{src!r} is not a stage of version {old.version}"))
        if not new.has_stage(dst):
            problems.append(Problem(f"mapping.{src}", "unknown_stage", f"{dst!r} is not a stage of version {new.version}"))
    out: list[Deal] = []
    for d in deals:
        if d.process != old.key or d.process_version != old.version:
            problems.append(Problem(f"deal.{d.id}", "version", f"deal {d.id} follows {d.process} v{d.process_version}, not v{old.version}"))
            continue
        target = mp.get(d.stage, d.stage)
        if not new.has_stage(target):
            problems.append(Problem(f"deal.{d.id}", "unmapped", f"deal {d.id}: stage {d.stage!r} has no counterpart in version {new.version}"))
            continue
        new_kind = new.stage(target).kind
        old_kind = old.stage(d.stage).kind
        if new_kind is not old_kind:
            problems.append(Problem(f"deal.{d.id}", "kind", f"deal {d.id}: {d.stage!r} ({old_kind}) cannot map to {target!r} ({new_kind})"))
            continue
        out.append(
            d.append(ProcessMigrated(d.id, max(at, d.updated_at), actor, source, new.key, old.version, new.version, d.stage, target))
        )
    if problems:
        raise MigrationError(problems)
    return out
