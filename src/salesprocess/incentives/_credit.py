"""Crediting: who gets credit for what, when, and how much.

Deals (their event histories) and the plain inputs become :class:`Credit` records in the plan's
currency and minor units:

- **Positive credits** come from the basis: a deal won (and raised while won) on ``booking``,
  an invoice on ``invoice``, a payment on ``cash``. Each is converted at the FX rate of its day,
  then split among its holders: the revenue splits (which must total exactly 100 %, allocated in
  minor units so no cent is created or lost), or else the owner when the deal was won; overlay
  splits on top; and overrides for the managers above each holder on that day.
- **Reductions** take back a share of earlier positive credits of the same deal: a reopened or
  lost won deal, an amount lowered while won, a credit note (``reversal``); and, within the
  clawback window of the credit, a refund or churn (``clawback``). Each reduction records the
  cumulative fraction of the credit it takes back, so repeated partial reductions never take back
  more than the credit, and a full one takes back exactly all of it.
- **SPIF awards** come from deals won inside a SPIF's window.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from .._record import Record
from ..errors import Problem
from ..model import (
    EVENT_TYPES,
    AmountChanged,
    Deal,
    DealCreated,
    DealStatus,
    OwnerChanged,
    StageChanged,
)
from ..money import _CTX, Money, _int_weights
from ..money import _allocate_scaled as _allocate
from ._inputs import CommissionInputs, OrgHistory, SplitKind
from ._plan import CreditBasis, Plan, PlanVersion, RateRule, Spif

__all__ = ["Credit", "CreditBook", "SpifAward", "credit_deals"]

_ONE = Decimal(1)
_ZERO = Decimal(0)
_WON = DealStatus.WON


class Credit(Record):
    """One rep's credit from one event of one deal (amounts in the plan's minor units).

    ``role`` is ``owner``, ``revenue`` (a revenue split), ``overlay`` or ``override``; ``kind``
    is ``booking``, ``adjustment`` (raised while won), ``invoice`` or ``payment`` for positive
    credits and ``reversal``, ``credit_note``, ``refund`` or ``churn`` for reductions. ``event`` is the index of the deal
    event, or the id of the invoice, payment, refund or churn record. For a reduction, ``of`` is
    the index of the credit it reduces, ``fraction`` the cumulative share of that credit taken
    back once it applies and ``prior`` the share taken back before it; ``amount`` is then the
    change to attainment (zero or negative).
    """

    __slots__ = ()
    rep_id: str
    deal_id: str
    role: str
    kind: str
    event: Any
    at: datetime
    day: date
    amount: int
    version: int
    rule: int
    counts: bool
    share: Decimal | None
    source: Money | None
    fx: Decimal | None
    via: str | None
    of: int
    fraction: Decimal | None
    prior: Decimal | None

    @property
    def ref(self) -> str:
        """A readable reference to the event: ``deal-7#3`` or ``payment:P-19``."""
        if isinstance(self.event, int):
            return f"{self.deal_id}#{self.event}"
        return f"{_REF.get(self.kind, self.kind)}:{self.event}"

    @property
    def is_reduction(self) -> bool:
        return self.of >= 0


_REF = {"credit_note": "invoice"}
WINDOWED = frozenset({"refund", "churn"})
"""Reduction kinds limited to the clawback window (the others undo the credit itself)."""


class SpifAward(Record):
    """A SPIF bonus for a rep on a deal, in minor units; negative when taken back, then
    ``kind`` says why (``reversal``, ``credit_note``, ``refund``, ``churn``; ``won`` otherwise)."""

    __slots__ = ()
    rep_id: str
    deal_id: str
    spif: str
    version: int
    kind: str
    event: Any
    at: datetime
    day: date
    amount: int
    units: int
    """How many qualifying products (or 1 per deal); negative when taken back."""

    @property
    def ref(self) -> str:
        if isinstance(self.event, int):
            return f"{self.deal_id}#{self.event}"
        return f"{_REF.get(self.kind, self.kind)}:{self.event}"


