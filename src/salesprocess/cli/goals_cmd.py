"""``salesprocess goals add|list|decompose|progress|validate|recut``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from salesprocess import goals as G
from salesprocess.app import SalesProcess
from salesprocess.cli._util import CLIError, emit, jsonable, open_store
from salesprocess.cli.kpi_cmd import parse_date, parse_instant, parse_tz
from salesprocess.errors import GoalError, PeriodError
from salesprocess.kpi import Dataset
from salesprocess.model import Rep
from salesprocess.money import Money, to_decimal
from salesprocess.periods import BusinessCalendar, Period

SPLITS = ("year", "half", "quarter", "month", "week", "day", "members")


def register(sub: Any) -> None:
    p = sub.add_parser("goals", help="set, split, check and follow SMART goals")
    ps = p.add_subparsers(dest="goals_command", metavar="ACTION", required=True)

    def common(x: argparse.ArgumentParser, fmt: bool = True) -> None:
        x.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
        if fmt:
            x.add_argument("--format", choices=("table", "json", "csv"), default="table")

    a = ps.add_parser("add", help="save a goal")
    common(a, fmt=False)
    a.add_argument("--id", required=True)
    a.add_argument("--metric", required=True, help="a KPI name, e.g. won_revenue or deals_won")
    a.add_argument(
        "--scope",
        default="company",
        help="rep:ID, team:ID, region:NAME, product:ID or company (default)",
    )
    a.add_argument("--target", required=True, help="a number (with --currency for money KPIs)")
    a.add_argument("--currency", help="currency of a money target, e.g. CNY")
    a.add_argument("--period", required=True, help="2026, 2026-Q1, 2026-03, 2026-W07, FY2027...")
    a.add_argument("--direction", choices=("higher", "lower"))
    a.add_argument("--parent", help="the id of the goal this one contributes to")
    a.add_argument("--objective", help="the company objective the goal serves")
    a.add_argument("--name", default="")
    a.set_defaults(func=_add)

    ls = ps.add_parser("list", help="list the saved goals")
    common(ls)
    ls.set_defaults(func=_list)

    d = ps.add_parser("decompose", help="split a goal into periods or team members, exactly")
    common(d)
    d.add_argument("--goal", required=True)
    d.add_argument("--into", required=True, choices=SPLITS)
    d.add_argument(
        "--method",
        default=None,
        help="equal, calendar_days, business_days, "
        "seasonality (periods); equal, capacity, ramp (members); weights",
    )
    d.add_argument(
        "--weights",
        nargs="+",
        default=None,
        metavar="KEY=WEIGHT",
        help="explicit weights by child period label or rep id",
    )
    d.add_argument(
        "--country",
        help="business-day calendar country, e.g. CN (with China's make-up working days)",
    )
    d.add_argument("--save", action="store_true", help="save the children as goals")
    d.set_defaults(func=_decompose)

    pr = ps.add_parser("progress", help="actual, attainment, pace, projection and status")
    common(pr)
    pr.add_argument("--goal", nargs="+", help="goal ids (default: all)")
    pr.add_argument("--asof", help="instant to judge at (default: now)")
    pr.add_argument("--tz", default="UTC")
    pr.add_argument("--pace", choices=("linear", "business_days"), default="linear")
    pr.add_argument("--country", help="business-day calendar country for --pace business_days")
    pr.add_argument(
        "--notify",
        action="store_true",
        help="announce newly reached milestones to plugins (records them in the store)",
    )
    pr.set_defaults(func=_progress)

    v = ps.add_parser("validate", help="SMART checks and consistency of the saved goals")
    common(v)
    v.add_argument("--goal", nargs="+", help="goal ids (default: all)")
    v.add_argument(
        "--objective", action="append", default=[], help="a declared company objective (repeatable)"
    )
    v.add_argument(
        "--factor",
        default="1.5",
        help="achievable limit: best comparable period × factor (default 1.5)",
    )
    v.add_argument("--asof", help="instant to judge at (default: now)")
    v.add_argument("--tz", default="UTC")
    v.set_defaults(func=_validate)

    r = ps.add_parser("recut", help="keep what each sub-period achieved, spread the rest")
    common(r)
    r.add_argument("--goal", required=True, help="the parent goal (its children are re-cut)")
    r.add_argument("--at", required=True, help="the first day still to come (YYYY-MM-DD)")
    r.add_argument(
        "--method", default="calendar_days", choices=("equal", "calendar_days", "business_days")
    )
    r.add_argument("--country")
    r.add_argument("--save", action="store_true")
    r.set_defaults(func=_recut)


def _goal_rows(gs: list[G.Goal]) -> list[dict[str, Any]]:
    return [
        {
            "id": g.id,
            "metric": g.metric,
            "scope": str(g.scope),
            "period": g.period.label,
            "target": g.target,
            "parent": g.parent_id,
            "objective": g.objective,
        }
        for g in gs
    ]


def _out(rows: list[dict[str, Any]], fmt: str, obj: Any = None) -> None:
    if fmt == "json":
        sys.stdout.write(
            json.dumps(jsonable(obj if obj is not None else rows), ensure_ascii=False, indent=2)
            + "\n"
        )
    else:
        emit(rows, fmt)


def _add(args: argparse.Namespace) -> int:
    try:
        period = Period.parse(args.period)
    except PeriodError as e:
        raise CLIError(f"--period: {e}") from None
    target: Money | Decimal = (
        Money(args.target, args.currency)
        if args.currency
        else to_decimal(args.target, field="--target")
    )
    sp = SalesProcess()
    sp.kpis.resolve(args.metric, "--metric")
    g = G.Goal(
        args.id,
        args.metric,
        G.GoalScope.parse(args.scope),
        target,
        period,
        args.direction,
        args.parent,
        args.objective,
        args.name,
    )
    store = open_store(args.db, app=sp)
    try:
        G.save_goal(store, g)
    finally:
        store.close()
    print(f"saved goal {g.id}: {g.metric} {g.scope} {g.target} in {g.period.label}")
    return 0


def _list(args: argparse.Namespace) -> int:
    store = open_store(args.db)
    try:
        gs = G.load_goals(store)
    finally:
        store.close()
    _out(_goal_rows(gs), args.format, [g.to_dict() for g in gs])
    return 0


def _weights(items: list[str] | None) -> dict[str, str] | None:
    if items is None:
        return None
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep:
            raise CLIError(f"--weights: expected KEY=WEIGHT, got {it!r}")
        out[k] = v
    return out


def _calendar(country: str | None) -> BusinessCalendar:
    try:
        cal = BusinessCalendar(country)
        cal.is_working_day(date(2026, 1, 1))
    except ValueError as e:
        raise CLIError(f"--country: {e}") from None
    return cal


def _decompose(args: argparse.Namespace) -> int:
    sp = SalesProcess()
    store = open_store(args.db, app=sp)
    try:
        g = G.load_goal(store, args.goal)
        w = _weights(args.weights)
        if args.into == "members":
            if g.scope.kind is not G.ScopeKind.TEAM:
                raise CLIError(f"goal {g.id} is for {g.scope}; members split team goals")
            reps = list(store.all(Rep, team_id=g.scope.id))
            kids = G.split_members(
                g, reps, args.method or ("weights" if w else "equal"), weights=w, registry=sp.kpis
            )
        else:
            method = args.method or ("weights" if w else "equal")
            data = Dataset.from_store(store) if method == "seasonality" else None
            kids = G.split_time(
                g,
                args.into,
                method,
                calendar=_calendar(args.country),
                weights=w,
                data=data,
                registry=sp.kpis,
            )
        if args.save:
            G.save_goal(store, *kids)
    finally:
        store.close()
    _out(_goal_rows(kids), args.format, [k.to_dict() for k in kids])
    if args.save and args.format == "table":
        print(f"saved {len(kids)} goals", file=sys.stderr)
    return 0


def _now(args: argparse.Namespace) -> datetime:
    tz = parse_tz(args.tz)
    at = parse_instant(args.asof, tz)
    return at if at is not None else datetime.now(tz)  # the CLI's "now"


def _selected(store: Any, ids: list[str] | None) -> list[G.Goal]:
    if ids:
        return [G.load_goal(store, i) for i in ids]
    return G.load_goals(store)


def _progress(args: argparse.Namespace) -> int:
    sp = SalesProcess(load_entrypoints=args.notify)
    asof = _now(args)
    tz = parse_tz(args.tz)
    cal = _calendar(args.country)
    store = open_store(args.db, app=sp)
    rows = []
    try:
        gs = _selected(store, args.goal)
        for g in gs:
            opts: dict[str, Any] = {"pace": args.pace, "calendar": cal, "tz": tz}
            if args.notify:
                p = sp.goal_progress(g, store, asof, **opts)
            else:
                p = G.progress(g, store, asof, registry=sp.kpis, **opts)
            rows.append(
                {
                    "goal": g.id,
                    "metric": g.metric,
                    "scope": str(g.scope),
                    "period": g.period.label,
                    "target": p.target,
                    "actual": p.actual,
                    "attainment": p.attainment,
                    "expected": p.expected,
                    "gap": p.gap,
                    "projection": p.projection,
                    "status": p.status.value,
                    "milestones": [str(m) for m in p.milestones],
                }
            )
    finally:
        store.close()
    _out(rows, args.format, {"asof": asof, "rows": rows})
    return 0


def _validate(args: argparse.Namespace) -> int:
    sp = SalesProcess()
    asof = _now(args)
    tz = parse_tz(args.tz)
    store = open_store(args.db, app=sp)
    try:
        every = G.load_goals(store)
        gs = _selected(store, args.goal)
        data = Dataset.from_store(store)
        reps = list(store.all(Rep))
    finally:
        store.close()
    rows: list[dict[str, Any]] = []
    errors = 0
    for g in gs:
        rep = G.validate(
            g,
            data,
            goals=every,
            objectives=args.objective,
            registry=sp.kpis,
            factor=args.factor,
            asof=asof,
            tz=tz,
        )
        rows.extend(rep.rows())
        errors += sum(f.level == "error" for f in rep.findings)
    for p in G.check_consistency(every, reps=reps, registry=sp.kpis):
        rows.append(
            {"goal": p.path, "letter": "", "level": "error", "code": p.code, "message": p.message}
        )
        errors += 1
    _out(rows, args.format, {"errors": errors, "findings": rows})
    return 1 if errors else 0


def _recut(args: argparse.Namespace) -> int:
    sp = SalesProcess()
    cut = parse_date(args.at, "--at")
    store = open_store(args.db, app=sp)
    try:
        parent = G.load_goal(store, args.goal)
        kids = [g for g in G.load_goals(store) if g.parent_id == parent.id]
        if not kids:
            raise CLIError(f"goal {parent.id} has no children to re-cut; decompose it first")
        data = Dataset.from_store(store)

        def achieved(child: G.Goal, past: Period) -> Any:
            return G.actual(child, data, window=past, registry=sp.kpis)

        try:
            r = G.recut(
                parent,
                kids,
                cut,
                achieved,
                args.method,
                calendar=_calendar(args.country),
                registry=sp.kpis,
            )
        except GoalError:
            raise
        if args.save:
            G.save_goal(store, *r.children)
    finally:
        store.close()
    rows = [
        {**row, "achieved": r.achieved.get(str(row["id"]))} for row in _goal_rows(list(r.children))
    ]
    _out(rows, args.format, {"remainder": r.remainder, "exceeded": r.exceeded, "children": rows})
    return 0
