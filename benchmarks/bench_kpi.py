"""KPI engines on a generated company: pure Python, SQLite pushdown, PostgreSQL pushdown, DuckDB.

Three questions, each asked of every engine:

1. win rate and average won amount per rep per month;
2. the stage funnel (reached, conversion, drop-off, time in stage, bottleneck);
3. the median sales cycle per rep.

The company is generated once into a SQLite store (``--deals``, default 1,000,000, about nine
events each), then copied table by table into a PostgreSQL schema and into DuckDB (the reference
engine: columnar, vectorised, in-process). Every engine runs in its own child process, so each
peak resident set size is its own (for the SQL pushdown children, the peak of the timed runs);
those children then run once more with ``tracemalloc`` to report the peak of the Python heap,
which is what stays flat while the database works. The pure path reports
loading the data (``Dataset.from_store``) apart from computing on it.

The answers are cross-checked against the SQLite pushdown: exactly for our engines, within our
rounding for DuckDB's floating point (amounts to the cent, days to four places).

    python benchmarks/bench_kpi.py --deals 200000
    python benchmarks/bench_kpi.py --deals 1000000 --workdir /data/bench --reuse
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header

DSN = os.environ.get("SALESPROCESS_PG_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres")
QUERIES = ("win_rate_avg_by_rep_month", "funnel", "median_cycle_by_rep")
TARGETS = {"python": 10, "postgres": 5, "sqlite": 15}
TABLES = ("processes", "deals", "deal_events", "reps", "teams", "accounts", "products")


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def build(path: Path, deals: int, seed: int) -> None:
    from salesprocess.generate import iter_company, write_company
    from salesprocess_adapters.sqlite import SQLiteStore

    t = time.perf_counter()
    s = SQLiteStore(path, synchronous="OFF")
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if done % 50_000 < n:
            rate = done / (time.perf_counter() - t)
            print(f"  generated {done:,} deals ({rate:,.0f}/s)", file=sys.stderr, flush=True)

    write_company(s, iter_company(deals=deals, seed=seed, start=date(2024, 1, 1), months=24),
                  progress, batch_size=5000)  # fmt: skip
    s.query("ANALYZE")
    s.close()
    print(f"generated {deals:,} deals into {path} in {time.perf_counter() - t:,.0f}s")


def export_csv(src: Path, out: Path) -> dict[str, list[str]]:
    """Every table of the SQLite store as CSV (``deal_events`` with the created stage spelt out)."""
    import sqlite3

    con = sqlite3.connect(src)
    cols: dict[str, list[str]] = {}
    for table in TABLES:
        cur = con.execute(f"SELECT * FROM {table} LIMIT 0")
        names = [d[0] for d in cur.description]
        sql = f"SELECT * FROM {table}"
        if table == "deal_events":
            names.append("stage0")
            sql = ("SELECT *, CASE WHEN kind = 'created' THEN json_extract(data, '$.stage') END "
                   "FROM deal_events")  # fmt: skip
        cols[table] = names
        with open(out / f"{table}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            cur = con.execute(sql)
            while True:
                rows = cur.fetchmany(50_000)
                if not rows:
                    break
                w.writerows(rows)
    con.close()
    return cols


def load_postgres(csvdir: Path, cols: dict[str, list[str]], schema: str) -> None:
    import psycopg

    from salesprocess_adapters.postgres import PostgresStore

    t = time.perf_counter()
    PostgresStore(DSN, schema=schema).close()  # creates the schema and tables
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        for table in TABLES:
            names = [c for c in cols[table] if not (table == "deals" and c == "amount_minor")
                     and c != "stage0"]  # fmt: skip
            idx = [cols[table].index(c) for c in names]
            with conn.cursor() as cur, cur.copy(
                f"COPY {table} ({', '.join(names)}) FROM STDIN"
            ) as cp, open(csvdir / f"{table}.csv", newline="", encoding="utf-8") as f:
                for row in csv.reader(f):
                    cp.write_row([row[i] if row[i] != "" else None for i in idx])
        # settle the fresh tables before anything is timed: VACUUM sets the hint bits and the
        # visibility map (else the first reads rewrite every page), CHECKPOINT flushes the load
        # (else its writes compete with the engines that run next)
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
    print(f"loaded PostgreSQL schema {schema} in {time.perf_counter() - t:,.0f}s")


def pg_holds(schema: str, deals: int) -> bool:
    """Whether ``schema`` exists on the server and holds ``deals`` deals."""
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", [f'"{schema}".deals']).fetchone() == (None,):
            return False
        row = conn.execute(f'SELECT COUNT(*) FROM "{schema}".deals').fetchone()
        return row is not None and row[0] == deals


def load_duckdb(csvdir: Path, cols: dict[str, list[str]], path: Path) -> None:
    import duckdb

    t = time.perf_counter()
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""CREATE TABLE deals AS SELECT * FROM read_csv('{csvdir / "deals.csv"}',
        header = false, columns = {{{', '.join(f"'{c}': 'VARCHAR'" for c in cols['deals'])}}})""")
    con.execute("""CREATE TABLE d AS SELECT id, owner_id, status, stage, process,
        CAST(amount AS DECIMAL(18, 2)) AS amount, currency,
        CAST(created_at AS TIMESTAMPTZ) AS created_at, CAST(closed_at AS TIMESTAMPTZ) AS closed_at
        FROM deals""")
    con.execute(f"""CREATE TABLE ev AS SELECT deal_id, CAST(seq AS INTEGER) AS seq, kind,
        CAST("at" AS TIMESTAMPTZ) AS "at", from_stage, to_stage, stage0
        FROM read_csv('{csvdir / "deal_events.csv"}', header = false,
        columns = {{{', '.join(f"'{c}': 'VARCHAR'" for c in cols['deal_events'])}}})""")
    con.execute("DROP TABLE deals")
    con.close()
    print(f"loaded DuckDB {path} in {time.perf_counter() - t:,.0f}s")


