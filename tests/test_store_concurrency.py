"""Stores under concurrent writers, crashes and schema changes: real OS processes on real SQLite
files, real PostgreSQL connections."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from salesprocess.errors import ConflictError, SchemaError
from salesprocess.model import Activity, ActivityKind, Deal
from salesprocess.money import Money
from salesprocess_adapters.sqlite import SCHEMA_VERSION, SQLiteStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SPAWN = mp.get_context("spawn")


def _deal(i: int, **kw: Any) -> Deal:
    return Deal.create(
        f"D{i:06d}", process="b2b", stage="lead", at=T0 + timedelta(seconds=i), actor="t",
        name=f"客户 {i}", amount=Money(f"{i}.50", "CNY"), **kw,
    )  # fmt: skip


def _consistency(path: Path) -> dict[str, int]:
    """Facts about a SQLite store file read with plain SQL, independent of the store code."""
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        state_without_events = con.execute(
            "SELECT count(*) FROM deals d WHERE NOT EXISTS (SELECT 1 FROM deal_events e WHERE e.deal_id = d.id)"
        ).fetchone()[0]
        events_without_state = con.execute(
            "SELECT count(*) FROM deal_events e WHERE NOT EXISTS (SELECT 1 FROM deals d WHERE d.id = e.deal_id)"
        ).fetchone()[0]
        version_mismatch = con.execute(
            "SELECT count(*) FROM deals d WHERE d.version != "
            "(SELECT count(*) FROM deal_events e WHERE e.deal_id = d.id) OR d.version != "
            "(SELECT max(seq) FROM deal_events e WHERE e.deal_id = d.id)"
        ).fetchone()[0]
        return {
            "deals": con.execute("SELECT count(*) FROM deals").fetchone()[0],
            "events": con.execute("SELECT count(*) FROM deal_events").fetchone()[0],
            "activities": con.execute("SELECT count(*) FROM activities").fetchone()[0],
            "state_without_events": state_without_events,
            "events_without_state": events_without_state,
            "version_mismatch": version_mismatch,
        }
    finally:
        con.close()


# ------------------------------------------------------------------------------------------------
# Read-modify-write from two OS processes on one SQLite file
# ------------------------------------------------------------------------------------------------


def _rmw_writer(path: str, worker: int, writes: int, barrier: Any, out: Any) -> None:
    store = SQLiteStore(path, busy_timeout=60)
    barrier.wait()
    done = conflicts = 0
    while done < writes:
        d = store.get_deal("shared")
        changed = d.with_details(
            at=d.updated_at + timedelta(seconds=1), actor=f"w{worker}", custom={"last": f"{worker}:{done}"}
        )
        try:
            store.save_deal(changed, expected_version=d.version)
            done += 1
        except ConflictError:
            conflicts += 1
    store.close()
    out.put((worker, done, conflicts))


def _gather(out: Any, procs: list[Any], timeout: float = 120) -> list[Any]:
    """One result per process; fails at once when a process dies without reporting."""
    results: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(results) < len(procs):
        try:
            results.append(out.get(timeout=0.5))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not dead, f"a writer died with exit code {dead[0]}"
            assert time.monotonic() < deadline, "the writers did not finish in time"
    return results


def test_two_processes_read_modify_write_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    with SQLiteStore(path) as store:
        store.save_deal(Deal.create("shared", process="b2b", stage="lead", at=T0, actor="t"), expected_version=None)
    writes = 40
    barrier = SPAWN.Barrier(2)
    out = SPAWN.Queue()
    procs = [SPAWN.Process(target=_rmw_writer, args=(str(path), w, writes, barrier, out)) for w in (1, 2)]
    for p in procs:
        p.start()
    results = _gather(out, procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(r[1] for r in results) == [writes, writes]
    with SQLiteStore(path) as store:
        final = store.get_deal("shared")
    assert final.version == 1 + 2 * writes
    written = [e.payload()["changes"]["custom"]["last"] for e in final.events[1:]]
    assert sorted(written) == sorted(f"{w}:{i}" for w in (1, 2) for i in range(writes))
    for w in (1, 2):  # each writer's own updates appear in its order
        assert [x for x in written if x.startswith(f"{w}:")] == [f"{w}:{i}" for i in range(writes)]
    assert _consistency(path)["version_mismatch"] == 0


# ------------------------------------------------------------------------------------------------
# The same on PostgreSQL, two connections in two threads
# ------------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_two_postgres_connections_read_modify_write_lose_nothing(pg_store: Any) -> None:
    pg_store.save_deal(Deal.create("shared", process="b2b", stage="lead", at=T0, actor="t"), expected_version=None)
    writes = 40
    barrier = threading.Barrier(2)
    results: dict[int, tuple[int, int]] = {}
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        store = pg_store.reopen()
        try:
            barrier.wait()
            done = conflicts = 0
            while done < writes:
                d = store.get_deal("shared")
                changed = d.with_details(
                    at=d.updated_at + timedelta(seconds=1), actor=f"w{worker}", custom={"last": f"{worker}:{done}"}
                )
                try:
                    store.save_deal(changed, expected_version=d.version)
                    done += 1
                except ConflictError:
                    conflicts += 1
            results[worker] = (done, conflicts)
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert {w: r[0] for w, r in results.items()} == {1: writes, 2: writes}
    final = pg_store.get_deal("shared")
    assert final.version == 1 + 2 * writes
    written = [e.payload()["changes"]["custom"]["last"] for e in final.events[1:]]
    assert sorted(written) == sorted(f"{w}:{i}" for w in (1, 2) for i in range(writes))
    rows = pg_store.query("SELECT version, (SELECT count(*) FROM deal_events WHERE deal_id = 'shared') FROM deals")
    assert rows == [(final.version, final.version)]


@pytest.mark.postgres
def test_postgres_bulk_writers_in_parallel_do_not_interfere(pg_store: Any) -> None:
    other = pg_store.reopen()
    try:
        errors: list[BaseException] = []

        def load(store: Any, base: int) -> None:
            try:
                for k in range(3):
                    store.save_deals((_deal(base + k * 100 + i), None) for i in range(100))
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=load, args=(s, b)) for s, b in ((pg_store, 0), (other, 10_000))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        assert pg_store.count_deals() == 600
        assert other.get_deal("D010250") == _deal(10_250)
    finally:
        other.close()


# ------------------------------------------------------------------------------------------------
# Crashes: nothing half-written survives
# ------------------------------------------------------------------------------------------------


def _die_mid_batch(path: str, committed: int, batch: int) -> None:
    store = SQLiteStore(path)
    store.chunk_size = 500  # several statement chunks are written before the crash
    store.save_deals((_deal(i), None) for i in range(committed))

    def rows() -> Any:
        for i in range(batch):
            if i == batch - 10:
                os._exit(3)  # the process dies inside the open transaction
            yield _deal(committed + i), None

    store.save_deals(rows())


def _die_inside_transaction(path: str) -> None:
    store = SQLiteStore(path)
    store.put_document("progress", "p", {"n": 0})
    with store.transaction():
        store.save_deals((_deal(i), None) for i in range(1000))
        store.put(*(Activity(f"a{i}", ActivityKind.CALL, T0, deal_id=f"D{i:06d}") for i in range(300)))
        store.put_document("progress", "p", {"n": 1})
        os._exit(4)


def test_crash_mid_batch_leaves_only_committed_deals(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite"
    p = SPAWN.Process(target=_die_mid_batch, args=(str(path), 200, 1800))
    p.start()
    p.join(timeout=120)
    assert p.exitcode == 3
    facts = _consistency(path)
    assert facts["deals"] == 200
    assert facts["events"] == 200
    assert facts["state_without_events"] == facts["events_without_state"] == facts["version_mismatch"] == 0
    with SQLiteStore(path) as store:
        assert store.get_deal("D000199") == _deal(199)
        assert store.count_deals() == 200
        store.save_deal(_deal(200), expected_version=None)  # the file is writable again
        assert store.count_deals() == 201


def test_crash_inside_transaction_rolls_back_every_table(tmp_path: Path) -> None:
    path = tmp_path / "crash-tx.sqlite"
    p = SPAWN.Process(target=_die_inside_transaction, args=(str(path),))
    p.start()
    p.join(timeout=120)
    assert p.exitcode == 4
    facts = _consistency(path)
    assert (facts["deals"], facts["events"], facts["activities"]) == (0, 0, 0)
    with SQLiteStore(path) as store:
        assert store.get_document("progress", "p") == {"n": 0}


def _commit_forever(path: str) -> None:
    store = SQLiteStore(path)
    k = 0
    while True:
        with store.transaction():
            store.save_deals((_deal(k * 100 + i), None) for i in range(100))
            store.put(*(Activity(f"a{k * 100 + i}", ActivityKind.EMAIL, T0) for i in range(100)))
            k += 1
            store.put_document("progress", "p", {"batches": k})


def test_sigkill_at_any_moment_keeps_tables_in_step(tmp_path: Path) -> None:
    path = tmp_path / "killed.sqlite"
    SQLiteStore(path).close()
    p = SPAWN.Process(target=_commit_forever, args=(str(path),))
    p.start()
    try:
        with SQLiteStore(path) as watcher:
            deadline = time.monotonic() + 60
            while (watcher.get_document("progress", "p") or {}).get("batches", 0) < 3:
                assert time.monotonic() < deadline, "the writer made no progress"
                time.sleep(0.05)
        time.sleep(0.037)  # land somewhere inside a later transaction
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(timeout=30)
    assert p.exitcode == -signal.SIGKILL
    facts = _consistency(path)
    with SQLiteStore(path) as store:
        batches = (store.get_document("progress", "p") or {})["batches"]
    assert batches >= 3
    assert facts["deals"] == facts["events"] == facts["activities"] == 100 * batches
    assert facts["state_without_events"] == facts["events_without_state"] == facts["version_mismatch"] == 0


# ------------------------------------------------------------------------------------------------
# Schema versions
# ------------------------------------------------------------------------------------------------


def _columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in con.execute(f"PRAGMA table_info({table})")]


def test_old_file_is_migrated_on_open(tmp_path: Path) -> None:
    # data as the current code writes it ...
    new_path, old_path = tmp_path / "new.sqlite", tmp_path / "old.sqlite"
    amounts = {"jpy": Money("1234", "JPY"), "usd": Money("12.34", "USD"), "kwd": Money("1.5", "KWD"),
               "odd": Money("0.001", "USD"), "none": None}  # fmt: skip
    deals = [Deal.create(k, process="b2b", stage="lead", at=T0, actor="t", amount=m) for k, m in amounts.items()]
    with SQLiteStore(new_path) as store:
        store.save_deals((d, None) for d in deals)
        store.put(Activity("a1", ActivityKind.VISIT, T0, deal_id="jpy"))
    # ... copied into a file with the first schema version, as older code would have left it
    SQLiteStore(old_path, _schema_version=1).close()
    con = sqlite3.connect(old_path)
    assert con.execute("SELECT value FROM schema_meta").fetchone() == ("1",)
    assert "amount_minor" not in _columns(con, "deals")
    con.execute("ATTACH DATABASE ? AS n", (str(new_path),))
    for table in ("deals", "deal_events", "deal_external_ids", "activities"):
        cols = ", ".join(_columns(con, table))
        con.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM n.{table}")
    con.commit()
    con.close()

    with SQLiteStore(old_path) as store:
        assert store.schema_version == SCHEMA_VERSION == 2
        assert [store.get_deal(d.id) for d in deals] == deals
        minor = dict(store.query("SELECT id, amount_minor FROM deals"))
        assert store.get(Activity, "a1").deal_id == "jpy"
    assert minor == {"jpy": 1234, "usd": 1234, "kwd": 1500, "odd": None, "none": None}
    con = sqlite3.connect(old_path)
    assert con.execute("SELECT value FROM schema_meta").fetchone() == (str(SCHEMA_VERSION),)
    assert {"deals_close_date", "deals_closed_at"} <= {
        r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    con.close()


def test_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    with SQLiteStore(path) as store:
        store.save_deal(_deal(1), expected_version=None)
    con = sqlite3.connect(path)
    con.execute("UPDATE schema_meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(SchemaError) as ei:
        SQLiteStore(path)
    assert "99" in str(ei.value)
    assert str(path) in str(ei.value)
    con = sqlite3.connect(path)
    assert con.execute("SELECT value FROM schema_meta").fetchone() == ("99",)
    assert con.execute("SELECT count(*) FROM deals").fetchone() == (1,)
    con.close()


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other-app.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE deals (id INTEGER PRIMARY KEY, title TEXT)")
    con.commit()
    con.close()
    with pytest.raises(SchemaError, match="not a salesprocess store"):
        SQLiteStore(other)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database at all, just some bytes" * 100)
    with pytest.raises(SchemaError, match="not a SQLite database"):
        SQLiteStore(garbage)


def _open_and_save(path: str, i: int, barrier: Any) -> None:
    barrier.wait()
    with SQLiteStore(path) as store:
        store.save_deal(_deal(i), expected_version=None)


def test_concurrent_first_opens_create_the_schema_once(tmp_path: Path) -> None:
    path = tmp_path / "race.sqlite"
    barrier = SPAWN.Barrier(3)
    procs = [SPAWN.Process(target=_open_and_save, args=(str(path), i, barrier)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with SQLiteStore(path) as store:
        assert store.count_deals() == 3
        assert store.schema_version == SCHEMA_VERSION


def _first_open(path: str, barrier: Any) -> None:
    barrier.wait()
    with SQLiteStore(path) as store:
        store.count_deals()


def test_many_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    # switching a new file to WAL can be refused at once ("database is locked") while another
    # process holds it, without SQLite waiting in its busy handler; the store must retry
    failures = []
    for round_ in range(8):
        path = str(tmp_path / f"crowd-{round_}.sqlite")
        barrier = SPAWN.Barrier(6)
        procs = [SPAWN.Process(target=_first_open, args=(path, barrier)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        failures += [(round_, p.exitcode) for p in procs if p.exitcode != 0]
        with SQLiteStore(path) as store:
            assert store.schema_version == SCHEMA_VERSION
    assert failures == []
