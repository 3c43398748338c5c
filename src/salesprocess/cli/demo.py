"""``salesprocess demo``: generate a believable company into a SQLite file and summarise it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..app import SalesProcess
from ..codec import instant, iso
from ..model import Deal, DealStatus, Rep
from ..money import Money, Rate, sum_money
from ..periods import BusinessCalendar, Period
from ._util import Progress, emit, jsonable

DEFAULT_DB = "salesprocess-demo.sqlite"
DEFAULT_DEALS = 3000
DEFAULT_START = date(2024, 12, 1)
DEFAULT_MONTHS = 24
DEFAULT_REVIEW = "salesprocess-review.html"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="generate a company into salesprocess-demo.sqlite and print a pipeline summary",
        description="Create (or reuse) a SQLite store in the current directory, generate a "
        "believable sales organisation with its pipeline history, and print a compact summary.",
    )
    p.add_argument("--db", default=DEFAULT_DB, help=f"SQLite path or postgresql:// URL (default {DEFAULT_DB})")
    p.add_argument("--deals", type=int, default=DEFAULT_DEALS, help=f"deals to generate (default {DEFAULT_DEALS})")
    p.add_argument("--seed", type=int, default=7, help="random seed: same seed, same company")
    p.add_argument("--months", type=int, default=DEFAULT_MONTHS, help="months of history")
    p.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START, help="first day of history")
    p.add_argument("--fresh", action="store_true", help="regenerate even if the store has data")
    p.add_argument("--country", default=None, help="business-day calendar for SLAs, e.g. CN or US")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--review-out", dest="review_out", metavar="PATH",
                   help="where to write the weekly review of the latest complete week "
                   f"(default {DEFAULT_REVIEW} next to the database)")
    p.add_argument("--no-review", dest="no_review", action="store_true",
                   help="do not write the weekly review")
    p.set_defaults(func=run)


def _generate(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    from ..generate import iter_company, write_company

    t0 = time.monotonic()
    with Progress("generating deals", args.deals, quiet=args.quiet) as bar, store.transaction():
        for kind, key in [(k, key) for k in ("demo",) for key, _ in store.documents(k)]:
            store.delete_document(kind, key)
        n = write_company(
            store,
            iter_company(deals=args.deals, seed=args.seed, start=args.start, months=args.months),
            progress=bar.update,
        )
        end = Period.month(args.start.year, args.start.month).start
        from dateutil.relativedelta import relativedelta

        asof = datetime.combine(end + relativedelta(months=args.months), datetime.min.time(), UTC)
        meta = {"seed": args.seed, "deals": n, "start": args.start.isoformat(), "months": args.months,
                "asof": iso(asof)}
        store.put_document("demo", "meta", meta)
    meta["seconds"] = round(time.monotonic() - t0, 1)
    return meta


def run(args: argparse.Namespace) -> int:
    sp = SalesProcess()
    fresh_file = "://" not in args.db and not Path(args.db).exists()
    store = sp.open_store(args.db)
    try:
        meta = store.get_document("demo", "meta")
        existing = store.count_deals()
        if args.fresh or meta is None or existing == 0:
            if existing and not args.fresh and meta is None:
                print(f"salesprocess: {args.db} already holds {existing} deals not made by the demo; "
                      "use another --db or --fresh", file=sys.stderr)
                return 2
            if existing and args.fresh:
                print("salesprocess: --fresh on a store with data: use a new --db path", file=sys.stderr)
                return 2
            meta = _generate(store, args)
            action = "created" if fresh_file else "filled"
        else:
            action = "reused"
        summary = summarise(sp, store, instant(meta["asof"]), BusinessCalendar(args.country))
    finally:
        store.close()
    summary["store"] = {"db": args.db, "action": action, **meta}
    if not args.no_review:
        summary["review"] = _review(sp, args, instant(meta["asof"]))
    if args.format == "json":
        print(json.dumps(jsonable(summary), ensure_ascii=False, indent=2))
    else:
        print_summary(summary)
        if "review" in summary:
            rv = summary["review"]
            print(f"\nWeekly review of {rv['week']}: {rv['path']}")
    return 0


def _review(sp: SalesProcess, args: argparse.Namespace, asof: datetime) -> dict[str, Any]:
    """Write the weekly review of the latest week complete at ``asof``; the demo company gets
    won-revenue goals for the review's quarter first (when it has none) so attainment shows."""
    from ..kpi import Dataset
    from ..report import write_review
    from ..review import review_week, weekly_review

    week = review_week(asof)
    if args.review_out:
        out = Path(args.review_out)
    elif "://" in args.db:
        out = Path(DEFAULT_REVIEW)
    else:
        out = Path(args.db).parent / DEFAULT_REVIEW
    store = sp.open_store(args.db)
    try:
        _demo_goals(store, Period.containing(week.last_day, "quarter"), asof)
        review = weekly_review(store, week, app=sp, data=Dataset.from_store(store))
    finally:
        store.close()
    path = write_review(review, out, format="html", lang="zh")
    return {"week": week.label, "path": str(path)}


