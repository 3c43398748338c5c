"""``salesprocess rules``: validate rule files, run due rules (or a dry run), list firings."""

from __future__ import annotations

import argparse
import sys
import tomllib
from datetime import datetime
from typing import Any

from salesprocess.app import SalesProcess
from salesprocess.automation import FIRE_KIND, RuleEngine, RuleSet, open_notifiers
from salesprocess.cli._util import CLIError, emit, open_store
from salesprocess.cli.kpi_cmd import parse_instant, parse_tz
from salesprocess.errors import DefinitionError


def register(sub: Any) -> None:
    p = sub.add_parser("rules", help="automation rules: validate, run what is due, list firings")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    v = s.add_parser("validate", help="check a rule file and report every problem")
    v.add_argument("file")
    v.add_argument("--format", choices=("table", "json"), default="table")
    v.set_defaults(func=_validate)
    r = s.add_parser("run-due", help="fire every rule for what is due (once per occurrence)")
    r.add_argument("--rules", required=True, metavar="FILE", help="rule file (TOML)")
    r.add_argument("--asof", help="run as of this instant (default: now)")
    r.add_argument("--tz", default="UTC", help="timezone of --asof given without an offset")
    r.add_argument("--dry-run", action="store_true", help="list what would fire and why; change nothing")
    r.add_argument("--notifiers", metavar="FILE",
                   help="notifier settings (TOML: [notifiers.NAME] kind = \"smtp\"|\"webhook\" ...)")
    r.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    r.add_argument("--format", choices=("table", "json", "csv"), default="table")
    r.set_defaults(func=_run_due)
    f = s.add_parser("fired", help="the fire records: which rule fired for what, and what it did")
    f.add_argument("--rule", help="only this rule")
    f.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    f.add_argument("--format", choices=("table", "json", "csv"), default="table")
    f.set_defaults(func=_fired)


def _load(path: str) -> RuleSet:
    return RuleSet.from_toml(path if path.endswith(".toml") else open(path, encoding="utf-8").read())


def _validate(args: argparse.Namespace) -> int:
    try:
        rs = _load(args.file)
    except DefinitionError as e:
        if args.format == "json":
            emit([], "json", json_obj={"file": args.file, "valid": False,
                                       "problems": [p.as_dict() for p in e.problems]})
        else:
            for p in e.problems:
                print(f"{args.file}: {p.path}: {p.message} [{p.code}]")
            print(f"{len(e.problems)} problem(s)", file=sys.stderr)
        return 1
    if args.format == "json":
        emit([], "json", json_obj={"file": args.file, "valid": True, "rules": [r.id for r in rs.rules]})
    else:
        print(f"{args.file}: {len(rs)} valid rule(s): {', '.join(r.id for r in rs.rules)}")
    return 0


def _run_due(args: argparse.Namespace) -> int:
    tz = parse_tz(args.tz)
    asof = parse_instant(args.asof, tz) or datetime.now(tz)  # "now" is a CLI default
    rs = _load(args.rules)
    sp = SalesProcess()
    notifiers = {}
    if args.notifiers:
        try:
            with open(args.notifiers, "rb") as fh:
                cfg = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise CLIError(f"--notifiers {args.notifiers}: {e}") from None
        notifiers = open_notifiers(sp, cfg.get("notifiers", {}))
    store = open_store(args.db, app=sp)
    try:
        report = sp.run_rules(RuleEngine(rs), store, asof, notifiers=notifiers, dry_run=args.dry_run)
    finally:
        store.close()
    if args.format == "json":
        emit([], "json", json_obj=report.as_dict())
    else:
        rows = [{"rule": f.rule, "at": f.occurrence.at, "deal_id": f.occurrence.deal_id,
                 "account_id": f.occurrence.account_id,
                 "actions": ", ".join(f"{o.action}:{o.status}" for o in f.outcomes), "why": f.why}
                for f in report.fired]
        emit(rows, args.format, columns=["rule", "at", "deal_id", "account_id", "actions", "why"])
        verb = "would fire" if args.dry_run else "fired"
        print(f"{len(report.fired)} {verb}, {report.already} already fired, {report.not_matching} "
              f"not matching, {report.late} too late; {report.sent} message(s) sent, "
              f"{len(report.send_failures)} kept or dropped", file=sys.stderr)
    return 0


def _fired(args: argparse.Namespace) -> int:
    store = open_store(args.db, app=SalesProcess())
    try:
        rows = [{"key": k, "rule": d["rule"], "at": d["at"], "fired_at": d["fired_at"],
                 "deal_id": d.get("deal_id"), "account_id": d.get("account_id"),
                 "outcomes": ", ".join(f"{o['action']}:{o['status']}" for o in d.get("outcomes", ())),
                 "why": d.get("why", "")}
                for k, d in store.documents(FIRE_KIND) if args.rule is None or d["rule"] == args.rule]
    finally:
        store.close()
    emit(rows, args.format, columns=["rule", "at", "fired_at", "deal_id", "account_id", "outcomes", "why"])
    return 0
