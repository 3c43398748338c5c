"""Plain typed inputs of a commission run that the deal history does not hold.

Invoices, payments, refunds, churn, deal splits, quotas, a dated FX table, the reporting lines of
the organisation over time and manual adjustments. Every value is frozen and validated on
construction; :meth:`CommissionInputs.from_dict` reads them from JSON-like data and reports every
bad record at once.
"""

from __future__ import annotations

import bisect
import enum
import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import attrs

from ..errors import DomainError, PeriodError, Problem
from ..money import Money, Rate, to_decimal
from ..periods import Period, require_aware
from ._errors import IncentiveError

__all__ = [
    "Adjustment",
    "Churn",
    "CommissionInputs",
    "FxRate",
    "FxTable",
    "Invoice",
    "OrgHistory",
    "Payment",
    "Quota",
    "Refund",
    "ReportingLine",
    "Split",
    "SplitKind",
]


def _aware(_i: object, a: attrs.Attribute[Any], v: datetime) -> None:
    require_aware(v, a.name)


def _money(_i: object, a: attrs.Attribute[Any], v: object) -> None:
    if not isinstance(v, Money):
        raise TypeError(f"{a.name}: expected Money, got {type(v).__name__}")


def _opt_money(_i: object, a: attrs.Attribute[Any], v: object) -> None:
    if v is not None and not isinstance(v, Money):
        raise TypeError(f"{a.name}: expected Money or None, got {type(v).__name__}")


def _positive(_i: object, a: attrs.Attribute[Any], v: Money | None) -> None:
    if v is not None and v.amount <= 0:
        raise DomainError(f"{a.name} must be positive, got {v}")


def _nonempty(_i: object, a: attrs.Attribute[Any], v: object) -> None:
    if not isinstance(v, str) or not v:
        raise DomainError(f"{a.name} must be a non-empty string, got {v!r}")


def _period(v: Period | str) -> Period:
    if isinstance(v, Period):
        return v
    if isinstance(v, str):
        return Period.parse(v)
    raise TypeError(f"period must be a Period or a label, got {type(v).__name__}")


def _rate(v: Rate | Decimal | int | str) -> Rate:
    return v if isinstance(v, Rate) else Rate(v)


def _opt_date(_i: object, a: attrs.Attribute[Any], v: object) -> None:
    if v is not None and (not isinstance(v, date) or isinstance(v, datetime)):
        raise TypeError(f"{a.name}: expected a date or None, got {type(v).__name__}")


@attrs.frozen
class Invoice:
    """An invoice (or, with a negative amount, a credit note) for a deal.

    On the ``invoice`` basis the invoiced amount is credited at ``at``; a credit note reverses
    the share it cancels. ``product_id`` lets product rates apply per invoice line: bill each
    product on its own invoice record when their rates differ.
    """

    id: str = attrs.field(validator=_nonempty)
    deal_id: str = attrs.field(validator=_nonempty)
    at: datetime = attrs.field(validator=_aware)
    amount: Money = attrs.field(validator=_money)
    product_id: str | None = None

    @amount.validator
    def _nonzero(self, _a: Any, v: Money) -> None:
        if v.amount == 0:
            raise DomainError(f"invoice {self.id}: amount must not be zero")


@attrs.frozen
class Payment:
    """Cash received against an invoice; partial payments are separate records.

    On the ``cash`` basis each payment is credited at ``at``.
    """

    id: str = attrs.field(validator=_nonempty)
    invoice_id: str = attrs.field(validator=_nonempty)
    at: datetime = attrs.field(validator=_aware)
    amount: Money = attrs.field(validator=[_money, _positive])


@attrs.frozen
class Refund:
    """Money given back to the customer of a deal; ``amount=None`` refunds everything.

    Commission paid on the deal within the plan's clawback window before ``at`` is clawed back
    in proportion to the refunded share of the credited amount, at the rate originally paid.
    """

    id: str = attrs.field(validator=_nonempty)
    deal_id: str = attrs.field(validator=_nonempty)
    at: datetime = attrs.field(validator=_aware)
    amount: Money | None = attrs.field(default=None, validator=[_opt_money, _positive])


