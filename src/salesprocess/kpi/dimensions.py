"""Dimensions KPIs group and filter by.

Every record a KPI reads (a deal, a done activity, a survey response, an account's revenue) has an
owner, an account and products; the other dimensions derive from those through the entities:

==================  ==============================================================================
``owner``           the deal's owner (activities: the activity's owner, else the deal's; survey
                    responses: the response's, else the deal's, else the account's owner; revenue:
                    the account's owner)
``team``            the owner's team
``region``          the owner's region, else the owner's team's region, else the account's region
``manager``         the owner's manager, else the owner's team's manager
``account``         the account
``industry``        the account's industry (also ``size_band``, ``country``)
``product``         each product of the deal (a deal with several products counts once under each;
                    money then adds up across products to more than the total — filter instead when
                    you need a total)
``product_family``  each distinct family of the deal's products
``stage``           the deal's stage (as known at ``asof``)
``status``          open, won or lost
``process``         the deal's process key
``currency``        the currency of the deal's amount (revenue: of the entry)
``forecast_category`` the deal's forecast category
``custom.NAME``     the deal's custom field ``NAME`` (as text)
==================  ==============================================================================

Deal dimensions take the deal as known at ``asof``. ``period`` is not a dimension of the record:
it comes from the query's ``period`` kind and each KPI's :class:`~salesprocess.kpi.registry.Basis`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from salesprocess.model import Deal

from .facts import View

__all__ = ["DIMENSIONS", "dimension_values", "is_dimension"]

DimValue = str | None


def _deal(r: Any) -> Deal | None:
    return r if isinstance(r, Deal) else r.deal


def _rep(v: View, r: Any) -> Any:
    o = r.owner_id
    return v.reps.get(o) if o is not None else None


def _team(v: View, r: Any) -> Any:
    rep = _rep(v, r)
    if rep is None or rep.team_id is None:
        return None
    return v.teams.get(rep.team_id)


def _account(v: View, r: Any) -> Any:
    a = r.account_id
    return v.accounts.get(a) if a is not None else None


def _region(v: View, r: Any) -> DimValue:
    rep = _rep(v, r)
    if rep is not None and rep.region:
        return str(rep.region)
    team = _team(v, r)
    if team is not None and team.region:
        return str(team.region)
    acc = _account(v, r)
    return str(acc.region) if acc is not None and acc.region else None


def _manager(v: View, r: Any) -> DimValue:
    rep = _rep(v, r)
    if rep is not None and rep.manager_id:
        return str(rep.manager_id)
    team = _team(v, r)
    return str(team.manager_id) if team is not None and team.manager_id else None


def _acc_attr(name: str) -> Callable[[View, Any], DimValue]:
    def f(v: View, r: Any) -> DimValue:
        acc = _account(v, r)
        val = getattr(acc, name, None) if acc is not None else None
        return None if val is None else str(val)

    return f


def _deal_attr(name: str) -> Callable[[View, Any], DimValue]:
    def f(v: View, r: Any) -> DimValue:
        d = _deal(r)
        val = getattr(d, name, None) if d is not None else None
        if val is None:
            return None
        return str(getattr(val, "value", val))

    return f


def _currency(v: View, r: Any) -> DimValue:
    d = _deal(r)
    if d is not None:
        return d.amount.currency if d.amount is not None else None
    entry = getattr(r, "entry", None)
    return entry.amount.currency if entry is not None else None


def _families(v: View, r: Any) -> tuple[DimValue, ...]:
    fams = []
    for p in r.product_ids:
        prod = v.products.get(p)
        fam = prod.family if prod is not None else None
        if fam not in fams:
            fams.append(fam)
    return tuple(fams)


def _products(v: View, r: Any) -> tuple[DimValue, ...]:
    return tuple(dict.fromkeys(r.product_ids))


def _owner(v: View, r: Any) -> DimValue:
    return r.owner_id  # type: ignore[no-any-return]


def _account_id(v: View, r: Any) -> DimValue:
    return r.account_id  # type: ignore[no-any-return]


def _team_id(v: View, r: Any) -> DimValue:
    rep = _rep(v, r)
    return rep.team_id if rep is not None else None


SINGLE: dict[str, Callable[[View, Any], DimValue]] = {
    "owner": _owner,
    "team": _team_id,
    "region": _region,
    "manager": _manager,
    "account": _account_id,
    "industry": _acc_attr("industry"),
    "size_band": _acc_attr("size_band"),
    "country": _acc_attr("country"),
    "stage": _deal_attr("stage"),
    "status": _deal_attr("status"),
    "process": _deal_attr("process"),
    "forecast_category": _deal_attr("forecast_category"),
    "currency": _currency,
}
MULTI: dict[str, Callable[[View, Any], tuple[DimValue, ...]]] = {
    "product": _products,
    "product_family": _families,
}
DIMENSIONS: tuple[str, ...] = (*SINGLE, *MULTI, "custom.<field>", "period")


def is_dimension(name: str) -> bool:
    return name in SINGLE or name in MULTI or (name.startswith("custom.") and len(name) > 7)


def dimension_values(view: View, record: Any, name: str) -> tuple[DimValue, ...]:
    """The values of dimension ``name`` for ``record`` (several for products; ``(None,)`` if unset)."""
    f = SINGLE.get(name)
    if f is not None:
        return (f(view, record),)
    m = MULTI.get(name)
    if m is not None:
        vals = m(view, record)
        return vals or (None,)
    if name.startswith("custom."):
        d = _deal(record)
        if d is None:
            return (None,)
        val = d.custom.get(name[7:])
        return (None if val is None else str(val),)
    raise KeyError(name)
