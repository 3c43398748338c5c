"""The entry points: statements, what-if estimates, and statement snapshots in a store."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import attrs

from ..errors import BatchConflictError, ConflictError, NotFoundError
from ..model import Account, Deal, DealStatus, Product, Rep
from ..money import Money
from ..periods import Period, require_aware
from ._credit import CreditBook, _Crediter
from ._engine import CommissionRun, compute_run
from ._errors import IncentiveError
from ._inputs import CommissionInputs, Invoice, Payment
from ._plan import CreditBasis, Plan
from ._statement import LineKind, Statement, StatementLine

__all__ = [
    "PLAN_DOCUMENT",
    "STATEMENT_DOCUMENT",
    "StatementCheck",
    "WhatIf",
    "check_statements",
    "compute_statements",
    "load_plan",
    "load_statement",
    "save_plan",
    "save_statements",
    "saved_statements",
    "what_if",
]

PLAN_DOCUMENT = "incentive_plan"
"""Store document kind of plans (key: the plan key)."""
STATEMENT_DOCUMENT = "commission_statement"
"""Store document kind of statement snapshots (key: ``PLAN/PERIOD/REP``)."""


def _is_store(data: Any) -> bool:
    return callable(getattr(data, "deals", None)) and callable(getattr(data, "all", None))


def _sources(data: Any, reps: Iterable[Any] | None, accounts: Iterable[Any] | None,
             products: Iterable[Any] | None) -> tuple[Iterable[Deal], list[Any], list[Any], list[Any]]:
    if _is_store(data):
        return (data.deals(),
                list(reps) if reps is not None else list(data.all(Rep)),
                list(accounts) if accounts is not None else list(data.all(Account)),
                list(products) if products is not None else list(data.all(Product)))
    return data, list(reps or ()), list(accounts or ()), list(products or ())


def _crediter(plan: Plan, data: Any, inputs: CommissionInputs | None, reps: Iterable[Any] | None,
              accounts: Iterable[Any] | None, products: Iterable[Any] | None) -> tuple[_Crediter, list[Any]]:
    deals, rs, accs, prods = _sources(data, reps, accounts, products)
    cr = _Crediter(plan, inputs or CommissionInputs(), {r.id: r for r in rs}, {a.id: a for a in accs},
                   {p.id: p for p in prods})
    for d in deals:
        cr.deal(d)
    return cr, rs


def _finish(cr: _Crediter) -> CreditBook:
    book = cr.book
    known = cr.deals_seen
    for deal_id in sorted(set(cr.invoices) - known):
        book.problems.append(_problem("invoices", deal_id, f"invoices for unknown deal {deal_id}"))
    for deal_id in sorted(set(cr.refunds) - known):
        book.problems.append(_problem("refunds", deal_id, f"refund for unknown deal {deal_id}"))
    return book


def _problem(kind: str, key: str, msg: str) -> Any:
    from ..errors import Problem

    return Problem(f"{kind}[{key}]", "unknown_deal", msg)


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a run allocates millions of acyclic records
    (credits, lines); the outermost of concurrent runs restores the collector as it was."""
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()


def compute_statements(
    plan: Plan,
    data: Any,
    period: Period | str,
    *,
    inputs: CommissionInputs | None = None,
    reps: Iterable[Any] | None = None,
    accounts: Iterable[Any] | None = None,
    products: Iterable[Any] | None = None,
    only: Iterable[str] | None = None,
    strict: bool = True,
) -> CommissionRun:
    """Statements of every settlement period in ``period`` for every rep paid under ``plan``.

    ``data`` is a store (deals, reps, accounts and products are read from it) or an iterable of
    deals (streamed once; pass ``reps``, ``accounts`` and ``products`` yourself). ``only`` limits
    the statements to some reps. Reps the plan's eligibility names get a statement even without
    credit. The result depends only on the arguments: events after the period change nothing in
    it (they land in later periods), so recomputing a past period gives the same statements.

    With ``strict`` (the default) any problem — a deal won without an amount, revenue splits
    that do not total 100 %, a missing exchange rate or quota — raises :class:`IncentiveError`
    listing all of them; otherwise they are returned in ``run.problems`` and the affected
    records are left out.
    """
    p = plan.parse_period(period)
    with _gc_paused():
        cr, rs = _crediter(plan, data, inputs, reps, accounts, products)
        book = _finish(cr)
        run = compute_run(plan, book, inputs or CommissionInputs(), {r.id: r for r in rs}, p, only)
    if strict and run.problems:
        raise IncentiveError(run.problems)
    return run


