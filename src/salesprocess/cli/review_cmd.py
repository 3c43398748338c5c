"""``salesprocess review``: the weekly review pack (周会) as a self-contained HTML page or Markdown."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import PeriodError
from ._util import CLIError, open_store


def register(sub: Any) -> None:
    p = sub.add_parser(
        "review",
        help="weekly review pack (周会): goals, pipeline changes, funnel, forecast, risk, "
        "leaderboards, feedback and actions as HTML or Markdown",
        description="Assemble the review of one ISO week from the store and write it as one "
        "self-contained HTML page (charts inline, readable on a phone, printable) or as Markdown.",
    )
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory: "
                   "(default $SALESPROCESS_DB or salesprocess.sqlite)")
    p.add_argument("--week", metavar="YYYY-Www",
                   help="the ISO week to review, e.g. 2026-W40 (default: the last complete week)")
    p.add_argument("--team", action="extend", nargs="+", default=[], metavar="TEAM",
                   help="only the deals of these teams' reps (sub-teams included)")
    p.add_argument("--period", metavar="LABEL",
                   help="period of goals, forecast and waterfall (default: the week's quarter)")
    p.add_argument("--out", metavar="PATH",
                   help="file to write (default review-YYYY-Www.html, or .md with --format md)")
    p.add_argument("--format", choices=("html", "md"),
                   help="html or md (default: from the --out suffix, else html)")
    p.add_argument("--lang", choices=("zh", "en"), default="zh", help="labels in Chinese or English")
    p.add_argument("--tz", default="UTC", help="timezone weeks and periods are read in (IANA name)")
    p.add_argument("--currency", help="the currency to show when deals are in several")
    p.add_argument("--risk-level", dest="risk_level", default="high",
                   choices=("low", "medium", "high", "critical"),
                   help="lowest risk level listed among the at-risk deals (default high)")
    p.add_argument("--limit", type=int, default=10,
                   help="rows shown per list of deals before '… and N more' (default 10; 0: all)")
    p.add_argument("--trials", type=int, default=10_000, help="Monte Carlo trials (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="Monte Carlo seed")
    p.set_defaults(func=_run)


def default_out(week: str, fmt: str) -> str:
    return f"review-{week}.{'md' if fmt == 'md' else 'html'}"


def _run(args: argparse.Namespace) -> int:
    from ..app import SalesProcess
    from ..periods import Period
    from ..report import write_review
    from ..review import review_week, weekly_review
    from .kpi_cmd import parse_tz

    tz = parse_tz(args.tz)
    if args.week is None:
        week = review_week(datetime.now(UTC), tz)
    else:
        try:
            week = Period.parse(args.week)
        except PeriodError as e:
            raise CLIError(f"--week: {e}") from None
        if week.kind.value != "week":
            raise CLIError(f"--week: expected an ISO week such as 2026-W40, got {args.week!r}")
    fmt = args.format
    if fmt is None:
        fmt = "md" if args.out and Path(args.out).suffix.lower() in (".md", ".markdown") else "html"
    out = Path(args.out or default_out(week.label, fmt))
    if args.limit < 0:
        raise CLIError("--limit must be 0 or more")
    sp = SalesProcess()
    store = open_store(args.db, app=sp)
    try:
        review = weekly_review(store, week, team=args.team or None, period=args.period, tz=tz,
                               currency=args.currency, risk_level=args.risk_level,
                               trials=args.trials, seed=args.seed, app=sp)
    finally:
        store.close()
    for name, sec in review.sections():
        if sec.status.value in ("error", "unavailable"):
            print(f"salesprocess: review: {name}: {sec.status.value}: {sec.detail}", file=sys.stderr)
    path = write_review(review, out, format=fmt, lang=args.lang, limit=args.limit)
    print(path)
    return 0
