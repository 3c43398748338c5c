"""Initial pull of many deals from the Pipedrive and Odoo fakes over loopback HTTP, under a rate
limit, with stage history.

The fake runs in its own process (``salesprocess fake pipedrive|odoo``), seeded with ``--deals``
deals (two in three moved on a stage, won or lost), and enforces the limit; the adapter's
client-side limiter is set to the same limit. The pull goes through ``SyncEngine.pull()`` into a
SQLite file.

- Pipedrive publishes a burst window per token of 2 seconds: 20/40/80/100/120 requests for an
  API token and 80/160/320/400/480 for OAuth (Essential → Enterprise). The pull makes one call
  per page of 500 deals and one changelog call per deal that moved (its stage history). The
  plan's window is used as published (``--pd-plan professional``: 80 per 2 s, 40 requests a
  second); ``--pd-scale N`` scales it in time like the other sync benchmarks scale theirs (the
  same requests in a window N times shorter).
- Odoo publishes no API rate limit; ``--odoo-limit`` stands for a reverse proxy's (default
  ``10/1s``). The pull makes three calls per page (the page, its tracking values, their
  messages). The seeded deals are created ``--odoo-batch`` per transaction, so that many share
  each ``write_date``, as after an import.

Reported per vendor: wall time and deals per second; the calls the limit governs, the best time
the limit allows in this run (the first window's burst included) and the share achieved;
responses that told the client to slow down (the target is zero); client CPU per deal.

Usage::

    python benchmarks/bench_sync_pipedrive_odoo.py                       # 50,000 deals, both
    python benchmarks/bench_sync_pipedrive_odoo.py --adapter pipedrive --deals 5000
    python benchmarks/bench_sync_pipedrive_odoo.py --adapter pipedrive --pd-plan enterprise --pd-auth oauth
    python benchmarks/bench_sync_pipedrive_odoo.py --adapter odoo --odoo-limit 20/1s --odoo-page 500
"""

from __future__ import annotations

import argparse
import itertools
import os
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

PD_PLANS = {  # requests per 2 seconds, by plan: (API token, OAuth)
    "essential": (20, 80), "advanced": (40, 160), "professional": (80, 320), "power": (100, 400),
    "enterprise": (120, 480),
}
PD_TOKEN = "bench-pipedrive-api-token"
ODOO_KEY = "bench-odoo-api-key"


