"""The customer lifecycle: lifecycle stages with history, purchases and preferences, RFM
segments, next-best-product suggestions, and renewal and upsell deals.

Lifecycle stages (:class:`LifecycleStage`) run lead → MQL → SQL → opportunity → customer →
advocate, with *churned* as the exit of a customer or advocate. Moves forward may skip stages; a
customer or advocate may churn; an advocate may fall back to customer; a churned customer comes
back as an opportunity or a customer (win-back). Every change is kept with its instant, actor and
reason (store documents of kind ``lifecycle``, one per account), so the stage is known *as of* any
instant. :func:`sync_from_deals` promotes accounts from their deals (an open deal makes an
opportunity, a won deal a customer) and never demotes.

Purchases are won deals; :func:`rfm` scores customers on recency, frequency and monetary value
(quintiles, 5 best) and names their segment; :func:`next_best_products` suggests what similar
customers (Jaccard similarity of what they bought) bought and this one has not.
:func:`renewal_deal` and :func:`upsell_deal` build the deals automation rules create.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs
from dateutil.relativedelta import relativedelta

from .codec import instant, iso
from .errors import CurrencyMismatchError, DomainError
from .model import Account, Activity, Contact, Deal, DealStatus, EventSource, Product
from .money import Money
from .periods import require_aware
from .process import Process

__all__ = [
    "LIFECYCLE_KIND",
    "Lifecycle",
    "LifecycleChange",
    "LifecycleStage",
    "Preferences",
    "Purchase",
    "RfmScore",
    "Suggestion",
    "allowed_moves",
    "derive_stage",
    "lifecycle",
    "lifecycles",
    "next_best_products",
    "preferences",
    "purchases",
    "renewal_deal",
    "renewals_due",
    "rfm",
    "rfm_segment",
    "set_stage",
    "sync_from_deals",
    "upsell_deal",
]

LIFECYCLE_KIND = "lifecycle"


class LifecycleStage(enum.StrEnum):
    LEAD = "lead"
    MQL = "mql"
    """Marketing-qualified lead."""
    SQL = "sql"
    """Sales-qualified lead."""
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    ADVOCATE = "advocate"
    CHURNED = "churned"


_ORDER = (LifecycleStage.LEAD, LifecycleStage.MQL, LifecycleStage.SQL,
          LifecycleStage.OPPORTUNITY, LifecycleStage.CUSTOMER, LifecycleStage.ADVOCATE)
_RANK = {s: i for i, s in enumerate(_ORDER)}


def allowed_moves(current: LifecycleStage | None) -> tuple[LifecycleStage, ...]:
    """Stages an account in ``current`` may move to (any stage when it has none yet)."""
    if current is None:
        return tuple(LifecycleStage)
    if current is LifecycleStage.CHURNED:
        return (LifecycleStage.OPPORTUNITY, LifecycleStage.CUSTOMER)
    out = [s for s in _ORDER if _RANK[s] > _RANK[current]]
    if current is LifecycleStage.ADVOCATE:
        out.append(LifecycleStage.CUSTOMER)
    if current in (LifecycleStage.CUSTOMER, LifecycleStage.ADVOCATE):
        out.append(LifecycleStage.CHURNED)
    return tuple(out)


def _opt_stage(v: str | None) -> LifecycleStage | None:
    return None if v is None else LifecycleStage(v)


@attrs.frozen
class LifecycleChange:
    account_id: str
    stage: LifecycleStage = attrs.field(converter=LifecycleStage)
    at: datetime = attrs.field()
    previous: LifecycleStage | None = attrs.field(default=None, converter=_opt_stage)
    actor: str = ""
    reason: str = ""
    source: EventSource = attrs.field(default=EventSource.USER, converter=EventSource)

    @at.validator
    def _at(self, _a: Any, v: datetime) -> None:
        require_aware(v, "at")

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage.value, "at": iso(self.at),
                "previous": None if self.previous is None else self.previous.value,
                "actor": self.actor, "reason": self.reason, "source": self.source.value}


@attrs.frozen
class Lifecycle:
    """An account's lifecycle history (oldest first)."""

    account_id: str
    history: tuple[LifecycleChange, ...] = ()

    def stage_at(self, asof: datetime | None = None) -> LifecycleStage | None:
        cur = None
        for h in self.history:
            if asof is not None and h.at > asof:
                break
            cur = h.stage
        return cur

    @property
    def stage(self) -> LifecycleStage | None:
        return self.stage_at()

    def entered_at(self, asof: datetime | None = None) -> datetime | None:
        """When the account entered the stage it is in as of ``asof``."""
        when = None
        for h in self.history:
            if asof is not None and h.at > asof:
                break
            when = h.at
        return when


