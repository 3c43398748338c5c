"""A SOQL subset for the Salesforce fake.

``SELECT f1, f2, Parent.Field, (SELECT ... FROM ChildRelationship [WHERE ...] [ORDER BY ...])
FROM Object [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]``
where ``cond`` combines ``field op literal`` (``= != <> < <= > >= LIKE``), ``field [NOT] IN
(literals)``, ``AND``, ``OR``, ``NOT`` and parentheses. Literals: ``'strings'`` (with ``\\'``),
numbers, ``true``/``false``/``null``, dates ``2026-01-05`` and unquoted datetimes
``2026-01-05T09:00:00Z`` (or with an offset, ``.000+0000`` included).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import attrs

__all__ = ["Query", "SoqlError", "parse", "parse_datetime"]


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


_TOKEN = re.compile(
    r"""\s*(?:
    (?P<str>'(?:[^'\\]|\\.)*')
  | (?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][\w.]*)
    )""",
    re.VERBOSE,
)
KEYWORDS = {"SELECT", "FROM", "WHERE", "ORDER", "BY", "ASC", "DESC", "LIMIT", "OFFSET", "AND", "OR",
            "NOT", "IN", "LIKE", "NULLS", "FIRST", "LAST", "TRUE", "FALSE", "NULL"}


def parse_datetime(s: str) -> datetime:
    """``2026-01-05T09:00:00Z``, ``...+00:00`` or Salesforce's ``...000+0000``."""
    t = s.replace("Z", "+00:00")
    m = re.search(r"([+-])(\d{2})(\d{2})$", t)
    if m and ":" not in t[-6:]:
        t = t[: m.start()] + f"{m.group(1)}{m.group(2)}:{m.group(3)}"
    d = datetime.fromisoformat(t)
    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


