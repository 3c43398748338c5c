"""One explainable 0–100 score from weighted signals, with contributions that add up to it.

Each part is ``(signal, points, severity)``; its raw contribution is ``points × severity``. The
score is ``min(100, Σ raw)`` rounded half-even to 2 decimal places. Contributions are the raw ones
(scaled down together when the sum passes 100), split in hundredths of a point by the largest
remainder method so that they add up **exactly** to the score. The score never decreases when a
severity rises (it is monotone in every signal).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple

__all__ = ["Contribution", "combine", "score_of", "severity_decimal"]

CAP = 100
_SEV4 = [Decimal(i).scaleb(-4) for i in range(10_001)]
_HUND = [Decimal(i).scaleb(-2) for i in range(CAP * 100 + 1)]


def severity_decimal(x: float) -> Decimal:
    """A severity in [0, 1] as a Decimal rounded half-even to 4 places."""
    return _SEV4[round(x * 10_000)]


class Contribution(NamedTuple):
    """What one signal adds to a score (points, 2 decimal places)."""

    signal: str
    points: Decimal
    severity: Decimal
    weight: Decimal
    """The signal's configured points (its contribution at severity 1)."""

    def as_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "points": self.points, "severity": self.severity,
                "weight": self.weight}


def score_of(parts: Sequence[tuple[str, Decimal, float]]) -> Decimal:
    """The score alone (what :func:`combine` returns first)."""
    total = 0.0
    for _, p, s in parts:
        total += float(p) * s
    if total <= 0:
        return _HUND[0]
    return _HUND[round(total * 100) if total < CAP else CAP * 100]


def combine(parts: Sequence[tuple[str, Decimal, float]]) -> tuple[Decimal, tuple[Contribution, ...]]:
    """The score and the contributions of the parts with a positive raw value."""
    raw = [float(p) * s for _, p, s in parts]  # float(Decimal) is exact enough for weights
    total = 0.0
    for r in raw:  # the same order of additions as score_of
        total += r
    if total <= 0:
        return Decimal("0.00"), ()
    capped = total if total < CAP else float(CAP)
    units = round(capped * 100)  # hundredths of a point (round half-even)
    quotas = [units * r / total for r in raw]
    floors = [int(q) for q in quotas]
    left = units - sum(floors)
    if left:
        order = sorted((i for i in range(len(raw)) if raw[i] > 0),
                       key=lambda i: (-(quotas[i] - floors[i]), i))
        for i in order[:left]:
            floors[i] += 1
    contribs = tuple(
        Contribution(name, _HUND[u], _SEV4[round(s * 10_000)], p)
        for (name, p, s), u, r in zip(parts, floors, raw, strict=True) if r > 0
    )
    return _HUND[units], contribs
