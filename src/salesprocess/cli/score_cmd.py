"""``salesprocess score``: win probabilities with each factor's contribution, rule points, and the
calibration report."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from salesprocess import scoring as S
from salesprocess.cli._util import CLIError, emit, jsonable, open_store
from salesprocess.cli.kpi_cmd import parse_instant, parse_tz
from salesprocess.kpi import Dataset


def register(sub: Any) -> None:
    p = sub.add_parser("score", help="score open deals: calibrated naive Bayes win probability "
                       "with factor contributions, rule points, calibration report")
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory:")
    p.add_argument("--asof", help="score as known at this instant (default: now)")
    p.add_argument("--tz", default="UTC")
    p.add_argument("--explain", metavar="DEAL", help="show every factor of one deal")
    p.add_argument("--rules", metavar="FILE", help="rule points from a TOML file")
    p.add_argument("--calibration", action="store_true",
                   help="print the calibration report on a time-split holdout instead")
    p.add_argument("--train-share", type=float, default=0.75,
                   help="share of closed deals (by close time) that train the holdout model")
    p.add_argument("--limit", type=int, help="show only the N most likely deals")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(func=_run)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(obj), ensure_ascii=False, indent=2) + "\n")


def _run(args: argparse.Namespace) -> int:
    tz = parse_tz(args.tz)
    asof = parse_instant(args.asof, tz) or datetime.now(tz)  # "now" is a CLI default
    rules = S.RuleSet.from_toml(args.rules) if args.rules else None
    store = open_store(args.db)
    try:
        data = Dataset.from_store(store)
    finally:
        store.close()
    if args.calibration:
        rep = S.calibration_report(data, asof=asof, train_share=args.train_share, tz=tz)
        if args.format == "json":
            _print_json(rep.to_json_obj())
            return 0
        emit([{"predictor": p.name, "samples": p.samples, "brier": p.brier,
               "log_loss": p.log_loss} for p in rep.predictors], args.format,
             title=f"holdout: {rep.test_deals} deals closed after {rep.split_at.isoformat()} "
                   f"(trained on {rep.train_deals})")
        if args.format == "table":
            rows = []
            for i in range(10):
                cells: dict[str, Any] = {"bin": f"{rep.predictors[0].bins[i].lo}–"
                                                f"{rep.predictors[0].bins[i].hi}"}
                for p in rep.predictors:
                    b = p.bins[i]
                    cells[f"{p.name}_n"] = b.samples
                    cells[f"{p.name}_predicted"] = b.mean_predicted
                    cells[f"{p.name}_observed"] = b.observed
                rows.append(cells)
            emit(rows, "table", title="\nreliability by decile of predicted probability")
        return 0
    ids = [args.explain] if args.explain else None
    scores = S.score_deals(data, asof=asof, rules=rules, deal_ids=ids, tz=tz)
    if args.explain:
        if not scores:
            raise CLIError(f"--explain: no deal {args.explain!r} known at {asof.isoformat()}")
        s = scores[0]
        if args.format == "json":
            _print_json(s.as_dict())
            return 0
        rows = [{"feature": f.feature, "value": f.value, "contribution": f.contribution,
                 "won": f.won, "lost": f.lost}
                for f in sorted(s.win.factors, key=lambda f: -abs(f.contribution))]
        emit(rows, args.format, title=f"deal {s.deal_id} ({s.name}), stage {s.stage}: "
             f"win probability {s.win.probability}; baseline log-odds {s.win.intercept:+}, "
             f"log-odds {s.win.logit:+}")
        if s.rules is not None and args.format == "table":
            print("\n" + "\n".join(s.rules.explain()))
        return 0
    scores.sort(key=lambda s: (-s.win.probability.value, s.deal_id))
    if args.limit:
        scores = scores[: args.limit]
    if args.format == "json":
        _print_json([s.as_dict() for s in scores])
        return 0
    rows = []
    for s in scores:
        top = sorted(s.win.factors, key=lambda f: -abs(f.contribution))[:2]
        row: dict[str, Any] = {"deal_id": s.deal_id, "name": s.name, "stage": s.stage,
                               "owner": s.owner_id, "probability": s.win.probability}
        if s.rules is not None:
            row["rule_score"] = s.rules.score
        row["top_factors"] = ", ".join(f"{f.feature}={f.value} {f.contribution:+}" for f in top)
        rows.append(row)
    emit(rows, args.format)
    return 0
