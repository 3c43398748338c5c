"""Deals CSV import: the full path (mapping, validation, synthesized histories, store) against a
bare baseline (csv module + sqlite3 executemany of the same columns, no validation).

    python benchmarks/bench_import.py                 # 1,000,000 rows
    python benchmarks/bench_import.py --rows 200000
    python benchmarks/bench_import.py --rows 100000 --no-postgres --profile

Each phase runs in its own process so its peak memory (ru_maxrss) is its own. The CSV is written
to benchmarks/out/ (git-ignored) and reused when it already has the requested size.
Targets: >= 50,000 rows/s end to end into SQLite, within 4x the baseline, peak memory < 250 MiB.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import header, peak_rss_mib  # noqa: E402

OUT = HERE / "out"
COLUMNS = ["opportunity_id", "sales_agent", "product", "account", "deal_stage", "engage_date", "close_date", "close_value"]
MAPPING = """\
process = "b2b"
currency = "USD"
timezone = "UTC"
date_format = "%Y-%m-%d"
source = "bench"
asof = 2025-12-31

[columns]
external_id = "opportunity_id"
owner = "sales_agent"
account = "account"
products = "product"
stage = "deal_stage"
created_at = "engage_date"
closed_at = "close_date"
amount = "close_value"

[stages]
Prospecting = "lead"
Engaging = "needs_analysis"
Won = "won"
Lost = "lost"

