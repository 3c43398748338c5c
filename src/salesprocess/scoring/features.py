"""Deal attributes and activity signals as the scoring models see them, at one instant.

:func:`deal_attributes` gives raw values (numbers, strings, booleans) that rules test;
:func:`bin_attributes` turns them into the categorical *features* the naive Bayes model counts.

Raw attributes (as known at the instant; see :mod:`salesprocess.risk.facts` for the activity and
close-date definitions):

``stage``, ``process``, ``owner``, ``team``, ``region``, ``industry``, ``size_band``, ``country``,
``product`` (first product id), ``product_family`` (first product's family), ``amount`` (Decimal or
None), ``currency``, ``contacts`` (engaged), ``activities_30d``, ``activities``, ``competitors``
(count), ``has_competitor``, ``pushes``, ``age_days``, ``days_in_stage``, ``days_since_activity``,
``has_next_step``, ``manual_probability`` (a probability set by a user), ``custom.NAME``.

Features (bins): ``amount_band`` (quartiles of the training amounts, ``q1``–``q4``, or ``none``),
``contacts`` (``0``, ``1``, ``2``, ``3+``), ``activities_30d`` (``0``, ``1-2``, ``3-5``, ``6+``),
``competitor`` (``yes``/``no``), ``pushes`` (``0``, ``1``, ``2+``), ``age`` (``<30d``,
``30-90d``, ``90-180d``, ``180d+``), ``next_step`` (``yes``/``no``; not a default feature: planned
activities carry no creation time, so history cannot say whether a past deal had one) and the
categorical attributes as they are (a missing value is ``∅``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from salesprocess.model import Deal, EventSource
from salesprocess.risk.facts import DealFacts, FactsBuilder

__all__ = ["DEFAULT_FEATURES", "bin_attributes", "deal_attributes"]

DEFAULT_FEATURES = (
    "stage",
    "size_band",
    "industry",
    "region",
    "team",
    "product_family",
    "amount_band",
    "contacts",
    "activities_30d",
    "competitor",
    "pushes",
    "age",
)


def deal_attributes(deal: Deal, facts: DealFacts, builder: FactsBuilder) -> dict[str, Any]:
    """Raw attributes of ``deal`` (the builder's view and instant)."""
    v = builder.view
    acc = v.accounts.get(deal.account_id) if deal.account_id else None
    rep = v.reps.get(deal.owner_id) if deal.owner_id else None
    prod = v.products.get(deal.product_ids[0]) if deal.product_ids else None
    region = (rep.region if rep is not None and rep.region else None) or (acc.region if acc else None)
    attrs: dict[str, Any] = {
        "stage": deal.stage,
        "process": deal.process,
        "owner": deal.owner_id,
        "team": facts.team_id,
        "region": region,
        "industry": acc.industry if acc else None,
        "size_band": acc.size_band if acc else None,
        "country": acc.country if acc else None,
        "product": deal.product_ids[0] if deal.product_ids else None,
        "product_family": prod.family if prod else None,
        "amount": deal.amount.amount if deal.amount is not None else None,
        "currency": deal.amount.currency if deal.amount is not None else None,
        "contacts": facts.contacts_engaged,
        "activities_30d": facts.activities_30d,
        "activities": facts.activities_total,
        "competitors": len(deal.competitors),
        "has_competitor": bool(deal.competitors),
        "pushes": facts.pushes,
        "age_days": facts.age_days,
        "days_in_stage": facts.days_in_stage,
        "days_since_activity": facts.days_since_activity,
        "has_next_step": facts.next_step_at is not None,
        "manual_probability": deal.probability_source is EventSource.USER,
    }
    for k, val in deal.custom.items():
        attrs[f"custom.{k}"] = val
    return attrs


def _band(n: int, edges: Sequence[tuple[int, str]], top: str) -> str:
    for lim, label in edges:
        if n <= lim:
            return label
    return top


def bin_attributes(
    a: Mapping[str, Any], features: Sequence[str], amount_edges: Sequence[Decimal]
) -> dict[str, str]:
    """Categorical features from raw attributes (see the module documentation)."""
    out: dict[str, str] = {}
    for f in features:
        if f == "amount_band":
            amt = a.get("amount")
            if amt is None:
                out[f] = "none"
            else:
                i = sum(1 for e in amount_edges if amt > e)
                out[f] = f"q{i + 1}"
        elif f == "contacts":
            out[f] = _band(int(a["contacts"]), ((0, "0"), (1, "1"), (2, "2")), "3+")
        elif f == "activities_30d":
            out[f] = _band(int(a["activities_30d"]), ((0, "0"), (2, "1-2"), (5, "3-5")), "6+")
        elif f == "competitor":
            out[f] = "yes" if a["has_competitor"] else "no"
        elif f == "pushes":
            out[f] = _band(int(a["pushes"]), ((0, "0"), (1, "1")), "2+")
        elif f == "age":
            out[f] = _band(int(a["age_days"]), ((29, "<30d"), (89, "30-90d"), (179, "90-180d")), "180d+")
        elif f == "next_step":
            out[f] = "yes" if a["has_next_step"] else "no"
        else:
            val = a.get(f)
            out[f] = "∅" if val is None else str(val)
    return out