@attrs.frozen
class _Tok:
    kind: str
    value: Any
    text: str


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise SoqlError("MALFORMED_QUERY", f"unexpected character at {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        raw = m.group(kind)
        if kind == "str":
            out.append(_Tok("lit", re.sub(r"\\(.)", r"\1", raw[1:-1]), raw))
        elif kind == "dt":
            out.append(_Tok("lit", parse_datetime(raw), raw))
        elif kind == "date":
            out.append(_Tok("lit", date.fromisoformat(raw), raw))
        elif kind == "num":
            out.append(_Tok("lit", Decimal(raw), raw))
        elif kind == "ident" and raw.upper() in KEYWORDS:
            up = raw.upper()
            if up in ("TRUE", "FALSE"):
                out.append(_Tok("lit", up == "TRUE", raw))
            elif up == "NULL":
                out.append(_Tok("lit", None, raw))
            else:
                out.append(_Tok("kw", up, raw))
        else:
            out.append(_Tok(kind, raw, raw))
    return out


Cond = Callable[[Callable[[str], Any]], bool]


@attrs.frozen
class Query:
    """A parsed SELECT: ``fields`` (names, dotted parents), ``children`` (child subqueries by
    relationship name), ``obj``, ``where`` (a predicate over a field getter), ``order``,
    ``limit``, ``offset`` and every field the WHERE clause names (``filter_fields``)."""

    fields: tuple[str, ...]
    children: tuple[tuple[str, Query], ...]
    obj: str
    where: Cond | None
    filter_fields: tuple[str, ...]
    order: tuple[tuple[str, bool, bool], ...]
    """(field, descending, nulls_last)."""
    limit: int | None
    offset: int | None


class _Parser:
    def __init__(self, toks: list[_Tok]) -> None:
        self.t = toks
        self.i = 0
        self.filter_fields: list[str] = []

    def peek(self, k: int = 0) -> _Tok | None:
        return self.t[self.i + k] if self.i + k < len(self.t) else None

    def kw(self, word: str) -> bool:
        p = self.peek()
        if p is not None and p.kind == "kw" and p.value == word:
            self.i += 1
            return True
        return False

    def expect_kw(self, word: str) -> None:
        if not self.kw(word):
            p = self.peek()
            raise SoqlError("MALFORMED_QUERY", f"expected {word}, found {p.text if p else 'the end'}")

    def punct(self, ch: str) -> bool:
        p = self.peek()
        if p is not None and p.kind == "punct" and p.value == ch:
            self.i += 1
            return True
        return False

    def ident(self) -> str:
        p = self.peek()
        if p is None or p.kind != "ident":
            raise SoqlError("MALFORMED_QUERY", f"expected a name, found {p.text if p else 'the end'}")
        self.i += 1
        return str(p.value)

    def literal(self) -> Any:
        p = self.peek()
        if p is None or p.kind != "lit":
            raise SoqlError("MALFORMED_QUERY", f"expected a value, found {p.text if p else 'the end'}")
        self.i += 1
        return p.value

    def query(self) -> Query:
        self.expect_kw("SELECT")
        fields: list[str] = []
        children: list[tuple[str, Query]] = []
        while True:
            if self.punct("("):
                sub = _Parser(self.t[self.i:])
                q = sub.query()
                self.i += sub.i
                if not self.punct(")"):
                    raise SoqlError("MALFORMED_QUERY", "a subquery must end with ')'")
                children.append((q.obj, q))
            else:
                fields.append(self.ident())
            if not self.punct(","):
                break
        self.expect_kw("FROM")
        obj = self.ident()
        where = None
        if self.kw("WHERE"):
            where = self.cond()
        order: list[tuple[str, bool, bool]] = []
        if self.kw("ORDER"):
            self.expect_kw("BY")
            while True:
                f = self.ident()
                desc = False
                if self.kw("DESC"):
                    desc = True
                else:
                    self.kw("ASC")
                nulls_last = desc
                if self.kw("NULLS"):
                    if self.kw("LAST"):
                        nulls_last = True
                    else:
                        self.expect_kw("FIRST")
                        nulls_last = False
                order.append((f, desc, nulls_last))
                if not self.punct(","):
                    break
        limit = offset = None
        if self.kw("LIMIT"):
            limit = int(self.literal())
        if self.kw("OFFSET"):
            offset = int(self.literal())
        return Query(tuple(fields), tuple(children), obj, where, tuple(self.filter_fields), tuple(order), limit, offset)

    def cond(self) -> Cond:
        left = self.conj()
        while self.kw("OR"):
            right = self.conj()
            left = (lambda a, b: lambda get: a(get) or b(get))(left, right)
        return left

    def conj(self) -> Cond:
        left = self.neg()
        while self.kw("AND"):
            right = self.neg()
            left = (lambda a, b: lambda get: a(get) and b(get))(left, right)
        return left

    def neg(self) -> Cond:
        if self.kw("NOT"):
            inner = self.neg()
            return lambda get: not inner(get)
        if self.punct("("):
            c = self.cond()
            if not self.punct(")"):
                raise SoqlError("MALFORMED_QUERY", "missing ')'")
            return c
        return self.comparison()

    def comparison(self) -> Cond:
        field = self.ident()
        self.filter_fields.append(field)
        negate = self.kw("NOT")
        if self.kw("IN"):
            if not self.punct("("):
                raise SoqlError("MALFORMED_QUERY", "IN needs a list in parentheses")
            vals = [self.literal()]
            while self.punct(","):
                vals.append(self.literal())
            if not self.punct(")"):
                raise SoqlError("MALFORMED_QUERY", "missing ')' after the IN list")
            return lambda get: (any(_eq(get(field), v) for v in vals)) != negate
        if negate:
            raise SoqlError("MALFORMED_QUERY", "NOT goes before IN or before a condition")
        if self.kw("LIKE"):
            pat = str(self.literal())
            rx = re.compile("^" + re.escape(pat).replace("%", ".*").replace("_", ".") + "$", re.IGNORECASE | re.DOTALL)
            return lambda get: isinstance(get(field), str) and rx.match(get(field)) is not None
        p = self.peek()
        if p is None or p.kind != "op":
            raise SoqlError("MALFORMED_QUERY", f"expected an operator after {field}")
        self.i += 1
        op = p.value
        val = self.literal()
        return lambda get: _compare(get(field), op, val)


def _norm(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, datetime) and isinstance(b, date) and not isinstance(b, datetime):
        return a.date(), b
    if isinstance(a, str) and isinstance(b, str):
        return a.lower(), b.lower()
    if isinstance(a, bool) or isinstance(b, bool):
        return a, b
    if isinstance(a, int | Decimal) and isinstance(b, int | Decimal):
        return Decimal(a), Decimal(b)
    return a, b


def _eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    x, y = _norm(a, b)
    try:
        return bool(x == y)
    except TypeError:
        return False


def _compare(a: Any, op: str, b: Any) -> bool:
    if op == "=":
        return _eq(a, b)
    if op in ("!=", "<>"):
        return not _eq(a, b)
    if a is None or b is None:
        return False
    x, y = _norm(a, b)
    try:
        if op == "<":
            return bool(x < y)
        if op == "<=":
            return bool(x <= y)
        if op == ">":
            return bool(x > y)
        if op == ">=":
            return bool(x >= y)
    except TypeError:
        return False
    return False


def parse(text: str) -> Query:
    p = _Parser(_tokens(text))
    q = p.query()
    if p.peek() is not None:
        raise SoqlError("MALFORMED_QUERY", f"unexpected {p.peek().text!r} at the end")  # type: ignore[union-attr]
    return q

