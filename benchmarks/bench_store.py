"""Throughput of the stores' bulk write path (``save_deals``) and streaming reads.

Generates N deals with 2-3 events each (created, a stage move, for a third of them an amount
change) and saves them into a fresh SQLite file and a fresh PostgreSQL schema, in batches of
``--batch`` deals per ``save_deals`` call. Prints deals/s and events/s for writing, then for
streaming every deal back (``deals()``, replayed from events).

    python benchmarks/bench_store.py                 # 200,000 deals, SQLite and PostgreSQL
    python benchmarks/bench_store.py -n 50000 --only sqlite
    SALESPROCESS_PG_DSN="host=... dbname=..." python benchmarks/bench_store.py --only postgres
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from salesprocess.model import Deal, EventSource, StageChanged
from salesprocess.money import Money, Rate

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STAGES = ("lead", "qualify", "solution", "proposal", "negotiation")


def make_deals(n: int) -> list[Deal]:
    out = []
    for i in range(n):
        at = T0 + timedelta(minutes=i)
        d = Deal.create(
            f"D{i:08d}", process="b2b", stage="lead", at=at, actor="import", source=EventSource.IMPORT,
            name=f"华东客户 {i} 年度框架协议", amount=Money(f"{(i * 7919) % 1_000_000}.{i % 100:02d}", "CNY"),
            owner_id=f"rep-{i % 50}", account_id=f"acc-{i % 5000}", close_date=(at + timedelta(days=60)).date(),
            external_ids={"crm": f"X{i}"},
        )  # fmt: skip
        d = d.append(
            StageChanged(d.id, at + timedelta(days=1), "import", EventSource.IMPORT, "lead",
                         STAGES[1 + i % 4], Rate("0.2"), EventSource.STAGE_DEFAULT)
        )  # fmt: skip
        if i % 3 == 0:
            d = d.with_amount(Money(f"{(i * 31) % 90_000 + 1000}.00", "CNY"), at=at + timedelta(days=2), actor="x")
        out.append(d)
    return out


def batches(deals: list[Deal], size: int) -> Iterator[list[tuple[Deal, int | None]]]:
    for i in range(0, len(deals), size):
        yield [(d, None) for d in deals[i : i + size]]


def run(label: str, open_store: Callable[[], Any], deals: list[Deal], batch: int) -> None:
    store = open_store()
    events = sum(d.version for d in deals)
    t, c = time.perf_counter(), time.process_time()
    for b in batches(deals, batch):
        store.save_deals(b)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    print(f"{label:<10} save_deals  {len(deals):>9,} deals {events:>9,} events  {dt:7.2f}s  "
          f"{len(deals) / dt:>10,.0f} deals/s  {events / dt:>10,.0f} events/s  "
          f"(this process's CPU: {dc:.2f}s, {len(deals) / dc:,.0f} deals/s)")  # fmt: skip
    t = time.perf_counter()
    n = sum(1 for _ in store.deals())
    dt = time.perf_counter() - t
    print(f"{label:<10} deals()     {n:>9,} deals                    {dt:7.2f}s  {n / dt:>10,.0f} deals/s")
    t = time.perf_counter()
    n = sum(1 for _ in store.events())
    dt = time.perf_counter() - t
    print(f"{label:<10} events()    {n:>9,} events                   {dt:7.2f}s  {n / dt:>10,.0f} events/s")
    store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200_000, help="deals to write (default 200,000)")
    ap.add_argument("--batch", type=int, default=50_000, help="deals per save_deals call")
    ap.add_argument("--only", choices=("sqlite", "postgres"))
    args = ap.parse_args(argv)

    t = time.perf_counter()
    deals = make_deals(args.n)
    print(f"built {len(deals):,} deals in {time.perf_counter() - t:.1f}s (not counted)")

    if args.only in (None, "sqlite"):
        from salesprocess_adapters.sqlite import SQLiteStore

        with tempfile.TemporaryDirectory() as tmp:
            run("sqlite", lambda: SQLiteStore(Path(tmp) / "bench.sqlite"), deals, args.batch)
    if args.only in (None, "postgres"):
        import psycopg

        from salesprocess_adapters.postgres import PostgresStore

        dsn = os.environ.get("SALESPROCESS_PG_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres")
        schema = f"sp_bench_{uuid.uuid4().hex[:8]}"
        try:
            run("postgres", lambda: PostgresStore(dsn, schema=schema), deals, args.batch)
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return 0


if __name__ == "__main__":
    sys.exit(main())