def lifecycle(store: Any, account_id: str) -> Lifecycle:
    doc = store.get_document(LIFECYCLE_KIND, account_id) or {}
    hist = tuple(
        LifecycleChange(account_id, h["stage"], instant(h["at"]), h.get("previous"),
                        h.get("actor", ""), h.get("reason", ""), h.get("source", "user"))
        for h in doc.get("history", ())
    )
    return Lifecycle(account_id, hist)


def lifecycles(store: Any) -> list[Lifecycle]:
    return [lifecycle(store, k) for k, _ in store.documents(LIFECYCLE_KIND)]


def set_stage(
    store: Any, account_id: str, stage: LifecycleStage | str, *, at: datetime, actor: str = "",
    reason: str = "", source: EventSource = EventSource.USER,
) -> LifecycleChange | None:
    """Move an account to ``stage`` at ``at``; ``None`` when it is already there. Raises
    :class:`~salesprocess.errors.DomainError` for a move :func:`allowed_moves` does not allow, or
    when ``at`` is before the account's last change."""
    require_aware(at, "at")
    lc = lifecycle(store, account_id)
    new = LifecycleStage(stage)
    cur = lc.stage
    if cur is new:
        return None
    if new not in allowed_moves(cur):
        raise DomainError(
            f"account {account_id}: lifecycle cannot go from {cur.value if cur else '-'} to "
            f"{new.value} (allowed: {', '.join(s.value for s in allowed_moves(cur))})")
    if lc.history and at < lc.history[-1].at:
        raise DomainError(f"account {account_id}: {at.isoformat()} is before its last lifecycle change")
    ch = LifecycleChange(account_id, new, at, cur, actor, reason, source)
    store.put_document(LIFECYCLE_KIND, account_id,
                       {"history": [h.to_dict() for h in (*lc.history, ch)]})
    return ch


def derive_stage(
    deals: Iterable[Deal], *, asof: datetime, current: LifecycleStage | None = None,
) -> LifecycleStage | None:
    """The stage an account's deals (as they stand; closed at or before ``asof``) call for, or
    ``None`` when they call for no change: a win closed after the account's current stage began
    makes a customer (an advocate stays one), an open deal makes an opportunity of an earlier
    stage. Never a demotion."""
    won = open_ = False
    for d in deals:
        if d.created_at > asof:
            continue
        if d.status is DealStatus.WON and d.closed_at is not None and d.closed_at <= asof:
            won = True
        elif d.status is DealStatus.OPEN or (d.closed_at is not None and d.closed_at > asof):
            open_ = True
    if won:
        if current in (LifecycleStage.CUSTOMER, LifecycleStage.ADVOCATE):
            return None
        return LifecycleStage.CUSTOMER
    if open_ and (current is None or (current in _RANK and _RANK[current] < _RANK[LifecycleStage.OPPORTUNITY])):
        return LifecycleStage.OPPORTUNITY
    if open_ and current is LifecycleStage.CHURNED:
        return LifecycleStage.OPPORTUNITY
    return None


def sync_from_deals(store: Any, *, asof: datetime, actor: str = "lifecycle") -> list[LifecycleChange]:
    """Promote every account its deals call for (:func:`derive_stage`); returns the changes made.
    A churned account comes back only with a deal won (or opened) after it churned."""
    require_aware(asof, "asof")
    by_acc: dict[str, list[Deal]] = {}
    for d in store.deals():
        if d.account_id:
            by_acc.setdefault(d.account_id, []).append(d)
    out = []
    for acc, deals in sorted(by_acc.items()):
        lc = lifecycle(store, acc)
        cur = lc.stage_at(asof)
        since = lc.entered_at(asof)
        relevant = deals
        if cur is LifecycleStage.CHURNED and since is not None:
            relevant = [d for d in deals if d.created_at > since or (d.closed_at or since) > since]
        new = derive_stage(relevant, asof=asof, current=cur)
        if new is None or new not in allowed_moves(cur):
            continue
        at = asof if not lc.history or lc.history[-1].at <= asof else lc.history[-1].at
        ch = set_stage(store, acc, new, at=at, actor=actor, reason="from deals",
                       source=EventSource.RULE)
        if ch is not None:
            out.append(ch)
    return out


