"""``salesprocess commissions``: commission statements, what-if estimates and snapshots."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from ..errors import ConflictError, PeriodError
from ..money import Money
from ..periods import Period
from ._util import CLIError, emit, jsonable, open_store

SUMMARY = ["period", "rep", "name", "credited", "quota", "attainment", "tier", "earnings", "withheld",
           "draw_balance", "deficit", "total"]
LINES = ["period", "rep", "kind", "amount", "rule", "deal", "event", "role", "base", "rate", "version", "note"]


def register(sub: Any) -> None:
    p = sub.add_parser("commissions", help="commission statements of a plan for a period, line by line")
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory: "
                   "(default $SALESPROCESS_DB or salesprocess.sqlite)")
    p.add_argument("--plan", required=True, metavar="PLAN",
                   help="a plan TOML file, or the key of a plan saved in the store")
    p.add_argument("--period", required=True, metavar="LABEL",
                   help="settlement period(s) to state, e.g. 2026-Q2 or 2026-05")
    p.add_argument("--rep", action="extend", nargs="+", default=[], metavar="REP",
                   help="only these reps")
    p.add_argument("--inputs", metavar="FILE.json",
                   help="invoices, payments, refunds, churns, splits, quotas, adjustments, fx and org")
    p.add_argument("--lines", action="store_true", help="print every statement line (table and CSV)")
    p.add_argument("--what-if", dest="what_if", metavar="AMOUNT",
                   help="estimate a prospective deal of this amount (in the plan currency) for one --rep")
    p.add_argument("--at", metavar="INSTANT", help="when the prospective deal would be won "
                   "(ISO 8601; default: now, or the period's last day when it is over)")
    p.add_argument("--product", action="extend", nargs="+", default=[], metavar="PRODUCT",
                   help="products of the prospective deal")
    p.add_argument("--save", action="store_true",
                   help="keep the plan and snapshot the statements in the store (refused if a different "
                   "statement or plan version is saved)")
    p.add_argument("--replace", action="store_true", help="with --save: overwrite different snapshots")
    p.add_argument("--check", action="store_true",
                   help="compare with the saved snapshots; exit 1 if any differs")
    p.add_argument("--no-strict", dest="strict", action="store_false",
                   help="report data problems and leave the records out instead of stopping")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(func=_run)


def _plan(ref: str, store: Any) -> Any:
    from ..incentives import Plan, load_plan

    path = Path(ref)
    if ref.endswith(".toml") or path.exists():
        return Plan.from_toml(path)
    try:
        return load_plan(store, ref)
    except KeyError:
        raise CLIError(f"--plan: no file {ref!r} and no plan {ref!r} in the store", 1) from None


def _inputs(path: str | None) -> Any:
    from ..incentives import CommissionInputs

    if path is None:
        return CommissionInputs()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise CLIError(f"--inputs: cannot read {path}: {e.strerror or e}", 1) from None
    except json.JSONDecodeError as e:
        raise CLIError(f"--inputs: {path}:{e.lineno}: invalid JSON: {e.msg}", 1) from None
    return CommissionInputs.from_dict(data, source=path)


def _pct(v: Any) -> str | None:
    if v is None:
        return None
    return f"{(v * 100).quantize(type(v)('0.1'))}%"


def summary_row(s: Any) -> dict[str, Any]:
    return {
        "period": s.period.label, "rep": s.rep_id, "name": s.rep_name, "credited": s.credited,
        "quota": s.quota, "attainment": _pct(s.attainment), "tier": s.tier, "earnings": s.earnings,
        "withheld": s.withheld, "draw_balance": s.draw_balance, "deficit": s.deficit, "total": s.total,
    }


def line_row(s: Any, ln: Any) -> dict[str, Any]:
    return {
        "period": s.period.label, "rep": s.rep_id, "kind": ln.kind, "amount": ln.amount, "rule": ln.rule,
        "deal": ln.deal_id, "event": ln.event, "role": ln.role, "base": ln.base_amount,
        "rate": ln.rate, "version": ln.plan_version, "note": ln.note,
    }


def _run(args: argparse.Namespace) -> int:
    from ..incentives import (
        IncentiveError,
        check_statements,
        compute_statements,
        save_plan,
        save_statements,
    )

    store = open_store(args.db)
    try:
        plan = _plan(args.plan, store)
        inputs = _inputs(args.inputs)
        try:
            period = plan.parse_period(args.period)
        except PeriodError as e:
            raise CLIError(f"--period: {e}") from None
        if args.what_if is not None:
            return _what_if(args, plan, store, inputs, period)
        only = args.rep or None
        try:
            run = compute_statements(plan, store, period, inputs=inputs, only=only, strict=args.strict)
        except IncentiveError as e:
            for p in e.problems:
                print(f"salesprocess: problem: {p}", file=sys.stderr)
            raise CLIError(f"{len(e.problems)} data problem(s); fix them or use --no-strict", 1) from None
        for p in run.problems:
            print(f"salesprocess: warning: {p}", file=sys.stderr)
        rc = 0
        if args.check:
            checks = check_statements(store, run)
            rows = [{"period": c.period, "rep": c.rep_id, "status": c.status,
                     "changes": "; ".join(c.changes[:6]) + (" …" if len(c.changes) > 6 else "")}
                    for c in checks]
            emit(rows, args.format, columns=["period", "rep", "status", "changes"],
                 json_obj=[{"period": c.period, "rep": c.rep_id, "status": c.status, "saved": c.saved,
                            "digest": c.digest, "changes": list(c.changes)} for c in checks])
            return 1 if any(c.status in ("changed", "missing") for c in checks) else 0
        if args.save:
            try:
                save_plan(store, plan)
                n = save_statements(store, run, replace=args.replace)
            except ConflictError as e:
                raise CLIError(f"--save: {e} (use --replace to overwrite)", 1) from None
            print(f"saved {n} statement(s)", file=sys.stderr)
        _emit_run(args, plan, run)
        return rc
    finally:
        store.close()


def _emit_run(args: argparse.Namespace, plan: Any, run: Any) -> None:
    if args.format == "json":
        obj = {
            "plan": plan.key, "plan_name": plan.name, "currency": plan.currency,
            "period": run.period.label, "total": str(run.total.amount),
            "statements": [s.to_dict() | {"digest": s.digest} for s in run.statements],
            "problems": [p.as_dict() for p in run.problems], "notes": list(run.notes),
        }
        sys.stdout.write(json.dumps(jsonable(obj), ensure_ascii=False, indent=2) + "\n")
        return
    if args.lines:
        rows = [line_row(s, ln) for s in run.statements for ln in s.lines]
        if args.format == "csv":
            emit(rows, "csv", columns=LINES)
            return
        for s in run.statements:
            title = (f"{s.rep_id}{' ' + s.rep_name if s.rep_name else ''} — {plan.name} — {s.period.label}: "
                     f"{s.total}")
            emit([line_row(s, ln) for ln in s.lines], "table", columns=LINES[2:], title=title)
            print()
        return
    rows = [summary_row(s) for s in run.statements]
    emit(rows, args.format, columns=SUMMARY,
         title=None if args.format != "table" else f"{plan.name} ({plan.key}) — {run.period.label}")
    if args.format == "table":
        print(f"\n{len(run.statements)} statement(s), total {run.total}")
        for n in run.notes:
            print(f"note: {n}")


def _what_if(args: argparse.Namespace, plan: Any, store: Any, inputs: Any, period: Period) -> int:
    from ..incentives import what_if

    if len(args.rep) != 1:
        raise CLIError("--what-if needs exactly one --rep")
    try:
        amount = Money(args.what_if, plan.currency)
    except (ValueError, TypeError) as e:
        raise CLIError(f"--what-if: {e}") from None
    tz = plan.tz
    if args.at is not None:
        try:
            at = datetime.fromisoformat(args.at)
        except ValueError:
            raise CLIError(f"--at: expected an ISO 8601 instant, got {args.at!r}") from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=tz)
    else:
        last = datetime.combine(period.end, time(), tz) - timedelta(seconds=1)
        now = datetime.now(tz)  # a user-facing default: the CLI may read the clock
        at = now if period.start_instant(tz) <= now <= last else last
    w = what_if(plan, store, args.rep[0], amount, at=at, products=args.product, inputs=inputs)
    row = {
        "rep": w.rep_id, "period": w.period.label, "amount": w.amount, "estimate": w.estimate,
        "commission": w.commission, "true_up": w.true_up, "spif": w.spif, "other": w.other,
        "attainment_before": _pct(w.attainment_before), "attainment_after": _pct(w.attainment_after),
        "tier_before": w.tier_before, "tier_after": w.tier_after,
    }
    emit([row], args.format, columns=list(row),
         json_obj=row | {"lines": [ln.to_dict() for ln in w.lines]})
    return 0
