"""The import mapping: how the columns of somebody else's file become our fields.

A mapping is a TOML file (see docs/reference/import-mapping.md for every key). Loading one checks
everything at once — unknown keys and fields, stage values that are not stages of the process,
defaults that do not parse, bad formats — and raises :class:`ImportMappingError` listing every
problem with its line in the mapping file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import attrs

from salesprocess.errors import DefinitionError, Problem
from salesprocess.model import ActivityKind, ActivityStatus, ForecastCategory
from salesprocess.money import CURRENCY_MINOR_UNITS
from salesprocess.process import Process

from . import _cells as cells
from ._cells import CellError, Parser

__all__ = ["FIELDS", "IMPORT_KINDS", "ImportMapping", "ImportMappingError"]

IMPORT_KINDS = ("deals", "events", "accounts", "contacts", "teams", "reps", "products", "activities", "processes")

# Field types: str, date, datetime, amount, currency, probability, forecast, list, map, int,
# decimal, bool, stage, process, activity_kind, activity_status, ref:<kind>, refs:<kind>, raw
FIELDS: dict[str, dict[str, str]] = {
    "deals": {
        "id": "str", "external_id": "str", "name": "str", "owner": "ref:rep", "account": "ref:account",
        "products": "refs:product", "contacts": "refs:contact", "stage": "stage",
        "created_at": "datetime", "closed_at": "datetime", "stage_entered_at": "datetime",
        "updated_at": "datetime", "close_date": "date", "amount": "amount", "currency": "currency",
        "probability": "probability", "forecast_category": "forecast", "lost_reason": "str",
        "competitors": "list", "process": "process", "external_ids": "map", "custom": "map",
    },
    "accounts": {
        "id": "str", "external_id": "str", "name": "str", "industry": "str", "size_band": "str",
        "region": "str", "country": "str", "parent": "ref:account", "owner": "ref:rep",
        "credit_limit": "amount", "currency": "currency", "created_at": "datetime",
        "external_ids": "map", "custom": "map",
    },
    "contacts": {
        "id": "str", "external_id": "str", "name": "str", "account": "ref:account", "email": "str",
        "phone": "str", "title": "str", "role": "str", "language": "str", "external_ids": "map",
        "custom": "map",
    },
    "teams": {
        "id": "str", "external_id": "str", "name": "str", "manager": "ref:rep", "parent": "ref:team",
        "region": "str", "external_ids": "map",
    },
    "reps": {
        "id": "str", "external_id": "str", "name": "str", "email": "str", "team": "ref:team",
        "manager": "ref:rep", "region": "str", "role": "str", "hired_on": "date",
        "capacity": "decimal", "active": "bool", "language": "str", "external_ids": "map",
    },
    "products": {
        "id": "str", "external_id": "str", "name": "str", "family": "str", "list_price": "amount",
        "currency": "currency", "external_ids": "map",
    },
    "activities": {
        "id": "str", "external_id": "str", "kind": "activity_kind", "at": "datetime", "subject": "str",
        "status": "activity_status", "deal": "ref:deal", "account": "ref:account",
        "contact": "ref:contact", "owner": "ref:rep", "outcome": "str", "duration_minutes": "int",
        "external_ids": "map",
    },
    "events": {
        "deal_id": "raw", "seq": "raw", "kind": "raw", "at": "raw", "actor": "raw", "source": "raw",
        "data": "raw",
    },
    "processes": {"key": "raw", "version": "raw", "definition": "raw"},
}

ALIASES: dict[str, dict[str, str]] = {
    "deals": {
        "owner_id": "owner", "account_id": "account", "product": "products", "product_ids": "products",
        "contact": "contacts", "contact_ids": "contacts",
    },
    "accounts": {"parent_id": "parent", "owner_id": "owner", "credit_limit_currency": "currency"},
    "contacts": {"account_id": "account"},
    "teams": {"manager_id": "manager", "parent_id": "parent"},
    "reps": {"team_id": "team", "manager_id": "manager"},
    "products": {"list_price_currency": "currency"},
    "activities": {"deal_id": "deal", "account_id": "account", "contact_id": "contact", "owner_id": "owner"},
    "events": {},
    "processes": {},
}

CUSTOM_KINDS = frozenset({"deals", "accounts", "contacts"})
CUSTOM_TYPES = ("str", "int", "decimal", "date", "bool")

_TOP_KEYS = {
    "kind", "process", "currency", "timezone", "date_format", "datetime_format", "day_time",
    "source", "asof", "actor", "delimiter", "quotechar", "encoding", "input_format",
    "decimal_separator", "thousands_separator", "list_separator", "null_values", "references",
    "columns", "stages", "values", "defaults", "types",
}
_STRFTIME_PROBE = datetime(2001, 2, 3, 4, 5, 6)


class ImportMappingError(DefinitionError):
    """A mapping file is invalid: ``path`` names it and ``lines`` gives the line of each problem
    (``None`` when unknown); ``problems`` lists every finding."""

    def __init__(self, path: str, problems: list[tuple[Problem, int | None]]) -> None:
        self.path = path
        self.lines: tuple[int | None, ...] = tuple(ln for _, ln in problems)
        self.located: tuple[tuple[Problem, int | None], ...] = tuple(problems)
        super().__init__([p for p, _ in problems], source=path)
        self.args = (self.describe(),)

    def describe(self) -> str:
        out = []
        for p, ln in self.located:
            where = f"{self.path}:{ln}" if ln else self.path
            out.append(f"{where}: {p.path}: {p.message}" if p.path else f"{where}: {p.message}")
        return "invalid import mapping: " + "; ".join(out)

    def __str__(self) -> str:
        return str(self.args[0])


def _locate(text: str, table: str, key: str | None) -> int | None:
    """The line of ``key`` in ``[table]`` (or of the table header when ``key`` is None)."""
    if not text:
        return None
    lines = text.splitlines()
    current = ""
    header_line = None
    kq = None if key is None else re.escape(key)
    key_rx = None if kq is None else re.compile(rf"^\s*(?:\"{kq}\"|'{kq}'|{kq})\s*=")
    dotted_rx = None
    if key is not None and table.count(".") >= 1:
        # a key of [columns.custom] may be written as custom.NAME in [columns]
        parent, _, last = table.rpartition(".")
        dotted_rx = (parent, re.compile(rf"^\s*{re.escape(last)}\s*\.\s*(?:\"{kq}\"|{kq})\s*="))
    for i, ln in enumerate(lines, 1):
        m = re.match(r"^\s*\[\s*([^\]\[]+?)\s*\]\s*(?:#.*)?$", ln)
        if m:
            current = m.group(1).replace('"', "").replace("'", "").replace(" ", "")
            if current == table:
                header_line = i
                if key is None:
                    return i
            continue
        if key_rx is not None and current == table and key_rx.match(ln):
            return i
        if dotted_rx is not None and current == dotted_rx[0] and dotted_rx[1].match(ln):
            return i
    return header_line


def parse_timezone(name: str) -> tzinfo:
    """``UTC``, a fixed offset (``+08:00``) or an IANA name (``Asia/Shanghai``)."""
    if name.upper() in ("UTC", "Z"):
        return UTC
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown timezone {name!r}") from e


def _toml_default_text(v: Any) -> str | list[str] | None:
    """A default from TOML as the text a cell would hold (None when the type cannot be a cell)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return v
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    return None