def _demo_goals(store: Any, quarter: Period, asof: datetime) -> bool:
    """Won-revenue goals for ``quarter`` unless the store has some: the company's is the previous
    quarter's bookings plus 10 % (rounded up to thousands), split over the teams by their previous
    quarter and over each team's account executives by ramp-up. Returns whether it wrote any."""
    from decimal import ROUND_CEILING

    from ..goals import Goal, GoalScope, load_goals, save_goal, split_members, split_scopes
    from ..kpi import compute

    if any(g.period == quarter for g in load_goals(store)):
        return False
    table = compute(store, ["won_revenue"], by=["team"], window=quarter.previous(), asof=asof)
    by_team = {r.key["team"]: r.values["won_revenue"] for r in table.rows
               if r.key["team"] is not None and isinstance(r.values["won_revenue"], Money)}
    if not by_team:
        return False
    currency = next(iter(by_team.values())).currency
    total = sum_money(by_team.values(), currency)
    target = (total.amount * Decimal("1.1") / 1000).to_integral_value(ROUND_CEILING) * 1000
    if target <= 0:
        return False
    company = Goal(f"demo-{quarter.label}", "won_revenue", GoalScope("company"), Money(target, currency),
                   quarter, name="Won revenue")
    teams = sorted(by_team)
    team_goals = split_scopes(company, [GoalScope("team", t) for t in teams],
                              [by_team[t].amount + 1 for t in teams])
    rep_goals = []
    reps = list(store.all(Rep))
    for g in team_goals:
        members = [r for r in reps if r.team_id == g.scope.id and r.role == "ae" and r.active]
        if members:
            rep_goals += split_members(g, members, method="ramp")
    save_goal(store, company, *team_goals, *rep_goals)
    return True


