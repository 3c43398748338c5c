"""Cell parsers: strict, typed and cached.

Every parser takes the cell text (already stripped, never empty) and returns a typed value or
raises :class:`CellError` with a reason a person can act on. Dates repeat a lot in real files, so
date and datetime parsers cache what they have seen (bounded).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from salesprocess.codec import decode_value
from salesprocess.model import FrozenMap
from salesprocess.money import CURRENCY_MINOR_UNITS, Rate

__all__ = ["CellError"]

_CACHE_MAX = 100_000


class CellError(Exception):
    """A cell could not be read: ``code`` names the kind of problem, ``reason`` explains it."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


Parser = Callable[[str], Any]


def cached(parse: Parser) -> Parser:
    """Memoise a parser (values and errors) in a bounded dict."""
    memo: dict[str, Any] = {}

    def run(s: str) -> Any:
        try:
            v = memo[s]
        except KeyError:
            try:
                v = parse(s)
            except CellError as e:
                v = e
            if len(memo) >= _CACHE_MAX:
                memo.clear()
            memo[s] = v
        if isinstance(v, CellError):
            raise v
        return v

    return run


def text(s: str) -> str:
    return s


def date_parser(fmt: str | None) -> Parser:
    """Dates in ``fmt`` (a ``strptime`` format) or ISO 8601 (``2026-03-31``) when ``fmt`` is None."""

    if fmt is None:

        def parse(s: str) -> date:
            try:
                if len(s) > 10 and s[10] in "T ":  # an instant where a date is expected: keep its day
                    return datetime.fromisoformat(s).date()
                return date.fromisoformat(s)
            except ValueError:
                raise CellError("date", f"not an ISO 8601 date (YYYY-MM-DD): {s!r}") from None

    else:

        def parse(s: str) -> date:
            try:
                return datetime.strptime(s, fmt).date()
            except ValueError:
                raise CellError("date", f"not a date in the format {fmt!r}: {s!r}") from None

    return cached(parse)


def datetime_parser(fmt: str | None, date_fmt: str | None, tz: tzinfo, day_time: time) -> Parser:
    """Instants: ``fmt`` (``strptime``) or ISO 8601; naive values are read in ``tz``; a bare date
    (in ``date_fmt`` or ISO) means ``day_time`` on that day in ``tz``."""
    as_date = date_parser(date_fmt)

    def parse(s: str) -> datetime:
        d: datetime | None = None
        if fmt is None:
            if len(s) > 10:
                try:
                    d = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
                except ValueError:
                    d = None
        else:
            try:
                d = datetime.strptime(s, fmt)
            except ValueError:
                d = None
        if d is None:
            try:
                day = as_date(s)
            except CellError:
                inst = f"an instant in the format {fmt!r}" if fmt else "an ISO 8601 instant"
                day = f"a date in the format {date_fmt!r}" if date_fmt else "an ISO 8601 date"
                raise CellError("datetime", f"neither {day} nor {inst}: {s!r}") from None
            return datetime.combine(day, day_time, tz)
        if d.tzinfo is None:
            return d.replace(tzinfo=tz)
        return d

    return cached(parse)


def decimal_parser(decimal_sep: str = ".", thousands_sep: str = "") -> Parser:
    """Plain decimal numbers (``1234.50``, ``-3``); refuses exponents, NaN, currency signs and
    anything a spreadsheet might have mangled (``1.2.3``, ``12,34``, ``0x1F``)."""
    d = re.escape(decimal_sep)
    if thousands_sep:
        t = re.escape(thousands_sep)
        body = rf"(?:[0-9]{{1,3}}(?:{t}[0-9]{{3}})+|[0-9]+)(?:{d}[0-9]*)?|{d}[0-9]+"
    else:
        body = rf"[0-9]+(?:{d}[0-9]*)?|{d}[0-9]+"
    rx = re.compile(rf"[+-]?(?:{body})")
    plain = decimal_sep == "." and not thousands_sep

    def parse(s: str) -> Decimal:
        if rx.fullmatch(s) is None:
            hint = ""
            if re.fullmatch(r"[+-]?[0-9.,]*[eE][+-]?[0-9]+", s):
                hint = " (exponent notation is refused; write the digits)"
            elif s.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                hint = " (NaN and infinity are not amounts)"
            raise CellError("number", f"not a plain decimal number: {s!r}{hint}")
        if not plain:
            s = s.replace(thousands_sep, "") if thousands_sep else s
            s = s.replace(decimal_sep, ".")
        try:
            return Decimal(s)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
            raise CellError("number", f"not a number: {s!r}") from None

    return parse


def amount_parser(decimal_sep: str = ".", thousands_sep: str = "") -> Parser:
    num = decimal_parser(decimal_sep, thousands_sep)

    def parse(s: str) -> Decimal:
        v: Decimal = num(s)
        if v < 0:
            raise CellError("negative", f"amount must not be negative, got {s}")
        return v

    return cached(parse)


def currency(s: str) -> str:
    c = s.upper()
    if c not in CURRENCY_MINOR_UNITS:
        raise CellError("currency", f"not an ISO 4217 currency code: {s!r}")
    return c


def integer(s: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", s):
        raise CellError("integer", f"not a whole number: {s!r}")
    return int(s)


_TRUE = frozenset({"true", "yes", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "f"})


def boolean(s: str) -> bool:
    v = s.lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise CellError("boolean", f"not true/false: {s!r}")


def probability_parser(decimal_sep: str = ".") -> Parser:
    """``0.25`` or ``25%``, within [0, 1]."""
    num = decimal_parser(decimal_sep)

    def parse(s: str) -> Rate:
        pct = s.endswith("%")
        v: Decimal = num(s[:-1].strip() if pct else s)
        r = Rate.percent(v) if pct else Rate(v)
        if not r.is_probability():
            raise CellError("probability", f"probability must be within 0..1 (or 0%..100%), got {s}")
        return r

    return cached(parse)


def list_parser(sep: str) -> Parser:
    """A list: a JSON array (``["a", "b"]``) or items separated by ``sep`` (``a;b``)."""

    def parse(s: str) -> tuple[str, ...]:
        if s.startswith("["):
            try:
                v = json.loads(s)
            except ValueError:
                raise CellError("list", f"not a JSON array: {s!r}") from None
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise CellError("list", f"expected an array of strings: {s!r}")
            return tuple(v)
        return tuple(x.strip() for x in s.split(sep) if x.strip())

    return cached(parse)


def json_map(s: str) -> FrozenMap:
    """A JSON object (values in the tagged encoding of :mod:`salesprocess.codec`)."""
    try:
        v = json.loads(s)
    except ValueError:
        raise CellError("json", f"not a JSON object: {s[:60]!r}") from None
    return json_map_value(v)


def json_map_value(v: Any) -> FrozenMap:
    if not isinstance(v, dict):
        raise CellError("json", f"expected a JSON object, got {type(v).__name__}")
    try:
        d = decode_value(v)
        if isinstance(d, FrozenMap):
            return d
        return FrozenMap({str(k): decode_value(x) for k, x in v.items()})
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise CellError("json", f"unreadable value in the object: {e}") from None


def enum_parser(values: tuple[str, ...], what: str) -> Parser:
    allowed = {v.lower(): v for v in values}

    def parse(s: str) -> str:
        v = allowed.get(s.lower())
        if v is None:
            raise CellError(what, f"unknown {what} {s!r} (expected one of: {', '.join(values)})")
        return v

    return parse
