"""360° reviews: ratings per competency from self, peers, manager, direct reports and customers,
weighted by rater group, with a minimum number of raters before a group is shown."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import attrs

from ..errors import Problem
from ..money import _CTX
from ..periods import Period, PeriodKind
from ._common import HUNDRED, EvaluationError, _dec, q2

__all__ = [
    "REVIEW_DOCUMENT",
    "Competency",
    "CompetencyScore",
    "GroupScore",
    "RaterGroup",
    "Review",
    "ReviewPolicy",
    "ReviewResult",
    "aggregate_reviews",
    "load_reviews",
    "save_reviews",
]

REVIEW_DOCUMENT = "review"
"""Store document kind of 360° reviews (key: the review id)."""


class RaterGroup(enum.StrEnum):
    SELF = "self"
    PEER = "peer"
    MANAGER = "manager"
    DIRECT_REPORT = "direct_report"
    CUSTOMER = "customer"


@attrs.frozen
class Competency:
    key: str
    name: str = ""
    description: str = ""


def _ratings(v: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> tuple[tuple[str, Decimal], ...]:
    items = v.items() if isinstance(v, Mapping) else v
    return tuple(sorted((str(k), _dec(x)) for k, x in items))


@attrs.frozen
class Review:
    """One rater's ratings of one subject for one period (competency → score on the scale)."""

    id: str
    subject_id: str
    rater_id: str
    group: RaterGroup = attrs.field(converter=RaterGroup)
    period: Period
    ratings: tuple[tuple[str, Decimal], ...] = attrs.field(converter=_ratings)
    at: datetime | None = None
    comment: str = ""

    def rating(self, competency: str) -> Decimal | None:
        for k, v in self.ratings:
            if k == competency:
                return v
        return None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id, "subject_id": self.subject_id, "rater_id": self.rater_id,
            "group": self.group.value, "period": self.period.label,
            "period_start": self.period.start.isoformat(), "period_end": self.period.end.isoformat(),
            "period_kind": self.period.kind.value,
            "ratings": {k: str(v) for k, v in self.ratings},
        }
        if self.at is not None:
            d["at"] = self.at.isoformat()
        if self.comment:
            d["comment"] = self.comment
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Review:
        if "period_start" in d:
            period = Period(date.fromisoformat(d["period_start"]), date.fromisoformat(d["period_end"]),
                            PeriodKind(d.get("period_kind", "custom")), d.get("period", ""))
        else:
            period = Period.parse(str(d["period"]))
        at = d.get("at")
        return cls(str(d["id"]), str(d["subject_id"]), str(d["rater_id"]), d["group"], period,
                   d["ratings"], None if at is None else datetime.fromisoformat(at), str(d.get("comment", "")))


_DEFAULT_WEIGHTS = {
    RaterGroup.SELF: Decimal(0),
    RaterGroup.PEER: Decimal("0.3"),
    RaterGroup.MANAGER: Decimal("0.4"),
    RaterGroup.DIRECT_REPORT: Decimal("0.1"),
    RaterGroup.CUSTOMER: Decimal("0.2"),
}
_DEFAULT_MIN = {
    RaterGroup.SELF: 1,
    RaterGroup.PEER: 3,
    RaterGroup.MANAGER: 1,
    RaterGroup.DIRECT_REPORT: 3,
    RaterGroup.CUSTOMER: 2,
}


def _weights(v: Mapping[Any, Any] | None) -> tuple[tuple[RaterGroup, Decimal], ...]:
    d = dict(_DEFAULT_WEIGHTS)
    for k, x in (v or {}).items():
        d[RaterGroup(k)] = _dec(x)
    return tuple(sorted(d.items()))


def _mins(v: Mapping[Any, Any] | None) -> tuple[tuple[RaterGroup, int], ...]:
    d = dict(_DEFAULT_MIN)
    for k, x in (v or {}).items():
        d[RaterGroup(k)] = int(x)
    return tuple(sorted(d.items()))


def _comps(v: Iterable[Competency | str]) -> tuple[Competency, ...]:
    return tuple(c if isinstance(c, Competency) else Competency(c, c) for c in v)


def _scale(v: tuple[Any, Any]) -> tuple[Decimal, Decimal]:
    return _dec(v[0]), _dec(v[1])