# ------------------------------------------------------------------------------------------------
# Engines (each runs in a child process)
# ------------------------------------------------------------------------------------------------


def best_of(runs: int, fn: Any) -> tuple[dict[str, float], dict[str, Any]]:
    """Each query's best time over ``runs`` runs (the first warms caches), and the answers."""
    best: dict[str, float] = {}
    answers: dict[str, Any] = {}
    for _ in range(runs):
        answers = {}  # the last run's answers go first: each run's memory is its own
        times, answers = fn()
        for q, t in times.items():
            best[q] = min(t, best.get(q, float("inf")))
    return best, answers


def _ours(store: Any, engine: str) -> tuple[dict[str, float], dict[str, Any]]:
    from salesprocess.kpi import compute, funnel

    times: dict[str, float] = {}
    out: dict[str, Any] = {}
    t = time.perf_counter()
    q1 = compute(store, ["win_rate", "avg_won_deal_size"], by=["owner"], period="month",
                 engine=engine)  # fmt: skip
    times[QUERIES[0]] = time.perf_counter() - t
    t = time.perf_counter()
    (f,) = funnel(store, engine=engine)
    times[QUERIES[1]] = time.perf_counter() - t
    t = time.perf_counter()
    q3 = compute(store, ["median_cycle_days"], by=["owner"], engine=engine)
    times[QUERIES[2]] = time.perf_counter() - t
    out[QUERIES[0]] = {f"{r.key['owner']}|{r.key['period']}": [
        None if r.values["win_rate"] is None else str(r.values["win_rate"]),
        None if r.values["avg_won_deal_size"] is None else str(r.values["avg_won_deal_size"].amount),
    ] for r in q1.rows if r.values["win_rate"] is not None}  # fmt: skip
    out[QUERIES[1]] = {s.stage: [s.reached, s.lost, None if s.median_days is None else
                                 str(s.median_days)] for s in f.stages}  # fmt: skip
    out[QUERIES[1]]["bottleneck"] = f.bottleneck
    out[QUERIES[2]] = {r.key["owner"]: None if r.values["median_cycle_days"] is None else
                       str(r.values["median_cycle_days"]) for r in q3.rows}  # fmt: skip
    return times, out


