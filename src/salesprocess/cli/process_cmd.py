"""``salesprocess process validate|show|example|diff``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..app import SalesProcess
from ..errors import DefinitionError, ProcessFileError
from ..process import Process, diff_processes
from ._util import CLIError, emit, jsonable


def register(sub: Any) -> None:
    p = sub.add_parser("process", help="validate, show, diff and print sales-process definitions")
    ps = p.add_subparsers(dest="process_command", metavar="ACTION", required=True)

    v = ps.add_parser("validate", help="print every problem of a process file; exit 1 if any")
    v.add_argument("file")
    v.add_argument("--format", choices=("table", "json"), default="table")
    v.set_defaults(func=_validate)

    s = ps.add_parser("show", help="print the stages, transitions and playbooks of a process")
    s.add_argument("file", help="a process TOML file or a shipped key (b2b, saas)")
    s.add_argument("--lang", default=None, help="language of stage names, e.g. en or zh")
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.set_defaults(func=_show)

    e = ps.add_parser("example", help="print a shipped process as TOML")
    e.add_argument("key", choices=("b2b", "saas"))
    e.set_defaults(func=_example)

    d = ps.add_parser("diff", help="what changed between two process files")
    d.add_argument("old")
    d.add_argument("new")
    d.set_defaults(func=_diff)


def _load(ref: str, sp: SalesProcess) -> Process:
    try:
        return sp.load_process(ref)
    except ProcessFileError:
        raise
    except DefinitionError as e:
        raise CLIError(str(e), 1) from e


def _validate(args: argparse.Namespace) -> int:
    sp = SalesProcess()
    try:
        p = sp.process_from_toml(args.file if args.file.endswith(".toml") else _as_path(args.file))
    except ProcessFileError as e:
        if args.format == "json":
            print(json.dumps({"file": e.path, "valid": False, "problems": [
                {**pr.as_dict(), "line": e.line} for pr in e.problems]}, ensure_ascii=False, indent=2))
        else:
            for pr in e.problems:
                loc = e.path + (f":{e.line}" if e.line else "")
                path = f" {pr.path}:" if pr.path else ""
                print(f"{loc}:{path} {pr.message} [{pr.code}]")
            print(f"{len(e.problems)} problem(s)", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps({"file": args.file, "valid": True, "problems": [], "key": p.key,
                          "version": p.version}, ensure_ascii=False, indent=2))
    else:
        print(f"{args.file}: valid process {p.key!r} v{p.version} with {len(p.stages)} stages")
    return 0


def _as_path(s: str) -> Any:
    from pathlib import Path

    return Path(s)


def _show(args: argparse.Namespace) -> int:
    p = _load(args.file, SalesProcess())
    if args.format == "json":
        print(json.dumps(jsonable(p.to_dict()), ensure_ascii=False, indent=2))
        return 0
    print(f"{p.name}  ({p.key} v{p.version}, probability policy: {p.probability_policy.value})")
    if p.description:
        print(p.description)
    rows = []
    for i, s in enumerate(p.stages, 1):
        rows.append({
            "#": i, "key": s.key, "name": s.display_name(args.lang), "kind": s.kind.value,
            "probability": s.probability, "forecast": s.effective_forecast_category.value,
            "SLA": "" if s.sla_days is None else f"{s.sla_days}{' bd' if s.sla_business_days else ' d'}",
            "next": " ".join(p.graph_targets(s.key)),
        })
    print()
    emit(rows, "table")
    for s in p.stages:
        lines = []
        for side in ("entry", "exit"):
            c = getattr(s, side)
            parts = []
            if c.fields:
                parts.append("fields " + ", ".join(c.fields))
            if c.activities:
                parts.append("done " + ", ".join(c.activities))
            if c.checklist:
                parts.append("checked " + ", ".join(c.checklist))
            if c.guards:
                parts.append("guards " + ", ".join(c.guards))
            if parts:
                lines.append(f"  {side}: " + "; ".join(parts))
        pb = s.playbook
        for st in pb.steps:
            extra = f" ({st.owner_role}{', ' + str(st.due_days) + ' d' if st.due_days else ''})" if st.owner_role else ""
            lines.append(f"  step: {st.title}{extra}")
        if pb.checklist:
            lines.append("  checklist: " + ", ".join(pb.checklist))
        for r in pb.resources:
            lines.append(f"  resource: {r.title} {r.url}".rstrip())
        for sc in pb.scripts:
            lines.append(f"  {sc.kind} script: {sc.title}")
        if lines:
            print(f"\n{s.display_name(args.lang)} [{s.key}]")
            print("\n".join(lines))
    if p.after_sales:
        print("\nafter-sales: " + " → ".join(p.after_sales))
    return 0


def _example(args: argparse.Namespace) -> int:
    from ..processes import toml_text

    sys.stdout.write(toml_text(args.key))
    return 0


def _diff(args: argparse.Namespace) -> int:
    sp = SalesProcess()
    d = diff_processes(_load(args.old, sp), _load(args.new, sp))
    for line in d.lines():
        print(line)
    return 1 if d else 0
