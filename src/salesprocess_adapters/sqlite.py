"""The SQLite store: one file, WAL journal, foreign keys on, versioned schema.

Open it with ``SalesProcess().open_store("pipeline.sqlite")`` (a plain path) or
``open_store("sqlite:///relative/path.db")`` / ``"sqlite:////absolute/path.db"``, or directly with
:class:`SQLiteStore`. Several threads may share one store (calls are serialised); several processes
may open the same file (writers take the file's write lock in turn, waiting up to
``busy_timeout`` seconds).

Column types: instants are ISO 8601 text in UTC with microseconds
(``2026-03-01T09:30:00.000000+00:00``, so text order is time order and SQLite's date functions
read them), dates ``YYYY-MM-DD``, decimal amounts exact text plus ``amount_minor`` (the amount
in integer minor units when exact, for sums in SQL), JSON as text.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from salesprocess.errors import SchemaError, StoreError
from salesprocess.guards import GuardRegistry
from salesprocess.hookspecs import hookimpl
from salesprocess.money import Money
from salesprocess.store import Capability

from ._sql import Migration, SQLStore, amount_minor, dumps

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "sqlite_path"]


def _v1() -> tuple[str, ...]:
    return (
        """CREATE TABLE processes (
            key TEXT NOT NULL,
            version INTEGER NOT NULL,
            definition TEXT NOT NULL,
            PRIMARY KEY (key, version)
        ) WITHOUT ROWID""",
        """CREATE TABLE deals (
            id TEXT PRIMARY KEY,
            process TEXT NOT NULL,
            process_version INTEGER NOT NULL,
            name TEXT NOT NULL,
            stage TEXT NOT NULL,
            status TEXT NOT NULL,
            amount TEXT,
            currency TEXT,
            close_date TEXT,
            owner_id TEXT,
            account_id TEXT,
            probability TEXT,
            probability_source TEXT,
            forecast_category TEXT,
            created_at TEXT NOT NULL,
            stage_entered_at TEXT NOT NULL,
            closed_at TEXT,
            updated_at TEXT NOT NULL,
            version INTEGER NOT NULL,
            data TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX deals_owner ON deals (owner_id, id)",
        "CREATE INDEX deals_account ON deals (account_id, id)",
        "CREATE INDEX deals_updated ON deals (updated_at)",
        """CREATE TABLE deal_events (
            deal_id TEXT NOT NULL REFERENCES deals (id),
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            source TEXT NOT NULL,
            from_stage TEXT,
            to_stage TEXT,
            data TEXT NOT NULL,
            PRIMARY KEY (deal_id, seq)
        ) WITHOUT ROWID""",
        "CREATE INDEX deal_events_at ON deal_events (at, deal_id, seq)",
        """CREATE TABLE deal_external_ids (
            source TEXT NOT NULL,
            external_id TEXT NOT NULL,
            deal_id TEXT NOT NULL REFERENCES deals (id),
            PRIMARY KEY (source, external_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX deal_external_ids_deal ON deal_external_ids (deal_id)",
        """CREATE TABLE accounts (
            id TEXT PRIMARY KEY, owner_id TEXT, parent_id TEXT, data TEXT NOT NULL
        )""",
        "CREATE INDEX accounts_owner ON accounts (owner_id)",
        """CREATE TABLE contacts (id TEXT PRIMARY KEY, account_id TEXT, data TEXT NOT NULL)""",
        "CREATE INDEX contacts_account ON contacts (account_id)",
        """CREATE TABLE teams (
            id TEXT PRIMARY KEY, parent_id TEXT, manager_id TEXT, data TEXT NOT NULL
        )""",
        """CREATE TABLE reps (
            id TEXT PRIMARY KEY, team_id TEXT, manager_id TEXT, data TEXT NOT NULL
        )""",
        "CREATE INDEX reps_team ON reps (team_id)",
        """CREATE TABLE products (id TEXT PRIMARY KEY, family TEXT, data TEXT NOT NULL)""",
        """CREATE TABLE activities (
            id TEXT PRIMARY KEY,
            deal_id TEXT, account_id TEXT, contact_id TEXT, owner_id TEXT,
            kind TEXT NOT NULL, status TEXT NOT NULL, at TEXT NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX activities_deal ON activities (deal_id)",
        "CREATE INDEX activities_account ON activities (account_id)",
        "CREATE INDEX activities_owner_at ON activities (owner_id, at)",
        "CREATE INDEX activities_at ON activities (at)",
        """CREATE TABLE documents (
            kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, key)
        ) WITHOUT ROWID""",
    )


def _backfill_amount_minor(store: SQLiteStore) -> None:
    """Fill ``amount_minor`` for the deals written before the column existed."""
    last = ""
    while True:
        rows = store._rows(
            "SELECT id, amount, currency FROM deals WHERE amount IS NOT NULL AND id > ? "
            "ORDER BY id LIMIT 5000",
            (last,),
        )
        if not rows:
            return
        store._many(
            "UPDATE deals SET amount_minor = ? WHERE id = ?",
            [(amount_minor(Decimal(a), c), i) for i, a, c in rows],
        )
        last = rows[-1][0]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "processes, deals with events and external ids, entities, documents", _v1()),
    Migration(
        2,
        "reporting: amount in minor units, indexes for grouping by close date and stage",
        (
            "ALTER TABLE deals ADD COLUMN amount_minor INTEGER",
            _backfill_amount_minor,
            "CREATE INDEX deals_close_date ON deals (close_date)",
            "CREATE INDEX deals_closed_at ON deals (closed_at)",
        ),
    ),
)
SCHEMA_VERSION: int = MIGRATIONS[-1].version
"""The schema version this code writes; older files are migrated forward when opened."""


