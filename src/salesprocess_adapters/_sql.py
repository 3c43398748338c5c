"""What the SQL stores share: schema ideas, row encoding, the deal write paths, streaming reads.

A deal lives in two places that are written in one transaction: its events (``deal_events``, the
truth; reading a deal replays them) and its current state (``deals``, one row per deal with a
column per field that reports filter or group by). The dialect modules (:mod:`.sqlite`,
:mod:`.postgres`) supply the connection, the column types and a handful of value conversions.

Reads stream by keyset pagination: each page is a short query ``... WHERE key > last ORDER BY key
LIMIT n``, so memory stays flat, no cursor is held open between pages and the caller may write
to the store while iterating.
"""

from __future__ import annotations

import decimal
import json
import json.encoder
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import attrs

from salesprocess.codec import ENTITY_KIND, decode_entity, decode_event, encode_entity, encode_value
from salesprocess.errors import (
    BatchConflictError,
    ConflictError,
    DomainError,
    NotFoundError,
    SalesProcessError,
    SchemaError,
    StoreError,
)
from salesprocess.guards import GuardRegistry, builtin_registry
from salesprocess.model import (
    EVENT_TYPES,
    Deal,
    DealEvent,
    DealStatus,
    DetailsChanged,
    EventSource,
    ForecastCategory,
    FrozenMap,
    ProcessMigrated,
    StageChanged,
    replay,
)
from salesprocess.money import CURRENCY_MINOR_UNITS, Money, Rate
from salesprocess.periods import Period, require_aware
from salesprocess.process import Process
from salesprocess.store import DealFilter, make_filter

E = TypeVar("E")

Row = tuple[Any, ...]

def _make_dumps() -> Callable[[Any], str]:
    enc = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
    # the C encoder, built once (JSONEncoder.encode builds a new one on every call)
    make = getattr(json.encoder, "c_make_encoder", None)
    escape = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or escape is None:  # pragma: no cover - CPython has both
        return enc.encode
    it = make(None, enc.default, escape, None, ":", ",", False, False, True)

    def dumps(obj: Any) -> str:
        if obj.__class__ is not dict:
            return enc.encode(obj)
        return "".join(it(obj, 0))

    return dumps


_DUMPS = _make_dumps()


def dumps(obj: Any) -> str:
    """Compact JSON text (UTF-8 kept as is)."""
    return _DUMPS(obj)


# ------------------------------------------------------------------------------------------------
# Schema description shared by both dialects
# ------------------------------------------------------------------------------------------------

DEAL_COLUMNS: tuple[str, ...] = (
    "id", "process", "process_version", "name", "stage", "status",
    "amount", "currency", "close_date", "owner_id", "account_id",
    "probability", "probability_source", "forecast_category",
    "created_at", "stage_entered_at", "closed_at", "updated_at", "version", "data",
)  # fmt: skip
EVENT_COLUMNS: tuple[str, ...] = (
    "deal_id", "seq", "kind", "at", "actor", "source", "from_stage", "to_stage", "data",
)  # fmt: skip
EXT_COLUMNS: tuple[str, ...] = ("source", "external_id", "deal_id")

ENTITY_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "account": ("accounts", ("owner_id", "parent_id")),
    "contact": ("contacts", ("account_id",)),
    "team": ("teams", ("parent_id", "manager_id")),
    "rep": ("reps", ("team_id", "manager_id")),
    "product": ("products", ("family",)),
    "activity": ("activities", ("deal_id", "account_id", "contact_id", "owner_id", "kind", "status", "at")),
}
"""Entity kind → (table, indexed columns). Every table also has ``id`` and ``data`` (the whole
entity as JSON); the indexed columns copy attributes that reads filter on."""

OWN_TABLES: tuple[str, ...] = ("deals", "deal_events", "deal_external_ids", "processes", "documents")


@attrs.frozen
class Migration:
    """One forward step of a store schema: SQL statements and/or Python steps ``step(store)``."""

    version: int
    description: str
    steps: tuple[str | Callable[[Any], None], ...]


def utc_day_start(d: date) -> datetime:
    return datetime.combine(d, time(), UTC)


_EXACT = decimal.Context(
    prec=80, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN,
    traps=[decimal.Inexact, decimal.Overflow, decimal.InvalidOperation],
)  # fmt: skip


def amount_minor(amount: Decimal, currency: str | None) -> int | None:
    """``amount`` in integer minor units of ``currency`` when that is exact and fits 64 bits."""
    exp = CURRENCY_MINOR_UNITS.get(currency) if currency is not None else None
    if exp is None or amount.adjusted() > 18:
        return None
    try:
        scaled = amount.scaleb(exp, _EXACT)
    except decimal.DecimalException:
        return None
    n = int(scaled)
    return n if n == scaled and -(2**63) <= n < 2**63 else None


# ------------------------------------------------------------------------------------------------
# Event encoding (the hot path of bulk saves)
# ------------------------------------------------------------------------------------------------


_ENUM_VALUES: dict[Any, str] = {m: m.value for e in (DealStatus, EventSource, ForecastCategory) for m in e}
_enum = _ENUM_VALUES.__getitem__


_quote: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
_ENUM_TYPES = frozenset({DealStatus, EventSource, ForecastCategory})