# ----------------------------------------------------------------------------------------------
# Purchases and preferences
# ----------------------------------------------------------------------------------------------


@attrs.frozen
class Purchase:
    deal_id: str
    account_id: str
    at: datetime
    amount: Money | None
    product_ids: tuple[str, ...]


def purchases(deals: Iterable[Deal], *, account_id: str | None = None, asof: datetime | None = None) -> list[Purchase]:
    """Won deals (closed by ``asof``) as purchases, oldest first."""
    out = []
    for d in deals:
        if d.status is not DealStatus.WON or d.closed_at is None or d.account_id is None:
            continue
        if account_id is not None and d.account_id != account_id:
            continue
        if asof is not None and d.closed_at > asof:
            continue
        out.append(Purchase(d.id, d.account_id, d.closed_at, d.amount, d.product_ids))
    out.sort(key=lambda p: (p.at, p.deal_id))
    return out


@attrs.frozen
class Preferences:
    """What a customer tends to buy and how it likes to be reached."""

    account_id: str
    purchases: int
    products: tuple[str, ...]
    """Products bought, most often first."""
    families: tuple[str, ...]
    average_amount: Money | None
    channel: str | None
    """The activity kind most used with the customer (call, visit, e-mail...)."""
    language: str | None
    """The language most of its contacts use."""
    last_purchase: datetime | None


