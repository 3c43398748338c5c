"""``salesprocess kpi``: KPI values grouped by dimensions and periods."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from salesprocess.app import SalesProcess
from salesprocess.cli._util import CLIError, emit, jsonable, open_store
from salesprocess.errors import PeriodError
from salesprocess.kpi import KpiTable, compare, compute, parse_where
from salesprocess.money import Money, Rate
from salesprocess.periods import FiscalCalendar, Period

DEFAULT_METRICS = (
    "deals_won",
    "deals_lost",
    "win_rate",
    "won_revenue",
    "avg_won_deal_size",
    "median_cycle_days",
    "mean_cycle_days",
    "open_pipeline_value",
    "weighted_pipeline_value",
)
PERIODS = ("week", "month", "quarter", "half", "year", "fiscal_quarter", "fiscal_year")


def add_scope_args(p: argparse.ArgumentParser) -> None:
    """Options shared by the KPI, funnel and goal commands."""
    p.add_argument(
        "--db",
        help="store: SQLite path, postgresql:// URL or memory: "
        "(default $SALESPROCESS_DB or salesprocess.sqlite)",
    )
    p.add_argument("--from", dest="date_from", metavar="DATE", help="first day of the window")
    p.add_argument(
        "--to",
        dest="date_to",
        metavar="DATE",
        help="last day of the window (inclusive; default: the --asof day or today)",
    )
    p.add_argument(
        "--asof",
        metavar="INSTANT",
        help="compute from what was known at this instant (ISO 8601; a date means the "
        "end of that day in --tz)",
    )
    p.add_argument(
        "--tz",
        default="UTC",
        help="timezone that dates and periods are read in (IANA name, default UTC)",
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="DIM=VALUE[,VALUE]",
        help="keep records whose dimension has one of the values (repeatable)",
    )


def register(sub: Any) -> None:
    p = sub.add_parser(
        "kpi", help="compute KPIs grouped by owner, team, region, product, period..."
    )
    add_scope_args(p)
    p.add_argument(
        "--metric",
        action="extend",
        nargs="+",
        default=[],
        metavar="NAME",
        help="KPI names (default: the core sales KPIs); parametric ones as "
        "NAME:VALUE, e.g. activities:call",
    )
    p.add_argument(
        "--by",
        action="extend",
        nargs="+",
        default=[],
        metavar="DIMENSION",
        help="group by owner, team, region, manager, account, industry, product, "
        "product_family, stage, status, process, currency, custom.FIELD",
    )
    p.add_argument("--period", choices=PERIODS, help="also group by periods of this kind")
    p.add_argument("--fiscal-start", type=int, default=1, metavar="MONTH",
                   help="first month of the fiscal year for fiscal periods (default 1)")
    p.add_argument("--currency", help="report currency for empty money sums")
    p.add_argument(
        "--compare",
        metavar="HOW",
        help="period-over-period change of the --from/--to window: WoW, MoM, QoQ, YoY",
    )
    p.add_argument(
        "--engine",
        choices=("auto", "python", "sql"),
        default="auto",
        help="where to compute: in the database when the store can (auto), always in "
        "Python, or insist on the database",
    )
    p.add_argument("--list", action="store_true", help="list the available KPIs and exit")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(func=_run)


def parse_tz(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CLIError(
            f"--tz: unknown timezone {name!r} (use an IANA name such as Asia/Shanghai)"
        ) from None


def parse_date(s: str, option: str) -> date:
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise CLIError(f"{option}: expected a date YYYY-MM-DD, got {s!r}") from None


def parse_instant(s: str | None, tz: tzinfo) -> datetime | None:
    if s is None:
        return None
    try:
        if len(s) == 10:
            d = date.fromisoformat(s)
            return datetime.combine(d + timedelta(days=1), time(), tz) - timedelta(microseconds=1)
        at = datetime.fromisoformat(s)
    except ValueError:
        raise CLIError(f"--asof: expected an ISO 8601 instant or date, got {s!r}") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=tz)


def window_of(args: argparse.Namespace, tz: tzinfo, asof: datetime | None) -> Period | None:
    if args.date_from is None and args.date_to is None:
        return None
    if args.date_from is None:
        raise CLIError("--to needs --from")
    start = parse_date(args.date_from, "--from")
    if args.date_to is not None:
        last = parse_date(args.date_to, "--to")
    elif asof is not None:
        last = asof.astimezone(tz).date()
    else:
        last = datetime.now(tz).date()  # the user's "today" is a CLI default
    try:
        return Period(start, last + timedelta(days=1))
    except PeriodError as e:
        raise CLIError(f"--from/--to: {e}") from None


def fiscal(args: argparse.Namespace) -> FiscalCalendar:
    if not 1 <= args.fiscal_start <= 12:
        raise CLIError(f"--fiscal-start: a month 1..12, got {args.fiscal_start}")
    return FiscalCalendar(args.fiscal_start)


def json_obj(t: KpiTable, units: dict[str, str]) -> dict[str, Any]:
    obj = t.to_json_obj()
    rows = []
    for r in t.rows:
        d: dict[str, Any] = dict(r.key)
        for m in t.metrics:
            v = r.values[m]
            d[m] = None if v is None else str(v.amount if isinstance(v, Money) else v)
            if isinstance(v, Money) and v.currency != t.currency:
                d[m + "_currency"] = v.currency
        rows.append(d)
    obj["rows"] = rows
    obj["currency"] = t.currency
    obj["units"] = units
    obj["periods"] = [p.label for p in t.periods]
    return obj


def _run(args: argparse.Namespace) -> int:
    sp = SalesProcess()
    reg = sp.kpis
    if args.list:
        rows = [k.describe() for k in reg.values()]
        emit(rows, args.format, columns=["name", "unit", "direction", "basis", "definition"])
        return 0
    tz = parse_tz(args.tz)
    asof = parse_instant(args.asof, tz)
    window = window_of(args, tz, asof)
    metrics = list(dict.fromkeys(args.metric or DEFAULT_METRICS))
    where = parse_where(args.where)
    store = open_store(args.db, app=sp)
    try:
        if args.compare:
            if window is None:
                raise CLIError("--compare needs the current window (--from/--to, e.g. a month)")
            return _compare(args, store, metrics, window, asof, tz, where, reg)
        t = compute(
            store,
            metrics,
            by=args.by,
            period=args.period,
            window=window,
            asof=asof,
            tz=tz,
            where=where,
            currency=args.currency,
            registry=reg,
            engine=args.engine,
            fiscal=fiscal(args),
        )
    finally:
        store.close()
    units = {m: reg.resolve(m)[0].unit.value for m in metrics}
    if args.format == "json":
        sys.stdout.write(json.dumps(json_obj(t, units), ensure_ascii=False, indent=2) + "\n")
    elif args.format == "csv":
        emit(t.as_dicts(), "csv", columns=[*t.by, *t.metrics])
    else:
        rates = {m for m, u in units.items() if u == "rate"}
        rows = [
            {k: Rate(v) if k in rates and v is not None else v for k, v in r.items()}
            for r in t.as_dicts()
        ]
        emit(rows, "table", columns=[*t.by, *t.metrics])
    return 0


def _compare(
    args: argparse.Namespace,
    store: Any,
    metrics: list[str],
    window: Period,
    asof: datetime | None,
    tz: tzinfo,
    where: Any,
    reg: Any,
) -> int:
    period = _named(window)
    changes = compare(
        store,
        metrics,
        period,
        args.compare,
        by=args.by,
        asof=asof,
        tz=tz,
        where=where,
        currency=args.currency,
        registry=reg,
        engine=args.engine,
        fiscal=fiscal(args),
    )
    rows = [c.as_dict() for c in changes]
    if args.format == "json":
        sys.stdout.write(
            json.dumps(
                {"period": period.label, "against": args.compare, "rows": jsonable(rows)},
                ensure_ascii=False,
                indent=2,
            )
            + "\n"
        )
    else:
        emit(
            rows,
            args.format,
            columns=[*args.by, "metric", "current", "previous", "change", "relative"],
        )
    return 0


def _named(w: Period) -> Period:
    """The named period (week, month, quarter, year) equal to ``w``, else ``w`` itself."""
    for kind in ("week", "month", "quarter", "year"):
        p = Period.containing(w.start, kind)
        if (p.start, p.end) == (w.start, w.end):
            return p
    return w
