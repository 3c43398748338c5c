"""Customer credit risk: limit, exposure, days overdue and payment history → a score and a grade.

The store does not hold receivables, so they come in as plain values (:class:`CreditInputs`):

- :class:`Invoice` — an invoice issued to an account (``amount``, ``issued``, ``due`` dates);
- :class:`Payment` — money received against an invoice (``on`` a date; partial payments add up);
- :class:`Order` — a booked order not invoiced yet;
- ``limits`` — credit limits by account id, overriding :attr:`Account.credit_limit`.

At ``asof`` (local date in ``tz``), for one account in one currency:

- ``receivables`` = Σ (invoice amount − payments up to ``asof``) over invoices issued by then;
- ``overdue`` = the part of the receivables whose due date has passed; ``days_overdue`` = days since
  the oldest unpaid due date;
- ``uninvoiced`` = Σ orders booked by then; ``pipeline`` = Σ open deals' amount × probability
  (probability precedence as in forecasting);
- ``exposure`` = receivables + uninvoiced + pipeline; ``utilisation`` = exposure ÷ limit;
- ``late_share`` = share of the invoices due within the last ``history_days`` and settled by
  ``asof`` that were settled after their due date.

Each factor (``utilisation``, ``days_overdue``, ``overdue_share``, ``late_payments``) adds
``points × severity`` to a 0–100 score (capped; contributions add up to the score), and the grade
is A–E by the configured lowest scores. ``over_limit`` is the hard flag: exposure above the limit.

:class:`~salesprocess.risk.book.CreditBook` keeps the latest assessment per account for the
``credit_within_limit`` guard, which blocks a move when the deal's account is over its limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs

from salesprocess.errors import CurrencyMismatchError, ImportDataError, Problem
from salesprocess.model import Account, Deal, DealStatus
from salesprocess.money import Money, Rate
from salesprocess.process import Process

from .config import CreditConfig
from .points import Contribution, combine
from .signals import RiskFinding

__all__ = [
    "CreditAssessment",
    "CreditInputs",
    "Invoice",
    "Order",
    "Payment",
    "assess_credit",
]


def _date(_i: object, a: attrs.Attribute[Any], v: object) -> None:
    if not isinstance(v, date) or isinstance(v, datetime):
        raise TypeError(f"{a.name}: expected a date, got {type(v).__name__}")


def _money(_i: object, a: attrs.Attribute[Any], v: object) -> None:
    if not isinstance(v, Money):
        raise TypeError(f"{a.name}: expected Money, got {type(v).__name__}")


@attrs.frozen
class Invoice:
    id: str
    account_id: str
    amount: Money = attrs.field(validator=_money)
    issued: date = attrs.field(validator=_date)
    due: date = attrs.field(validator=_date)


@attrs.frozen
class Payment:
    id: str
    invoice_id: str
    amount: Money = attrs.field(validator=_money)
    on: date = attrs.field(validator=_date)


@attrs.frozen
class Order:
    """A booked order not yet invoiced."""

    id: str
    account_id: str
    amount: Money = attrs.field(validator=_money)
    on: date = attrs.field(validator=_date)


def _tuple(v: Iterable[Any] | None) -> tuple[Any, ...]:
    return tuple(v or ())


def _limits(v: Mapping[str, Money] | Iterable[tuple[str, Money]] | None) -> tuple[tuple[str, Money], ...]:
    if v is None:
        return ()
    items = v.items() if isinstance(v, Mapping) else v
    return tuple(sorted(items))


@attrs.frozen
class CreditInputs:
    """Receivables data the store does not hold. :meth:`check` lists every problem at once."""

    invoices: tuple[Invoice, ...] = attrs.field(default=(), converter=_tuple)
    payments: tuple[Payment, ...] = attrs.field(default=(), converter=_tuple)
    orders: tuple[Order, ...] = attrs.field(default=(), converter=_tuple)
    limits: tuple[tuple[str, Money], ...] = attrs.field(default=(), converter=_limits)

    def __attrs_post_init__(self) -> None:
        probs = self.problems()
        if probs:
            raise ImportDataError(
                f"credit inputs: {len(probs)} problem(s): " + "; ".join(str(p) for p in probs[:5]),
                report=probs,
            )

    def problems(self) -> list[Problem]:
        probs = []
        inv: dict[str, Invoice] = {}
        for i, x in enumerate(self.invoices):
            if x.id in inv:
                probs.append(Problem(f"invoices[{i}].id", "duplicate", f"invoice {x.id!r} given twice"))
            inv[x.id] = x
            if x.due < x.issued:
                probs.append(Problem(f"invoices[{i}].due", "order", f"invoice {x.id}: due {x.due} before issue {x.issued}"))
            if x.amount.amount < 0:
                probs.append(Problem(f"invoices[{i}].amount", "range", f"invoice {x.id}: negative amount"))
        for i, p in enumerate(self.payments):
            target = inv.get(p.invoice_id)
            if target is None:
                probs.append(Problem(f"payments[{i}].invoice_id", "unknown",
                                     f"payment {p.id} is for unknown invoice {p.invoice_id!r}"))
            elif target.amount.currency != p.amount.currency:
                probs.append(Problem(f"payments[{i}].amount", "currency",
                                     f"payment {p.id} in {p.amount.currency}, invoice in {target.amount.currency}"))
        return probs

    def limit_of(self, account: Account) -> Money | None:
        for k, v in self.limits:
            if k == account.id:
                return v
        return account.credit_limit


@attrs.frozen
class CreditAssessment:
    account_id: str
    currency: str
    limit: Money | None
    receivables: Money
    overdue: Money
    uninvoiced: Money
    pipeline: Money
    exposure: Money
    utilisation: Rate | None
    days_overdue: int
    late_share: Rate | None
    score: Decimal
    grade: str
    over_limit: bool
    contributions: tuple[Contribution, ...]
    findings: tuple[RiskFinding, ...]

    def explain(self) -> list[str]:
        return [f.explanation for f in self.findings]

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id, "currency": self.currency, "limit": self.limit,
            "receivables": self.receivables, "overdue": self.overdue,
            "uninvoiced": self.uninvoiced, "pipeline": self.pipeline, "exposure": self.exposure,
            "utilisation": self.utilisation, "days_overdue": self.days_overdue,
            "late_share": self.late_share, "score": self.score, "grade": self.grade,
            "over_limit": self.over_limit,
            "contributions": [c.as_dict() for c in self.contributions],
            "findings": [f.as_dict() for f in self.findings],
        }


def _fmt(m: Money) -> str:
    return f"{m.amount:,.{m.exponent}f} {m.currency}"


def _r4(d: Decimal) -> Rate:
    return Rate(d.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN))


def assess_credit(
    account: Account,
    inputs: CreditInputs,
    open_deals: Sequence[Deal] = (),
    *,
    asof: datetime,
    config: CreditConfig,
    tz: tzinfo = UTC,
    processes: Mapping[str, Process] | None = None,
) -> CreditAssessment:
    """The credit assessment of ``account`` at ``asof`` (see the module documentation)."""
    from salesprocess.forecast.pipeline import resolve_probability

    today = asof.astimezone(tz).date()
    limit = inputs.limit_of(account)
    invoices = [i for i in inputs.invoices if i.account_id == account.id and i.issued <= today]
    orders = [o for o in inputs.orders if o.account_id == account.id and o.on <= today]
    deals = [d for d in open_deals if d.account_id == account.id and d.status is DealStatus.OPEN
             and d.amount is not None]
    currencies = [m.currency for m in (
        ([limit] if limit else []) + [i.amount for i in invoices] + [o.amount for o in orders]
        + [d.amount for d in deals if d.amount is not None])]
    currency = currencies[0] if currencies else "USD"
    for c in currencies:
        if c != currency:
            raise CurrencyMismatchError(currency, c, f"assess the credit of account {account.id}")
    inv_ids = {i.id for i in invoices}
    paid: dict[str, tuple[Decimal, date | None]] = {}
    for p in sorted(inputs.payments, key=lambda p: p.on):
        if p.invoice_id not in inv_ids or p.on > today:
            continue
        have, _ = paid.get(p.invoice_id, (Decimal(0), None))
        paid[p.invoice_id] = (have + p.amount.amount, p.on)
    receivables = Decimal(0)
    overdue = Decimal(0)
    oldest_due: date | None = None
    settled = late = 0
    window_start = today - timedelta(days=int(config.factor("late_payments").option("history_days", 365)))
    for inv in invoices:
        got, last = paid.get(inv.id, (Decimal(0), None))
        open_amt = inv.amount.amount - got
        if open_amt > 0:
            receivables += open_amt
            if inv.due < today:
                overdue += open_amt
                oldest_due = inv.due if oldest_due is None or inv.due < oldest_due else oldest_due
        elif window_start <= inv.due <= today or (last is not None and window_start <= last):
            settled += 1
            if last is not None and last > inv.due:
                late += 1
    uninvoiced = sum((o.amount.amount for o in orders), Decimal(0))
    pipeline = Decimal(0)
    procs = processes or {}
    for d in deals:
        assert d.amount is not None
        prob, _src = resolve_probability(d, procs.get(d.process))
        pipeline += d.amount.amount * prob.value
    exposure = receivables + uninvoiced + pipeline
    util = _r4(exposure / limit.amount) if limit is not None and limit.amount > 0 else None
    days_over = (today - oldest_due).days if oldest_due is not None else 0
    late_share = _r4(Decimal(late) / Decimal(settled)) if settled else None
    over_share = overdue / receivables if receivables > 0 else Decimal(0)
    over_limit = limit is not None and exposure > limit.amount

    def m(x: Decimal) -> Money:
        return Money(x, currency).round(ROUND_HALF_EVEN)

    parts: list[tuple[str, Decimal, float]] = []
    findings: list[RiskFinding] = []

    def factor(name: str, x: float | None, text: str) -> None:
        s = config.factor(name)
        if not s.enabled or x is None:
            return
        sev = s.severity(x)
        parts.append((name, s.points, sev))
        if sev > 0:
            findings.append(RiskFinding(name, Decimal(f"{sev:.4f}"), text))

    if util is not None and limit is not None:
        factor("utilisation", float(util.value),
               f"Exposure {_fmt(m(exposure))} is {util} of the {_fmt(limit)} credit limit "
               f"(receivables {_fmt(m(receivables))}, uninvoiced orders {_fmt(m(uninvoiced))}, "
               f"weighted open deals {_fmt(m(pipeline))}).")
    factor("days_overdue", float(days_over),
           f"The oldest unpaid invoice is {days_over} days past due "
           f"({_fmt(m(overdue))} overdue in all).")
    factor("overdue_share", float(over_share),
           f"{_fmt(m(overdue))} of {_fmt(m(receivables))} receivables are overdue "
           f"({float(over_share) * 100:.0f}%).")
    if late_share is not None:
        factor("late_payments", float(late_share.value),
               f"{late} of {settled} invoices settled in the history window were paid late.")
    score, contribs = combine(parts)
    return CreditAssessment(
        account.id, currency, limit, m(receivables), m(overdue), m(uninvoiced), m(pipeline),
        m(exposure), util, days_over, late_share, score, config.grade(score), over_limit,
        contribs, tuple(findings),
    )
