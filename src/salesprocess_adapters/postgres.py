"""The PostgreSQL store (psycopg 3): real transactions, numeric amounts, jsonb, timestamptz.

Open it with ``SalesProcess().open_store("postgresql://user@host/db")`` (``postgres://`` works
too), optionally inside one schema: ``open_store(url, schema="sales")`` or
``postgresql://user@host/db?schema=sales``; the schema is created when missing. Directly:
``PostgresStore(dsn, schema=...)`` where ``dsn`` is anything libpq accepts (a URL or
``"host=... dbname=..."``).

Needs the ``postgres`` extra: ``pip install 'salesprocess[postgres]'``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from salesprocess.errors import PluginError, StoreError
from salesprocess.guards import GuardRegistry
from salesprocess.hookspecs import hookimpl
from salesprocess.money import Money
from salesprocess.store import Capability

from ._sql import Migration, SQLStore

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "PostgresStore", "split_schema"]

_C = 'COLLATE "C"'  # byte order of UTF-8 = code point order, as Python sorts strings

_V1: tuple[str, ...] = (
    f"""CREATE TABLE processes (
        key text {_C} NOT NULL,
        version integer NOT NULL,
        definition jsonb NOT NULL,
        PRIMARY KEY (key, version)
    )""",
    f"""CREATE TABLE deals (
        id text {_C} PRIMARY KEY,
        process text {_C} NOT NULL,
        process_version integer NOT NULL,
        name text NOT NULL,
        stage text {_C} NOT NULL,
        status text NOT NULL,
        amount numeric,
        currency text,
        close_date date,
        owner_id text {_C},
        account_id text {_C},
        probability numeric,
        probability_source text,
        forecast_category text,
        created_at timestamptz NOT NULL,
        stage_entered_at timestamptz NOT NULL,
        closed_at timestamptz,
        updated_at timestamptz NOT NULL,
        version integer NOT NULL,
        data jsonb NOT NULL DEFAULT '{{}}'
    )""",
    "CREATE INDEX deals_owner ON deals (owner_id, id)",
    "CREATE INDEX deals_account ON deals (account_id, id)",
    "CREATE INDEX deals_updated ON deals (updated_at)",
    "CREATE INDEX deals_close_date ON deals (close_date)",
    "CREATE INDEX deals_closed_at ON deals (closed_at)",
    f"""CREATE TABLE deal_events (
        deal_id text {_C} NOT NULL REFERENCES deals (id),
        seq integer NOT NULL,
        kind text NOT NULL,
        at timestamptz NOT NULL,
        actor text NOT NULL,
        source text NOT NULL,
        from_stage text,
        to_stage text,
        data jsonb NOT NULL,
        PRIMARY KEY (deal_id, seq)
    )""",
    "CREATE INDEX deal_events_at ON deal_events (at, deal_id, seq)",
    f"""CREATE TABLE deal_external_ids (
        source text {_C} NOT NULL,
        external_id text {_C} NOT NULL,
        deal_id text {_C} NOT NULL REFERENCES deals (id),
        PRIMARY KEY (source, external_id)
    )""",
    "CREATE INDEX deal_external_ids_deal ON deal_external_ids (deal_id)",
    f"""CREATE TABLE accounts (
        id text {_C} PRIMARY KEY, owner_id text {_C}, parent_id text {_C}, data jsonb NOT NULL
    )""",
    "CREATE INDEX accounts_owner ON accounts (owner_id)",
    f"CREATE TABLE contacts (id text {_C} PRIMARY KEY, account_id text {_C}, data jsonb NOT NULL)",
    "CREATE INDEX contacts_account ON contacts (account_id)",
    f"""CREATE TABLE teams (
        id text {_C} PRIMARY KEY, parent_id text {_C}, manager_id text {_C}, data jsonb NOT NULL
    )""",
    f"""CREATE TABLE reps (
        id text {_C} PRIMARY KEY, team_id text {_C}, manager_id text {_C}, data jsonb NOT NULL
    )""",
    "CREATE INDEX reps_team ON reps (team_id)",
    f"CREATE TABLE products (id text {_C} PRIMARY KEY, family text, data jsonb NOT NULL)",
    f"""CREATE TABLE activities (
        id text {_C} PRIMARY KEY,
        deal_id text {_C}, account_id text {_C}, contact_id text {_C}, owner_id text {_C},
        kind text NOT NULL, status text NOT NULL, at timestamptz NOT NULL,
        data jsonb NOT NULL
    )""",
    "CREATE INDEX activities_deal ON activities (deal_id)",
    "CREATE INDEX activities_account ON activities (account_id)",
    "CREATE INDEX activities_owner_at ON activities (owner_id, at)",
    "CREATE INDEX activities_at ON activities (at)",
    f"""CREATE TABLE documents (
        kind text {_C} NOT NULL, key text {_C} NOT NULL, data jsonb NOT NULL, PRIMARY KEY (kind, key)
    )""",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "processes, deals with events and external ids, entities, documents", _V1),
)
SCHEMA_VERSION: int = MIGRATIONS[-1].version
"""The schema version this code writes; older schemas are migrated forward when opened."""

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_MIGRATION_LOCK = 0x5A1E5  # advisory lock key serialising concurrent migrations


def split_schema(url: str) -> tuple[str, str | None]:
    """``(dsn, schema)``: a ``schema=`` query parameter is ours, not libpq's, so it is taken out."""
    if "://" not in url or "?" not in url:
        return url, None
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    if schema is None:
        return url, None
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as e:
        raise PluginError(
            "the PostgreSQL store needs psycopg 3, which is not installed; install the 'postgres' "
            "extra: pip install 'salesprocess[postgres]'",
            plugin="salesprocess_adapters.postgres",
        ) from e
    return psycopg


