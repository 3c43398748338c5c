"""Competitor tracking: who we meet on which deal, how we fare against each, and why we lose.

A deal names its competitors in :attr:`Deal.competitors` (part of its event history). The details
of each encounter — the competitor's strengths and weaknesses *on this deal*, the price it quoted,
whether it won — are a :class:`DealCompetitor` record (store documents of kind
``deal_competitor``, keyed ``<deal id>|<competitor>``); :func:`add_to_deal` saves one and adds the
name to the deal. :class:`Competitor` keeps the general profile (kind ``competitor``).

The analyses are pure functions of deals, encounter records and accounts:

- :func:`head_to_head` — per competitor and segment (industry, region, size band, country):
  deals met, won, lost, lost *to* them, win rate, won revenue, average sales cycle of the wins,
  their average quoted price;
- :func:`loss_reasons` — lost deals' reasons by the competitor that took the deal and segment;
- :func:`market_report` — the competitor section of a market-analysis report: the above for each
  segment dimension, with the deals where no competitor was recorded as a baseline, as rows or
  Markdown.

A lost deal is lost *to* the competitor whose record says ``won = true``; when no record says so,
the loss counts against every competitor present (it is still a loss in their head-to-head), and
its reason is filed under each of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from .errors import CurrencyMismatchError, DomainError, NotFoundError
from .model import Account, Deal, DealStatus, EventSource
from .money import Money
from .periods import require_aware

__all__ = [
    "COMPETITOR_KIND",
    "DEAL_COMPETITOR_KIND",
    "NO_COMPETITOR",
    "SEGMENTS",
    "Competitor",
    "CompetitorReport",
    "DealCompetitor",
    "HeadToHead",
    "LossReason",
    "add_to_deal",
    "competitors",
    "deal_competitors",
    "encounters",
    "head_to_head",
    "loss_reasons",
    "market_report",
    "save_competitor",
]

COMPETITOR_KIND = "competitor"
DEAL_COMPETITOR_KIND = "deal_competitor"
NO_COMPETITOR = "(none)"
"""The competitor name under which deals without a recorded competitor are counted."""
SEGMENTS = ("industry", "region", "size_band", "country")
_US = timedelta(microseconds=1)


def _strs(v: Iterable[str] | str | None) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    return tuple(v)


@attrs.frozen
class Competitor:
    """A competitor's general profile."""

    id: str
    name: str = ""
    strengths: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    weaknesses: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    website: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name or self.id, "strengths": list(self.strengths),
                "weaknesses": list(self.weaknesses), "website": self.website}


@attrs.frozen
class DealCompetitor:
    """A competitor met on one deal: what it does well and badly there, what it quoted, and
    whether it won the deal (``None``: not known or not decided)."""

    deal_id: str
    competitor: str
    strengths: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    weaknesses: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    quoted_price: Money | None = None
    won: bool | None = None
    notes: str = ""

    @property
    def key(self) -> str:
        return f"{self.deal_id}|{self.competitor}"

    def to_dict(self) -> dict[str, Any]:
        q = self.quoted_price
        return {"deal_id": self.deal_id, "competitor": self.competitor,
                "strengths": list(self.strengths), "weaknesses": list(self.weaknesses),
                "quoted_price": None if q is None else [str(q.amount), q.currency],
                "won": self.won, "notes": self.notes}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DealCompetitor:
        q = d.get("quoted_price")
        return cls(d["deal_id"], d["competitor"], d.get("strengths", ()), d.get("weaknesses", ()),
                   None if q is None else Money(q[0], q[1]), d.get("won"), d.get("notes", ""))


def save_competitor(store: Any, c: Competitor) -> None:
    store.put_document(COMPETITOR_KIND, c.id, c.to_dict())


def competitors(store: Any) -> list[Competitor]:
    return [Competitor(k, d.get("name", k), d.get("strengths", ()), d.get("weaknesses", ()),
                       d.get("website", "")) for k, d in store.documents(COMPETITOR_KIND)]


