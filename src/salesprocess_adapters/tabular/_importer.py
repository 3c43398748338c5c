"""Streaming import of CSV and JSON Lines files into any store.

One pass over the file, in batches, inside one store transaction: memory stays flat whatever the
file size, and either the import commits as a whole or nothing is written. Every bad row is
reported with its file, line, column and reason; ``on_error="skip"`` imports the good rows,
``on_error="fail"`` (the default) imports nothing when any row is bad.

Re-importing a file is idempotent: deals are matched by external id (``find_deal(source, id)``),
entities by id, external id or name; each row is reported as created, updated or unchanged, and a
changed deal gets the change events (stage, amount, close date, owner, details) a user's edit
would have produced, with source ``import``.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import attrs

from salesprocess.codec import decode_event, encode_event
from salesprocess.errors import DomainError, ImportDataError, NotFoundError, SalesProcessError
from salesprocess.model import (
    EMPTY,
    EVENT_TYPES,
    Account,
    Activity,
    Contact,
    Deal,
    DealCreated,
    DealEvent,
    DealLost,
    DealReopened,
    DealStatus,
    DealWon,
    EventSource,
    ForecastCategory,
    FrozenMap,
    Product,
    Rep,
    StageChanged,
    Team,
    replay,
)
from salesprocess.money import Money, Rate
from salesprocess.process import Process, StageKind
from salesprocess_adapters._sql import SQLStore

from . import _cells as cells
from ._cells import CellError
from ._exporter import columns_for
from ._lane import LANE_FIELDS, DealLane
from ._mapping import CUSTOM_KINDS, FIELDS, IMPORT_KINDS, ImportMapping

__all__ = ["ImportReport", "RowError", "import_file"]

ENTITY_CLASSES: dict[str, type] = {
    "accounts": Account,
    "contacts": Contact,
    "teams": Team,
    "reps": Rep,
    "products": Product,
    "activities": Activity,
}
_REF_CLASSES: dict[str, type] = {
    "rep": Rep, "account": Account, "product": Product, "contact": Contact, "team": Team,
}
_KIND_OF_CLASS: dict[type, str] = {v: k for k, v in _REF_CLASSES.items()}
_ID_PREFIX = {"rep": "rep", "account": "acc", "product": "prod", "contact": "ct", "team": "team", "activity": "act"}
_KIND_SINGULAR = {
    "accounts": "account", "contacts": "contact", "teams": "team", "reps": "rep", "products": "product",
    "activities": "activity",
}
# our field → entity attribute
_ATTR = {
    "owner": "owner_id", "account": "account_id", "parent": "parent_id", "manager": "manager_id",
    "team": "team_id", "deal": "deal_id", "contact": "contact_id",
}
_MONEY_FIELD = {"accounts": "credit_limit", "products": "list_price"}
_AMBIGUOUS = "\x00ambiguous"
_STATUS = {StageKind.OPEN: DealStatus.OPEN, StageKind.WON: DealStatus.WON, StageKind.LOST: DealStatus.LOST}
_I: dict[str, int] = {k: i for i, k in enumerate(Deal._fields)}
"""Position of each field in a deal record."""
_STATE_DEFAULTS = {"competitors": (), "contact_ids": (), "product_ids": (), "checklist": frozenset(),
                   "custom": EMPTY, "external_ids": EMPTY}
_STATE_TEMPLATE: list[Any] = [_STATE_DEFAULTS.get(k) for k in Deal._fields]
_MISSING: Any = object()
def save_deals(store: Any, items: list[tuple[Deal, int | None]]) -> None:
    """``store.save_deals(items)``; an SQL store is told that an error abandons the import's
    transaction anyway, so it need not take a savepoint per batch."""
    if isinstance(store, SQLStore):
        store.save_deals(items, isolated=False)
    else:
        store.save_deals(items)


_BULK_LANE = True
"""Whether deal imports may take the bulk lane (:mod:`._lane`); tests turn it off to compare."""


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------


@attrs.frozen
class RowError:
    """One problem of one row: where (file, line, source column, our field) and why."""

    file: str
    line: int
    column: str | None
    field: str | None
    code: str
    reason: str
    value: str | None = None

    def __str__(self) -> str:
        col = f" column {self.column!r}" if self.column else ""
        fld = f" ({self.field})" if self.field and self.field != self.column else ""
        sep = ":" if col or fld else ""
        where = f"{self.file}:{self.line}:" if self.line > 0 else f"{self.file}:"
        return f"{where}{col}{fld}{sep} {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class ImportReport:
    """What an import did: counts, and every bad row (up to ``max_errors`` kept in detail)."""

    kind: str
    file: str
    on_error: str
    rows: int = 0
    """Data rows read (blank lines excluded)."""
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    """Rows not imported (bad rows, and rows of an event history with a bad row)."""
    bad_rows: int = 0
    errors: list[RowError] = attrs.Factory(list)
    errors_total: int = 0
    """Problems found, including those beyond ``max_errors`` that are only counted."""
    references_created: dict[str, int] = attrs.Factory(dict)
    """Entities created because a row referred to them (kind → count)."""
    deals_created: int = 0
    """For event imports: deals that did not exist before."""
    imported: bool = False
    """True when the import committed (possibly with skipped rows)."""
    max_errors: int = 10_000

    def add(self, err: RowError) -> None:
        self.errors_total += 1
        if len(self.errors) < self.max_errors:
            self.errors.append(err)

    @property
    def ok(self) -> bool:
        """No bad row and no problem with the file."""
        return self.bad_rows == 0 and self.errors_total == 0

    @property
    def exit_code(self) -> int:
        """0: all rows good; 3: imported, bad rows skipped; 4: nothing imported because of bad rows."""
        if self.bad_rows == 0 and self.errors_total == 0:
            return 0
        return 3 if self.imported else 4

    def summary(self) -> str:
        s = (
            f"{self.file}: {self.rows:,} row(s) of {self.kind}: {self.created:,} created, "
            f"{self.updated:,} updated, {self.unchanged:,} unchanged, {self.skipped:,} skipped"
        )
        if self.references_created:
            refs = ", ".join(f"{n} {k}" for k, n in sorted(self.references_created.items()))
            s += f"; referenced and created: {refs}"
        if self.errors_total and not self.imported:
            what = f"{self.bad_rows:,} bad row(s)" if self.bad_rows else f"{self.errors_total:,} problem(s)"
            s += f"; {what}: nothing imported"
        elif self.bad_rows:
            s += f"; {self.bad_rows:,} bad row(s) skipped"
        return s

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            "on_error": self.on_error,
            "imported": self.imported,
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "bad_rows": self.bad_rows,
            "deals_created": self.deals_created,
            "references_created": dict(sorted(self.references_created.items())),
            "errors_total": self.errors_total,
            "errors": [e.to_dict() for e in self.errors],
            "exit_code": self.exit_code,
        }


# ----------------------------------------------------------------------------------------------
# Reading rows
# ----------------------------------------------------------------------------------------------


def detect_format(path: str, given: str | None) -> str:
    if given is not None:
        if given not in ("csv", "jsonl"):
            raise ValueError(f"input format must be csv or jsonl, got {given!r}")
        return given
    low = path.lower()
    if low.endswith((".jsonl", ".ndjson", ".jsonl.txt")):
        return "jsonl"
    return "csv"


class _Fatal(Exception):
    """A problem with the whole file (missing columns, unreadable CSV): nothing is imported."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(str(errors[0]))
        self.errors = errors


