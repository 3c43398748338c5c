"""Initial pull of many deals from the Zoho and 纷享销客 (Fxiaoke) fakes over loopback HTTP, under
each vendor's published rate limit.

The fake runs in its own process (``salesprocess fake zoho|fxiaoke``), seeded with ``--deals``
deals (Chinese stage names, some moved on), and enforces the vendor's limit; the adapter's
client-side limiter is set to the same limit. The pull goes through ``SyncEngine.pull()`` into a
SQLite file.

- Zoho publishes API credits per rolling 24 hours (the free edition's 5,000 is the allowance
  that binds for this pull: one credit per page of 200 and one per deal's ``Stage_History``).
  24 hours are scaled down to ``--zoho-window`` seconds (60 s by default: 83 credits a second),
  the credits kept.
- Fxiaoke publishes 100 calls per 20 seconds per interface; the query interface carries the
  pull (pages of 100). The limit is used as published (``--fx-limit 100/20s``); a shorter window
  at the same ratio per second (``10/2s``) gives the same rate with finer bursts.

Reported per vendor: wall time and deals per second; the calls the limit governs, their rate as
a share of the limit's steady rate, and the best time the limit allows in this run (the first
window's burst included: a client that could use the whole first window at once) with the share
achieved;
responses that told the client to slow down (the target is zero); client CPU per deal (wall
time depends on what else the machine runs).

Usage::

    python benchmarks/bench_sync_zoho_fxiaoke.py                    # 50,000 deals, both vendors
    python benchmarks/bench_sync_zoho_fxiaoke.py --adapter zoho --deals 5000
    python benchmarks/bench_sync_zoho_fxiaoke.py --adapter fxiaoke --fx-limit 10/2s
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import header

from salesprocess.sync import ObjectKind, RetryPolicy, SyncEngine, parse_rate
from salesprocess_adapters.sqlite import SQLiteStore

ZOHO_PUBLISHED = (5000, 86400.0)
FX_PUBLISHED = (100, 20.0)


def start_fake(vendor: str, deals: int, limit: str) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "salesprocess", "fake", vendor, "--port", "0", "--seed-deals", str(deals),
           "--rate-limit", limit]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the {vendor} fake did not start: {line!r}")
    url = line.rsplit(" ", 1)[1].strip()
    if deals:
        proc.stdout.readline()  # "seeded N deals"
    return proc, url


def run(vendor: str, deals: int, limit: tuple[int, float], workdir: Path, history: bool) -> dict[str, Any]:
    text = f"{limit[0]}/{limit[1]:g}s"
    retry = RetryPolicy(attempts=8, base=0.2)
    t0 = time.perf_counter()
    proc, url = start_fake(vendor, deals, text)
    seeded = time.perf_counter() - t0
    adapter: Any
    if vendor == "zoho":
        from salesprocess_adapters.zoho import ZohoAdapter

        page = 200
        adapter = ZohoAdapter(base_url=url, token="1000.fake-zoho-access-token", rate_limit=limit, page_size=page,
                              history=history, retry=retry, timeout=60)

        def governed() -> int:
            return int(adapter.http.calls)  # every call spends a credit
    else:
        from salesprocess_adapters.fxiaoke import QUERY_PATH, FxiaokeAdapter

        page = 100
        adapter = FxiaokeAdapter(base_url=url, app_id="FSAID_fake0001", app_secret="fake-fxiaoke-app-secret",
                                 permanent_code="fake-fxiaoke-permanent-code", user_id="FSUID_FAKE0001",
                                 rate_limit=limit, page_size=page, retry=retry, timeout=60)

        queries = [0]

        def governed() -> int:
            return queries[0]  # the query interface carries the pull

        inner = adapter.call

        def counting(path: str, data: Any, **kw: Any) -> Any:
            if path == QUERY_PATH:
                queries[0] += 1
            return inner(path, data, **kw)

        adapter.call = counting
    db = workdir / f"{vendor}.sqlite"
    store = SQLiteStore(db)
    eng = SyncEngine(store, adapter, connection=vendor, kinds=(ObjectKind.DEALS,), currency="CNY")
    eng.mapping  # noqa: B018  (pipelines read before the clock starts)
    before = governed()
    calls0 = adapter.http.calls
    start = time.perf_counter()
    cpu0 = time.process_time()
    summary = eng.pull()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    n = governed() - before
    per_second = limit[0] / limit[1]
    best = max(0, n - limit[0]) / per_second
    stages = sorted({d.stage for d in itertools.islice(store.deals(), 2000)})
    result = {
        "vendor": vendor, "deals": deals, "created": summary.created, "failed": summary.failed, "page": page,
        "calls": adapter.http.calls - calls0, "governed": n, "wall_s": wall, "deals_per_s": deals / wall,
        "rate": n / wall, "allowed": per_second, "best_s": best,
        "share_of_best": (best / wall) if best else float("nan"),
        "throttled": adapter.http.throttled if vendor == "zoho" else adapter.throttled,
        "retries": adapter.http.retries, "seed_s": seeded, "cpu_ms_per_deal": cpu / deals * 1000,
        "stages": stages,
    }
    store.close()
    adapter.close()
    proc.terminate()
    proc.wait(timeout=30)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deals", type=int, default=50_000)
    ap.add_argument("--adapter", choices=("zoho", "fxiaoke", "both"), default="both")
    ap.add_argument("--zoho-credits", type=int, default=ZOHO_PUBLISHED[0],
                    help="Zoho API credits per rolling 24 hours (default 5,000: the free edition)")
    ap.add_argument("--zoho-window", type=float, default=60.0,
                    help="seconds standing for Zoho's 24 hours (default 60)")
    ap.add_argument("--no-history", action="store_true", help="Zoho: skip each deal's Stage_History")
    ap.add_argument("--fx-limit", default="100/20s", help="Fxiaoke calls per interface (default 100/20s, as published)")
    args = ap.parse_args()
    header("CRM sync: initial pull from the Zoho and Fxiaoke fakes over loopback HTTP under the vendor rate limit")
    vendors = ("zoho", "fxiaoke") if args.adapter == "both" else (args.adapter,)
    with tempfile.TemporaryDirectory() as tmp:
        for v in vendors:
            if v == "zoho":
                limit: tuple[int, float] = (args.zoho_credits, args.zoho_window)
                what = (f"{limit[0]:,} credits per {limit[1]:g} s (Zoho's {limit[0]:,} per 24 h, time scaled "
                        f"{ZOHO_PUBLISHED[1] / limit[1]:,.0f}x)")
            else:
                limit = parse_rate(args.fx_limit)
                what = (f"{limit[0]} calls per {limit[1]:g} s per interface (published: "
                        f"{FX_PUBLISHED[0]} per {FX_PUBLISHED[1]:g} s)")
            r = run(v, args.deals, limit, Path(tmp), history=not args.no_history)
            print(f"\n## {v}: {r['deals']:,} deals, pages of {r['page']}, limit {what}")
            print(f"fake seeded in {r['seed_s']:.1f} s; pull: {r['wall_s']:.1f} s, {r['calls']:,} calls, "
                  f"{r['deals_per_s']:,.0f} deals/s (created {r['created']:,}, failed {r['failed']})")
            print(f"calls under the limit: {r['governed']:,} at {r['rate']:.2f}/s = {r['rate'] / r['allowed']:.1%} of "
                  f"the limit's {r['allowed']:.2f}/s; "
                  f"best possible in this run {r['best_s']:.1f} s (first window's burst included): "
                  + (f"achieved {r['share_of_best']:.1%}" if r['best_s'] else "the whole pull fits in one window"))
            print(f"throttled responses: {r['throttled']}   retries: {r['retries']}   "
                  f"client CPU: {r['cpu_ms_per_deal']:.2f} ms per deal")
            print(f"stages seen: {', '.join(r['stages'])}")


if __name__ == "__main__":
    main()
