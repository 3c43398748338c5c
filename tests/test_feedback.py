"""Feedback: responses linked to the deal's stage, complaints with history and resolution time,
improvements, problems tracked until solved, and the feedback KPIs through the KPI engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesprocess import Account, MemoryStore, SalesProcess
from salesprocess import feedback as fb
from salesprocess.errors import DomainError, NotFoundError
from salesprocess.kpi import SurveyResponse, compute

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path) -> Any:
    sp = SalesProcess()
    store = sp.open_store(tmp_path / "f.sqlite")
    b2b = sp.process("b2b")
    store.put(Account("acme", "Acme", owner_id="wang"), Account("beta", "Beta", owner_id="li"))
    d = b2b.open_deal("D-1", at=T0, actor="wang", owner_id="wang", account_id="acme")
    d = d.with_checklist_item("icp_fit", at=T0, actor="wang")
    d2 = b2b.advance(d, "first_contact", at=T0 + timedelta(days=10), actor="wang")
    store.save_deal(d2, expected_version=None)
    yield sp, store
    store.close()


def test_response_stage_is_the_deals_stage_when_answered(world: Any) -> None:
    sp, store = world
    seen: list[tuple[str, str]] = []

    class Listener:
        from salesprocess import hookimpl

        @hookimpl
        def salesprocess_feedback_received(self, kind: str, item: Any, store: Any) -> None:
            seen.append((kind, item.id))

    sp.register(Listener())
    early = sp.record_survey_response(store, SurveyResponse("R-1", "csat", 2, T0 + timedelta(days=1), "acme", "D-1"))
    late = sp.record_survey_response(store, SurveyResponse("R-2", "csat", 5, T0 + timedelta(days=11), "acme", "D-1"))
    assert (early.stage, late.stage) == ("lead", "first_contact")
    assert [r.id for r in fb.responses(store, kind="csat")] == ["R-1", "R-2"]
    assert [r.id for r in fb.responses(store, asof=T0 + timedelta(days=5))] == ["R-1"]
    assert seen == [("survey_response", "R-1"), ("survey_response", "R-2")]
    fb.save_survey(store, fb.Survey("q-nps", "nps", {"en": "Recommend us?"}))
    with pytest.raises(DomainError):
        fb.record_response(store, SurveyResponse("R-3", "csat", 3, T0, "acme"), survey_id="q-nps")
    with pytest.raises(NotFoundError):
        fb.record_response(store, SurveyResponse("R-3", "csat", 3, T0, "acme"), survey_id="nope")


def test_complaint_lifecycle_and_problems_until_solved(world: Any) -> None:
    sp, store = world
    sp.open_complaint(store, fb.Complaint("C-1", "acme", T0, "wrong invoice", owner_id="liu"))
    with pytest.raises(DomainError):
        fb.change_complaint(store, "C-1", "resolved", at=T0 + timedelta(days=1))  # no cause yet
    fb.change_complaint(store, "C-1", "in_progress", at=T0 + timedelta(days=1))
    fb.change_complaint(store, "C-1", "resolved", at=T0 + timedelta(days=3), root_cause="billing",
                        resolution="reissued")
    c = fb.complaint(store, "C-1")
    assert c.resolution_days() == Decimal(3)
    assert c.resolution_days(T0 + timedelta(days=2)) is None
    assert c.status_at(T0 + timedelta(days=2)) is fb.ComplaintStatus.IN_PROGRESS
    fb.add_improvement(store, fb.Improvement("I-1", "validate invoices", T0 + timedelta(days=4),
                                             [("complaint", "C-1")]))
    (p,) = fb.unsolved(store, asof=T0 + timedelta(days=5))
    assert (p.id, p.state, p.improvements) == ("C-1", "in_progress", ("I-1",))
    fb.change_improvement(store, "I-1", "done", at=T0 + timedelta(days=9))
    assert fb.unsolved(store, asof=T0 + timedelta(days=10)) == []
    (solved,) = fb.problems(store, asof=T0 + timedelta(days=10))
    assert solved.solved_at == T0 + timedelta(days=9)
    # reopening makes it a problem again
    fb.change_complaint(store, "C-1", "open", at=T0 + timedelta(days=12))
    assert [p.id for p in fb.unsolved(store, asof=T0 + timedelta(days=13))] == ["C-1"]
    assert fb.complaint(store, "C-1").resolved_at() is None
    with pytest.raises(NotFoundError):
        fb.add_improvement(store, fb.Improvement("I-2", "x", T0, [("response", "none")]))
    assert fb.root_causes(store) == [("billing", 1, None)]
    assert c.to_risk().resolved_at == T0 + timedelta(days=3)


def test_low_scores_are_problems(world: Any) -> None:
    _, store = world
    fb.record_response(store, SurveyResponse("N-1", "nps", 6, T0, "acme"))
    fb.record_response(store, SurveyResponse("N-2", "nps", 7, T0, "acme"))
    fb.record_response(store, SurveyResponse("C-1", "ces", 3, T0, "beta"))
    assert [p.id for p in fb.unsolved(store, asof=T0)] == ["C-1", "N-1"]


def test_feedback_kpis_through_the_engine(world: Any) -> None:
    sp, store = world
    for i, (acc, days) in enumerate([("acme", 2), ("acme", 4), ("beta", 10)]):
        sp.open_complaint(store, fb.Complaint(f"K-{i}", acc, T0, deal_id="D-1" if acc == "acme" else None))
        fb.change_complaint(store, f"K-{i}", "closed", at=T0 + timedelta(days=days))
    fb.record_response(store, SurveyResponse("R-1", "nps", 10, T0, "acme", "D-1"))
    inputs = fb.kpi_inputs(store)
    t = compute(store, ["complaint_resolution_time", "complaints", "nps"], registry=sp.kpis,
                inputs=inputs, asof=T0 + timedelta(days=30))
    (row,) = t.rows
    assert row.values["complaint_resolution_time"] == Decimal("5.3333")
    assert row.values["complaints"] == 3
    assert row.values["nps"] == Decimal(100)
    by = compute(store, ["complaints", "complaint_resolution_time"], registry=sp.kpis, inputs=inputs,
                 by=["owner"], asof=T0 + timedelta(days=30))
    assert {r.key["owner"]: r.values["complaints"] for r in by.rows} == {"wang": 2}
    assert {r.key["owner"]: r.values["complaint_resolution_time"] for r in by.rows} == {"wang": Decimal(3)}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.booleans(), st.integers(0, 10)), min_size=1, max_size=8))
def test_resolution_time_is_the_mean_of_settled_complaints(items: list[tuple[int, bool, int]]) -> None:
    store = MemoryStore()
    sp = SalesProcess()
    expected = []
    for i, (start, settle, days) in enumerate(items):
        at = T0 + timedelta(days=start)
        fb.open_complaint(store, fb.Complaint(f"K{i}", "acme", at))
        if settle:
            fb.change_complaint(store, f"K{i}", "closed", at=at + timedelta(days=days))
            expected.append(Decimal(days))
    t = compute(store, ["complaint_resolution_time"], registry=sp.kpis, inputs=fb.kpi_inputs(store),
                asof=T0 + timedelta(days=100))
    value = t.rows[0].values["complaint_resolution_time"] if t.rows else None
    if expected:
        assert value is not None
        assert abs(value - sum(expected) / len(expected)) < Decimal("0.0001")
    else:
        assert value is None