def _csv_source(
    f: IO[str], path: str, m: ImportMapping, kind: str
) -> tuple[ImportMapping, list[str], Iterator[tuple[int, Sequence[Any]]]]:
    reader = csv.reader(f, delimiter=m.delimiter, quotechar=m.quotechar)
    try:
        header = next(reader)
    except StopIteration:
        return m, [], iter(())
    except csv.Error as e:
        raise _Fatal([RowError(path, 1, None, None, "csv", f"unreadable CSV header: {e}")]) from None
    header = [h.strip() for h in header]
    if m.native:
        m = ImportMapping.native_for(kind, columns=header)
    cols = list(m.columns.values())
    pos = {h: i for i, h in reversed(list(enumerate(header)))}
    missing = [c for c in dict.fromkeys(cols) if c not in pos]
    if missing:
        inv = {c: f for f, c in m.columns.items()}
        raise _Fatal([
            RowError(path, 1, c, inv.get(c), "missing_column",
                     f"column {c!r} (mapped to {inv.get(c)}) is not in the header")
            for c in missing
        ])
    idx = [pos[c] for c in cols]
    width = len(header)
    if len(idx) == 1:
        i0 = idx[0]

        def pick(rec: list[str]) -> Sequence[Any]:
            return (rec[i0],)
    elif idx:
        pick = itemgetter(*idx)  # type: ignore[assignment]
    else:

        def pick(rec: list[str]) -> Sequence[Any]:
            return ()

    def rows() -> Iterator[tuple[int, Sequence[Any]]]:
        end = reader.line_num
        while True:
            try:
                rec = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise _Fatal([RowError(path, end + 1, None, None, "csv", f"unreadable CSV: {e}")]) from None
            start = end + 1
            end = reader.line_num
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            if len(rec) != width:
                yield start, _Ragged(len(rec), width)
                continue
            yield start, pick(rec)

    return m, header, rows()


class _Ragged(tuple):  # type: ignore[type-arg]
    """Marks a CSV record with the wrong number of fields."""

    def __new__(cls, got: int, want: int) -> _Ragged:
        return tuple.__new__(cls, (got, want))


