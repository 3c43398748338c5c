"""``salesprocess forecast [backtest|submit|adjust|accuracy]``: period forecasts and their ledger."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, tzinfo
from typing import Any

from salesprocess import forecast as F
from salesprocess.app import SalesProcess
from salesprocess.cli._util import CLIError, cell, emit, jsonable, open_store
from salesprocess.cli.kpi_cmd import parse_instant, parse_tz
from salesprocess.errors import DomainError, PeriodError
from salesprocess.money import Money, Rate, to_decimal
from salesprocess.periods import Period

METHODS = tuple(m.value for m in F.Method)
LEVELS = {"company": ("company",), "team": ("company", "team"), "rep": ("company", "team", "rep")}


def _shared(p: argparse.ArgumentParser, sub: bool) -> None:
    kw: dict[str, Any] = {"default": argparse.SUPPRESS} if sub else {}
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:", **kw)
    p.add_argument("--asof", help="forecast from what was known at this instant (ISO 8601; a date "
                   "means the end of that day; default: now)", **kw)
    tz_kw: dict[str, Any] = {"default": argparse.SUPPRESS if sub else "UTC"}
    p.add_argument("--tz", help="timezone of dates and periods (IANA name, default UTC)", **tz_kw)
    p.add_argument("--currency", help="forecast the deals in this currency", **kw)
    fmt_kw: dict[str, Any] = {"default": argparse.SUPPRESS if sub else "table"}
    p.add_argument("--format", choices=("table", "json", "csv"), **fmt_kw)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--segment", help="learn win rates per segment: team, owner, region, industry, "
                   "size_band, product, product_family, custom.FIELD")
    p.add_argument("--min-sample", type=int, default=20,
                   help="closed deals a win rate or timing distribution needs (default 20)")
    p.add_argument("--trials", type=int, default=10_000, help="Monte Carlo trials (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="Monte Carlo seed (default 0)")
    p.add_argument("--engine", choices=("auto", "python", "numpy"), default="auto",
                   help="Monte Carlo engine (same numbers either way)")


def register(sub: Any) -> None:
    p = sub.add_parser("forecast", help="forecast a period: weighted, categories, historical, "
                       "Monte Carlo; backtests, submissions and the accuracy ledger")
    _shared(p, sub=False)
    p.add_argument("--period", help="the period to forecast: 2026-Q3, 2026-07, 2026-W30, FY2027...")
    p.add_argument("--by", choices=tuple(LEVELS), default="company",
                   help="roll-up rows: company (default), team (and company), rep (and teams)")
    p.add_argument("--method", choices=METHODS, default="weighted")
    p.add_argument("--target", help="the company's target for the period (default: the saved "
                   "won_revenue goals of each scope)")
    p.add_argument("--deals", action="store_true", help="list the deal lines instead of the roll-up")
    p.add_argument("--save", action="store_true",
                   help="keep each row's forecast as a model snapshot for the accuracy ledger")
    _model_args(p)
    p.set_defaults(func=_run)
    ps = p.add_subparsers(dest="forecast_command", metavar="ACTION")

    b = ps.add_parser("backtest", help="score every method on past periods, without leakage")
    _shared(b, sub=True)
    b.add_argument("--period", dest="periods", action="append", default=[],
                   help="a past period to forecast (repeatable)")
    b.add_argument("--last", type=int, help="the last N periods of --kind before --asof")
    b.add_argument("--kind", default="quarter", choices=("month", "quarter", "half", "year"),
                   help="period kind for --last (default quarter)")
    b.add_argument("--offset-days", type=int, default=0,
                   help="forecast this many days after each period starts (default 0)")
    b.add_argument("--method", dest="methods", action="append", choices=METHODS,
                   help="methods to score (repeatable; default all)")
    _model_args(b)
    b.set_defaults(func=_backtest, trials=2_000)

    s = ps.add_parser("submit", help="record what a rep or manager commits for a period")
    _shared(s, sub=True)
    s.add_argument("--period", required=True)
    s.add_argument("--scope", required=True, help="company, team:ID or rep:ID")
    s.add_argument("--by", dest="who", required=True, help="who submits")
    s.add_argument("--commit", required=True, help="the committed amount")
    s.add_argument("--best-case", help="the best-case amount")
    s.add_argument("--note", default="")
    s.add_argument("--id", help="submission id (default: scope, period and instant)")
    s.set_defaults(func=_submit)

    a = ps.add_parser("adjust", help="record a manager adjustment of a roll-up value")
    _shared(a, sub=True)
    a.add_argument("--period", required=True)
    a.add_argument("--scope", required=True, help="company, team:ID or rep:ID")
    a.add_argument("--measure", help="the value to adjust (default: the method's forecast)")
    a.add_argument("--method", choices=METHODS, default="categories")
    a.add_argument("--to", required=True, help="the adjusted amount")
    a.add_argument("--by", dest="who", required=True, help="who adjusts")
    a.add_argument("--reason", required=True, help="why")
    a.add_argument("--id", help="adjustment id (default: scope, measure, period and instant)")
    a.set_defaults(func=_adjust)

    c = ps.add_parser("accuracy", help="compare submissions and model forecasts with what closed")
    _shared(c, sub=True)
    c.add_argument("--which", choices=("last", "first", "all"), default="last",
                   help="which forecast of each submitter, scope and period to score")
    c.add_argument("--min-periods", type=int, default=3)
    c.add_argument("--threshold", default="0.1", help="bias that counts as sandbagging or happy "
                   "ears (default 0.1)")
    c.set_defaults(func=_accuracy)


# ------------------------------------------------------------------------------------------------


def _ctx(args: argparse.Namespace) -> tuple[tzinfo, datetime]:
    tz = parse_tz(args.tz)
    asof = parse_instant(args.asof, tz) or datetime.now(tz)  # "now" is a CLI default
    return tz, asof


def _period(label: str | None) -> Period:
    if not label:
        raise CLIError("--period is required (e.g. --period 2026-Q3)")
    try:
        return Period.parse(label)
    except PeriodError as e:
        raise CLIError(f"--period: {e}") from None


def _money(text: str, currency: str | None, option: str) -> Money:
    parts = text.split()
    cur = parts[1] if len(parts) == 2 else currency
    if cur is None:
        raise CLIError(f"{option}: give a currency (\"120000 CNY\") or --currency")
    try:
        return Money(to_decimal(parts[0], field=option), cur)
    except (DomainError, ValueError) as e:
        raise CLIError(f"{option}: {e}") from None


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(obj), ensure_ascii=False, indent=2) + "\n")


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "forecast_command", None):
        return 0  # handled by the action's own func
    tz, asof = _ctx(args)
    period = _period(args.period)
    sp = SalesProcess()
    store = open_store(args.db, app=sp)
    try:
        target = _money(args.target, args.currency, "--target") if args.target else None
        f = F.forecast(store, period, asof=asof, method=args.method, tz=tz, currency=args.currency,
                       levels=LEVELS[args.by], segment=args.segment, min_sample=args.min_sample,
                       trials=args.trials, seed=args.seed, engine=args.engine, target=target)
        if args.save:
            for r in f.rows:
                F.save_snapshot(store, F.ForecastSnapshot(
                    f"{args.method}|{r.scope}|{period.label}|{asof.isoformat()}", args.method,
                    r.scope, period, asof, r.values[f.headline]))
    finally:
        store.close()
    if args.format == "json":
        _print_json(f.to_json_obj())
        return 0
    if args.deals:
        rows = [ln.as_dict() for ln in f.lines]
        emit(rows, args.format, columns=["deal_id", "owner_id", "stage", "category", "amount",
                                         "close_date", "probability", "probability_source",
                                         "share", "timing", "expected"])
        return 0
    rows = []
    for r in f.rows:
        d = r.as_dict()
        d["name"] = ("  " * (0 if r.level == "company" else 1 if r.level == "team" else 2)) + r.name
        rows.append(d)
    measures = list(f.company.values)
    adj_cols = sorted({k for r in rows for k in r if k.endswith("_adjusted")})
    extra = [c for c in ("target", "p_target") if any(c in r for r in rows)]
    title = (f"{f.method.value} forecast for {period.label} as of {asof.isoformat()} "
             f"({f.currency}; headline: {f.headline})")
    emit(rows, args.format, columns=["level", "id", "name", "deals", *measures, *adj_cols, *extra],
         title=title)
    sim = f.company.simulation
    if sim is not None and args.format == "table" and sim.movers:
        emit([{"deal_id": m.deal_id, "amount": m.amount, "probability": m.probability,
               "variance_share": m.variance_share, "p_target_if_won": m.p_target_if_won,
               "p_target_if_lost": m.p_target_if_lost} for m in sim.movers],
             "table", title="\ndeals that move the outcome most")
    if f.unpriced and args.format == "table":
        print(f"\n{f.unpriced} open deal(s) without an amount were left out", file=sys.stderr)
    return 0


def _backtest(args: argparse.Namespace) -> int:
    tz, asof = _ctx(args)
    periods: list[Period] = [_period(x) for x in args.periods]
    if args.last:
        cur = Period.containing(asof.astimezone(tz).date(), args.kind)
        periods += [cur.shift(-i) for i in range(args.last, 0, -1)]
    if not periods:
        raise CLIError("give past periods with --period (repeatable) or --last N")
    store = open_store(args.db)
    try:
        bt = F.backtest(store, periods, offset_days=args.offset_days,
                        methods=args.methods or METHODS, tz=tz, currency=args.currency,
                        final_asof=asof, segment=args.segment, min_sample=args.min_sample,
                        trials=args.trials, seed=args.seed, engine=args.engine)
    finally:
        store.close()
    if args.format == "json":
        _print_json(bt.to_json_obj())
        return 0
    emit([r.as_dict() for r in bt.rows], args.format,
         columns=["period", "asof", "method", "forecast", "actual", "error", "ape", "p10", "p90",
                  "covered"], title=f"backtest ({bt.currency})")
    if args.format == "table":
        emit([s.as_dict() for s in bt.scores], "table",
             columns=["method", "periods", "mape", "bias", "mae", "coverage"], title="\nscores")
        if bt.skipped:
            print("skipped (not over yet): " + ", ".join(p.label for p in bt.skipped),
                  file=sys.stderr)
    return 0


def _submit(args: argparse.Namespace) -> int:
    _tz, asof = _ctx(args)
    period = _period(args.period)
    try:
        scope = F.Scope.parse(args.scope)
        commit = _money(args.commit, args.currency, "--commit")
        best = _money(args.best_case, commit.currency, "--best-case") if args.best_case else None
        sid = args.id or f"{scope}|{period.label}|{args.who}|{asof.isoformat()}"
        sub = F.ForecastSubmission(sid, args.who, scope, period, asof, commit, best, args.note)
    except DomainError as e:
        raise CLIError(str(e)) from None
    store = open_store(args.db)
    try:
        F.save_submission(store, sub)
    finally:
        store.close()
    if args.format == "json":
        _print_json({"id": sid, **sub.to_doc()})
    else:
        print(f"recorded submission {sid}: {args.who} commits {cell(commit)} for {scope} in "
              f"{period.label}")
    return 0


def _adjust(args: argparse.Namespace) -> int:
    tz, asof = _ctx(args)
    period = _period(args.period)
    try:
        scope = F.Scope.parse(args.scope)
    except DomainError as e:
        raise CLIError(str(e)) from None
    store = open_store(args.db)
    try:
        f = F.forecast(store, period, asof=asof, method=args.method, tz=tz, currency=args.currency,
                       levels=("company", "team", "rep"), trials=1000)
        measure = args.measure or f.headline
        try:
            row = f.row(scope.level, scope.id)
        except KeyError:
            raise CLIError(f"--scope: no {scope} row in the {args.method} forecast") from None
        if measure not in row.adjusted:
            raise CLIError(f"--measure: the {args.method} forecast has no {measure!r} "
                           f"(it has {', '.join(row.adjusted)})")
        current = row.adjusted[measure]
        to = _money(args.to, current.currency, "--to")
        aid = args.id or f"{scope}|{measure}|{period.label}|{asof.isoformat()}"
        try:
            adj = F.ForecastAdjustment(aid, scope, period, measure, args.who, asof, current, to,
                                       args.reason)
        except DomainError as e:
            raise CLIError(str(e)) from None
        F.save_adjustment(store, adj)
    finally:
        store.close()
    if args.format == "json":
        _print_json({"id": aid, **adj.to_doc()})
    else:
        print(f"recorded adjustment {aid}: {measure} of {scope} in {period.label} "
              f"{cell(current)} → {cell(to)} by {args.who} ({args.reason})")
    return 0


def _accuracy(args: argparse.Namespace) -> int:
    tz, asof = _ctx(args)
    store = open_store(args.db)
    try:
        led = F.accuracy_ledger(store, asof=asof, submissions=F.load_submissions(store),
                                snapshots=F.load_snapshots(store), tz=tz, which=args.which,
                                min_periods=args.min_periods,
                                threshold=Rate(to_decimal(args.threshold)))
    finally:
        store.close()
    subs = [{"submitter": s.submitter, "entries": s.entries, "with_actual": s.with_actual,
             "mape": s.mape, "bias": s.bias, "over_share": s.over_share,
             "verdict": s.verdict.value} for s in led.submitters]
    entries = [{"submitter": e.submitter, "scope": str(e.scope), "period": e.period.label,
                "at": e.at, "forecast": e.forecast, "actual": e.actual, "error": e.error,
                "ape": e.ape} for e in led.entries]
    if args.format == "json":
        _print_json({"submitters": subs, "entries": entries})
        return 0
    emit(entries, args.format, title="forecasts against what closed")
    if args.format == "table":
        emit(subs, "table", title="\nsubmitters")
    return 0
