"""Statements: one rep, one settlement period, lines that add up to the total to the cent."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import attrs

from .._record import Record
from ..money import Money
from ..periods import Period, PeriodKind

__all__ = ["LineKind", "Statement", "StatementLine"]


class LineKind:
    """The kinds of statement lines."""

    COMMISSION = "commission"
    """Commission on a credit dated in the period."""
    TRUE_UP = "true_up"
    """The change, this period, of the commission on a credit of an earlier settlement period of
    the same attainment period (a retroactive tier reached, attainment lowered by a reversal)."""
    CLAWBACK = "clawback"
    """Commission taken back because of a refund or churn within the clawback window."""
    REVERSAL = "reversal"
    """Commission taken back because the credit itself was undone (reopened, lost, lowered,
    credit note)."""
    SPIF = "spif"
    ADJUSTMENT = "adjustment"
    CAP = "cap"
    """Commission above the payout cap, withheld (negative)."""
    DEFICIT_RECOVERY = "deficit_recovery"
    DRAW = "draw"
    DRAW_RECOVERY = "draw_recovery"
    CARRY_FORWARD = "carry_forward"
    """A negative period brought to zero; the deficit is recovered from later earnings."""
    FLOOR = "floor"
    """A top-up to the plan's minimum payout."""

    EARNINGS = frozenset({COMMISSION, TRUE_UP, CLAWBACK, REVERSAL, SPIF, ADJUSTMENT, CAP})


class StatementLine(Record):
    """One line of a statement, in minor units of the statement currency.

    ``source`` is the :class:`~salesprocess.incentives.Credit`, SPIF award or
    :class:`~salesprocess.incentives.Adjustment` the line comes from (``None`` for period-level
    lines and for lines read back from a snapshot, which keep their references in ``detail``).
    """

    __slots__ = ()
    kind: str
    amount_minor: int
    currency: str
    rule: str
    plan_version: int
    source: Any
    base: Any
    """The amount the rate applied to, in minor units (``int`` or exact ``Decimal``)."""
    rate: Decimal | None
    note: str
    detail: Any

    @property
    def amount(self) -> Money:
        return Money.from_minor(self.amount_minor, self.currency)

    def _src(self, name: str) -> Any:
        d = self.detail
        if d is not None:
            return d.get(name)
        return getattr(self.source, name, None)

    @property
    def deal_id(self) -> str | None:
        return self._src("deal_id")  # type: ignore[no-any-return]

    @property
    def event(self) -> str | None:
        """The event the line traces to: ``DEAL#INDEX`` for a deal event, or ``invoice:ID``,
        ``payment:ID``, ``refund:ID``, ``churn:ID``, ``adjustment:ID``."""
        if self.detail is not None:
            return self.detail.get("event")  # type: ignore[no-any-return]
        s = self.source
        if s is None:
            return None
        ref = getattr(s, "ref", None)
        if ref is not None:
            return ref  # type: ignore[no-any-return]
        if hasattr(s, "reason"):
            return f"adjustment:{s.id}"
        return None

    @property
    def at(self) -> datetime | None:
        if self.detail is not None:
            v = self.detail.get("at")
            return datetime.fromisoformat(v) if isinstance(v, str) else v
        return getattr(self.source, "at", None)

    @property
    def role(self) -> str | None:
        return self._src("role")  # type: ignore[no-any-return]

    @property
    def base_amount(self) -> Money | None:
        if self.base is None:
            return None
        b = self.base
        if isinstance(b, int) or b == b.to_integral_value():
            return Money.from_minor(int(b), self.currency)
        from ..money import minor_units

        return Money(Decimal(b).scaleb(-minor_units(self.currency)), self.currency)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "amount": str(self.amount.amount),
            "rule": self.rule,
            "plan_version": self.plan_version,
        }
        for k in ("deal_id", "event", "role"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        at = self.at
        if at is not None:
            d["at"] = at.isoformat()
        b = self.base_amount
        if b is not None:
            d["base"] = str(b.amount)
        if self.rate is not None:
            d["rate"] = str(self.rate)
        if self.note:
            d["note"] = self.note
        s = self.source
        if self.detail is not None:
            for k in ("via", "share", "source_amount", "fx"):
                if k in self.detail:
                    d[k] = self.detail[k]
        elif s is not None:
            via = getattr(s, "via", None)
            if via:
                d["via"] = via
            share = getattr(s, "share", None)
            if isinstance(share, Decimal):
                d["share"] = str(share)
            src = getattr(s, "source", None)
            if isinstance(src, Money):
                d["source_amount"] = f"{src.amount} {src.currency}"
            fx = getattr(s, "fx", None)
            if fx is not None:
                d["fx"] = str(fx)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], currency: str) -> StatementLine:
        from ..money import minor_units

        exp = minor_units(currency)
        amount = int(Decimal(d["amount"]).scaleb(exp))
        base = d.get("base")
        detail = {k: d[k] for k in ("deal_id", "event", "role", "at", "via", "share", "source_amount", "fx")
                  if k in d}
        return cls._make((
            d["kind"], amount, currency, d["rule"], int(d["plan_version"]), None,
            None if base is None else Decimal(base).scaleb(exp),
            None if d.get("rate") is None else Decimal(d["rate"]), d.get("note", ""), detail,
        ))


