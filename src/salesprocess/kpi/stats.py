"""Exact statistics shared by the pure-Python and the SQL pushdown paths.

Everything is ``Decimal`` or ``int`` arithmetic in one private context, so the same inputs give the
same digits whichever engine gathered them.

Percentiles use **linear interpolation between closest ranks** (Hyndman & Fan type 7, the rule of
PostgreSQL's ``percentile_cont`` and of spreadsheet ``PERCENTILE.INC``): for ``n`` sorted values
``v[0..n-1]`` and a fraction ``p``, let ``h = (n - 1) * p``; the result is
``v[floor(h)] + (h - floor(h)) * (v[ceil(h)] - v[floor(h)])``. The median is ``p = 0.5`` (the mean
of the two middle values when ``n`` is even).

Durations are measured in whole microseconds between two instants and reported in days rounded
half-even to :data:`DAY_PLACES` decimal places; interpolation and means run on the microseconds, and
only the final value is converted.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from salesprocess.money import Money, minor_units

__all__ = [
    "DAY_PLACES",
    "RATIO_PLACES",
    "days",
    "div",
    "interpolate",
    "micros_between",
    "percentile",
    "percentile_positions",
    "tidy",
]

CTX: Final = decimal.Context(prec=40, rounding=ROUND_HALF_EVEN, Emax=999999, Emin=-999999)
RATIO_PLACES: Final = 10
"""Rates, ratios and scores are rounded half-even to this many decimal places."""
DAY_PLACES: Final = 4
"""Durations in days are rounded half-even to this many decimal places."""
MICROS_PER_DAY: Final = 86_400_000_000
_ONE_US: Final = timedelta(microseconds=1)


def tidy(d: Decimal, places: int = RATIO_PLACES) -> Decimal:
    """``d`` rounded half-even to ``places`` and stripped of trailing zeros (``0.75``, ``3``)."""
    q = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN, context=CTX)
    if q == q.to_integral_value():
        return q.quantize(Decimal(1), context=CTX)
    return q.normalize(CTX)


def div(num: Decimal | int, den: Decimal | int, places: int = RATIO_PLACES) -> Decimal | None:
    """``num / den`` rounded with :func:`tidy`; ``None`` when ``den`` is zero."""
    if den == 0:
        return None
    return tidy(CTX.divide(Decimal(num), Decimal(den)), places)


def micros_between(start: datetime, end: datetime) -> int:
    """Whole microseconds from ``start`` to ``end`` (both aware)."""
    return (end - start) // _ONE_US


def days(micros: Decimal | int) -> Decimal:
    """A duration in microseconds as days, rounded half-even to :data:`DAY_PLACES` places."""
    return tidy(CTX.divide(Decimal(micros), Decimal(MICROS_PER_DAY)), DAY_PLACES)


def percentile_positions(n: int, p: Decimal) -> tuple[int, int, Decimal]:
    """For ``n`` sorted values: the 0-based ranks ``lo``, ``hi`` to read and the weight of ``hi``."""
    if n <= 0:
        raise ValueError("percentile of no values")
    if not Decimal(0) <= p <= Decimal(1):
        raise ValueError(f"percentile fraction must be within [0, 1], got {p}")
    h = CTX.multiply(Decimal(n - 1), p)
    lo = int(h.to_integral_value(rounding=decimal.ROUND_FLOOR))
    hi = int(h.to_integral_value(rounding=decimal.ROUND_CEILING))
    return lo, hi, CTX.subtract(h, Decimal(lo))


def interpolate(lo_value: Decimal | int, hi_value: Decimal | int, weight: Decimal) -> Decimal:
    """``lo + weight * (hi - lo)`` exactly."""
    a, b = Decimal(lo_value), Decimal(hi_value)
    return CTX.add(a, CTX.multiply(weight, CTX.subtract(b, a)))


def percentile(sorted_values: Sequence[Decimal | int], p: Decimal) -> Decimal | None:
    """The ``p`` percentile (fraction) of already sorted values; ``None`` for no values."""
    n = len(sorted_values)
    if n == 0:
        return None
    lo, hi, w = percentile_positions(n, p)
    return interpolate(sorted_values[lo], sorted_values[hi], w)


def mean(values: Sequence[Decimal | int]) -> Decimal | None:
    if not values:
        return None
    total = Decimal(0)
    for v in values:
        total = CTX.add(total, Decimal(v))
    return CTX.divide(total, Decimal(len(values)))


def pad_money(amount: Decimal, currency: str) -> Money:
    """``amount`` in ``currency`` written with at least the currency's minor digits (``100`` →
    ``100.00``); never rounds, so an amount with finer digits keeps them."""
    exp = minor_units(currency)
    t = amount.as_tuple().exponent
    if isinstance(t, int) and t > -exp:
        amount = amount.quantize(Decimal(1).scaleb(-exp), context=CTX)
    return Money(amount, currency)


def round_money(amount: Decimal, currency: str) -> Money:
    """``amount`` in ``currency`` rounded half-even to the currency's minor units."""
    return Money(amount, currency).round(ROUND_HALF_EVEN)
