"""Find the line of a value in TOML text from its data path (``versions[1].rates.tiers[0].rate``).

``tomllib`` gives no positions, so this scans the text: table headers, arrays of tables and
``key = value`` lines. It is used only to point error messages at lines; a path it cannot place
falls back to its nearest placed parent.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

_AOT = re.compile(r"^\s*\[\[\s*([^\[\]]+?)\s*\]\]\s*(?:#.*)?$")
_TAB = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_KEYLINE = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")


def _split_key(k: str) -> list[str]:
    parts = re.findall(r"[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'", k)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def line_map(text: str) -> dict[str, int]:
    """Paths of tables, array elements and keys → 1-based line numbers."""
    out: dict[str, int] = {}
    arrays: dict[str, int] = {}  # generic array path -> current index
    current = ""
    in_multiline: str | None = None
    depth = 0  # open brackets of a multi-line value
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw
        if in_multiline is not None:
            if in_multiline in line:
                in_multiline = None
            continue
        if depth > 0:
            depth += line.count("[") + line.count("{") - line.count("]") - line.count("}")
            continue
        aot = _AOT.match(line)
        m = aot or _TAB.match(line)
        if m is not None:
            keys = _split_key(m.group(1))
            if aot is not None:
                parent = _resolve(keys[:-1], arrays)
                generic = f"{parent}.{keys[-1]}" if parent else keys[-1]
                idx = arrays.get(generic, -1) + 1
                arrays[generic] = idx
                concrete = f"{generic}[{idx}]"
                out.setdefault(generic, no)
            else:
                concrete = _resolve(keys, arrays)
            current = concrete
            out[current] = no
            continue
        k = _KEYLINE.match(line)
        if k is not None:
            keys = _split_key(k.group(1))
            path = ".".join(([current] if current else []) + keys)
            out[path] = no
            rest = line[k.end():]
            for q in ('"""', "'''"):
                if rest.count(q) == 1:
                    in_multiline = q
            depth = rest.count("[") + rest.count("{") - rest.count("]") - rest.count("}")
            if depth < 0:
                depth = 0
    return out


def _resolve(keys: list[str], arrays: dict[str, int]) -> str:
    parts: list[str] = []
    for k in keys:
        parts.append(k)
        generic = ".".join(parts)
        if generic in arrays:
            parts[-1] = f"{k}[{arrays[generic]}]"
    return ".".join(parts)


_TAIL = re.compile(r"(\.[^.\[\]]+|\[\d+\])$")


def line_of(lines: dict[str, int], path: str) -> int | None:
    p = path
    while p:
        if p in lines:
            return lines[p]
        m = _TAIL.search(p)
        if m is None:
            return None
        p = p[: m.start()]
    return None


def lines_for(text: str, paths: list[str]) -> dict[str, int]:
    """Each of ``paths`` that can be placed → its line."""
    lm = line_map(text)
    out = {}
    for p in paths:
        n = line_of(lm, p)
        if n is not None:
            out[p] = n
    return out


def decode_position(e: tomllib.TOMLDecodeError) -> tuple[int | None, int | None]:
    """Line and column of a TOML syntax error (parsed from its message)."""
    m = re.search(r"line (\d+), column (\d+)", str(e))
    if m is None:
        return None, None
    return int(m.group(1)), int(m.group(2))


def load(text: str) -> dict[str, Any]:
    return tomllib.loads(text)
