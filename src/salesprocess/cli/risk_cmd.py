"""``salesprocess risk``: deal and customer risk scores with their reasons, and alerts."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from salesprocess.app import SalesProcess
from salesprocess.cli._util import CLIError, emit, jsonable, open_store
from salesprocess.cli.kpi_cmd import parse_instant, parse_tz
from salesprocess.kpi import Dataset
from salesprocess.periods import BusinessCalendar
from salesprocess.risk import LEVELS, RiskConfig, read_inputs


def register(sub: Any) -> None:
    p = sub.add_parser("risk", help="score deal and customer risk (signals, credit, churn) and "
                       "raise alerts")
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    p.add_argument("--asof", help="assess as known at this instant (default: now)")
    p.add_argument("--tz", default="UTC")
    p.add_argument("--min-severity", choices=LEVELS[1:], default=None,
                   help="show only deals and customers at this risk level or above")
    p.add_argument("--config", metavar="FILE", help="risk settings (TOML, over the defaults)")
    p.add_argument("--inputs", metavar="FILE",
                   help="receivables, orders, limits, surveys, complaints, revenue (JSON)")
    p.add_argument("--country", help="working-day calendar, e.g. CN (default Monday–Friday)")
    p.add_argument("--customers", action="store_true", help="list customers instead of deals")
    p.add_argument("--explain", metavar="ID", help="every reason of one deal (or customer)")
    p.add_argument("--alerts", action="store_true",
                   help="run the alert rules: notify plugins of new alerts and record them")
    p.add_argument("--limit", type=int, help="show only the N riskiest")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(func=_run)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(obj), ensure_ascii=False, indent=2) + "\n")


def _run(args: argparse.Namespace) -> int:
    tz = parse_tz(args.tz)
    asof = parse_instant(args.asof, tz) or datetime.now(tz)  # "now" is a CLI default
    config = RiskConfig.from_toml(args.config) if args.config else RiskConfig.default()
    credit = churn = None
    if args.inputs:
        credit, churn = read_inputs(args.inputs)
    calendar = BusinessCalendar(args.country) if args.country else None
    sp = SalesProcess()
    store = open_store(args.db, app=sp)
    try:
        data = Dataset.from_store(store)
        report = sp.assess_risk(data, asof=asof, config=config, credit=credit, churn=churn,
                                calendar=calendar, tz=tz)
        run = None
        if args.alerts:
            run = sp.run_risk_alerts(store, report, at=asof, config=config)
    finally:
        store.close()
    if args.explain:
        try:
            one: Any = report.deal(args.explain)
        except KeyError:
            try:
                one = report.customer(args.explain)
            except KeyError:
                raise CLIError(f"--explain: no open deal or customer {args.explain!r}") from None
        if args.format == "json":
            _print_json(one.as_dict())
        else:
            print(f"{args.explain}: risk {one.score} ({one.level})")
            for line in one.explain():
                print("  " + line)
        return 0
    shown = report.at_least(args.min_severity) if args.min_severity else report
    if args.format == "json":
        obj = shown.to_json_obj()
        if run is not None:
            obj["alerts"] = {"raised": [a.as_dict() for a in run.raised],
                             "active": [a.as_dict() for a in run.active],
                             "cleared": list(run.cleared)}
        _print_json(obj)
        return 0
    if args.customers:
        items = sorted(shown.customers, key=lambda c: (-c.score, c.account_id))
        rows = [{"account_id": c.account_id, "name": c.name, "score": c.score, "level": c.level,
                 "grade": c.credit.grade if c.credit else None, "over_limit": c.over_limit,
                 "open_deals": c.open_deals,
                 "reasons": "; ".join(f"{x.signal} +{x.points}" for x in c.contributions)}
                for c in items]
    else:
        ditems = sorted(shown.deals, key=lambda d: (-d.score, d.deal_id))
        rows = [{"deal_id": d.deal_id, "name": d.name, "stage": d.stage, "owner": d.owner_id,
                 "score": d.score, "level": d.level,
                 "reasons": "; ".join(f"{x.signal} +{x.points}" for x in d.contributions)}
                for d in ditems]
    if args.limit:
        rows = rows[: args.limit]
    emit(rows, args.format)
    if run is not None and args.format == "table":
        emit([{"rule": a.rule, "subject": f"{a.subject}:{a.subject_id}", "severity": a.severity,
               "score": a.score, "notify": ", ".join(a.recipients)} for a in run.raised],
             "table", title=f"\n{len(run.raised)} new alert(s), {len(run.active)} still active, "
                            f"{len(run.cleared)} cleared")
    return 0