def _or(v: Money | None, default: Money) -> Money:
    return default if v is None else v


def _m(v: Money | None) -> Any:
    return None if v is None else str(v.amount)


@attrs.frozen(eq=False)
class Statement:
    """A rep's statement for one settlement period of a plan.

    ``total`` is the sum of ``lines`` (always, to the minor unit). ``credited`` is the credit
    counting toward attainment in the attainment period so far, ``attainment`` its ratio to the
    quota and ``tier`` the rate band reached. ``withheld`` is what the payout cap held back this
    period (``withheld_to_date`` in the attainment period so far). ``draw_balance`` and
    ``deficit`` are what remains to be recovered after this period.
    """

    plan_key: str
    plan_name: str
    plan_version: int | None
    rep_id: str
    rep_name: str | None
    period: Period
    attainment_period: Period
    currency: str
    lines: tuple[StatementLine, ...]
    quota: Money | None
    credited: Money
    attainment: Decimal | None
    tier: str | None
    withheld: Money
    withheld_to_date: Money
    draw_balance: Money
    deficit: Money

    @property
    def total(self) -> Money:
        return Money.from_minor(sum(ln.amount_minor for ln in self.lines), self.currency)

    @property
    def earnings(self) -> Money:
        """The lines before draws, deficits and floors."""
        return Money.from_minor(
            sum(ln.amount_minor for ln in self.lines if ln.kind in LineKind.EARNINGS), self.currency)

    def lines_of(self, kind: str) -> list[StatementLine]:
        return [ln for ln in self.lines if ln.kind == kind]

    def subtotals(self) -> dict[str, Money]:
        """The total of each kind of line."""
        out: dict[str, int] = {}
        for ln in self.lines:
            out[ln.kind] = out.get(ln.kind, 0) + ln.amount_minor
        return {k: Money.from_minor(v, self.currency) for k, v in out.items()}

    def to_dict(self, *, lines: bool = True) -> dict[str, Any]:
        """JSON-safe data (amounts as strings); :meth:`from_dict` reads it back."""
        d: dict[str, Any] = {
            "plan": self.plan_key,
            "plan_name": self.plan_name,
            "plan_version": self.plan_version,
            "rep_id": self.rep_id,
            "rep_name": self.rep_name,
            "period": self.period.label,
            "period_start": self.period.start.isoformat(),
            "period_end": self.period.end.isoformat(),
            "period_kind": self.period.kind.value,
            "attainment_period": self.attainment_period.label,
            "attainment_start": self.attainment_period.start.isoformat(),
            "attainment_end": self.attainment_period.end.isoformat(),
            "attainment_kind": self.attainment_period.kind.value,
            "currency": self.currency,
            "total": _m(self.total),
            "earnings": _m(self.earnings),
            "quota": _m(self.quota),
            "credited": _m(self.credited),
            "attainment": None if self.attainment is None else str(self.attainment),
            "tier": self.tier,
            "withheld": _m(self.withheld),
            "withheld_to_date": _m(self.withheld_to_date),
            "draw_balance": _m(self.draw_balance),
            "deficit": _m(self.deficit),
            "line_count": len(self.lines),
        }
        if lines:
            d["lines"] = [ln.to_dict() for ln in self.lines]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Statement:
        cur = d["currency"]

        def m(v: Any) -> Money | None:
            return None if v is None else Money(v, cur)

        def per(prefix: str, label: str) -> Period:
            return Period(date.fromisoformat(d[f"{prefix}_start"]), date.fromisoformat(d[f"{prefix}_end"]),
                          PeriodKind(d[f"{prefix}_kind"]), label)

        zero = Money.zero(cur)
        return cls(
            plan_key=d["plan"], plan_name=d["plan_name"], plan_version=d["plan_version"],
            rep_id=d["rep_id"], rep_name=d.get("rep_name"),
            period=per("period", d["period"]),
            attainment_period=per("attainment", d["attainment_period"]),
            currency=cur,
            lines=tuple(StatementLine.from_dict(x, cur) for x in d.get("lines", ())),
            quota=m(d.get("quota")), credited=_or(m(d.get("credited")), zero),
            attainment=None if d.get("attainment") is None else Decimal(d["attainment"]),
            tier=d.get("tier"), withheld=_or(m(d.get("withheld")), zero),
            withheld_to_date=_or(m(d.get("withheld_to_date")), zero),
            draw_balance=_or(m(d.get("draw_balance")), zero), deficit=_or(m(d.get("deficit")), zero),
        )

    @property
    def digest(self) -> str:
        """SHA-256 of the statement's canonical JSON: equal digests, equal statements."""
        text = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Statement):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]
