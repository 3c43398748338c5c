"""The stage machine's fast paths give what the general paths give.

``Process.open_deal`` without detail fields builds the deal directly instead of going through
:meth:`Deal.create`; ``Process.advance`` runs built-in guards that read only the deal without
building a ``Move``. Both must agree with the general path on results and on errors.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesprocess import Deal, EventSource, Money, Process, TransitionNotAllowed, processes, replay
from salesprocess.guards import BUILTIN_GUARDS, DEAL_ONLY, GuardRegistry, Move
from salesprocess.testing import strategies as sps

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SAAS = processes.load("saas")


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except Exception as e:  # the same error type and message on both paths
        return "error", (type(e), str(e), getattr(e, "unmet", None))


# --- open_deal ------------------------------------------------------------------------------------

_amounts = st.none() | sps.money(currency="USD") | st.builds(
    Money, st.decimals(min_value=-1000, max_value=1000, places=2), st.just("EUR")
)
_close_dates = st.none() | sps.dates() | st.just(datetime(2026, 5, 1, tzinfo=UTC)) | st.just("2026-05-01")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    p=sps.processes(),
    data=st.data(),
    deal_id=st.sampled_from(["d-1", "商机-7", ""]),
    at=sps.aware_datetimes() | st.just(datetime(2026, 1, 1)),
    source=st.sampled_from([*EventSource, "import"]),
    name=sps.names(),
    amount=_amounts,
    close_date=_close_dates,
    owner_id=st.none() | st.just("rep-1"),
    account_id=st.none() | st.just("acc-1"),
)
def test_open_deal_fast_path_equals_deal_create(
    p: Process, data: st.DataObject, deal_id: str, at: datetime, source: Any, name: str,
    amount: Money | None, close_date: Any, owner_id: str | None, account_id: str | None,
) -> None:
    stage = data.draw(st.none() | st.sampled_from([s.key for s in p.stages]))
    kw: dict[str, Any] = {
        "name": name, "amount": amount, "close_date": close_date, "owner_id": owner_id,
        "account_id": account_id,
    }
    fast = _outcome(lambda: p.open_deal(deal_id, at=at, actor="a", source=source, stage=stage, **kw))
    # an empty detail field sends open_deal down the general path (Deal.create)
    general = _outcome(
        lambda: p.open_deal(deal_id, at=at, actor="a", source=source, stage=stage, competitors=(), **kw)
    )
    key = stage or p.initial_stage.key
    st_ = p.stage(key)
    direct = _outcome(lambda: Deal.create(
        deal_id, process=p.key, process_version=p.version, stage=key,
        status=p._opening[key][0], at=at, actor="a", source=source,
        probability=st_.probability, probability_source=EventSource.STAGE_DEFAULT,
        forecast_category=st_.effective_forecast_category, **kw,
    ))
    assert fast == general == direct
    if fast[0] == "ok":
        d = fast[1]
        assert replay(d.events) == d
        assert type(d.events[0].source) is EventSource


def test_open_deal_errors_are_those_of_deal_create() -> None:
    p = SAAS
    bad: list[dict[str, Any]] = [
        {"id": ""},
        {"at": datetime(2026, 1, 1)},
        {"amount": Decimal("5")},
        {"amount": Money("-1", "USD")},
        {"close_date": datetime(2026, 1, 1, tzinfo=UTC)},
    ]
    for b in bad:
        kw: dict[str, Any] = {"id": "d-1", "at": T0, "actor": "a"} | b
        fast = _outcome(lambda kw=kw: p.open_deal(kw.pop("id"), **kw))
        kw = {"id": "d-1", "at": T0, "actor": "a"} | b
        general = _outcome(lambda kw=kw: p.open_deal(kw.pop("id"), competitors=(), **kw))
        assert fast[0] == "error"
        assert fast == general


# --- advance with deal-only guards ----------------------------------------------------------------


def _wrapped_registry() -> GuardRegistry:
    """The built-in guards under new function objects: the machine cannot tell they read only the
    deal, so it takes the general path (a Move for every check)."""
    reg = GuardRegistry()
    for name, (func, desc) in BUILTIN_GUARDS.items():
        reg.register(name, lambda deal, move, _f=func: _f(deal, move), desc)
    return reg


@st.composite
def _guarded_pair(draw: st.DrawFn) -> tuple[Process, Process]:
    p = draw(sps.processes(linear=False))
    names = sorted(BUILTIN_GUARDS)
    trans = tuple(
        attrs.evolve(t, guards=tuple(draw(st.lists(st.sampled_from(names), max_size=3, unique=True))))
        for t in p.transitions
    )
    fast = attrs.evolve(p, transitions=trans)
    general = Process.from_dict(fast.to_dict(), guards=_wrapped_registry())
    return fast, general


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=_guarded_pair(), data=st.data())
def test_advance_with_deal_only_guards_equals_the_general_path(
    pair: tuple[Process, Process], data: st.DataObject
) -> None:
    fast, general = pair
    d = data.draw(sps.deal_histories(process=fast, max_steps=4))
    target = data.draw(st.sampled_from([s.key for s in fast.stages]))
    at = d.updated_at.astimezone(UTC) + timedelta(hours=data.draw(st.integers(-2, 48)))
    reason = data.draw(st.none() | st.just("budget"))
    a = _outcome(lambda: fast.advance(d, target, at=at, actor="a", reason=reason))
    b = _outcome(lambda: general.advance(d, target, at=at, actor="a", reason=reason))
    assert a == b
    if a[0] == "ok":
        assert replay(a[1].events) == a[1]
    else:
        assert fast.check(d, target, at=at, reason=reason) == general.check(d, target, at=at, reason=reason)


def test_every_move_free_builtin_agrees_with_its_guard() -> None:
    p = SAAS
    move = Move(p, "a", "b", T0, "x", None, ())
    deals = [
        p.open_deal("d", at=T0, actor="a"),
        p.open_deal("d", at=T0, actor="a", amount=Money("0", "USD"), owner_id="o"),
        p.open_deal("d", at=T0, actor="a", amount=Money("3", "USD"), close_date=date(2026, 1, 1),
                    contact_ids=["c1"]),
        p.open_deal("d", at=T0, actor="a", contact_ids=["c1", "c2"]),
    ]
    assert DEAL_ONLY
    for guard, check in DEAL_ONLY.items():
        for d in deals:
            assert check(d) == guard(d, move)


def test_a_failing_deal_only_guard_reports_like_before() -> None:
    p = Process.from_dict({
        "key": "g", "name": "G",
        "stages": [{"key": "a", "name": "A"}, {"key": "b", "name": "B"},
                   {"key": "won", "name": "Won", "kind": "won"}, {"key": "lost", "name": "Lost", "kind": "lost"}],
        "transitions": [{"from": "a", "to": "b", "guards": ["has_amount", "has_owner"]},
                        {"from": "b", "to": "won"}, {"from": "a", "to": "lost"}, {"from": "b", "to": "lost"}],
    })
    d = p.open_deal("d", at=T0, actor="a")
    with pytest.raises(TransitionNotAllowed) as info:
        p.advance(d, "b", at=T0, actor="a")
    assert [(u.path, u.code, u.message) for u in info.value.unmet] == [
        ("transition.guards.has_amount", "guard", "the deal needs a positive amount"),
        ("transition.guards.has_owner", "guard", "the deal needs an owner"),
    ]
