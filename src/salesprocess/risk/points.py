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
from typing import Any

import attrs

__all__ = ["Contribution", "combine"]

CAP = 100


@attrs.frozen
class Contribution:
    """What one signal adds to a score (points, 2 decimal places)."""

    signal: str
    points: Decimal
    severity: Decimal
    weight: Decimal
    """The signal's configured points (its contribution at severity 1)."""

    def as_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "points": self.points, "severity": self.severity,
                "weight": self.weight}


def combine(parts: Sequence[tuple[str, Decimal, float]]) -> tuple[Decimal, tuple[Contribution, ...]]:
    """The score and the contributions of the parts with a positive raw value."""
    raw = [float(p) * s for _, p, s in parts]
    total = sum(raw)
    if total <= 0:
        return Decimal("0.00"), ()
    capped = total if total < CAP else float(CAP)
    units = round(capped * 100)  # hundredths of a point (round half-even)
    quotas = [units * r / total for r in raw]
    floors = [int(q) for q in quotas]
    left = units - sum(floors)
    order = sorted((i for i in range(len(raw)) if raw[i] > 0),
                   key=lambda i: (-(quotas[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    contribs = tuple(
        Contribution(name, Decimal(u).scaleb(-2), Decimal(f"{s:.4f}"), Decimal(p))
        for (name, p, s), u, r in zip(parts, floors, raw, strict=True) if r > 0
    )
    return Decimal(units).scaleb(-2), contribs
