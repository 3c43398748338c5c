"""A small TOML writer for the plain data the library dumps (tables, arrays of tables, scalars).

Reading uses the standard library's ``tomllib``; this is the inverse for our own documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else _str(k)


def _str(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, Decimal):
        return _str(str(v))
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return _inline(v)
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _inline(v: Any) -> str:
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_inline(x)}" for k, x in v.items()) + " }" if v else "{}"
    return _scalar(v)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list | tuple) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _emit(d: Mapping[str, Any], prefix: str, lines: list[str]) -> None:
    for k, v in d.items():
        if not isinstance(v, Mapping) and not _is_table_array(v):
            lines.append(f"{_key(k)} = {_scalar(v)}")
    for k, v in d.items():
        name = f"{prefix}.{_key(k)}" if prefix else _key(k)
        if isinstance(v, Mapping):
            if all(not isinstance(x, Mapping) and not _is_table_array(x) for x in v.values()):
                lines.append("")
                lines.append(f"[{name}]")
                _emit(v, name, lines)
            else:
                lines.append("")
                lines.append(f"[{name}]")
                _emit(v, name, lines)
        elif _is_table_array(v):
            for item in v:
                lines.append("")
                lines.append(f"[[{name}]]")
                _emit(item, name, lines)


def dumps(data: Mapping[str, Any]) -> str:
    lines: list[str] = []
    _emit(data, "", lines)
    return "\n".join(lines).lstrip("\n") + "\n"