@attrs.frozen(eq=False)
class ImportMapping:
    """A parsed, checked mapping for one kind of record. Build with :meth:`from_toml`,
    :meth:`from_dict` or :meth:`native` (our own export layout)."""

    kind: str
    columns: Mapping[str, str]
    """Our field → source column."""
    process: Process | None = None
    currency: str | None = None
    timezone: tzinfo = UTC
    date_format: str | None = None
    datetime_format: str | None = None
    day_time: time = time(0)
    source: str = "csv"
    asof: datetime | None = None
    actor: str = "import"
    delimiter: str = ","
    quotechar: str = '"'
    encoding: str = "utf-8-sig"
    input_format: str | None = None
    decimal_separator: str = "."
    thousands_separator: str = ""
    list_separator: str = ";"
    null_values: frozenset[str] = frozenset({""})
    references: str = "create"
    stages: Mapping[str, str] | None = None
    values: Mapping[str, Mapping[str, str]] = attrs.Factory(dict)
    defaults: Mapping[str, Any] = attrs.Factory(dict)
    """Field → typed default, used when the column is not mapped or the cell is empty."""
    types: Mapping[str, str] = attrs.Factory(dict)
    native: bool = False
    """True for our own export layout (no mapping file): references are ids."""
    path: str | None = None
    """The mapping file, when loaded from one."""

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def native_for(cls, kind: str, *, columns: list[str] | None = None) -> ImportMapping:
        """The mapping of our own export for ``kind``: every known column maps to itself."""
        if kind not in FIELDS:
            raise ValueError(f"unknown import kind {kind!r}")
        fields = FIELDS[kind]
        aliases = ALIASES[kind]
        cols: dict[str, str] = {}
        for c in columns if columns is not None else list(fields):
            f = aliases.get(c, c)
            if f in fields and f not in cols:
                cols[f] = c
            elif c.startswith("custom.") and kind in CUSTOM_KINDS:
                cols[c] = c
        return cls(kind=kind, columns=cols, references="keep", native=True, source="import")

    @classmethod
    def from_toml(
        cls, text_or_path: str | Path, *, kind: str | None = None, app: Any = None
    ) -> ImportMapping:
        """Load a mapping from a TOML file (a ``Path`` or a path string ending in ``.toml``) or
        TOML text. ``kind`` is the kind being imported; a ``kind`` key in the file must agree."""
        path: str | None = None
        if isinstance(text_or_path, Path) or (
            isinstance(text_or_path, str) and "\n" not in text_or_path and text_or_path.endswith(".toml")
        ):
            path = str(text_or_path)
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as e:
                raise ImportMappingError(path, [(Problem("", "read", f"cannot read: {e.strerror or e}"), None)]) from None
            except UnicodeDecodeError as e:
                raise ImportMappingError(path, [(Problem("", "read", f"not UTF-8 text: {e}"), None)]) from None
        else:
            text = str(text_or_path)
        where = path or "<mapping>"
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"line (\d+), column (\d+)", str(e))
            line = int(m.group(1)) if m else None
            raise ImportMappingError(where, [(Problem("", "toml", f"invalid TOML: {e}"), line)]) from None
        return cls.from_dict(data, kind=kind, app=app, path=where, text=text)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        kind: str | None = None,
        app: Any = None,
        path: str = "<mapping>",
        text: str = "",
    ) -> ImportMapping:
        """Build from plain data (the shape of the TOML file); every problem is reported at once."""
        probs: list[tuple[Problem, int | None]] = []
        # a file may hold mappings for several kinds: [reps], [accounts]... tables inherit the
        # top-level settings (currency, timezone, formats, source...)
        kind_tables = {k: v for k, v in data.items() if k in IMPORT_KINDS and isinstance(v, Mapping)}
        scope = ""
        inner: Mapping[str, Any] = {}
        if kind is not None and kind in kind_tables:
            scope = kind
            inner = kind_tables[kind]
            eff = {
                k: v for k, v in data.items()
                if k not in kind_tables and not isinstance(v, Mapping) and k != "kind"
                and not (k == "process" and kind != "deals")
            }
            eff.update(inner)
        else:
            eff = {k: v for k, v in data.items() if k not in kind_tables}
        top = data
        data = eff

        def bad(table: str, key: str | None, code: str, msg: str) -> None:
            first = table.split(".", 1)[0] if table else key
            in_scope = bool(scope) and first is not None and first in inner
            t = f"{scope}.{table}" if in_scope and table else (scope if in_scope else table)
            p = f"{table}.{key}" if table and key else (table or key or "")
            if in_scope:
                p = f"{scope}.{p}"
            probs.append((Problem(p, code, msg), _locate(text, t, key)))

        def get_str(key: str, default: str | None = None) -> str | None:
            v = data.get(key, default)
            if v is not None and not isinstance(v, str):
                bad("", key, "type", f"expected a string, got {type(v).__name__} {v!r}")
                return default
            return v

        for k in data:
            if k not in _TOP_KEYS:
                bad("", k, "unknown_key", f"unknown key {k!r}")
        if scope:
            for k in top:
                if k not in _TOP_KEYS and k not in kind_tables:
                    probs.append((Problem(k, "unknown_key", f"unknown key {k!r}"), _locate(text, "", k)))
        file_kind = get_str("kind")
        if file_kind is not None and file_kind not in IMPORT_KINDS:
            bad("", "kind", "value", f"kind must be one of {', '.join(IMPORT_KINDS)}, got {file_kind!r}")
            file_kind = None
        if kind is not None and file_kind is not None and kind != file_kind:
            bad("", "kind", "value", f"this mapping is for {file_kind}, not {kind}")
        the_kind = kind or file_kind
        if the_kind is None:
            bad("", "kind", "required", "say which records the mapping imports (kind = \"deals\", ...)")
            raise ImportMappingError(path, probs)
        if the_kind not in FIELDS:
            bad("", "kind", "value", f"unknown kind {the_kind!r}")
            raise ImportMappingError(path, probs)
        fields = FIELDS[the_kind]
        aliases = ALIASES[the_kind]
        kw: dict[str, Any] = {"kind": the_kind, "path": path}

        # --- scalar settings ----------------------------------------------------------------
        cur = get_str("currency")
        if cur is not None:
            if cur.upper() not in CURRENCY_MINOR_UNITS:
                bad("", "currency", "currency", f"not an ISO 4217 currency code: {cur!r}")
            else:
                kw["currency"] = cur.upper()
        tzname = get_str("timezone", "UTC") or "UTC"
        try:
            kw["timezone"] = parse_timezone(tzname)
        except ValueError as e:
            bad("", "timezone", "timezone", str(e))
        for key in ("date_format", "datetime_format"):
            fmt = get_str(key)
            if fmt is not None:
                if "%" not in fmt:
                    bad("", key, "format", f"a strptime format needs % directives (e.g. %Y-%m-%d), got {fmt!r}")
                else:
                    try:
                        probe = _STRFTIME_PROBE.strftime(fmt)
                        datetime.strptime(probe, fmt)
                    except ValueError as e:
                        bad("", key, "format", f"unusable strptime format {fmt!r}: {e}")
                    else:
                        kw[key] = fmt
        dt = data.get("day_time")
        if dt is not None:
            if isinstance(dt, time):
                kw["day_time"] = dt
            elif isinstance(dt, str):
                try:
                    kw["day_time"] = time.fromisoformat(dt)
                except ValueError:
                    bad("", "day_time", "format", f"expected HH:MM, got {dt!r}")
            else:
                bad("", "day_time", "type", f"expected HH:MM, got {dt!r}")
        for key in ("source", "actor", "encoding"):
            v = get_str(key)
            if v is not None:
                if not v:
                    bad("", key, "value", f"{key} must not be empty")
                else:
                    kw[key] = v
        for key in ("delimiter", "quotechar"):
            v = get_str(key)
            if v is not None:
                if len(v) != 1:
                    bad("", key, "value", f"{key} must be one character, got {v!r}")
                else:
                    kw[key] = v
        for key in ("decimal_separator", "thousands_separator", "list_separator"):
            v = get_str(key)
            if v is not None:
                if len(v) > 1 or (key != "thousands_separator" and not v):
                    bad("", key, "value", f"{key} must be one character, got {v!r}")
                else:
                    kw[key] = v
        if kw.get("decimal_separator", ".") == kw.get("thousands_separator", ""):
            bad("", "thousands_separator", "value", "the thousands and decimal separators must differ")
        fmt_in = get_str("input_format")
        if fmt_in is not None:
            if fmt_in not in ("csv", "jsonl"):
                bad("", "input_format", "value", f"input_format must be csv or jsonl, got {fmt_in!r}")
            else:
                kw["input_format"] = fmt_in
        refs = get_str("references")
        if refs is not None:
            if refs not in ("create", "error", "keep"):
                bad("", "references", "value", f"references must be create, error or keep, got {refs!r}")
            else:
                kw["references"] = refs
        nulls = data.get("null_values")
        if nulls is not None:
            if not isinstance(nulls, list) or not all(isinstance(x, str) for x in nulls):
                bad("", "null_values", "type", "expected a list of strings")
            else:
                kw["null_values"] = frozenset([*nulls, ""])
        tz = kw.get("timezone", UTC)
        asof = data.get("asof")
        if asof is not None:
            if isinstance(asof, datetime):
                kw["asof"] = asof if asof.tzinfo is not None else asof.replace(tzinfo=tz)
            elif isinstance(asof, date):
                kw["asof"] = datetime.combine(asof, time(0), tz)
            elif isinstance(asof, str):
                try:
                    kw["asof"] = cells.datetime_parser(None, None, tz, time(0))(asof)
                except CellError as e:
                    bad("", "asof", "date", e.reason)
            else:
                bad("", "asof", "type", f"expected a date or instant, got {asof!r}")

        # --- process ------------------------------------------------------------------------
        if the_kind == "deals":
            ref = get_str("process", "b2b") or "b2b"
            try:
                kw["process"] = _load_process(ref, path, app)
            except DefinitionError as e:
                bad("", "process", "process", f"cannot load process {ref!r}: {e}")
            except (OSError, LookupError, ValueError) as e:
                bad("", "process", "process", f"cannot load process {ref!r}: {e}")
        elif "process" in data:
            bad("", "process", "unknown_key", f"process applies to deals, not {the_kind}")

        # --- columns ------------------------------------------------------------------------
        cols: dict[str, str] = {}
        raw_cols = data.get("columns", {})
        if not isinstance(raw_cols, Mapping):
            bad("", "columns", "type", "expected a table [columns] of field = \"source column\"")
            raw_cols = {}
        for f, col in raw_cols.items():
            if f == "custom" and isinstance(col, Mapping) and the_kind in CUSTOM_KINDS:
                for name, c in col.items():
                    if not isinstance(c, str) or not c:
                        bad("columns.custom", name, "type", f"expected a column name, got {c!r}")
                    else:
                        cols[f"custom.{name}"] = c
                continue
            if f.startswith("custom.") and the_kind in CUSTOM_KINDS:
                if not isinstance(col, str) or not col:
                    bad("columns", f, "type", f"expected a column name, got {col!r}")
                else:
                    cols[f] = col
                continue
            canon = aliases.get(f, f)
            if canon not in fields:
                known = ", ".join(sorted(fields))
                bad("columns", f, "unknown_field", f"unknown field {f!r} for {the_kind} (known: {known})")
                continue
            if not isinstance(col, str) or not col:
                bad("columns", f, "type", f"expected a column name, got {col!r}")
                continue
            if canon in cols:
                bad("columns", f, "duplicate", f"field {canon!r} is mapped twice")
                continue
            cols[canon] = col
        kw["columns"] = cols

        # --- stages -------------------------------------------------------------------------
        stages = data.get("stages")
        if stages is not None:
            if the_kind != "deals":
                bad("", "stages", "unknown_key", f"[stages] applies to deals, not {the_kind}")
            elif not isinstance(stages, Mapping):
                bad("", "stages", "type", "expected a table [stages] of \"source value\" = \"stage key\"")
            else:
                st: dict[str, str] = {}
                proc = kw.get("process")
                for src, key in stages.items():
                    if not isinstance(key, str):
                        bad("stages", src, "type", f"expected a stage key, got {key!r}")
                    elif proc is not None and not proc.has_stage(key):
                        have = ", ".join(s.key for s in proc.stages)
                        bad("stages", src, "unknown_stage", f"{key!r} is not a stage of process {proc.key!r} ({have})")
                    else:
                        st[src] = key
                kw["stages"] = st

        # --- custom field types ---------------------------------------------------------------
        types = data.get("types", {})
        tmap: dict[str, str] = {}
        if not isinstance(types, Mapping):
            bad("", "types", "type", "expected a table [types] of custom field = type")
        else:
            for name, t in types.items():
                if t not in CUSTOM_TYPES:
                    bad("types", name, "value", f"type must be one of {', '.join(CUSTOM_TYPES)}, got {t!r}")
                else:
                    tmap[name.removeprefix("custom.")] = t
        kw["types"] = tmap

        # --- value maps -----------------------------------------------------------------------
        values = data.get("values", {})
        vmap: dict[str, dict[str, str]] = {}
        if not isinstance(values, Mapping):
            bad("", "values", "type", "expected tables [values.FIELD] of \"source value\" = \"value\"")
        else:
            for f, table in values.items():
                canon = aliases.get(f, f)
                if canon not in fields and not (f.startswith("custom.") and the_kind in CUSTOM_KINDS):
                    bad("values", f, "unknown_field", f"unknown field {f!r} for {the_kind}")
                    continue
                if not isinstance(table, Mapping) or not all(isinstance(x, str) for x in table.values()):
                    bad("values", f, "type", f"[values.{f}] maps source values to strings")
                    continue
                vmap[canon] = {str(k): v for k, v in table.items()}
        kw["values"] = vmap

        # --- defaults (parsed now, so a bad default is a mapping problem) ----------------------
        defaults = data.get("defaults", {})
        dmap: dict[str, Any] = {}
        if not isinstance(defaults, Mapping):
            bad("", "defaults", "type", "expected a table [defaults] of field = value")
        else:
            partial = cls(**{k: v for k, v in kw.items() if k != "columns"}, columns={})
            for f, v in defaults.items():
                canon = aliases.get(f, f)
                if canon not in fields and not (f.startswith("custom.") and the_kind in CUSTOM_KINDS):
                    bad("defaults", f, "unknown_field", f"unknown field {f!r} for {the_kind}")
                    continue
                txt = _toml_default_text(v)
                if txt is None:
                    hint = " (write decimals as strings, e.g. \"0.25\")" if isinstance(v, float) else ""
                    bad("defaults", f, "type", f"unsupported default {v!r}{hint}")
                    continue
                typ = partial.field_type(canon)
                if typ.startswith(("ref:", "refs:")):
                    dmap[canon] = txt  # resolved during the import
                    continue
                if canon == "stage" and isinstance(txt, str):
                    proc = kw.get("process")
                    key = (kw.get("stages") or {}).get(txt, txt)
                    if proc is not None and not proc.has_stage(key):
                        bad("defaults", f, "unknown_stage", f"{txt!r} is not a stage of process {proc.key!r}")
                        continue
                    dmap[canon] = key
                    continue
                try:
                    parse = partial.parser(canon)
                    if isinstance(txt, list):
                        dmap[canon] = tuple(txt) if typ == "list" else parse(";".join(txt))
                    else:
                        dmap[canon] = parse(txt)
                except CellError as e:
                    bad("defaults", f, e.code, e.reason)
        kw["defaults"] = dmap

        # --- consistency ----------------------------------------------------------------------
        mapped = set(cols) | set(dmap)
        if the_kind in ("deals", "accounts", "products") and kw.get("currency") is None and "currency" not in mapped:
            money_field = {"deals": "amount", "accounts": "credit_limit", "products": "list_price"}[the_kind]
            if money_field in mapped:
                bad("", "currency", "required", f"{money_field} is mapped: give currency = \"USD\" (or map a currency column)")
        if the_kind == "deals":
            if "stage" not in mapped:
                bad("columns", None, "required", "deals need a stage: map columns.stage (or give defaults.stage)")
            if not ({"external_id", "id"} & set(cols)):
                bad("columns", None, "required", "deals need columns.external_id (or columns.id) to be matched on re-import")
        if the_kind == "activities":
            for need in ("kind", "at"):
                if need not in mapped:
                    bad("columns", None, "required", f"activities need {need}: map columns.{need} (or give defaults.{need})")
        if the_kind not in ("events", "processes") and not ({"id", "external_id", "name"} & set(cols)):
            bad("columns", None, "required", f"{the_kind} need columns.id, columns.external_id or columns.name")
        if probs:
            raise ImportMappingError(path, probs)
        return cls(**kw)

    # --- field plumbing ------------------------------------------------------------------------
    def field_type(self, field: str) -> str:
        if field.startswith("custom."):
            return "custom:" + self.types.get(field[7:], "str")
        return FIELDS[self.kind].get(field, "str")

    def parser(self, field: str) -> Parser:
        """The cell parser of ``field`` under this mapping's formats."""
        typ = self.field_type(field)
        if typ in ("str", "raw") or typ.startswith("ref:"):
            return cells.text
        if typ.startswith("refs:") or typ == "list":
            return cells.list_parser(self.list_separator)
        if typ == "date" or typ == "custom:date":
            return cells.date_parser(self.date_format)
        if typ == "datetime":
            return cells.datetime_parser(self.datetime_format, self.date_format, self.timezone, self.day_time)
        if typ == "amount":
            return cells.amount_parser(self.decimal_separator, self.thousands_separator)
        if typ in ("decimal", "custom:decimal"):
            return cells.decimal_parser(self.decimal_separator, self.thousands_separator)
        if typ == "currency":
            return cells.currency
        if typ == "probability":
            return cells.probability_parser(self.decimal_separator)
        if typ == "forecast":
            return cells.enum_parser(tuple(c.value for c in ForecastCategory), "forecast category")
        if typ == "activity_kind":
            return cells.enum_parser(tuple(k.value for k in ActivityKind), "activity kind")
        if typ == "activity_status":
            return cells.enum_parser(tuple(k.value for k in ActivityStatus), "activity status")
        if typ in ("int", "custom:int"):
            return cells.integer
        if typ in ("bool", "custom:bool"):
            return cells.boolean
        if typ == "map":
            return cells.json_map
        if typ == "custom:str":
            return cells.text
        if typ in ("stage", "process"):
            return cells.text
        raise ValueError(f"no parser for field type {typ!r}")  # pragma: no cover


def _load_process(ref: str, mapping_path: str, app: Any) -> Process:
    from salesprocess.app import SalesProcess

    sp = app if app is not None else SalesProcess()
    if ref in sp.process_keys():
        return sp.process(ref)
    p = Path(ref)
    if not p.is_absolute() and mapping_path and mapping_path != "<mapping>":
        p = Path(mapping_path).parent / p
    return sp.process_from_toml(p)