[values.amount]
"0" = ""
"""
PG_DSN = os.environ.get("SALESPROCESS_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def make_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    agents = [f"Agent {i:03d}" for i in range(60)]
    products = ["GTX Basic", "GTX Pro", "MG Special", "MG Advanced", "GTX Plus Pro", "GTX Plus Basic", "GTK 500"]
    prices = [550, 4821, 55, 3393, 5482, 1096, 26768]
    accounts = [f"Account {i:04d}" for i in range(800)]
    start = date(2024, 1, 1)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        for i in range(rows):
            r = rng.random()
            stage = "Won" if r < 0.48 else "Lost" if r < 0.76 else "Engaging" if r < 0.94 else "Prospecting"
            p = rng.randrange(len(products))
            engaged = start + timedelta(days=rng.randrange(700))
            closed = engaged + timedelta(days=rng.randrange(1, 140))
            value = ""
            if stage == "Won":
                value = str(int(prices[p] * rng.uniform(0.8, 1.1)))
            elif stage == "Lost":
                value = "0"
            w.writerow([
                f"OPP{i:08d}", agents[rng.randrange(len(agents))], products[p],
                "" if stage != "Won" and rng.random() < 0.15 else accounts[rng.randrange(len(accounts))],
                stage, "" if stage == "Prospecting" else engaged.isoformat(),
                closed.isoformat() if stage in ("Won", "Lost") else "", value,
            ])
    tmp.replace(path)


def phase_import(csv_path: str, db: str, profile: bool) -> dict[str, float]:
    from salesprocess.app import SalesProcess
    from salesprocess_adapters.tabular import ImportMapping, import_file

    mapping_path = OUT / "bench-mapping.toml"
    mapping_path.write_text(MAPPING, encoding="utf-8")
    sp = SalesProcess()
    if db.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db.split("?")[0], autocommit=True) as c:
            c.execute("DROP SCHEMA IF EXISTS bench_import CASCADE")
        store = sp.open_store(db + "?schema=bench_import")
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(db + suffix).unlink(missing_ok=True)
        store = sp.open_store(db)
    mapping = ImportMapping.from_toml(mapping_path, kind="deals", app=sp)
    # time spent inside the store's deal writes (save_deals, the bulk lane's insert_new_deals,
    # the index builds after a bulk load), to tell the store's share from the importer's
    in_store = [0.0]

    def timed(fn: Any) -> Any:
        def run(*args: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                in_store[0] += time.perf_counter() - t

        return run

    store.save_deals = timed(store.save_deals)
    if hasattr(store, "insert_new_deals"):
        store.insert_new_deals = timed(store.insert_new_deals)
    bulk_load = getattr(store, "bulk_load", None)
    if bulk_load is not None:

        @contextlib.contextmanager
        def timed_bulk_load() -> Iterator[None]:
            cm = bulk_load()
            with timed_ctx(cm):
                yield

        @contextlib.contextmanager
        def timed_ctx(cm: Any) -> Iterator[None]:
            cm.__enter__()
            try:
                yield
            except BaseException:
                if not cm.__exit__(*sys.exc_info()):
                    raise
            else:
                t = time.perf_counter()
                cm.__exit__(None, None, None)
                in_store[0] += time.perf_counter() - t

        store.bulk_load = timed_bulk_load
    t0 = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        report = prof.runcall(import_file, store, "deals", csv_path, mapping=mapping, app=sp, batch_size=5000)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(30)
    else:
        report = import_file(store, "deals", csv_path, mapping=mapping, app=sp, batch_size=5000)
    elapsed = time.perf_counter() - t0
    n = store.count_deals()
    store.close()
    if db.startswith("postgresql"):  # a million-row import is ~2 GB: don't leave it on the server
        import psycopg

        with psycopg.connect(db.split("?")[0], autocommit=True) as c:
            c.execute("DROP SCHEMA IF EXISTS bench_import CASCADE")
    assert report.created == report.rows == n, (report.summary(), n)
    return {"rows": report.rows, "seconds": elapsed, "store_seconds": in_store[0], "peak_mib": peak_rss_mib(),
            "cpu_seconds": cpu_seconds()}


def phase_baseline(csv_path: str, db: str) -> dict[str, float]:
    import sqlite3

    Path(db).unlink(missing_ok=True)
    t0 = time.perf_counter()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"CREATE TABLE deals ({', '.join(c + ' TEXT' for c in COLUMNS)})")
    n = 0
    with open(csv_path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        next(r)
        batch: list[list[str]] = []
        ins = f"INSERT INTO deals VALUES ({', '.join('?' * len(COLUMNS))})"
        with con:
            for row in r:
                batch.append(row)
                if len(batch) >= 5000:
                    con.executemany(ins, batch)
                    n += len(batch)
                    batch = []
            if batch:
                con.executemany(ins, batch)
                n += len(batch)
    con.close()
    return {"rows": n, "seconds": time.perf_counter() - t0, "peak_mib": peak_rss_mib(), "cpu_seconds": cpu_seconds()}


def cpu_seconds() -> float:
    """CPU time of this process so far (all threads, user and system; interpreter start included)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(args: list[str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"phase {args[1]} failed")
    if out.stderr:
        sys.stderr.write(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL figure")
    ap.add_argument("--profile", action="store_true", help="cProfile the SQLite import (slower)")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--csv", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.phase == "import":
        print(json.dumps(phase_import(a.csv, a.db, a.profile)))
        return
    if a.phase == "baseline":
        print(json.dumps(phase_baseline(a.csv, a.db)))
        return
    header(f"deals CSV import, {a.rows:,} rows")
    OUT.mkdir(exist_ok=True)
    csv_path = OUT / f"deals-{a.rows}.csv"
    if not csv_path.exists():
        t0 = time.perf_counter()
        make_csv(csv_path, a.rows)
        print(f"wrote {csv_path.name} ({csv_path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
    base = child(["--phase", "baseline", "--csv", str(csv_path), "--db", str(OUT / "baseline.sqlite")])
    imp_args = ["--phase", "import", "--csv", str(csv_path), "--db", str(OUT / "import.sqlite")]
    ours = child(imp_args + (["--profile"] if a.profile else []))
    rate_b = base["rows"] / base["seconds"]
    rate_o = ours["rows"] / ours["seconds"]
    print(f"baseline (csv + sqlite3.executemany, no validation): {rate_b:>10,.0f} rows/s  "
          f"{base['seconds']:.1f} s  peak {base['peak_mib']:.0f} MiB  CPU {base['cpu_seconds']:.1f} s")
    print(f"salesprocess import -> SQLite (full validation):     {rate_o:>10,.0f} rows/s  "
          f"{ours['seconds']:.1f} s  peak {ours['peak_mib']:.0f} MiB  CPU {ours['cpu_seconds']:.1f} s")
    share = ours["store_seconds"] / ours["seconds"]
    print(f"  of which writing deals in the store: {ours['store_seconds']:.1f} s ({share:.0%}); "
          f"importer alone: {ours['rows'] / (ours['seconds'] - ours['store_seconds']):,.0f} rows/s")
    print(f"ratio: {rate_b / rate_o:.2f}x the baseline's time, "
          f"{ours['cpu_seconds'] / base['cpu_seconds']:.2f}x its CPU time")
    print(f"load average now: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = rate_o >= 50_000 and rate_b / rate_o <= 4 and ours["peak_mib"] < 250
    print(f"targets (>= 50,000 rows/s, <= 4x baseline, < 250 MiB): {'met' if ok else 'NOT met'}")
    if not a.no_postgres:
        pg = child(["--phase", "import", "--csv", str(csv_path), "--db", PG_DSN])
        print(f"salesprocess import -> PostgreSQL:                   {pg['rows'] / pg['seconds']:>10,.0f} rows/s  "
              f"{pg['seconds']:.1f} s  peak {pg['peak_mib']:.0f} MiB")
        print(f"  of which writing deals in the store: {pg['store_seconds']:.1f} s "
              f"({pg['store_seconds'] / pg['seconds']:.0%})")


if __name__ == "__main__":
    main()
