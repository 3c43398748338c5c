"""The credit book and the ``credit_within_limit`` guard (kept import-light: every shell loads it).

A :class:`CreditBook` holds the latest :class:`~salesprocess.risk.credit.CreditAssessment` per
account. Each :class:`~salesprocess.SalesProcess` shell owns one (``shell.credit_book``) and
registers a :class:`CreditLimitGuard` plugin over it (plugin name ``salesprocess.credit``), which
contributes the guard ``credit_within_limit`` through ``salesprocess_register_guards``: a move is
refused while the deal's account is flagged over its credit limit in the book. Accounts the book
does not know pass.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from salesprocess.hookspecs import hookimpl

if TYPE_CHECKING:
    from salesprocess.guards import Move
    from salesprocess.model import Deal

    from .credit import CreditAssessment

__all__ = ["CreditBook", "CreditLimitGuard"]


def _fmt(m: Any) -> str:
    return f"{m.amount:,.{m.exponent}f} {m.currency}"


class CreditBook:
    """The latest credit assessment per account, read by the ``credit_within_limit`` guard.

    One book belongs to one :class:`~salesprocess.SalesProcess` shell (``shell.credit_book``);
    update it whenever assessments are recomputed. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._a: dict[str, CreditAssessment] = {}

    def update(self, assessments: Iterable[CreditAssessment]) -> None:
        with self._lock:
            for a in assessments:
                self._a[a.account_id] = a

    def replace(self, assessments: Iterable[CreditAssessment]) -> None:
        new = {a.account_id: a for a in assessments}
        with self._lock:
            self._a = new

    def get(self, account_id: str) -> CreditAssessment | None:
        with self._lock:
            return self._a.get(account_id)

    def __len__(self) -> int:
        return len(self._a)

    def guard(self, deal: Deal, move: Move) -> str | None:
        """``None`` unless the deal's account is flagged over its credit limit."""
        if deal.account_id is None:
            return None
        a = self.get(deal.account_id)
        if a is None or not a.over_limit:
            return None
        assert a.limit is not None
        return (f"account {deal.account_id} is over its credit limit: exposure {_fmt(a.exposure)} "
                f"exceeds {_fmt(a.limit)} (grade {a.grade})")


class CreditLimitGuard:
    """First-party plugin registering the ``credit_within_limit`` guard over one :class:`CreditBook`."""

    def __init__(self, book: CreditBook) -> None:
        self.book = book

    @hookimpl
    def salesprocess_register_guards(self, register: Any) -> None:
        register("credit_within_limit", self.book.guard,
                 "the deal's account is not over its credit limit (per the shell's credit book)")
