"""Commission statements at scale.

Builds a quarter of won deals (default 1,000,000) for 1,000 reps under 125 managers, with
revenue splits on 10 % of the deals, overlay splits on 5 %, partial or full refunds on 2 %
(clawbacks) and reopened deals on 0.5 % (reversals), and computes every rep's statement for the
quarter under a graduated tiered plan with a decelerator, an accelerator, a product rule, an
attainment cap, a payout cap and a SPIF. Deals are streamed into the crediting step, never held
in memory.

Prints the time to generate the deals alone, the time of the whole run (generation, crediting
and statements), their difference, and the peak memory. Checks that every statement's lines add
up to its total, and (after the timing) that the general rating path gives the same statements
as the fast one for a sample of reps over the same credits.

Run: ``python benchmarks/bench_commissions.py [--deals N] [--reps N] [--seed N]``.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from _common import header, peak_rss_mib

from salesprocess.incentives import (
    CommissionInputs,
    Plan,
    Quota,
    Refund,
    Split,
    SplitKind,
    compute_statements,
)
from salesprocess.incentives._engine import compute_run
from salesprocess.model import Deal, DealReopened, DealWon, EventSource, Rep
from salesprocess.money import Money

SH = ZoneInfo("Asia/Shanghai")
Q_START = datetime(2026, 4, 1, 9, 0, tzinfo=SH)
SECONDS = 90 * 86400 - 10 * 3600

PLAN = """
key = "bench"
name = "Benchmark tiered plan"
currency = "CNY"
timezone = "Asia/Shanghai"
settlement = "quarter"
attainment = "quarter"

[[versions]]
version = 1
effective_from = 2026-04-01
eligible = { roles = ["ae"] }

[versions.rates]
mode = "graduated"
[[versions.rates.tiers]]
name = "base"
from = "0"
rate = "0.04"
[[versions.rates.tiers]]
name = "target"
from = "0.6"
rate = "0.06"
[[versions.rates.tiers]]
name = "stretch"
from = "1.0"
rate = "0.08"
[[versions.rates.accelerators]]
name = "club"
above = "1.5"
multiplier = "1.25"
[[versions.rates.decelerators]]
name = "ramp"
below = "0.2"
multiplier = "0.5"
[[versions.rates.rules]]
name = "hardware"
products = ["hw"]
rate = "0.02"

[versions.caps]
attainment = "3.0"
payout = "9000000"

[[versions.spifs]]
name = "cloud"
amount = "200"
from = 2026-05-01
to = 2026-05-31
products = ["cloud"]
pay = "split"