def start_fake(vendor: str, deals: int, limit: str, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "BENCH_FAKE_TOKEN": PD_TOKEN if vendor == "pipedrive" else ODOO_KEY}
    cmd = [sys.executable, "-m", "salesprocess", "fake", vendor, "--port", "0", "--seed-deals", str(deals),
           "--rate-limit", limit, "--token-env", "BENCH_FAKE_TOKEN", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the {vendor} fake did not start: {line!r}")
    url = line.rsplit(" ", 1)[1].strip()
    if deals:
        proc.stdout.readline()  # "seeded N deals"
    return proc, url


def run(vendor: str, deals: int, limit: tuple[int, float], workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    text = f"{limit[0]}/{limit[1]:g}s"
    retry = RetryPolicy(attempts=8, base=0.2)
    t0 = time.perf_counter()
    adapter: Any
    if vendor == "pipedrive":
        from salesprocess_adapters.pipedrive import PipedriveAdapter

        proc, url = start_fake("pipedrive", deals, text, ["--search-rate-limit", "none"])
        page = 500
        adapter = PipedriveAdapter(base_url=url, token=PD_TOKEN, rate_limit=limit, page_size=page,
                                   history=not args.no_history, retry=retry, timeout=60)
    else:
        from salesprocess_adapters.odoo import OdooAdapter

        proc, url = start_fake("odoo", deals, text, ["--seed-batch", str(args.odoo_batch)])
        page = args.odoo_page
        adapter = OdooAdapter(base_url=url, db="salesprocess", token=ODOO_KEY, login="api@example.com",
                              protocol=args.odoo_protocol, rate_limit=limit, page_size=page,
                              history=not args.no_history, retry=retry, timeout=60)
    seeded = time.perf_counter() - t0
    db = workdir / f"{vendor}.sqlite"
    store = SQLiteStore(db)
    eng = SyncEngine(store, adapter, connection=vendor, kinds=(ObjectKind.DEALS,))
    eng.mapping  # noqa: B018  (pipelines read before the clock starts)
    calls0 = adapter.calls
    start = time.perf_counter()
    cpu0 = time.process_time()
    summary = eng.pull()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    n = adapter.calls - calls0
    per_second = limit[0] / limit[1]
    best = max(0, n - limit[0]) / per_second
    sample = list(itertools.islice(store.deals(), 2000))
    result = {
        "vendor": vendor, "deals": deals, "created": summary.created, "failed": summary.failed, "page": page,
        "calls": n, "wall_s": wall, "deals_per_s": deals / wall, "rate": n / wall, "allowed": per_second,
        "best_s": best, "share_of_best": (best / wall) if best else float("nan"),
        "throttled": adapter.throttled, "retries": adapter.http.retries, "seed_s": seeded,
        "cpu_ms_per_deal": cpu / deals * 1000,
        "statuses": sorted({d.status.value for d in sample}),
        "events_per_deal": sum(len(d.events) for d in sample) / max(1, len(sample)),
    }
    store.close()
    adapter.close()
    proc.terminate()
    proc.wait(timeout=30)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deals", type=int, default=50_000)
    ap.add_argument("--adapter", choices=("pipedrive", "odoo", "both"), default="both")
    ap.add_argument("--pd-plan", choices=sorted(PD_PLANS), default="professional",
                    help="the Pipedrive plan whose burst window applies (default professional)")
    ap.add_argument("--pd-auth", choices=("api_token", "oauth"), default="api_token",
                    help="API token or OAuth (OAuth windows are four times larger)")
    ap.add_argument("--pd-scale", type=float, default=1.0,
                    help="time scale of Pipedrive's 2-second window (default 1: as published; 2 halves it)")
    ap.add_argument("--odoo-limit", default="10/1s", help="the proxy limit in front of Odoo (default 10/1s)")
    ap.add_argument("--odoo-page", type=int, default=100, help="Odoo records per page (default 100)")
    ap.add_argument("--odoo-batch", type=int, default=50,
                    help="seeded Odoo deals per transaction, sharing a write_date (default 50)")
    ap.add_argument("--odoo-protocol", choices=("json2", "jsonrpc"), default="json2")
    ap.add_argument("--no-history", action="store_true", help="skip stage history (changelog / tracking calls)")
    args = ap.parse_args()
    header("CRM sync: initial pull from the Pipedrive and Odoo fakes over loopback HTTP under a rate limit")
    vendors = ("pipedrive", "odoo") if args.adapter == "both" else (args.adapter,)
    with tempfile.TemporaryDirectory() as tmp:
        for v in vendors:
            if v == "pipedrive":
                calls = PD_PLANS[args.pd_plan][1 if args.pd_auth == "oauth" else 0]
                limit: tuple[int, float] = (calls, 2.0 / args.pd_scale)
                what = (f"{calls} requests per {limit[1]:g} s (Pipedrive's {args.pd_plan} plan, {args.pd_auth}: "
                        f"{calls} per 2 s, time scaled {args.pd_scale:g}x)")
            else:
                limit = parse_rate(args.odoo_limit)
                what = (f"{limit[0]} requests per {limit[1]:g} s (a proxy's: Odoo publishes no API limit); "
                        f"{args.odoo_protocol}, seeded {args.odoo_batch} per transaction")
            r = run(v, args.deals, limit, Path(tmp), args)
            print(f"\n## {v}: {r['deals']:,} deals, pages of {r['page']}, limit {what}")
            print(f"fake seeded in {r['seed_s']:.1f} s; pull: {r['wall_s']:.1f} s, {r['calls']:,} calls, "
                  f"{r['deals_per_s']:,.0f} deals/s (created {r['created']:,}, failed {r['failed']})")
            print(f"calls under the limit: {r['calls']:,} at {r['rate']:.1f}/s (limit {r['allowed']:.1f}/s); "
                  f"best possible in this run {r['best_s']:.1f} s (first window's burst included): "
                  + (f"achieved {r['share_of_best']:.1%}" if r['best_s'] else "the whole pull fits in one window"))
            print(f"throttled responses: {r['throttled']}   retries: {r['retries']}   "
                  f"client CPU: {r['cpu_ms_per_deal']:.2f} ms per deal")
            print(f"statuses seen: {', '.join(r['statuses'])}; events per deal: {r['events_per_deal']:.2f}")


if __name__ == "__main__":
    main()