@attrs.frozen
class ReviewPolicy:
    """How reviews are read: the competencies, the rating scale, each rater group's weight in
    the others' score (self counts only in the gap unless weighted), and the minimum raters a
    group needs to be shown at all (so no single peer or customer can be identified)."""

    competencies: tuple[Competency, ...] = attrs.field(converter=_comps)
    scale: tuple[Decimal, Decimal] = attrs.field(default=(Decimal(1), Decimal(5)), converter=_scale)
    weights: tuple[tuple[RaterGroup, Decimal], ...] = attrs.field(default=None, converter=_weights)
    min_raters: tuple[tuple[RaterGroup, int], ...] = attrs.field(default=None, converter=_mins)

    def __attrs_post_init__(self) -> None:
        probs = []
        lo, hi = self.scale
        if not lo < hi:
            probs.append(Problem("reviews.scale", "range", "the scale runs from a low to a higher score"))
        for g, w in self.weights:
            if w < 0:
                probs.append(Problem(f"reviews.weights.{g.value}", "range", "weights must not be negative"))
        for g, n in self.min_raters:
            if n < 1:
                probs.append(Problem(f"reviews.min_raters.{g.value}", "range", "at least one rater"))
        keys = [c.key for c in self.competencies]
        if len(set(keys)) != len(keys):
            probs.append(Problem("reviews.competencies", "duplicate", "competency keys must be unique"))
        if not keys:
            probs.append(Problem("reviews.competencies", "missing", "list the competencies reviewed"))
        if probs:
            raise EvaluationError(probs)

    def weight(self, g: RaterGroup) -> Decimal:
        return dict(self.weights)[g]

    def minimum(self, g: RaterGroup) -> int:
        return dict(self.min_raters)[g]

    def normalise(self, score: Decimal) -> Decimal:
        """A score on the scale as 0–100."""
        lo, hi = self.scale
        return _CTX.divide(_CTX.multiply(score - lo, HUNDRED), hi - lo)


@attrs.frozen
class GroupScore:
    """A rater group's result: how many raters, whether it is ``shown`` (enough raters), and
    its mean per competency (``None`` everywhere when hidden)."""

    group: RaterGroup
    raters: int
    shown: bool
    scores: tuple[tuple[str, Decimal | None], ...]
    weight: Decimal


@attrs.frozen
class CompetencyScore:
    """One competency: the visible groups' means, the weighted score of the others (without
    self), self's own rating and the gap ``self − others`` (positive: rates themself higher)."""

    competency: str
    name: str
    by_group: tuple[tuple[RaterGroup, Decimal | None], ...]
    others: Decimal | None
    self_score: Decimal | None
    gap: Decimal | None


@attrs.frozen
class ReviewResult:
    """A subject's 360° result for a period; ``overall`` is the mean of the competencies'
    others-scores (on the scale) and ``normalised`` the same on 0–100."""

    subject_id: str
    period: Period
    competencies: tuple[CompetencyScore, ...]
    groups: tuple[GroupScore, ...]
    overall: Decimal | None
    normalised: Decimal | None
    hidden: tuple[RaterGroup, ...]
    exact: Decimal | None = attrs.field(default=None, repr=False)
    """``normalised`` before rounding (what combined evaluations use)."""

    def competency(self, key: str) -> CompetencyScore:
        for c in self.competencies:
            if c.competency == key:
                return c
        raise KeyError(key)


def check_reviews(reviews: Iterable[Review], policy: ReviewPolicy) -> list[Problem]:
    """Every problem of ``reviews``: unknown competencies, ratings off the scale, a self review by
    somebody else, the same rater twice for a subject and period."""
    probs: list[Problem] = []
    keys = {c.key for c in policy.competencies}
    lo, hi = policy.scale
    seen: dict[tuple[str, str, date, date], str] = {}
    ids: set[str] = set()
    for r in reviews:
        path = f"reviews[{r.id}]"
        if r.id in ids:
            probs.append(Problem(path, "duplicate", f"review id {r.id} used twice"))
        ids.add(r.id)
        if r.group is RaterGroup.SELF and r.rater_id != r.subject_id:
            probs.append(Problem(path, "self", f"a self review of {r.subject_id} by {r.rater_id}"))
        if r.group is not RaterGroup.SELF and r.rater_id == r.subject_id:
            probs.append(Problem(path, "self", f"{r.rater_id} rates themself as {r.group.value}"))
        k = (r.subject_id, r.rater_id, r.period.start, r.period.end)
        if k in seen:
            probs.append(Problem(path, "duplicate",
                                 f"{r.rater_id} already reviewed {r.subject_id} for {r.period.label} ({seen[k]})"))
        seen[k] = r.id
        for comp, v in r.ratings:
            if comp not in keys:
                probs.append(Problem(f"{path}.ratings.{comp}", "unknown", f"unknown competency {comp!r}"))
            if not lo <= v <= hi:
                probs.append(Problem(f"{path}.ratings.{comp}", "range", f"rating {v} is outside {lo}..{hi}"))
    return probs


