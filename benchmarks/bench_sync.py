"""Initial pull of many deals from the vendor fakes over loopback HTTP, under the vendor's rate limit.

The fake runs in its own process (``salesprocess fake ...``), seeded with ``--deals`` deals, and
enforces HubSpot's burst limit of 100 requests per 10 seconds scaled down in time to the same ratio
per second (``--limit 10/1s``, the default; ``--limit 100/10s`` is the real window). The adapter's
client-side limiter is set to the same limit. Reported per vendor:

- wall time and deals per second of ``SyncEngine.pull()`` into a SQLite file;
- the throughput the limit allows: page size × allowed requests per second, and the best a client
  can do in this run (the first window's burst included); the achieved share of each;
- responses that told the client to slow down (429 / REQUEST_LIMIT_EXCEEDED): the target is zero;
- resident memory at 10 %, 50 % and 100 % of the pull (flat memory: the pull streams);
- the client's CPU time per deal, and the fake's (wall time depends on what else the machine
  runs; the fake's CPU is its own process's, not the client's);
- the load average before and after the pull (the machine may be shared).

Usage::

    python benchmarks/bench_sync.py                      # 100,000 deals, both vendors, 10 requests/s
    python benchmarks/bench_sync.py --deals 20000 --vendor hubspot --limit 100/10s
    python benchmarks/bench_sync.py --vendor salesforce --sf-page 200
"""

from __future__ import annotations

import argparse
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


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_fake(vendor: str, deals: int, limit: str, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "salesprocess", "fake", vendor, "--port", "0", "--seed-deals", str(deals),
           "--rate-limit", limit, *extra]
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


def run(vendor: str, deals: int, limit: tuple[int, float], workdir: Path, sf_page: int) -> dict[str, Any]:
    period = limit[1]
    text = f"{limit[0]}/{period:g}s"
    if vendor == "hubspot":
        from salesprocess_adapters.hubspot import HubSpotAdapter

        page = 100
        t0 = time.perf_counter()
        proc, url = start_fake("hubspot", deals, text, ["--search-rate-limit", "5/1s"])
        seeded = time.perf_counter() - t0
        adapter: Any = HubSpotAdapter(base_url=url, token="pat-na1-00000000-fake", rate_limit=limit,
                                      search_rate_limit=(5, 1.0), page_size=page,
                                      retry=RetryPolicy(attempts=8, base=0.2), timeout=60)
    else:
        from salesprocess_adapters.salesforce import SalesforceAdapter

        page = sf_page
        t0 = time.perf_counter()
        proc, url = start_fake("salesforce", deals, text, [])
        seeded = time.perf_counter() - t0
        adapter = SalesforceAdapter(base_url=url, token="00Dfake!AQ0AQ.fake-session", rate_limit=limit,
                                    page_size=page, retry=RetryPolicy(attempts=8, base=0.2), timeout=120)
    db = workdir / f"{vendor}.sqlite"
    store = SQLiteStore(db)
    eng = SyncEngine(store, adapter, connection=vendor, kinds=(ObjectKind.DEALS,))
    eng.mapping  # noqa: B018  (pipelines read before the clock starts)
    marks = {0.1: None, 0.5: None}
    seen = 0
    samples: dict[str, float] = {}

    def progress(_kind: str, n: int) -> None:
        nonlocal seen
        seen += n
        for frac in marks:
            if marks[frac] is None and seen >= frac * deals:
                marks[frac] = seen  # type: ignore[assignment]
                samples[f"{int(frac * 100)}%"] = rss_mib()

    calls0 = adapter.http.calls
    load0 = os.getloadavg()[0]
    fake0 = proc_cpu(proc.pid)
    start = time.perf_counter()
    cpu0 = time.process_time()
    summary = eng.pull(progress=progress)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    fake_cpu = proc_cpu(proc.pid) - fake0
    load1 = os.getloadavg()[0]
    samples["100%"] = rss_mib()
    requests = adapter.http.calls - calls0
    pages_needed = -(-deals // page)
    per_second = limit[0] / limit[1]
    allowed = page * per_second
    burst_free = max(0, pages_needed - limit[0])
    best_time = burst_free / per_second
    result = {
        "vendor": vendor, "deals": deals, "created": summary.created, "failed": summary.failed,
        "page": page, "requests": requests, "wall_s": wall, "deals_per_s": deals / wall,
        "allowed_per_s": allowed, "share_of_rate": deals / wall / allowed,
        "best_s": best_time, "share_of_best": (best_time / wall) if best_time else float("nan"),
        "throttled": adapter.http.throttled, "retries": adapter.http.retries, "rss": samples,
        "seed_s": seeded, "db_mib": db.stat().st_size / 2**20, "cpu_ms_per_deal": cpu / deals * 1000,
        "fake_cpu_ms_per_deal": fake_cpu / deals * 1000, "load": (load0, load1),
        "limiter_wait_s": adapter.http.limiter.waited if adapter.http.limiter is not None else 0.0,
    }
    store.close()
    adapter.close()
    proc.terminate()
    proc.wait(timeout=30)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deals", type=int, default=100_000)
    ap.add_argument("--vendor", choices=("hubspot", "salesforce", "both"), default="both")
    ap.add_argument("--limit", default="10/1s",
                    help="the rate limit CALLS/PERIOD (default 10/1s: HubSpot's 100 per 10 s at the same ratio per second)")
    ap.add_argument("--sf-page", type=int, default=2000, help="Salesforce query batch size (200 to 2000)")
    args = ap.parse_args()
    header("CRM sync: initial pull over loopback HTTP under the vendor rate limit")
    vendors = ("hubspot", "salesforce") if args.vendor == "both" else (args.vendor,)
    limit = parse_rate(args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        for v in vendors:
            r = run(v, args.deals, limit, Path(tmp), args.sf_page)
            print(f"\n## {v}: {r['deals']:,} deals, pages of {r['page']}, limit {limit[0]} requests / {limit[1]:g} s")
            print(f"fake seeded in {r['seed_s']:.1f} s; pull: {r['wall_s']:.1f} s, {r['requests']} requests, "
                  f"{r['deals_per_s']:,.0f} deals/s (created {r['created']:,}, failed {r['failed']})")
            print(f"limit allows {r['allowed_per_s']:,.0f} deals/s steady: achieved {r['share_of_rate']:.0%}; "
                  f"best possible in this run {r['best_s']:.1f} s (first window's burst included): "
                  + (f"achieved {r['share_of_best']:.0%}" if r['best_s'] else "the whole pull fits in one window"))
            print(f"throttled responses: {r['throttled']}   retries: {r['retries']}   "
                  f"client CPU: {r['cpu_ms_per_deal']:.3f} ms per deal   fake CPU (its own process): "
                  f"{r['fake_cpu_ms_per_deal']:.3f} ms per deal   client waited for the limiter {r['limiter_wait_s']:.1f} s")
            print(f"load average (1 min) before / after the pull: {r['load'][0]:.1f} / {r['load'][1]:.1f}")
            print("resident memory (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in r["rss"].items())
                  + f";  SQLite file {r['db_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
