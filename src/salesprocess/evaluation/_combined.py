"""The combined evaluation: scorecard and 360° review with configurable weights, strengths,
weaknesses, training recommendations, and the effect of training taken since the last one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from ..errors import DefinitionError, Problem
from ..money import _CTX, Money
from ..periods import CALENDAR_YEAR, FiscalCalendar, Period, PeriodKind
from ._common import (
    DEFAULT_BANDS,
    EvaluationError,
    RatingBand,
    _dec,
    _tup,
    band_for,
    competition_ranks,
    q2,
)
from ._reviews import Review, ReviewPolicy, ReviewResult, aggregate_reviews
from ._scorecard import Scorecard, ScorecardResult, ScoreItem, score_reps
from ._training import Recommendation, TrainingCatalog, TrainingModule, TrainingRecord

__all__ = [
    "EVALUATION_DOCUMENT",
    "Evaluation",
    "EvaluationConfig",
    "EvaluationPolicy",
    "FollowUp",
    "Observation",
    "evaluate",
    "load_evaluations",
    "save_evaluations",
]

EVALUATION_DOCUMENT = "evaluation"
"""Store document kind of evaluation snapshots (key: ``REP/PERIOD``)."""


@attrs.frozen
class EvaluationPolicy:
    """How the parts combine and what counts as a strength or a weakness.

    ``quantitative`` and ``qualitative`` weigh the scorecard score and the 360° score (both on
    0–100; a missing part leaves the other alone). A KPI is a strength at ``strength_ratio`` of
    its target or more and a weakness below ``weakness_ratio``; a competency is a strength at
    ``strength_rating`` or more (on the review scale) and a weakness below ``weakness_rating``;
    rating oneself ``gap`` points or more above the others is a blind spot. Modules completed
    within ``refresh_days`` are not recommended again; at most ``max_recommendations``.
    """

    quantitative: Decimal = attrs.field(default=Decimal("0.6"), converter=_dec)
    qualitative: Decimal = attrs.field(default=Decimal("0.4"), converter=_dec)
    bands: tuple[RatingBand, ...] = attrs.field(default=DEFAULT_BANDS, converter=_tup)
    strength_ratio: Decimal = attrs.field(default=Decimal("1.0"), converter=_dec)
    weakness_ratio: Decimal = attrs.field(default=Decimal("0.8"), converter=_dec)
    strength_rating: Decimal = attrs.field(default=Decimal("4.0"), converter=_dec)
    weakness_rating: Decimal = attrs.field(default=Decimal("3.0"), converter=_dec)
    gap: Decimal = attrs.field(default=Decimal("1.0"), converter=_dec)
    refresh_days: int = 365
    max_recommendations: int = 3

    def __attrs_post_init__(self) -> None:
        probs = []
        if self.quantitative < 0 or self.qualitative < 0 or self.quantitative + self.qualitative == 0:
            probs.append(Problem("evaluation", "weights", "weights are not negative and not both zero"))
        if self.weakness_ratio > self.strength_ratio:
            probs.append(Problem("evaluation.weakness_ratio", "range", "weakness_ratio is at most strength_ratio"))
        if self.weakness_rating > self.strength_rating:
            probs.append(Problem("evaluation.weakness_rating", "range", "weakness_rating is at most strength_rating"))
        if probs:
            raise EvaluationError(probs)


@attrs.frozen
class Observation:
    """A strength or weakness: ``kind`` is ``kpi``, ``competency`` or ``blind_spot``; ``size``
    grows with the distance from the threshold (it orders the recommendations)."""

    kind: str
    key: str
    text: str
    size: Decimal = Decimal(0)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "text": self.text, "size": str(self.size)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Observation:
        return cls(d["kind"], d["key"], d["text"], _dec(d.get("size", "0")))


@attrs.frozen
class FollowUp:
    """What became of a weakness a completed module addressed: its value in the previous
    evaluation, now, and the change (KPI ratios to target, competency ratings)."""

    module_id: str
    completed_on: date
    kind: str
    key: str
    before: Decimal | None
    after: Decimal | None

    @property
    def change(self) -> Decimal | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def improved(self) -> bool | None:
        c = self.change
        return None if c is None else c > 0


@attrs.frozen(eq=False)
class Evaluation:
    """A rep's evaluation for a period.

    ``score`` combines ``quantitative`` (the scorecard score) and ``qualitative`` (the 360° score
    on 0–100); ``band`` and ``rank`` (among the role) follow. ``kpi_ratios`` and ``competencies``
    keep the normalised KPI ratios and the others' competency ratings, so a later evaluation can
    measure what training changed (``follow_up``).
    """

    rep_id: str
    name: str | None
    role: str
    period: Period
    score: Decimal | None
    band: str | None
    rank: int | None
    of: int
    quantitative: Decimal | None
    qualitative: Decimal | None
    strengths: tuple[Observation, ...]
    weaknesses: tuple[Observation, ...]
    recommendations: tuple[Recommendation, ...]
    training_completed: tuple[TrainingRecord, ...]
    follow_up: tuple[FollowUp, ...]
    kpi_ratios: Mapping[str, Decimal | None]
    competencies: Mapping[str, Decimal | None]
    scorecard: ScorecardResult | None = None
    review: ReviewResult | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        def s(v: Decimal | None) -> str | None:
            return None if v is None else str(v)

        return {
            "rep_id": self.rep_id, "name": self.name, "role": self.role,
            "period": self.period.label, "period_start": self.period.start.isoformat(),
            "period_end": self.period.end.isoformat(), "period_kind": self.period.kind.value,
            "score": s(self.score), "band": self.band, "rank": self.rank, "of": self.of,
            "quantitative": s(self.quantitative), "qualitative": s(self.qualitative),
            "strengths": [o.to_dict() for o in self.strengths],
            "weaknesses": [o.to_dict() for o in self.weaknesses],
            "recommendations": [{"module": r.module.id, "title": r.module.title, "reasons": list(r.reasons),
                                 "priority": r.priority} for r in self.recommendations],
            "training_completed": [r.to_dict() for r in self.training_completed],
            "follow_up": [{"module": f.module_id, "completed_on": f.completed_on.isoformat(), "kind": f.kind,
                           "key": f.key, "before": s(f.before), "after": s(f.after), "change": s(f.change)}
                          for f in self.follow_up],
            "kpi_ratios": {k: s(v) for k, v in self.kpi_ratios.items()},
            "competencies": {k: s(v) for k, v in self.competencies.items()},
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Evaluation:
        """A saved evaluation (without its scorecard and review details)."""
        def dn(v: Any) -> Decimal | None:
            return None if v is None else Decimal(v)

        period = Period(date.fromisoformat(d["period_start"]), date.fromisoformat(d["period_end"]),
                        PeriodKind(d.get("period_kind", "custom")), d.get("period", ""))
        recs = tuple(Recommendation(TrainingModule(r["module"], r.get("title", r["module"])), tuple(r["reasons"]),
                                    int(r["priority"])) for r in d.get("recommendations", ()))
        fus = tuple(FollowUp(f["module"], date.fromisoformat(f["completed_on"]), f["kind"], f["key"],
                             dn(f.get("before")), dn(f.get("after"))) for f in d.get("follow_up", ()))
        return cls(
            d["rep_id"], d.get("name"), d["role"], period, dn(d.get("score")), d.get("band"), d.get("rank"),
            int(d.get("of", 0)), dn(d.get("quantitative")), dn(d.get("qualitative")),
            tuple(Observation.from_dict(o) for o in d.get("strengths", ())),
            tuple(Observation.from_dict(o) for o in d.get("weaknesses", ())),
            recs, tuple(TrainingRecord.from_dict(r) for r in d.get("training_completed", ())), fus,
            {k: dn(v) for k, v in d.get("kpi_ratios", {}).items()},
            {k: dn(v) for k, v in d.get("competencies", {}).items()},
            notes=tuple(d.get("notes", ())),
        )


def _pct(r: Decimal) -> str:
    return f"{q2(r * 100).normalize():f}%"


def _observe(sc: ScorecardResult | None, rv: ReviewResult | None, policy: EvaluationPolicy,
             review_policy: ReviewPolicy | None) -> tuple[list[Observation], list[Observation]]:
    strengths: list[Observation] = []
    weaknesses: list[Observation] = []
    if sc is not None:
        for it in sc.items:
            if it.ratio is None or it.target is None:
                continue
            label = f"{it.name}: {_pct(it.ratio)} of target"
            if it.ratio >= policy.strength_ratio:
                strengths.append(Observation("kpi", it.metric, label, it.ratio - policy.strength_ratio))
            elif it.ratio < policy.weakness_ratio:
                weaknesses.append(Observation("kpi", it.metric, label, Decimal(1) - it.ratio))
    if rv is not None and review_policy is not None:
        lo, hi = review_policy.scale
        span = hi - lo
        for c in rv.competencies:
            if c.others is not None:
                label = f"{c.name}: rated {c.others} by others"
                if c.others >= policy.strength_rating:
                    strengths.append(Observation("competency", c.competency, label,
                                                 _CTX.divide(c.others - policy.strength_rating, span)))
                elif c.others < policy.weakness_rating:
                    weaknesses.append(Observation("competency", c.competency, label,
                                                  _CTX.divide(policy.weakness_rating - c.others, span)))
            if c.gap is not None and c.gap >= policy.gap:
                weaknesses.append(Observation(
                    "blind_spot", c.competency,
                    f"{c.name}: rates themself {c.self_score}, others {c.others} (gap {c.gap})",
                    _CTX.divide(c.gap, span)))
    strengths.sort(key=lambda o: (-o.size, o.key))
    weaknesses.sort(key=lambda o: (-o.size, o.kind, o.key))
    return strengths, weaknesses


def _follow_up(prev: Evaluation | None, cur_kpis: Mapping[str, Decimal | None],
               cur_comps: Mapping[str, Decimal | None], training: Iterable[TrainingRecord],
               catalog: TrainingCatalog | None, rep_id: str, period: Period) -> list[FollowUp]:
    if prev is None or catalog is None:
        return []
    out: list[FollowUp] = []
    weak = {(o.kind if o.kind != "blind_spot" else "competency", o.key) for o in prev.weaknesses}
    for r in sorted(training, key=lambda r: (r.completed_on, r.module_id)):
        if r.rep_id != rep_id or not (prev.period.start <= r.completed_on < period.end):
            continue
        if r.module_id not in catalog:
            continue
        m = catalog.get(r.module_id)
        for kind, key in sorted(weak):
            if kind == "kpi" and (key in m.kpis or key.partition(":")[0] in m.kpis):
                out.append(FollowUp(m.id, r.completed_on, "kpi", key, prev.kpi_ratios.get(key), cur_kpis.get(key)))
            elif kind == "competency" and key in m.competencies:
                out.append(FollowUp(m.id, r.completed_on, "competency", key, prev.competencies.get(key),
                                    cur_comps.get(key)))
    return out


def evaluate(
    data: Any,
    period: Period | str,
    *,
    scorecards: Scorecard | Iterable[Scorecard],
    reviews: Iterable[Review] = (),
    review_policy: ReviewPolicy | None = None,
    policy: EvaluationPolicy | None = None,
    catalog: TrainingCatalog | None = None,
    training: Iterable[TrainingRecord] = (),
    previous: Iterable[Evaluation] = (),
    reps: Iterable[Any] | None = None,
    goals: Iterable[Any] = (),
    targets: Mapping[tuple[str, str], Money | Decimal] | None = None,
    asof: datetime | None = None,
    tz: tzinfo = UTC,
    inputs: Any = None,
    registry: Any = None,
    fiscal: FiscalCalendar = CALENDAR_YEAR,
    strict: bool = True,
) -> list[Evaluation]:
    """Evaluate every rep of the scorecards' roles for ``period``: scorecard, 360° review,
    combined score, band and rank within the role, strengths, weaknesses, training
    recommendations from ``catalog`` (skipping modules recently completed per ``training``), and
    the follow-up of modules completed since the rep's ``previous`` evaluation."""
    p = period if isinstance(period, Period) else Period.parse(period, fiscal)
    pol = policy or EvaluationPolicy()
    cards = [scorecards] if isinstance(scorecards, Scorecard) else list(scorecards)
    training = list(training)
    reviews = list(reviews)
    prev_by: dict[str, Evaluation] = {}
    for e in previous:
        if e.period.end <= p.start and (e.rep_id not in prev_by or e.period.end > prev_by[e.rep_id].period.end):
            prev_by[e.rep_id] = e
    problems: list[Problem] = []
    if reviews and review_policy is None:
        problems.append(Problem("reviews", "policy", "reviews were given without a review policy"))
    if review_policy is not None:
        from ._reviews import check_reviews

        problems.extend(check_reviews([r for r in reviews if (r.period.start, r.period.end) == (p.start, p.end)],
                                      review_policy))
    if problems:
        raise EvaluationError(problems)
    rep_list = list(reps) if reps is not None else None
    on = p.end - timedelta(days=1)
    out: list[Evaluation] = []
    for card in cards:
        results = score_reps(card, data, p, reps=rep_list, goals=goals, targets=targets, training=training,
                             catalog=catalog, asof=asof, tz=tz, inputs=inputs, registry=registry, fiscal=fiscal,
                             strict=strict)
        evs: list[tuple[Decimal, Evaluation]] = []
        for sc in results:
            rv = None
            notes: list[str] = []
            if review_policy is not None:
                rv = aggregate_reviews(reviews, review_policy, sc.rep_id, p)
                if rv.hidden:
                    notes.append("hidden for anonymity (too few raters): "
                                 + ", ".join(g.value for g in rv.hidden))
            qual = rv.exact if rv is not None else None
            quant = sc.exact if sc.exact is not None else sc.score
            wq, wr = pol.quantitative, pol.qualitative
            if qual is None:
                if wr:
                    notes.append("no 360° score: the scorecard alone counts")
                exact = quant if wq else None
            elif wq == 0:
                exact = qual
            else:
                exact = _CTX.divide(_CTX.multiply(wq, quant) + _CTX.multiply(wr, qual), wq + wr)
            strengths, weaknesses = _observe(sc, rv, pol, review_policy)
            gaps = [("competency" if o.kind != "kpi" else "kpi", o.key, o.size, o.text) for o in weaknesses]
            recs = catalog.recommend(gaps, training, rep_id=sc.rep_id, on=on, refresh_days=pol.refresh_days,
                                     limit=pol.max_recommendations) if catalog is not None else []
            kpis = {it.metric: it.ratio for it in sc.items}
            comps: dict[str, Decimal | None] = {c.competency: c.others for c in rv.competencies} if rv else {}
            done = tuple(sorted((r for r in training if r.rep_id == sc.rep_id and p.start <= r.completed_on < p.end),
                                key=lambda r: (r.completed_on, r.module_id)))
            fu = _follow_up(prev_by.get(sc.rep_id), kpis, comps, training, catalog, sc.rep_id, p)
            score = None if exact is None else q2(exact)
            evs.append((exact if exact is not None else Decimal(-1), Evaluation(
                sc.rep_id, sc.name, card.role, p, score, band_for(score, pol.bands), None, 0,
                sc.score, None if rv is None else rv.normalised, tuple(strengths), tuple(weaknesses), tuple(recs), done, tuple(fu),
                kpis, comps, sc, rv, tuple(notes),
            )))
        evs.sort(key=lambda x: (-x[0], x[1].rep_id))
        ranks = competition_ranks([x[0] for x in evs])
        out.extend(attrs.evolve(e, rank=k, of=len(evs)) for (_x, e), k in zip(evs, ranks, strict=True))
    return out


