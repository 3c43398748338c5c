"""The model: deals, events and replay; naive instants are refused wherever they enter."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesprocess import (
    Account,
    Activity,
    Deal,
    DealStatus,
    DomainError,
    EventSource,
    Money,
    NaiveDatetimeError,
    Rate,
    ReplayError,
    replay,
)
from salesprocess.model import (
    AmountChanged,
    ChecklistItemChanged,
    DealCreated,
    DealLost,
    DealReopened,
    FrozenMap,
    OwnerChanged,
    ProbabilityChanged,
    StageChanged,
    replay_until,
)
from salesprocess.testing import strategies as sps

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=SH)


def _deal(**kw: object) -> Deal:
    return Deal.create("d-1", process="b2b", stage="lead", at=T0, actor="王伟", **kw)  # type: ignore[arg-type]


# --- replay == state ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(sps.deal_histories())
def test_replay_of_generated_histories_rebuilds_the_deal(deal: Deal) -> None:
    again = replay(deal.events)
    assert again == deal
    assert again.version == len(deal.events) == deal.version
    assert again.updated_at == deal.events[-1].at
    # every prefix of a valid history is a valid history too
    for n in range(1, deal.version + 1):
        assert replay(deal.events[:n]).version == n


@settings(max_examples=40, deadline=None)
@given(sps.deal_histories(), st.data())
def test_replay_until_is_the_deal_as_known_then(deal: Deal, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, deal.version - 1))
    asof = deal.events[i].at
    known = replay_until(deal.events, asof)
    assert known is not None
    kept = [e for e in deal.events if e.at.astimezone(UTC) <= asof.astimezone(UTC)]
    assert known == replay(kept)
    assert replay_until(deal.events, deal.created_at.astimezone(UTC) - timedelta(seconds=1)) is None


def test_each_change_appends_one_event_and_keeps_the_old_deal() -> None:
    d0 = _deal(amount=Money("100000", "CNY"))
    d1 = d0.with_amount(Money("120000", "CNY"), at=T0 + timedelta(hours=1), actor="王伟")
    assert d0.amount == Money("100000", "CNY")
    assert d0.version == 1
    assert d1.version == 2
    ev = d1.events[-1]
    assert isinstance(ev, AmountChanged)
    assert (ev.old, ev.new) == (Money("100000", "CNY"), Money("120000", "CNY"))
    assert d1.events_since(d0) == (ev,)
    # a change to the same value appends nothing
    assert d1.with_amount(Money("120000.00", "CNY"), at=T0 + timedelta(hours=2), actor="x") is d1


def test_probability_change_records_its_source() -> None:
    d = _deal().with_probability("0.3", at=T0, actor="model", source=EventSource.MODEL)
    assert d.probability == Rate("0.3")
    assert d.probability_source is EventSource.MODEL
    assert isinstance(d.events[-1], ProbabilityChanged)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        d.with_probability("1.5", at=T0, actor="x")


def test_checklist_and_details() -> None:
    d = _deal(checklist=["icp_fit"]).with_checklist_item("contact_made", at=T0, actor="a")
    assert d.checklist == frozenset({"icp_fit", "contact_made"})
    d = d.with_checklist_item("icp_fit", False, at=T0, actor="a")
    assert d.checklist == frozenset({"contact_made"})
    assert isinstance(d.events[-1], ChecklistItemChanged)
    d = d.with_details(competitors=["用友"], custom={"预算": Money("5", "CNY")}, at=T0, actor="a")
    assert d.competitors == ("用友",)
    assert d.custom == FrozenMap({"预算": Money("5", "CNY")})
    with pytest.raises(DomainError, match="not a detail field"):
        d.with_details(amount=1, at=T0, actor="a")
    assert replay(d.events) == d


def test_create_validates_its_input() -> None:
    with pytest.raises(DomainError):
        Deal.create("", process="p", stage="s", at=T0, actor="a")
    with pytest.raises(DomainError, match="negative"):
        _deal(amount=Money("-1", "CNY"))
    with pytest.raises(TypeError):
        _deal(amount="100")
    with pytest.raises(TypeError):
        _deal(close_date=datetime(2026, 5, 1, tzinfo=SH))
    with pytest.raises(TypeError, match="float"):
        _deal(custom={"x": 1.5})


# --- naive instants are refused everywhere --------------------------------------------------------

NAIVE = datetime(2026, 3, 2, 9, 0)


def test_naive_datetimes_are_refused_everywhere() -> None:
    with pytest.raises(NaiveDatetimeError):
        Deal.create("d", process="p", stage="s", at=NAIVE, actor="a")
    d = _deal()
    for change in (
        lambda: d.with_amount(Money("1", "CNY"), at=NAIVE, actor="a"),
        lambda: d.with_owner("rep-1", at=NAIVE, actor="a"),
        lambda: d.with_close_date(date(2026, 5, 1), at=NAIVE, actor="a"),
        lambda: d.with_probability("0.5", at=NAIVE, actor="a"),
        lambda: d.with_checklist_item("x", at=NAIVE, actor="a"),
        lambda: d.with_details(name="n", at=NAIVE, actor="a"),
        lambda: Activity("a-1", "call", NAIVE),
        lambda: Account("acc-1", "客户", created_at=NAIVE),
        lambda: OwnerChanged("d-1", NAIVE, "a", EventSource.USER, None, "rep-1"),
        lambda: replay_until(d.events, NAIVE),
    ):
        with pytest.raises(NaiveDatetimeError):
            change()


# --- bad histories ---------------------------------------------------------------------------------


def test_replay_errors_on_bad_histories() -> None:
    d = _deal().with_owner("rep-1", at=T0 + timedelta(hours=1), actor="a")
    created, owner = d.events
    with pytest.raises(ReplayError, match="empty"):
        replay([])
    with pytest.raises(ReplayError) as info:
        replay([owner])
    assert info.value.index == 0
    with pytest.raises(ReplayError) as info:
        replay([created, created])
    assert info.value.index == 1
    other = OwnerChanged("d-2", T0 + timedelta(hours=2), "a", EventSource.USER, None, "x")
    with pytest.raises(ReplayError) as info:
        replay([created, other])
    assert (info.value.deal_id, info.value.index) == ("d-1", 1)
    early = OwnerChanged("d-1", T0 - timedelta(minutes=1), "a", EventSource.USER, None, "x")
    with pytest.raises(ReplayError) as info:
        replay([created, owner, early])
    assert info.value.index == 2


def test_events_out_of_order_are_refused() -> None:
    d = _deal().with_owner("rep-1", at=T0 + timedelta(hours=1), actor="a")
    with pytest.raises(DomainError, match="earlier than the last change"):
        d.with_owner("rep-2", at=T0, actor="a")
    with pytest.raises(DomainError):
        d.append(OwnerChanged("d-2", T0 + timedelta(hours=2), "a", EventSource.USER, None, "x"))
    with pytest.raises(DomainError, match="created only once"):
        d.append(d.events[0])


def test_time_order_compares_instants_across_a_dst_fold() -> None:
    # 01:50 EDT and, 20 minutes later, 01:10 EST: the same wall clock hour, in order in real time
    first = datetime(2025, 11, 2, 5, 50, tzinfo=UTC).astimezone(NY)
    later = (datetime(2025, 11, 2, 5, 50, tzinfo=UTC) + timedelta(minutes=20)).astimezone(NY)
    assert later.fold == 1
    d = Deal.create("d-ny", process="p", stage="s", at=first, actor="a")
    d = d.with_owner("rep-1", at=later, actor="a")
    assert replay(d.events) == d
    with pytest.raises(DomainError):
        d.with_owner("rep-2", at=later - timedelta(minutes=30), actor="a")


def test_equal_instants_in_different_zones_are_in_order() -> None:
    d = _deal().with_owner("rep-1", at=T0.astimezone(UTC), actor="a")
    assert d.version == 2
    assert replay(d.events) == d


# --- stage events ----------------------------------------------------------------------------------


def test_stage_events_set_status_and_lost_reason() -> None:
    d = _deal()
    lost = DealLost(
        "d-1",
        T0,
        "a",
        EventSource.USER,
        "lead",
        "lost",
        Rate(0),
        EventSource.STAGE_DEFAULT,
        None,
        "价格太高",
    )
    d = d.append(lost)
    assert d.status is DealStatus.LOST
    assert d.lost_reason == "价格太高"
    assert d.closed_at == T0
    back = DealReopened(
        "d-1",
        T0,
        "a",
        EventSource.USER,
        "lost",
        "lead",
        Rate("0.1"),
        EventSource.STAGE_DEFAULT,
        None,
        None,
    )
    d = d.append(back)
    assert d.is_open
    assert d.lost_reason is None
    assert d.closed_at is None
    assert isinstance(d.events[-1], StageChanged)
    assert isinstance(d.events[0], DealCreated)
    assert replay(d.events) == d


def test_weighted_amount() -> None:
    d = _deal(amount=Money("1000", "CNY"), probability="0.25")
    assert d.weighted_amount == Money("250", "CNY")
    assert _deal().weighted_amount is None