def _jsonl_source(
    f: IO[str], path: str, m: ImportMapping, kind: str
) -> tuple[ImportMapping, list[str], Iterator[tuple[int, Sequence[Any]]]]:
    if m.native:
        m = ImportMapping.native_for(kind, columns=columns_for(kind))
    cols = list(m.columns.values())

    def rows() -> Iterator[tuple[int, Sequence[Any]]]:
        for n, line in enumerate(f, 1):
            s = line.strip()
            if not s:
                continue
            try:
                obj = json.loads(s, parse_float=Decimal)
            except ValueError as e:
                yield n, _BadJson(f"not a JSON object: {e}")
                continue
            if not isinstance(obj, dict):
                yield n, _BadJson(f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield n, [obj.get(c) for c in cols]

    return m, cols, rows()


class _BadJson(str):
    """Marks an unreadable JSON Lines record."""

    __slots__ = ()


# ----------------------------------------------------------------------------------------------
# Turning cells into typed fields
# ----------------------------------------------------------------------------------------------


class _Field:
    __slots__ = ("column", "default", "name", "parse", "structured", "typ", "values")

    def __init__(self, m: ImportMapping, name: str, column: str | None) -> None:
        self.name = name
        self.column = column
        self.typ = m.field_type(name)
        self.parse = m.parser(name) if self.typ != "stage" else cells.text
        vm = m.values.get(name)
        if name == "stage" and m.stages:
            vm = {**(vm or {}), **m.stages}
        self.values: Mapping[str, str] | None = vm or None
        self.default = m.defaults.get(name, _MISSING)
        self.structured = self.typ in ("list", "map", "raw") or self.typ.startswith("refs:")


class _Extractor:
    """Reads the mapped fields of one row into a dict, collecting every cell problem."""

    def __init__(self, m: ImportMapping, path: str, report: ImportReport) -> None:
        self.fields = [_Field(m, f, c) for f, c in m.columns.items()]
        self.path = path
        self.report = report
        self.nulls = m.null_values
        self.extra = {f: v for f, v in m.defaults.items() if f not in m.columns}
        self.present = frozenset(m.columns) | frozenset(m.defaults)
        """Fields the row speaks about (mapped or defaulted): only these are compared on update."""
        self.row = self._compile()

    def cell_error(self, line: int, f: _Field, code: str, reason: str, value: Any) -> RowError:
        v = value if isinstance(value, str) or value is None else json.dumps(value, default=str)[:200]
        return RowError(self.path, line, f.column, f.name, code, reason, v)

        self.row = self._compile()

    def _compile(self) -> Callable[[int, Sequence[Any]], tuple[dict[str, Any], list[RowError]]]:
        """A row reader specialised for this mapping (one straight-line function, no loop over
        fields): the import's hottest code."""
        ns: dict[str, Any] = {"CellError": CellError, "nulls": self.nulls, "ex": self, "MISSING": _MISSING}
        body = ["def row(line, raw):", "    errs = []"]
        names = [f"c{i}" for i in range(len(self.fields))]
        if names:
            body.append(f"    {', '.join(names)}{',' if len(names) == 1 else ''} = raw")
        for i, f in enumerate(self.fields):
            ns[f"F{i}"] = f
            ns[f"P{i}"] = f.parse
            ns[f"V{i}"] = f.values
            ns[f"D{i}"] = f.default
            c, v = f"c{i}", f"v{i}"
            body.append(f"    {v} = None")
            body.append(f"    if {c}.__class__ is str:")
            body.append(f"        s = {c}.strip()")
            if f.values is not None:
                body.append(f"        s = V{i}.get(s, s)")
            body.append("        if s not in nulls:")
            if f.parse is cells.text:
                body.append(f"            {v} = s")
            else:
                body.append("            try:")
                body.append(f"                {v} = P{i}(s)")
                body.append("            except CellError as e:")
                body.append(f"                errs.append(ex.cell_error(line, F{i}, e.code, e.reason, {c}))")
            body.append(f"    elif {c} is not None:")
            body.append("        try:")
            body.append(f"            {v} = ex._structured(F{i}, {c})")
            body.append("        except CellError as e:")
            body.append(f"            errs.append(ex.cell_error(line, F{i}, e.code, e.reason, {c}))")
            if f.default is not _MISSING:
                body.append(f"    if {v} is None:")
                body.append(f"        {v} = D{i}")
        items = ", ".join(f"{f.name!r}: v{i}" for i, f in enumerate(self.fields))
        body.append(f"    out = {{{items}}}")
        if self.extra:
            ns["EXTRA"] = self.extra
            body.append("    out.update(EXTRA)")
        body.append("    return out, errs")
        exec(compile("\n".join(body), f"<import row reader {self.path}>", "exec"), ns)
        fn: Callable[[int, Sequence[Any]], tuple[dict[str, Any], list[RowError]]] = ns["row"]
        return fn

    def row_slow(self, line: int, raw: Sequence[Any]) -> tuple[dict[str, Any], list[RowError]]:
        """The same as the compiled ``row``, written plainly (kept to test the compiled one)."""
        out: dict[str, Any] = {}
        errs: list[RowError] = []
        nulls = self.nulls
        for f, cell in zip(self.fields, raw, strict=True):
            v: Any = None
            if cell is None:
                pass
            elif cell.__class__ is str:
                s = cell.strip()
                if f.values is not None:
                    s = f.values.get(s, s)
                if s not in nulls:
                    try:
                        v = f.parse(s)
                    except CellError as e:
                        errs.append(self.cell_error(line, f, e.code, e.reason, cell))
            else:
                try:
                    v = self._structured(f, cell)
                except CellError as e:
                    errs.append(self.cell_error(line, f, e.code, e.reason, cell))
            if v is None and f.default is not _MISSING:
                v = f.default
            out[f.name] = v
        if self.extra:
            for k, d in self.extra.items():
                out[k] = d
        return out, errs

    def _structured(self, f: _Field, cell: Any) -> Any:
        if f.typ == "raw":
            return cell
        if isinstance(cell, list):
            if f.typ == "list" or f.typ.startswith("refs:"):
                return tuple(str(x) for x in cell)
            raise CellError("type", f"a list is not a valid {f.name}")
        if isinstance(cell, dict):
            if f.typ == "map":
                return cells.json_map_value(cell)
            raise CellError("type", f"an object is not a valid {f.name}")
        if isinstance(cell, bool):
            s = "true" if cell else "false"
        elif isinstance(cell, int | Decimal):
            s = str(cell)
        else:
            raise CellError("type", f"unexpected {type(cell).__name__} for {f.name}")
        if f.values is not None:
            s = f.values.get(s, s)
        if s in self.nulls:
            return None
        return f.parse(s)


# ----------------------------------------------------------------------------------------------
# References between records
# ----------------------------------------------------------------------------------------------

_SLUG = re.compile(r"[^\w]+|_+")


def slug(value: str) -> str:
    s = _SLUG.sub("-", value.lower()).strip("-")
    return s or "x" + value.encode("utf-8").hex()[:16]


class _Index:
    """The entities of one kind, findable by id, external id (of the import's source) and name."""

    def __init__(self, ctx: _Context, kind: str, *, load: bool = True) -> None:
        self.ctx = ctx
        self.kind = kind
        self.cls = _REF_CLASSES.get(kind) or Activity
        self.by_id: dict[str, Any] = {}
        self.by_ext: dict[str, str] = {}
        self.by_name: dict[str, str] = {}
        self.loaded = False
        self.load_all = load
        self.memo: dict[str, str] = {}
        """value → id of earlier resolutions (bounded)."""

    def load(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        if not self.load_all:
            return
        for obj in self.ctx.store.all(self.cls):
            self.remember(obj)

    def remember(self, obj: Any) -> None:
        self.by_id[obj.id] = obj
        ext = obj.external_ids.get(self.ctx.source)
        if ext is not None:
            self.by_ext[str(ext)] = obj.id
        name = getattr(obj, "name", None)
        if name:
            have = self.by_name.get(name)
            self.by_name[name] = obj.id if have is None or have == obj.id else _AMBIGUOUS

    def forget(self, obj: Any) -> None:
        """Undo :meth:`remember` for a stub made by a row that turned out bad."""
        self.by_id.pop(obj.id, None)
        for table in (self.by_ext, self.by_name, self.memo):
            for k in [k for k, v in table.items() if v == obj.id]:
                del table[k]

    def get(self, id: str) -> Any:
        self.load()
        obj = self.by_id.get(id)
        if obj is None and not self.load_all:
            try:
                obj = self.ctx.store.get(self.cls, id)
            except NotFoundError:
                return None
        return obj

    def new_id(self, basis: str) -> str:
        base = f"{_ID_PREFIX[self.kind]}-{slug(basis)}"
        i, n = base, 1
        while self.get(i) is not None:
            n += 1
            i = f"{base}-{n}"
        return i

    def resolve(self, value: str) -> str:
        """The id of the entity ``value`` names (id, external id or name); may create a stub."""
        i = self._resolve(value)
        if len(self.memo) > 100_000:
            self.memo.clear()
        self.memo[value] = i
        return i

    def _resolve(self, value: str) -> str:
        mode = self.ctx.mapping.references
        if mode == "keep":
            return value
        self.load()
        if value in self.by_id:
            return value
        i = self.by_ext.get(value)
        if i is not None:
            return i
        i = self.by_name.get(value)
        if i == _AMBIGUOUS:
            raise CellError("ambiguous", f"more than one {self.kind} is named {value!r}; refer to it by id")
        if i is not None:
            return i
        if self.kind == "activity" or self.kind not in _REF_CLASSES:
            raise CellError("reference", f"no {self.kind} {value!r}")
        if mode == "error":
            raise CellError("reference", f"no {self.kind} with id, external id or name {value!r}")
        stub = self.cls(id=self.new_id(value), name=value, external_ids={self.ctx.source: value})
        self.remember(stub)
        self.ctx.stubs.append(stub)
        rc = self.ctx.report.references_created
        rc[self.kind] = rc.get(self.kind, 0) + 1
        return str(stub.id)


class _Seen:
    """A fixed-size Bloom filter (2**27 bits = 16 MiB) of the keys seen in this import: memory
    stays flat, and a hit (possibly false: about one in 25,000 at a million keys) is confirmed
    with the store.

    A key's four bits lie in one 64-bit word chosen by its hash (a register-blocked filter): a
    look-up and the insert after it read and write one word, a handful of integer operations
    where probes spread over the whole filter cost a Python-level loop and a cache miss each."""

    __slots__ = ("a", "mask", "words")

    def __init__(self, bits: int = 1 << 27) -> None:
        self.a = bytearray(bits >> 3)
        self.words = memoryview(self.a).cast("Q")
        self.mask = (bits >> 6) - 1
        """Mask of a word number; ``bits`` is a power of two."""

    def add_new(self, key: str) -> bool:
        """Add ``key``; False when it may have been added before (its bits were all set)."""
        h = hash(key)
        bits = 1 << (h >> 22 & 63) | 1 << (h >> 28 & 63) | 1 << (h >> 34 & 63) | 1 << (h >> 40 & 63)
        w = self.words
        i = h & self.mask
        old = w[i]
        if old & bits == bits:
            return False
        w[i] = old | bits
        return True

    def add(self, key: str) -> None:
        self.add_new(key)

    def __contains__(self, key: str) -> bool:
        h = hash(key)
        bits = 1 << (h >> 22 & 63) | 1 << (h >> 28 & 63) | 1 << (h >> 34 & 63) | 1 << (h >> 40 & 63)
        return self.words[h & self.mask] & bits == bits


# ----------------------------------------------------------------------------------------------
# The import context and the record importers
# ----------------------------------------------------------------------------------------------


class _Context:
    def __init__(
        self, store: Any, mapping: ImportMapping, report: ImportReport, path: str, app: Any,
        batch_size: int, on_error: str,
    ) -> None:
        self.store = store
        self.mapping = mapping
        self.report = report
        self.path = path
        self.app = app
        self.batch_size = batch_size
        self.on_error = on_error
        self.source = mapping.source
        self.stubs: list[Any] = []
        self.indexes: dict[str, _Index] = {}
        self.writing = True

    def index(self, kind: str) -> _Index:
        ix = self.indexes.get(kind)
        if ix is None:
            ix = self.indexes[kind] = _Index(self, kind, load=kind != "activity")
        return ix

    def drop_stubs_since(self, mark: int) -> None:
        """Forget the records a bad row referred to and that were created for it."""
        rc = self.report.references_created
        for stub in self.stubs[mark:]:
            kind = _KIND_OF_CLASS[type(stub)]
            self.index(kind).forget(stub)
            rc[kind] -= 1
            if not rc[kind]:
                del rc[kind]
        del self.stubs[mark:]

    def bad(self, errs: Sequence[RowError]) -> None:
        self.report.bad_rows += 1
        self.report.skipped += 1
        for e in errs:
            self.report.add(e)
        if self.on_error == "fail":
            self.writing = False  # keep validating, write nothing more

    def flush_stubs(self) -> None:
        if self.stubs and self.writing:
            self.store.put(*self.stubs)
        self.stubs.clear()

    def app_(self) -> Any:
        if self.app is None:
            from salesprocess.app import SalesProcess

            self.app = SalesProcess()
        return self.app


class _Importer:
    def __init__(self, ctx: _Context, ex: _Extractor) -> None:
        self.ctx = ctx
        self.ex = ex
        self.m = ctx.mapping

    def row(self, line: int, raw: Sequence[Any]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def col(self, field: str) -> str | None:
        return self.m.columns.get(field)

    def err(self, line: int, field: str | None, code: str, reason: str, value: Any = None) -> RowError:
        v = None if value is None else str(value)
        return RowError(self.ctx.path, line, self.m.columns.get(field) if field else None, field, code, reason, v)

    def resolve(self, vals: dict[str, Any], field: str, kind: str, line: int, errs: list[RowError]) -> Any:
        v = vals.get(field)
        if v is None:
            return None
        ix = self.ctx.index(kind)
        memo = ix.memo
        try:
            if v.__class__ is tuple:
                return tuple([memo.get(x) or ix.resolve(x) for x in v])
            return memo.get(v) or ix.resolve(v)
        except CellError as e:
            errs.append(self.err(line, field, e.code, e.reason, v))
            return None


def _money(vals: Mapping[str, Any], field: str, m: ImportMapping) -> Money | None:
    a = vals.get(field)
    if a is None:
        return None
    return Money(a, vals.get("currency") or m.currency)


class _DealImporter(_Importer):
    """Deals from rows that give the current state: new deals get a synthesized history."""

    def __init__(self, ctx: _Context, ex: _Extractor) -> None:
        super().__init__(ctx, ex)
        m = self.m
        self.by_ext = "external_id" in m.columns
        self.fresh = False
        if self.by_ext:
            self.fresh = ctx.store.count_deals(external_source=ctx.source) == 0
        self.seen = _Seen() if self.fresh else None
        self.pending: dict[str, tuple[Deal, int | None]] = {}
        self.processes: dict[str, Process] = {}
        if m.process is not None:
            if ctx.writing:
                ctx.store.save_process(m.process)
            self.processes[m.process.key] = m.process
        self.actor = m.actor
        self.present = ex.present
        self.stages = dict(m.stages or {})
        self.has_custom = any(f == "custom" or f.startswith("custom.") for f in ex.present)
        self.has_probability = "probability" in ex.present or "forecast_category" in ex.present
        self.fill_close_date = "close_date" not in ex.present
        self._move_cache: dict[tuple[str, bool], tuple[type[StageChanged], Rate, ForecastCategory]] = {}
        self.lane: DealLane | None = None
        new_rows = getattr(ctx.store, "new_deal_rows", None)
        if (
            _BULK_LANE and new_rows is not None and self.seen is not None and m.process is not None
            and ex.present <= LANE_FIELDS and ctx.writing
        ):
            self.lane = DealLane(self, new_rows())

    def process_for(self, key: str | None, line: int, errs: list[RowError]) -> Process | None:
        if key is None:
            if self.m.process is None:
                errs.append(self.err(line, "process", "required", "missing process"))
            return self.m.process
        p = self.processes.get(key)
        if p is None:
            try:
                p = self.ctx.store.get_process(key)
            except NotFoundError:
                try:
                    p = self.ctx.app_().process(key)
                except SalesProcessError:
                    errs.append(self.err(line, "process", "process", f"no process {key!r} in the store", key))
                    return None
                if self.ctx.writing:
                    self.ctx.store.save_process(p)
            self.processes[key] = p
        return p

    def row(self, line: int, raw: Sequence[Any]) -> None:
        lane = self.lane
        if lane is not None and lane.add(line, raw):
            return
        vals, errs = self.ex.row(line, raw)
        m = self.m
        ext = vals.get("external_id")
        did = vals.get("id")
        if self.by_ext and not ext:
            errs.append(self.err(line, "external_id", "required", "missing external id"))
        elif not self.by_ext and not did:
            errs.append(self.err(line, "id", "required", "missing deal id"))
        proc = self.process_for(vals.get("process"), line, errs)
        stage_raw = vals.get("stage")
        stage = None
        if stage_raw is None:
            errs.append(self.err(line, "stage", "required", "missing stage"))
        elif proc is not None:
            stage_key = self.stages.get(stage_raw, stage_raw)
            if proc.has_stage(stage_key):
                stage = proc.stage(stage_key)
            else:
                known = ", ".join(self.stages) if self.stages else ", ".join(s.key for s in proc.stages)
                errs.append(self.err(line, "stage", "stage", f"unknown stage value {stage_raw!r} (known: {known})", stage_raw))
        unreadable = {e.field for e in errs} if errs else ()
        created = vals.get("created_at")
        if created is None and "created_at" not in unreadable:
            created = m.asof
            if created is None:
                errs.append(self.err(line, "created_at", "required",
                                     "missing created date (map it, or give defaults.created_at or asof)"))
        closed = vals.get("closed_at")
        if stage is not None and stage.is_closed and closed is None and "closed_at" not in unreadable:
            errs.append(self.err(line, "closed_at", "required",
                                 f"missing close date for a {stage.kind.value} deal (map closed_at or give defaults.closed_at)"))
        if created is not None and closed is not None and closed < created:
            errs.append(self.err(line, "closed_at", "order", f"closed {closed.isoformat()} before it was created {created.isoformat()}", closed.isoformat()))
        entered = vals.get("stage_entered_at")
        if entered is not None and created is not None and entered < created:
            errs.append(self.err(line, "stage_entered_at", "order", "stage entered before the deal was created", entered.isoformat()))
        mark = len(self.ctx.stubs)
        owner = self.resolve(vals, "owner", "rep", line, errs)
        account = self.resolve(vals, "account", "account", line, errs)
        products = self.resolve(vals, "products", "product", line, errs)
        contacts = self.resolve(vals, "contacts", "contact", line, errs)
        if errs:
            self.ctx.drop_stubs_since(mark)
            self.ctx.bad(errs)
            return
        assert proc is not None
        assert stage is not None
        assert created is not None
        key = str(ext if self.by_ext else did)
        if lane is not None and lane.rows and (self.seen is None or key in self.seen):
            lane.flush()  # a deal the lane queued must be found where this path looks
        pend = self.pending.get(key)
        if pend is not None:
            existing, expected = pend
        else:
            if self.by_ext:
                if self.seen is not None and key not in self.seen:
                    existing = None
                else:
                    existing = self.ctx.store.find_deal(self.ctx.source, ext)
            else:
                try:
                    existing = self.ctx.store.get_deal(did)
                except NotFoundError:
                    existing = None
            expected = None if existing is None else existing.version
        if self.seen is not None:
            self.seen.add(key)
        amount = _money(vals, "amount", m)
        try:
            if existing is None:
                deal = self.new_deal(vals, proc, stage, did or f"{self.ctx.source}-{ext}", ext, created, closed,
                                     entered, amount, owner, account, products, contacts)
                self.ctx.report.created += 1
            else:
                deal = self.update(existing, vals, proc, stage, closed, entered, amount, owner, account, products, contacts, line)
                if deal is existing:
                    self.ctx.report.unchanged += 1
                    return
                self.ctx.report.updated += 1
        except _RowProblem as e:
            self.ctx.drop_stubs_since(mark)
            self.ctx.bad([self.err(line, e.field, e.code, e.reason)])
            return
        except (DomainError, TypeError, ValueError) as e:
            self.ctx.drop_stubs_since(mark)
            self.ctx.bad([self.err(line, None, "invalid", str(e))])
            return
        if self.ctx.writing:
            self.pending[key] = (deal, expected)
            if len(self.pending) + (0 if lane is None else len(lane.rows)) >= self.ctx.batch_size:
                self.flush()

    def new_deal(
        self, vals: dict[str, Any], proc: Process, stage: Any, deal_id: str, ext: str | None,
        created: datetime, closed: datetime | None, entered: datetime | None, amount: Money | None,
        owner: str | None, account: str | None, products: tuple[str, ...] | None,
        contacts: tuple[str, ...] | None,
    ) -> Deal:
        init = proc.initial_stage
        lost = stage.kind is StageKind.LOST
        lost_reason = vals.get("lost_reason")
        details: dict[str, Any] = {}
        competitors = vals.get("competitors")
        if competitors:
            details["competitors"] = competitors
        if lost_reason is not None and not lost:
            details["lost_reason"] = lost_reason
        if contacts:
            details["contact_ids"] = contacts
        if products:
            details["product_ids"] = products
        if self.has_custom:
            custom = self._custom(vals, None)
            if custom:
                details["custom"] = custom
        ext_ids = vals.get("external_ids")
        if ext_ids or ext:
            e = dict(ext_ids or {})
            if ext:
                e[self.ctx.source] = ext
            details["external_ids"] = e
        source = EventSource.IMPORT
        close_date = vals.get("close_date")
        if close_date is None and stage.is_closed and closed is not None and self.fill_close_date:
            close_date = closed.astimezone(self.m.timezone).date()
        det = FrozenMap(details) if details else EMPTY
        # every value here comes from a checked parser (aware instants, enums, Money): build the
        # records without re-checking them
        first = DealCreated._make((
            deal_id, created, self.actor, source, proc.key, proc.version, init.key, DealStatus.OPEN,
            vals.get("name") or "", amount, close_date, owner, account, init.probability,
            EventSource.STAGE_DEFAULT, init.effective_forecast_category, det,
        ))
        at = created
        if stage.key != init.key:
            at = entered if entered is not None else (closed if stage.is_closed and closed is not None else created)
            cls, prob, fc = self.move_args(stage, False)
            events: tuple[DealEvent, ...] = (
                first,
                cls._make((deal_id, at, self.actor, source, init.key, stage.key, prob, EventSource.STAGE_DEFAULT,
                           fc, lost_reason if lost else None)),
            )
            if at < created:  # pragma: no cover - rows are checked before
                raise DomainError("stage entered before creation")
        else:
            events = (first,)
            prob, fc = init.probability, init.effective_forecast_category
        # The state these events replay to, built directly: replay() is the slow way to the same
        # value (tests check replay(deal.events) == deal for imported deals).
        status = _STATUS[stage.kind]
        st = _STATE_TEMPLATE.copy()
        st[_I["id"]] = deal_id
        st[_I["process"]] = proc.key
        st[_I["process_version"]] = proc.version
        st[_I["name"]] = first.name
        st[_I["stage"]] = stage.key
        st[_I["status"]] = status
        st[_I["amount"]] = amount
        st[_I["close_date"]] = close_date
        st[_I["owner_id"]] = owner
        st[_I["account_id"]] = account
        st[_I["probability"]] = prob
        st[_I["probability_source"]] = EventSource.STAGE_DEFAULT
        st[_I["forecast_category"]] = fc
        st[_I["created_at"]] = created
        st[_I["stage_entered_at"]] = at
        st[_I["closed_at"]] = at if status is not DealStatus.OPEN else None
        if "competitors" in details:
            st[_I["competitors"]] = det["competitors"]
        st[_I["lost_reason"]] = lost_reason if lost else details.get("lost_reason")
        if contacts:
            st[_I["contact_ids"]] = det["contact_ids"]
        if products:
            st[_I["product_ids"]] = det["product_ids"]
        if "custom" in details:
            st[_I["custom"]] = det["custom"]
        if "external_ids" in details:
            st[_I["external_ids"]] = det["external_ids"]
        st[_I["events"]] = events
        deal = Deal._make(st)
        if self.has_probability:
            deal = self._probability(deal, vals, at)
        return deal

    def move_args(self, stage: Any, reopen: bool) -> tuple[type[StageChanged], Rate, ForecastCategory]:
        k = (stage.key, reopen)
        r = self._move_cache.get(k)
        if r is None:
            if stage.kind is StageKind.WON:
                cls: type[StageChanged] = DealWon
            elif stage.kind is StageKind.LOST:
                cls = DealLost
            elif reopen:
                cls = DealReopened
            else:
                cls = StageChanged
            r = self._move_cache[k] = (cls, stage.probability, stage.effective_forecast_category)
        return r

    def _move(self, deal: Deal, stage: Any, at: datetime, lost_reason: str | None) -> DealEvent:
        cls, prob, fc = self.move_args(stage, deal.status is not DealStatus.OPEN)
        ev: DealEvent = cls(deal.id, at, self.actor, EventSource.IMPORT, deal.stage, stage.key, prob,
                            EventSource.STAGE_DEFAULT, fc, lost_reason if stage.kind is StageKind.LOST else None)
        return ev

    def _probability(self, deal: Deal, vals: dict[str, Any], at: datetime) -> Deal:
        if deal.status is not DealStatus.OPEN:
            return deal  # won and lost stages fix probability and forecast category
        p: Rate | None = vals.get("probability")
        if p is not None and p != deal.probability:
            deal = deal.with_probability(p, at=at, actor=self.actor, source=EventSource.IMPORT)
        fc: str | None = vals.get("forecast_category")
        if fc is not None and ForecastCategory(fc) != deal.forecast_category:
            deal = deal.with_forecast_category(fc, at=at, actor=self.actor, source=EventSource.IMPORT)
        return deal

    def _custom(self, vals: dict[str, Any], base: Mapping[str, Any] | None) -> dict[str, Any]:
        out = dict(base or {})
        whole = vals.get("custom")
        if whole is not None:
            out = dict(whole)
        for k, v in vals.items():
            if k.startswith("custom.") and v is not None:
                out[k[7:]] = v
        return out

    def update(
        self, d: Deal, vals: dict[str, Any], proc: Process, stage: Any, closed: datetime | None,
        entered: datetime | None, amount: Money | None, owner: str | None, account: str | None,
        products: tuple[str, ...] | None, contacts: tuple[str, ...] | None, line: int,
    ) -> Deal:
        if d.process != proc.key:
            raise _RowProblem("process", "process", f"deal {d.id} follows process {d.process!r}, not {proc.key!r}")
        has = self.present
        m = self.m
        last = d.updated_at
        t_fields = vals.get("updated_at") or m.asof or last
        if t_fields < last:
            t_fields = last
        moves: list[tuple[datetime, int, Callable[[Deal, datetime], Deal]]] = []
        lost_reason = vals.get("lost_reason")
        if stage.key != d.stage:
            t = entered if entered is not None else (closed if stage.is_closed and closed is not None else t_fields)
            if t < last:
                t = last
            moves.append((t, 0, lambda x, at: x.append(self._move(x, stage, at, lost_reason))))

        def fields(x: Deal, at: datetime) -> Deal:
            a = self.actor
            src = EventSource.IMPORT
            if "amount" in has and amount != x.amount:
                x = x.with_amount(amount, at=at, actor=a, source=src)
            if "close_date" in has and vals.get("close_date") != x.close_date:
                x = x.with_close_date(vals.get("close_date"), at=at, actor=a, source=src)
            if "owner" in has and owner != x.owner_id:
                x = x.with_owner(owner, at=at, actor=a, source=src)
            ch: dict[str, Any] = {}
            if "name" in has:
                ch["name"] = vals.get("name") or ""
            if "account" in has:
                ch["account_id"] = account
            if "products" in has:
                ch["product_ids"] = products or ()
            if "contacts" in has:
                ch["contact_ids"] = contacts or ()
            if "competitors" in has:
                ch["competitors"] = vals.get("competitors") or ()
            if "lost_reason" in has and x.status is not DealStatus.LOST and lost_reason != x.lost_reason:
                ch["lost_reason"] = lost_reason
            if "custom" in has or any(k.startswith("custom.") for k in has):
                ch["custom"] = self._custom(vals, x.custom)
            if "external_ids" in has:
                ch["external_ids"] = {**x.external_ids, **(vals.get("external_ids") or {})}
            if ch:
                x = x.with_details(at=at, actor=a, source=src, **ch)
            if "probability" in has or "forecast_category" in has:
                x = self._probability(x, vals, at)
            return x

        moves.append((t_fields, 1, fields))
        moves.sort(key=lambda mv: (mv[0], mv[1]))
        for at, _, fn in moves:
            if at < d.updated_at:
                at = d.updated_at
            d = fn(d, at)
        return d

    def flush(self) -> None:
        self.ctx.flush_stubs()
        if self.pending and self.ctx.writing:
            save_deals(self.ctx.store, list(self.pending.values()))
        self.pending.clear()
        if self.lane is not None:
            self.lane.flush()


class _RowProblem(Exception):
    def __init__(self, field: str | None, code: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.code = code
        self.reason = reason


class _EntityImporter(_Importer):
    """Accounts, contacts, teams, reps, products and activities: upsert by id, external id or name."""

    def __init__(self, ctx: _Context, ex: _Extractor, kind: str) -> None:
        super().__init__(ctx, ex)
        self.kind = kind
        self.single = _KIND_SINGULAR[kind]
        self.cls = ENTITY_CLASSES[kind]
        self.ix = ctx.index(self.single)
        self.pending: dict[str, Any] = {}
        self.fields = {a.name for a in attrs.fields(self.cls)}
        self.keep = {a.name for a in attrs.fields(self.cls) if a.default is not None}
        self.required = [a.name for a in attrs.fields(self.cls) if a.default is attrs.NOTHING and a.name != "id"]
        self.refs = {f: t.split(":", 1)[1] for f, t in FIELDS[kind].items() if t.startswith("ref:")}
        self.present = ex.present
        self.fresh = False
        if kind == "activities":
            self.fresh = next(iter(ctx.store.all(Activity)), None) is None

    def row(self, line: int, raw: Sequence[Any]) -> None:
        vals, errs = self.ex.row(line, raw)
        m = self.m
        kw: dict[str, Any] = {}
        mark = len(self.ctx.stubs)

        def fail(problems: Sequence[RowError]) -> None:
            self.ctx.drop_stubs_since(mark)
            self.ctx.bad(problems)

        for f, target in self.refs.items():
            if f in vals:
                if target == "deal":
                    kw["deal_id"] = self._deal_ref(vals, line, errs)
                else:
                    kw[_ATTR[f]] = self.resolve(vals, f, target, line, errs)
        for f, v in vals.items():
            if f in self.refs or f in ("id", "external_id", "currency") or f.startswith("custom."):
                continue
            if f == _MONEY_FIELD.get(self.kind):
                cur = vals.get("currency") or m.currency
                kw[f] = None if v is None else Money(v, cur)
                continue
            if f in ("external_ids", "custom"):
                continue
            kw[f] = v
        customs = {k[7:]: v for k, v in vals.items() if k.startswith("custom.") and v is not None}
        if errs:
            fail(errs)
            return
        ext = vals.get("external_id")
        existing = None
        new_id = vals.get("id")
        if new_id is not None:
            existing = self.pending.get(new_id) or (None if self.fresh else self.ix.get(new_id))
        elif ext is not None:
            if self.ix.load_all:
                self.ix.load()
                i = self.ix.by_ext.get(ext)
                if i is not None:
                    existing = self.pending.get(i) or self.ix.get(i)
                else:
                    new_id = self.ix.new_id(ext)
            else:  # activities: too many to index; the id follows from the external id
                new_id = f"{_ID_PREFIX[self.single]}-{slug(self.ctx.source)}-{slug(ext)}"
                existing = self.pending.get(new_id) or (None if self.fresh else self.ix.get(new_id))
        elif vals.get("name"):
            self.ix.load()
            i = self.ix.by_name.get(vals["name"])
            if i == _AMBIGUOUS:
                fail([self.err(line, "name", "ambiguous", f"more than one {self.single} is named {vals['name']!r}")])
                return
            if i is not None:
                existing = self.pending.get(i) or self.ix.get(i)
            else:
                new_id = self.ix.new_id(vals["name"])
        else:
            fail([self.err(line, "id", "required", f"missing {self.single} id, external id and name")])
            return
        ext_ids: dict[str, Any] = dict(existing.external_ids) if existing is not None else {}
        if "external_ids" in vals and vals["external_ids"] is not None:
            ext_ids.update(vals["external_ids"])
        if ext is not None:
            ext_ids[self.ctx.source] = ext
        kw["external_ids"] = ext_ids
        if "custom" in self.fields and ("custom" in vals or customs):
            base = dict(existing.custom) if existing is not None else {}
            if vals.get("custom") is not None:
                base = dict(vals["custom"])
            base.update(customs)
            kw["custom"] = base
        # a non-optional field (name, kind, subject...) is never cleared by an empty cell
        kw = {k: v for k, v in kw.items() if k in self.fields and not (v is None and k in self.keep)}
        try:
            if existing is not None:
                obj = attrs.evolve(existing, **kw)
                if obj == existing:
                    self.ctx.report.unchanged += 1
                    return
                self.ctx.report.updated += 1
            else:
                for req in self.required:
                    if kw.get(req) is None:
                        raise _RowProblem(req, "required", f"missing {self.single} {req}")
                obj = self.cls(id=new_id, **kw)
                self.ctx.report.created += 1
        except _RowProblem as e:
            fail([self.err(line, e.field, e.code, e.reason)])
            return
        except (TypeError, ValueError, DomainError) as e:
            fail([self.err(line, None, "invalid", str(e))])
            return
        if self.ix.load_all:
            self.ix.remember(obj)
        if self.ctx.writing:
            self.pending[obj.id] = obj
            if len(self.pending) >= self.ctx.batch_size:
                self.flush()

    def _deal_ref(self, vals: dict[str, Any], line: int, errs: list[RowError]) -> str | None:
        v: str | None = vals.get("deal")
        if v is None or self.m.references == "keep":
            return v
        d = self.ctx.store.find_deal(self.ctx.source, v)
        if d is not None:
            return str(d.id)
        try:
            return str(self.ctx.store.get_deal(v).id)
        except NotFoundError:
            errs.append(self.err(line, "deal", "reference", f"no deal with external id or id {v!r}", v))
            return None

    def flush(self) -> None:
        self.ctx.flush_stubs()
        if self.pending and self.ctx.writing:
            self.ctx.store.put(*self.pending.values())
        self.pending.clear()


class _EventImporter(_Importer):
    """Full deal histories (our own events export): consecutive rows of a deal form its history;
    new deals are rebuilt by replay, known ones get the events past their version."""

    def __init__(self, ctx: _Context, ex: _Extractor) -> None:
        super().__init__(ctx, ex)
        self.group: list[tuple[int, int, DealEvent]] = []
        self.group_id: str | None = None
        self.group_bad = False
        self.group_rows = 0
        self.pending: dict[str, tuple[Deal, int | None]] = {}
        self.seen = _Seen() if ctx.store.count_deals() == 0 else None
        self.instant = cells.datetime_parser(None, None, self.m.timezone, self.m.day_time)

    def row(self, line: int, raw: Sequence[Any]) -> None:
        vals, errs = self.ex.row(line, raw)
        deal_id = vals.get("deal_id")
        if deal_id is None:
            errs.append(self.err(line, "deal_id", "required", "missing deal_id"))
            self.ctx.bad(errs)
            return
        deal_id = str(deal_id)
        if deal_id != self.group_id:
            self.end_group()
            self.group_id = deal_id
        self.group_rows += 1
        seq_raw = vals.get("seq")
        seq = None
        try:
            seq = int(str(seq_raw)) if seq_raw is not None else None
        except ValueError:
            pass
        if seq is None or seq < 0:
            errs.append(self.err(line, "seq", "integer", f"seq must be a whole number >= 0, got {seq_raw!r}", seq_raw))
        kind = vals.get("kind")
        if kind not in EVENT_TYPES:
            errs.append(self.err(line, "kind", "kind", f"unknown event kind {kind!r}", kind))
        data = vals.get("data")
        if isinstance(data, str):
            try:
                data = json.loads(data) if data.strip() else {}
            except ValueError:
                errs.append(self.err(line, "data", "json", "data is not a JSON object", data[:80]))
                data = None
        at_raw = vals.get("at")
        at = None
        if at_raw is not None:
            try:
                at = self.instant(str(at_raw))
            except CellError as e:
                errs.append(self.err(line, "at", e.code, e.reason, at_raw))
        else:
            errs.append(self.err(line, "at", "required", "missing event instant"))
        source = vals.get("source")
        if source not in {s.value for s in EventSource}:
            errs.append(self.err(line, "source", "source", f"unknown event source {source!r}", source))
        ev = None
        if not errs:
            try:
                ev = decode_event({
                    "deal_id": deal_id, "kind": kind, "at": at, "actor": str(vals.get("actor") or ""),
                    "source": source, "data": data or {},
                })
            except (DomainError, TypeError, ValueError, KeyError, IndexError) as e:
                errs.append(self.err(line, "data", "event", f"cannot read the {kind} event: {e}"))
        if errs or ev is None or seq is None:
            self.group_bad = True
            self.ctx.report.bad_rows += 1
            for problem in errs:
                self.ctx.report.add(problem)
            if self.ctx.on_error == "fail":
                self.ctx.writing = False
            return
        self.group.append((line, seq, ev))

    def end_group(self) -> None:
        if self.group_id is None:
            return
        group, rows, bad = self.group, self.group_rows, self.group_bad
        deal_id = self.group_id
        self.group, self.group_rows, self.group_bad, self.group_id = [], 0, False, None
        rep = self.ctx.report
        if bad or not group:
            rep.skipped += rows
            return
        problem = self._apply(deal_id, group)
        if problem is not None:
            rep.bad_rows += 1
            rep.skipped += rows
            rep.add(problem)
            if self.ctx.on_error == "fail":
                self.ctx.writing = False

    def _apply(self, deal_id: str, group: list[tuple[int, int, DealEvent]]) -> RowError | None:
        for (_, s0, _), (line, s1, _) in itertools.pairwise(group):
            if s1 != s0 + 1:
                return self.err(line, "seq", "seq", f"seq {s1} follows {s0}: the events of deal {deal_id} must be consecutive", s1)
        pend = self.pending.get(deal_id)
        if pend is not None:
            stored: Deal | None
            stored, expected = pend
        else:
            stored = None
            if self.seen is None or deal_id in self.seen:
                try:
                    stored = self.ctx.store.get_deal(deal_id)
                except NotFoundError:
                    stored = None
            expected = None if stored is None else stored.version
        have = 0 if stored is None else stored.version
        first = group[0][1]
        if first > have:
            return self.err(group[0][0], "seq", "gap",
                            f"deal {deal_id} has {have} event(s); this history starts at seq {first}", first)
        new: list[DealEvent] = []
        same = 0
        for line, seq, ev in group:
            if stored is not None and seq < have:
                if encode_event(stored.events[seq]) != encode_event(ev):
                    return self.err(line, "data", "differs", f"event {seq} of deal {deal_id} differs from the stored one")
                same += 1
            else:
                new.append(ev)
        rep = self.ctx.report
        if not new:
            rep.unchanged += same
            return None
        try:
            deal = replay(new) if stored is None else stored.extend(new)
        except DomainError as e:
            idx = getattr(e, "index", 0) or 0
            line = group[min(len(group) - 1, same + idx)][0]
            return self.err(line, None, "replay", str(e))
        rep.created += len(new)
        rep.unchanged += same
        if self.seen is not None:
            self.seen.add(deal_id)
        if stored is None:
            rep.deals_created += 1
        if self.ctx.writing:
            self.pending[deal_id] = (deal, expected)
            if len(self.pending) >= self.ctx.batch_size:
                self.flush()
        return None

    def flush(self) -> None:
        if self.pending and self.ctx.writing:
            save_deals(self.ctx.store, list(self.pending.values()))
        self.pending.clear()

    def finish(self) -> None:
        self.end_group()


class _ProcessImporter(_Importer):
    def __init__(self, ctx: _Context, ex: _Extractor) -> None:
        super().__init__(ctx, ex)

    def row(self, line: int, raw: Sequence[Any]) -> None:
        vals, errs = self.ex.row(line, raw)
        data = vals.get("definition")
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                data = None
        if not isinstance(data, dict):
            errs.append(self.err(line, "definition", "json", "definition must be a JSON object"))
        if errs:
            self.ctx.bad(errs)
            return
        assert isinstance(data, dict)
        try:
            proc = self.ctx.app_().process_from_dict(data)
        except SalesProcessError as e:
            self.ctx.bad([self.err(line, "definition", "definition", str(e))])
            return
        for f in ("key", "version"):
            v = vals.get(f)
            if v is not None and str(v) != str(getattr(proc, f)):
                self.ctx.bad([self.err(line, f, "mismatch", f"{f} {v!r} differs from the definition's {getattr(proc, f)!r}")])
                return
        try:
            have = self.ctx.store.get_process(proc.key, proc.version)
        except NotFoundError:
            have = None
        if have is not None and have == proc:
            self.ctx.report.unchanged += 1
            return
        if have is not None:
            self.ctx.bad([self.err(line, "definition", "conflict",
                                   f"process {proc.key} v{proc.version} exists with another definition")])
            return
        if self.ctx.writing:
            self.ctx.store.save_process(proc)
        self.ctx.report.created += 1

    def flush(self) -> None:
        pass


# ----------------------------------------------------------------------------------------------
# The entry point
# ----------------------------------------------------------------------------------------------


def import_file(
    store: Any,
    kind: str,
    path: str | Path,
    *,
    mapping: ImportMapping | str | Path | None = None,
    on_error: str = "fail",
    input_format: str | None = None,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
    app: Any = None,
    max_errors: int = 10_000,
) -> ImportReport:
    """Import ``path`` (CSV or JSON Lines) as records of ``kind`` into ``store``.

    :param kind: one of ``deals``, ``events``, ``accounts``, ``contacts``, ``teams``, ``reps``,
        ``products``, ``activities``, ``processes``.
    :param mapping: an :class:`ImportMapping`, a path to a mapping TOML file, or ``None`` for a
        file in our own export layout (see :func:`~salesprocess_adapters.tabular.export`).
    :param on_error: ``"fail"`` — any bad row and nothing is written (raises
        :class:`~salesprocess.errors.ImportDataError` carrying the report); ``"skip"`` — the good
        rows are imported and the bad ones listed in the returned report.
    :param input_format: ``csv`` or ``jsonl``; by default the mapping's ``input_format``, else the
        file extension (``.jsonl``/``.ndjson`` → JSON Lines).
    :param progress: called with the number of rows read, after each batch.
    :returns: the :class:`ImportReport`.
    :raises ImportDataError: bad rows with ``on_error="fail"``, or a problem with the whole file
        (a mapped column missing from the header, unreadable CSV); nothing is written.
    :raises ImportMappingError: the mapping file is invalid.
    """
    if kind not in IMPORT_KINDS:
        raise ValueError(f"unknown import kind {kind!r}; choose one of {', '.join(IMPORT_KINDS)}")
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be fail or skip, got {on_error!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    spath = str(path)
    if mapping is None:
        m = ImportMapping.native_for(kind)
    elif isinstance(mapping, ImportMapping):
        m = mapping
        if m.kind != kind:
            raise ValueError(f"the mapping is for {m.kind}, not {kind}")
    else:
        m = ImportMapping.from_toml(Path(mapping), kind=kind, app=app)
    if kind not in CUSTOM_KINDS and any(f.startswith("custom.") for f in m.columns):
        raise ValueError(f"{kind} have no custom fields")
    fmt = detect_format(spath, input_format or m.input_format)
    report = ImportReport(kind=kind, file=spath, on_error=on_error, max_errors=max_errors)
    try:
        f = open(spath, encoding=m.encoding, newline="" if fmt == "csv" else None)  # noqa: SIM115
    except OSError as e:
        report.add(RowError(spath, 0, None, None, "read", f"cannot read: {e.strerror or e}"))
        raise ImportDataError(f"{spath}: cannot read: {e.strerror or e}", report) from None
    with f:
        try:
            if fmt == "csv":
                m, _header, rows = _csv_source(f, spath, m, kind)
            else:
                m, _header, rows = _jsonl_source(f, spath, m, kind)
            _run(store, kind, m, spath, rows, report, app, batch_size, on_error, progress)
        except _Fatal as e:
            report.imported = False
            for err in e.errors:
                report.add(err)
            raise ImportDataError(f"{e}; nothing imported", report) from None
        except UnicodeDecodeError as e:
            report.imported = False
            err = RowError(spath, 0, None, None, "encoding", f"not {m.encoding} text: {e}")
            report.add(err)
            raise ImportDataError(f"{spath}: not {m.encoding} text (set encoding in the mapping)", report) from None
    return report


class _Rollback(Exception):
    pass


def _run(
    store: Any, kind: str, m: ImportMapping, path: str, rows: Iterator[tuple[int, Sequence[Any]]],
    report: ImportReport, app: Any, batch_size: int, on_error: str,
    progress: Callable[[int], None] | None,
) -> None:
    ex = _Extractor(m, path, report)
    try:
        with store.transaction(), contextlib.ExitStack() as bulk:
            ctx = _Context(store, m, report, path, app, batch_size, on_error)
            imp: _Importer
            if kind == "deals":
                imp = _DealImporter(ctx, ex)
                if imp.lane is not None:
                    imp.lane.known_new = store.count_deals() == 0
                    bulk_load = getattr(store, "bulk_load", None)
                    if bulk_load is not None:
                        bulk.enter_context(bulk_load())
            elif kind == "events":
                imp = _EventImporter(ctx, ex)
            elif kind == "processes":
                imp = _ProcessImporter(ctx, ex)
            else:
                imp = _EntityImporter(ctx, ex, kind)
            n = 0
            for line, raw in rows:
                n += 1
                if raw.__class__ is _Ragged:
                    got, want = raw
                    ctx.bad([RowError(path, line, None, None, "fields", f"expected {want} fields, found {got}")])
                elif raw.__class__ is _BadJson:
                    ctx.bad([RowError(path, line, None, None, "json", str(raw))])
                else:
                    imp.row(line, raw)
                if n % batch_size == 0 and progress is not None:
                    progress(batch_size)
            if isinstance(imp, _EventImporter):
                imp.finish()
            imp.flush()
            ctx.flush_stubs()
            report.rows = n
            if progress is not None and n % batch_size:
                progress(n % batch_size)
            if report.bad_rows and on_error == "fail":
                raise _Rollback
            report.imported = True
    except _Rollback:
        report.imported = False
        first = "; ".join(str(e) for e in report.errors[:3])
        more = f" (and {report.errors_total - 3} more)" if report.errors_total > 3 else ""
        raise ImportDataError(
            f"{path}: {report.bad_rows:,} bad row(s), nothing imported: {first}{more}", report
        ) from None