def _top(counts: Mapping[str, int]) -> tuple[str, ...]:
    return tuple(k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def preferences(
    account_id: str, deals: Iterable[Deal], *, asof: datetime, activities: Iterable[Activity] = (),
    contacts: Iterable[Contact] = (), products: Iterable[Product] = (),
) -> Preferences:
    deals = list(deals)
    ps = purchases(deals, account_id=account_id, asof=asof)
    fam = {p.id: p.family for p in products}
    prod: dict[str, int] = {}
    fams: dict[str, int] = {}
    for p in ps:
        for pid in p.product_ids:
            prod[pid] = prod.get(pid, 0) + 1
            f = fam.get(pid)
            if f:
                fams[f] = fams.get(f, 0) + 1
    amounts = [p.amount for p in ps if p.amount is not None]
    avg = None
    if amounts:
        cur = {a.currency for a in amounts}
        if len(cur) == 1:
            total = sum((a.amount for a in amounts), Decimal(0))
            avg = Money(total / len(amounts), amounts[0].currency).round(ROUND_HALF_EVEN)
    deal_ids = {d.id for d in deals if d.account_id == account_id}
    kinds: dict[str, int] = {}
    for a in activities:
        if a.done and a.at <= asof and (a.account_id == account_id or a.deal_id in deal_ids):
            kinds[a.kind.value] = kinds.get(a.kind.value, 0) + 1
    langs: dict[str, int] = {}
    for c in contacts:
        if c.account_id == account_id and c.language:
            langs[c.language] = langs.get(c.language, 0) + 1
    return Preferences(account_id, len(ps), _top(prod), _top(fams), avg,
                       (_top(kinds) or (None,))[0], (_top(langs) or (None,))[0],
                       ps[-1].at if ps else None)


# ----------------------------------------------------------------------------------------------
# RFM
# ----------------------------------------------------------------------------------------------


@attrs.frozen
class RfmScore:
    """Recency (days since the last purchase), frequency (purchases), monetary (their total), each
    scored 1–5 against the other customers (5 best), and the segment they make."""

    account_id: str
    recency_days: int
    frequency: int
    monetary: Money
    r: int
    f: int
    m: int
    segment: str

    @property
    def code(self) -> str:
        return f"{self.r}{self.f}{self.m}"

    def as_dict(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "recency_days": self.recency_days,
                "frequency": self.frequency, "monetary": str(self.monetary.amount),
                "currency": self.monetary.currency, "r": self.r, "f": self.f, "m": self.m,
                "rfm": self.code, "segment": self.segment}


def rfm_segment(r: int, f: int, m: int) -> str:
    """The segment of an R/F/M score triple (first matching rule)::

        champions        r ≥ 4, f ≥ 4, m ≥ 4
        loyal            r ≥ 3, f ≥ 3
        new              r ≥ 4, f ≤ 2
        potential        r = 3, f ≤ 2
        at_risk          r ≤ 2, f ≥ 3
        hibernating      r ≤ 2, f ≤ 2
    """
    if r >= 4 and f >= 4 and m >= 4:
        return "champions"
    if r >= 3 and f >= 3:
        return "loyal"
    if r >= 4:
        return "new"
    if r == 3:
        return "potential"
    if f >= 3:
        return "at_risk"
    return "hibernating"


def _scores(values: Sequence[Decimal], bins: int, higher_is_better: bool) -> list[int]:
    """Quantile scores 1..bins by rank; equal values get equal scores."""
    n = len(values)
    order = sorted(range(n), key=lambda i: values[i], reverse=not higher_is_better)
    out = [0] * n
    first_rank: dict[Decimal, int] = {}
    for rank, i in enumerate(order):
        r = first_rank.setdefault(values[i], rank)
        out[i] = 1 + (r * bins) // n
    return out


def rfm(
    deals: Iterable[Deal], *, asof: datetime, currency: str | None = None, bins: int = 5,
) -> list[RfmScore]:
    """RFM scores of every account with a won deal closed by ``asof``, ordered by account.

    Monetary sums the won amounts; all must share one currency (or pass ``currency`` to keep only
    deals in it), else :class:`~salesprocess.errors.CurrencyMismatchError`.
    """
    require_aware(asof, "asof")
    if bins < 2:
        raise DomainError("rfm needs at least 2 bins")
    last: dict[str, datetime] = {}
    freq: dict[str, int] = {}
    money: dict[str, Decimal] = {}
    curs: set[str] = set()
    for p in purchases(deals, asof=asof):
        if currency is not None and (p.amount is None or p.amount.currency != currency):
            continue
        a = p.account_id
        last[a] = max(last.get(a, p.at), p.at)
        freq[a] = freq.get(a, 0) + 1
        if p.amount is not None:
            curs.add(p.amount.currency)
            money[a] = money.get(a, Decimal(0)) + p.amount.amount
    if len(curs) > 1:
        a, b = sorted(curs)[:2]
        raise CurrencyMismatchError(a, b, "sum purchases for RFM (pass currency=)")
    cur = currency or (next(iter(curs)) if curs else "USD")
    accs = sorted(last)
    rec = [Decimal((asof - last[a]).days) for a in accs]
    rs = _scores(rec, bins, higher_is_better=False)
    fs = _scores([Decimal(freq[a]) for a in accs], bins, True)
    ms = _scores([money.get(a, Decimal(0)) for a in accs], bins, True)
    def five(x: int) -> int:  # the score on the 1-5 scale the segments use
        return 1 + ((x - 1) * 4 + (bins - 1) // 2) // (bins - 1)

    out = []
    for i, a in enumerate(accs):
        r5, f5, m5 = five(rs[i]), five(fs[i]), five(ms[i])
        out.append(RfmScore(a, int(rec[i]), freq[a], Money(money.get(a, Decimal(0)), cur),
                            rs[i], fs[i], ms[i], rfm_segment(r5, f5, m5)))
    return out


# ----------------------------------------------------------------------------------------------
# Next best product
# ----------------------------------------------------------------------------------------------


@attrs.frozen
class Suggestion:
    """A product to offer: ``score`` sums the similarity of the similar customers who bought it;
    ``because`` names them (most similar first)."""

    account_id: str
    product_id: str
    score: Decimal
    because: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "product_id": self.product_id,
                "score": str(self.score), "because": list(self.because)}


def next_best_products(
    deals: Iterable[Deal],
    account_id: str,
    *,
    asof: datetime,
    accounts: Iterable[Account] = (),
    neighbours: int = 10,
    limit: int = 5,
) -> list[Suggestion]:
    """Products similar customers bought and ``account_id`` has not.

    Similarity is the Jaccard index of the two customers' product sets, plus 0.1 when ``accounts``
    shows the same industry and 0.05 for the same size band (so a customer with no purchase yet
    still gets its peers' favourites). The ``neighbours`` most similar customers vote with their
    similarity; ties break by product id. Deterministic.
    """
    require_aware(asof, "asof")
    baskets: dict[str, set[str]] = {}
    for p in purchases(deals, asof=asof):
        baskets.setdefault(p.account_id, set()).update(p.product_ids)
    mine = baskets.get(account_id, set())
    info = {a.id: a for a in accounts}
    me = info.get(account_id)
    sims: list[tuple[Decimal, str]] = []
    for other, basket in baskets.items():
        if other == account_id or not (basket - mine):
            continue
        union = mine | basket
        s = Decimal(len(mine & basket)) / Decimal(len(union)) if union else Decimal(0)
        o = info.get(other)
        if me is not None and o is not None:
            if me.industry and me.industry == o.industry:
                s += Decimal("0.1")
            if me.size_band and me.size_band == o.size_band:
                s += Decimal("0.05")
        if s > 0:
            sims.append((s, other))
    sims.sort(key=lambda t: (-t[0], t[1]))
    votes: dict[str, Decimal] = {}
    who: dict[str, list[str]] = {}
    for s, other in sims[:neighbours]:
        for pid in sorted(baskets[other] - mine):
            votes[pid] = votes.get(pid, Decimal(0)) + s
            who.setdefault(pid, []).append(other)
    ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [Suggestion(account_id, pid, sc.quantize(Decimal("0.0001")), tuple(who[pid]))
            for pid, sc in ranked]


# ----------------------------------------------------------------------------------------------
# Renewal and upsell deals
# ----------------------------------------------------------------------------------------------


def _renewal_date(won: Deal, term_months: int) -> date:
    base = won.close_date or (won.closed_at.date() if won.closed_at else won.created_at.date())
    return base + relativedelta(months=term_months)


def renewals_due(
    deals: Iterable[Deal], *, asof: datetime, within_days: int = 90, term_months: int = 12,
) -> list[tuple[Deal, date]]:
    """Won deals whose renewal (``term_months`` after the close date) falls within
    ``within_days`` after ``asof``'s date (or has passed), with that date; oldest first."""
    out = []
    horizon = asof.date().toordinal() + within_days
    for d in deals:
        if d.status is not DealStatus.WON or d.closed_at is None or d.closed_at > asof:
            continue
        r = _renewal_date(d, term_months)
        if r.toordinal() <= horizon:
            out.append((d, r))
    out.sort(key=lambda t: (t[1], t[0].id))
    return out


def renewal_deal(
    process: Process, won: Deal, *, at: datetime, actor: str, id: str | None = None,
    term_months: int = 12, source: EventSource = EventSource.RULE,
) -> Deal:
    """An open renewal deal for a won one: same account, owner, products and amount, closing
    ``term_months`` after the won deal's close date; ``custom`` says ``kind = renewal`` and
    ``renewal_of``."""
    if won.status is not DealStatus.WON:
        raise DomainError(f"deal {won.id} is {won.status.value}; only won deals renew")
    return process.open_deal(
        id or f"{won.id}-renewal", at=at, actor=actor, source=source,
        name=f"续约 Renewal: {won.name}".strip(), amount=won.amount,
        close_date=_renewal_date(won, term_months), owner_id=won.owner_id,
        account_id=won.account_id, product_ids=won.product_ids, contact_ids=won.contact_ids,
        custom={"kind": "renewal", "renewal_of": won.id},
    )


def upsell_deal(
    process: Process, account_id: str, product: Product | str, *, at: datetime, actor: str,
    id: str | None = None, owner_id: str | None = None, amount: Money | None = None,
    source: EventSource = EventSource.RULE, reason: str = "",
) -> Deal:
    """An open upsell deal offering ``product`` to an account (amount defaults to the product's
    list price); ``custom`` says ``kind = upsell``."""
    pid = product.id if isinstance(product, Product) else product
    name = product.name if isinstance(product, Product) else product
    if amount is None and isinstance(product, Product):
        amount = product.list_price
    custom: dict[str, Any] = {"kind": "upsell"}
    if reason:
        custom["reason"] = reason
    return process.open_deal(
        id or f"upsell-{account_id}-{pid}", at=at, actor=actor, source=source,
        name=f"增购 Upsell: {name}", amount=amount, owner_id=owner_id, account_id=account_id,
        product_ids=(pid,), custom=custom,
    )
