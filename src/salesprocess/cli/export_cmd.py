"""``salesprocess export KIND``: write a store's records as CSV or JSON Lines."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..app import SalesProcess
from ._util import CLIError, open_store

KINDS = ("deals", "events", "accounts", "contacts", "teams", "reps", "products", "activities", "processes")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export deals, events, accounts, reps, teams, contacts, products or activities",
        description="Write every record of one kind as CSV or JSON Lines, in the layout "
        "'salesprocess import' reads back without a mapping. Deal histories travel as events.",
    )
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--out", metavar="FILE", help="output file (default: standard output)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from salesprocess_adapters.tabular import export

    store = open_store(args.db, app=SalesProcess())
    try:
        if not args.out:
            n = export(store, args.kind, sys.stdout, format=args.format)
            sys.stdout.flush()
            return 0
        out = Path(args.out)
        if out.is_dir():
            raise CLIError(f"--out {args.out} is a directory")
        # write next to the target and rename: a failed export never leaves half a file
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent if str(out.parent) else ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                n = export(store, args.kind, f, format=args.format)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        store.close()
    print(f"wrote {n:,} {args.kind} to {args.out}", file=sys.stderr)
    return 0
