"""Routing KPI queries to stores that compute them in their database.

A store that declares :attr:`~salesprocess.store.Capability.SQL_PUSHDOWN` and speaks a dialect
the SQL generator knows (``sqlite``, ``postgresql``) gets the query; anything the generator cannot
express (another KPI, a ``custom.*`` dimension, :class:`~salesprocess.kpi.KpiInputs`, an amount
SQLite cannot hold exactly in minor units) falls back to the pure-Python path — or, with
``engine="sql"``, raises :class:`~salesprocess.errors.KpiError` saying why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from salesprocess.errors import KpiError, Problem
from salesprocess.store import Capability

if TYPE_CHECKING:
    from .engine import KpiTable
    from .funnel import Funnel

__all__ = ["can_push_down", "try_funnel_pushdown", "try_pushdown"]


def can_push_down(store: Any) -> bool:
    caps: frozenset[str] = getattr(store, "capabilities", frozenset())
    return Capability.SQL_PUSHDOWN in caps and getattr(store, "dialect", None) in (
        "sqlite",
        "postgresql",
    )


def _refuse(required: bool, why: str) -> None:
    if required:
        raise KpiError([Problem("engine", "pushdown", f"cannot compute in the database: {why}")])


def try_pushdown(store: Any, metrics: Any, *, required: bool = False, **kw: Any) -> KpiTable | None:
    """The query computed by the store's database, or ``None`` to compute it in Python."""
    if not can_push_down(store):
        _refuse(required, f"{type(store).__name__} has no SQL pushdown")
        return None
    try:
        from salesprocess_adapters import kpi_sql
    except ImportError:  # pragma: no cover - adapters ship in the same wheel
        _refuse(required, "salesprocess_adapters is not installed")
        return None
    try:
        return kpi_sql.compute(store, metrics, **kw)
    except kpi_sql.Unsupported as e:
        _refuse(required, str(e))
        return None


def try_funnel_pushdown(store: Any, *, required: bool = False, fiscal: Any = None,
                        **kw: Any) -> list[Funnel] | None:  # fmt: skip
    """The funnel computed by the store's database, or ``None`` to compute it in Python."""
    if not can_push_down(store):
        _refuse(required, f"{type(store).__name__} has no SQL pushdown")
        return None
    from salesprocess_adapters import kpi_sql

    try:
        return kpi_sql.funnel(store, **kw)
    except kpi_sql.Unsupported as e:
        _refuse(required, str(e))
        return None
