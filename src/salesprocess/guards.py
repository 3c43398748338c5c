"""Named guards: side-effect-free checks a process attaches to stages and transitions.

A guard is ``guard(deal, move) -> str | None``: it returns ``None`` when the move may happen and a
one-sentence reason when it may not. Guards must not change anything. Plugins contribute guards
through the ``salesprocess_register_guards`` hook; a process names them in its entry/exit criteria
or on a transition, and validation reports unknown names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import attrs

from .errors import PluginValidationError
from .model import Deal as _Deal

if TYPE_CHECKING:
    from .model import Activity, Deal
    from .process import Process

__all__ = ["BUILTIN_GUARDS", "Guard", "GuardRegistry", "GuardSpec", "Move"]


class Move(tuple):  # type: ignore[type-arg]
    """What a guard sees of a requested move: ``process``, ``source`` and ``target`` stage keys,
    ``at`` (aware instant), ``actor``, ``reason`` and the deal's known ``activities``.

    An immutable record built once per checked move (a tuple, for speed).
    """

    __slots__ = ()

    def __new__(
        cls,
        process: Process,
        source: str,
        target: str,
        at: datetime,
        actor: str,
        reason: str | None,
        activities: Sequence[Activity],
    ) -> Move:
        return tuple.__new__(cls, (process, source, target, at, actor, reason, activities))

    @classmethod
    def _make(cls, values: tuple[Any, ...]) -> Move:
        return tuple.__new__(cls, values)

    process: Process = property(itemgetter(0))  # type: ignore[assignment]
    source: str = property(itemgetter(1))  # type: ignore[assignment]
    target: str = property(itemgetter(2))  # type: ignore[assignment]
    at: datetime = property(itemgetter(3))  # type: ignore[assignment]
    actor: str = property(itemgetter(4))  # type: ignore[assignment]
    reason: str | None = property(itemgetter(5))  # type: ignore[assignment]
    activities: Sequence[Activity] = property(itemgetter(6))  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Move({self.source!r} → {self.target!r} at {self.at.isoformat()} by {self.actor!r})"


Guard = Callable[["Deal", Move], "str | None"]


@attrs.frozen
class GuardSpec:
    name: str
    func: Guard = attrs.field(eq=False)
    description: str = ""
    plugin: str | None = None


class GuardRegistry(Mapping[str, GuardSpec]):
    """Guards by name. Registering a name twice is an error naming both plugins."""

    def __init__(self, guards: Mapping[str, GuardSpec] | None = None) -> None:
        self._g: dict[str, GuardSpec] = dict(guards or {})

    def register(
        self, name: str, func: Guard, description: str = "", *, plugin: str | None = None
    ) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise PluginValidationError(
                f"guard name must be an identifier, got {name!r}", plugin=plugin,
                hook="salesprocess_register_guards",
            )
        if not callable(func):
            raise PluginValidationError(
                f"guard {name!r} is not callable", plugin=plugin, hook="salesprocess_register_guards"
            )
        if name in self._g and self._g[name].func is not func:
            other = self._g[name].plugin or "builtin"
            raise PluginValidationError(
                f"guard {name!r} registered twice (by {other} and {plugin or 'builtin'})",
                plugin=plugin, hook="salesprocess_register_guards",
            )
        self._g[name] = GuardSpec(name, func, description, plugin)

    def __getitem__(self, key: str) -> GuardSpec:
        return self._g[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._g)

    def __len__(self) -> int:
        return len(self._g)

    def copy(self) -> GuardRegistry:
        return GuardRegistry(self._g)


# --- built-in guards ------------------------------------------------------------------------


_I_AMOUNT = _Deal._fields.index("amount")
_ZERO = Decimal(0)

# Checks that read only the deal. The stage machine's hot path calls these directly (no Move is
# built); the registered guards below wrap them, so both paths give the same answer.


def _amount_problem(deal: Deal) -> str | None:
    amount = deal[_I_AMOUNT]
    if amount is None or amount.amount <= _ZERO:
        return "the deal needs a positive amount"
    return None


def _close_date_problem(deal: Deal) -> str | None:
    return None if deal.close_date is not None else "the deal needs an expected close date"


def _contact_problem(deal: Deal) -> str | None:
    return None if deal.contact_ids else "the deal needs at least one contact"


def _multi_thread_problem(deal: Deal) -> str | None:
    if len(deal.contact_ids) < 2:
        return f"the deal engages {len(deal.contact_ids)} contact(s); at least 2 are needed"
    return None


def _owner_problem(deal: Deal) -> str | None:
    return None if deal.owner_id else "the deal needs an owner"


def _has_amount(deal: Deal, move: Move) -> str | None:
    return _amount_problem(deal)


def _has_close_date(deal: Deal, move: Move) -> str | None:
    return _close_date_problem(deal)


def _close_date_not_past(deal: Deal, move: Move) -> str | None:
    if deal.close_date is not None and deal.close_date < move.at.date():
        return f"the expected close date {deal.close_date} is in the past"
    return None


def _has_contact(deal: Deal, move: Move) -> str | None:
    return _contact_problem(deal)


def _multi_threaded(deal: Deal, move: Move) -> str | None:
    return _multi_thread_problem(deal)


def _has_owner(deal: Deal, move: Move) -> str | None:
    return _owner_problem(deal)


def _has_reason(deal: Deal, move: Move) -> str | None:
    return None if (move.reason or deal.lost_reason) else "a reason is required for this move"


DealCheck = Callable[["Deal"], "str | None"]

DEAL_ONLY: dict[Guard, DealCheck] = {
    _has_amount: _amount_problem,
    _has_close_date: _close_date_problem,
    _has_contact: _contact_problem,
    _multi_threaded: _multi_thread_problem,
    _has_owner: _owner_problem,
}
"""Built-in guards that never look at the move, mapped to the same check taking only the deal."""


BUILTIN_GUARDS: dict[str, tuple[Guard, str]] = {
    "has_amount": (_has_amount, "the deal has a positive amount"),
    "has_close_date": (_has_close_date, "the deal has an expected close date"),
    "close_date_not_past": (_close_date_not_past, "the expected close date is not before the move"),
    "has_contact": (_has_contact, "at least one contact is linked"),
    "multi_threaded": (_multi_threaded, "at least two contacts are engaged"),
    "has_owner": (_has_owner, "the deal has an owner"),
    "has_reason": (_has_reason, "the move gives a reason (or the deal has a lost reason)"),
}


def builtin_registry() -> GuardRegistry:
    reg = GuardRegistry()
    for name, (func, desc) in BUILTIN_GUARDS.items():
        reg.register(name, func, desc)
    return reg