def _mean(xs: list[Decimal]) -> Decimal | None:
    if not xs:
        return None
    return _CTX.divide(sum(xs, Decimal(0)), Decimal(len(xs)))


def aggregate_reviews(reviews: Iterable[Review], policy: ReviewPolicy, subject_id: str,
                      period: Period) -> ReviewResult:
    """The 360° result of ``subject_id`` from the reviews of ``period`` (invalid reviews raise
    :class:`EvaluationError` listing every problem)."""
    mine = [r for r in reviews if r.subject_id == subject_id
            and (r.period.start, r.period.end) == (period.start, period.end)]
    probs = check_reviews(mine, policy)
    if probs:
        raise EvaluationError(probs)
    by_group: dict[RaterGroup, list[Review]] = {}
    for r in mine:
        by_group.setdefault(r.group, []).append(r)
    groups: list[GroupScore] = []
    shown: dict[RaterGroup, dict[str, Decimal | None]] = {}
    hidden: list[RaterGroup] = []
    for g in RaterGroup:
        rs = by_group.get(g, [])
        n = len({r.rater_id for r in rs})
        visible = n >= policy.minimum(g)
        scores: dict[str, Decimal | None] = {}
        for c in policy.competencies:
            vals = [v for r in rs if (v := r.rating(c.key)) is not None]
            m = _mean(vals)
            scores[c.key] = q2(m) if (visible and m is not None) else None
        if n and not visible:
            hidden.append(g)
        if visible:
            shown[g] = {c.key: _mean([v for r in rs if (v := r.rating(c.key)) is not None])
                        for c in policy.competencies}
        groups.append(GroupScore(g, n, visible, tuple(scores.items()), policy.weight(g)))
    comps: list[CompetencyScore] = []
    overall_parts: list[Decimal] = []
    for c in policy.competencies:
        wsum = Decimal(0)
        acc = Decimal(0)
        for g, sc in shown.items():
            if g is RaterGroup.SELF:
                continue
            v = sc.get(c.key)
            w = policy.weight(g)
            if v is None or w == 0:
                continue
            wsum += w
            acc += _CTX.multiply(w, v)
        others = _CTX.divide(acc, wsum) if wsum else None
        self_v = shown.get(RaterGroup.SELF, {}).get(c.key)
        gap = None if (others is None or self_v is None) else self_v - others
        if others is not None:
            overall_parts.append(others)
        comps.append(CompetencyScore(
            c.key, c.name or c.key,
            tuple((g, None if sc.get(c.key) is None else q2(sc[c.key])) for g, sc in shown.items()  # type: ignore[arg-type]
                  if g is not RaterGroup.SELF),
            None if others is None else q2(others), None if self_v is None else q2(self_v),
            None if gap is None else q2(gap),
        ))
    overall = _mean(overall_parts)
    return ReviewResult(
        subject_id, period, tuple(comps), tuple(groups),
        None if overall is None else q2(overall),
        None if overall is None else q2(policy.normalise(overall)),
        tuple(hidden),
        None if overall is None else policy.normalise(overall),
    )


def save_reviews(store: Any, reviews: Iterable[Review]) -> int:
    """Keep reviews as store documents (kind ``review``), in one transaction."""
    n = 0
    with store.transaction():
        for r in reviews:
            store.put_document(REVIEW_DOCUMENT, r.id, r.to_dict())
            n += 1
    return n


def load_reviews(store: Any, *, period: Period | None = None, subject_id: str | None = None) -> list[Review]:
    out = []
    for _k, d in store.documents(REVIEW_DOCUMENT):
        r = Review.from_dict(d)
        if period is not None and (r.period.start, r.period.end) != (period.start, period.end):
            continue
        if subject_id is not None and r.subject_id != subject_id:
            continue
        out.append(r)
    return out
