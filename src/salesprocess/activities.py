"""Activities and follow-ups: to-dos, playbook tasks, due dates, overdue work, planned vs done.

Calls, e-mails, meetings, visits, notes and tasks are :class:`~salesprocess.model.Activity`
entities in the store, linked to a deal, an account and/or a contact. A *planned* activity is a
follow-up: its ``at`` is when it is due, its ``owner_id`` the assignee. When it is done its
status becomes ``done`` and ``at`` becomes the instant it happened.

This module adds three things on top:

- **Required to-dos.** The process says which activity kinds (``entry.activities``) and checklist
  items a deal needs before its next stage; :func:`required_todos` lists the ones still missing as
  open to-dos (they are computed, not stored).
- **Playbook tasks.** :func:`playbook_tasks` turns a stage's playbook steps into planned tasks with
  assignees (by the step's ``owner_role``) and due dates in business days — a stage propeller.
  Their ids are deterministic (``pb:<deal>:<stage>:<n>``), so starting a playbook twice creates
  nothing new.
- **Plans.** Each planned activity written through :func:`save_tasks` or :func:`plan_activity` gets
  a plan record (store document kind ``activity_plan``) keeping its due date and origin, so
  :func:`planned_vs_done` can tell on-time from late work after the activity itself was completed.

Nothing here reads the clock: every query takes ``asof``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, time, tzinfo
from decimal import Decimal
from typing import Any

import attrs

from .codec import instant, iso
from .errors import DomainError, NotFoundError
from .model import Activity, ActivityKind, ActivityStatus, Deal, DealStatus
from .periods import BusinessCalendar, Period, require_aware
from .process import Process, StageKind

__all__ = [
    "PLAN_KIND",
    "PlanRow",
    "PlannedTask",
    "Todo",
    "cancel",
    "complete",
    "due_after",
    "next_stage",
    "overdue",
    "plan_activity",
    "planned_vs_done",
    "playbook_tasks",
    "required_todos",
    "save_tasks",
    "start_playbook",
    "todos",
]

PLAN_KIND = "activity_plan"
"""Store document kind of plan records (key: the activity id)."""

Assignees = Mapping[str, str] | Callable[[str | None, Deal], str | None]


@attrs.frozen
class Todo:
    """Something still to do.

    ``kind`` is ``task`` (a stored planned activity), ``activity`` (an activity kind the process
    requires and no done activity covers yet) or ``checklist`` (a checklist item the next stage
    requires). Computed to-dos have no ``activity_id`` and no ``due``.
    """

    kind: str
    title: str
    deal_id: str | None = None
    stage: str | None = None
    """The stage whose criteria or playbook asks for it."""
    owner_id: str | None = None
    due: datetime | None = None
    activity_id: str | None = None
    activity_kind: ActivityKind | None = None
    overdue: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "title": self.title, "deal_id": self.deal_id, "stage": self.stage,
            "owner_id": self.owner_id, "due": self.due.isoformat() if self.due else None,
            "activity_id": self.activity_id,
            "activity_kind": self.activity_kind.value if self.activity_kind else None,
            "overdue": self.overdue,
        }


@attrs.frozen
class PlannedTask:
    """A planned activity with its plan: due instant, the stage and playbook step it came from,
    and who planned it (``source``: ``user``, ``playbook`` or ``rule:<rule id>``)."""

    activity: Activity
    due: datetime
    source: str = "user"
    stage: str | None = None
    step: int | None = None
    role: str | None = None

    def plan_document(self) -> dict[str, Any]:
        return {"due": iso(self.due), "source": self.source, "stage": self.stage,
                "step": self.step, "role": self.role, "deal_id": self.activity.deal_id,
                "owner_id": self.activity.owner_id, "kind": self.activity.kind.value}


# ----------------------------------------------------------------------------------------------
# Required to-dos
# ----------------------------------------------------------------------------------------------


def next_stage(process: Process, deal: Deal) -> str | None:
    """The stage a deal works towards: the first open or won stage after its own that the process
    graph lets it move to (``None`` for a closed deal or the last stage)."""
    if deal.status is not DealStatus.OPEN:
        return None
    here = process.order(deal.stage)
    cands = [
        t for t in process.graph_targets(deal.stage)
        if process.order(t) > here and process.stage(t).kind is not StageKind.LOST
    ]
    return min(cands, key=process.order) if cands else None


def _done_kinds(deal: Deal, activities: Iterable[Activity], asof: datetime | None) -> set[str]:
    return {
        a.kind.value for a in activities
        if a.done and a.deal_id == deal.id and (asof is None or a.at <= asof)
    }


def required_todos(
    process: Process,
    deal: Deal,
    activities: Sequence[Activity] = (),
    *,
    asof: datetime | None = None,
) -> list[Todo]:
    """Activities and checklist items the deal still lacks to leave its stage for the next one
    (:func:`next_stage`): the current stage's exit criteria and the next stage's entry criteria.

    An activity kind counts as done when a done activity of that kind is linked to the deal (done
    at or before ``asof`` when given); a planned activity of that kind turns the requirement into
    its task, so it is not listed twice.
    """
    target = next_stage(process, deal)
    if target is None:
        return []
    here = process.stage(deal.stage)
    there = process.stage(target)
    done = _done_kinds(deal, activities, asof)
    planned = {a.kind.value for a in activities
               if a.deal_id == deal.id and a.status is ActivityStatus.PLANNED}
    out: list[Todo] = []
    seen: set[tuple[str, str]] = set()
    for crit, stage in ((here.exit, here.key), (there.entry, there.key)):
        for k in crit.activities:
            if k in done or k in planned or ("activity", k) in seen:
                continue
            seen.add(("activity", k))
            out.append(Todo("activity", f"a done {k} is required to move to {target}",
                            deal.id, stage, deal.owner_id, activity_kind=ActivityKind(k)))
        for item in crit.checklist:
            if item in deal.checklist or ("checklist", item) in seen:
                continue
            seen.add(("checklist", item))
            out.append(Todo("checklist", f"tick {item!r} to move to {target}", deal.id, stage,
                            deal.owner_id))
    return out


# ----------------------------------------------------------------------------------------------
# Playbook tasks
# ----------------------------------------------------------------------------------------------


def _local(at: datetime, tz: tzinfo | None) -> datetime:
    return at.astimezone(tz) if tz is not None else at


def due_after(
    at: datetime, business_days: int, *, calendar: BusinessCalendar | None = None,
    tz: tzinfo | None = None, due_time: time = time(18, 0),
) -> datetime:
    """The instant ``business_days`` working days after ``at`` (local date in ``tz``, default the
    zone of ``at``), at ``due_time``; 0 means the same day (or the next working day when ``at``'s
    day is not one)."""
    require_aware(at, "at")
    cal = calendar or BusinessCalendar()
    local = _local(at, tz)
    d = local.date()
    if business_days == 0 and not cal.is_working_day(d):
        d = cal.add_working_days(d, 1)
    elif business_days:
        d = cal.add_working_days(d, business_days)
    zone = local.tzinfo or UTC
    return datetime.combine(d, due_time, zone)


def _assignee(assignees: Assignees | None, role: str | None, deal: Deal) -> str | None:
    if assignees is None:
        return deal.owner_id
    if callable(assignees):
        return assignees(role, deal) or deal.owner_id
    return assignees.get(role or "", None) or deal.owner_id


def playbook_tasks(
    process: Process,
    deal: Deal,
    *,
    at: datetime,
    stage: str | None = None,
    assignees: Assignees | None = None,
    calendar: BusinessCalendar | None = None,
    tz: tzinfo | None = None,
    due_time: time = time(18, 0),
    default_due_days: int = 1,
    source: str = "playbook",
) -> list[PlannedTask]:
    """The playbook steps of ``stage`` (default: the deal's stage) as planned tasks.

    Each step becomes a planned ``task`` activity with id ``pb:<deal>:<stage>:<n>`` (``n`` from 1),
    the step title as subject, due ``due_days`` working days after ``at`` (``default_due_days``
    when the step gives none), assigned by its ``owner_role``: ``assignees`` maps roles to rep ids
    (or is a function of role and deal); a role it does not know falls back to the deal's owner.
    """
    require_aware(at, "at")
    key = stage or deal.stage
    st = process.stage(key)
    out: list[PlannedTask] = []
    for i, step in enumerate(st.playbook.steps, 1):
        days = step.due_days if step.due_days is not None else default_due_days
        due = due_after(at, days, calendar=calendar, tz=tz, due_time=due_time)
        act = Activity(
            id=f"pb:{deal.id}:{key}:{i}",
            kind=ActivityKind.TASK,
            at=due,
            subject=step.title,
            status=ActivityStatus.PLANNED,
            deal_id=deal.id,
            account_id=deal.account_id,
            owner_id=_assignee(assignees, step.owner_role, deal),
        )
        out.append(PlannedTask(act, due, source, key, i, step.owner_role))
    return out


def save_tasks(store: Any, tasks: Iterable[PlannedTask]) -> list[PlannedTask]:
    """Write planned tasks and their plan records in one transaction; a task whose activity id
    the store already holds is left alone. Returns the tasks written."""
    written: list[PlannedTask] = []
    with store.transaction():
        for t in tasks:
            if t.activity.status is not ActivityStatus.PLANNED:
                raise DomainError(f"activity {t.activity.id}: only planned activities are planned")
            try:
                store.get(Activity, t.activity.id)
                continue
            except NotFoundError:
                pass
            store.put(t.activity)
            store.put_document(PLAN_KIND, t.activity.id, t.plan_document())
            written.append(t)
    return written


def start_playbook(store: Any, process: Process, deal: Deal, *, at: datetime, **options: Any) -> list[PlannedTask]:
    """:func:`playbook_tasks` saved with :func:`save_tasks` (idempotent); returns the new tasks."""
    return save_tasks(store, playbook_tasks(process, deal, at=at, **options))


def plan_activity(store: Any, activity: Activity, *, source: str = "user", stage: str | None = None) -> PlannedTask:
    """Save one planned activity (due at ``activity.at``) with its plan record."""
    if activity.status is not ActivityStatus.PLANNED:
        raise DomainError(f"activity {activity.id}: status must be planned, got {activity.status.value}")
    task = PlannedTask(activity, activity.at, source, stage)
    with store.transaction():
        store.put(activity)
        store.put_document(PLAN_KIND, activity.id, task.plan_document())
    return task


def complete(store: Any, activity_id: str, *, at: datetime, outcome: str | None = None) -> Activity:
    """Mark a planned activity done at ``at`` (its plan keeps the due date)."""
    require_aware(at, "at")
    a: Activity = store.get(Activity, activity_id)
    if a.status is not ActivityStatus.PLANNED:
        raise DomainError(f"activity {activity_id} is {a.status.value}, not planned")
    done = attrs.evolve(a, status=ActivityStatus.DONE, at=at, outcome=outcome or a.outcome)
    with store.transaction():
        if store.get_document(PLAN_KIND, activity_id) is None:  # keep the due date it had
            store.put_document(PLAN_KIND, activity_id, PlannedTask(a, a.at).plan_document())
        store.put(done)
    return done


def cancel(store: Any, activity_id: str) -> Activity:
    """Cancel a planned activity (it keeps its due date as ``at``)."""
    a: Activity = store.get(Activity, activity_id)
    if a.status is not ActivityStatus.PLANNED:
        raise DomainError(f"activity {activity_id} is {a.status.value}, not planned")
    out = attrs.evolve(a, status=ActivityStatus.CANCELLED)
    store.put(out)
    return out


# ----------------------------------------------------------------------------------------------
# Queries
# ----------------------------------------------------------------------------------------------


class _Processes:
    def __init__(self, store: Any, given: Mapping[str, Process] | None) -> None:
        self.store = store
        self.given = dict(given or {})
        self.cache: dict[tuple[str, int], Process | None] = {}

    def get(self, deal: Deal) -> Process | None:
        if deal.process in self.given:
            return self.given[deal.process]
        k = (deal.process, deal.process_version)
        if k not in self.cache:
            try:
                self.cache[k] = self.store.get_process(deal.process, deal.process_version)
            except NotFoundError:
                self.cache[k] = None
        return self.cache[k]


def todos(
    store: Any,
    *,
    asof: datetime,
    owner_id: str | None = None,
    deal_id: str | None = None,
    processes: Mapping[str, Process] | None = None,
    required: bool = True,
) -> list[Todo]:
    """Open to-dos as of ``asof``: planned activities (``task``, overdue when due before ``asof``)
    and, with ``required``, what the process still requires of each open deal
    (:func:`required_todos`). Filter by the assignee (``owner_id``) or the deal. Ordered by due
    instant (undated last), then deal and title."""
    require_aware(asof, "asof")
    crit: dict[str, Any] = {}
    if deal_id is not None:
        crit["deal_id"] = deal_id
    acts = list(store.all(Activity, **crit))
    out: list[Todo] = []
    for a in acts:
        if a.status is not ActivityStatus.PLANNED:
            continue
        if owner_id is not None and a.owner_id != owner_id:
            continue
        out.append(Todo("task", a.subject or a.kind.value, a.deal_id, None, a.owner_id, a.at,
                        a.id, a.kind, a.at < asof))
    if required:
        procs = _Processes(store, processes)
        by_deal: dict[str, list[Activity]] = {}
        for a in acts:
            if a.deal_id is not None:
                by_deal.setdefault(a.deal_id, []).append(a)
        deals: Iterable[Deal]
        if deal_id is not None:
            deals = [store.get_deal(deal_id)]
        else:
            deals = store.deals(status=DealStatus.OPEN)
        for d in deals:
            if d.status is not DealStatus.OPEN or (owner_id is not None and d.owner_id != owner_id):
                continue
            p = procs.get(d)
            if p is None or not p.has_stage(d.stage):
                continue
            out.extend(required_todos(p, d, by_deal.get(d.id, ()), asof=asof))
    far = datetime.max.replace(tzinfo=UTC)
    out.sort(key=lambda t: (t.due is None, t.due or far, t.deal_id or "", t.title))
    return out


def overdue(store: Any, *, asof: datetime, owner_id: str | None = None) -> list[Todo]:
    """Planned activities due before ``asof`` and not done."""
    return [t for t in todos(store, asof=asof, owner_id=owner_id, required=False) if t.overdue]


@attrs.frozen
class PlanRow:
    """Planned against done work for one group (an owner, a deal, a source...).

    ``planned`` counts plans due in the period; of those, ``done`` (``on_time`` by the due instant,
    else ``late``), ``cancelled``, ``overdue`` (still planned, due before ``asof``) and ``open``
    (still planned, not due yet). ``unplanned_done`` counts done activities in the period that
    were never planned.
    """

    key: str | None
    planned: int = 0
    done: int = 0
    on_time: int = 0
    late: int = 0
    cancelled: int = 0
    overdue: int = 0
    open: int = 0
    unplanned_done: int = 0

    @property
    def completion_rate(self) -> Decimal | None:
        return None if not self.planned else Decimal(self.done) / Decimal(self.planned)

    @property
    def on_time_rate(self) -> Decimal | None:
        return None if not self.done else Decimal(self.on_time) / Decimal(self.done)

    def as_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        for k in ("completion_rate", "on_time_rate"):
            v = getattr(self, k)
            d[k] = None if v is None else str(v.quantize(Decimal("0.0001")))
        return d


_GROUPS = ("owner", "deal", "source", "kind", "stage")


def planned_vs_done(
    store: Any,
    *,
    asof: datetime,
    by: str = "owner",
    period: Period | None = None,
    tz: tzinfo = UTC,
) -> list[PlanRow]:
    """Planned vs done per ``by`` (``owner``, ``deal``, ``source``, ``kind`` or ``stage``), for
    plans due in ``period`` (local dates in ``tz``; all when ``None``), as known at ``asof``:
    an activity done after ``asof`` still counts as planned then."""
    require_aware(asof, "asof")
    if by not in _GROUPS:
        raise DomainError(f"planned_vs_done: by must be one of {', '.join(_GROUPS)}, got {by!r}")
    acts = {a.id: a for a in store.all(Activity)}
    rows: dict[str | None, dict[str, int]] = {}

    def row(k: str | None) -> dict[str, int]:
        return rows.setdefault(k, dict.fromkeys(
            ("planned", "done", "on_time", "late", "cancelled", "overdue", "open", "unplanned_done"), 0))

    def in_period(at: datetime) -> bool:
        return period is None or at.astimezone(tz).date() in period

    planned_ids: set[str] = set()
    for aid, doc in store.documents(PLAN_KIND):
        planned_ids.add(aid)
        due = instant(doc["due"])
        if not in_period(due):
            continue
        a = acts.get(aid)
        key = {"owner": (a.owner_id if a else doc.get("owner_id")), "deal": doc.get("deal_id"),
               "source": doc.get("source"), "kind": doc.get("kind"), "stage": doc.get("stage")}[by]
        r = row(key)
        r["planned"] += 1
        if a is not None and a.status is ActivityStatus.DONE and a.at <= asof:
            r["done"] += 1
            r["on_time" if a.at <= due else "late"] += 1
        elif a is not None and a.status is ActivityStatus.CANCELLED:
            r["cancelled"] += 1
        elif due < asof:
            r["overdue"] += 1
        else:
            r["open"] += 1
    for a in acts.values():
        if a.id in planned_ids or not a.done or a.at > asof or not in_period(a.at):
            continue
        key = {"owner": a.owner_id, "deal": a.deal_id, "source": None, "kind": a.kind.value,
               "stage": None}[by]
        row(key)["unplanned_done"] += 1
    return [PlanRow(k, **v) for k, v in sorted(rows.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))]
