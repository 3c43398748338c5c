"""``salesprocess segments``: RFM segments, lifecycle stages, next-best products."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from salesprocess import lifecycle as lc
from salesprocess.app import SalesProcess
from salesprocess.cli._util import emit, open_store
from salesprocess.cli.kpi_cmd import parse_instant, parse_tz
from salesprocess.model import Account


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    p.add_argument("--asof", help="as known at this instant (default: now)")
    p.add_argument("--tz", default="UTC")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")


def register(sub: Any) -> None:
    p = sub.add_parser("segments", help="customer segments: RFM, lifecycle stages, next-best products")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = s.add_parser("rfm", help="recency, frequency and monetary scores (1-5) and segments")
    _common(r)
    r.add_argument("--currency", help="keep only deals in this currency")
    r.add_argument("--segment", help="only this segment (champions, loyal, new, potential, at_risk, hibernating)")
    r.set_defaults(func=_rfm)
    life = s.add_parser("lifecycle", help="each account's lifecycle stage")
    _common(life)
    life.add_argument("--sync", action="store_true", help="first promote accounts from their deals")
    life.set_defaults(func=_lifecycle)
    n = s.add_parser("next-products", help="what similar customers bought that this one has not")
    _common(n)
    n.add_argument("account")
    n.add_argument("--limit", type=int, default=5)
    n.set_defaults(func=_next)


def _asof(args: argparse.Namespace) -> datetime:
    tz = parse_tz(args.tz)
    return parse_instant(args.asof, tz) or datetime.now(tz)  # "now" is a CLI default


def _rfm(args: argparse.Namespace) -> int:
    asof = _asof(args)
    store = open_store(args.db, app=SalesProcess())
    try:
        scores = lc.rfm(store.deals(), asof=asof, currency=args.currency)
    finally:
        store.close()
    rows = [s.as_dict() for s in scores if args.segment is None or s.segment == args.segment]
    emit(rows, args.format, columns=["account_id", "recency_days", "frequency", "monetary",
                                     "currency", "rfm", "segment"])
    return 0


def _lifecycle(args: argparse.Namespace) -> int:
    asof = _asof(args)
    sp = SalesProcess()
    store = open_store(args.db, app=sp)
    try:
        if args.sync:
            sp.sync_lifecycle(store, asof=asof)
        rows = []
        for acc in store.all(Account):
            life = lc.lifecycle(store, acc.id)
            rows.append({"account_id": acc.id, "name": acc.name, "stage": life.stage_at(asof),
                         "since": life.entered_at(asof), "changes": len(life.history)})
    finally:
        store.close()
    emit(rows, args.format, columns=["account_id", "name", "stage", "since", "changes"])
    return 0


def _next(args: argparse.Namespace) -> int:
    asof = _asof(args)
    store = open_store(args.db, app=SalesProcess())
    try:
        out = lc.next_best_products(store.deals(), args.account, asof=asof,
                                    accounts=store.all(Account), limit=args.limit)
    finally:
        store.close()
    emit([s.as_dict() for s in out], args.format, columns=["product_id", "score", "because"])
    return 0
