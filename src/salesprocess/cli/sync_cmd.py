"""``salesprocess sync pull|push|status|pipelines|conflicts|bypasses``: CRM sync from the shell.

Connections come from a TOML file (``--connections``, default ``$SALESPROCESS_CONNECTIONS`` or
``connections.toml``); secrets only from the environment variables it names.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..app import SalesProcess
from ._util import CLIError, Progress, emit, jsonable, open_store

COUNTS = ("fetched", "created", "updated", "unchanged", "failed")


def register(sub: Any) -> None:
    p = sub.add_parser("sync", help="pull from and push to a CRM (HubSpot, Salesforce, ...)")
    ps = p.add_subparsers(dest="sync_command", metavar="ACTION", required=True)

    def common(a: argparse.ArgumentParser, fmt: bool = True) -> None:
        a.add_argument("--connection", help="the connection's name (optional when the file has one)")
        a.add_argument("--connections", help="the connections TOML file (default $SALESPROCESS_CONNECTIONS "
                                             "or connections.toml)")
        a.add_argument("--db", help="the store (SQLite path, postgresql:// URL or memory:)")
        if fmt:
            a.add_argument("--format", choices=("table", "json"), default="table")

    pull = ps.add_parser("pull", help="fetch what changed in the CRM and apply it to the store")
    common(pull)
    pull.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    pull.add_argument("--mapping", help="a stage mapping TOML file (overrides the connection's)")
    pull.add_argument("--policy", choices=("crm-wins", "local-wins", "newest-wins"),
                      help="conflict policy (overrides the connection's)")
    pull.add_argument("--kind", action="append", choices=("accounts", "contacts", "deals", "activities"),
                      help="pull only these object kinds (repeatable)")
    pull.add_argument("--full", action="store_true", help="forget the cursors and read everything again")
    pull.add_argument("--quiet", action="store_true", help="no progress on standard error")
    pull.set_defaults(func=_pull)

    push = ps.add_parser("push", help="pull, then send the outbox (local changes) to the CRM")
    common(push)
    push.add_argument("--dry-run", action="store_true", help="show what would be sent; send and write nothing")
    push.add_argument("--mapping", help="a stage mapping TOML file (overrides the connection's)")
    push.add_argument("--policy", choices=("crm-wins", "local-wins", "newest-wins"))
    push.add_argument("--retry-parked", action="store_true", help="queue parked records again first")
    push.add_argument("--no-pull", action="store_true", help="send without pulling first")
    push.set_defaults(func=_push)

    st = ps.add_parser("status", help="cursors, outbox and report counts of a connection")
    common(st)
    st.set_defaults(func=_status)

    pl = ps.add_parser("pipelines", help="propose processes and a stage mapping from the CRM's pipelines")
    common(pl, fmt=False)
    pl.add_argument("--out", help="a directory to write the process TOML files and mapping.toml into")
    pl.set_defaults(func=_pipelines)

    for name, what in (("conflicts", "fields changed on both sides, with both values"),
                       ("bypasses", "CRM changes the local process would not have allowed"),
                       ("failures", "records that failed to pull or push")):
        r = ps.add_parser(name, help=f"list {what}")
        common(r)
        r.set_defaults(func=_report, report=name)


def _connection(args: argparse.Namespace) -> Any:
    from ..sync import load_connections

    path = args.connections or os.environ.get("SALESPROCESS_CONNECTIONS") or "connections.toml"
    if not Path(path).exists():
        raise CLIError(f"no connections file {path!r} (give --connections FILE)", 2)
    conns = load_connections(path)
    if args.connection is None:
        if len(conns) != 1:
            raise CLIError(f"{path} has {len(conns)} connections; choose one with --connection "
                           f"({', '.join(sorted(conns))})", 2)
        return next(iter(conns.values()))
    if args.connection not in conns:
        raise CLIError(f"{path} has no connection {args.connection!r} (it has: {', '.join(sorted(conns))})", 2)
    return conns[args.connection]


def _engine(args: argparse.Namespace) -> tuple[Any, Any]:
    from ..sync import StageMapping, SyncEngine

    conn = _connection(args)
    sp = SalesProcess()
    spec = sp.adapter("crm", conn.adapter)
    adapter = spec.factory(conn.config(os.environ), app=sp)
    store = open_store(args.db, app=sp)
    mapping_file = getattr(args, "mapping", None)
    mapping = StageMapping.from_toml(Path(mapping_file)) if mapping_file else conn.mapping()
    kinds = getattr(args, "kind", None)
    engine = SyncEngine(
        store, adapter, connection=conn.name, source=conn.source,
        policy=getattr(args, "policy", None) or conn.policy, mapping=mapping, app=sp,
        currency=conn.currency, owners=conn.options.get("owners"),
        max_attempts=int(conn.options.get("max_attempts", 5)), kinds=kinds,
    )
    return engine, store


def _close(engine: Any, store: Any) -> None:
    try:
        engine.adapter.close()
    finally:
        store.close()


def _summary_rows(s: Any) -> list[dict[str, Any]]:
    rows = [{"kind": k, **{c: v.get(c, 0) for c in COUNTS}} for k, v in s.by_kind.items()]
    rows.append({"kind": "total", **{c: getattr(s, c) for c in COUNTS}})
    return rows


def _print_pull(s: Any, fmt: str) -> None:
    if fmt == "json":
        emit([], "json", json_obj=s.as_dict())
        return
    title = f"pull {s.connection}" + (" (dry run: nothing written)" if s.dry_run else "")
    emit(_summary_rows(s), "table", columns=("kind", *COUNTS), title=title)
    print(f"conflicts: {s.conflicts}   bypasses: {s.bypasses}   pages: {s.pages}")
    if s.dry_run:
        for c in s.changes:
            fields = ", ".join(f"{f}: {jsonable(o)!s} → {jsonable(n)!s}" for f, (o, n) in c.fields.items())
            print(f"  {c.action:<8} {c.kind} {c.remote_id} → {c.local_id or '-'}  {fields or c.message}")


def _pull(args: argparse.Namespace) -> int:
    engine, store = _engine(args)
    try:
        if args.full:
            engine.reset_cursor()
        with Progress(f"pull {engine.connection}", quiet=args.quiet or args.format == "json") as bar:
            s = engine.pull(dry_run=args.dry_run, progress=lambda _k, n: bar.update(n))
        _print_pull(s, args.format)
        return 1 if s.failed else 0
    finally:
        _close(engine, store)


def _push(args: argparse.Namespace) -> int:
    engine, store = _engine(args)
    try:
        s = engine.push(dry_run=args.dry_run, pull_first=not args.no_pull, retry_parked=args.retry_parked)
        if args.format == "json":
            emit([], "json", json_obj=s.as_dict())
        else:
            if s.pull is not None:
                _print_pull(s.pull, "table")
                print()
            title = f"push {s.connection}" + (" (dry run: nothing sent)" if s.dry_run else "")
            cols = ("sent", "created", "updated", "failed", "parked", "skipped", "batches")
            emit([{c: getattr(s, c) for c in cols}], "table", columns=cols, title=title)
            for f in s.failures:
                state = "parked" if f.parked else f"will retry (attempt {f.attempts})"
                print(f"  {f.record_id}: {f.code}: {f.message} [{state}]")
        return 1 if s.failed else 0
    finally:
        _close(engine, store)


def _status(args: argparse.Namespace) -> int:
    engine, store = _engine(args)
    try:
        st = engine.status()
        if args.format == "json":
            emit([], "json", json_obj=st.as_dict())
            return 0
        rows = [
            {"item": "linked deals", "value": st.linked_deals},
            {"item": "outbox pending", "value": st.pending},
            {"item": "outbox parked", "value": st.parked},
            {"item": "conflicts", "value": st.conflicts},
            {"item": "bypasses", "value": st.bypasses},
            {"item": "pull failures", "value": st.failures},
        ]
        for kind, cur in st.cursors.items():
            ts = cur.get("ts")
            rows.append({"item": f"cursor {kind}", "value": f"{cur.get('phase', '')} {ts}".strip()})
        if st.last_pull:
            rows.append({"item": "last pull", "value": " ".join(f"{c}={st.last_pull.get(c, 0)}" for c in COUNTS)})
        if st.last_push:
            rows.append({"item": "last push", "value": " ".join(
                f"{c}={st.last_push.get(c, 0)}" for c in ("sent", "created", "updated", "failed", "parked"))})
        emit(rows, "table", columns=("item", "value"), title=f"sync status of {st.connection}")
        return 0
    finally:
        _close(engine, store)


def _pipelines(args: argparse.Namespace) -> int:
    from ..sync import propose

    engine, store = _engine(args)
    try:
        proposal = propose(engine.adapter.pipelines(), source=engine.source)
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            for p in proposal.processes:
                (out / f"{p.key}.toml").write_text(p.to_toml(), encoding="utf-8")
            (out / "mapping.toml").write_text(proposal.mapping.to_toml(), encoding="utf-8")
            print(f"wrote {len(proposal.processes)} process file(s) and mapping.toml to {out}")
        else:
            for p in proposal.processes:
                sys.stdout.write(f"# process {p.key}\n{p.to_toml()}\n")
            sys.stdout.write(f"# stage mapping\n{proposal.mapping.to_toml()}")
        for n in proposal.notes:
            print(f"note: {n}", file=sys.stderr)
        return 0
    finally:
        _close(engine, store)


def _report(args: argparse.Namespace) -> int:
    engine, store = _engine(args)
    try:
        if args.report == "conflicts":
            rows = [{"seq": c.seq, "deal": c.deal_id, "crm id": c.remote_id, "field": c.field, "local": c.local,
                     "crm": c.remote, "base": c.base, "winner": c.winner, "policy": c.policy}
                    for c in engine.conflicts()]
        elif args.report == "bypasses":
            rows = [{"seq": b.seq, "deal": b.deal_id, "crm id": b.remote_id, "kind": b.kind,
                     "from": b.from_stage, "to": b.to_stage, "at": b.at,
                     "why": "; ".join(p.get("message", "") for p in b.problems)} for b in engine.bypasses()]
        else:
            rows = [{"direction": f.direction, "kind": f.kind, "record": f.record_id, "code": f.code,
                     "attempts": f.attempts, "parked": f.parked, "message": f.message} for f in engine.failures()]
        if args.format == "json":
            emit(rows, "json")
        elif rows:
            emit(rows, "table")
        else:
            print(f"no {args.report}")
        return 0
    finally:
        _close(engine, store)