def add_to_deal(
    store: Any, entry: DealCompetitor, *, at: datetime, actor: str,
    source: EventSource = EventSource.USER,
) -> Deal:
    """Save an encounter and add the competitor to the deal's ``competitors`` (one
    ``details_changed`` event, saved with optimistic concurrency) in one transaction. Returns the
    deal as saved."""
    require_aware(at, "at")
    with store.transaction():
        deal: Deal = store.get_deal(entry.deal_id)
        if entry.won and deal.status is DealStatus.WON:
            raise DomainError(f"deal {deal.id} was won by us; {entry.competitor} cannot have won it")
        if entry.competitor not in deal.competitors:
            new = deal.with_details(at=max(at, deal.updated_at), actor=actor, source=source,
                                    competitors=(*deal.competitors, entry.competitor))
            deal = store.save_deal(new, expected_version=deal.version)
        store.put_document(DEAL_COMPETITOR_KIND, entry.key, entry.to_dict())
    return deal


def encounters(store: Any) -> list[DealCompetitor]:
    """Every saved encounter record."""
    return [DealCompetitor.from_dict(d) for _, d in store.documents(DEAL_COMPETITOR_KIND)]


def deal_competitors(store: Any, deal_id: str) -> list[DealCompetitor]:
    """The competitors of a deal: its records, plus a bare record for each name on the deal
    without one."""
    try:
        deal = store.get_deal(deal_id)
    except NotFoundError:
        deal = None
    recs = {e.competitor: e for e in encounters(store) if e.deal_id == deal_id}
    names = list(deal.competitors) if deal is not None else []
    out = [recs.pop(n, DealCompetitor(deal_id, n)) for n in names]
    out.extend(recs[k] for k in sorted(recs))
    return out


# ----------------------------------------------------------------------------------------------
# Analyses
# ----------------------------------------------------------------------------------------------


def _segment(acc: Account | None, dim: str) -> str:
    if dim not in SEGMENTS:
        raise DomainError(f"unknown segment {dim!r} (use {', '.join(SEGMENTS)})")
    v = getattr(acc, dim, None) if acc is not None else None
    return str(v) if v else "(unknown)"


class _Index:
    def __init__(self, deals: Iterable[Deal], entries: Iterable[DealCompetitor], asof: datetime | None) -> None:
        self.deals = [d for d in deals if asof is None or d.created_at <= asof]
        self.asof = asof
        self.entries: dict[str, dict[str, DealCompetitor]] = {}
        for e in entries:
            self.entries.setdefault(e.deal_id, {})[e.competitor] = e

    def status(self, d: Deal) -> DealStatus:
        if self.asof is not None and d.closed_at is not None and d.closed_at > self.asof:
            return DealStatus.OPEN
        return d.status

    def present(self, d: Deal) -> list[str]:
        names = list(d.competitors)
        names += [n for n in self.entries.get(d.id, {}) if n not in names]
        return names or [NO_COMPETITOR]

    def winner(self, d: Deal) -> str | None:
        for n, e in self.entries.get(d.id, {}).items():
            if e.won:
                return n
        return None


@attrs.frozen
class HeadToHead:
    """How we fare against one competitor in one segment (``segment`` is ``(dimension, value)``;
    ``("all", "all")`` for the whole market)."""

    competitor: str
    segment: tuple[str, str]
    deals: int
    open: int
    won: int
    lost: int
    lost_to: int
    """Lost deals this competitor took."""
    win_rate: Decimal | None
    """won / (won + lost)."""
    won_revenue: Money | None
    cycle_days: Decimal | None
    """Mean days from creation to close of the won deals."""
    avg_quote: Money | None
    """Mean price the competitor quoted (where recorded, in the report currency)."""

    def as_dict(self) -> dict[str, Any]:
        return {"competitor": self.competitor, "dimension": self.segment[0],
                "segment": self.segment[1], "deals": self.deals, "open": self.open,
                "won": self.won, "lost": self.lost, "lost_to": self.lost_to,
                "win_rate": self.win_rate, "won_revenue": self.won_revenue,
                "cycle_days": self.cycle_days, "avg_quote": self.avg_quote}


