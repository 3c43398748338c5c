"""``salesprocess competitors``: win/loss against each competitor, loss reasons, market section."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from salesprocess import competitors as comp
from salesprocess.app import SalesProcess
from salesprocess.cli._util import emit, open_store
from salesprocess.cli.kpi_cmd import parse_instant, parse_tz
from salesprocess.model import Account


def _common(p: argparse.ArgumentParser, fmts: tuple[str, ...] = ("table", "json", "csv")) -> None:
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    p.add_argument("--asof", help="as known at this instant (default: everything held)")
    p.add_argument("--tz", default="UTC")
    p.add_argument("--currency", help="keep only deals in this currency")
    p.add_argument("--format", choices=fmts, default="table")


def register(sub: Any) -> None:
    p = sub.add_parser("competitors", help="win/loss against competitors, loss reasons, market report")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    h = s.add_parser("head-to-head", help="deals, wins, losses, win rate, revenue and cycle per competitor")
    _common(h)
    h.add_argument("--by", choices=comp.SEGMENTS, help="per segment (default: the whole market)")
    h.set_defaults(func=_h2h)
    lo = s.add_parser("losses", help="loss reasons by competitor (and segment)")
    _common(lo)
    lo.add_argument("--by", choices=comp.SEGMENTS)
    lo.set_defaults(func=_losses)
    r = s.add_parser("report", help="the competitor section of a market-analysis report")
    _common(r, ("markdown", "json"))
    r.add_argument("--dimensions", default="industry,region,size_band",
                   help="comma-separated segment dimensions")
    r.set_defaults(func=_report)
    d = s.add_parser("deal", help="the competitors of one deal")
    d.add_argument("deal")
    d.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    d.add_argument("--format", choices=("table", "json", "csv"), default="table")
    d.set_defaults(func=_deal)


def _asof(args: argparse.Namespace) -> datetime | None:
    return parse_instant(args.asof, parse_tz(args.tz))


def _data(args: argparse.Namespace) -> tuple[Any, list[Any], list[comp.DealCompetitor], dict[str, Account]]:
    store = open_store(args.db, app=SalesProcess())
    return store, list(store.deals()), comp.encounters(store), {a.id: a for a in store.all(Account)}


def _h2h(args: argparse.Namespace) -> int:
    store, deals, ents, accs = _data(args)
    store.close()
    rows = [r.as_dict() for r in comp.head_to_head(deals, ents, accounts=accs, by=args.by,
                                                     asof=_asof(args), currency=args.currency)]
    emit(rows, args.format, columns=["competitor", "dimension", "segment", "deals", "won", "lost",
                                     "lost_to", "win_rate", "won_revenue", "cycle_days", "avg_quote"])
    return 0


def _losses(args: argparse.Namespace) -> int:
    store, deals, ents, accs = _data(args)
    store.close()
    rows = [r.as_dict() for r in comp.loss_reasons(deals, ents, accounts=accs, by=args.by, asof=_asof(args))]
    emit(rows, args.format, columns=["competitor", "dimension", "segment", "reason", "deals"])
    return 0


def _report(args: argparse.Namespace) -> int:
    store = open_store(args.db, app=SalesProcess())
    try:
        rep = comp.market_report(store, asof=_asof(args), currency=args.currency,
                                 dimensions=[d for d in args.dimensions.split(",") if d])
    finally:
        store.close()
    if args.format == "json":
        emit([], "json", json_obj=rep.as_dict())
    else:
        sys.stdout.write(rep.to_markdown())
    return 0


def _deal(args: argparse.Namespace) -> int:
    store = open_store(args.db, app=SalesProcess())
    try:
        rows = [e.to_dict() for e in comp.deal_competitors(store, args.deal)]
    finally:
        store.close()
    for r in rows:
        q = r.pop("quoted_price")
        r["quoted_price"] = None if q is None else f"{q[0]} {q[1]}"
    emit(rows, args.format, columns=["competitor", "strengths", "weaknesses", "quoted_price", "won", "notes"])
    return 0