def summarise(sp: SalesProcess, store: Any, asof: datetime, calendar: BusinessCalendar) -> dict[str, Any]:
    """Pipeline facts for the demo, computed from the store as of ``asof``."""
    reps = {r.id: r for r in store.all(Rep)}
    processes: dict[tuple[str, int], Any] = {}
    by_stage: dict[str, dict[str, Any]] = {}
    won: list[Money] = []
    won_by_rep: dict[str, list[Money]] = defaultdict(list)
    open_value: list[Money] = []
    weighted: list[Money] = []
    closed = Counter[str]()
    stalled: list[dict[str, Any]] = []
    quarter = Period.containing(asof - (asof - asof.replace(hour=0)), "quarter").previous()
    currency = None
    for d in store.deals():
        p = processes.get((d.process, d.process_version))
        if p is None:
            p = processes[(d.process, d.process_version)] = store.get_process(d.process, d.process_version)
        st = p.stage(d.stage)
        row = by_stage.setdefault(d.stage, {"order": p.order(d.stage), "stage": d.stage, "name": st.name,
                                            "deals": 0, "value": None})
        row["deals"] += 1
        if d.amount is not None:
            currency = currency or d.amount.currency
            row["value"] = d.amount if row["value"] is None else row["value"] + d.amount
        if d.status is DealStatus.OPEN:
            if d.amount is not None:
                open_value.append(d.amount)
                w = d.weighted_amount
                if w is not None:
                    weighted.append(w)
            s = _stalled(d, st, asof, calendar)
            if s is not None:
                owner = reps.get(d.owner_id) if d.owner_id else None
                s["owner"] = owner.name if owner else d.owner_id
                stalled.append(s)
        else:
            closed[d.status.value] += 1
            if d.status is DealStatus.WON and d.amount is not None:
                won.append(d.amount)
                if d.owner_id and d.closed_at is not None and d.closed_at.date() in quarter:
                    won_by_rep[d.owner_id].append(d.amount)
    cur = currency or "USD"
    stages = sorted(by_stage.values(), key=lambda r: r["order"])
    for r in stages:
        del r["order"]
    stalled.sort(key=lambda s: (-s["overdue_days"], s["deal"]))
    totals = sorted(
        ((sum_money(v, cur), reps[r].name if r in reps else r, len(v)) for r, v in won_by_rep.items()),
        key=lambda x: (-x[0].amount, x[1]),
    )[:5]
    top = [{"rep": name, "won": total, "deals": n} for total, name, n in totals]
    n_closed = closed["won"] + closed["lost"]
    return {
        "asof": asof,
        "deals_by_stage": stages,
        "open_pipeline_value": sum_money(open_value, cur),
        "weighted_pipeline_value": sum_money(weighted, cur).round("ROUND_HALF_EVEN"),
        "won_value": sum_money(won, cur),
        "deals_won": closed["won"],
        "deals_lost": closed["lost"],
        "win_rate": Rate(Decimal(closed["won"]) / n_closed) if n_closed else None,
        "stalled_count": len(stalled),
        "stalled": stalled[:10],
        "top_reps_quarter": quarter.label,
        "top_reps": top,
    }


def _stalled(d: Deal, st: Any, asof: datetime, calendar: BusinessCalendar) -> dict[str, Any] | None:
    if st.sla_days is None:
        return None
    entered = d.stage_entered_at.astimezone(UTC).date()
    today = asof.astimezone(UTC).date()
    if st.sla_business_days:
        age = calendar.count_working_days(entered, today)
    else:
        age = (today - entered).days
    if age <= st.sla_days:
        return None
    return {"deal": d.id, "name": d.name, "stage": st.name, "owner": d.owner_id, "days_in_stage": age,
            "sla_days": st.sla_days, "overdue_days": age - st.sla_days, "amount": d.amount}


def print_summary(s: dict[str, Any]) -> None:
    st = s["store"]
    print(f"salesprocess demo — {st['action']} {st['db']} ({st['deals']:,} deals, seed {st['seed']}, "
          f"history {st['start']} + {st['months']} months)")
    print(f"as of {s['asof'].isoformat()}\n")
    emit(s["deals_by_stage"], "table", columns=["stage", "name", "deals", "value"], title="Deals by stage")
    wr = s["win_rate"]
    print()
    emit([
        {"measure": "open pipeline", "value": s["open_pipeline_value"]},
        {"measure": "weighted pipeline", "value": s["weighted_pipeline_value"]},
        {"measure": "won (all time)", "value": s["won_value"]},
        {"measure": "deals won / lost", "value": f"{s['deals_won']:,} / {s['deals_lost']:,}"},
        {"measure": "win rate", "value": wr if wr is not None else "n/a"},
    ], "table", title="Pipeline")
    print()
    emit(s["stalled"], "table", columns=["deal", "stage", "owner", "days_in_stage", "sla_days", "amount"],
         title=f"Stalled deals (beyond the stage SLA): {s['stalled_count']:,}; the 10 most overdue")
    print()
    emit(s["top_reps"], "table", columns=["rep", "deals", "won"], title=f"Top reps, {s['top_reps_quarter']}")
