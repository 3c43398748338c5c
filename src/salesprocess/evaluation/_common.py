"""Shared pieces of the evaluation package: its error, rating bands and number helpers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs

from ..errors import DomainError, Problem
from ..money import Money, to_decimal

__all__ = ["EvaluationError", "RatingBand", "band_for"]

HUNDRED = Decimal(100)
CENT = Decimal("0.01")


class EvaluationError(DomainError):
    """An evaluation cannot be computed or its input is invalid; ``problems`` lists every finding
    (a rating outside the scale, an unknown competency, a missing target...)."""

    def __init__(self, problems: Sequence[Problem], *, source: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        where = f"{source}: " if source else ""
        shown = "; ".join(str(p) for p in self.problems[:8])
        more = f" (and {len(self.problems) - 8} more)" if len(self.problems) > 8 else ""
        super().__init__(f"{where}{len(self.problems)} problem(s): {shown}{more}")


def _tup(v: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(v)


def _dec(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else to_decimal(v)


@attrs.frozen
class RatingBand:
    """A named band of scores from ``min_score`` (inclusive) up to the next band."""

    name: str
    min_score: Decimal = attrs.field(converter=_dec)


DEFAULT_BANDS: tuple[RatingBand, ...] = (
    RatingBand("outstanding", "110"),
    RatingBand("exceeds", "100"),
    RatingBand("meets", "85"),
    RatingBand("developing", "70"),
    RatingBand("below", "0"),
)
"""Bands on the 0–100+ score scale (100 means every target met exactly)."""


def band_for(score: Decimal | None, bands: Iterable[RatingBand]) -> str | None:
    """The band of the highest threshold ``score`` reaches (``None`` below all or without score)."""
    if score is None:
        return None
    best: RatingBand | None = None
    for b in bands:
        if score >= b.min_score and (best is None or b.min_score > best.min_score):
            best = b
    return None if best is None else best.name


def number(v: Any) -> Decimal | None:
    """A KPI value as a plain number (Money as its amount, ``None`` kept)."""
    if v is None:
        return None
    if isinstance(v, Money):
        return v.amount
    if isinstance(v, bool):
        return Decimal(int(v))
    if isinstance(v, int | Decimal):
        return Decimal(v)
    return to_decimal(v)


def q2(v: Decimal) -> Decimal:
    """Rounded half-even to two places (the scale scores are shown on)."""
    return v.quantize(CENT, rounding=ROUND_HALF_EVEN)


def competition_ranks(keys: Sequence[Any]) -> list[int]:
    """Standard competition ranks (1, 1, 3) of ``keys`` already sorted best first."""
    out: list[int] = []
    prev: Any = object()
    rank = 0
    for n, k in enumerate(keys, 1):
        if k != prev:
            rank = n
            prev = k
        out.append(rank)
    return out
