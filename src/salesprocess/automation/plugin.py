"""Automation as a plugin: react to hooks as soon as things happen.

:meth:`RuleEngine.run_due` finds every occurrence from the store, so nothing is missed if only it
runs. Registering an :class:`AutomationPlugin` on the shell makes event rules fire at once: when a
deal is saved (``salesprocess_deal_saved``), a risk alert is raised (``salesprocess_risk_alert``),
a goal reaches a milestone (``salesprocess_goal_milestone``) or feedback arrives
(``salesprocess_feedback_received``). Both paths write the same fire records, so a rule fires once
per occurrence whichever path saw it first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ..hookspecs import hookimpl
from .engine import RuleEngine, RunReport
from .notify import Notifier

__all__ = ["AutomationPlugin"]


class AutomationPlugin:
    """Hook listener running ``engine`` against ``store`` with ``notifiers``.

    ``reports`` keeps the :class:`RunReport` of each hook-driven run (the newest last).
    """

    def __init__(self, engine: RuleEngine, store: Any, notifiers: Mapping[str, Notifier] | None = None,
                 *, app: Any = None) -> None:
        self.engine = engine
        self.store = store
        self.notifiers = dict(notifiers or {})
        self.app = app
        self.reports: list[RunReport] = []

    def _advance(self) -> Any:
        return self.app.advance if self.app is not None else None

    @hookimpl
    def salesprocess_deal_saved(self, deal: Any, events: Sequence[Any], store: Any) -> None:
        if store is not self.store or not events:
            return
        at = max(e.at for e in events)
        occ = self.engine.deal_occurrences(deal, len(events), at)
        if occ:
            self.reports.append(self.engine.handle(self.store, occ, self.notifiers, at=at,
                                                   advance=self._advance()))

    @hookimpl
    def salesprocess_risk_alert(self, alert: Any) -> None:
        occ = self.engine.alert_occurrences(alert)
        if occ:
            self.reports.append(self.engine.handle(self.store, occ, self.notifiers, at=alert.at,
                                                   advance=self._advance()))

    @hookimpl
    def salesprocess_goal_milestone(self, goal: Any, milestone: Decimal, progress: Any) -> None:
        occ = self.engine.milestone_occurrences(goal, milestone, progress.asof)
        if occ:
            self.reports.append(self.engine.handle(self.store, occ, self.notifiers,
                                                   at=progress.asof, advance=self._advance()))

    @hookimpl
    def salesprocess_feedback_received(self, kind: str, item: Any, store: Any) -> None:
        if store is not self.store or kind != "survey_response":
            return
        occ = self.engine.response_occurrences(item)
        if occ:
            self.reports.append(self.engine.handle(self.store, occ, self.notifiers,
                                                   at=item.response.at, advance=self._advance()))
