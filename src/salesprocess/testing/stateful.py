"""A Hypothesis state machine that drives deals through a process and checks the stage machine's
promises after every step.

Subclass :class:`DealLifecycleMachine`, set ``process`` (or override :meth:`make_process`), and
run its ``TestCase`` with pytest or unittest::

    class TestB2B(DealLifecycleMachine):
        process = salesprocess.processes.load("b2b")

    TestB2BLifecycle = TestB2B.TestCase

The machine opens deals, attempts random moves (allowed and disallowed), prepares allowed moves by
satisfying their criteria, ticks checklist items, logs activities, changes amount, probability,
close date, owner and forecast category, advances the clock, and tries moves back in time. After
every step it checks:

- ``replay(deal.events) == deal`` for every deal;
- a move is accepted exactly when :meth:`Process.check` reports no problem, a refused move raises
  :class:`~salesprocess.errors.TransitionNotAllowed` listing every unmet criterion and leaves the
  deal as it was;
- closed deals move only through reopen transitions;
- probabilities stay in [0, 1] and every stage change records which probability source won;
- the probability policy holds (a manual probability survives an open → open move under
  ``keep_manual``; ``stage_default`` always applies the stage's default; closed stages set 1 or 0);
- ``version == len(events)`` and events are ordered in time.

Set ``app`` to a :class:`~salesprocess.SalesProcess` to send moves through the plugin shell (so
its ``before_transition``/``after_transition`` plugins run too).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from salesprocess.app import SalesProcess
from salesprocess.errors import DomainError, Problem, TransitionNotAllowed
from salesprocess.model import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Deal,
    DealCreated,
    DealReopened,
    DealStatus,
    EventSource,
    ForecastCategory,
    StageChanged,
    replay,
)
from salesprocess.money import Money, Rate
from salesprocess.process import ProbabilityPolicy, Process, StageKind
from salesprocess.testing import strategies as sps
from salesprocess.testing._drive import prepare_move

__all__ = ["MANUAL_SOURCES", "DealLifecycleMachine"]

MANUAL_SOURCES = frozenset(
    {EventSource.USER, EventSource.MODEL, EventSource.CRM_SYNC, EventSource.IMPORT}
)
"""Probability sources that ``keep_manual`` keeps across open → open moves."""

_SOURCES = (EventSource.USER, EventSource.MODEL, EventSource.RULE, EventSource.IMPORT)
_ZONES = (
    UTC,
    ZoneInfo("Asia/Shanghai"),
    ZoneInfo("America/New_York"),
    timezone(timedelta(hours=8)),
)


class DealLifecycleMachine(RuleBasedStateMachine):
    """Drives deals through ``process`` and checks the stage machine's invariants."""

    process: ClassVar[Process | None] = None
    """The process under test; set it in a subclass (or override :meth:`make_process`)."""
    app: ClassVar[SalesProcess | None] = None
    """A plugin shell to send moves through; ``None`` calls the process directly."""
    start: ClassVar[datetime] = datetime(2026, 1, 5, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    """The machine's clock at the beginning of each run."""
    max_deals: ClassVar[int] = 4
    """How many deals one run opens at most."""

    def __init__(self) -> None:
        super().__init__()
        self.proc = self.make_process()
        self.deals: dict[str, Deal] = {}
        self.logged: dict[str, list[Activity]] = {}
        self.now = self.start
        self.moves = 0
        self.refusals = 0

    # --- hooks for subclasses --------------------------------------------------------------------
    def make_process(self) -> Process:
        """The process to drive; by default the class attribute ``process``."""
        if self.process is None:
            raise TypeError(f"{type(self).__name__} needs a `process` (or a make_process method)")
        return self.process

    def _advance(self, deal: Deal, to: str, **kw: Any) -> Deal:
        if self.app is not None:
            return self.app.advance(self.proc, deal, to, **kw)
        return self.proc.advance(deal, to, **kw)

    def _check(self, deal: Deal, to: str, **kw: Any) -> list[Problem]:
        if self.app is not None:
            return self.app.check(self.proc, deal, to, **kw)
        return self.proc.check(deal, to, **kw)

    # --- helpers -------------------------------------------------------------------------------------
    def _pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.deals)), label="deal")

    def _items(self) -> list[str]:
        found: set[str] = set()
        for s in self.proc.stages:
            found.update(s.playbook.checklist, s.entry.checklist, s.exit.checklist)
        return sorted(found) or ["follow_up"]

    def _done_activities(self, deal_id: str) -> list[Activity]:
        return [a for a in self.logged.get(deal_id, ()) if a.done]

    # --- rules -----------------------------------------------------------------------------------------
    @precondition(lambda self: len(self.deals) < self.max_deals)
    @rule(data=st.data())
    def open_deal(self, data: st.DataObject) -> None:
        deal_id = f"deal-{len(self.deals) + 1}"
        currency = self.proc.currency or data.draw(sps.currencies(), label="currency")
        fields: dict[str, Any] = {
            "amount": data.draw(st.none() | sps.money(currency=currency), label="amount"),
            "owner_id": data.draw(st.none() | st.sampled_from(("rep-1", "rep-2")), label="owner"),
            "name": data.draw(sps.names(max_size=6), label="name"),
        }
        if data.draw(st.booleans(), label="manual probability"):
            fields["probability"] = data.draw(sps.probabilities(places=2), label="probability")
        deal = self.proc.open_deal(deal_id, at=self.now, actor="tester", **fields)
        assert deal.version == 1
        assert isinstance(deal.events[0], DealCreated)
        assert deal.stage == self.proc.initial_stage.key
        if "probability" not in fields:
            assert deal.probability == self.proc.initial_stage.probability
            assert deal.probability_source is EventSource.STAGE_DEFAULT
        self.deals[deal_id] = deal

    @rule(
        seconds=st.integers(0, 3 * 86400),
        zone=st.sampled_from(_ZONES),
    )
    def advance_time(self, seconds: int, zone: Any) -> None:
        self.now = (self.now.astimezone(UTC) + timedelta(seconds=seconds)).astimezone(zone)

    @precondition(lambda self: self.deals)
    @rule(data=st.data())
    def attempt_move(self, data: st.DataObject) -> None:
        """Any target (allowed or not, even the current stage or a stage that does not exist)."""
        deal_id = self._pick(data)
        deal = self.deals[deal_id]
        targets = [s.key for s in self.proc.stages] + ["no-such-stage"]
        target = data.draw(st.sampled_from(targets), label="target")
        acts = (
            self._done_activities(deal_id)
            if data.draw(st.booleans(), label="with activities")
            else []
        )
        reason = data.draw(st.none() | st.just("price"), label="reason")
        self._move(deal, target, acts, reason)

    @precondition(lambda self: self.deals)
    @rule(data=st.data(), steps=st.integers(1, 4))
    def prepare_and_move(self, data: st.DataObject, steps: int) -> None:
        """Up to ``steps`` moves the graph allows, each after satisfying its criteria (by ticking
        checklist items, setting fields, logging done activities, giving a reason): each must
        succeed (unless a plugin of ``app`` vetoes it)."""
        deal_id = self._pick(data)
        for _ in range(steps):
            deal = self.deals[deal_id]
            targets = self.proc.graph_targets(deal.stage)
            if not targets:
                return
            ahead = [t for t in targets if self.proc.order(t) > self.proc.order(deal.stage)]
            onward: bool = data.draw(st.booleans(), label="onward")
            if ahead and onward:
                target = min(ahead, key=self.proc.order)  # the next stage: deals get far
            else:
                target = data.draw(st.sampled_from(targets), label="target")
            prep = prepare_move(self.proc, deal, target, at=self.now)
            if prep is None:
                return
            self.deals[deal_id] = prep.deal
            self.logged.setdefault(deal_id, []).extend(prep.activities)
            after = self._move(prep.deal, target, list(prep.activities), prep.reason)
            if after is None:
                assert self.app is not None, f"a prepared move {deal.stage} → {target} was refused"
                return

    @precondition(lambda self: self.deals)
    @rule(data=st.data(), done=st.booleans())
    def tick_checklist(self, data: st.DataObject, done: bool) -> None:
        deal_id = self._pick(data)
        item = data.draw(st.sampled_from(self._items()), label="item")
        before = self.deals[deal_id]
        after = before.with_checklist_item(item, done, at=self.now, actor="tester")
        assert (item in after.checklist) == done
        assert after.version == before.version + ((item in before.checklist) != done)
        self.deals[deal_id] = after

    @precondition(lambda self: self.deals)
    @rule(
        data=st.data(),
        kind=st.sampled_from(list(ActivityKind)),
        status=st.sampled_from(list(ActivityStatus)),
    )
    def log_activity(self, data: st.DataObject, kind: ActivityKind, status: ActivityStatus) -> None:
        deal_id = self._pick(data)
        n = sum(len(v) for v in self.logged.values())
        act = Activity(
            f"act-{n}", kind, self.now, subject=kind.value, status=status, deal_id=deal_id
        )
        self.logged.setdefault(deal_id, []).append(act)

    @precondition(lambda self: self.deals)
    @rule(data=st.data())
    def change_amount(self, data: st.DataObject) -> None:
        deal_id = self._pick(data)
        d = self.deals[deal_id]
        currency = d.amount.currency if d.amount is not None else (self.proc.currency or "CNY")
        amount: Money | None = data.draw(st.none() | sps.money(currency=currency), label="amount")
        after = d.with_amount(amount, at=self.now, actor="tester")
        assert after.amount == amount
        self.deals[deal_id] = after

    @precondition(lambda self: self.deals)
    @rule(data=st.data(), source=st.sampled_from(_SOURCES))
    def change_probability(self, data: st.DataObject, source: EventSource) -> None:
        deal_id = self._pick(data)
        p: Rate | None = data.draw(st.none() | sps.probabilities(places=2), label="probability")
        after = self.deals[deal_id].with_probability(p, at=self.now, actor="tester", source=source)
        assert after.probability == p
        if p is not None:
            assert after.probability_source is source
        self.deals[deal_id] = after

    @precondition(lambda self: self.deals)
    @rule(data=st.data(), days=st.none() | st.integers(-30, 120))
    def change_close_date(self, data: st.DataObject, days: int | None) -> None:
        deal_id = self._pick(data)
        new = None if days is None else self.now.date() + timedelta(days=days)
        after = self.deals[deal_id].with_close_date(new, at=self.now, actor="tester")
        assert after.close_date == new
        self.deals[deal_id] = after

    @precondition(lambda self: self.deals)
    @rule(data=st.data(), owner=st.none() | st.sampled_from(("rep-1", "rep-2", "rep-3")))
    def change_owner(self, data: st.DataObject, owner: str | None) -> None:
        deal_id = self._pick(data)
        after = self.deals[deal_id].with_owner(owner, at=self.now, actor="tester")
        assert after.owner_id == owner
        self.deals[deal_id] = after

    @precondition(lambda self: self.deals)
    @rule(data=st.data(), category=st.none() | st.sampled_from(list(ForecastCategory)))
    def change_forecast_category(
        self, data: st.DataObject, category: ForecastCategory | None
    ) -> None:
        deal_id = self._pick(data)
        after = self.deals[deal_id].with_forecast_category(category, at=self.now, actor="tester")
        assert after.forecast_category == category
        self.deals[deal_id] = after

    @precondition(lambda self: self.deals)
    @rule(data=st.data(), seconds=st.integers(1, 86400))
    def move_back_in_time(self, data: st.DataObject, seconds: int) -> None:
        """A move dated before the deal's last change is refused and changes nothing."""
        deal_id = self._pick(data)
        deal = self.deals[deal_id]
        targets = [s.key for s in self.proc.stages]
        target = data.draw(st.sampled_from(targets), label="target")
        earlier = deal.updated_at.astimezone(UTC) - timedelta(seconds=seconds)
        try:
            self._advance(deal, target, at=earlier, actor="tester")
        except DomainError:
            pass
        else:
            raise AssertionError(f"a move dated {earlier} before {deal.updated_at} was accepted")
        assert self.deals[deal_id] is deal

    # --- the move and its checks ------------------------------------------------------------------------
    def _move(
        self, deal: Deal, target: str, acts: list[Activity], reason: str | None
    ) -> Deal | None:
        kw: dict[str, Any] = {
            "at": self.now,
            "actor": "tester",
            "reason": reason,
            "activities": acts,
        }
        problems = self._check(deal, target, **kw)
        self._expect_listed(deal, target, acts, reason, problems)
        refused: TransitionNotAllowed | None = None
        try:
            after = self._advance(deal, target, **kw)
        except TransitionNotAllowed as e:
            refused = e
        if refused is not None:
            assert problems, (
                f"{deal.stage} → {target} refused though check() found nothing: {refused}"
            )
            own = [p for p in problems if p.code != "veto"]
            assert set(refused.unmet) == set(own or problems), (refused.unmet, problems)
            assert (refused.source, refused.target) == (deal.stage, target)
            assert refused.deal_id == deal.id
            assert self.deals[deal.id] is deal
            self.refusals += 1
            return None
        assert not problems, f"{deal.stage} → {target} accepted with unmet criteria: {problems}"
        self._check_accepted(deal, after, target)
        self.deals[deal.id] = after
        self.moves += 1
        return after

    def _expect_listed(
        self,
        deal: Deal,
        target: str,
        acts: list[Activity],
        reason: str | None,
        problems: list[Problem],
    ) -> None:
        """Every unmet entry criterion we can see on our own is among the problems."""
        if self.proc.edge(deal.stage, target) is None:
            assert problems, f"no transition {deal.stage} → {target}, yet no problem was found"
            return
        entry = self.proc.stage(target).entry
        paths = {p.path for p in problems}
        for item in entry.checklist:
            if item not in deal.checklist:
                assert f"entry.checklist.{item}" in paths, (item, problems)
        done = {a.kind.value for a in acts if a.done}
        for kind in entry.activities:
            if kind not in done:
                assert f"entry.activities.{kind}" in paths, (kind, problems)
        for f in entry.fields:
            if f in ("amount", "close_date", "owner_id", "account_id") and getattr(deal, f) is None:
                assert f"entry.fields.{f}" in paths, (f, problems)

    def _check_accepted(self, before: Deal, after: Deal, target: str) -> None:
        assert after.version == before.version + 1
        assert after.events[: before.version] == before.events
        ev = after.events[-1]
        assert isinstance(ev, StageChanged)
        assert (ev.from_stage, ev.to_stage) == (before.stage, target)
        assert after.stage == target
        edge = self.proc.edge(before.stage, target)
        assert edge is not None
        if before.is_closed:
            assert edge.reopen, f"closed deal left {before.stage} by a non-reopen transition"
        stage = self.proc.stage(target)
        if stage.kind is not StageKind.OPEN:
            assert after.probability == (Rate(1) if stage.kind is StageKind.WON else Rate(0))
            assert after.probability_source is EventSource.STAGE_DEFAULT
            assert after.closed_at == self.now
        else:
            self._check_policy(before, after, stage.probability)
        assert (
            after.status
            is {
                StageKind.OPEN: DealStatus.OPEN,
                StageKind.WON: DealStatus.WON,
                StageKind.LOST: DealStatus.LOST,
            }[stage.kind]
        )

    def _check_policy(self, before: Deal, after: Deal, default: Rate) -> None:
        policy = self.proc.probability_policy
        src = before.probability_source
        if before.probability is None or src in (None, EventSource.STAGE_DEFAULT):
            kept = False
        elif policy is ProbabilityPolicy.KEEP_MANUAL:
            kept = src in MANUAL_SOURCES
        elif policy is ProbabilityPolicy.KEEP_ANY:
            kept = True
        else:
            kept = False
        if kept:
            assert after.probability == before.probability, "a manual probability was overwritten"
            assert after.probability_source is src
        else:
            assert after.probability == default
            assert after.probability_source is EventSource.STAGE_DEFAULT

    # --- invariants ----------------------------------------------------------------------------------------
    @invariant()
    def replay_rebuilds_every_deal(self) -> None:
        for deal in self.deals.values():
            assert replay(deal.events) == deal

    @invariant()
    def versions_count_events_in_time_order(self) -> None:
        for deal in self.deals.values():
            assert deal.version == len(deal.events)
            instants = [e.at.astimezone(UTC) for e in deal.events]
            assert instants == sorted(instants)
            assert deal.updated_at == deal.events[-1].at

    @invariant()
    def probabilities_are_probabilities(self) -> None:
        for deal in self.deals.values():
            if deal.probability is not None:
                assert deal.probability.is_probability()
                assert deal.probability_source is not None
            for e in deal.events:
                if isinstance(e, StageChanged) and e.probability is not None:
                    assert e.probability.is_probability()
                    assert e.probability_source is not None

    @invariant()
    def closed_deals_leave_only_by_reopen(self) -> None:
        for deal in self.deals.values():
            status = deal.events[0].status if isinstance(deal.events[0], DealCreated) else None
            for e in deal.events[1:]:
                if not isinstance(e, StageChanged):
                    continue
                if status is not DealStatus.OPEN:
                    edge = self.proc.edge(e.from_stage, e.to_stage)
                    assert edge is not None, e
                    assert edge.reopen, e
                    assert isinstance(e, DealReopened) or self.proc.stage(e.to_stage).is_closed
                status = e.status
            assert status is deal.status
