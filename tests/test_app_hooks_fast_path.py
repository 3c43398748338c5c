"""``SalesProcess.advance`` calls a lone plain transition hook directly; it must behave exactly as
the pluggy call does: same arguments, same vetoes and errors, and pluggy's path whenever a second
implementation, a wrapper, a partial signature, tracing or monitoring is involved."""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from salesprocess import Money, SalesProcess, TransitionNotAllowed, hookimpl, processes

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SAAS = processes.load("saas")


class Listener:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @hookimpl
    def salesprocess_after_transition(self, process: Any, before: Any, after: Any, events: Any) -> None:
        self.calls.append((process, before, after, events))


class PartialListener:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    @hookimpl
    def salesprocess_after_transition(self, after: Any) -> None:
        self.calls.append(after)


class Veto:
    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, ...]] = []

    @hookimpl
    def salesprocess_before_transition(
        self, process: Any, deal: Any, target: str, at: Any, actor: str, reason: Any
    ) -> str | None:
        self.calls.append((process, deal, target, at, actor, reason))
        return self.answer


class Boom:
    @hookimpl
    def salesprocess_after_transition(self, process: Any, before: Any, after: Any, events: Any) -> None:
        raise RuntimeError("listener failed")


class Wrapper:
    def __init__(self) -> None:
        self.seen = 0

    @hookimpl(wrapper=True)
    def salesprocess_after_transition(self, process: Any, before: Any, after: Any, events: Any) -> Generator[None, Any, Any]:
        self.seen += 1
        return (yield)


def _deal() -> Any:
    return SAAS.open_deal("d-1", at=T0, actor="a", owner_id="rep", amount=Money("10", "USD"))


def _move(sp: SalesProcess) -> tuple[Any, Any]:
    d = _deal()
    return d, sp.advance(SAAS, d, "demo", at=T0 + timedelta(hours=1), actor="a", reason="r")


def test_a_lone_listener_gets_what_pluggy_would_give() -> None:
    sp = SalesProcess()
    listener = Listener()
    sp.register(listener)
    assert sp._after_impl is not None  # the direct path is in use
    d, after = _move(sp)
    assert listener.calls == [(SAAS, d, after, after.events_since(d))]
    assert len(listener.calls[0][3]) == 1


def test_a_listener_taking_some_arguments_goes_through_pluggy() -> None:
    sp = SalesProcess()
    listener = PartialListener()
    sp.register(listener)
    assert sp._after_impl is None
    _d, after = _move(sp)
    assert listener.calls == [after]


def test_two_listeners_and_one_registered_behind_the_shells_back_are_all_called() -> None:
    sp = SalesProcess()
    a, b, c = Listener(), Listener(), Listener()
    sp.register(a)
    sp.pm.register(b)  # bypasses SalesProcess.register: the cached lone listener is stale
    _move(sp)
    assert len(a.calls) == len(b.calls) == 1
    sp.register(c)
    _move(sp)
    assert (len(a.calls), len(b.calls), len(c.calls)) == (2, 2, 1)


def test_a_wrapper_keeps_the_pluggy_path() -> None:
    sp = SalesProcess()
    w, listener = Wrapper(), Listener()
    sp.register(w)
    assert sp._after_impl is None
    sp.register(listener)
    _move(sp)
    assert w.seen == 1
    assert len(listener.calls) == 1


def test_tracing_and_monitoring_see_the_calls() -> None:
    sp = SalesProcess()
    sp.register(Listener())
    seen: list[str] = []
    undo = sp.pm.add_hookcall_monitoring(lambda name, impls, kw: seen.append(name), lambda *a: None)
    _move(sp)
    assert seen == ["salesprocess_after_transition"]
    undo()
    _move(sp)
    assert seen == ["salesprocess_after_transition"]


def test_listener_errors_propagate_unchanged() -> None:
    sp = SalesProcess()
    sp.register(Boom())
    with pytest.raises(RuntimeError, match="listener failed"):
        _move(sp)


@pytest.mark.parametrize("answer", [None, "", "frozen quarter"])
def test_a_lone_veto_gives_what_pluggy_gives(answer: str | None) -> None:
    direct, through_pluggy = SalesProcess(), SalesProcess()
    v1, v2 = Veto(answer), Veto(answer)
    direct.register(v1)
    through_pluggy.register(v2)
    through_pluggy.register(PartialListener())  # unrelated; keeps nothing direct for 'before'
    through_pluggy._before_impl = None  # force the pluggy call
    outcomes = []
    for sp in (direct, through_pluggy):
        try:
            outcomes.append(("ok", _move(sp)[1]))
        except TransitionNotAllowed as e:
            outcomes.append(("veto", [(u.path, u.code, u.message) for u in e.unmet], str(e)))
    assert outcomes[0] == outcomes[1]
    assert [c[2:] for c in v1.calls] == [c[2:] for c in v2.calls]
    assert v1.calls[0][2:] == ("demo", T0 + timedelta(hours=1), "a", "r")