def json_value(v: Any) -> str:
    """JSON text of :func:`salesprocess.codec.encode_value` of ``v``, written directly for the
    types deals and events carry (the hot path of bulk saves); anything else goes through the
    codec."""
    c = v.__class__
    if c is str:
        return _quote(v)
    if v is None:
        return "null"
    if c is int:
        return int.__repr__(v)
    if c is bool:
        return "true" if v else "false"
    if c is Money:
        return '{"$money":[' + _quote(str(v.amount)) + "," + _quote(v.currency) + "]}"
    if c in _ENUM_TYPES:
        return _quote(_ENUM_VALUES[v])
    if c is date:
        return '{"$date":"' + str(v.isoformat()) + '"}'
    if c is Rate:
        return '{"$rate":' + _quote(str(v.value)) + "}"
    if c is Decimal:
        return '{"$dec":' + _quote(str(v)) + "}"
    if c is FrozenMap:
        return '{"$map":{' + ",".join(_quote(k) + ":" + json_value(x) for k, x in v.to_dict().items()) + "}}"
    if c is tuple or c is list:
        return "[" + ",".join(map(json_value, v)) + "]"
    return _DUMPS(encode_value(v))


def event_json(e: DealEvent) -> str:
    """The event's fields (all but deal_id, at, actor, source) as codec-encoded JSON text.
    Fields whose value is None are left out; :func:`event_from_row` puts them back."""
    p = e.payload()
    keys = _KEYS.get(e.__class__)
    if keys is None:
        keys = _KEYS[e.__class__] = {k: _quote(k) + ":" for k in p}
    jv = json_value
    return "{" + ",".join([keys[k] + jv(v) for k, v in p.items() if v is not None]) + "}"


_KEYS: dict[type, dict[str, str]] = {}


_STAGE_EVENTS = (StageChanged, ProcessMigrated)
_BASE_FIELDS = frozenset({"deal_id", "at", "actor", "source"})
_NULLABLE: dict[str, tuple[str, ...]] = {}


def _nullable_fields(kind: str) -> tuple[str, ...]:
    """The payload fields of an event kind: one missing from stored data was None."""
    names = _NULLABLE.get(kind)
    if names is None:
        cls = EVENT_TYPES.get(kind)
        if cls is None:
            raise StoreError(f"unknown event kind {kind!r} in the store")
        fields = getattr(cls, "_fields", None)
        if not isinstance(fields, tuple):
            fields = tuple(a.name for a in attrs.fields(cls))  # type: ignore[arg-type]
        names = _NULLABLE[kind] = tuple(f for f in fields if f not in _BASE_FIELDS)
    return names


def event_from_row(deal_id: str, kind: str, at: datetime, actor: str, source: str, data: Any) -> DealEvent:
    """An event from its stored columns (``data`` as JSON text or already parsed)."""
    if isinstance(data, str):
        data = json.loads(data)
    for name in _nullable_fields(kind):
        if name not in data:
            data[name] = None
    return decode_event({"deal_id": deal_id, "kind": kind, "at": at, "actor": actor, "source": source, "data": data})


def touches_external_ids(events: Sequence[DealEvent]) -> bool:
    return any(isinstance(e, DetailsChanged) and "external_ids" in e.changes for e in events)


def _map_body(m: FrozenMap) -> str:
    return "{" + ",".join(_quote(k) + ":" + json_value(x) for k, x in m.to_dict().items()) + "}"


def deal_rest(d: Deal) -> str:
    """The deal fields without their own column, as JSON text (codec-encoded values)."""
    parts: list[str] = []
    if d.competitors:
        parts.append('"competitors":' + json_value(d.competitors))
    if d.lost_reason is not None:
        parts.append('"lost_reason":' + _quote(d.lost_reason))
    if d.contact_ids:
        parts.append('"contact_ids":' + json_value(d.contact_ids))
    if d.product_ids:
        parts.append('"product_ids":' + json_value(d.product_ids))
    if d.checklist:
        parts.append('"checklist":' + json_value(sorted(d.checklist)))
    if d.custom:
        parts.append('"custom":' + _map_body(d.custom))
    if d.external_ids:
        parts.append('"external_ids":' + _map_body(d.external_ids))
    return "{" + ",".join(parts) + "}"


class NewDealRows:
    """Encoded rows of new deals for :meth:`SQLStore.insert_new_deals`.

    A bulk loader (the CSV importer) encodes each new deal once, straight into the rows of
    ``deals``, ``deal_external_ids`` and ``deal_events``, with the store's own conversions
    (``ts``, ``date``, ``num``, ``amount``): no Deal or event object is built and nothing is
    encoded twice. The rows must be exactly those :meth:`SQLStore.save_deals` writes for the same
    deals (the importer's tests check this)."""

    __slots__ = ("amount", "date", "deals", "events", "external_ids", "num", "ts")

    def __init__(self, store: SQLStore) -> None:
        self.deals: list[Row] = []
        self.external_ids: list[Row] = []
        self.events: list[Row] = []
        self.ts: Callable[[datetime], Any] = store._ts
        """An instant as a column value."""
        self.date: Callable[[date], Any] = store._date
        self.num: Callable[[Decimal], Any] = store._num
        self.amount: Callable[[Decimal, str], tuple[Any, ...]] = store._amount_parts
        """The amount columns of a deal (``Money(amount, currency)``)."""

    def __len__(self) -> int:
        return len(self.deals)

    def clear(self) -> None:
        self.deals.clear()
        self.external_ids.clear()
        self.events.clear()


json_quote = _quote
"""A string as JSON text (UTF-8 kept as is), as :func:`json_value` writes it."""


class _FastPathFailed(Exception):
    """The bulk path met something it does not handle; the careful path takes over."""


# ------------------------------------------------------------------------------------------------
# The store
# ------------------------------------------------------------------------------------------------