@attrs.frozen
class Churn:
    """A customer stopped paying at ``at``: commission on its deals credited within the
    clawback window is clawed back in full. ``deal_id`` limits it to one deal."""

    id: str = attrs.field(validator=_nonempty)
    account_id: str = attrs.field(validator=_nonempty)
    at: datetime = attrs.field(validator=_aware)
    deal_id: str | None = None


class SplitKind(enum.StrEnum):
    REVENUE = "revenue"
    """Shares of one deal's credit that must total exactly 100 %; they replace the owner's credit."""
    OVERLAY = "overlay"
    """Extra credit of any percentage (specialists, partners) that takes nothing from anybody."""


@attrs.frozen
class Split:
    """One rep's split of a deal's credit: ``share`` is a fraction (``Rate("0.4")`` is 40 %)."""

    deal_id: str = attrs.field(validator=_nonempty)
    rep_id: str = attrs.field(validator=_nonempty)
    share: Rate = attrs.field(converter=_rate)
    kind: SplitKind = attrs.field(default=SplitKind.REVENUE, converter=SplitKind)

    @share.validator
    def _check(self, _a: Any, v: Rate) -> None:
        if v.value <= 0:
            raise DomainError(f"split of deal {self.deal_id} for {self.rep_id}: share must be positive")
        if self.kind is SplitKind.REVENUE and v.value > 1:
            raise DomainError(
                f"split of deal {self.deal_id} for {self.rep_id}: a revenue share is at most 100 %"
            )


@attrs.frozen
class Quota:
    """The quota of a rep for one attainment period (in the plan's currency)."""

    rep_id: str = attrs.field(validator=_nonempty)
    period: Period = attrs.field(converter=_period)
    amount: Money = attrs.field(validator=[_money, _positive])

    @classmethod
    def from_goal(cls, goal: Any) -> Quota:
        """The quota a rep's money goal sets (a :class:`salesprocess.goals.Goal` whose scope is
        ``rep:ID`` and whose target is money, typically on ``won_revenue``)."""
        scope = goal.scope
        if getattr(scope.kind, "value", scope.kind) != "rep" or not isinstance(goal.target, Money):
            raise DomainError(f"goal {goal.id}: a quota comes from a rep's goal with a money target")
        return cls(scope.id, goal.period, goal.target)


@attrs.frozen
class Adjustment:
    """A manual line on a rep's statement: the settlement period containing ``at`` carries it."""

    id: str = attrs.field(validator=_nonempty)
    rep_id: str = attrs.field(validator=_nonempty)
    at: datetime = attrs.field(validator=_aware)
    amount: Money = attrs.field(validator=_money)
    reason: str = ""


def _fx_rate(v: Decimal | int | str) -> Decimal:
    return to_decimal(v, field="rate")


@attrs.frozen
class FxRate:
    """``1 base = rate quote`` from ``on`` until the next rate of the pair."""

    base: str
    quote: str
    on: date = attrs.field(validator=_opt_date)
    rate: Decimal = attrs.field(converter=_fx_rate)

    @rate.validator
    def _check(self, _a: Any, v: Decimal) -> None:
        if v <= 0:
            raise DomainError(f"FX rate {self.base}/{self.quote} on {self.on}: must be positive")
        Money.zero(self.base)
        Money.zero(self.quote)