@attrs.frozen(eq=False)
class WhatIf:
    """What a prospective deal would change on a rep's statement.

    ``estimate`` is the change of the statement's total (what the rep would be paid more);
    ``commission`` the commission on the deal itself, ``true_up`` the change it causes on the
    rep's other credits (a retroactive tier or an accelerator reached), ``spif`` its SPIFs and
    ``other`` the rest (cap, draws, deficits, floor).
    """

    rep_id: str
    amount: Money
    period: Period
    estimate: Money
    commission: Money
    true_up: Money
    spif: Money
    other: Money
    attainment_before: Any
    attainment_after: Any
    tier_before: str | None
    tier_after: str | None
    lines: tuple[StatementLine, ...]
    before: Statement
    after: Statement

    @property
    def effective_rate(self) -> Any:
        """``estimate / amount`` in the plan currency (``None`` for a zero amount)."""
        if self.amount.amount == 0 or self.amount.currency != self.estimate.currency:
            return None
        return self.estimate.ratio(self.amount)


WHAT_IF_DEAL = "what-if"


def what_if(
    plan: Plan,
    data: Any,
    rep_id: str,
    amount: Money,
    *,
    at: datetime,
    products: Iterable[str] = (),
    account_id: str | None = None,
    inputs: CommissionInputs | None = None,
    reps: Iterable[Any] | None = None,
    accounts: Iterable[Any] | None = None,
    all_products: Iterable[Any] | None = None,
) -> WhatIf:
    """Estimate what winning a deal of ``amount`` at ``at`` would pay ``rep_id``.

    The deal is credited like any other (on the plan's basis, as if invoiced and paid at ``at``
    for the invoice and cash bases), so tiers, accelerators, caps, product rules, SPIFs and
    draws all apply. The estimate compares the rep's statement for the settlement period
    containing ``at`` with and without the deal.
    """
    require_aware(at, "at")
    cr, rs = _crediter(plan, data, inputs, reps, accounts, all_products)
    day = cr.day(at)
    period = plan.settlement_period(day)
    base_book = _copy_book(cr.book)
    inp = inputs or CommissionInputs()
    rmap = {r.id: r for r in rs}
    before = compute_run(plan, _finish_copy(cr, base_book), inp, rmap, period, [rep_id])
    deal = Deal.create(WHAT_IF_DEAL, process="what-if", stage="won", at=at, actor="what-if",
                       status=DealStatus.WON, amount=amount, owner_id=rep_id, account_id=account_id,
                       product_ids=tuple(products), name="what-if")
    if plan.basis is not CreditBasis.BOOKING:
        inv = Invoice(WHAT_IF_DEAL, WHAT_IF_DEAL, at, amount)
        cr.invoices[WHAT_IF_DEAL] = [inv]
        cr.invoice_by_id[WHAT_IF_DEAL] = inv
        cr.payments[WHAT_IF_DEAL] = [Payment(WHAT_IF_DEAL, WHAT_IF_DEAL, at, amount)]
    cr.revenue.pop(WHAT_IF_DEAL, None)
    cr.overlay.pop(WHAT_IF_DEAL, None)
    cr.deal(deal)
    after = compute_run(plan, _finish_copy(cr, cr.book), inp, rmap, period, [rep_id])
    problems = after.problems
    if problems:
        raise IncentiveError(problems)
    b = before.statement(rep_id)
    a = after.statement(rep_id)
    cur = plan.currency

    def total(s: Statement, pred: Any) -> int:
        return sum(ln.amount_minor for ln in s.lines if pred(ln))

    own = [ln for ln in a.lines if ln.deal_id == WHAT_IF_DEAL]
    commission = sum(ln.amount_minor for ln in own if ln.kind == LineKind.COMMISSION)
    spif = sum(ln.amount_minor for ln in own if ln.kind == LineKind.SPIF)
    credit_kinds = {LineKind.COMMISSION, LineKind.TRUE_UP, LineKind.CLAWBACK, LineKind.REVERSAL}
    others_a = total(a, lambda ln: ln.deal_id != WHAT_IF_DEAL and ln.kind in credit_kinds)
    others_b = total(b, lambda ln: ln.kind in credit_kinds)
    estimate = a.total.to_minor() - b.total.to_minor()
    true_up = others_a - others_b
    other = estimate - commission - spif - true_up
    return WhatIf(
        rep_id=rep_id, amount=amount, period=period,
        estimate=Money.from_minor(estimate, cur), commission=Money.from_minor(commission, cur),
        true_up=Money.from_minor(true_up, cur), spif=Money.from_minor(spif, cur),
        other=Money.from_minor(other, cur),
        attainment_before=b.attainment, attainment_after=a.attainment,
        tier_before=b.tier, tier_after=a.tier, lines=tuple(own), before=b, after=a,
    )