def _currency(deals: Sequence[Deal], currency: str | None) -> str | None:
    if currency is not None:
        return currency
    curs = sorted({d.amount.currency for d in deals if d.amount is not None})
    if len(curs) > 1:
        raise CurrencyMismatchError(curs[0], curs[1], "sum won revenue (pass currency=)")
    return curs[0] if curs else None


def head_to_head(
    deals: Iterable[Deal],
    entries: Iterable[DealCompetitor] = (),
    *,
    accounts: Mapping[str, Account] | Iterable[Account] = (),
    by: str | None = None,
    asof: datetime | None = None,
    currency: str | None = None,
) -> list[HeadToHead]:
    """Win/loss against each competitor, per segment value of ``by`` (``None``: the whole
    market), as known at ``asof`` (deals created by then; closes after it count as open).
    Money sums need one currency: pass ``currency`` to keep only deals in it."""
    if asof is not None:
        require_aware(asof, "asof")
    accs = accounts if isinstance(accounts, Mapping) else {a.id: a for a in accounts}
    ix = _Index(deals, entries, asof)
    deal_list = [d for d in ix.deals
                 if currency is None or d.amount is None or d.amount.currency == currency]
    cur = _currency(deal_list, currency)
    groups: dict[tuple[str, tuple[str, str]], list[Deal]] = {}
    for d in deal_list:
        seg = ("all", "all") if by is None else (by, _segment(accs.get(d.account_id or ""), by))
        for name in ix.present(d):
            groups.setdefault((name, seg), []).append(d)
    out = []
    for (name, seg), ds in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0] == NO_COMPETITOR, kv[0][0])):
        won = [d for d in ds if ix.status(d) is DealStatus.WON]
        lost = [d for d in ds if ix.status(d) is DealStatus.LOST]
        lost_to = [d for d in lost if ix.winner(d) == name]
        rate = None if not (won or lost) else (
            Decimal(len(won)) / Decimal(len(won) + len(lost))).quantize(Decimal("0.0001"))
        rev = None
        if cur is not None:
            rev = Money(sum((d.amount.amount for d in won if d.amount is not None), Decimal(0)), cur)
        cyc = None
        closed = [d for d in won if d.closed_at is not None]
        if closed:
            us = sum((d.closed_at - d.created_at) // _US for d in closed if d.closed_at)
            cyc = (Decimal(us) / Decimal(86_400_000_000) / Decimal(len(closed))).quantize(Decimal("0.1"))
        quotes = [e.quoted_price for d in ds if (e := ix.entries.get(d.id, {}).get(name)) is not None
                  and e.quoted_price is not None and (cur is None or e.quoted_price.currency == cur)]
        avg = None
        if quotes:
            avg = Money(sum((q.amount for q in quotes), Decimal(0)) / len(quotes), quotes[0].currency)
            avg = Money(avg.amount.quantize(Decimal("0.01")), avg.currency)
        out.append(HeadToHead(name, seg, len(ds), len(ds) - len(won) - len(lost), len(won),
                              len(lost), len(lost_to), rate, rev, cyc, avg))
    return out


@attrs.frozen
class LossReason:
    competitor: str
    segment: tuple[str, str]
    reason: str
    deals: int

    def as_dict(self) -> dict[str, Any]:
        return {"competitor": self.competitor, "dimension": self.segment[0],
                "segment": self.segment[1], "reason": self.reason, "deals": self.deals}


def loss_reasons(
    deals: Iterable[Deal],
    entries: Iterable[DealCompetitor] = (),
    *,
    accounts: Mapping[str, Account] | Iterable[Account] = (),
    by: str | None = None,
    asof: datetime | None = None,
) -> list[LossReason]:
    """Lost deals counted by (competitor that took them — else each competitor present —,
    segment, lost reason), most frequent first."""
    accs = accounts if isinstance(accounts, Mapping) else {a.id: a for a in accounts}
    ix = _Index(deals, entries, asof)
    counts: dict[tuple[str, tuple[str, str], str], int] = {}
    for d in ix.deals:
        if ix.status(d) is not DealStatus.LOST:
            continue
        seg = ("all", "all") if by is None else (by, _segment(accs.get(d.account_id or ""), by))
        winner = ix.winner(d)
        reason = d.lost_reason or "(no reason given)"
        for name in ([winner] if winner else ix.present(d)):
            k = (name, seg, reason)
            counts[k] = counts.get(k, 0) + 1
    rows = [LossReason(n, s, r, c) for (n, s, r), c in counts.items()]
    rows.sort(key=lambda r: (r.segment, r.competitor, -r.deals, r.reason))
    return rows


@attrs.frozen
class CompetitorReport:
    """The competitor section of a market-analysis report."""

    asof: datetime | None
    dimensions: tuple[str, ...]
    rows: tuple[HeadToHead, ...]
    losses: tuple[LossReason, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"asof": None if self.asof is None else self.asof.isoformat(),
                "dimensions": list(self.dimensions),
                "head_to_head": [r.as_dict() for r in self.rows],
                "loss_reasons": [r.as_dict() for r in self.losses]}

    def to_markdown(self) -> str:
        def fmt(v: Any) -> str:
            if v is None:
                return "–"
            if isinstance(v, Money):
                return f"{v.amount:,} {v.currency}"
            if isinstance(v, Decimal):
                return f"{v * 100:.1f}%" if v <= 1 and v.as_tuple().exponent == -4 else str(v)
            return str(v)

        lines = ["## Competitors", ""]
        for dim in ("all", *self.dimensions):
            rows = [r for r in self.rows if r.segment[0] == dim]
            if not rows:
                continue
            lines += [f"### {'Whole market' if dim == 'all' else 'By ' + dim.replace('_', ' ')}", "",
                      "| segment | competitor | deals | won | lost | lost to them | win rate | won revenue | cycle (days) | their avg quote |",
                      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for r in rows:
                lines.append(f"| {r.segment[1]} | {r.competitor} | {r.deals} | {r.won} | {r.lost} | "
                             f"{r.lost_to} | {fmt(r.win_rate)} | {fmt(r.won_revenue)} | "
                             f"{fmt(r.cycle_days)} | {fmt(r.avg_quote)} |")
            lines.append("")
        if self.losses:
            lines += ["### Loss reasons", "", "| competitor | reason | deals |", "|---|---|---:|"]
            lines += [f"| {r.competitor} | {r.reason} | {r.deals} |" for r in self.losses]
            lines.append("")
        return "\n".join(lines)


def market_report(
    store: Any, *, asof: datetime | None = None, dimensions: Sequence[str] = ("industry", "region", "size_band"),
    currency: str | None = None,
) -> CompetitorReport:
    """The competitor section of a market-analysis report from a store: head-to-head for the
    whole market and by each dimension, and loss reasons by competitor (whole market)."""
    deals = list(store.deals())
    ents = encounters(store)
    accs = {a.id: a for a in store.all(Account)}
    rows: list[HeadToHead] = list(head_to_head(deals, ents, accounts=accs, asof=asof, currency=currency))
    for dim in dimensions:
        rows += head_to_head(deals, ents, accounts=accs, by=dim, asof=asof, currency=currency)
    losses = loss_reasons(deals, ents, accounts=accs, asof=asof)
    return CompetitorReport(asof, tuple(dimensions), tuple(rows), tuple(losses))
