"""``salesprocess generate``: fill a store with a generated, reproducible company."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from typing import Any

from dateutil.relativedelta import relativedelta

from ..app import SalesProcess
from ..model import Activity, Deal
from ._util import CLIError, Progress, emit, open_store


def register(sub: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="fill a store with a generated company (teams, reps, accounts, deals with histories)",
        description="Generate a believable company from a seed: the same seed and start give the "
        "same company. Deals follow the process through its real stage machine.",
    )
    p.add_argument("--deals", type=int, required=True, help="number of deals (100 .. 1,000,000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    p.add_argument("--months", type=int, default=24, help="months of history (default 24)")
    p.add_argument(
        "--start",
        type=_date,
        help="first day of the data, YYYY-MM-DD (default: so that the data ends at the start of "
        "this month)",
    )
    p.add_argument("--process", default="b2b", help="shipped process key or process TOML file (default b2b)")
    p.add_argument("--currency", default="USD")
    p.add_argument("--tz", default="UTC", help="timezone of the company's working hours (default UTC)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _date(s: str) -> date:
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {s!r}") from None


def _tz(name: str) -> Any:
    from datetime import UTC

    if name.upper() == "UTC":
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CLIError(f"unknown timezone {name!r}") from None


def run(args: argparse.Namespace) -> int:
    from ..generate import iter_company, write_company

    if not 1 <= args.deals <= 10_000_000:
        raise CLIError(f"--deals must be between 1 and 10,000,000, got {args.deals}")
    if args.months < 1:
        raise CLIError(f"--months must be positive, got {args.months}")
    start = args.start
    if start is None:  # a user-facing default: the data ends where this month begins
        start = date.today().replace(day=1) - relativedelta(months=args.months)
    tz = _tz(args.tz)
    sp = SalesProcess()
    process = sp.load_process(args.process)
    store = open_store(args.db, app=sp)
    counts: Counter[str] = Counter()

    def counted(items: Iterator[Any]) -> Iterator[Any]:
        for it in items:
            if isinstance(it, Deal):
                counts[f"deals_{it.status.value}"] += 1
            elif isinstance(it, Activity):
                counts["activities"] += 1
            else:
                counts[type(it).__name__.lower() + "s"] += 1
            yield it

    t0 = time.monotonic()
    try:
        have = store.count_deals()
        if have:
            raise CLIError(f"{args.db or 'the store'} already holds {have:,} deals; generate into a new --db")
        items = iter_company(deals=args.deals, seed=args.seed, start=start, months=args.months,
                             process=process, currency=args.currency.upper(), tz=tz)
        with Progress("generating deals", args.deals, quiet=args.quiet) as bar, store.transaction():
            n = write_company(store, counted(items), progress=bar.update)
    finally:
        store.close()
    end = start + relativedelta(months=args.months)
    summary = {
        "db": args.db or "salesprocess.sqlite",
        "seed": args.seed,
        "process": process.key,
        "start": start.isoformat(),
        "asof": end.isoformat(),
        "deals": n,
        "won": counts["deals_won"],
        "lost": counts["deals_lost"],
        "open": counts["deals_open"],
        "teams": counts["teams"],
        "reps": counts["reps"],
        "accounts": counts["accounts"],
        "contacts": counts["contacts"],
        "products": counts["products"],
        "activities": counts["activities"],
        "seconds": round(time.monotonic() - t0, 1),
    }
    if args.format == "json":
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        emit([{"what": k, "value": v} for k, v in summary.items()], "table")
    return 0
