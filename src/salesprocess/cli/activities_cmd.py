"""``salesprocess activities``: to-dos, overdue work, planned vs done, playbook tasks."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from salesprocess import activities as acts
from salesprocess.app import SalesProcess
from salesprocess.cli._util import CLIError, emit, open_store
from salesprocess.cli.kpi_cmd import parse_instant, parse_tz
from salesprocess.periods import BusinessCalendar, Period


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    p.add_argument("--asof", help="as known at this instant (default: now)")
    p.add_argument("--tz", default="UTC")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")


def register(sub: Any) -> None:
    p = sub.add_parser("activities", help="to-dos, overdue follow-ups, planned vs done, playbook tasks")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = s.add_parser("todo", help="open to-dos: planned activities and what the process still requires")
    _common(t)
    t.add_argument("--owner", help="only this assignee")
    t.add_argument("--deal", help="only this deal")
    t.add_argument("--tasks-only", action="store_true", help="leave out the process requirements")
    t.set_defaults(func=_todo)
    o = s.add_parser("overdue", help="planned activities past their due instant")
    _common(o)
    o.add_argument("--owner", help="only this assignee")
    o.set_defaults(func=_overdue)
    pl = s.add_parser("plan", help="planned vs done (on time, late, overdue) per owner, deal, source...")
    _common(pl)
    pl.add_argument("--by", choices=("owner", "deal", "source", "kind", "stage"), default="owner")
    pl.add_argument("--period", help="plans due in this period (2026-Q1, 2026-03...)")
    pl.set_defaults(func=_plan)
    pb = s.add_parser("playbook", help="create the playbook tasks of a deal's stage (idempotent)")
    _common(pb)
    pb.add_argument("deal")
    pb.add_argument("--stage", help="default: the deal's stage")
    pb.add_argument("--country", help="business-day calendar for due dates, e.g. CN")
    pb.set_defaults(func=_playbook)
    c = s.add_parser("complete", help="mark a planned activity done")
    _common(c)
    c.add_argument("activity")
    c.add_argument("--outcome")
    c.set_defaults(func=_complete)


def _asof(args: argparse.Namespace) -> datetime:
    tz = parse_tz(args.tz)
    return parse_instant(args.asof, tz) or datetime.now(tz)  # "now" is a CLI default


def _todo(args: argparse.Namespace) -> int:
    asof = _asof(args)
    store = open_store(args.db, app=SalesProcess())
    try:
        rows = [t.as_dict() for t in acts.todos(store, asof=asof, owner_id=args.owner,
                                                 deal_id=args.deal, required=not args.tasks_only)]
    finally:
        store.close()
    emit(rows, args.format, columns=["kind", "deal_id", "title", "owner_id", "due", "overdue", "activity_id", "stage"])
    return 0


def _overdue(args: argparse.Namespace) -> int:
    asof = _asof(args)
    store = open_store(args.db, app=SalesProcess())
    try:
        rows = [t.as_dict() for t in acts.overdue(store, asof=asof, owner_id=args.owner)]
    finally:
        store.close()
    emit(rows, args.format, columns=["deal_id", "title", "owner_id", "due", "activity_id"])
    return 0


def _plan(args: argparse.Namespace) -> int:
    asof = _asof(args)
    try:
        period = Period.parse(args.period) if args.period else None
    except ValueError as e:
        raise CLIError(f"--period: {e}") from None
    store = open_store(args.db, app=SalesProcess())
    try:
        rows = [r.as_dict() for r in acts.planned_vs_done(store, asof=asof, by=args.by, period=period,
                                                           tz=parse_tz(args.tz))]
    finally:
        store.close()
    emit(rows, args.format)
    return 0


def _playbook(args: argparse.Namespace) -> int:
    asof = _asof(args)
    store = open_store(args.db, app=SalesProcess())
    try:
        deal = store.get_deal(args.deal)
        process = store.get_process(deal.process, deal.process_version)
        cal = BusinessCalendar(args.country) if args.country else None
        tasks = acts.start_playbook(store, process, deal, at=asof, stage=args.stage, calendar=cal,
                                    tz=parse_tz(args.tz))
    finally:
        store.close()
    emit([{"activity_id": t.activity.id, "title": t.activity.subject, "owner_id": t.activity.owner_id,
           "due": t.due, "role": t.role} for t in tasks], args.format,
         columns=["activity_id", "title", "owner_id", "due", "role"])
    return 0


def _complete(args: argparse.Namespace) -> int:
    asof = _asof(args)
    store = open_store(args.db, app=SalesProcess())
    try:
        a = acts.complete(store, args.activity, at=asof, outcome=args.outcome)
    finally:
        store.close()
    emit([{"activity_id": a.id, "status": a.status, "at": a.at}], args.format)
    return 0
