"""The whole plugin contract of salesprocess.

Every hook is named ``salesprocess_<what>``, lives here, and is documented: parameters, return
value, and when it fires. Plugins implement hooks with :data:`salesprocess.hookimpl` and are
registered on a :class:`salesprocess.SalesProcess` (directly, or through the ``salesprocess``
entry-point group when the shell is created with ``load_entrypoints=True``). Hooks fire only in
the shell; the calculators stay pure.

Contribution hooks receive a ``register`` callback (the ``register_models(register)`` pattern): the
plugin calls it once per contribution and the host validates and collects what it gets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .model import Deal, DealEvent
    from .process import Process

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "salesprocess"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def salesprocess_register_guards(register: Callable[..., None]) -> None:
    """Contribute named guards for process entry/exit criteria and transitions.

    Call ``register(name, func, description="")`` once per guard. ``func(deal, move)`` returns
    ``None`` when the move may happen, else a one-sentence reason; it must have no side effects.
    ``name`` must be an identifier and unique across plugins.

    Fires once, when a :class:`~salesprocess.SalesProcess` first builds its guard registry (and
    again after plugins are registered or unregistered).

    :param register: the callback collecting guards.
    :returns: nothing; contributions go through ``register``.
    """


@hookspec
def salesprocess_register_adapters(register: Callable[..., None]) -> None:
    """Contribute adapters: stores, CRM connectors, notifiers.

    Call ``register(kind, name, factory, description="")`` where ``kind`` is ``"store"``,
    ``"crm"`` or ``"notifier"``. For stores, ``factory(url: str, **options)`` opens a store for a
    URL whose scheme is ``name`` (e.g. ``sqlite``, ``postgresql``); for CRM connectors,
    ``factory(config: Mapping, **options)``; for notifiers, ``factory(config: Mapping)``. Factories
    import heavy SDKs lazily and name the extra to install when one is missing.

    Fires when the shell first looks an adapter up.

    :param register: the callback collecting adapters.
    :returns: nothing.
    """


@hookspec
def salesprocess_register_processes(register: Callable[..., None]) -> None:
    """Contribute ready-made processes.

    Call ``register(key, loader)`` where ``loader(guards)`` returns a :class:`Process`. The shipped
    ``b2b`` and ``saas`` processes come through this hook from a first-party plugin.

    :param register: the callback collecting process loaders.
    :returns: nothing.
    """


@hookspec
def salesprocess_register_kpis(register: Callable[..., None]) -> None:
    """Contribute KPIs to the KPI registry.

    Call ``register(kpi)`` with a KPI definition object (name, definition, unit, direction and a
    calculator). Names must be unique snake_case.

    Fires when the shell first builds its KPI registry.

    :param register: the callback collecting KPIs.
    :returns: nothing.
    """


@hookspec
def salesprocess_register_risk_signals(register: Callable[..., None]) -> None:
    """Contribute deal or customer risk signals.

    Call ``register(name, func, description="", applies_to="deal")``; ``func(subject, context)``
    returns ``None`` or a finding with a severity in [0, 1] and a one-sentence explanation.

    :param register: the callback collecting risk signals.
    :returns: nothing.
    """


@hookspec
def salesprocess_before_transition(
    process: Process, deal: Deal, target: str, at: datetime, actor: str, reason: str | None
) -> str | None:
    """Veto a stage move before it happens.

    Fires in :meth:`SalesProcess.advance` after the process's own criteria passed and before the
    new deal is returned. Every implementation is called; each non-``None`` return is a veto reason,
    and any veto raises :class:`~salesprocess.errors.TransitionNotAllowed` carrying all reasons
    (code ``veto``). Implementations must not change anything.

    :param process: the process the deal follows.
    :param deal: the deal before the move.
    :param target: the requested stage key.
    :param at: the instant of the move (timezone-aware).
    :param actor: who asked for the move.
    :param reason: the reason given, if any.
    :returns: ``None`` to allow, or a one-sentence reason to veto.
    """


@hookspec
def salesprocess_after_transition(
    process: Process, before: Deal, after: Deal, events: Sequence[DealEvent]
) -> None:
    """Be told about a completed stage move (notifications, automation, audit).

    Fires in :meth:`SalesProcess.advance` after the move succeeded, once per move. Exceptions
    raised here propagate to the caller: a listener that must not fail should catch its own errors.

    :param process: the process the deal follows.
    :param before: the deal before the move.
    :param after: the deal after the move.
    :param events: the events the move appended (usually one).
    :returns: nothing.
    """


@hookspec
def salesprocess_deal_saved(deal: Deal, events: Sequence[DealEvent], store: Any) -> None:
    """Be told that a store committed new events of a deal.

    Fires from :meth:`SalesProcess.save_deal` after the store accepted the write, and from
    :meth:`SalesProcess.notify_saved`, which code that saved deals by other means calls once its
    transaction committed (never for a save that rolled back or raised ``ConflictError``).

    :param deal: the saved deal.
    :param events: the events that were new in this save.
    :param store: the store that saved it.
    :returns: nothing.
    """


@hookspec
def salesprocess_goal_milestone(goal: Any, milestone: Decimal, progress: Any) -> None:
    """Be told that a goal reached an attainment milestone (50 %, 90 %, 100 % by default).

    Fires from :meth:`SalesProcess.goal_progress`, once per goal and milestone: with ``since``,
    for each milestone reached at ``asof`` but not at ``since``; without it, for each milestone
    reached that the store has not recorded as announced yet (the shell then records it in the
    store document ``("goal_milestone", goal.id)``). Pure code (:func:`salesprocess.goals.progress`)
    never fires it.

    :param goal: the :class:`~salesprocess.goals.Goal`.
    :param milestone: the attainment reached, as a ``Decimal`` fraction (``Decimal("0.9")``).
    :param progress: the :class:`~salesprocess.goals.Progress` that crossed it.
    :returns: nothing.
    """


@hookspec
def salesprocess_sync_conflict(connection: str, conflict: Any) -> None:
    """Be told that a sync found a field changed on both sides (CRM and local) to different values.

    Fires from :class:`~salesprocess.sync.SyncEngine` (when it was given the shell as ``app``) once
    per conflict, after the page that resolved it committed. The conflict is already settled by
    the connection's policy and kept in the conflict report; this hook is for notifications.

    :param connection: the connection's name.
    :param conflict: a :class:`~salesprocess.sync.Conflict` with both values and the winner.
    :returns: nothing.
    """


@hookspec
def salesprocess_sync_bypass(connection: str, bypass: Any, deal: Deal) -> None:
    """Be told that the CRM moved a deal in a way the local process does not allow.

    Fires from :class:`~salesprocess.sync.SyncEngine` once per bypass (a skipped stage, a move
    backwards, unmet entry criteria, a reopen the process forbids...), after the page that
    brought the move committed. The move itself was accepted as a fact; the bypass is kept in
    the bypass report.

    :param connection: the connection's name.
    :param bypass: a :class:`~salesprocess.sync.Bypass` describing the move and what it broke.
    :param deal: the deal as saved, the move included.
    :returns: nothing.
    """


@hookspec
def salesprocess_sync_finished(connection: str, direction: str, summary: Any) -> None:
    """Be told that a pull or a push of a connection completed.

    Fires from :class:`~salesprocess.sync.SyncEngine` after a pull or push that ran to the end
    (not after a dry run, and not when it failed part-way).

    :param connection: the connection's name.
    :param direction: ``"pull"`` or ``"push"``.
    :param summary: the :class:`~salesprocess.sync.PullSummary` or :class:`~salesprocess.sync.PushSummary`.
    :returns: nothing.
    """


@hookspec
def salesprocess_risk_alert(alert: Any) -> None:
    """Be told about a new risk alert (notifications: e-mail, chat, a task for the owner).

    Fires from :meth:`SalesProcess.run_risk_alerts` once per alert *raised*: its rule's condition
    holds for a deal or customer and did not hold at the previous run. An alert that stays active
    does not fire again; once its condition clears, it fires again when the condition returns.
    The alert state is kept in store documents of kind ``risk_alert`` and written after every
    listener returned (a listener that raises sees the alert again on the next run).

    :param alert: the :class:`~salesprocess.risk.RiskAlert` (rule, subject, severity, score,
        one-line message with the contributing signals, resolved recipients).
    :returns: nothing.
    """


@hookspec
def salesprocess_rule_fired(firing: Any, store: Any) -> None:
    """Be told that an automation rule fired (audit trails, dashboards, chat notifications).

    Fires from :meth:`SalesProcess.run_rules` once per firing, after its fire record and the
    actions' store writes committed and its messages were handed to the notifiers (not in a dry
    run). A rule fires at most once per occurrence, so this hook does too.

    :param firing: the :class:`~salesprocess.automation.Firing` (rule, occurrence, why, the
        outcome of each action, the messages).
    :param store: the store the rule ran against.
    :returns: nothing.
    """


@hookspec
def salesprocess_feedback_received(kind: str, item: Any, store: Any) -> None:
    """Be told about new customer feedback.

    Fires from :meth:`SalesProcess.record_survey_response` (``kind`` ``"survey_response"``, the
    item a :class:`~salesprocess.feedback.LinkedResponse`) and :meth:`SalesProcess.open_complaint`
    (``kind`` ``"complaint"``, the item a :class:`~salesprocess.feedback.Complaint`), after the
    store saved it. :class:`~salesprocess.automation.AutomationPlugin` listens to it for
    ``survey_below`` rules.

    :param kind: ``"survey_response"`` or ``"complaint"``.
    :param item: the saved feedback.
    :param store: the store that saved it.
    :returns: nothing.
    """


@hookspec
def salesprocess_lifecycle_changed(change: Any, store: Any) -> None:
    """Be told that an account moved to another lifecycle stage (lead, MQL, SQL, opportunity,
    customer, advocate, churned).

    Fires from :meth:`SalesProcess.set_lifecycle_stage` and :meth:`SalesProcess.sync_lifecycle`
    once per change, after the store saved it.

    :param change: the :class:`~salesprocess.lifecycle.LifecycleChange` (account, stage, previous
        stage, instant, actor, reason, source).
    :param store: the store that saved it.
    :returns: nothing.
    """
