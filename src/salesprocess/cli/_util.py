"""Shared CLI plumbing: output formats, progress, errors, opening stores."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import IO, Any, TypeVar

from ..money import Money, Rate

T = TypeVar("T")

FORMATS = ("table", "json", "csv")


class CLIError(Exception):
    """An error to print as one line (exit code ``code``)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def jsonable(v: Any) -> Any:
    """JSON-ready values: Decimal and Money as strings, dates/instants ISO 8601."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, Money):
        return str(v.amount)
    if isinstance(v, Rate):
        return str(v.value)
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [jsonable(x) for x in v]
    if isinstance(v, float):
        return repr(v)
    return str(v)


def cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, Money):
        return f"{v.amount:,.{v.exponent}f} {v.currency}"
    if isinstance(v, Rate):
        return f"{v.as_percent:.1f}%"
    if isinstance(v, Decimal):
        return f"{v:,}"
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Enum):
        return str(v.value)
    if isinstance(v, list | tuple):
        return ", ".join(cell(x) for x in v)
    return str(v)


def _width(s: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *, title: str | None = None) -> str:
    """A plain-text table that aligns CJK text by display width."""
    cols = list(columns or (rows[0].keys() if rows else []))
    cells = [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max([_width(c)] + [_width(row[i]) for row in cells]) for i, c in enumerate(cols)]
    out = io.StringIO()
    if title:
        out.write(title + "\n")

    def line(vals: Sequence[str]) -> str:
        parts = []
        for i, v in enumerate(vals):
            pad = widths[i] - _width(v)
            numeric = v[:1].isdigit() or (v[:1] == "-" and v[1:2].isdigit())
            parts.append(" " * pad + v if numeric else v + " " * pad)
        return "  ".join(parts).rstrip()

    out.write(line(cols) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(line(row) + "\n")
    return out.getvalue()


def emit(rows: Sequence[Mapping[str, Any]], fmt: str, *, columns: Sequence[str] | None = None,
         title: str | None = None, out: IO[str] | None = None, json_obj: Any = None) -> None:
    """Write rows as a table, JSON (``json_obj`` when given, else the rows) or CSV."""
    out = out or sys.stdout
    if fmt == "json":
        out.write(json.dumps(jsonable(json_obj if json_obj is not None else list(rows)), ensure_ascii=False, indent=2) + "\n")
    elif fmt == "csv":
        cols = list(columns or (rows[0].keys() if rows else []))
        w = csv.writer(out, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([jsonable(r.get(c)) if r.get(c) is not None else "" for c in cols])
    else:
        out.write(table(rows, columns, title=title))


class Progress:
    """A progress bar on stderr for work that may take more than a couple of seconds.

    Redraws at most ten times a second; prints nothing when ``quiet``.
    """

    def __init__(self, label: str, total: int | None = None, *, quiet: bool = False, stream: IO[str] | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self._last = 0.0
        self._t0 = time.monotonic()
        self._tty = self.stream.isatty()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if not self.quiet and now - self._last >= (0.1 if self._tty else 2.0):
            self._last = now
            self._draw(now)

    def _draw(self, now: float, final: bool = False) -> None:
        rate = self.done / max(now - self._t0, 1e-9)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            msg = f"{self.label} [{bar:<30}] {self.done:,}/{self.total:,} ({rate:,.0f}/s)"
        else:
            msg = f"{self.label} {self.done:,} ({rate:,.0f}/s)"
        end = "\n" if (final or not self._tty) else ""
        self.stream.write(("\r" if self._tty else "") + msg + end)
        self.stream.flush()

    def iter(self, items: Iterable[T]) -> Iterator[T]:
        for it in items:
            yield it
            self.update()

    def close(self) -> None:
        if not self.quiet:
            self._draw(time.monotonic(), final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(db: str | None, *, app: Any = None, create: bool = True) -> Any:
    """Open ``--db``: a SQLite path (default ``salesprocess.sqlite``), ``postgresql://`` URL or ``memory:``."""
    from ..app import SalesProcess

    sp = app or SalesProcess()
    url = db or os.environ.get("SALESPROCESS_DB") or "salesprocess.sqlite"
    return sp.open_store(url)
