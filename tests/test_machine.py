"""The stage machine: moves, every unmet criterion, dry runs, probability precedence, reopen."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesprocess import (
    Activity,
    Deal,
    DealStatus,
    DomainError,
    EventSource,
    Money,
    NaiveDatetimeError,
    ProbabilityPolicy,
    Process,
    Rate,
    TransitionNotAllowed,
    processes,
    replay,
)
from salesprocess.model import DealLost, DealReopened, DealWon, StageChanged
from salesprocess.testing import strategies as sps

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=SH)
B2B = processes.load("b2b")
SAAS = processes.load("saas")


def _t(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def _saas_deal(**kw: object) -> Deal:
    return SAAS.open_deal("s-1", at=T0, actor="王伟", **kw)  # type: ignore[arg-type]


def _b2b_deal(**kw: object) -> Deal:
    return B2B.open_deal("b-1", at=T0, actor="王伟", **kw)  # type: ignore[arg-type]


# --- moves ------------------------------------------------------------------------------------------


def test_advance_returns_the_new_deal_with_its_new_event() -> None:
    d0 = _saas_deal(owner_id="rep-1")
    d1 = SAAS.advance(d0, "demo", at=_t(1), actor="王伟", reason="booked")
    assert d0.stage == "discovery"
    assert d0.version == 1
    assert d1.stage == "demo"
    assert d1.version == 2
    ev = d1.events[-1]
    assert type(ev) is StageChanged
    assert (ev.from_stage, ev.to_stage, ev.at, ev.actor, ev.reason) == (
        "discovery",
        "demo",
        _t(1),
        "王伟",
        "booked",
    )
    assert d1.stage_entered_at == _t(1)
    assert d1.probability == SAAS.stage("demo").probability
    assert d1.forecast_category == SAAS.stage("demo").effective_forecast_category
    assert replay(d1.events) == d1


def test_won_and_lost_events() -> None:
    d = _saas_deal(amount=Money("1200", "USD"))
    won = SAAS.advance(d, "closed_won", at=_t(1), actor="a")
    assert isinstance(won.events[-1], DealWon)
    assert won.status is DealStatus.WON
    assert won.closed_at == _t(1)
    lost = SAAS.advance(d, "closed_lost", at=_t(1), actor="a", reason="budget")
    assert isinstance(lost.events[-1], DealLost)
    assert lost.lost_reason == "budget"
    assert lost.status is DealStatus.LOST


def test_every_unmet_criterion_is_reported() -> None:
    d = _b2b_deal()
    for stage in ("first_contact", "needs_analysis"):
        d = B2B.advance(
            d.with_owner("rep-1", at=T0, actor="a")
            .with_checklist_item("icp_fit", at=T0, actor="a")
            .with_checklist_item("contact_made", at=T0, actor="a")
            .with_details(account_id="acc-1", at=T0, actor="a"),
            stage,
            at=T0,
            actor="a",
            activities=[Activity("c-1", "call", T0, deal_id="b-1")],
        )
    assert d.stage == "needs_analysis"
    with pytest.raises(TransitionNotAllowed) as info:
        B2B.advance(d, "solution", at=_t(1), actor="a")
    e = info.value
    assert (e.deal_id, e.source, e.target) == ("b-1", "needs_analysis", "solution")
    assert {(p.path, p.code) for p in e.unmet} == {
        ("entry.fields.amount", "field"),
        ("entry.fields.close_date", "field"),
        ("entry.activities.meeting", "activity"),
        ("entry.checklist.budget_confirmed", "checklist"),
        ("entry.checklist.decision_maker_known", "checklist"),
    }
    assert "budget_confirmed" in str(e)
    assert B2B.check(d, "solution", at=_t(1)) == list(e.unmet)


def test_exit_criteria_and_guards_are_reported_together() -> None:
    data = SAAS.to_dict()
    data["stages"][0]["exit"] = {"checklist": ["qualified"], "guards": ["has_contact"]}
    data["stages"][1]["entry"] = {"fields": ["owner_id"], "guards": ["multi_threaded"]}
    p = Process.from_dict(data)
    d = p.open_deal("x", at=T0, actor="a")
    problems = p.check(d, "demo", at=T0)
    assert {(q.path, q.code) for q in problems} == {
        ("exit.checklist.qualified", "checklist"),
        ("exit.guards.has_contact", "guard"),
        ("entry.fields.owner_id", "field"),
        ("entry.guards.multi_threaded", "guard"),
    }
    # going backwards does not check the exit criteria of the stage left
    ahead = p.advance(
        d.with_checklist_item("qualified", at=T0, actor="a")
        .with_details(contact_ids=["c1", "c2"], at=T0, actor="a")
        .with_owner("r", at=T0, actor="a"),
        "demo",
        at=T0,
        actor="a",
    )
    assert p.check(ahead, "discovery", at=T0) == []


def test_check_is_a_dry_run_and_allowed_targets_lists_moves_that_would_pass() -> None:
    d = _saas_deal()
    before = replay(d.events)
    assert [p.code for p in SAAS.check(d, "demo")] == ["field"]
    assert d == before  # nothing changed
    assert SAAS.allowed_targets(d) == ["closed_lost"]
    d = d.with_owner("rep-1", at=T0, actor="a")
    assert SAAS.allowed_targets(d) == ["demo", "closed_lost"]
    meeting = Activity("m-1", "meeting", T0, deal_id="s-1")
    assert SAAS.allowed_targets(d, activities=[meeting]) == ["demo", "trial", "closed_lost"]
    planned = attrs.evolve(meeting, status="planned")
    assert "trial" not in SAAS.allowed_targets(
        d, activities=[planned]
    )  # only done activities count
    other = attrs.evolve(meeting, deal_id="another-deal")
    assert "trial" not in SAAS.allowed_targets(d, activities=[other])


def test_moves_without_an_edge() -> None:
    d = _b2b_deal(owner_id="r")
    with pytest.raises(TransitionNotAllowed) as info:
        B2B.advance(d, "quote", at=T0, actor="a")  # no skipping in the b2b flow
    assert [p.code for p in info.value.unmet] == ["transition"]
    assert [p.code for p in B2B.check(d, "lead")] == ["same_stage"]
    assert [p.code for p in B2B.check(d, "nowhere")] == ["unknown_stage"]
    with pytest.raises(DomainError, match="follows process"):
        SAAS.advance(d, "demo", at=T0, actor="a")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_move_is_accepted_exactly_when_check_finds_nothing(data: st.DataObject) -> None:
    p = data.draw(sps.processes(with_criteria=True))
    d = data.draw(sps.deal_histories(process=p, max_steps=5))
    target = data.draw(st.sampled_from([s.key for s in p.stages]))
    at = d.updated_at.astimezone(UTC) + timedelta(hours=1)
    problems = p.check(d, target, at=at)
    if problems:
        with pytest.raises(TransitionNotAllowed) as info:
            p.advance(d, target, at=at, actor="a")
        assert list(info.value.unmet) == problems
        assert target not in p.allowed_targets(d, at=at)
        return
    after = p.advance(d, target, at=at, actor="a")
    assert after.stage == target
    assert target in p.allowed_targets(d, at=at)
    assert replay(after.events) == after


# --- time -------------------------------------------------------------------------------------------


def test_a_move_earlier_than_the_last_change_is_refused() -> None:
    d = _saas_deal().with_owner("rep-1", at=_t(5), actor="a")
    with pytest.raises(DomainError, match="earlier than its last change"):
        SAAS.advance(d, "demo", at=_t(4), actor="a")
    assert SAAS.advance(d, "demo", at=_t(5), actor="a").stage == "demo"  # the same instant is fine


def test_naive_instants_are_refused_by_the_machine() -> None:
    d = _saas_deal(owner_id="r")
    naive = datetime(2026, 3, 3, 9, 0)
    with pytest.raises(NaiveDatetimeError):
        SAAS.advance(d, "demo", at=naive, actor="a")
    with pytest.raises(NaiveDatetimeError):
        SAAS.check(d, "demo", at=naive)
    with pytest.raises(NaiveDatetimeError):
        SAAS.allowed_targets(d, at=naive)
    with pytest.raises(NaiveDatetimeError):
        SAAS.open_deal("n", at=naive, actor="a")


def test_close_date_guard_uses_the_move_instant() -> None:
    data = SAAS.to_dict()
    data["stages"][4]["entry"] = {"guards": ["close_date_not_past"]}
    p = Process.from_dict(data)
    d = p.open_deal("g", at=T0, actor="a", close_date=date(2026, 3, 10))
    assert p.check(d, "closed_won", at=datetime(2026, 3, 10, 23, 0, tzinfo=SH)) == []
    late = p.check(d, "closed_won", at=datetime(2026, 3, 11, 0, 30, tzinfo=SH))
    assert [q.code for q in late] == ["guard"]
    assert "2026-03-10" in late[0].message


# --- probability precedence ---------------------------------------------------------------------------


def _with_policy(policy: ProbabilityPolicy) -> Process:
    return attrs.evolve(SAAS, probability_policy=policy)


@pytest.mark.parametrize(
    "source", [EventSource.USER, EventSource.MODEL, EventSource.CRM_SYNC, EventSource.IMPORT]
)
def test_keep_manual_keeps_a_manual_probability_on_open_moves(source: EventSource) -> None:
    d = _saas_deal(owner_id="r").with_probability("0.42", at=T0, actor="a", source=source)
    moved = SAAS.advance(d, "demo", at=_t(1), actor="a")
    assert moved.probability == Rate("0.42")
    assert moved.probability_source is source
    ev = moved.events[-1]
    assert isinstance(ev, StageChanged)
    assert (ev.probability, ev.probability_source) == (Rate("0.42"), source)


def test_keep_manual_replaces_stage_defaults_and_rule_probabilities() -> None:
    d = _saas_deal(owner_id="r")
    assert d.probability_source is EventSource.STAGE_DEFAULT
    moved = SAAS.advance(d, "demo", at=_t(1), actor="a")
    assert (moved.probability, moved.probability_source) == (
        Rate("0.30"),
        EventSource.STAGE_DEFAULT,
    )
    ruled = d.with_probability("0.9", at=T0, actor="rules", source=EventSource.RULE)
    moved = SAAS.advance(ruled, "demo", at=_t(1), actor="a")
    assert (moved.probability, moved.probability_source) == (
        Rate("0.30"),
        EventSource.STAGE_DEFAULT,
    )


def test_stage_default_policy_always_applies_the_stage_probability() -> None:
    p = _with_policy(ProbabilityPolicy.STAGE_DEFAULT)
    d = p.open_deal("x", at=T0, actor="a", owner_id="r").with_probability("0.9", at=T0, actor="a")
    moved = p.advance(d, "demo", at=_t(1), actor="a")
    assert (moved.probability, moved.probability_source) == (
        Rate("0.30"),
        EventSource.STAGE_DEFAULT,
    )


def test_keep_any_keeps_rule_probabilities() -> None:
    p = _with_policy(ProbabilityPolicy.KEEP_ANY)
    d = p.open_deal("x", at=T0, actor="a", owner_id="r").with_probability(
        "0.9", at=T0, actor="rules", source=EventSource.RULE
    )
    moved = p.advance(d, "demo", at=_t(1), actor="a")
    assert (moved.probability, moved.probability_source) == (Rate("0.9"), EventSource.RULE)


@pytest.mark.parametrize("policy", list(ProbabilityPolicy))
def test_closed_stages_force_one_and_zero(policy: ProbabilityPolicy) -> None:
    p = _with_policy(policy)
    d = p.open_deal("x", at=T0, actor="a", amount=Money("9", "USD")).with_probability(
        "0.5", at=T0, actor="a"
    )
    won = p.advance(d, "closed_won", at=_t(1), actor="a")
    lost = p.advance(d, "closed_lost", at=_t(1), actor="a")
    assert (won.probability, won.probability_source) == (Rate(1), EventSource.STAGE_DEFAULT)
    assert (lost.probability, lost.probability_source) == (Rate(0), EventSource.STAGE_DEFAULT)


def test_a_manual_probability_at_opening_is_kept() -> None:
    d = _saas_deal(owner_id="r", probability="0.6")
    assert d.probability_source is EventSource.USER
    assert SAAS.advance(d, "demo", at=_t(1), actor="a").probability == Rate("0.6")


# --- closed deals move only through reopen -------------------------------------------------------------


def test_closed_deals_move_only_through_reopen() -> None:
    d = _b2b_deal(owner_id="r")
    lost = B2B.advance(d, "lost", at=_t(1), actor="a", reason="价格")
    assert lost.lost_reason == "价格"
    assert B2B.graph_targets("lost") == ("negotiation",)
    problems = B2B.check(lost, "lead", at=_t(2))
    assert [p.code for p in problems] == ["closed"]
    with pytest.raises(TransitionNotAllowed) as info:
        B2B.advance(lost, "lead", at=_t(2), actor="a")
    assert info.value.unmet[0].code == "closed"
    ready = lost.with_checklist_item("quote_approved", at=_t(2), actor="a").with_close_date(
        date(2026, 6, 30), at=_t(2), actor="a"
    )
    back = B2B.advance(ready, "negotiation", at=_t(3), actor="a")
    assert isinstance(back.events[-1], DealReopened)
    assert back.is_open
    assert back.lost_reason is None
    assert back.closed_at is None
    assert back.probability == B2B.stage("negotiation").probability
    assert replay(back.events) == back


def test_reopen_from_won_clears_a_lost_reason_as_replay_does() -> None:
    won = SAAS.advance(_saas_deal(amount=Money("5", "USD")), "closed_won", at=_t(1), actor="a")
    noted = won.with_details(lost_reason="was lost once", at=_t(2), actor="a")
    reopened = SAAS.advance(noted, "discovery", at=_t(3), actor="a")
    assert reopened.lost_reason is None
    assert replay(reopened.events) == reopened


def test_without_reopen_a_closed_deal_stays_closed() -> None:
    p = attrs.evolve(SAAS, allow_reopen=False)
    won = p.advance(
        p.open_deal("x", at=T0, actor="a", amount=Money("5", "USD")), "closed_won", at=T0, actor="a"
    )
    assert p.allowed_targets(won) == []
    for s in p.stages:
        assert p.check(won, s.key) != []