def sqlite_path(url: str | os.PathLike[str]) -> str:
    """The file path of a SQLite URL: a plain path, ``sqlite:///relative.db``,
    ``sqlite:////absolute.db`` or ``sqlite:///:memory:``."""
    s = os.fspath(url)
    for prefix in ("sqlite3://", "sqlite://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
            if s.startswith("/"):
                s = s[1:]
            break
    if not s:
        raise StoreError(f"no SQLite file path in {os.fspath(url)!r}")
    return s


class SQLiteStore(SQLStore):
    """A store in one SQLite file (``":memory:"`` for a private in-memory database).

    :param path: the file (created if missing; its directory must exist).
    :param busy_timeout: seconds to wait for another writer's lock before failing.
    :param synchronous: SQLite's ``synchronous`` setting; ``NORMAL`` (the default) keeps every
        commit atomic and the file consistent after a crash, ``FULL`` also survives power loss
        of the last commits.
    :param page_bytes: SQLite page size (bytes, a power of two from 512 to 65536) of a file created by
        this call; an existing file keeps the page size it was made with.
    """

    dialect = "sqlite"
    AMOUNT_COLUMNS = ("amount", "amount_minor", "currency")
    MIGRATIONS = MIGRATIONS
    _integrity_errors = (sqlite3.IntegrityError,)
    _driver_errors = (sqlite3.Error,)
    _BEGIN = "BEGIN IMMEDIATE"
    _sole_writer = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 30.0,
        synchronous: str = "NORMAL",
        page_bytes: int | None = None,
        guards: GuardRegistry | None = None,
        app: Any = None,
        _schema_version: int | None = None,
    ) -> None:
        super().__init__(guards=guards, app=app)
        self.path = sqlite_path(path)
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.page_bytes = self.PAGE_BYTES if page_bytes is None else page_bytes
        if not (512 <= self.page_bytes <= 65536 and self.page_bytes & (self.page_bytes - 1) == 0):
            raise ValueError(f"page_bytes must be a power of two from 512 to 65536, not {page_bytes!r}")
        self._memory = self.path == ":memory:"
        caps = {Capability.TRANSACTIONS, Capability.SQL_PUSHDOWN}
        if not self._memory:
            caps |= {Capability.PERSISTENT, Capability.MULTI_PROCESS}
        self.capabilities = frozenset(caps)
        self._app = app
        try:
            self._conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
            )
        except sqlite3.Error as e:
            self._closed = True
            raise StoreError(f"{self.path}: cannot open SQLite database: {e}") from e
        try:
            with self._guard():
                self._setup()
            self._migrate(_schema_version)
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        c = self._conn
        try:
            c.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as e:
            raise SchemaError(f"{self.path}: not a SQLite database ({e})") from e
        # takes effect on a database without tables only (before WAL fixes the file's header)
        c.execute(f"PRAGMA page_size = {self.page_bytes}")
        if not self._memory:
            mode = self._switch_to_wal()
            if mode is None or str(mode[0]).lower() != "wal":
                raise StoreError(f"{self.path}: could not switch to WAL journal (got {mode})")
        c.execute(f"PRAGMA synchronous = {self.synchronous}")
        c.execute("PRAGMA foreign_keys = ON")
        c.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        c.execute("PRAGMA temp_store = MEMORY")
        c.execute(f"PRAGMA cache_size = {self.CACHE_KIB * -1}")

    def _switch_to_wal(self) -> Any:
        """``PRAGMA journal_mode = WAL``, retried while another process holds the file.

        Switching a new file to WAL needs it to itself; when several processes open the same
        new file at once SQLite can answer "database is locked" at once, without waiting in
        the busy handler, so the switch is retried here until ``busy_timeout`` runs out.
        """
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.002
        while True:
            try:
                return self._conn.execute("PRAGMA journal_mode = WAL").fetchone()
            except sqlite3.OperationalError as e:
                text = str(e).lower()
                if ("locked" not in text and "busy" not in text) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    PAGE_BYTES = 16384
    """Page size of new files. Larger pages than SQLite's default 4096 mean fewer B-tree pages to
    split, link and checksum per row: a bulk import spends about a fifth less CPU in SQLite with
    16 KiB pages; a one-deal commit writes larger pages to the WAL."""
    CACHE_KIB = 32768
    """Page cache of the connection (KiB)."""
    BULK_SORT_CACHE_KIB = 8192
    """Page cache while :meth:`bulk_load` builds its indexes (KiB); sorting uses as much."""
    BULK_DEFERRED_INDEXES: tuple[str, ...] = (
        "deals_owner", "deals_account", "deals_updated", "deals_close_date", "deals_closed_at", "deal_events_at",
    )
    """Indexes :meth:`bulk_load` builds after the rows instead of row by row: those whose keys
    come in no particular order (the primary keys and the external-id index stay, so the lookups
    an import makes keep their index)."""

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Inside :meth:`transaction`, on a store without deals: load first, index after.

        Row-by-row upkeep of an index on owner, account or instants writes a random page of it
        per row; once the indexes outgrow the page cache (a few hundred thousand deals) that is
        most of the cost of a large import. Here those indexes are dropped and built again from
        the loaded rows on leaving (a sort, in temporary files). The drop is part of the
        transaction: an error, or leaving by an exception, rolls it back with everything else.
        Elsewhere (deals already stored, no open transaction) this does nothing.
        """
        with self._lock, self._guard():
            if not self._depth or self._one("SELECT 1 FROM deals LIMIT 1") is not None:
                yield
                return
            names = self.BULK_DEFERRED_INDEXES
            marks = ", ".join("?" * len(names))
            indexes = self._rows(
                f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN ({marks})", names
            )
            for name, _ in indexes:
                self._exec(f'DROP INDEX "{name}"')
        yield
        # the sorts spill to temporary files, with a smaller page cache: sorting holds about one
        # page cache worth of keys in memory, and peak memory stays near the load's
        with self._lock, self._guard():
            self._conn.execute("PRAGMA temp_store = FILE")
            self._conn.execute(f"PRAGMA cache_size = {self.BULK_SORT_CACHE_KIB * -1}")
            try:
                for _, sql in indexes:
                    self._exec(sql)
                    self._conn.execute("PRAGMA shrink_memory")
            finally:
                self._conn.execute("PRAGMA temp_store = MEMORY")
                self._conn.execute(f"PRAGMA cache_size = {self.CACHE_KIB * -1}")

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    @property
    def where(self) -> str:
        return self.path

    def reopen(self) -> SQLiteStore:
        if self._memory:
            raise StoreError("an in-memory SQLite database cannot be reopened")
        return SQLiteStore(
            self.path, busy_timeout=self.busy_timeout, synchronous=self.synchronous, page_bytes=self.page_bytes,
            guards=self._guards, app=self._app,
        )

    # --- dialect hooks --------------------------------------------------------------------------
    def _cursor_exec(self, sql: str, params: Sequence[Any]) -> Any:
        return self._conn.execute(sql, params)

    def _cursor_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        return int(self._conn.executemany(sql, rows).rowcount)

    def _close_connection(self) -> None:
        self._conn.close()

    def _ts(self, at: datetime) -> str:
        if at.tzinfo is not UTC:
            at = at.astimezone(UTC)
        return at.isoformat(timespec="microseconds")

    def _ts_out(self, v: Any) -> datetime:
        return datetime.fromisoformat(v)

    def _date(self, d: date) -> str:
        return d.isoformat()

    def _amount(self, m: Money) -> tuple[Any, ...]:
        return (str(m.amount), amount_minor(m.amount, m.currency), m.currency)

    def _amount_parts(self, amount: Decimal, currency: str) -> tuple[Any, ...]:
        return (str(amount), amount_minor(amount, currency), currency)

    def _num(self, d: Decimal) -> str:
        return str(d)

    def _json_out(self, v: Any) -> Any:
        return json.loads(v)

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} IN (SELECT value FROM json_each(?))", [dumps(list(values))]

    def _table_exists(self, name: str) -> bool:
        r = self._one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return r is not None

    def _translate(self, e: BaseException) -> StoreError:
        msg = str(e)
        if isinstance(e, sqlite3.OperationalError) and "locked" in msg:
            return StoreError(
                f"{self.path}: database is locked: another connection held the write lock longer "
                f"than busy_timeout={self.busy_timeout}s"
            )
        if isinstance(e, sqlite3.ProgrammingError) and "closed" in msg:
            return StoreError(f"{self.path}: the store is closed")
        return StoreError(f"{self.path}: {type(e).__name__}: {msg}")


def _open(url: str, *, app: Any = None, **options: Any) -> SQLiteStore:
    return SQLiteStore(url, app=app, **options)


@hookimpl
def salesprocess_register_adapters(register: Callable[..., None]) -> None:
    register("store", "sqlite", _open, "SQLite file (WAL): a plain path or sqlite:///path")
