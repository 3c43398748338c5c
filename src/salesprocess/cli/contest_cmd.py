"""``salesprocess contest``: leaderboards by any KPI, one period or a whole season."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any

from ..errors import PeriodError
from ..periods import Period
from ._util import CLIError, emit, jsonable, open_store


def register(sub: Any) -> None:
    p = sub.add_parser("contest", help="contest leaderboards (quarterly champion 季度冠军 and others)")
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory: "
                   "(default $SALESPROCESS_DB or salesprocess.sqlite)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--contest", metavar="FILE.toml", help="a contest definition")
    src.add_argument("--metric", metavar="KPI", help="a quick contest on this KPI")
    p.add_argument("--period", metavar="LABEL", help="the contest period, e.g. 2026-Q2")
    p.add_argument("--season", metavar="FROM..TO",
                   help="every contest period between two dates (inclusive), with the hall of fame")
    p.add_argument("--every", default="quarter", choices=("week", "month", "quarter", "half", "year"),
                   help="with --metric: how often the contest recurs (default quarter)")
    p.add_argument("--team", action="store_true", help="with --metric: rank teams instead of reps")
    p.add_argument("--min", action="append", default=[], metavar="KPI=VALUE",
                   help="with --metric: a qualifying minimum (repeatable)")
    p.add_argument("--tie-break", dest="tie_break", action="extend", nargs="+", default=[], metavar="KPI",
                   help="with --metric: KPIs that separate equal values, in order")
    p.add_argument("--winners", type=int, default=1, help="with --metric: how many ranks win")
    p.add_argument("--role", action="extend", nargs="+", default=[], metavar="ROLE",
                   help="with --metric: only reps of these roles take part")
    p.add_argument("--tz", default="UTC", help="timezone periods are read in (IANA name, default UTC)")
    p.add_argument("--asof", metavar="INSTANT", help="rank from what was known at this instant")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(func=_run)


def _contest(args: argparse.Namespace) -> Any:
    from ..incentives import Contest, Qualifier

    if args.contest:
        return Contest.from_toml(args.contest)
    quals = []
    for s in args.min:
        k, sep, v = s.partition("=")
        if not sep or not k:
            raise CLIError(f"--min: expected KPI=VALUE, got {s!r}")
        try:
            quals.append(Qualifier(k.strip(), _dec(v.strip())))
        except ValueError:
            raise CLIError(f"--min: {v!r} is not a number") from None
    return Contest(key=f"{args.metric}-{args.every}", name=f"{args.metric} by {args.every}", metric=args.metric,
                   period=args.every, scope="team" if args.team else "individual", qualify=quals,
                   tie_break=args.tie_break, winners=args.winners, roles=frozenset(args.role))


def _dec(s: str) -> Any:
    from ..money import to_decimal

    return to_decimal(s, field="--min")


def _run(args: argparse.Namespace) -> int:
    from ..incentives import run_contest, run_season
    from .kpi_cmd import parse_instant, parse_tz

    contest = _contest(args)
    tz = parse_tz(args.tz)
    asof = parse_instant(args.asof, tz)
    if (args.period is None) == (args.season is None):
        raise CLIError("give exactly one of --period and --season")
    store = open_store(args.db)
    try:
        if args.period is not None:
            try:
                period = Period.parse(args.period)
            except PeriodError as e:
                raise CLIError(f"--period: {e}") from None
            board = run_contest(contest, store, period, asof=asof, tz=tz)
            _emit_board(args, contest, board)
            return 0
        a, sep, b = args.season.partition("..")
        try:
            start, end = date.fromisoformat(a), date.fromisoformat(b)
        except ValueError:
            raise CLIError(f"--season: expected FROM..TO dates, got {args.season!r}") from None
        if not sep or end < start:
            raise CLIError("--season: expected FROM..TO with TO not before FROM")
        from datetime import timedelta

        season = run_season(contest, store, start, end + timedelta(days=1), asof=asof, tz=tz)
        rows = []
        for lb in season.leaderboards:
            win = lb.winners
            rows.append({"period": lb.period.label,
                         "winner": ", ".join(s.participant for s in win) or "(nobody qualified)",
                         "name": ", ".join(s.name or "" for s in win),
                         contest.metric: win[0].value if win else None,
                         "qualified": sum(1 for s in lb.standings if s.qualified),
                         "participants": len(lb.standings)})
        fame = [{"participant": k, "wins": n} for k, n in season.hall_of_fame]
        if args.format == "json":
            obj = {"contest": contest.to_dict(), "periods": [
                {"period": lb.period.label, "standings": lb.rows()} for lb in season.leaderboards],
                "hall_of_fame": fame}
            sys.stdout.write(json.dumps(jsonable(obj), ensure_ascii=False, indent=2) + "\n")
            return 0
        emit(rows, args.format, title=None if args.format != "table" else contest.name)
        if args.format == "table":
            print()
            emit(fame, "table", columns=["participant", "wins"], title="hall of fame")
        return 0
    finally:
        store.close()


def _emit_board(args: argparse.Namespace, contest: Any, board: Any) -> None:
    rows = board.rows()
    if args.format == "json":
        obj = {"contest": contest.to_dict(), "period": board.period.label, "standings": rows,
               "champion": None if board.champion is None else board.champion.participant}
        sys.stdout.write(json.dumps(jsonable(obj), ensure_ascii=False, indent=2) + "\n")
        return
    emit(rows, args.format, title=None if args.format != "table" else f"{contest.name} — {board.period.label}")