def _copy_book(book: CreditBook) -> CreditBook:
    c = CreditBook()
    c.credits = list(book.credits)
    c.awards = list(book.awards)
    c.problems = list(book.problems)
    c.notes = list(book.notes)
    return c


def _finish_copy(cr: _Crediter, book: CreditBook) -> CreditBook:
    saved = cr.book
    cr.book = _copy_book(book)
    try:
        return _finish(cr)
    finally:
        cr.book = saved


# ------------------------------------------------------------------------------------------------
# Store documents
# ------------------------------------------------------------------------------------------------


def save_plan(store: Any, plan: Plan) -> None:
    """Keep ``plan`` in ``store`` (document kind ``incentive_plan``).

    Versions are immutable once saved: saving a plan that changes a saved version raises
    :class:`~salesprocess.errors.ConflictError`; adding versions is fine.
    """
    have = store.get_document(PLAN_DOCUMENT, plan.key)
    data = plan.to_dict()
    if have is not None:
        old = {v["version"]: v for v in have.get("versions", ())}
        for v in data["versions"]:
            if v["version"] in old and old[v["version"]] != v:
                raise ConflictError("plan version", f"{plan.key} v{v['version']}", v["version"], v["version"])
        missing = set(old) - {v["version"] for v in data["versions"]}
        if missing:
            raise ConflictError("plan version", f"{plan.key} v{min(missing)}", min(missing), None)
    store.put_document(PLAN_DOCUMENT, plan.key, data)


def load_plan(store: Any, key: str) -> Plan:
    data = store.get_document(PLAN_DOCUMENT, key)
    if data is None:
        raise NotFoundError("plan", key)
    return Plan.from_dict(data, source=f"{PLAN_DOCUMENT}/{key}")


def _key(plan_key: str, period: Period, rep_id: str) -> str:
    return f"{plan_key}/{period.label}/{rep_id}"