class SQLStore:
    """Base of the SQL stores. Subclasses set the class attributes and the dialect hooks."""

    dialect: ClassVar[str] = "sql"
    """``sqlite`` or ``postgresql``: the SQL dialect :meth:`query` speaks."""
    capabilities: frozenset[str] = frozenset()
    MIGRATIONS: ClassVar[tuple[Migration, ...]] = ()
    AMOUNT_COLUMNS: ClassVar[tuple[str, ...]] = ("amount", "currency")
    page_size: int = 500
    """Deals (or entities, documents) per page of a streaming read."""
    chunk_size: int = 5000
    """Deals written per statement batch by :meth:`save_deals`."""

    _integrity_errors: tuple[type[BaseException], ...] = ()
    _driver_errors: tuple[type[BaseException], ...] = ()
    _BEGIN: ClassVar[str] = "BEGIN"
    _LOCK_ROWS: ClassVar[str] = ""
    """What a SELECT ends with to lock the rows it reads until the transaction ends."""
    _sole_writer: ClassVar[bool] = False
    """True when an open transaction keeps every other writer out until it ends."""

    def __init__(self, *, guards: GuardRegistry | None = None, app: Any = None) -> None:
        if guards is None:
            guards = app.guards if app is not None else builtin_registry()
        self._guards = guards
        self._lock = threading.RLock()
        self._depth = 0
        self._savepoints = 0
        self._closed = False
        self._processes: dict[tuple[str, int], Process] = {}
        self._sqlcache: dict[str, str] = {}
        self._deal_cols = DEAL_COLUMNS[:6] + self.AMOUNT_COLUMNS + DEAL_COLUMNS[8:]
        ph = ", ".join("?" * len(self._deal_cols))
        cols = ", ".join(self._deal_cols)
        self._sql_insert_deal = f"INSERT INTO deals ({cols}) VALUES ({ph}) ON CONFLICT (id) DO NOTHING"
        sets = ", ".join(f"{c} = ?" for c in self._deal_cols[1:])
        self._sql_update_deal = f"UPDATE deals SET {sets} WHERE id = ? AND version = ?"
        self._sql_insert_event = (
            f"INSERT INTO deal_events ({', '.join(EVENT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
        )

    # --- dialect hooks --------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """Where the data lives (a file path, a server and schema), for messages."""
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        """``sql`` written with ``?`` placeholders, in this dialect's paramstyle."""
        return sql

    def _cursor_exec(self, sql: str, params: Sequence[Any]) -> Any:
        raise NotImplementedError

    def _cursor_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        raise NotImplementedError

    def _insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        self._cursor_many(self._q(sql), rows)

    def _ts(self, at: datetime) -> Any:
        """An instant as a parameter."""
        raise NotImplementedError

    def _ts_out(self, v: Any) -> datetime:
        raise NotImplementedError

    def _date(self, d: date) -> Any:
        raise NotImplementedError

    def _amount(self, m: Money) -> tuple[Any, ...]:
        """The values of :attr:`AMOUNT_COLUMNS` for a deal amount."""
        raise NotImplementedError

    def _num(self, d: Decimal) -> Any:
        raise NotImplementedError

    def _amount_parts(self, amount: Decimal, currency: str) -> tuple[Any, ...]:
        """:meth:`_amount` of ``Money(amount, currency)`` for a checked amount and currency."""
        return self._amount(Money(amount, currency))

    def _json_out(self, v: Any) -> Any:
        raise NotImplementedError

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A condition ``column IN values`` with one parameter, whatever the number of values."""
        raise NotImplementedError

    def _table_exists(self, name: str) -> bool:
        raise NotImplementedError

    def _lock_schema(self) -> None:
        """Serialise schema migrations of concurrent openers (inside the migration transaction)."""

    def _close_connection(self) -> None:
        raise NotImplementedError

    def _translate(self, e: BaseException) -> StoreError:
        return StoreError(f"{self.where}: {type(e).__name__}: {e}")

    def reopen(self) -> SQLStore:
        """A new, independent handle (its own connection) on the same database."""
        raise NotImplementedError

    # --- low level ------------------------------------------------------------------------------
    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self._cursor_exec(self._q(sql), params).rowcount)

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        return self._cursor_many(self._q(sql), rows)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self._cursor_exec(self._q(sql), params).fetchall())

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        r = self._cursor_exec(self._q(sql), params).fetchone()
        return None if r is None else tuple(r)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Driver errors become :class:`StoreError` (our own errors pass through)."""
        if self._closed:
            raise StoreError(f"{self.where}: the store is closed")
        try:
            yield
        except SalesProcessError:
            raise
        except self._driver_errors as e:
            raise self._translate(e) from e

    # --- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection. Closing twice is harmless."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close_connection()

    def __enter__(self) -> SQLStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        with self._lock, self._guard():
            return self._read_schema_version() or 0

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one SQL statement of this store's :attr:`dialect` (with its own paramstyle: ``?``
        for SQLite, ``%s`` for PostgreSQL) and return the rows. Meant for reports that group in
        the database; the tables are described in the stores reference."""
        with self._lock, self._guard():
            if not self._depth:
                cur = self._cursor_exec(sql, params)
                return [tuple(r) for r in cur.fetchall()] if cur.description is not None else []
            with self._atomic():  # a failing statement must not spoil the enclosing transaction
                cur = self._cursor_exec(sql, params)
                return [tuple(r) for r in cur.fetchall()] if cur.description is not None else []

    # --- transactions ---------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them commit, or none does. Nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with self._guard():
                self._cursor_exec(self._BEGIN, ())
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._savepoints = 0
                self._rollback_quietly()
                raise
            self._depth = 0
            self._savepoints = 0
            try:
                with self._guard():
                    self._cursor_exec("COMMIT", ())
            except BaseException:
                self._rollback_quietly()
                raise

    def _rollback_quietly(self) -> None:
        """Roll back; a failure to do so (the database already did, the connection is gone)
        must not hide the error that caused the rollback."""
        try:
            self._cursor_exec("ROLLBACK", ())
        except self._driver_errors:
            pass

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """One operation: its own transaction, or a savepoint inside the caller's, so that a
        failed operation leaves nothing behind while the outer transaction carries on."""
        with self._lock:
            if not self._depth:
                with self.transaction():
                    yield
                return
            self._savepoints += 1
            name = f"sp_{self._savepoints}"
            self._cursor_exec(f"SAVEPOINT {name}", ())
            try:
                yield
            except BaseException:
                self._cursor_exec(f"ROLLBACK TO SAVEPOINT {name}", ())
                self._cursor_exec(f"RELEASE SAVEPOINT {name}", ())
                raise
            self._cursor_exec(f"RELEASE SAVEPOINT {name}", ())

    # --- schema ---------------------------------------------------------------------------------
    def _read_schema_version(self) -> int | None:
        if not self._table_exists("schema_meta"):
            return None
        r = self._one("SELECT value FROM schema_meta WHERE key = 'schema_version'")
        return None if r is None else int(r[0])

    def _migrate(self, target: int | None = None) -> None:
        """Bring the schema to ``target`` (default: the newest) by forward migrations."""
        latest = self.MIGRATIONS[-1].version
        target = latest if target is None else target
        with self._lock, self._guard():
            if self._read_schema_version() == target:
                return
            with self.transaction():
                self._lock_schema()
                current = self._read_schema_version()
                if current is None:
                    found = [t for t in OWN_TABLES if self._table_exists(t)]
                    if found:
                        raise SchemaError(
                            f"{self.where}: has table(s) {', '.join(found)} but no schema_meta "
                            "table; it is not a salesprocess store (or it is damaged)"
                        )
                    self._exec(
                        "CREATE TABLE schema_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                    )
                    self._exec(
                        "INSERT INTO schema_meta (key, value) VALUES ('schema_version', '0')"
                    )
                    current = 0
                if current > latest:
                    raise SchemaError(
                        f"{self.where}: schema version {current} is newer than this version of "
                        f"salesprocess supports ({latest}); upgrade salesprocess to open it"
                    )
                for m in self.MIGRATIONS:
                    if current < m.version <= target:
                        for step in m.steps:
                            if isinstance(step, str):
                                self._exec(step)
                            else:
                                step(self)
                        current = m.version
                self._exec(
                    "UPDATE schema_meta SET value = ? WHERE key = 'schema_version'", (str(current),)
                )

    # --- processes ------------------------------------------------------------------------------
    def save_process(self, process: Process) -> None:
        """Store a process version; the same (key, version) with other content raises
        :class:`ConflictError`, identical content is a no-op."""
        text = _DUMPS(process.to_dict())
        with self._guard(), self._atomic():
            n = self._exec(
                "INSERT INTO processes (key, version, definition) VALUES (?, ?, ?) "
                "ON CONFLICT (key, version) DO NOTHING",
                (process.key, process.version, text),
            )
            if n == 0:
                r = self._one(
                    "SELECT definition FROM processes WHERE key = ? AND version = ?",
                    (process.key, process.version),
                )
                assert r is not None
                if self._json_out(r[0]) != json.loads(text):
                    raise ConflictError(
                        "process", f"{process.key} v{process.version}", process.version, process.version
                    )

    def get_process(self, key: str, version: int | None = None) -> Process:
        """A process version (the latest when ``version`` is None)."""
        with self._lock, self._guard():
            if version is None:
                r = self._one("SELECT max(version) FROM processes WHERE key = ?", (key,))
                if r is None or r[0] is None:
                    raise NotFoundError("process", key)
                version = int(r[0])
            p = self._processes.get((key, version))
            if p is not None:
                return p
            r = self._one(
                "SELECT definition FROM processes WHERE key = ? AND version = ?", (key, version)
            )
            if r is None:
                raise NotFoundError("process", f"{key} v{version}")
            p = Process.from_dict(
                self._json_out(r[0]), guards=self._guards, source=f"{self.where} process {key} v{version}"
            )
            self._processes[(key, version)] = p
            return p

    def process_versions(self, key: str) -> list[int]:
        with self._lock, self._guard():
            rows = self._rows("SELECT version FROM processes WHERE key = ? ORDER BY version", (key,))
        return [int(r[0]) for r in rows]

    def process_keys(self) -> list[str]:
        with self._lock, self._guard():
            rows = self._rows("SELECT DISTINCT key FROM processes ORDER BY key")
        return [r[0] for r in rows]

    # --- deal rows ------------------------------------------------------------------------------
    def _deal_row(self, d: Deal, memo: dict[int, Any] | None = None) -> Row:
        """The state row of a deal; ``memo`` caches instant conversions by object (a deal's state
        instants are the very objects its events carry)."""
        if memo is None:
            memo = {}
        ts = self._ts

        def t(at: datetime) -> Any:
            v = memo.get(id(at))
            if v is None:
                v = memo[id(at)] = ts(at)
            return v

        amt = d.amount
        amount = (None,) * len(self.AMOUNT_COLUMNS) if amt is None else self._amount(amt)
        return (
            d.id, d.process, d.process_version, d.name, d.stage, _enum(d.status),
            *amount,
            None if d.close_date is None else self._date(d.close_date),
            d.owner_id, d.account_id,
            None if d.probability is None else self._num(d.probability.value),
            None if d.probability_source is None else _enum(d.probability_source),
            None if d.forecast_category is None else _enum(d.forecast_category),
            t(d.created_at), t(d.stage_entered_at),
            None if d.closed_at is None else t(d.closed_at),
            t(d.events[-1].at), len(d.events), deal_rest(d),
        )  # fmt: skip

    def _event_rows(
        self, deal_id: str, events: Sequence[DealEvent], start: int, out: list[Row],
        memo: dict[int, Any] | None = None,
    ) -> None:
        ts = self._ts
        seq = start
        stage_events = _STAGE_EVENTS
        for e in events:
            seq += 1
            at = e.at
            if memo is None:
                v = ts(at)
            else:
                v = memo.get(id(at))
                if v is None:
                    v = memo[id(at)] = ts(at)
            if isinstance(e, stage_events):
                out.append((deal_id, seq, e.kind, v, e.actor, _enum(e.source), e.from_stage, e.to_stage, event_json(e)))
            else:
                out.append((deal_id, seq, e.kind, v, e.actor, _enum(e.source), None, None, event_json(e)))

    def _decode_events(self, rows: Iterable[Row]) -> list[DealEvent]:
        out = self._ts_out
        return [event_from_row(r[0], r[2], out(r[3]), r[4], r[5], r[8]) for r in rows]

    def _conflict(self, deal_id: str, expected: int | None) -> ConflictError:
        r = self._one("SELECT version FROM deals WHERE id = ?", (deal_id,))
        return ConflictError("deal", deal_id, expected or 0, None if r is None else int(r[0]))

    # --- deal writes ----------------------------------------------------------------------------
    def save_deal(self, deal: Deal, *, expected_version: int | None) -> Deal:
        """Append the deal's events past ``expected_version`` and store its state atomically."""
        with self._guard():
            self._save_one(deal, expected_version)
        return deal

    def _save_one(self, deal: Deal, expected: int | None) -> None:
        start = expected or 0
        if deal.version < start:
            c = self._conflict(deal.id, expected)
            if c.actual != expected:
                raise c
            raise DomainError(f"deal {deal.id} has {deal.version} events, fewer than expected version {start}")
        new_events = deal.events[start:]
        memo: dict[int, Any] = {}
        events: list[Row] = []
        self._event_rows(deal.id, new_events, start, events, memo)
        row = self._deal_row(deal, memo)
        with self._atomic():
            if expected is None:
                n = self._exec(self._sql_insert_deal, row)
            else:
                n = self._exec(self._sql_update_deal, (*row[1:], deal.id, expected))
            if n != 1:
                raise self._conflict(deal.id, expected)
            if expected is None or touches_external_ids(new_events):
                if expected is not None:
                    self._exec("DELETE FROM deal_external_ids WHERE deal_id = ?", (deal.id,))
                for src, ext in deal.external_ids.items():
                    n = self._exec(
                        "INSERT INTO deal_external_ids (source, external_id, deal_id) VALUES (?, ?, ?) "
                        "ON CONFLICT (source, external_id) DO NOTHING",
                        (src, str(ext), deal.id),
                    )
                    if n != 1:
                        raise ConflictError("deal external id", f"{src}:{ext}", 0, None)
            self._many(self._sql_insert_event, events)

    def save_deals(self, items: Iterable[tuple[Deal, int | None]], *, isolated: bool = True) -> int:
        """Save many deals in one transaction (all or nothing); returns how many were written.

        Every conflict of the batch is reported: one as :class:`ConflictError`, several as
        :class:`BatchConflictError`.

        Inside the caller's transaction the call is a savepoint, so that a conflict leaves the
        transaction as it was. ``isolated=False`` is for a caller that abandons its transaction
        on any error (an import): the batch is checked first (ids free, versions as expected, the
        rows locked where the database allows it) and, when it passes, written without a
        savepoint. PostgreSQL gives every savepoint that writes a subtransaction, and a
        transaction with more than 64 of them slows down (foreign-key checks read
        ``pg_subtrans``). A batch that does not pass goes the isolated way and reports the same
        conflicts.
        """
        if not isolated and self._depth:
            batch = items if isinstance(items, list) else list(items)
            with self._lock, self._guard():
                if self._bare_checks(batch):
                    for i in range(0, len(batch), self.chunk_size):
                        self._save_fast(batch[i : i + self.chunk_size])
                    return len(batch)
            items = batch
        total = 0
        conflicts: list[ConflictError] = []
        with self._guard(), self._atomic():
            chunk: list[tuple[Deal, int | None]] = []
            it = iter(items)
            while True:
                chunk.clear()
                for pair in it:
                    chunk.append(pair)
                    if len(chunk) >= self.chunk_size:
                        break
                if not chunk:
                    break
                if not conflicts:
                    retry: tuple[type[BaseException], ...] = (_FastPathFailed, *self._integrity_errors)
                    try:
                        with self._atomic():
                            self._save_fast(chunk)
                        total += len(chunk)
                        continue
                    except retry:
                        pass
                for deal, expected in chunk:
                    try:
                        self._save_one(deal, expected)
                        total += 1
                    except ConflictError as e:
                        conflicts.append(e)
            if len(conflicts) == 1:
                raise conflicts[0]
            if conflicts:
                raise BatchConflictError(conflicts)
        return total

    def _bare_checks(self, batch: Sequence[tuple[Deal, int | None]]) -> bool:
        """True when :meth:`_save_fast` cannot fail on ``batch`` (inside this transaction): no
        id twice, new ids and their external ids free, stored versions as expected (and those
        rows locked against other writers), no update that changes external ids."""
        ids: set[str] = set()
        new: list[str] = []
        upd: dict[str, int] = {}
        ext: dict[str, set[str]] = {}
        for deal, expected in batch:
            did = deal.id
            if did in ids:
                return False
            ids.add(did)
            if expected is None:
                new.append(did)
                for src, x in deal.external_ids.items():
                    taken = ext.setdefault(src, set())
                    if str(x) in taken:
                        return False
                    taken.add(str(x))
            elif deal.version < expected or touches_external_ids(deal.events[expected:]):
                return False
            else:
                upd[did] = expected
        for i in range(0, len(new), self.chunk_size):
            cond, params = self._in("id", new[i : i + self.chunk_size])
            if self._one(f"SELECT 1 FROM deals WHERE {cond} LIMIT 1", params) is not None:
                return False
        for src, xs in ext.items():
            exts = sorted(xs)
            for i in range(0, len(exts), self.chunk_size):
                cond, params = self._in("external_id", exts[i : i + self.chunk_size])
                sql = f"SELECT 1 FROM deal_external_ids WHERE source = ? AND {cond} LIMIT 1"
                if self._one(sql, [src, *params]) is not None:
                    return False
        keys = sorted(upd)
        for i in range(0, len(keys), self.chunk_size):
            part = keys[i : i + self.chunk_size]
            cond, params = self._in("id", part)
            rows = self._rows(f"SELECT id, version FROM deals WHERE {cond} ORDER BY id{self._LOCK_ROWS}", params)
            if len(rows) != len(part) or any(int(v) != upd[k] for k, v in rows):
                return False
        return True

    def _save_fast(self, chunk: Sequence[tuple[Deal, int | None]]) -> None:
        """Write a chunk with a few bulk statements; any surprise (an id twice in the chunk, a
        stale version, a taken external id) raises and the careful path redoes the chunk."""
        seen: set[str] = set()
        new_rows: list[Row] = []
        upd_rows: list[Row] = []
        ext_rows: list[Row] = []
        ext_clear: list[Row] = []
        ev_rows: list[Row] = []
        deal_row = self._deal_row
        event_rows = self._event_rows
        for deal, expected in chunk:
            did = deal.id
            if did in seen:
                raise _FastPathFailed(did)
            seen.add(did)
            memo: dict[int, Any] = {}
            if expected is None:
                event_rows(did, deal.events, 0, ev_rows, memo)
                new_rows.append(deal_row(deal, memo))
                if deal.external_ids:
                    ext_rows.extend((s, str(x), did) for s, x in deal.external_ids.items())
            else:
                if deal.version < expected:
                    raise _FastPathFailed(did)  # the careful path tells a conflict from a bad call
                new_events = deal.events[expected:]
                event_rows(did, new_events, expected, ev_rows, memo)
                upd_rows.append((*deal_row(deal, memo)[1:], did, expected))
                if touches_external_ids(new_events):
                    ext_clear.append((did,))
                    ext_rows.extend((s, str(x), did) for s, x in deal.external_ids.items())
        if new_rows:
            self._insert_rows("deals", self._deal_cols, new_rows)
        if upd_rows and self._many(self._sql_update_deal, upd_rows) != len(upd_rows):
            raise _FastPathFailed("stale version")
        if ext_clear:
            self._many("DELETE FROM deal_external_ids WHERE deal_id = ?", ext_clear)
        if ext_rows:
            self._insert_rows("deal_external_ids", EXT_COLUMNS, ext_rows)
        if ev_rows:
            self._insert_rows("deal_events", EVENT_COLUMNS, ev_rows)

    def new_deal_rows(self) -> NewDealRows:
        """An empty batch of encoded new-deal rows for :meth:`insert_new_deals`."""
        return NewDealRows(self)

    def insert_new_deals(self, rows: NewDealRows, *, known_new: bool = False) -> bool:
        """Insert a batch of new deals encoded by a bulk loader: one statement per table.

        Returns False and writes nothing when a deal id or an external id of the batch is
        already taken; the caller then saves those deals with :meth:`save_deals`, which tells
        what the conflict is. The batch is emptied when written.

        ``known_new``: the caller knows that none of these ids was stored when its transaction
        began (an import into a store that had no deals, each id once). A store whose open
        transaction excludes other writers (SQLite) then skips the look-up.

        Inside the caller's transaction no savepoint is taken (a long import would otherwise
        open one subtransaction per batch, which PostgreSQL handles badly past 64): a failure
        of the insert itself (another connection writing the same ids meanwhile) leaves the
        transaction to be rolled back by the caller, as :meth:`transaction` does on error.
        """
        if not rows.deals:
            return True
        with self._lock, self._guard():
            if not (known_new and self._depth and self._sole_writer):
                cond, params = self._in("id", [r[0] for r in rows.deals])
                if self._one(f"SELECT 1 FROM deals WHERE {cond} LIMIT 1", params) is not None:
                    return False
                by_source: dict[str, list[str]] = {}
                for src, ext, _ in rows.external_ids:
                    by_source.setdefault(src, []).append(ext)
                for src, exts in by_source.items():
                    cond, params = self._in("external_id", exts)
                    if self._one(
                        f"SELECT 1 FROM deal_external_ids WHERE source = ? AND {cond} LIMIT 1", [src, *params]
                    ) is not None:
                        return False
            if self._depth:
                self._write_new_deals(rows)
            else:
                with self.transaction():
                    self._write_new_deals(rows)
        rows.clear()
        return True

    def _write_new_deals(self, rows: NewDealRows) -> None:
        self._insert_rows("deals", self._deal_cols, rows.deals)
        if rows.external_ids:
            self._insert_rows("deal_external_ids", EXT_COLUMNS, rows.external_ids)
        self._insert_rows("deal_events", EVENT_COLUMNS, rows.events)

    # --- deal reads -----------------------------------------------------------------------------
    def get_deal(self, deal_id: str) -> Deal:
        return replay(self.deal_events(deal_id))

    def deal_events(self, deal_id: str) -> tuple[DealEvent, ...]:
        with self._lock, self._guard():
            rows = self._rows(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM deal_events WHERE deal_id = ? ORDER BY seq",
                (deal_id,),
            )
        if not rows:
            raise NotFoundError("deal", deal_id)
        return tuple(self._decode_events(rows))

    def find_deal(self, source: str, external_id: str) -> Deal | None:
        """The deal whose ``external_ids[source] == external_id``."""
        with self._lock, self._guard():
            r = self._one(
                "SELECT deal_id FROM deal_external_ids WHERE source = ? AND external_id = ?",
                (source, str(external_id)),
            )
            return None if r is None else self.get_deal(r[0])

    def _filter_sql(self, f: DealFilter) -> tuple[str, list[Any]]:
        conds: list[str] = []
        params: list[Any] = []

        def eq(column: str, value: Any) -> None:
            conds.append(f"d.{column} = ?")
            params.append(value)

        if f.ids is not None:
            c, p = self._in("d.id", list(f.ids))
            conds.append(c)
            params.extend(p)
        if f.owner_id is not None:
            eq("owner_id", f.owner_id)
        if f.team_id is not None:
            conds.append("d.owner_id IN (SELECT r.id FROM reps r WHERE r.team_id = ?)")
            params.append(f.team_id)
        if f.stage is not None:
            eq("stage", f.stage)
        if f.status is not None:
            eq("status", DealStatus(f.status).value)
        if f.process is not None:
            eq("process", f.process)
        if f.account_id is not None:
            eq("account_id", f.account_id)
        if f.updated_since is not None:
            conds.append("d.updated_at >= ?")
            params.append(self._ts(require_aware(f.updated_since, "updated_since")))
        for column, period in (("created_at", f.created_in), ("closed_at", f.closed_in)):
            if period is not None:
                if not isinstance(period, Period):
                    raise TypeError(f"{column[:-3]}_in: expected a Period, got {type(period).__name__}")
                conds.append(f"d.{column} >= ? AND d.{column} < ?")
                params += [self._ts(utc_day_start(period.start)), self._ts(utc_day_start(period.end))]
        if f.external_source is not None:
            conds.append(
                "EXISTS (SELECT 1 FROM deal_external_ids x WHERE x.deal_id = d.id AND x.source = ?)"
            )
            params.append(f.external_source)
        return (" AND ".join(conds) if conds else "1 = 1"), params

    def deals(self, filter: DealFilter | None = None, **criteria: Any) -> Iterator[Deal]:
        """Matching deals, streamed page by page (ordered by id)."""
        where, params = self._filter_sql(make_filter(filter, criteria))
        return self._iter_deals(where, params)

    def _iter_deals(self, where: str, params: list[Any]) -> Iterator[Deal]:
        page = self.page_size
        cols = ", ".join(EVENT_COLUMNS)
        last: str | None = None
        while True:
            with self._lock, self._guard():
                if last is None:
                    sql, p = f"SELECT d.id FROM deals d WHERE {where} ORDER BY d.id LIMIT ?", [*params, page]
                else:
                    sql = f"SELECT d.id FROM deals d WHERE {where} AND d.id > ? ORDER BY d.id LIMIT ?"
                    p = [*params, last, page]
                ids = [r[0] for r in self._rows(sql, p)]
                if not ids:
                    return
                cond, ip = self._in("deal_id", ids)
                rows = self._rows(f"SELECT {cols} FROM deal_events WHERE {cond} ORDER BY deal_id, seq", ip)
            events = self._decode_events(rows)
            group: list[DealEvent] = []
            for e in events:
                if group and e.deal_id != group[0].deal_id:
                    yield replay(group)
                    group = []
                group.append(e)
            if group:
                yield replay(group)
            if len(ids) < page:
                return
            last = ids[-1]

    def count_deals(self, filter: DealFilter | None = None, **criteria: Any) -> int:
        where, params = self._filter_sql(make_filter(filter, criteria))
        with self._lock, self._guard():
            r = self._one(f"SELECT count(*) FROM deals d WHERE {where}", params)
        return 0 if r is None else int(r[0])

    def events(self, *, since: datetime | None = None, until: datetime | None = None) -> Iterator[DealEvent]:
        """All deal events with ``since <= at < until``, ordered by (at, deal_id, seq), streamed."""
        conds: list[str] = []
        params: list[Any] = []
        if since is not None:
            conds.append("at >= ?")
            params.append(self._ts(require_aware(since, "since")))
        if until is not None:
            conds.append("at < ?")
            params.append(self._ts(require_aware(until, "until")))
        return self._iter_events(conds, params)

    def _iter_events(self, conds: list[str], params: list[Any]) -> Iterator[DealEvent]:
        page = self.page_size * 4
        cols = ", ".join(EVENT_COLUMNS)
        last: tuple[Any, Any, Any] | None = None
        while True:
            c = list(conds)
            p = list(params)
            if last is not None:
                c.append("(at, deal_id, seq) > (?, ?, ?)")
                p.extend(last)
            where = " AND ".join(c) if c else "1 = 1"
            with self._lock, self._guard():
                rows = self._rows(
                    f"SELECT {cols} FROM deal_events WHERE {where} ORDER BY at, deal_id, seq LIMIT ?",
                    [*p, page],
                )
            if not rows:
                return
            yield from self._decode_events(rows)
            if len(rows) < page:
                return
            r = rows[-1]
            last = (r[3], r[0], r[1])

    # --- entities -------------------------------------------------------------------------------
    def _kind(self, cls: type[Any]) -> str:
        kind = ENTITY_KIND.get(cls)
        if kind is None:
            raise TypeError(f"not an entity type: {getattr(cls, '__name__', cls)!r}")
        return kind

    def _index_value(self, v: Any) -> Any:
        if isinstance(v, datetime):
            return self._ts(v)
        if isinstance(v, str):  # StrEnum values too
            return str(v)
        return v

    def put(self, *items: Any) -> None:
        """Insert or replace entities (Account, Contact, Team, Rep, Product, Activity) by id."""
        groups: dict[str, list[Row]] = {}
        for it in items:
            kind = ENTITY_KIND.get(type(it))
            if kind is None:
                raise TypeError(f"cannot store {type(it).__name__}; use save_deal for deals")
            _, cols = ENTITY_TABLES[kind]
            data = encode_entity(it)  # read back with decode_entity(data, cls)
            groups.setdefault(kind, []).append(
                (it.id, *(self._index_value(getattr(it, c)) for c in cols), _DUMPS(data))
            )
        with self._guard(), self._atomic():
            for kind, rows in groups.items():
                table, cols = ENTITY_TABLES[kind]
                allcols = ("id", *cols, "data")
                sets = ", ".join(f"{c} = excluded.{c}" for c in allcols[1:])
                self._many(
                    f"INSERT INTO {table} ({', '.join(allcols)}) VALUES ({', '.join('?' * len(allcols))}) "
                    f"ON CONFLICT (id) DO UPDATE SET {sets}",
                    rows,
                )

    def get(self, cls: type[E], id: str) -> E:
        kind = self._kind(cls)
        table, _ = ENTITY_TABLES[kind]
        with self._lock, self._guard():
            r = self._one(f"SELECT data FROM {table} WHERE id = ?", (id,))
        if r is None:
            raise NotFoundError(kind, id)
        return decode_entity(self._json_out(r[0]), cls)

    def all(self, cls: type[E], **criteria: Any) -> Iterator[E]:
        """Entities of one type, ordered by id; ``criteria`` match attributes by equality."""
        kind = self._kind(cls)
        table, indexed = ENTITY_TABLES[kind]
        names = {a.name for a in attrs.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(criteria) - names)
        if unknown:
            raise TypeError(f"{cls.__name__} has no attribute(s) {', '.join(unknown)}")
        conds: list[str] = []
        params: list[Any] = []
        for k, v in criteria.items():
            if k in indexed or k == "id":
                if v is None:
                    conds.append(f"{k} IS NULL")
                elif isinstance(v, str | datetime):
                    conds.append(f"{k} = ?")
                    params.append(self._index_value(v))
        return self._iter_entities(cls, table, conds, params, criteria)

    def _iter_entities(
        self, cls: type[E], table: str, conds: list[str], params: list[Any], criteria: Mapping[str, Any]
    ) -> Iterator[E]:
        page = self.page_size * 2
        last: str | None = None
        while True:
            c = list(conds)
            p = list(params)
            if last is not None:
                c.append("id > ?")
                p.append(last)
            where = " AND ".join(c) if c else "1 = 1"
            with self._lock, self._guard():
                rows = self._rows(f"SELECT id, data FROM {table} WHERE {where} ORDER BY id LIMIT ?", [*p, page])
            for r in rows:
                it = decode_entity(self._json_out(r[1]), cls)
                if all(getattr(it, k) == v for k, v in criteria.items()):
                    yield it
            if len(rows) < page:
                return
            last = rows[-1][0]

    def delete(self, cls: type[Any], id: str) -> None:
        kind = self._kind(cls)
        table, _ = ENTITY_TABLES[kind]
        with self._guard(), self._atomic():
            if self._exec(f"DELETE FROM {table} WHERE id = ?", (id,)) == 0:
                raise NotFoundError(kind, id)

    # --- documents ------------------------------------------------------------------------------
    def put_document(self, kind: str, key: str, data: Mapping[str, Any]) -> None:
        """Store a JSON-safe document under (kind, key), replacing any previous one."""
        try:
            text = _DUMPS(dict(data))
        except (TypeError, ValueError) as e:
            raise TypeError(f"document {kind}/{key} is not JSON-safe: {e}") from None
        with self._guard(), self._atomic():
            self._exec(
                "INSERT INTO documents (kind, key, data) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data",
                (kind, key, text),
            )

    def get_document(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._lock, self._guard():
            r = self._one("SELECT data FROM documents WHERE kind = ? AND key = ?", (kind, key))
        return None if r is None else dict(self._json_out(r[0]))

    def documents(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The documents of one kind as (key, data), ordered by key, streamed."""
        page = self.page_size * 2
        last: str | None = None
        while True:
            with self._lock, self._guard():
                if last is None:
                    rows = self._rows(
                        "SELECT key, data FROM documents WHERE kind = ? ORDER BY key LIMIT ?", (kind, page)
                    )
                else:
                    rows = self._rows(
                        "SELECT key, data FROM documents WHERE kind = ? AND key > ? ORDER BY key LIMIT ?",
                        (kind, last, page),
                    )
            for r in rows:
                yield r[0], dict(self._json_out(r[1]))
            if len(rows) < page:
                return
            last = rows[-1][0]

    def delete_document(self, kind: str, key: str) -> None:
        """Remove a document; removing a missing one is not an error."""
        with self._guard(), self._atomic():
            self._exec("DELETE FROM documents WHERE kind = ? AND key = ?", (kind, key))


__all__ = [
    "DEAL_COLUMNS", "ENTITY_TABLES", "EVENT_COLUMNS", "Migration", "NewDealRows", "SQLStore", "amount_minor",
    "json_quote", "json_value",
]