[versions.clawback]
days = 90
"""


def org(n_reps: int) -> list[Rep]:
    reps = []
    n_mgr = max(1, n_reps // 8)
    for m in range(n_mgr):
        reps.append(Rep(f"m{m:04d}", f"Manager {m}", role="manager"))
    for r in range(n_reps):
        reps.append(Rep(f"r{r:04d}", f"Rep {r}", role="ae", manager_id=f"m{r % n_mgr:04d}"))
    return reps


def _h(i: int, k: int, seed: int) -> int:
    """A cheap deterministic hash of (deal, field, seed) in [0, 2**32)."""
    x = (i * 0x9E3779B1 + k * 0x85EBCA77 + seed * 0x27D4EB2F) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0xC2B2AE3D) & 0xFFFFFFFF
    x ^= x >> 13
    return x


def _u(i: int, k: int, seed: int) -> float:
    return _h(i, k, seed) / 4294967296  # only for picking, never for money


def deal_facts(i: int, n_reps: int, seed: int) -> tuple[datetime, str, Money, str, float]:
    won_at = Q_START + timedelta(seconds=_h(i, 1, seed) % SECONDS)
    owner = f"r{_h(i, 2, seed) % n_reps:04d}"
    amount = Money.from_minor(100_000 + _h(i, 3, seed) % 19_900_000, "CNY")
    product = ("saas", "saas", "saas", "cloud", "hw", "services")[_h(i, 4, seed) % 6]
    return won_at, owner, amount, product, _u(i, 5, seed)


def inputs_for(n_deals: int, n_reps: int, seed: int) -> tuple[list[Split], list[Refund]]:
    splits: list[Split] = []
    refunds: list[Refund] = []
    for i in range(n_deals):
        x = _u(i, 6, seed)
        if x < 0.10:
            a, c = _h(i, 7, seed) % n_reps, _h(i, 8, seed) % n_reps
            if a != c:
                splits.append(Split(f"d{i}", f"r{a:04d}", "0.6"))
                splits.append(Split(f"d{i}", f"r{c:04d}", "0.4"))
        elif x < 0.15:
            splits.append(Split(f"d{i}", f"r{_h(i, 9, seed) % n_reps:04d}", "0.25", SplitKind.OVERLAY))
        won_at, _owner, amount, _p, r = deal_facts(i, n_reps, seed)
        if 0.005 <= r < 0.025:
            at = won_at + timedelta(days=1 + _h(i, 10, seed) % 60)
            full = _h(i, 11, seed) % 2 == 0
            refunds.append(Refund(f"R{i}", f"d{i}", at, None if full else amount * "0.3"))
    return splits, refunds


def deals(n: int, n_reps: int, seed: int) -> Iterator[Deal]:
    src = EventSource.USER
    for i in range(n):
        did = f"d{i}"
        won_at, owner, amount, product, r = deal_facts(i, n_reps, seed)
        d = Deal.create(did, process="p", stage="proposal", at=won_at - timedelta(days=30), actor=owner,
                        amount=amount, owner_id=owner, product_ids=(product,))
        d = d.append(DealWon(did, won_at, owner, src, "proposal", "won"))
        if r < 0.005:
            d = d.append(DealReopened(did, won_at + timedelta(days=3), owner, src, "won", "proposal"))
        yield d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--deals", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    header("commission statements")
    plan = Plan.from_toml(PLAN)
    reps = org(args.reps)
    n = args.deals
    # about 1.1 credits of 100,500 CNY per deal: quotas put attainment between 60 % and 170 %
    per_rep = Decimal(n) * Decimal("110550") / Decimal(args.reps)
    quotas = [Quota(r.id, "2026-Q2", Money((per_rep * Decimal(6 + i % 9) / 10).quantize(Decimal(1)) or 1, "CNY"))
              for i, r in enumerate(x for x in reps if x.role == "ae")]
    splits, refunds = inputs_for(n, args.reps, args.seed)
    inputs = CommissionInputs(splits=splits, refunds=refunds, quotas=quotas)

    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    events = 0
    for d in deals(n, args.reps, args.seed):
        events += d.version
    t_gen, c_gen = time.perf_counter() - t0, time.process_time() - c0

    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    run = compute_statements(plan, deals(n, args.reps, args.seed), "2026-Q2", inputs=inputs, reps=reps)
    t_all, c_all = time.perf_counter() - t0, time.process_time() - c0
    credits = len(run.book.credits)
    lines = sum(len(s.lines) for s in run.statements)
    for s in run.statements:
        assert s.total.to_minor() == sum(ln.amount_minor for ln in s.lines)
    print(f"deals: {n:,} ({events:,} events)  reps: {args.reps:,}  split records: {len(splits):,}  "
          f"refunds: {len(refunds):,}")
    print(f"credits: {credits:,}  statements: {len(run.statements):,}  lines: {lines:,}  "
          f"total paid: {run.total}")
    print("                                    wall (s)   CPU (s)")
    print(f"generate deals only:                {t_gen:8.2f}  {c_gen:8.2f}")
    print(f"generate + credit + statements:     {t_all:8.2f}  {c_all:8.2f}")
    print(f"credit + statements (difference):   {t_all - t_gen:8.2f}  {c_all - c_gen:8.2f}")
    print(f"peak RSS: {peak_rss_mib():,.0f} MiB")
    # after the peak memory is read: the general path over the same credits, for every 20th
    # rep, gives the same statements
    sample = [r.id for r in reps if r.role == "ae"][::20]
    rmap = {r.id: r for r in reps}
    general = compute_run(plan, run.book, inputs, rmap, run.period, sample, fast=False).statements
    fast = [s for s in run.statements if s.rep_id in set(sample)]
    assert [s.to_dict() for s in general] == [s.to_dict() for s in fast]
    print(f"general rating path: the same {len(general)} statements for every 20th rep")
    # the machine's speed at the time, to compare runs on busy or slow machines: this loop takes
    # about 0.45 s of CPU on an idle 2020s desktop
    c0 = time.process_time()
    x = 0
    for i in range(10_000_000):
        x += i
    print(f"calibration (10M-step Python loop): {time.process_time() - c0:.2f} s CPU")


if __name__ == "__main__":
    main()
