"""``salesprocess evaluate``: scorecards, 360° reviews, combined evaluations and training."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import PeriodError
from ..periods import Period
from ._util import CLIError, emit, jsonable, open_store

SUMMARY = ["rank", "rep", "name", "role", "score", "band", "scorecard", "review", "strengths", "weaknesses",
           "training"]


def register(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="performance evaluation: scorecards, 360° reviews, training")
    p.add_argument("--db", help="store: SQLite path, postgresql:// URL or memory: "
                   "(default $SALESPROCESS_DB or salesprocess.sqlite)")
    p.add_argument("--config", required=True, metavar="FILE.toml",
                   help="scorecards per role, review policy, weights and training catalogue")
    p.add_argument("--period", required=True, metavar="LABEL", help="e.g. 2026-Q2")
    p.add_argument("--role", action="extend", nargs="+", default=[], metavar="ROLE",
                   help="only these roles' scorecards")
    p.add_argument("--rep", metavar="REP", help="show one rep's evaluation in detail")
    p.add_argument("--reviews", metavar="FILE.json", help="360° reviews (a list), added to the store's")
    p.add_argument("--training", metavar="FILE.json", help="training records (a list), added to the store's")
    p.add_argument("--save", action="store_true",
                   help="keep the reviews, training records and evaluations in the store")
    p.add_argument("--tz", default="UTC", help="timezone periods are read in (IANA name, default UTC)")
    p.add_argument("--asof", metavar="INSTANT", help="evaluate from what was known at this instant")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(func=_run)


def _load_list(path: str | None, option: str) -> list[dict[str, Any]]:
    if path is None:
        return []
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise CLIError(f"{option}: cannot read {path}: {e.strerror or e}", 1) from None
    except json.JSONDecodeError as e:
        raise CLIError(f"{option}: {path}:{e.lineno}: invalid JSON: {e.msg}", 1) from None
    if not isinstance(data, list):
        raise CLIError(f"{option}: {path} must hold a JSON list", 1)
    return data


def _run(args: argparse.Namespace) -> int:
    from ..evaluation import (
        EvaluationConfig,
        Review,
        TrainingRecord,
        evaluate,
        load_evaluations,
        load_reviews,
        load_training_records,
        save_evaluations,
        save_reviews,
        save_training_records,
    )
    from .kpi_cmd import parse_instant, parse_tz

    cfg = EvaluationConfig.from_toml(Path(args.config))
    tz = parse_tz(args.tz)
    asof = parse_instant(args.asof, tz)
    try:
        period = Period.parse(args.period)
    except PeriodError as e:
        raise CLIError(f"--period: {e}") from None
    cards = [c for c in cfg.scorecards if not args.role or c.role in args.role]
    if not cards:
        raise CLIError(f"--role: no scorecard for {', '.join(args.role)} in {args.config}")
    bad = []
    new_reviews = []
    for i, d in enumerate(_load_list(args.reviews, "--reviews")):
        try:
            new_reviews.append(Review.from_dict(d))
        except (KeyError, ValueError, TypeError) as e:
            bad.append(f"{args.reviews}: reviews[{i}]: {e}")
    new_training = []
    for i, d in enumerate(_load_list(args.training, "--training")):
        try:
            new_training.append(TrainingRecord.from_dict(d))
        except (KeyError, ValueError, TypeError) as e:
            bad.append(f"{args.training}: records[{i}]: {e}")
    if bad:
        for b in bad:
            print(f"salesprocess: problem: {b}", file=sys.stderr)
        raise CLIError(f"{len(bad)} bad record(s)", 1)
    store = open_store(args.db)
    try:
        reviews = {r.id: r for r in load_reviews(store, period=period)}
        reviews.update({r.id: r for r in new_reviews})
        training = {r.key: r for r in load_training_records(store)}
        training.update({r.key: r for r in new_training})
        previous = load_evaluations(store)
        evs = evaluate(store, period, scorecards=cards, reviews=list(reviews.values()),
                       review_policy=cfg.review_policy, policy=cfg.policy, catalog=cfg.catalog,
                       training=list(training.values()), previous=previous, asof=asof, tz=tz)
        if args.save:
            with store.transaction():
                save_reviews(store, new_reviews)
                save_training_records(store, new_training)
                save_evaluations(store, evs)
        if args.rep is not None:
            found = [e for e in evs if e.rep_id == args.rep]
            if not found:
                raise CLIError(f"--rep: {args.rep} is not evaluated (not of the scorecards' roles?)", 1)
            _detail(args, found[0])
            return 0
        if args.format == "json":
            sys.stdout.write(json.dumps(jsonable([e.to_dict() for e in evs]), ensure_ascii=False, indent=2) + "\n")
            return 0
        rows = [{
            "rank": e.rank, "rep": e.rep_id, "name": e.name, "role": e.role, "score": e.score, "band": e.band,
            "scorecard": e.quantitative, "review": e.qualitative,
            "strengths": "; ".join(o.text for o in e.strengths[:2]),
            "weaknesses": "; ".join(o.text for o in e.weaknesses[:2]),
            "training": ", ".join(r.module.id for r in e.recommendations),
        } for e in evs]
        emit(rows, args.format, columns=SUMMARY,
             title=None if args.format != "table" else f"evaluation — {period.label}")
        return 0
    finally:
        store.close()


def _detail(args: argparse.Namespace, e: Any) -> None:
    if args.format == "json":
        sys.stdout.write(json.dumps(jsonable(e.to_dict()), ensure_ascii=False, indent=2) + "\n")
        return
    print(f"{e.rep_id} {e.name or ''} ({e.role}) — {e.period.label}: score {e.score} ({e.band}), "
          f"rank {e.rank} of {e.of}")
    print(f"scorecard {e.quantitative}, 360° {e.qualitative}")
    if e.scorecard is not None:
        print()
        emit([{"kpi": i.name, "actual": i.actual, "target": i.target, "from": i.target_source,
               "better": i.direction, "ratio": i.ratio, "points": i.points, "note": i.note}
              for i in e.scorecard.items], "table", title="scorecard")
    if e.review is not None:
        print()
        groups = [g.group for g in e.review.groups if g.shown and g.group.value != "self"]
        rows = []
        for c in e.review.competencies:
            row: dict[str, Any] = {"competency": c.name}
            bg = dict(c.by_group)
            for g in groups:
                row[g.value] = bg.get(g)
            row |= {"others": c.others, "self": c.self_score, "gap": c.gap}
            rows.append(row)
        emit(rows, "table", title="360° review")
        for n in e.notes:
            print(f"note: {n}")
    for title, obs in (("strengths", e.strengths), ("weaknesses", e.weaknesses)):
        if obs:
            print(f"\n{title}:")
            for o in obs:
                print(f"  - {o.text}")
    if e.recommendations:
        print("\nrecommended training:")
        for r in e.recommendations:
            print(f"  {r.priority}. {r.module.title} [{r.module.id}] — {'; '.join(r.reasons)}")
    if e.follow_up:
        print("\nsince the last evaluation:")
        for f in e.follow_up:
            print(f"  {f.module_id} ({f.completed_on}): {f.key} {f.before} → {f.after}")
