"""Plugin registering the in-memory store under the ``memory:`` URL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from salesprocess.hookspecs import hookimpl
from salesprocess.store import MemoryStore


def _open(url: str, **options: Any) -> MemoryStore:
    options.pop("app", None)
    return MemoryStore()


@hookimpl
def salesprocess_register_adapters(register: Callable[..., None]) -> None:
    register("store", "memory", _open, "in-memory store (tests, small apps)")