def save_evaluations(store: Any, evaluations: Iterable[Evaluation]) -> int:
    """Snapshot evaluations (kind ``evaluation``, key ``REP/PERIOD``) in one transaction."""
    n = 0
    with store.transaction():
        for e in evaluations:
            store.put_document(EVALUATION_DOCUMENT, f"{e.rep_id}/{e.period.label}", e.to_dict())
            n += 1
    return n


def load_evaluations(store: Any, rep_id: str | None = None) -> list[Evaluation]:
    out = [Evaluation.from_dict(d) for _k, d in store.documents(EVALUATION_DOCUMENT)]
    if rep_id is not None:
        out = [e for e in out if e.rep_id == rep_id]
    out.sort(key=lambda e: (e.rep_id, e.period.start))
    return out


# ------------------------------------------------------------------------------------------------
# Configuration files
# ------------------------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class EvaluationConfig:
    """Scorecards per role, the review policy, the evaluation policy and the training catalogue,
    as one TOML file (see the evaluation how-to for the format)."""

    scorecards: tuple[Scorecard, ...]
    review_policy: ReviewPolicy | None = None
    policy: EvaluationPolicy = attrs.field(factory=EvaluationPolicy)
    catalog: TrainingCatalog | None = None

    def scorecard(self, role: str) -> Scorecard:
        for s in self.scorecards:
            if s.role == role:
                return s
        raise KeyError(f"no scorecard for role {role!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> EvaluationConfig:
        from ..incentives._plan import _P

        probs: list[Problem] = []
        t = _P(data, "", probs)
        pol_kw: dict[str, Any] = {}
        ev = t.table("evaluation")
        for k in ("quantitative", "qualitative", "strength_ratio", "weakness_ratio", "strength_rating",
                  "weakness_rating", "gap"):
            v = ev.dec(k)
            if v is not None:
                pol_kw[k] = v
        for k in ("refresh_days", "max_recommendations"):
            if ev.has(k):
                pol_kw[k] = ev.whole(k, 0)
        bands = _bands(ev, probs)
        if bands:
            pol_kw["bands"] = bands
        ev.done()
        cards = []
        for sc in t.tables("scorecards"):
            role = sc.text("role", "", required=True)
            items = []
            for it in sc.tables("items"):
                w = it.dec("weight", required=True)
                tgt = it.dec("target")
                cur = it.text("currency")
                target: Any = Money(tgt, cur) if (tgt is not None and cur) else tgt
                items.append({"metric": it.text("metric", "", required=True), "weight": w, "target": target,
                                  "direction": it.text("direction"), "cap": it.dec("cap") or Decimal("1.5"),
                                  "floor": it.dec("floor") or Decimal(0), "name": it.text("name", "")})
                it.done()
            cb = _bands(sc, probs)
            name = sc.text("name", "")
            sc.done()
            cards.append((role, items, cb, name))
        rp = None
        if t.has("reviews"):
            r = t.table("reviews")
            comps = []
            for c in r.tables("competencies"):
                comps.append((c.text("key", "", required=True), c.text("name", ""), c.text("description", "")))
                c.done()
            scale = r.raw("scale")
            weights = r.raw("weights")
            mins = r.raw("min_raters")
            r.done()
            rp = (comps, scale, weights, mins)
        mods = t.raw("training")
        t.done()
        if probs:
            raise DefinitionError(probs, source=source)
        try:
            policy = EvaluationPolicy(**pol_kw)
            scorecards = tuple(Scorecard(role, tuple(ScoreItem(**i) for i in items), cb or DEFAULT_BANDS, name)
                               for role, items, cb, name in cards)
            review_policy = None
            if rp is not None:
                from ._reviews import Competency

                comps_, scale_, weights_, mins_ = rp
                kw: dict[str, Any] = {"competencies": [Competency(*c) for c in comps_]}
                if scale_ is not None:
                    kw["scale"] = (str(scale_[0]), str(scale_[1]))
                if weights_ is not None:
                    kw["weights"] = {k: (str(v) if not isinstance(v, float) else _float(k)) for k, v in weights_.items()}
                if mins_ is not None:
                    kw["min_raters"] = mins_
                review_policy = ReviewPolicy(**kw)
            catalog = TrainingCatalog.from_dicts(mods) if mods else None
        except EvaluationError as e:
            raise DefinitionError(e.problems, source=source) from None
        except (ValueError, TypeError, KeyError) as e:
            raise DefinitionError([Problem("", "invalid", str(e))], source=source) from None
        roles = [s.role for s in scorecards]
        if len(set(roles)) != len(roles):
            raise DefinitionError([Problem("scorecards", "duplicate", "one scorecard per role")], source=source)
        return cls(scorecards, review_policy, policy, catalog)

    @classmethod
    def from_toml(cls, text_or_path: str | Path) -> EvaluationConfig:
        from ..incentives import _tomlpos
        from ..incentives._errors import PlanFileError
        from ..incentives._plan import _read

        path, text = _read(text_or_path)
        try:
            data = _tomlpos.load(text)
        except Exception as e:
            import tomllib

            if not isinstance(e, tomllib.TOMLDecodeError):
                raise
            line, _c = _tomlpos.decode_position(e)
            raise PlanFileError(path, [Problem("", "parse", f"invalid TOML: {e}")],
                                lines={"": line} if line else None) from None
        try:
            return cls.from_dict(data, source=path)
        except DefinitionError as e:
            raise PlanFileError(path, e.problems,
                                lines=_tomlpos.lines_for(text, [p.path for p in e.problems])) from None


def _float(key: str) -> str:
    raise ValueError(f"reviews.weights.{key}: write the weight as a string (floats lose precision)")


def _bands(t: Any, probs: list[Problem]) -> tuple[RatingBand, ...]:
    out = []
    for b in t.tables("bands"):
        name = b.text("name", "", required=True)
        m = b.dec("min", required=True)
        b.done()
        if name and m is not None:
            out.append(RatingBand(name, m))
    return tuple(out)

