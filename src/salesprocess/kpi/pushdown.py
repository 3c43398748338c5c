"""Routing KPI queries to a store that computes them in its database (placeholder until a store
declares :attr:`~salesprocess.store.Capability.SQL_PUSHDOWN`)."""

from __future__ import annotations

from typing import Any


def try_pushdown(store: Any, metrics: Any, **kw: Any) -> Any:
    return None


def try_funnel_pushdown(store: Any, **kw: Any) -> Any:
    return None
