"""``salesprocess feedback``: import survey answers and complaints, problems until solved, KPIs."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from salesprocess import feedback as fb
from salesprocess.app import SalesProcess
from salesprocess.cli._util import CLIError, emit, open_store
from salesprocess.cli.kpi_cmd import parse_instant, parse_tz
from salesprocess.codec import instant
from salesprocess.errors import SalesProcessError
from salesprocess.kpi import SurveyResponse


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    p.add_argument("--asof", help="as known at this instant (default: now)")
    p.add_argument("--tz", default="UTC")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")


def register(sub: Any) -> None:
    p = sub.add_parser("feedback", help="surveys (CSAT, NPS, CES), complaints, improvements")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    i = s.add_parser("import", help="load responses, complaints and improvements from a JSON file")
    i.add_argument("file")
    i.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    i.add_argument("--format", choices=("table", "json"), default="table")
    i.set_defaults(func=_import)
    r = s.add_parser("responses", help="survey answers with their account, contact, deal and stage")
    _common(r)
    r.add_argument("--kind", choices=("csat", "nps", "ces"))
    r.set_defaults(func=_responses)
    pr = s.add_parser("problems", help="complaints and low scores, tracked until solved")
    _common(pr)
    pr.add_argument("--all", action="store_true", help="solved ones too")
    pr.set_defaults(func=_problems)
    rc = s.add_parser("root-causes", help="complaints by root cause with mean resolution days")
    _common(rc)
    rc.set_defaults(func=_root_causes)


def _asof(args: argparse.Namespace) -> datetime:
    tz = parse_tz(args.tz)
    return parse_instant(args.asof, tz) or datetime.now(tz)  # "now" is a CLI default


def _import(args: argparse.Namespace) -> int:
    try:
        with open(args.file, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as e:
        raise CLIError(f"{args.file}: {e}") from None
    sp = SalesProcess()
    store = open_store(args.db, app=sp)
    errors: list[str] = []
    counts = {"responses": 0, "complaints": 0, "improvements": 0}
    try:
        with store.transaction():
            for n, r in enumerate(data.get("responses", ())):
                try:
                    resp = SurveyResponse(r["id"], r["kind"], r["score"], instant(r["at"]),
                                          r.get("account_id"), r.get("deal_id"), r.get("owner_id"),
                                          r.get("contact_id"))
                    sp.record_survey_response(store, resp, stage=r.get("stage"),
                                              comment=r.get("comment", ""), survey_id=r.get("survey_id"))
                    counts["responses"] += 1
                except (KeyError, TypeError, ValueError, SalesProcessError) as e:
                    errors.append(f"responses[{n}]: {type(e).__name__}: {e}")
            for n, c in enumerate(data.get("complaints", ())):
                try:
                    sp.open_complaint(store, fb.Complaint(
                        c["id"], c["account_id"], instant(c["at"]), c.get("subject", ""),
                        c.get("severity", "medium"), c.get("owner_id"), c.get("contact_id"),
                        c.get("deal_id"), c.get("root_cause"), c.get("resolution")))
                    for h in c.get("history", ()):
                        fb.change_complaint(store, c["id"], h["status"], at=instant(h["at"]),
                                            actor=h.get("actor", ""), note=h.get("note", ""),
                                            root_cause=h.get("root_cause"), resolution=h.get("resolution"))
                    counts["complaints"] += 1
                except (KeyError, TypeError, ValueError, SalesProcessError) as e:
                    errors.append(f"complaints[{n}]: {type(e).__name__}: {e}")
            for n, m in enumerate(data.get("improvements", ())):
                try:
                    fb.add_improvement(store, fb.Improvement(
                        m["id"], m["title"], instant(m["at"]), [tuple(x) for x in m.get("prompted_by", ())],
                        m.get("owner_id"), m.get("description", "")))
                    for h in m.get("history", ()):
                        fb.change_improvement(store, m["id"], h["status"], at=instant(h["at"]))
                    counts["improvements"] += 1
                except (KeyError, TypeError, ValueError, SalesProcessError) as e:
                    errors.append(f"improvements[{n}]: {type(e).__name__}: {e}")
            if errors:
                raise CLIError(f"{args.file}: {len(errors)} bad record(s), nothing imported:\n  "
                               + "\n  ".join(errors), code=1)
    finally:
        store.close()
    emit([counts], args.format, json_obj=counts)
    return 0


def _responses(args: argparse.Namespace) -> int:
    asof = _asof(args)
    store = open_store(args.db, app=SalesProcess())
    try:
        rows = [{"id": r.id, **r.to_dict()} for r in fb.responses(store, kind=args.kind, asof=asof)]
    finally:
        store.close()
    emit(rows, args.format, columns=["id", "kind", "score", "at", "account_id", "contact_id",
                                     "deal_id", "stage", "comment"])
    return 0


def _problems(args: argparse.Namespace) -> int:
    asof = _asof(args)
    store = open_store(args.db, app=SalesProcess())
    try:
        ps = fb.problems(store, asof=asof) if args.all else fb.unsolved(store, asof=asof)
        rows = [{**p.as_dict(), "age_days": p.age_days(asof)} for p in ps]
    finally:
        store.close()
    emit(rows, args.format, columns=["kind", "id", "account_id", "title", "state", "owner_id",
                                     "opened_at", "age_days", "improvements", "solved_at"])
    return 0


def _root_causes(args: argparse.Namespace) -> int:
    asof = _asof(args)
    store = open_store(args.db, app=SalesProcess())
    try:
        rows = [{"root_cause": c, "complaints": n, "mean_resolution_days": d}
                for c, n, d in fb.root_causes(store, asof=asof)]
    finally:
        store.close()
    emit(rows, args.format, columns=["root_cause", "complaints", "mean_resolution_days"])
    return 0
