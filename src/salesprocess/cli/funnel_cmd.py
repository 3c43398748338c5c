"""``salesprocess funnel`` (stage conversion, drop-off, time in stage, bottleneck) and
``salesprocess pipeline-change`` (what moved between two instants)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta
from typing import Any

from salesprocess.app import SalesProcess
from salesprocess.cli._util import CLIError, emit, jsonable, open_store
from salesprocess.cli.kpi_cmd import add_scope_args, parse_instant, parse_tz, window_of
from salesprocess.kpi import funnel, parse_where, pipeline_change
from salesprocess.money import Rate

_RATES = ("conversion", "adjacent_conversion", "drop_off", "baseline_drop_off")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "funnel", help="stage funnel: conversion, drop-off, time in stage, bottleneck"
    )
    add_scope_args(p)
    p.add_argument("--process", help="process key (default: the one the deals follow)")
    p.add_argument(
        "--by",
        action="extend",
        nargs="+",
        default=[],
        metavar="DIMENSION",
        help="one funnel per value of these dimensions",
    )
    p.add_argument("--engine", choices=("auto", "python", "sql"), default="auto")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(func=_funnel)

    c = sub.add_parser(
        "pipeline-change", help="deals that changed between two instants, each once with its reason"
    )
    c.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    c.add_argument(
        "--since",
        required=True,
        metavar="INSTANT",
        help="start instant (ISO 8601; a date means the end of that day)",
    )
    c.add_argument("--until", metavar="INSTANT", help="end instant (default: now)")
    c.add_argument("--tz", default="UTC")
    c.add_argument("--where", action="append", default=[], metavar="DIM=VALUE[,VALUE]")
    c.add_argument("--format", choices=("table", "json", "csv"), default="table")
    c.set_defaults(func=_change)


def _funnel(args: argparse.Namespace) -> int:
    tz = parse_tz(args.tz)
    asof = parse_instant(args.asof, tz)
    window = window_of(args, tz, asof)
    sp = SalesProcess()
    store = open_store(args.db, app=sp)
    try:
        fs = funnel(
            store,
            process=args.process,
            window=window,
            asof=asof,
            by=args.by,
            where=parse_where(args.where),
            tz=tz,
            engine=args.engine,
        )
    finally:
        store.close()
    if args.format == "json":
        obj = [
            {
                "process": f.process,
                "key": f.key,
                "cohort": f.cohort,
                "won": f.won,
                "overall_conversion": f.overall_conversion,
                "bottleneck": f.bottleneck,
                "bottleneck_excess": f.bottleneck_excess,
                "stages": [s.as_dict() for s in f.stages],
            }
            for f in fs
        ]
        sys.stdout.write(json.dumps(jsonable(obj), ensure_ascii=False, indent=2) + "\n")
        return 0
    rows = [r for f in fs for r in f.rows()]
    if args.format == "table":
        rows = [
            {k: Rate(v) if k in _RATES and v is not None else v for k, v in r.items()} for r in rows
        ]
        for r in rows:
            r["bottleneck"] = "◀" if r["bottleneck"] else ""
    cols = [
        *args.by,
        "stage",
        "entered",
        "reached",
        "conversion",
        "adjacent_conversion",
        "lost",
        "drop_off",
        "open",
        "median_days",
        "p75_days",
        "p90_days",
        "bottleneck",
    ]
    emit(rows, args.format, columns=cols if args.format == "table" else None)
    return 0


def _change(args: argparse.Namespace) -> int:
    tz = parse_tz(args.tz)
    since = parse_instant(args.since, tz)
    until = parse_instant(args.until, tz) or datetime.now(tz)  # the CLI's "now"
    assert since is not None
    if until < since:
        raise CLIError("--until is before --since")
    store = open_store(args.db)
    try:
        ch = pipeline_change(store, since, until + timedelta(0), where=parse_where(args.where))
    finally:
        store.close()
    rows = [c.as_dict() for c in ch.changes]
    if args.format == "json":
        obj = {
            "since": since,
            "until": until,
            "changes": rows,
            "summary": ch.summary(),
            "bridge": ch.bridge,
        }
        sys.stdout.write(json.dumps(jsonable(obj), ensure_ascii=False, indent=2) + "\n")
        return 0
    cols = [
        "reason",
        "deal",
        "name",
        "owner",
        "stage_before",
        "stage_after",
        "amount_before",
        "amount_after",
        "close_date_before",
        "close_date_after",
    ]
    emit(rows, args.format, columns=cols)
    if args.format == "table":
        print()
        emit(
            [{"currency": cur, **parts} for cur, parts in ch.bridge.items()],
            "table",
            title="open pipeline bridge",
        )
    return 0
