"""Speed of the Monte Carlo forecast and of risk scoring.

1. A Monte Carlo of ``--trials`` trials over ``--deals`` open deals (default 10,000 × 10,000), on
   the pure-Python engine and, when NumPy is installed, on the NumPy engine; both must give the
   same numbers for the same seed (checked). Targets: ≤ 10 s pure Python, ≤ 1 s with NumPy.
2. Risk scoring of ``--risk-deals`` open deals (default 100,000): every built-in deal signal and
   the combined, explained score. The one-off indexing (activities per deal, working days,
   historical stage stays) is timed apart from the scoring. Target: ≥ 20,000 deals/s.

    python benchmarks/bench_forecast.py
    python benchmarks/bench_forecast.py --deals 2000 --trials 2000 --risk-deals 10000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine

from salesprocess.forecast import SimDeal, numpy_available, simulate
from salesprocess.kpi import Dataset
from salesprocess.model import Account, Activity, Rep, Team
from salesprocess.money import Money, Rate
from salesprocess.processes import load
from salesprocess.risk import RiskEngine

ASOF = datetime(2026, 7, 1, tzinfo=UTC)


def pipeline(n: int, seed: int = 7) -> list[SimDeal]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cents = int(rng.lognormvariate(14.5, 1.0))  # median ≈ 20,000 USD
        p = Decimal(rng.randint(1, 999)) / 1000
        out.append(SimDeal(f"D{i:06d}", Money(Decimal(cents).scaleb(-2), "USD"), Rate(p),
                           f"rep-{i % 200}"))
    return out


def bench_montecarlo(deals: int, trials: int) -> None:
    ds = pipeline(deals)
    target = Money(sum((d.amount.amount * d.probability.value for d in ds), Decimal(0)), "USD")
    results = {}
    for engine in ("python", "numpy"):
        if engine == "numpy" and not numpy_available():
            print("numpy engine: NumPy is not installed (pip install 'salesprocess[numpy]')")
            continue
        t, c = time.perf_counter(), time.process_time()
        s = simulate(ds, currency="USD", trials=trials, seed=42, engine=engine, target=target)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        results[engine] = s
        print(f"monte carlo, {engine:6} engine: {deals:,} deals × {trials:,} trials in {dt:6.2f} s "
              f"(CPU {dc:.2f} s)  P10 {s.p10}  P50 {s.p50}  P90 {s.p90}  P(target) {s.p_target}")
    if len(results) == 2:
        a, b = results["python"], results["numpy"]
        same = (a.p10, a.p50, a.p90, a.mean, a.p_target, a.movers) == (
            b.p10, b.p50, b.p90, b.mean, b.p_target, b.movers)
        print(f"same numbers on both engines: {same}")
        if not same:
            raise SystemExit("the engines disagree")


def risk_dataset(n: int, seed: int = 3) -> Dataset:
    rng = random.Random(seed)
    proc = load("b2b")
    stages = [s.key for s in proc.open_stages]
    teams = [Team("sales", "Sales")] + [Team(f"t{i}", f"Team {i}", parent_id="sales") for i in range(20)]
    reps = [Rep(f"rep-{i}", f"Rep {i}", team_id=f"t{i % 20}") for i in range(400)]
    accounts = [Account(f"acc-{i}", f"Account {i}", size_band=("smb", "mid_market", "enterprise")[i % 3])
                for i in range(n // 5 + 1)]
    deals = []
    acts = []
    for i in range(n):
        created = ASOF - timedelta(days=rng.randint(5, 300))
        stage = stages[rng.randrange(len(stages))]
        d = proc.open_deal(
            f"D{i:07d}", at=created, actor="bench", stage=stage, owner_id=f"rep-{i % 400}",
            account_id=f"acc-{i % len(accounts)}", name=f"Deal {i}",
            amount=Money(rng.randint(1_000, 500_000), "USD"),
            close_date=(created + timedelta(days=rng.randint(20, 200))).date(),
            contact_ids=tuple(f"c{i}-{k}" for k in range(rng.randint(1, 3))),
            competitors=("Globex",) if rng.random() < 0.3 else (),
            custom={"discount": f"{rng.randint(0, 35)}%"} if rng.random() < 0.4 else None,
        )
        t = created + timedelta(days=1)
        for _ in range(rng.randint(0, 3)):
            t += timedelta(days=rng.randint(1, 20))
            if t >= ASOF:
                break
            if rng.random() < 0.5:
                assert d.close_date is not None
                d = d.with_close_date(d.close_date + timedelta(days=rng.randint(5, 40)), at=t, actor="bench")
            else:
                assert d.amount is not None
                d = d.with_amount(Money(int(d.amount.amount * Decimal("0.8")), "USD"), at=t, actor="bench")
        deals.append(d)
        for k in range(rng.randint(0, 3)):
            acts.append(Activity(f"a{i}-{k}", "call", created + timedelta(days=rng.randint(0, 120)),
                                 deal_id=d.id, contact_id=f"c{i}-{k}"))
        if rng.random() < 0.6:
            acts.append(Activity(f"p{i}", "meeting", ASOF + timedelta(days=rng.randint(1, 10)),
                                 status="planned", deal_id=d.id))
    return Dataset(deals, reps=reps, teams=teams, accounts=accounts, activities=acts, processes=[proc])


def bench_risk(n: int) -> None:
    t = time.perf_counter()
    ds = risk_dataset(n)
    print(f"risk data: {n:,} open deals built in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    view = ds.view(None)
    engine = RiskEngine(view, ASOF)
    t_index = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    risks = engine.deal_risks(view.deals)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    print(f"risk scoring: {n:,} deals in {dt:.2f} s = {n / dt:,.0f} deals/s (CPU {dc:.2f} s = "
          f"{n / dc:,.0f} deals/s; indexing {t_index:.2f} s, {n / (dt + t_index):,.0f} deals/s "
          "with it)")
    t = time.perf_counter()
    fired = sum(len(r.findings) for r in risks)  # every sentence built
    assert all(r.score == sum(c.points for c in r.contributions) for r in risks)
    te = time.perf_counter() - t
    print(f"explanations: {fired:,} findings built and contributions checked in {te:.2f} s "
          f"({n / (dt + te):,.0f} deals/s scored and explained)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--deals", type=int, default=10_000)
    p.add_argument("--trials", type=int, default=10_000)
    p.add_argument("--risk-deals", type=int, default=100_000)
    args = p.parse_args()
    print(machine())
    print(f"{date.today().isoformat()} (benchmark run date)")
    bench_montecarlo(args.deals, args.trials)
    bench_risk(args.risk_deals)


if __name__ == "__main__":
    main()
