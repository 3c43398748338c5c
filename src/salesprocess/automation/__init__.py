"""Automation rules: triggers, conditions and actions, run once per occurrence.

Define rules in TOML (:meth:`RuleSet.from_toml`) or Python (:class:`Rule`), run them with
:class:`RuleEngine` — ``run_due(asof, store, notifiers)`` for everything due, ``dry_run=True`` to
see what would fire and why — or through :meth:`salesprocess.SalesProcess.run_rules`, which also
applies plugin vetoes to stage moves and fires ``salesprocess_rule_fired``. Register an
:class:`AutomationPlugin` to react to hooks immediately. Notifiers (:class:`Notifier`) are
plugins of kind ``notifier``.
"""

from __future__ import annotations

from .engine import (
    FIRE_KIND,
    OUTBOX_KIND,
    Context,
    Firing,
    Occurrence,
    Outcome,
    RuleEngine,
    RunReport,
)
from .notify import Delivery, MemoryNotifier, Message, Notifier, Recipient, open_notifiers
from .plugin import AutomationPlugin
from .rules import (
    ACTIONS,
    EVENT_TRIGGERS,
    OPERATORS,
    TIME_TRIGGERS,
    TRIGGERS,
    Action,
    Condition,
    Rule,
    RuleSet,
    Trigger,
)
from .templates import Text, render

__all__ = [
    "ACTIONS",
    "EVENT_TRIGGERS",
    "FIRE_KIND",
    "OPERATORS",
    "OUTBOX_KIND",
    "TIME_TRIGGERS",
    "TRIGGERS",
    "Action",
    "AutomationPlugin",
    "Condition",
    "Context",
    "Delivery",
    "Firing",
    "MemoryNotifier",
    "Message",
    "Notifier",
    "Occurrence",
    "Outcome",
    "Recipient",
    "Rule",
    "RuleEngine",
    "RuleSet",
    "RunReport",
    "Text",
    "Trigger",
    "open_notifiers",
    "render",
]
