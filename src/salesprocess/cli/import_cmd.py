"""``salesprocess import KIND FILE``: CSV or JSON Lines into a store, through a mapping.

Exit codes: 0 every row imported; 3 imported, bad rows skipped (``--on-error skip``); 4 nothing
imported because of bad rows; 2 the mapping file or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..app import SalesProcess
from ..errors import ImportDataError
from ._util import CLIError, Progress, open_store

KINDS = ("deals", "events", "accounts", "contacts", "teams", "reps", "products", "activities", "processes")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "import",
        help="import CSV or JSON Lines (deals, events, accounts, reps, ...) through a mapping file",
        description="Import a file of records. With --mapping, a TOML file says which column is "
        "which field; without, the file is in salesprocess's own export layout. Exit codes: "
        "0 all rows imported, 3 imported with bad rows skipped, 4 nothing imported because of "
        "bad rows, 2 bad mapping or arguments.",
    )
    p.add_argument("kind", choices=KINDS, help="what the file holds")
    p.add_argument("file", help="a .csv or .jsonl file")
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    p.add_argument("--mapping", metavar="MAP.toml", help="import mapping (TOML); none for our own export layout")
    p.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                   help="fail: import nothing if any row is bad (default); skip: import the good rows")
    p.add_argument("--input-format", choices=("csv", "jsonl"), help="default: from the file extension")
    p.add_argument("--format", choices=("table", "json"), default="table", help="report format")
    p.add_argument("--batch-size", type=int, default=2000, help=argparse.SUPPRESS)
    p.add_argument("--max-errors", type=int, default=1000, help="bad rows listed in detail (default 1000)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from salesprocess_adapters.tabular import ImportMapping, ImportMappingError, import_file

    sp = SalesProcess()
    mapping = None
    if args.mapping:
        try:
            mapping = ImportMapping.from_toml(args.mapping if args.mapping.endswith(".toml") else _path(args.mapping),
                                              kind=args.kind, app=sp)
        except ImportMappingError as e:
            for p, line in e.located:
                where = f"{e.path}:{line}" if line else e.path
                what = f"{p.path}: " if p.path else ""
                print(f"salesprocess: error: {where}: {what}{p.message}", file=sys.stderr)
            return 2
    store = open_store(args.db, app=sp)
    try:
        with Progress(f"importing {args.kind}", quiet=args.quiet or args.format == "json") as bar:
            try:
                report = import_file(
                    store, args.kind, args.file, mapping=mapping, on_error=args.on_error,
                    input_format=args.input_format, batch_size=max(1, args.batch_size),
                    progress=bar.update, app=sp, max_errors=max(0, args.max_errors),
                )
            except ImportDataError as e:
                if e.report is None:
                    raise
                report = e.report
            except ValueError as e:
                raise CLIError(str(e)) from None
    finally:
        store.close()
    _print(report, args.format)
    return int(report.exit_code)


def _path(s: str) -> Any:
    from pathlib import Path

    return Path(s)


def _print(report: Any, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2, default=str))
        return
    for e in report.errors:
        print(str(e))
    if report.errors_total > len(report.errors):
        print(f"... and {report.errors_total - len(report.errors):,} more problem(s)")
    print(report.summary())