class FxTable:
    """Dated exchange rates the caller supplies.

    :meth:`rate` returns the latest rate of the pair published on or before the day; when only
    the opposite pair is known its inverse is used. A missing rate raises :class:`IncentiveError`.
    """

    def __init__(self, rates: Iterable[FxRate] = ()) -> None:
        by: dict[tuple[str, str], list[FxRate]] = {}
        for r in rates:
            if not isinstance(r, FxRate):
                raise TypeError(f"expected FxRate, got {type(r).__name__}")
            by.setdefault((r.base, r.quote), []).append(r)
        self._days: dict[tuple[str, str], list[date]] = {}
        self._rates: dict[tuple[str, str], list[Decimal]] = {}
        for k, lst in by.items():
            lst.sort(key=lambda r: r.on)
            for a, b in itertools.pairwise(lst):
                if a.on == b.on and a.rate != b.rate:
                    raise IncentiveError([Problem(
                        f"fx[{k[0]}/{k[1]}]", "duplicate",
                        f"two different rates for {k[0]}/{k[1]} on {a.on}",
                    )])
            self._days[k] = [r.on for r in lst]
            self._rates[k] = [r.rate for r in lst]
        self._all = tuple(sorted((r for lst in by.values() for r in lst),
                                 key=lambda r: (r.base, r.quote, r.on)))

    @property
    def rates(self) -> tuple[FxRate, ...]:
        return self._all

    def __len__(self) -> int:
        return len(self._all)

    def find(self, base: str, quote: str, on: date) -> Decimal | None:
        """The rate to convert ``base`` into ``quote`` on ``on``, or ``None`` when unknown."""
        if base == quote:
            return Decimal(1)
        k = (base, quote)
        days = self._days.get(k)
        if days is not None:
            i = bisect.bisect_right(days, on) - 1
            if i >= 0:
                return self._rates[k][i]
        inv = (quote, base)
        days = self._days.get(inv)
        if days is not None:
            i = bisect.bisect_right(days, on) - 1
            if i >= 0:
                from ..money import _CTX

                return _CTX.divide(Decimal(1), self._rates[inv][i])
        return None

    def rate(self, base: str, quote: str, on: date) -> Decimal:
        r = self.find(base, quote, on)
        if r is None:
            raise IncentiveError([Problem(
                "fx", "missing_rate", f"no {base}/{quote} exchange rate on or before {on}")])
        return r

    def convert(self, amount: Money, currency: str, on: date) -> Money:
        """``amount`` in ``currency`` at the rate of ``on`` (exact: round it yourself)."""
        return Money(amount.amount * self.rate(amount.currency, currency, on), currency)


@attrs.frozen
class ReportingLine:
    """``rep_id`` reported to ``manager_id`` from ``start`` (inclusive; ``None``: always) until
    ``end`` (exclusive; ``None``: still does)."""

    rep_id: str = attrs.field(validator=_nonempty)
    manager_id: str | None
    start: date | None = attrs.field(default=None, validator=_opt_date)
    end: date | None = attrs.field(default=None, validator=_opt_date)

    def __attrs_post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise DomainError(f"reporting line of {self.rep_id}: end {self.end} must be after start {self.start}")


class OrgHistory:
    """Who reported to whom, and when: the hierarchy as it was on any day.

    Overrides and team credits follow the manager of the credited rep on the day of the credit,
    so reorganisations never move credit that was already earned.
    """

    def __init__(self, lines: Iterable[ReportingLine] = ()) -> None:
        by: dict[str, list[ReportingLine]] = {}
        for ln in lines:
            by.setdefault(ln.rep_id, []).append(ln)
        problems = []
        self._lines: dict[str, list[ReportingLine]] = {}
        self._starts: dict[str, list[date]] = {}
        for rep, lst in by.items():
            lst.sort(key=lambda x: x.start or date.min)
            for a, b in itertools.pairwise(lst):
                a_end = a.end or date.max
                if (b.start or date.min) < a_end:
                    problems.append(Problem(
                        f"org[{rep}]", "overlap",
                        f"reporting lines of {rep} overlap: {a.start}..{a.end} and {b.start}..{b.end}",
                    ))
            self._lines[rep] = lst
            self._starts[rep] = [x.start or date.min for x in lst]
        if problems:
            raise IncentiveError(problems)

    @classmethod
    def from_reps(cls, reps: Iterable[Any]) -> OrgHistory:
        """The current hierarchy of ``reps`` (their ``manager_id``), valid on every day."""
        return cls(ReportingLine(r.id, r.manager_id) for r in reps if r.manager_id)

    @property
    def lines(self) -> tuple[ReportingLine, ...]:
        return tuple(x for k in sorted(self._lines) for x in self._lines[k])

    def manager_of(self, rep_id: str, on: date) -> str | None:
        lst = self._lines.get(rep_id)
        if not lst:
            return None
        i = bisect.bisect_right(self._starts[rep_id], on) - 1
        if i < 0:
            return None
        ln = lst[i]
        if ln.end is not None and on >= ln.end:
            return None
        return ln.manager_id

    def chain(self, rep_id: str, on: date, levels: int) -> list[str]:
        """The managers above ``rep_id`` on ``on``, nearest first, at most ``levels`` of them."""
        out: list[str] = []
        cur = rep_id
        seen = {rep_id}
        while len(out) < levels:
            m = self.manager_of(cur, on)
            if m is None or m in seen:
                break
            out.append(m)
            seen.add(m)
            cur = m
        return out

    def reports_of(self, manager_id: str, on: date) -> list[str]:
        """Direct reports of ``manager_id`` on ``on``."""
        return sorted(r for r in self._lines if self.manager_of(r, on) == manager_id)


