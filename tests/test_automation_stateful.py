"""Time moves forward over a small generated company; every rule fires exactly once per occurrence.

The machine keeps one SQLite file. Steps move the clock and run the due rules, add survey answers
and done activities as time passes, make the notifier fail for a while, and restart (a new
engine over the same file, reopened). The notifier stands for the outside world: it survives
restarts. After every step:

- no message reached the notifier twice, and every message a fire record names was delivered or
  still waits in the outbox (nothing lost);
- a dry run at the last instant finds nothing left to fire (every occurrence due was handled);
- the event rules fired for exactly the occurrences an independent count of the facts gives:
  one per deal created, one per stage entered, one per low survey answer.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from salesprocess import SalesProcess
from salesprocess.automation import (
    FIRE_KIND,
    OUTBOX_KIND,
    Action,
    Condition,
    MemoryNotifier,
    Rule,
    RuleEngine,
    RuleSet,
    Trigger,
)
from salesprocess.feedback import record_response
from salesprocess.generate import generate_company, write_company
from salesprocess.kpi import SurveyResponse
from salesprocess.model import Activity, ActivityKind, DealCreated, StageChanged
from salesprocess.periods import BusinessCalendar

START = date(2025, 1, 1)


def _notify(to: str = "owner") -> Action:
    return Action("notify", {"via": "mem", "to": [to], "subject": {"zh": "{deal.name} 提醒", "en": "{deal.name}"},
                             "body": "{rule.id}"})


def _task() -> Action:
    return Action("create_task", {"title": "follow up {deal.name}", "due_days": 1})


RULES = RuleSet(
    (
        Rule("created", Trigger("deal_created"), [_task()]),
        Rule("entered", Trigger("stage_entered"), [_notify()]),
        Rule("idle", Trigger("no_activity", {"days": 3}), [_notify()]),
        Rule("closing", Trigger("date", {"field": "close_date", "offset_days": -2}), [_task()],
             [Condition("deal.status", "==", "open")]),
        Rule("holiday", Trigger("holiday", {"country": "CN", "names": ["Spring Festival", "National Day"]}),
             [_notify("contacts")], [Condition("account.country", "in", ["CN", "HK", "TW"])]),
        Rule("anniversary", Trigger("anniversary"), [_notify("account_owner")]),
        Rule("detractor", Trigger("survey_below", {"survey": "nps", "threshold": 7}), [_task(), _notify()]),
    ),
    tz=UTC,
    calendar=BusinessCalendar("CN"),
)


class Automation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="sp-auto-"))
        self.path = self.dir / "company.sqlite"
        self.sp = SalesProcess()
        self.notifier = MemoryNotifier()  # the outside world: survives restarts
        self.store: Any = None
        self.engine: RuleEngine | None = None
        self.now = datetime.combine(START, time(8), UTC)
        self.last_run: datetime | None = None
        self.deal_ids: list[str] = []
        self.responses = 0
        self.activities = 0

    @initialize(seed=st.integers(0, 40))
    def company(self, seed: int) -> None:
        c = generate_company(deals=6, seed=seed, start=START, months=8)
        self.store = self.sp.open_store(self.path)
        write_company(self.store, c)
        self.deal_ids = [d.id for d in c.deals]
        self.engine = RuleEngine(RULES)

    @rule(days=st.integers(1, 75))
    def advance(self, days: int) -> None:
        assert self.engine is not None
        self.now += timedelta(days=days)
        self.engine.run_due(self.now, self.store, {"mem": self.notifier})
        self.last_run = self.now

    @rule()
    def rerun_same_instant(self) -> None:
        if self.last_run is None:
            return
        assert self.engine is not None
        report = self.engine.run_due(self.last_run, self.store, {"mem": self.notifier})
        assert report.fired == ()

    @rule()
    def restart(self) -> None:
        self.store.close()
        self.store = self.sp.open_store(self.path)
        self.engine = RuleEngine(RULES)

    @rule(n=st.integers(1, 4))
    def outage(self, n: int) -> None:
        self.notifier.fail_next = n

    @rule(i=st.integers(0, 5), score=st.integers(0, 10), minutes=st.integers(1, 600))
    def survey_answer(self, i: int, score: int, minutes: int) -> None:
        deal = self.store.get_deal(self.deal_ids[i % len(self.deal_ids)])
        at = self.now + timedelta(minutes=minutes)
        self.responses += 1
        record_response(self.store, SurveyResponse(f"r{self.responses}", "nps", score, at,
                                                   deal.account_id, deal.id))

    @rule(i=st.integers(0, 5), minutes=st.integers(1, 600))
    def done_activity(self, i: int, minutes: int) -> None:
        deal_id = self.deal_ids[i % len(self.deal_ids)]
        self.activities += 1
        self.store.put(Activity(f"x{self.activities}", ActivityKind.CALL, self.now + timedelta(minutes=minutes),
                                deal_id=deal_id))

    # --- invariants ----------------------------------------------------------------------------
    @invariant()
    def nothing_sent_twice_nothing_lost(self) -> None:
        if self.store is None:
            return
        ids = [m.id for m in self.notifier.sent]
        assert len(ids) == len(set(ids))
        named = set()
        for _, doc in self.store.documents(FIRE_KIND):
            named.update(doc["messages"])
        waiting = {k for k, _ in self.store.documents(OUTBOX_KIND)}
        assert set(ids) | waiting == named
        assert not set(ids) & waiting

    @precondition(lambda self: self.last_run is not None)
    @invariant()
    def nothing_left_to_fire(self) -> None:
        assert self.engine is not None
        assert self.last_run is not None
        report = RuleEngine(RULES).run_due(self.last_run, self.store, {}, dry_run=True)
        assert report.fired == (), [f.key for f in report.fired]

    @precondition(lambda self: self.last_run is not None)
    @invariant()
    def event_rules_fired_once_per_fact(self) -> None:
        asof = self.last_run
        assert asof is not None
        fired: dict[str, set[str]] = {}
        for _key, doc in self.store.documents(FIRE_KIND):
            fired.setdefault(doc["rule"], set()).add(doc["occurrence"])
        created = set()
        entered = set()
        for d in self.store.deals():
            for i, e in enumerate(d.events):
                if e.at > asof:
                    break
                if isinstance(e, DealCreated):
                    created.add(d.id)
                    entered.add((d.id, i))
                elif isinstance(e, StageChanged):
                    entered.add((d.id, i))
        assert fired.get("created", set()) == {f"deal:{d}:created" for d in created}
        assert fired.get("entered", set()) == {f"deal:{d}:ev{i}" for d, i in entered}
        low = {k for k, doc in self.store.documents("survey_response")
               if doc["score"] < 7 and datetime.fromisoformat(doc["at"]) <= asof}
        assert fired.get("detractor", set()) == {f"response:{k}" for k in low}

    def teardown(self) -> None:
        if self.store is not None:
            self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


Automation.TestCase.settings = settings(
    max_examples=12, stateful_step_count=10, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAutomation = Automation.TestCase