class PostgresStore(SQLStore):
    """A store in a PostgreSQL database (one schema of it when ``schema`` is given).

    :param dsn: a libpq connection string or URL.
    :param schema: work inside this schema (created if missing); default: the connection's
        ``search_path`` (normally ``public``).
    :param connect_timeout: seconds to wait for the server.
    """

    dialect = "postgresql"
    MIGRATIONS = MIGRATIONS
    _LOCK_ROWS = " FOR UPDATE"
    copy_threshold: int = 64
    """Bulk inserts of at least this many rows use ``COPY``."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        connect_timeout: int = 10,
        guards: GuardRegistry | None = None,
        app: Any = None,
        _schema_version: int | None = None,
    ) -> None:
        pg = _psycopg()
        super().__init__(guards=guards, app=app)
        dsn, url_schema = split_schema(dsn)
        if schema is None:
            schema = url_schema
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema must be a plain identifier (letters, digits, _), not {schema!r}")
        self.dsn = dsn
        self.schema = schema
        self.connect_timeout = connect_timeout
        self._app = app
        self._location = _safe(dsn) + (f" schema {schema}" if schema else "")
        self._pg = pg
        self._integrity_errors = (pg.errors.IntegrityError,)
        self._driver_errors = (pg.Error,)
        self.capabilities = frozenset(
            {Capability.PERSISTENT, Capability.MULTI_PROCESS, Capability.TRANSACTIONS, Capability.SQL_PUSHDOWN}
        )
        try:
            self._conn: psycopg.Connection[Any] = pg.connect(
                dsn, autocommit=True, connect_timeout=connect_timeout
            )
        except pg.Error as e:
            self._closed = True
            raise StoreError(f"cannot connect to PostgreSQL ({_safe(dsn)}): {e}") from e
        info = self._conn.info
        self._location = f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}" + (
            f" schema {schema}" if schema else ""
        )
        try:
            with self._guard():
                self._conn.execute("SET TIME ZONE 'UTC'")
                if schema is not None:
                    with self._conn.transaction():
                        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                        self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                    self._conn.execute(f'SET search_path TO "{schema}"')
            self._migrate(_schema_version)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({self._location!r})"

    @property
    def where(self) -> str:
        return self._location

    def reopen(self) -> PostgresStore:
        return PostgresStore(
            self.dsn, schema=self.schema, connect_timeout=self.connect_timeout, guards=self._guards,
            app=self._app,
        )

    # --- dialect hooks --------------------------------------------------------------------------
    def _q(self, sql: str) -> str:
        q = self._sqlcache.get(sql)
        if q is None:
            q = self._sqlcache[sql] = sql.replace("?", "%s")
        return q

    def _cursor_exec(self, sql: str, params: Sequence[Any]) -> Any:
        return self._conn.execute(sql, params)

    def _cursor_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with self._conn.cursor() as cur:
            cur.executemany(sql, rows)
            return int(cur.rowcount)

    def _insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) < self.copy_threshold:
            super()._insert_rows(table, columns, rows)
            return
        with self._conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)

    def _close_connection(self) -> None:
        self._conn.close()

    def _ts(self, at: datetime) -> datetime:
        return at if at.tzinfo is UTC else at.astimezone(UTC)

    def _ts_out(self, v: Any) -> datetime:
        return v  # type: ignore[no-any-return]

    def _date(self, d: date) -> date:
        return d

    def _amount(self, m: Money) -> tuple[Any, ...]:
        return (m.amount, m.currency)

    def _amount_parts(self, amount: Decimal, currency: str) -> tuple[Any, ...]:
        return (amount, currency)

    def _num(self, d: Decimal) -> Decimal:
        return d

    def _json_out(self, v: Any) -> Any:
        return v

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]

    def _table_exists(self, name: str) -> bool:
        if self.schema is None:
            r = self._one("SELECT to_regclass(?) IS NOT NULL", (name,))
        else:
            r = self._one(
                "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = ? AND tablename = ?)",
                (self.schema, name),
            )
        return bool(r and r[0])

    def _lock_schema(self) -> None:
        self._exec("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def _translate(self, e: BaseException) -> StoreError:
        msg = str(e).strip()
        if "NUL" in msg and "0x00" in msg:
            msg += " (PostgreSQL text cannot hold the character U+0000)"
        return StoreError(f"{self._location}: {type(e).__name__}: {msg}")


def _safe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    s = re.sub(r"(password\s*=\s*)(\S+)", r"\1***", dsn)
    return re.sub(r"(://[^:/@]*:)([^@]*)@", r"\1***@", s)


def _open(url: str, *, app: Any = None, **options: Any) -> PostgresStore:
    return PostgresStore(url, app=app, **options)


@hookimpl
def salesprocess_register_adapters(register: Callable[..., None]) -> None:
    register("store", "postgresql", _open, "PostgreSQL via psycopg 3: postgresql://user@host/db")
