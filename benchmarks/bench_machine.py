"""Stage-machine throughput and memory.

Advances N deals (default 100,000) through 6 validated transitions each — a guard on every
transition, deal construction included — with:

1. salesprocess, no plugins (``Process.advance``);
2. salesprocess through the plugin shell with one after-transition listener registered;
3. the ``transitions`` library (one machine per deal, and one shared machine re-targeted);
4. a minimal hand-written dict-and-list baseline (same guard, an event tuple appended per move).

Prints transitions per second (wall clock, with the process's CPU time of the same run beside it),
the ratios, and the memory per live deal holding 6 events.
Run: ``python benchmarks/bench_machine.py [--deals N] [--gc-stats]``.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from _common import header

from salesprocess import Money, Process, SalesProcess, hookimpl

STAGES = ["s0", "s1", "s2", "s3", "s4", "s5", "won", "lost"]
PATH = ["s1", "s2", "s3", "s4", "s5", "won"]

PROCESS_DICT: dict[str, Any] = {
    "key": "bench",
    "name": "Benchmark process",
    "stages": [{"key": k, "name": k.upper(), "kind": "open", "probability": f"0.{i + 1}"} for i, k in enumerate(STAGES[:6])]
    + [{"key": "won", "name": "Won", "kind": "won"}, {"key": "lost", "name": "Lost", "kind": "lost"}],
    "transitions": [{"from": a, "to": b, "guards": ["has_amount"]} for a, b in zip(STAGES[:6], PATH, strict=True)]
    + [{"from": s, "to": "lost"} for s in STAGES[:6]],
}

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
AMOUNT = Money("12500.00", "USD")
STEP = timedelta(hours=1)


def run_salesprocess(n: int, proc: Process, advance: Any) -> list[Any]:
    out = []
    for i in range(n):
        d = proc.open_deal(f"D{i}", at=T0, actor="rep", amount=AMOUNT)
        at = T0
        for to in PATH:
            at = at + STEP
            d = advance(proc, d, to, at=at, actor="rep")
        out.append(d)
    return out


def run_baseline(n: int) -> list[dict[str, Any]]:
    edges = dict.fromkeys(zip(STAGES[:6], PATH, strict=True), True)
    out = []
    for i in range(n):
        d: dict[str, Any] = {"id": f"D{i}", "stage": "s0", "amount": Decimal("12500.00"), "events": []}
        d["events"].append(("created", T0, "rep", "s0"))
        at = T0
        for to in PATH:
            at = at + STEP
            if (d["stage"], to) not in edges:
                raise ValueError("no edge")
            if not d["amount"] or d["amount"] <= 0:  # the guard
                raise ValueError("guard")
            d["events"].append(("stage", at, "rep", d["stage"], to))
            d["stage"] = to
        out.append(d)
    return out


def run_transitions(n: int, shared: bool) -> int:
    from transitions import Machine

    trans = [{"trigger": f"to_{b}", "source": a, "dest": b, "conditions": "has_amount"}
             for a, b in zip(STAGES[:6], PATH, strict=True)]

    class Model:
        def __init__(self) -> None:
            self.amount = Decimal("12500.00")
            self.events: list[Any] = []

        def has_amount(self) -> bool:
            return self.amount > 0

    moved = 0
    if shared:
        m = Machine(model=None, states=STAGES, transitions=trans, initial="s0", auto_transitions=False)
        for _ in range(n):
            model = Model()
            m.add_model(model, initial="s0")
            for to in PATH:
                getattr(model, f"to_{to}")()
                model.events.append((to,))
                moved += 1
            m.remove_model(model)
    else:
        for _ in range(n):
            model = Model()
            Machine(model=model, states=STAGES, transitions=trans, initial="s0", auto_transitions=False)
            for to in PATH:
                getattr(model, f"to_{to}")()
                model.events.append((to,))
                moved += 1
    return moved


class Listener:
    def __init__(self) -> None:
        self.count = 0

    @hookimpl
    def salesprocess_after_transition(self, process: Any, before: Any, after: Any, events: Any) -> None:
        self.count += 1


def rate(n_moves: int, seconds: float) -> float:
    return n_moves / seconds


CPU: dict[int, float] = {}  # id(fn) -> CPU seconds of the process in the fastest (wall) run


def best_of(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best = wall
            CPU[id(fn)] = time.process_time() - c0
    return best


def timed(fn: Any, repeat: int) -> tuple[float, float]:
    """Best wall time of ``repeat`` runs and the CPU time of that run (diagnostic: on a shared
    machine the CPU time shows what the process itself spent)."""
    wall = best_of(fn, repeat)
    return wall, CPU[id(fn)]


def gc_stats(n: int, proc: Process) -> None:
    """One extra, untimed-for-the-table run of ``Process.advance`` with the collector's own time
    per generation (diagnostic: the live deals' records keep the cyclic collector busy)."""
    stats = {g: [0, 0.0] for g in range(3)}
    start = [0.0]

    def cb(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            start[0] = time.process_time()
        else:
            s = stats[info["generation"]]
            s[0] += 1
            s[1] += time.process_time() - start[0]

    gc.collect()
    gc.callbacks.append(cb)
    try:
        c0 = time.process_time()
        run_salesprocess(n, proc, Process.advance)
        cpu = time.process_time() - c0
    finally:
        gc.callbacks.remove(cb)
    in_gc = sum(s[1] for s in stats.values())
    print(f"cyclic GC during one Process.advance run: {in_gc:.3f} s of {cpu:.3f} s CPU "
          + "; ".join(f"gen{g} {s[0]}× {s[1]:.3f} s" for g, s in stats.items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deals", type=int, default=100_000)
    ap.add_argument("--transitions-deals", type=int, default=20_000,
                    help="deals for the transitions library (it is slow; rates are per transition)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gc-stats", action="store_true",
                    help="diagnostic: one more Process.advance run reporting the cyclic collector's time")
    a = ap.parse_args()
    header("stage machine")
    n = a.deals
    moves = n * len(PATH)
    proc = Process.from_dict(PROCESS_DICT)
    sp = SalesProcess()

    t_core, c_core = timed(lambda: run_salesprocess(n, proc, Process.advance), a.repeat)
    listener = Listener()
    sp.register(listener)
    t_shell, c_shell = timed(lambda: run_salesprocess(n, proc, sp.advance), a.repeat)
    assert listener.count == moves * a.repeat, listener.count
    sp.unregister(listener)
    t_shell_none, c_none = timed(lambda: run_salesprocess(n, proc, sp.advance), a.repeat)
    t_base, c_base = timed(lambda: run_baseline(n), a.repeat)
    nt = a.transitions_deals
    t_tr = best_of(lambda: run_transitions(nt, shared=False), 1)
    t_tr_shared = best_of(lambda: run_transitions(nt, shared=True), 1)

    r_core = rate(moves, t_core)
    r_shell = rate(moves, t_shell)
    r_none = rate(moves, t_shell_none)
    r_base = rate(moves, t_base)
    r_tr = rate(nt * len(PATH), t_tr)
    r_trs = rate(nt * len(PATH), t_tr_shared)
    print(f"deals: {n:,} × {len(PATH)} validated transitions (guard on each), construction included")
    print(f"{'engine':<46}{'transitions/s':>16}{'per CPU s':>12}")
    print(f"{'salesprocess Process.advance (no plugins)':<46}{r_core:>16,.0f}{rate(moves, c_core):>12,.0f}")
    print(f"{'salesprocess SalesProcess.advance, no listener':<46}{r_none:>16,.0f}{rate(moves, c_none):>12,.0f}")
    print(f"{'salesprocess SalesProcess.advance, 1 listener':<46}{r_shell:>16,.0f}{rate(moves, c_shell):>12,.0f}")
    print(f"{'hand-written dict-and-list baseline':<46}{r_base:>16,.0f}{rate(moves, c_base):>12,.0f}")
    print(f"{'transitions (machine per deal)':<46}{r_tr:>16,.0f}")
    print(f"{'transitions (shared machine)':<46}{r_trs:>16,.0f}")
    print(f"ratio salesprocess / transitions (per deal): {r_core / r_tr:,.1f}×; / shared: {r_core / r_trs:,.1f}×")
    print(f"ratio baseline / salesprocess: {r_base / r_core:,.2f}× (CPU: {c_core / c_base:,.2f}×)")
    if a.gc_stats:
        gc_stats(n, proc)

    # memory per live deal: 6 events in all (creation + 5 moves), and 7 (creation + 6 moves)
    for moves in (5, 6):
        print(f"memory per live deal with {moves + 1} events: {memory_per_deal(proc, moves):,.0f} bytes")


def memory_per_deal(proc: Process, moves: int, m: int = 20_000) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    deals = []
    for i in range(m):
        d = proc.open_deal(f"D{i}", at=T0, actor="rep", amount=AMOUNT)
        at = T0
        for to in PATH[:moves]:
            at = at + STEP
            d = proc.advance(d, to, at=at, actor="rep")
        deals.append(d)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    assert len(deals[0].events) == moves + 1
    return sum(s.size_diff for s in after.compare_to(before, "filename")) / m


if __name__ == "__main__":
    main()
