"""Activities: required to-dos from the process, playbook tasks with business-day due dates,
overdue work and planned vs done."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesprocess import Activity, ActivityKind, MemoryStore, SalesProcess
from salesprocess import activities as acts
from salesprocess.errors import DomainError
from salesprocess.model import ActivityStatus
from salesprocess.periods import BusinessCalendar

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture
def b2b() -> Any:
    return SalesProcess().process("b2b")


def _first_contact(b2b: Any) -> Any:
    d = b2b.open_deal("D-1", at=T0, actor="wang", owner_id="wang", account_id="acme")
    d = d.with_checklist_item("icp_fit", at=T0, actor="wang")
    return b2b.advance(d, "first_contact", at=T0, actor="wang")


def test_required_todos_follow_the_next_stages_criteria(b2b: Any) -> None:
    d = _first_contact(b2b)
    got = [(t.kind, t.activity_kind, t.stage) for t in acts.required_todos(b2b, d)]
    assert got == [("activity", ActivityKind.CALL, "needs_analysis"), ("checklist", None, "needs_analysis")]
    call = Activity("a1", ActivityKind.CALL, T0 + timedelta(hours=1), deal_id="D-1")
    assert [t.kind for t in acts.required_todos(b2b, d, [call])] == ["checklist"]
    assert [t.kind for t in acts.required_todos(b2b, d, [call], asof=T0)] == ["activity", "checklist"]
    planned = Activity("a2", ActivityKind.CALL, T0 + timedelta(days=1), status="planned", deal_id="D-1")
    assert [t.kind for t in acts.required_todos(b2b, d, [planned])] == ["checklist"]
    # once the requirements are met the machine lets the deal move
    d2 = d.with_checklist_item("contact_made", at=T0 + timedelta(hours=2), actor="wang")
    assert acts.required_todos(b2b, d2, [call]) == []
    assert b2b.check(d2, "needs_analysis", activities=[call]) == []
    assert acts.next_stage(b2b, d2) == "needs_analysis"


def test_playbook_due_dates_skip_chinese_holidays_and_count_make_up_days(b2b: Any) -> None:
    d = _first_contact(b2b)
    (t,) = acts.playbook_tasks(b2b, d, at=datetime(2026, 9, 30, 9, tzinfo=UTC),
                               calendar=BusinessCalendar("CN"), assignees={"ae": "zhao"})
    # 1–7 October are holidays; 8, 9 and Saturday 10 October (a make-up day) are working days
    assert t.due.date() == date(2026, 10, 10)
    assert t.activity.owner_id == "zhao"
    assert t.activity.status is ActivityStatus.PLANNED
    (t2,) = acts.playbook_tasks(b2b, d, at=datetime(2026, 9, 30, 9, tzinfo=UTC))
    assert t2.due.date() == date(2026, 10, 5)
    assert t2.activity.owner_id == "wang"


def test_start_playbook_is_idempotent_and_keeps_plans(tmp_path: Path, b2b: Any) -> None:
    store = SalesProcess().open_store(tmp_path / "p.sqlite")
    d = b2b.open_deal("D-1", at=T0, actor="wang", owner_id="wang")
    store.save_deal(d, expected_version=None)
    first = acts.start_playbook(store, b2b, d, at=T0)
    assert [t.activity.id for t in first] == ["pb:D-1:lead:1", "pb:D-1:lead:2"]
    assert acts.start_playbook(store, b2b, d, at=T0 + timedelta(days=1)) == []
    assert len(list(store.all(Activity))) == 2
    # planned vs done: one on time, one late
    acts.complete(store, "pb:D-1:lead:1", at=first[0].due - timedelta(hours=1))
    acts.complete(store, "pb:D-1:lead:2", at=first[1].due + timedelta(days=1))
    (row,) = acts.planned_vs_done(store, asof=T0 + timedelta(days=30))
    assert (row.key, row.planned, row.done, row.on_time, row.late) == ("wang", 2, 2, 1, 1)
    # as known before the second was done, it was overdue
    (then,) = acts.planned_vs_done(store, asof=first[1].due + timedelta(hours=1))
    assert (then.done, then.overdue) == (1, 1)
    with pytest.raises(DomainError):
        acts.complete(store, "pb:D-1:lead:1", at=T0 + timedelta(days=40))
    store.close()


def test_todos_and_overdue(b2b: Any) -> None:
    store = MemoryStore()
    store.save_process(b2b)
    d = _first_contact(b2b)
    store.save_deal(d, expected_version=None)
    acts.plan_activity(store, Activity("f1", "email", T0 + timedelta(days=1), "send deck", "planned",
                                       deal_id="D-1", owner_id="wang"))
    acts.plan_activity(store, Activity("f2", "visit", T0 + timedelta(days=5), "visit", "planned",
                                       deal_id="D-1", owner_id="li"))
    got = acts.todos(store, asof=T0 + timedelta(days=2))
    assert [(t.kind, t.activity_id, t.overdue) for t in got[:2]] == [("task", "f1", True), ("task", "f2", False)]
    assert {t.kind for t in got[2:]} == {"activity", "checklist"}
    assert [t.activity_id for t in acts.overdue(store, asof=T0 + timedelta(days=2))] == ["f1"]
    assert [t.activity_id for t in acts.todos(store, asof=T0, owner_id="li")] == ["f2"]
    acts.cancel(store, "f2")
    (row,) = [r for r in acts.planned_vs_done(store, asof=T0 + timedelta(days=9)) if r.key == "li"]
    assert row.cancelled == 1


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.sampled_from(["done", "cancelled", "planned"]),
                          st.integers(-3, 3)), max_size=12),
       st.integers(0, 25))
def test_planned_vs_done_adds_up(plans: list[tuple[int, str, int]], asof_day: int) -> None:
    store = MemoryStore()
    for i, (due_day, status, delta) in enumerate(plans):
        due = T0 + timedelta(days=due_day)
        acts.plan_activity(store, Activity(f"a{i}", "call", due, status="planned", owner_id=f"r{i % 3}"))
        if status == "done":
            acts.complete(store, f"a{i}", at=due + timedelta(days=delta))
        elif status == "cancelled":
            acts.cancel(store, f"a{i}")
    rows = acts.planned_vs_done(store, asof=T0 + timedelta(days=asof_day))
    assert sum(r.planned for r in rows) == len(plans)
    for r in rows:
        assert r.planned == r.done + r.cancelled + r.overdue + r.open
        assert r.done == r.on_time + r.late