def child(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    import tracemalloc

    result: dict[str, Any] = {"engine": engine}
    if engine == "python":
        from salesprocess.kpi import Dataset
        from salesprocess_adapters.sqlite import SQLiteStore

        s = SQLiteStore(args.sqlite)
        t = time.perf_counter()
        data = Dataset.from_store(s)
        result["load"] = time.perf_counter() - t
        result["times"], result["answers"] = best_of(args.runs, lambda: _ours(data, "python"))
        s.close()
    elif engine in ("sqlite", "postgres"):
        if engine == "sqlite":
            from salesprocess_adapters.sqlite import SQLiteStore

            s: Any = SQLiteStore(args.sqlite)
        else:
            from salesprocess_adapters.postgres import PostgresStore

            s = PostgresStore(DSN, schema=args.schema)
        result["times"], result["answers"] = best_of(args.runs, lambda: _ours(s, "sql"))
        # the peak before tracing: tracemalloc's own bookkeeping (a record per live block) would
        # count in the resident set
        result["peak_rss_mib"] = _vm_hwm_mib()
        # once more with the Python heap traced (not timed: tracing slows Python down)
        tracemalloc.start()
        _ours(s, "sql")
        result["python_heap_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        s.close()
    else:
        result["times"], result["answers"] = best_of(args.runs, lambda: duck(args))
    result.setdefault("peak_rss_mib", _vm_hwm_mib())
    return result


def _vm_hwm_mib() -> float:
    """Peak resident set size of this process image (``VmHWM``; unlike ``ru_maxrss`` it is not
    inherited from the parent across ``exec``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def duck(args: argparse.Namespace) -> tuple[dict[str, float], dict[str, Any]]:
    import duckdb

    from salesprocess import processes
    from salesprocess.kpi import stage_ranks

    con = duckdb.connect(args.duckdb, read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    ranks = stage_ranks(processes.load("b2b"))
    rank_values = ", ".join(f"('{k}', {v})" for k, v in ranks.items())
    last_open = max(ranks.values()) - 1
    times: dict[str, float] = {}
    out: dict[str, Any] = {}
    t = time.perf_counter()
    q1 = con.execute("""SELECT owner_id, strftime(closed_at, '%Y-%m') AS m,
            SUM(CASE WHEN status = 'won' THEN 1 ELSE 0 END) / COUNT(*) AS win_rate,
            AVG(CASE WHEN status = 'won' THEN amount END) AS avg_won
        FROM d WHERE status IN ('won', 'lost') GROUP BY ALL""").fetchall()
    times[QUERIES[0]] = time.perf_counter() - t
    t = time.perf_counter()
    funnel_sql = f"""
        WITH rk(stage, rnk) AS (VALUES {rank_values}),
        se AS (SELECT deal_id, seq, kind, "at", COALESCE(to_stage, stage0) AS stage,
                      LAG(COALESCE(to_stage, stage0)) OVER (PARTITION BY deal_id ORDER BY seq) AS prev
               FROM ev WHERE kind IN ('created', 'stage_changed', 'won', 'lost', 'reopened',
                                      'process_migrated')),
        sy AS (SELECT deal_id, stage, "at" AS entered,
                      LEAD("at") OVER (PARTITION BY deal_id ORDER BY seq) AS lft
               FROM se WHERE NOT (kind = 'process_migrated' AND stage = prev)),
        ry AS (SELECT sy.*, rk.rnk FROM sy JOIN rk USING (stage)),
        fu AS (SELECT deal_id, MAX(rnk) AS mx FROM ry GROUP BY deal_id)"""
    furthest = con.execute(funnel_sql + """
        SELECT mx, status, COUNT(*) FROM fu JOIN d ON d.id = fu.deal_id GROUP BY ALL""").fetchall()
    entered = con.execute(funnel_sql + """
        SELECT rnk, COUNT(DISTINCT deal_id) FROM ry GROUP BY rnk""").fetchall()
    adjacent = con.execute(f"""WITH rk(stage, rnk) AS (VALUES {rank_values})
        SELECT a.rnk, COUNT(DISTINCT e.deal_id) FROM ev e JOIN rk a ON a.stage = e.from_stage
        JOIN rk b ON b.stage = e.to_stage WHERE e.kind IN ('stage_changed', 'won', 'lost',
        'reopened') AND b.rnk = a.rnk + 1 AND a.rnk <= {last_open} GROUP BY a.rnk""").fetchall()
    durations = con.execute(funnel_sql + f"""
        SELECT rnk, quantile_cont(epoch_us(lft) - epoch_us(entered), [0.5, 0.75, 0.9])
        FROM ry WHERE lft IS NOT NULL AND rnk <= {last_open} GROUP BY rnk""").fetchall()
    times[QUERIES[1]] = time.perf_counter() - t
    t = time.perf_counter()
    q3 = con.execute("""SELECT owner_id, quantile_cont(epoch_us(closed_at) - epoch_us(created_at), 0.5)
        FROM d WHERE status = 'won' GROUP BY owner_id""").fetchall()
    times[QUERIES[2]] = time.perf_counter() - t
    con.close()
    out[QUERIES[0]] = {f"{o}|{m}": [float(w), None if a is None else float(a)] for o, m, w, a in q1}
    reached: dict[int, int] = {}
    lost: dict[int, int] = {}
    for mx, st, n in furthest:
        for r in range(int(mx) + 1):
            reached[r] = reached.get(r, 0) + n
        if st == "lost":
            lost[int(mx)] = lost.get(int(mx), 0) + n
    med = {int(r): q[0] / 86_400_000_000 for r, q in durations}
    names = {v: k for k, v in ranks.items()}
    out[QUERIES[1]] = {names[r]: [reached.get(r, 0), lost.get(r, 0), med.get(r)]
                       for r in sorted(reached)}  # fmt: skip
    out[QUERIES[1]]["entered"] = dict(entered)
    out[QUERIES[1]]["adjacent"] = dict(adjacent)
    out[QUERIES[2]] = {o: v / 86_400_000_000 for o, v in q3}
    return times, out


def run_child(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", engine, "--sqlite", str(args.sqlite),
           "--duckdb", str(args.duckdb), "--schema", args.schema or "", "--runs", str(args.runs)]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def check(ref: dict[str, Any], got: dict[str, Any], engine: str) -> str:
    """How ``got`` agrees with the SQLite pushdown's answers."""
    exact = engine != "duckdb"
    bad = []
    for q in QUERIES:
        a, b = ref[q], got[q]
        for k, v in a.items():
            if k in ("bottleneck",) and not exact:
                continue
            w = b.get(k)
            if exact:
                if v != w:
                    bad.append(f"{q}[{k}]: {v} vs {w}")
            else:
                for x, y in zip(v if isinstance(v, list) else [v], w if isinstance(w, list) else [w],
                                strict=False):  # fmt: skip
                    if x is None or y is None:
                        if (x is None) != (y is None):
                            bad.append(f"{q}[{k}]: {v} vs {w}")
                    elif isinstance(x, int):
                        if x != y:
                            bad.append(f"{q}[{k}]: {v} vs {w}")
                    elif abs(float(Decimal(str(x))) - float(y)) > 0.005 + 1e-9 * abs(float(y)):
                        bad.append(f"{q}[{k}]: {v} vs {w}")
    return "same answers" if not bad else f"{len(bad)} differences, e.g. {bad[:3]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deals", type=int, default=1_000_000, help="deals to generate (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where to keep the generated data (default: a new temporary directory)")
    ap.add_argument("--reuse", action="store_true", help="reuse data already in --workdir")
    ap.add_argument("--runs", type=int, default=2, help="runs per engine; the best counts (default 2)")
    ap.add_argument("--skip", action="append", default=[], choices=("python", "sqlite", "postgres", "duckdb"))
    ap.add_argument("--pg-schema", help="load PostgreSQL into this schema and keep it; a schema that "
                    "already holds the deals is reused as it is (drop it yourself when done)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--sqlite", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--duckdb", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--schema", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args)))
        return 0

    header(f"KPI engines on {args.deals:,} generated deals")
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other work on the machine skews times)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sp-bench-kpi-"))
    work.mkdir(parents=True, exist_ok=True)
    args.sqlite = work / f"company-{args.deals}-{args.seed}.sqlite"
    args.duckdb = work / f"company-{args.deals}-{args.seed}.duckdb"
    csvdir = work / f"csv-{args.deals}-{args.seed}"
    if not (args.reuse and args.sqlite.exists()):
        for p in (args.sqlite, args.duckdb):
            if p.exists():
                p.unlink()
        build(args.sqlite, args.deals, args.seed)
    from salesprocess_adapters.sqlite import SQLiteStore

    s = SQLiteStore(args.sqlite)
    n_deals = s.query("SELECT COUNT(*) FROM deals")[0][0]
    n_events = s.query("SELECT COUNT(*) FROM deal_events")[0][0]
    s.close()
    print(f"data: {n_deals:,} deals, {n_events:,} events in {args.sqlite}")
    pg_ready = "postgres" not in args.skip and args.pg_schema is not None and pg_holds(args.pg_schema, n_deals)
    need_csv = (("duckdb" not in args.skip and not args.duckdb.exists())
                or ("postgres" not in args.skip and not pg_ready))  # fmt: skip
    cols: dict[str, list[str]] = {}
    if need_csv:
        csvdir.mkdir(exist_ok=True)
        t = time.perf_counter()
        cols = export_csv(args.sqlite, csvdir)
        print(f"exported CSV in {time.perf_counter() - t:,.0f}s")
    if "duckdb" not in args.skip and not args.duckdb.exists():
        load_duckdb(csvdir, cols, args.duckdb)
    args.schema = None
    if "postgres" not in args.skip:
        args.schema = args.pg_schema or f"sp_bench_kpi_{uuid.uuid4().hex[:8]}"
        if pg_ready:
            print(f"reusing PostgreSQL schema {args.schema}")
        else:
            load_postgres(csvdir, cols, args.schema)
    results: dict[str, dict[str, Any]] = {}
    try:
        for engine in ("duckdb", "sqlite", "postgres", "python"):
            if engine in args.skip:
                continue
            print(f"running {engine}...", file=sys.stderr, flush=True)
            results[engine] = run_child(engine, args)
    finally:
        if args.schema and not args.pg_schema:
            import psycopg

            with psycopg.connect(DSN, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE')
    ref = results.get("duckdb")
    print()
    print(f"{'engine':<9} " + " ".join(f"{q:>27}" for q in QUERIES) + "   total   ×DuckDB  target  "
          "peak RSS  Python heap")  # fmt: skip
    for engine, r in results.items():
        tt = r["times"]
        total = sum(tt.values())
        ratio = total / sum(ref["times"].values()) if ref else float("nan")
        cells = []
        for q in QUERIES:
            x = f"{tt[q]:8.2f}s"
            if ref:
                x += f" ({tt[q] / ref['times'][q]:6.1f}×)"
            cells.append(f"{x:>27}")
        target = TARGETS.get(engine)
        heap = r.get("python_heap_peak_mib")
        print(f"{engine:<9} " + " ".join(cells) + f" {total:7.2f}s {ratio:7.1f}× "
              f"{(f'≤{target}×' if target else ''):>7} {r['peak_rss_mib']:7.0f} MiB"
              f"{'' if heap is None else f'  {heap:7.1f} MiB'}")  # fmt: skip
        if engine == "python":
            print(f"{'':<9} plus loading the data into Python (Dataset.from_store): {r['load']:.1f}s")
    base = results.get("sqlite")
    if base:
        print()
        for engine, r in results.items():
            if engine != "sqlite":
                print(f"{engine} vs sqlite pushdown: {check(base['answers'], r['answers'], engine)}")
    print(f"\ndata kept in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