def save_statements(store: Any, statements: CommissionRun | Iterable[Statement], *,
                    replace: bool = False) -> int:
    """Snapshot statements in ``store`` (document kind ``commission_statement``), all or none.

    A saved statement is what was paid: saving a different one for the same plan, period and
    rep raises :class:`~salesprocess.errors.BatchConflictError` naming every clash (nothing is
    written) unless ``replace``. Saving an identical one is a no-op. Returns how many were written.
    """
    items = statements.statements if isinstance(statements, CommissionRun) else tuple(statements)
    todo: list[tuple[str, dict[str, Any]]] = []
    conflicts: list[ConflictError] = []
    for s in items:
        k = _key(s.plan_key, s.period, s.rep_id)
        d = s.to_dict()
        d["digest"] = s.digest
        have = store.get_document(STATEMENT_DOCUMENT, k)
        if have is not None and have.get("digest") == d["digest"]:
            continue
        if have is not None and not replace:
            conflicts.append(ConflictError("statement", k, 0, 0))
            continue
        todo.append((k, d))
    if conflicts:
        raise BatchConflictError(conflicts)
    with store.transaction():
        for k, d in todo:
            store.put_document(STATEMENT_DOCUMENT, k, d)
    return len(todo)


def load_statement(store: Any, plan_key: str, period: Period | str, rep_id: str) -> Statement | None:
    label = period.label if isinstance(period, Period) else period
    d = store.get_document(STATEMENT_DOCUMENT, f"{plan_key}/{label}/{rep_id}")
    return None if d is None else Statement.from_dict(d)


def saved_statements(store: Any, plan_key: str, period: Period | str | None = None) -> list[Statement]:
    """Snapshots of a plan (of one period when given), ordered by period then rep."""
    label = None if period is None else period.label if isinstance(period, Period) else period
    out = []
    for k, d in store.documents(STATEMENT_DOCUMENT):
        pk, _, rest = k.partition("/")
        if pk != plan_key:
            continue
        if label is not None and rest.rpartition("/")[0] != label:
            continue
        out.append(Statement.from_dict(d))
    out.sort(key=lambda s: (s.period.start, s.rep_id))
    return out


@attrs.frozen
class StatementCheck:
    """How a recomputed statement compares with its snapshot: ``status`` is ``same``,
    ``changed`` (with the differing fields and lines in ``changes``), ``new`` (no snapshot) or
    ``missing`` (a snapshot the recomputation no longer produces)."""

    rep_id: str
    period: str
    status: str
    saved: str | None
    digest: str | None
    changes: tuple[str, ...] = ()


def check_statements(store: Any, run: CommissionRun) -> list[StatementCheck]:
    """Compare a run with the snapshots saved for its plan and period."""
    out: list[StatementCheck] = []
    seen: set[tuple[str, str]] = set()
    for s in run.statements:
        seen.add((s.period.label, s.rep_id))
        d = store.get_document(STATEMENT_DOCUMENT, _key(s.plan_key, s.period, s.rep_id))
        dig = s.digest
        if d is None:
            out.append(StatementCheck(s.rep_id, s.period.label, "new", None, dig))
        elif d.get("digest") == dig:
            out.append(StatementCheck(s.rep_id, s.period.label, "same", dig, dig))
        else:
            out.append(StatementCheck(s.rep_id, s.period.label, "changed", d.get("digest"), dig,
                                      tuple(_diff(d, s.to_dict()))))
    for old in saved_statements(store, run.plan.key):
        if run.period.start <= old.period.start and old.period.end <= run.period.end and (
                old.period.label, old.rep_id) not in seen:
            out.append(StatementCheck(old.rep_id, old.period.label, "missing", old.digest, None))
    out.sort(key=lambda c: (c.period, c.rep_id))
    return out


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        if k in ("lines", "digest"):
            continue
        if old.get(k) != new.get(k):
            out.append(f"{k}: {old.get(k)} → {new.get(k)}")
    a = [_line_key(x) for x in old.get("lines", ())]
    b = [_line_key(x) for x in new.get("lines", ())]
    sa, sb = set(a), set(b)
    out.extend(f"- {x}" for x in a if x not in sb)
    out.extend(f"+ {x}" for x in b if x not in sa)
    return out


def _line_key(d: Mapping[str, Any]) -> str:
    parts = [d.get("kind", ""), d.get("rule", ""), d.get("event") or "", d.get("amount", "")]
    return " ".join(str(p) for p in parts if p)