def _tuple(v: Iterable[Any] | None) -> tuple[Any, ...]:
    return tuple(v or ())


def _fx(v: FxTable | Iterable[FxRate] | None) -> FxTable:
    if isinstance(v, FxTable):
        return v
    return FxTable(v or ())


def _org(v: OrgHistory | Iterable[ReportingLine] | None) -> OrgHistory | None:
    if v is None or isinstance(v, OrgHistory):
        return v
    return OrgHistory(v)


@attrs.frozen(eq=False)
class CommissionInputs:
    """Everything a commission run needs besides deals and entities.

    ``org=None`` means the current hierarchy of the reps (their ``manager_id``).
    """

    invoices: tuple[Invoice, ...] = attrs.field(default=(), converter=_tuple)
    payments: tuple[Payment, ...] = attrs.field(default=(), converter=_tuple)
    refunds: tuple[Refund, ...] = attrs.field(default=(), converter=_tuple)
    churns: tuple[Churn, ...] = attrs.field(default=(), converter=_tuple)
    splits: tuple[Split, ...] = attrs.field(default=(), converter=_tuple)
    quotas: tuple[Quota, ...] = attrs.field(default=(), converter=_tuple)
    adjustments: tuple[Adjustment, ...] = attrs.field(default=(), converter=_tuple)
    fx: FxTable = attrs.field(factory=FxTable, converter=_fx)
    org: OrgHistory | None = attrs.field(default=None, converter=_org)

    # --- reading ------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> CommissionInputs:
        """Read inputs from JSON-like data; every bad record is reported in one
        :class:`IncentiveError` (paths such as ``payments[3].amount``).

        Keys: ``invoices``, ``payments``, ``refunds``, ``churns``, ``splits``, ``quotas``,
        ``adjustments``, ``fx`` and ``org`` (lists of objects); money as ``{"amount": "10.00",
        "currency": "CNY"}`` or ``"10.00 CNY"``; instants as ISO 8601 with an offset.
        """
        problems: list[Problem] = []
        known = {"invoices", "payments", "refunds", "churns", "splits", "quotas", "adjustments",
                 "fx", "org"}
        if not isinstance(data, Mapping):
            raise IncentiveError([Problem("", "type", "inputs must be an object")], source=source)
        for k in data:
            if k not in known:
                problems.append(Problem(k, "unknown_key",
                                        f"unknown key {k!r} (known: {', '.join(sorted(known))})"))
        out: dict[str, list[Any]] = {}
        for key, builder in _BUILDERS.items():
            items = data.get(key, [])
            if not isinstance(items, list):
                problems.append(Problem(key, "type", f"{key} must be a list"))
                continue
            built: list[Any] = []
            for i, rec in enumerate(items):
                path = f"{key}[{i}]"
                if not isinstance(rec, Mapping):
                    problems.append(Problem(path, "type", "expected an object"))
                    continue
                try:
                    built.append(builder(_Reader(rec, path, problems)))
                except _Skip:
                    continue
                except (DomainError, TypeError, ValueError) as e:
                    problems.append(Problem(path, "invalid", str(e)))
            out[key] = built
        org: OrgHistory | None = None
        fx = FxTable()
        if not problems:
            try:
                fx = FxTable(out.get("fx", ()))
                org = OrgHistory(out["org"]) if "org" in data else None
            except IncentiveError as e:
                problems.extend(e.problems)
        if problems:
            raise IncentiveError(problems, source=source)
        return cls(
            invoices=out["invoices"], payments=out["payments"], refunds=out["refunds"],
            churns=out["churns"], splits=out["splits"], quotas=out["quotas"],
            adjustments=out["adjustments"], fx=fx, org=org,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data that :meth:`from_dict` reads back."""
        def m(v: Money | None) -> Any:
            return None if v is None else {"amount": str(v.amount), "currency": v.currency}

        def t(v: datetime) -> str:
            return v.isoformat()

        d: dict[str, Any] = {
            "invoices": [{"id": x.id, "deal_id": x.deal_id, "at": t(x.at), "amount": m(x.amount),
                          **({"product_id": x.product_id} if x.product_id else {})}
                         for x in self.invoices],
            "payments": [{"id": x.id, "invoice_id": x.invoice_id, "at": t(x.at), "amount": m(x.amount)}
                         for x in self.payments],
            "refunds": [{"id": x.id, "deal_id": x.deal_id, "at": t(x.at),
                         **({"amount": m(x.amount)} if x.amount is not None else {})}
                        for x in self.refunds],
            "churns": [{"id": x.id, "account_id": x.account_id, "at": t(x.at),
                        **({"deal_id": x.deal_id} if x.deal_id else {})} for x in self.churns],
            "splits": [{"deal_id": x.deal_id, "rep_id": x.rep_id, "share": str(x.share.value),
                        "kind": x.kind.value} for x in self.splits],
            "quotas": [{"rep_id": x.rep_id, "period": _period_out(x.period), "amount": m(x.amount)}
                       for x in self.quotas],
            "adjustments": [{"id": x.id, "rep_id": x.rep_id, "at": t(x.at), "amount": m(x.amount),
                             "reason": x.reason} for x in self.adjustments],
            "fx": [{"base": r.base, "quote": r.quote, "on": r.on.isoformat(), "rate": str(r.rate)}
                   for r in self.fx.rates],
        }
        if self.org is not None:
            d["org"] = [{"rep_id": x.rep_id, "manager_id": x.manager_id,
                         "start": x.start.isoformat() if x.start else None,
                         "end": x.end.isoformat() if x.end else None} for x in self.org.lines]
        return d


def _period_out(p: Period) -> str:
    return p.label if _reparse(p) else f"{p.start.isoformat()}..{p.end.isoformat()}"


def _reparse(p: Period) -> bool:
    try:
        q = Period.parse(p.label)
    except PeriodError:
        return False
    return (q.start, q.end) == (p.start, p.end)


class _Skip(Exception):
    pass


class _Reader:
    """Field access for one input record that records problems instead of stopping."""

    def __init__(self, rec: Mapping[str, Any], path: str, problems: list[Problem]) -> None:
        self.rec = rec
        self.path = path
        self.problems = problems
        self.bad = False

    def _fail(self, field: str, code: str, msg: str) -> None:
        self.problems.append(Problem(f"{self.path}.{field}", code, msg))
        self.bad = True

    def text(self, field: str, *, required: bool = True) -> Any:
        v = self.rec.get(field)
        if v is None:
            if required:
                self._fail(field, "missing", f"{field} is required")
            return None
        if not isinstance(v, str) or not v:
            self._fail(field, "type", f"{field} must be a non-empty string")
            return None
        return v

    def instant(self, field: str) -> Any:
        v = self.rec.get(field)
        if not isinstance(v, str):
            self._fail(field, "missing" if v is None else "type",
                       f"{field} must be an ISO 8601 instant with an offset")
            return None
        try:
            d = datetime.fromisoformat(v)
        except ValueError:
            self._fail(field, "format", f"{field}: not an ISO 8601 instant: {v!r}")
            return None
        if d.tzinfo is None:
            self._fail(field, "naive", f"{field}: {v!r} has no timezone offset")
            return None
        return d

    def day(self, field: str, *, required: bool = True) -> Any:
        v = self.rec.get(field)
        if v is None:
            if required:
                self._fail(field, "missing", f"{field} is required (YYYY-MM-DD)")
            return None
        if isinstance(v, date) and not isinstance(v, datetime):
            return v
        try:
            return date.fromisoformat(str(v))
        except ValueError:
            self._fail(field, "format", f"{field}: not a date (YYYY-MM-DD): {v!r}")
            return None

    def money(self, field: str, *, required: bool = True) -> Any:
        v = self.rec.get(field)
        if v is None:
            if required:
                self._fail(field, "missing", f"{field} is required")
            return None
        try:
            if isinstance(v, str):
                amt, _, cur = v.strip().rpartition(" ")
                if not amt:
                    raise DomainError("write money as \"12.50 CNY\" or {amount, currency}")
                return Money(amt, cur)
            if isinstance(v, Mapping):
                return Money(v.get("amount"), v.get("currency"))
            raise DomainError("write money as \"12.50 CNY\" or {amount, currency}")
        except (DomainError, TypeError, ValueError) as e:
            self._fail(field, "money", f"{field}: {e}")
            return None

    def decimal(self, field: str) -> Any:
        v = self.rec.get(field)
        if v is None:
            self._fail(field, "missing", f"{field} is required")
            return None
        try:
            return to_decimal(v, field=field)
        except (DomainError, TypeError, ValueError) as e:
            self._fail(field, "number", str(e))
            return None

    def done(self, known: Sequence[str]) -> None:
        for k in self.rec:
            if k not in known:
                self._fail(k, "unknown_key", f"unknown field {k!r} (known: {', '.join(known)})")
        if self.bad:
            raise _Skip


def _b_invoice(r: _Reader) -> Invoice:
    v = (r.text("id"), r.text("deal_id"), r.instant("at"), r.money("amount"), r.text("product_id", required=False))
    r.done(("id", "deal_id", "at", "amount", "product_id"))
    return Invoice(*v)


def _b_payment(r: _Reader) -> Payment:
    v = (r.text("id"), r.text("invoice_id"), r.instant("at"), r.money("amount"))
    r.done(("id", "invoice_id", "at", "amount"))
    return Payment(*v)


def _b_refund(r: _Reader) -> Refund:
    v = (r.text("id"), r.text("deal_id"), r.instant("at"), r.money("amount", required=False))
    r.done(("id", "deal_id", "at", "amount"))
    return Refund(*v)


def _b_churn(r: _Reader) -> Churn:
    v = (r.text("id"), r.text("account_id"), r.instant("at"), r.text("deal_id", required=False))
    r.done(("id", "account_id", "at", "deal_id"))
    return Churn(*v)


def _b_split(r: _Reader) -> Split:
    v = (r.text("deal_id"), r.text("rep_id"), r.decimal("share"))
    kind = r.rec.get("kind", "revenue")
    r.done(("deal_id", "rep_id", "share", "kind"))
    return Split(*v, kind=kind)


def _b_quota(r: _Reader) -> Quota:
    p = r.text("period")
    m = r.money("amount")
    rep = r.text("rep_id")
    r.done(("rep_id", "period", "amount"))
    try:
        period = Period.parse(p)
    except PeriodError as e:
        raise DomainError(f"period: {e}") from None
    return Quota(rep, period, m)


def _b_adjustment(r: _Reader) -> Adjustment:
    v = (r.text("id"), r.text("rep_id"), r.instant("at"), r.money("amount"))
    reason = r.rec.get("reason", "")
    r.done(("id", "rep_id", "at", "amount", "reason"))
    return Adjustment(*v, reason=str(reason))


def _b_fx(r: _Reader) -> FxRate:
    v = (r.text("base"), r.text("quote"), r.day("on"), r.decimal("rate"))
    r.done(("base", "quote", "on", "rate"))
    return FxRate(*v)


def _b_org(r: _Reader) -> ReportingLine:
    rep = r.text("rep_id")
    mgr = r.rec.get("manager_id")
    if mgr is not None and (not isinstance(mgr, str) or not mgr):
        r._fail("manager_id", "type", "manager_id must be a string or null")
    v = (r.day("start", required=False), r.day("end", required=False))
    r.done(("rep_id", "manager_id", "start", "end"))
    return ReportingLine(rep, mgr, *v)


_BUILDERS: dict[str, Any] = {
    "invoices": _b_invoice,
    "payments": _b_payment,
    "refunds": _b_refund,
    "churns": _b_churn,
    "splits": _b_split,
    "quotas": _b_quota,
    "adjustments": _b_adjustment,
    "fx": _b_fx,
    "org": _b_org,
}