class CreditBook:
    """The credits, SPIF awards, problems and notes of one crediting run."""

    def __init__(self) -> None:
        self.credits: list[Credit] = []
        self.awards: list[SpifAward] = []
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self.reps_seen: set[str] = set()

    def by_rep(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, c in enumerate(self.credits):
            rep = c[0]
            lst = out.get(rep)
            if lst is None:
                out[rep] = [i]
            else:
                lst.append(i)
        return out


# ------------------------------------------------------------------------------------------------


class _DealCtx:
    """Per-deal state while its events are credited."""

    __slots__ = ("awarded", "currency", "net", "positives", "products", "rules")

    def __init__(self, products: tuple[str, ...]) -> None:
        self.positives: list[int] = []  # indices of positive credits (all holders)
        self.net = _ZERO  # credited base still standing, in the deal's currency
        self.rules: dict[int, int] | None = None  # made on first use
        self.awarded: dict[str, list[int]] | None = None  # spif name -> award indices standing
        self.products = products
        self.currency: str | None = None  # of the credited events


class _Crediter:
    def __init__(self, plan: Plan, inputs: CommissionInputs, reps: Mapping[str, Any],
                 accounts: Mapping[str, Any], products: Mapping[str, Any], *, fast: bool = True) -> None:
        self.plan = plan
        self.fast = fast
        self.tz = plan.tz
        self.currency = plan.currency
        self.scale = Decimal(10) ** plan.exponent
        self.unit = 10 ** plan.exponent
        self.inputs = inputs
        self.reps = reps
        self.accounts = accounts
        self.families = {k: getattr(p, "family", None) for k, p in products.items()}
        self.org: OrgHistory = inputs.org if inputs.org is not None else OrgHistory.from_reps(reps.values())
        self.book = CreditBook()
        self._vstarts = [v.effective_from for v in plan.versions]
        self._vcache: dict[date, PlanVersion | None] = {}
        self._chain_cache: dict[tuple[str, date, int], list[str]] = {}
        self.utc = plan.timezone == "UTC"
        # splits
        self.revenue: dict[str, list[tuple[str, Decimal]]] = {}
        self.overlay: dict[str, list[tuple[str, Decimal]]] = {}
        for s in inputs.splits:
            target = self.revenue if s.kind is SplitKind.REVENUE else self.overlay
            target.setdefault(s.deal_id, []).append((s.rep_id, s.share.value))
        for deal_id, lst in sorted(self.revenue.items()):
            total = sum((x for _, x in lst), _ZERO)
            seen: set[str] = set()
            for rep, _ in lst:
                if rep in seen:
                    self.book.problems.append(Problem(
                        f"splits[{deal_id}]", "split", f"deal {deal_id}: {rep} has two revenue splits"))
                seen.add(rep)
            if total != 1:
                self.book.problems.append(Problem(
                    f"splits[{deal_id}]", "split",
                    f"deal {deal_id}: revenue splits total {total * 100}%, not 100%"))
            lst.sort()
        for lst in self.overlay.values():
            lst.sort()
        # the integer weights of each deal's revenue split (one per distinct set of shares)
        self.rev_weights: dict[str, tuple[list[int], int]] = {}
        by_shares: dict[tuple[Decimal, ...], tuple[list[int], int]] = {}
        for deal_id, lst in self.revenue.items():
            key = tuple(x for _, x in lst)
            w = by_shares.get(key)
            if w is None:
                w = by_shares[key] = _int_weights(key)
            self.rev_weights[deal_id] = w
        # invoices and payments
        self.invoices: dict[str, list[Any]] = {}
        self.invoice_by_id: dict[str, Any] = {}
        for inv in inputs.invoices:
            if inv.id in self.invoice_by_id:
                self.book.problems.append(Problem(f"invoices[{inv.id}]", "duplicate", f"invoice {inv.id} given twice"))
                continue
            self.invoice_by_id[inv.id] = inv
            self.invoices.setdefault(inv.deal_id, []).append(inv)
        self.payments: dict[str, list[Any]] = {}
        paid: dict[str, Decimal] = {}
        for pay in inputs.payments:
            pinv = self.invoice_by_id.get(pay.invoice_id)
            if pinv is None:
                self.book.problems.append(Problem(
                    f"payments[{pay.id}]", "unknown_invoice", f"payment {pay.id}: no invoice {pay.invoice_id}"))
                continue
            if pay.amount.currency != pinv.amount.currency:
                self.book.problems.append(Problem(
                    f"payments[{pay.id}]", "currency",
                    f"payment {pay.id} is in {pay.amount.currency}, invoice {pinv.id} in {pinv.amount.currency}"))
                continue
            paid[pinv.id] = paid.get(pinv.id, _ZERO) + pay.amount.amount
            if paid[pinv.id] > pinv.amount.amount:
                self.book.problems.append(Problem(
                    f"payments[{pay.id}]", "overpaid",
                    f"payments of invoice {pinv.id} exceed its amount {pinv.amount}"))
            self.payments.setdefault(pinv.deal_id, []).append(pay)
        self.refunds: dict[str, list[Any]] = {}
        for r in inputs.refunds:
            self.refunds.setdefault(r.deal_id, []).append(r)
        self.churn_accounts: dict[str, list[Any]] = {}
        for c in inputs.churns:
            self.churn_accounts.setdefault(c.account_id, []).append(c)
        self.deals_seen: set[str] = set()
        # deals with a refund or a split: one look-up tells the short path to leave them alone
        self._special: frozenset[str] = frozenset(self.refunds).union(self.revenue, self.overlay)
        self._reduced: dict[int, Decimal] = {}  # positive credit -> share taken back so far
        self._days: dict[date, date] = {}
        self._last_at: datetime | None = None
        self._last_day = date.min
        self.roles: dict[str, str | None] = {k: getattr(r, "role", None) for k, r in reps.items()}
        self.booking = plan.basis is CreditBasis.BOOKING
        self.any_spifs = any(v.spifs for v in plan.versions)
        self._admit: dict[int, dict[str, bool]] = {}
        self._spif_on: dict[date, Any] = {}
        self._rules: dict[tuple[int, tuple[str, ...]], int] = {}
        self._segmented = {v.version: any(r.segment for r in v.rates.rules) for v in plan.versions}

    # --- helpers ---------------------------------------------------------------------------------
    def day(self, at: datetime) -> date:
        if at is self._last_at:
            return self._last_day
        if at.tzinfo is self.tz:  # already in the plan's timezone: astimezone would change nothing
            d = at.date()
        else:
            d = at.date() if self.utc and at.utcoffset() == timedelta(0) else at.astimezone(self.tz).date()
        d = self._days.setdefault(d, d)  # one date object per day, shared by its credits
        self._last_at = at
        self._last_day = d
        return d

    def version(self, day: date) -> PlanVersion | None:
        try:
            return self._vcache[day]
        except KeyError:
            pass
        i = bisect.bisect_right(self._vstarts, day) - 1
        v = None
        if i >= 0:
            v = self.plan.versions[i]
            if v.effective_to is not None and day > v.effective_to:
                v = None
        self._vcache[day] = v
        return v

    def role(self, rep_id: str) -> str | None:
        return self.roles.get(rep_id)

    def admits(self, version: PlanVersion, rep_id: str) -> bool:
        cache = self._admit.get(version.version)
        if cache is None:
            cache = self._admit[version.version] = {}
        ok = cache.get(rep_id)
        if ok is None:
            ok = cache[rep_id] = version.eligibility.admits(rep_id, self.roles.get(rep_id))
        return ok

    def to_minor(self, m: Money, day: date, version: PlanVersion, deal_id: str,
                 what: str = "") -> tuple[int, Decimal | None] | None:
        """``m`` in the plan's minor units at the FX rate of ``day`` (rounded with the fx mode)."""
        if m.currency == self.currency:
            v = _CTX.multiply(m.amount, self.scale)
            return int(v.to_integral_value(rounding=version.rounding.fx)), None
        rate = self.inputs.fx.find(m.currency, self.currency, day)
        if rate is None:
            self.book.problems.append(Problem(
                f"deals[{deal_id}]", "missing_rate",
                f"deal {deal_id}{what}: no {m.currency}/{self.currency} exchange rate on or before {day}"))
            return None
        v = _CTX.multiply(_CTX.multiply(m.amount, rate), self.scale)
        return int(v.to_integral_value(rounding=version.rounding.fx)), rate

    def chain(self, rep_id: str, day: date, levels: int) -> list[str]:
        k = (rep_id, day, levels)
        c = self._chain_cache.get(k)
        if c is None:
            c = self.org.chain(rep_id, day, levels)
            self._chain_cache[k] = c
        return c

    def segment_value(self, deal: Deal, field: str) -> str | None:
        if field.startswith("custom."):
            v = deal.custom.get(field[7:])
            return None if v is None else str(v)
        acc = self.accounts.get(deal.account_id) if deal.account_id else None
        if field == "account":
            return deal.account_id
        if acc is None:
            return None
        v = getattr(acc, field, None)
        return None if v is None else str(v)

    def matches(self, deal: Deal, products: tuple[str, ...], products_set: frozenset[str],
                families: frozenset[str], segment: tuple[tuple[str, frozenset[str]], ...]) -> bool:
        if products_set or families:
            fam = self.families
            if not any(p in products_set or (families and fam.get(p) in families) for p in products):
                return False
        return all(self.segment_value(deal, fld) in values for fld, values in segment)

    def rule_index(self, version: PlanVersion, deal: Deal, products: tuple[str, ...]) -> int:
        rules: tuple[RateRule, ...] = version.rates.rules
        if not rules:
            return -1
        cacheable = not self._segmented[version.version]
        if cacheable:
            k = (version.version, products)
            hit = self._rules.get(k)
            if hit is not None:
                return hit
        found = -1
        for i, r in enumerate(rules):
            if self.matches(deal, products, r.products, r.families, r.segment):
                found = i
                break
        if cacheable:
            self._rules[k] = found
        return found

    # --- holders ---------------------------------------------------------------------------------
    def holders(self, deal: Deal, owner: str | None, amount: int, day: date, version: PlanVersion,
                ) -> list[tuple[str, str, int, Decimal | None, bool, str | None]] | None:
        """(rep, role, amount, share, counts, via) of everyone credited for ``amount``."""
        cr = version.crediting
        rev = self.revenue.get(deal.id)
        if rev is None and not cr.overrides and cr.direct and deal.id not in self.overlay and owner is not None:
            return [(owner, "owner", amount, None, True, None)]
        out: list[tuple[str, str, int, Decimal | None, bool, str | None]] = []
        direct: list[tuple[str, int]]
        if rev:
            parts = _allocate(abs(amount), *self.rev_weights[deal.id])
            sign = -1 if amount < 0 else 1
            direct = [(rep, sign * p) for (rep, _), p in zip(rev, parts, strict=True)]
            role = "revenue"
            shares: list[Decimal | None] = [s for _, s in rev]
        else:
            if owner is None:
                self.book.problems.append(Problem(f"deals[{deal.id}]", "no_owner",
                                                  f"deal {deal.id}: credited without an owner or splits"))
                return None
            direct = [(owner, amount)]
            role = "owner"
            shares = [None]
        if cr.direct:
            for (rep, part), share in zip(direct, shares, strict=True):
                out.append((rep, role, part, share, True, None))
            for rep, share in self.overlay.get(deal.id, ()):
                part = _round(_CTX.multiply(Decimal(amount), share), version.rounding.mode)
                out.append((rep, "overlay", part, share, cr.overlay_counts, None))
        for ov in cr.overrides:
            for rep, part in direct:
                for mgr in self.chain(rep, day, ov.levels):
                    if ov.roles and self.role(mgr) not in ov.roles:
                        continue
                    val = part if ov.share == _ONE else _round(_CTX.multiply(Decimal(part), ov.share), version.rounding.mode)
                    out.append((mgr, "override", val, ov.share, ov.counts, rep))
        return out

    # --- one deal --------------------------------------------------------------------------------
    def deal(self, deal: Deal) -> None:
        did = deal.id
        if did in self.deals_seen:
            self.book.problems.append(Problem(f"deals[{did}]", "duplicate", f"deal {did} given twice"))
            return
        self.deals_seen.add(did)
        if self.fast and self.booking and self._won_once(deal):
            return
        ctx = _DealCtx(deal.product_ids)
        booking = self.booking
        spifs = self.any_spifs
        # Without inputs for the deal, its own events are handled as they come; otherwise
        # actions (at, order, event, tag, ...) are collected and merged with the inputs by time.
        has_inputs = not booking or did in self.refunds or (
            bool(self.churn_accounts) and deal.account_id in self.churn_accounts)
        actions: list[tuple[Any, ...]] = []
        act = actions.append
        direct = not has_inputs
        owners: list[tuple[datetime, str | None]] = []
        won_at_owner: list[tuple[datetime, str | None]] = []
        won_owner: str | None = None
        status = None
        amount: Money | None = None
        owner: str | None = None
        events: tuple[Any, ...] = deal.events
        for i, e in enumerate(events):
            t = type(e)
            if t is DealCreated:
                status = e.status
                amount = e.amount
                owner = e.owner_id
                if not booking:
                    owners.append((e.at, owner))
                if status is _WON:
                    won_owner = owner
                    if booking:
                        if direct:
                            self._credit(deal, ctx, e.at, i, "booking", amount, won_owner, None)
                        else:
                            act((e.at, 0, i, _CREDIT, "booking", amount, won_owner, None))
                    else:
                        won_at_owner.append((e.at, owner))
                    if spifs:
                        if direct:
                            self._spif(deal, ctx, e.at, i, amount, won_owner)
                        else:
                            act((e.at, 0, i, _SPIF, amount, won_owner))
            elif t is AmountChanged:
                old, amount = amount, e.new
                if status is _WON and booking:
                    for x in self._amount_change(e.at, i, old, amount, won_owner):
                        if direct:
                            self._now(deal, ctx)(x)
                        else:
                            act(x)
            elif t is OwnerChanged:
                owner = e.new
                if not booking:
                    owners.append((e.at, owner))
            elif t in _STAGE_TYPES:
                new = e.status
                if new is _WON and status is not _WON:
                    won_owner = owner
                    if booking:
                        if direct:
                            self._credit(deal, ctx, e.at, i, "booking", amount, won_owner, None)
                        else:
                            act((e.at, 0, i, _CREDIT, "booking", amount, won_owner, None))
                    else:
                        won_at_owner.append((e.at, owner))
                    if spifs:
                        if direct:
                            self._spif(deal, ctx, e.at, i, amount, won_owner)
                        else:
                            act((e.at, 0, i, _SPIF, amount, won_owner))
                elif status is _WON and new is not _WON:
                    if direct:
                        self._reduce(deal, ctx, e.at, i, "reversal", None)
                    else:
                        act((e.at, 0, i, _REDUCE, "reversal", None))
                status = new
        if not has_inputs:
            return
        if not booking:
            if self.plan.basis is CreditBasis.INVOICE:
                for inv in self.invoices.get(did, ()):
                    o = _owner_at(inv.at, won_at_owner, owners)
                    if inv.amount.amount > 0:
                        actions.append((inv.at, 1, inv.id, _CREDIT, "invoice", inv.amount, o, inv.product_id))
                    else:
                        actions.append((inv.at, 1, inv.id, _REDUCE, "credit_note", -inv.amount))
            else:
                for pay in self.payments.get(did, ()):
                    inv = self.invoice_by_id[pay.invoice_id]
                    o = _owner_at(pay.at, won_at_owner, owners)
                    actions.append((pay.at, 1, pay.id, _CREDIT, "payment", pay.amount, o, inv.product_id))
        for r in self.refunds.get(did, ()):
            actions.append((r.at, 2, r.id, _REDUCE, "refund", r.amount))
        if deal.account_id is not None and self.churn_accounts:
            for c in self.churn_accounts.get(deal.account_id, ()):
                if c.deal_id is None or c.deal_id == did:
                    actions.append((c.at, 2, c.id, _REDUCE, "churn", None))
        # the deal's own events come first at equal instants (a stable sort keeps their order)
        actions.sort(key=_action_key)
        run = self._now(deal, ctx)
        for a in actions:
            run(a)

    def _won_once(self, deal: Deal) -> bool:
        """Credit the commonest deal at once: created open, then won, nothing else, on the
        booking basis with no inputs for it, no splits, no overrides and the plan's currency.
        Returns False, having changed nothing, for any other deal (the general path then
        credits it); otherwise does exactly what the general path does."""
        events: tuple[Any, ...] = deal.events
        if len(events) != 2:
            return False
        e0, e1 = events
        if (type(e0) is not DealCreated or e0.status is _WON or type(e1) not in _STAGE_TYPES
                or e1.status is not _WON):
            return False
        did = deal.id
        if did in self._special or (self.churn_accounts and deal.account_id in self.churn_accounts):
            return False
        amount = e0.amount
        owner = e0.owner_id
        if amount is None or owner is None or amount.currency != self.currency:
            return False
        at = e1.at
        day = self._last_day if at is self._last_at else self.day(at)
        vc = self._vcache
        version = vc[day] if day in vc else self.version(day)
        if version is None:
            return True  # nothing credited, and no SPIF without a version
        cr = version.crediting
        if not cr.direct or cr.overrides:
            return False
        vv = version.version
        products = deal.product_ids
        if version.rates.rules:
            if self._segmented[vv]:
                return False
            rule = self._rules.get((vv, products))
            if rule is None:
                rule = self.rule_index(version, deal, products)
        else:
            rule = -1
        n, d = amount.amount.as_integer_ratio()
        q, rem = divmod(self.unit, d)
        if rem == 0:  # no more decimals than minor units: exact
            minor = n * q
        else:
            minor = int(_CTX.multiply(amount.amount, self.scale).to_integral_value(rounding=version.rounding.fx))
        cache = self._admit.get(vv)
        ok = None if cache is None else cache.get(owner)
        if ok is None:
            ok = self.admits(version, owner)
        if ok:
            self.book.credits.append(_tnew(Credit, (owner, did, "owner", "booking", 1, at, day, minor, vv, rule,
                                                    True, None, None, None, None, -1, None, None)))
        if self.any_spifs and self._spif_on.get(day, _MISSING) is not None:  # unknown or open that day
            self._spif(deal, _DealCtx(products), at, 1, amount, owner)
        return True

    def _now(self, deal: Deal, ctx: _DealCtx) -> Any:
        """A handler running one action at once."""
        def run(a: tuple[Any, ...]) -> None:
            tag = a[3]
            if tag is _CREDIT:
                self._credit(deal, ctx, a[0], a[2], a[4], a[5], a[6], a[7])
            elif tag is _REDUCE:
                self._reduce(deal, ctx, a[0], a[2], a[4], a[5])
            else:
                self._spif(deal, ctx, a[0], a[2], a[4], a[5])
        return run

    def _amount_change(self, at: datetime, i: int, old: Money | None, new: Money | None,
                       owner: str | None) -> list[tuple[Any, ...]]:
        if old is not None and new is not None and old.currency == new.currency:
            delta = new.amount - old.amount
            if delta > 0:
                return [(at, 0, i, _CREDIT, "adjustment", Money(delta, new.currency), owner, None)]
            if delta < 0:
                return [(at, 0, i, _REDUCE, "reversal", Money(-delta, new.currency))]
            return []
        out: list[tuple[Any, ...]] = []
        if old is not None:
            out.append((at, 0, i, _REDUCE, "reversal", None))
        if new is not None:
            out.append((at, 0, i, _CREDIT, "adjustment", new, owner, None))
        return out

    def _credit(self, deal: Deal, ctx: _DealCtx, at: datetime, ev: Any, kind: str,
                amount: Money | None, owner: str | None, product: str | None) -> None:
        if amount is None:
            self.book.problems.append(Problem(f"deals[{deal.id}]", "no_amount",
                                              f"{_where(deal, kind, ev)}: won without an amount"))
            return
        day = self._last_day if at is self._last_at else self.day(at)
        vc = self._vcache
        version = vc[day] if day in vc else self.version(day)
        if version is None:
            return
        if amount.currency == self.currency:
            n, d = amount.amount.as_integer_ratio()
            q, rem = divmod(self.unit, d)
            if rem == 0:  # no more decimals than minor units: exact
                minor = n * q
            else:
                minor = int(_CTX.multiply(amount.amount, self.scale).to_integral_value(rounding=version.rounding.fx))
            fx = None
        else:
            conv = self.to_minor(amount, day, version, deal.id)
            if conv is None:
                return
            minor, fx = conv
        did = deal.id
        cr = version.crediting
        fast = (owner is not None and cr.direct and not cr.overrides and did not in self.revenue
                and did not in self.overlay)
        holders = None if fast else self.holders(deal, owner, minor, day, version)
        if holders is None and not fast:
            return
        if version.rates.rules:
            products = (product,) if product else ctx.products
            vkey = version.version if product is None else -version.version - 1
            crules = ctx.rules
            if crules is None:
                crules = ctx.rules = {}
            rule = crules.get(vkey)
            if rule is None:
                hit = None if self._segmented[version.version] else self._rules.get((version.version, products))
                rule = hit if hit is not None else self.rule_index(version, deal, products)
                crules[vkey] = rule
        else:
            rule = -1
        credits = self.book.credits
        src = None if fx is None else amount
        if fast:
            # the common case: the owner alone
            assert owner is not None
            cache = self._admit.get(version.version)
            ok = None if cache is None else cache.get(owner)
            if ok is None:
                ok = self.admits(version, owner)
            if ok:
                ctx.positives.append(len(credits))
                credits.append(_tnew(Credit, (owner, did, "owner", kind, ev, at, day, minor, version.version, rule,
                                              True, None, src, fx, None, -1, None, None)))
        else:
            assert holders is not None
            add = credits.append
            admits = self.admits
            for rep, role, part, share, counts, via in holders:
                if not admits(version, rep):
                    continue
                ctx.positives.append(len(credits))
                add(_mkcredit((rep, did, role, kind, ev, at, day, part, version.version, rule, counts,
                               share, src, fx, via, -1, None, None)))
        ctx.net += amount.amount
        if ctx.currency is None:
            ctx.currency = amount.currency

    def _reduce(self, deal: Deal, ctx: _DealCtx, at: datetime, ev: Any, kind: str,
                amount: Money | None) -> None:
        windowed = kind in WINDOWED
        if ctx.net <= 0:
            if amount is not None and ctx.positives:
                self.book.problems.append(Problem(
                    f"deals[{deal.id}]", "over_reduction",
                    f"{kind} {ev} of deal {deal.id}: {amount} exceeds what is still credited (nothing)"))
            elif windowed:
                self.book.notes.append(f"{kind} {ev} of deal {deal.id}: nothing credited to claw back")
            return
        if amount is None:
            f = _ONE
            taken = ctx.net
        else:
            cur = self._deal_currency(deal, ctx)
            amt = amount.amount
            if cur is not None and amount.currency != cur:
                rate = self.inputs.fx.find(amount.currency, cur, self.day(at))
                if rate is None:
                    self.book.problems.append(Problem(
                        f"deals[{deal.id}]", "missing_rate",
                        f"{kind} {ev} of deal {deal.id}: no {amount.currency}/{cur} rate on {self.day(at)}"))
                    return
                amt = _CTX.multiply(amt, rate)
            if amt > ctx.net:
                self.book.problems.append(Problem(
                    f"deals[{deal.id}]", "over_reduction",
                    f"{kind} {ev} of deal {deal.id}: {amount} exceeds the credited {ctx.net}"))
                amt = ctx.net
            f = _CTX.divide(amt, ctx.net)
            taken = amt
        day = self.day(at)
        credits = self.book.credits
        hit = False
        for idx in ctx.positives:
            c = credits[idx]
            v = self.plan.version(c.version)
            # within N calendar days of the credit, in the plan's timezone
            if windowed and (kind not in v.clawback.on or (day - c.day).days > v.clawback.days):
                continue
            before = self._reduced.get(idx, _ZERO)
            if before >= 1:
                continue
            after = before + _CTX.multiply(f, _ONE - before)
            if after > 1:
                after = _ONE
            self._reduced[idx] = after
            mode = v.rounding.mode
            delta = _round(_CTX.multiply(after, Decimal(c.amount)), mode) - _round(
                _CTX.multiply(before, Decimal(c.amount)), mode)
            credits.append(Credit._make((
                c.rep_id, deal.id, c.role, kind, ev, at, day, -delta, c.version, c.rule, c.counts,
                c.share, None, None, c.via, idx, after, before)))
            hit = True
        if windowed and not hit:
            self.book.notes.append(
                f"{kind} {ev} of deal {deal.id}: outside the clawback window, nothing clawed back")
            return
        ctx.net -= taken
        # SPIFs go back when the deal is fully reversed, or fully refunded within their window
        awarded = ctx.awarded
        if ctx.net <= 0 and awarded:
            for name, idxs in list(awarded.items()):
                keep = []
                for ai in idxs:
                    a = self.book.awards[ai]
                    v = self.plan.version(a.version)
                    if windowed and (not v.clawback.spifs or kind not in v.clawback.on
                                     or (day - a.day).days > v.clawback.days):
                        keep.append(ai)
                        continue
                    self.book.awards.append(SpifAward._make((
                        a.rep_id, a.deal_id, a.spif, a.version, kind, ev, at, day, -a.amount, -a.units)))
                if keep:
                    awarded[name] = keep
                else:
                    del awarded[name]

    def _deal_currency(self, deal: Deal, ctx: _DealCtx) -> str | None:
        if ctx.currency is not None:
            return ctx.currency
        return deal.amount.currency if deal.amount is not None else None

    def _spif(self, deal: Deal, ctx: _DealCtx, at: datetime, ev: Any, amount: Money | None,
              owner: str | None) -> None:
        day = self._last_day if at is self._last_at else self.day(at)
        version = self._spif_on.get(day, _MISSING)
        if version is _MISSING:
            # the version of the day, when one of its SPIFs is open that day
            v = self.version(day)
            version = v if v is not None and any(s.start <= day <= s.end for s in v.spifs) else None
            self._spif_on[day] = version
        if version is None:
            return
        for s in version.spifs:
            if not s.start <= day <= s.end or (ctx.awarded is not None and s.name in ctx.awarded):
                continue
            n = self._spif_count(s, deal, ctx)
            if n == 0:
                continue
            if s.min_amount is not None:
                if amount is None:
                    continue
                conv = self.to_minor(amount, day, version, deal.id, f" SPIF {s.name}")
                if conv is None or conv[0] < _round(_CTX.multiply(s.min_amount, self.scale), version.rounding.mode):
                    continue
            total = _round(_CTX.multiply(_CTX.multiply(s.amount, Decimal(n)), self.scale), version.rounding.mode)
            rev = self.revenue.get(deal.id)
            if s.pay == "split" and rev:
                parts = _allocate(total, *self.rev_weights[deal.id])
                payees = [(rep, p) for (rep, _), p in zip(rev, parts, strict=True)]
            else:
                if owner is None:
                    continue
                payees = [(owner, total)]
            idxs = []
            for rep, p in payees:
                if not version.eligibility.admits(rep, self.role(rep)):
                    continue
                idxs.append(len(self.book.awards))
                self.book.awards.append(SpifAward._make((rep, deal.id, s.name, version.version, "won", ev, at, day, p, n)))
            if idxs:
                if ctx.awarded is None:
                    ctx.awarded = {}
                ctx.awarded[s.name] = idxs

    def _spif_count(self, s: Spif, deal: Deal, ctx: _DealCtx) -> int:
        for fld, values in s.segment:
            if self.segment_value(deal, fld) not in values:
                return 0
        if not s.products and not s.families:
            return 1
        hits = [p for p in ctx.products
                if p in s.products or (s.families and self.families.get(p) in s.families)]
        if not hits:
            return 0
        return len(hits) if s.per == "product" else 1



_MISSING: Any = object()
_mkcredit = Credit._make
_tnew = tuple.__new__
_CREDIT = "credit"
_REDUCE = "reduce"
_SPIF = "spif"
_STAGE_TYPES = frozenset(t for t in EVENT_TYPES.values() if issubclass(t, StageChanged))


def _action_key(a: tuple[Any, ...]) -> tuple[Any, int]:
    return a[0], a[1]


def _where(deal: Deal, kind: str, ev: Any) -> str:
    return f"deal {deal.id} ({kind} {ev})" if not isinstance(ev, int) else f"deal {deal.id} event {ev}"


def _round(v: Decimal, mode: str) -> int:
    return int(v.to_integral_value(rounding=mode))


def _owner_at(at: datetime, won: list[tuple[datetime, str | None]],
              owners: list[tuple[datetime, str | None]]) -> str | None:
    """The owner when the deal was last won at or before ``at`` (else the owner at ``at``)."""
    o = None
    for t, w in won:
        if t <= at:
            o = w
    if o is not None:
        return o
    for t, w in owners:
        if t <= at:
            o = w
    return o


def credit_deals(
    plan: Plan,
    deals: Iterable[Deal],
    inputs: CommissionInputs | None = None,
    *,
    reps: Iterable[Any] = (),
    accounts: Iterable[Any] = (),
    products: Iterable[Any] = (),
) -> CreditBook:
    """Credit ``deals`` (any iterable, consumed once) under ``plan``.

    ``reps`` give roles (eligibility, override roles) and the current hierarchy when
    ``inputs.org`` is not given; ``accounts`` and ``products`` give segments and families for
    rate rules and SPIFs. Problems (a deal won without an amount, splits not totalling 100 %, a
    missing FX rate...) are collected in the book, never silently dropped.
    """
    inp = inputs or CommissionInputs()
    cr = _Crediter(plan, inp, {r.id: r for r in reps}, {a.id: a for a in accounts},
                   {p.id: p for p in products})
    for d in deals:
        cr.deal(d)
    book = cr.book
    known = cr.deals_seen
    for deal_id in sorted(set(cr.invoices) - known):
        book.problems.append(Problem(f"invoices[{deal_id}]", "unknown_deal", f"invoices for unknown deal {deal_id}"))
    for deal_id in sorted(set(cr.refunds) - known):
        book.problems.append(Problem(f"refunds[{deal_id}]", "unknown_deal", f"refund for unknown deal {deal_id}"))
    for deal_id in sorted((set(cr.revenue) | set(cr.overlay)) - known):
        book.notes.append(f"splits of deal {deal_id}, which was not given, were not used")
    return book
