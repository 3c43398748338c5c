"""Customer feedback: surveys (CSAT, NPS, CES), complaints, and the improvements they prompt.

- **Survey responses** are the KPI package's :class:`~salesprocess.kpi.SurveyResponse` values (one
  type for KPIs, churn risk and this module), saved with the stage the deal was in when the
  customer answered, an optional comment and the survey they answer (:class:`LinkedResponse`).
- **Complaints** (:class:`Complaint`) have a status (open → in progress → resolved → closed, and
  back to open when reopened), an owner who handles them, a root cause and a resolution; every
  status change is kept with its instant, so resolution time and status are known *as of* any
  instant.
- **Improvements** (:class:`Improvement`) name the complaints and responses that prompted them.

:func:`problems` joins the three: every complaint and every low survey score is a problem, tracked
until it is *solved* — a complaint once resolved (or closed) and every improvement it prompted
done or rejected; a low score once at least one improvement it prompted exists and all of them are
done or rejected. "Every problem is tracked until solved" is ``unsolved(store, asof=...)``.

Everything lives in store documents (kinds ``survey``, ``survey_response``, ``complaint``,
``improvement``). :func:`kpi_inputs` hands responses and complaints to the KPI engine: the built-in
``csat``, ``nps`` and ``ces`` KPIs read the responses; the ``complaint_resolution_time`` and
``complaints`` KPIs, contributed by this module through ``salesprocess_register_kpis``, read the
complaints.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

import attrs

from .codec import instant, iso
from .errors import DomainError, NotFoundError
from .kpi.inputs import KpiInputs, SurveyKind, SurveyResponse
from .kpi.registry import Basis, Direction, Kpi, Unit, Value
from .model import replay_until
from .periods import require_aware

__all__ = [
    "COMPLAINT_KIND",
    "FEEDBACK_KPIS",
    "IMPROVEMENT_KIND",
    "LOW_SCORES",
    "RESPONSE_KIND",
    "SURVEY_KIND",
    "Complaint",
    "ComplaintStatus",
    "FeedbackInputs",
    "Improvement",
    "ImprovementStatus",
    "LinkedResponse",
    "ProblemTrack",
    "StatusChange",
    "Survey",
    "add_improvement",
    "change_complaint",
    "change_improvement",
    "complaint",
    "complaints",
    "improvements",
    "kpi_inputs",
    "open_complaint",
    "problems",
    "record_response",
    "responses",
    "root_causes",
    "save_survey",
    "surveys",
    "unsolved",
]

SURVEY_KIND = "survey"
RESPONSE_KIND = "survey_response"
COMPLAINT_KIND = "complaint"
IMPROVEMENT_KIND = "improvement"

LOW_SCORES: Mapping[SurveyKind, int] = {SurveyKind.CSAT: 2, SurveyKind.NPS: 6, SurveyKind.CES: 3}
"""Scores at or below which an answer is a problem to track: CSAT 1–2 (dissatisfied), NPS 0–6
(detractors), CES 1–3 (hard to deal with)."""


def _aware(_i: object, a: attrs.Attribute[Any], v: datetime | None) -> None:
    if v is not None:
        require_aware(v, a.name)


def _opt_instant(s: str | None) -> datetime | None:
    return None if s is None else instant(s)


def _opt_iso(d: datetime | None) -> str | None:
    return None if d is None else iso(d)


# ----------------------------------------------------------------------------------------------
# Surveys and responses
# ----------------------------------------------------------------------------------------------


def _pairs(v: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(dict(v).items()))


@attrs.frozen
class Survey:
    """A survey question: its kind (which fixes the scale) and its wording per language."""

    id: str
    kind: SurveyKind = attrs.field(converter=SurveyKind)
    question: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    """(language, text) pairs, e.g. ``{"zh": "您有多大可能向朋友推荐我们？", "en": "How likely ..."}``."""
    name: str = ""

    def text(self, language: str | None = None) -> str:
        q = dict(self.question)
        return q.get(language or "", "") or q.get("en", "") or next(iter(q.values()), "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "question": dict(self.question), "name": self.name}


@attrs.frozen
class LinkedResponse:
    """A survey answer with its links: the account, contact and deal come with the
    :class:`~salesprocess.kpi.SurveyResponse`; ``stage`` is the deal's stage when it was given."""

    response: SurveyResponse
    stage: str | None = None
    comment: str = ""
    survey_id: str | None = None

    @property
    def id(self) -> str:
        return self.response.id

    def is_low(self, thresholds: Mapping[SurveyKind, int] = LOW_SCORES) -> bool:
        return self.response.score <= thresholds[self.response.kind]

    def to_dict(self) -> dict[str, Any]:
        r = self.response
        return {"kind": r.kind.value, "score": r.score, "at": iso(r.at),
                "account_id": r.account_id, "deal_id": r.deal_id, "owner_id": r.owner_id,
                "contact_id": r.contact_id, "stage": self.stage, "comment": self.comment,
                "survey_id": self.survey_id}

    @classmethod
    def from_dict(cls, key: str, d: Mapping[str, Any]) -> LinkedResponse:
        r = SurveyResponse(key, d["kind"], d["score"], instant(d["at"]), d.get("account_id"),
                           d.get("deal_id"), d.get("owner_id"), d.get("contact_id"))
        return cls(r, d.get("stage"), d.get("comment", ""), d.get("survey_id"))


def save_survey(store: Any, survey: Survey) -> None:
    store.put_document(SURVEY_KIND, survey.id, survey.to_dict())


def surveys(store: Any) -> list[Survey]:
    return [Survey(k, d["kind"], d.get("question", {}), d.get("name", ""))
            for k, d in store.documents(SURVEY_KIND)]


def record_response(
    store: Any,
    response: SurveyResponse,
    *,
    stage: str | None = None,
    comment: str = "",
    survey_id: str | None = None,
) -> LinkedResponse:
    """Save a survey answer. ``stage`` defaults to the stage its deal was in at ``response.at``;
    a response to a survey must match the survey's kind. Saving the same id again replaces it."""
    if survey_id is not None:
        doc = store.get_document(SURVEY_KIND, survey_id)
        if doc is None:
            raise NotFoundError("survey", survey_id)
        if doc["kind"] != response.kind.value:
            raise DomainError(f"response {response.id}: survey {survey_id} asks a {doc['kind']} "
                              f"question, not {response.kind.value}")
    if stage is None and response.deal_id is not None:
        try:
            deal = store.get_deal(response.deal_id)
        except NotFoundError:
            deal = None
        then = replay_until(deal.events, response.at) if deal is not None else None
        stage = then.stage if then is not None else None
    linked = LinkedResponse(response, stage, comment, survey_id)
    store.put_document(RESPONSE_KIND, response.id, linked.to_dict())
    return linked


def responses(
    store: Any,
    *,
    kind: SurveyKind | str | None = None,
    account_id: str | None = None,
    deal_id: str | None = None,
    asof: datetime | None = None,
) -> list[LinkedResponse]:
    """Saved responses (given at or before ``asof`` when set), ordered by instant then id."""
    k = None if kind is None else SurveyKind(kind)
    out = []
    for key, d in store.documents(RESPONSE_KIND):
        r = LinkedResponse.from_dict(key, d)
        if k is not None and r.response.kind is not k:
            continue
        if account_id is not None and r.response.account_id != account_id:
            continue
        if deal_id is not None and r.response.deal_id != deal_id:
            continue
        if asof is not None and r.response.at > asof:
            continue
        out.append(r)
    out.sort(key=lambda r: (r.response.at, r.id))
    return out


# ----------------------------------------------------------------------------------------------
# Complaints and improvements
# ----------------------------------------------------------------------------------------------


class ComplaintStatus(enum.StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    """A resolution was given."""
    CLOSED = "closed"
    """The customer confirmed the resolution (or it was closed without one)."""


class ImprovementStatus(enum.StrEnum):
    PROPOSED = "proposed"
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    REJECTED = "rejected"


_FINISHED = frozenset({ImprovementStatus.DONE, ImprovementStatus.REJECTED})
_SETTLED = frozenset({ComplaintStatus.RESOLVED, ComplaintStatus.CLOSED})

_COMPLAINT_MOVES: Mapping[ComplaintStatus, frozenset[ComplaintStatus]] = {
    ComplaintStatus.OPEN: frozenset({ComplaintStatus.IN_PROGRESS, ComplaintStatus.RESOLVED,
                                     ComplaintStatus.CLOSED}),
    ComplaintStatus.IN_PROGRESS: frozenset({ComplaintStatus.OPEN, ComplaintStatus.RESOLVED,
                                            ComplaintStatus.CLOSED}),
    ComplaintStatus.RESOLVED: frozenset({ComplaintStatus.CLOSED, ComplaintStatus.OPEN}),
    ComplaintStatus.CLOSED: frozenset({ComplaintStatus.OPEN}),
}


@attrs.frozen
class StatusChange:
    """One status change of a complaint or improvement."""

    status: str
    at: datetime = attrs.field(validator=_aware)
    actor: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "at": iso(self.at), "actor": self.actor, "note": self.note}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StatusChange:
        return cls(d["status"], instant(d["at"]), d.get("actor", ""), d.get("note", ""))


def _history(v: Iterable[StatusChange]) -> tuple[StatusChange, ...]:
    return tuple(v)


@attrs.frozen
class Complaint:
    """A customer complaint and its handling.

    ``history`` holds every status change (the first is ``open`` at ``at``); ``status``,
    ``resolved_at`` and the resolution time follow from it, now or as of an instant.
    """

    id: str
    account_id: str
    at: datetime = attrs.field(validator=_aware)
    subject: str = ""
    severity: str = "medium"
    owner_id: str | None = None
    """Who handles it."""
    contact_id: str | None = None
    deal_id: str | None = None
    root_cause: str | None = None
    resolution: str | None = None
    history: tuple[StatusChange, ...] = attrs.field(default=(), converter=_history)

    def __attrs_post_init__(self) -> None:
        if not self.history:
            object.__setattr__(self, "history", (StatusChange(ComplaintStatus.OPEN, self.at),))

    def status_at(self, asof: datetime | None = None) -> ComplaintStatus | None:
        """The status as of ``asof`` (now when ``None``); ``None`` before the complaint existed."""
        cur: ComplaintStatus | None = None
        for h in self.history:
            if asof is not None and h.at > asof:
                break
            cur = ComplaintStatus(h.status)
        return cur

    @property
    def status(self) -> ComplaintStatus:
        s = self.status_at()
        assert s is not None
        return s

    def resolved_at(self, asof: datetime | None = None) -> datetime | None:
        """When it was last settled (resolved, or closed without a resolution first), if it is
        settled as of ``asof``; a reopened complaint is unsettled again."""
        when: datetime | None = None
        for h in self.history:
            if asof is not None and h.at > asof:
                break
            if ComplaintStatus(h.status) not in _SETTLED:
                when = None
            elif when is None:
                when = h.at
        return when

    def resolution_days(self, asof: datetime | None = None) -> Decimal | None:
        """Days from receipt to resolution (``None`` while unresolved)."""
        from .kpi import stats

        r = self.resolved_at(asof)
        return None if r is None else stats.days(stats.micros_between(self.at, r))

    def to_risk(self) -> Any:
        """The :class:`salesprocess.risk.Complaint` value churn risk reads."""
        from .risk.churn import Complaint as RiskComplaint

        return RiskComplaint(self.id, self.account_id, self.at, self.severity, self.resolved_at(),
                             self.subject)

    def to_dict(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "at": iso(self.at), "subject": self.subject,
                "severity": self.severity, "owner_id": self.owner_id,
                "contact_id": self.contact_id, "deal_id": self.deal_id,
                "root_cause": self.root_cause, "resolution": self.resolution,
                "history": [h.to_dict() for h in self.history]}

    @classmethod
    def from_dict(cls, key: str, d: Mapping[str, Any]) -> Complaint:
        return cls(key, d["account_id"], instant(d["at"]), d.get("subject", ""),
                   d.get("severity", "medium"), d.get("owner_id"), d.get("contact_id"),
                   d.get("deal_id"), d.get("root_cause"), d.get("resolution"),
                   [StatusChange.from_dict(h) for h in d.get("history", ())])


FeedbackRef = tuple[str, str]
"""``("complaint", id)`` or ``("response", id)``."""


def _refs(v: Iterable[Sequence[str]]) -> tuple[FeedbackRef, ...]:
    out = []
    for r in v:
        kind, ident = r
        if kind not in ("complaint", "response"):
            raise DomainError(f"feedback reference kind must be complaint or response, got {kind!r}")
        out.append((str(kind), str(ident)))
    return tuple(out)


@attrs.frozen
class Improvement:
    """A change made because of feedback; ``prompted_by`` links it to complaints and responses."""

    id: str
    title: str
    at: datetime = attrs.field(validator=_aware)
    prompted_by: tuple[FeedbackRef, ...] = attrs.field(default=(), converter=_refs)
    owner_id: str | None = None
    description: str = ""
    history: tuple[StatusChange, ...] = attrs.field(default=(), converter=_history)

    def __attrs_post_init__(self) -> None:
        if not self.history:
            object.__setattr__(self, "history", (StatusChange(ImprovementStatus.PROPOSED, self.at),))

    def status_at(self, asof: datetime | None = None) -> ImprovementStatus | None:
        cur: ImprovementStatus | None = None
        for h in self.history:
            if asof is not None and h.at > asof:
                break
            cur = ImprovementStatus(h.status)
        return cur

    @property
    def status(self) -> ImprovementStatus:
        s = self.status_at()
        assert s is not None
        return s

    def finished_at(self, asof: datetime | None = None) -> datetime | None:
        st = self.status_at(asof)
        if st not in _FINISHED:
            return None
        last = [h.at for h in self.history if asof is None or h.at <= asof]
        return last[-1]

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "at": iso(self.at),
                "prompted_by": [list(r) for r in self.prompted_by], "owner_id": self.owner_id,
                "description": self.description, "history": [h.to_dict() for h in self.history]}

    @classmethod
    def from_dict(cls, key: str, d: Mapping[str, Any]) -> Improvement:
        return cls(key, d["title"], instant(d["at"]), [tuple(r) for r in d.get("prompted_by", ())],
                   d.get("owner_id"), d.get("description", ""),
                   [StatusChange.from_dict(h) for h in d.get("history", ())])


def open_complaint(store: Any, c: Complaint) -> Complaint:
    """Save a new complaint (its id must be new)."""
    if store.get_document(COMPLAINT_KIND, c.id) is not None:
        raise DomainError(f"complaint {c.id} already exists")
    store.put_document(COMPLAINT_KIND, c.id, c.to_dict())
    return c


def complaint(store: Any, complaint_id: str) -> Complaint:
    d = store.get_document(COMPLAINT_KIND, complaint_id)
    if d is None:
        raise NotFoundError("complaint", complaint_id)
    return Complaint.from_dict(complaint_id, d)


def change_complaint(
    store: Any,
    complaint_id: str,
    status: ComplaintStatus | str,
    *,
    at: datetime,
    actor: str = "",
    note: str = "",
    owner_id: str | None = None,
    root_cause: str | None = None,
    resolution: str | None = None,
) -> Complaint:
    """Move a complaint to ``status`` at ``at`` (open ⇄ in progress → resolved → closed; resolved
    or closed → open reopens). Resolving needs a resolution and a root cause (given now or
    before). ``owner_id``, ``root_cause`` and ``resolution`` update those fields."""
    require_aware(at, "at")
    c = complaint(store, complaint_id)
    new = ComplaintStatus(status)
    cur = c.status
    if new is not cur and new not in _COMPLAINT_MOVES[cur]:
        raise DomainError(f"complaint {complaint_id}: cannot go from {cur.value} to {new.value}")
    if at < c.history[-1].at:
        raise DomainError(f"complaint {complaint_id}: {at.isoformat()} is before its last change")
    changes: dict[str, Any] = {}
    if owner_id is not None:
        changes["owner_id"] = owner_id
    if root_cause is not None:
        changes["root_cause"] = root_cause
    if resolution is not None:
        changes["resolution"] = resolution
    c = attrs.evolve(c, **changes)
    if new is ComplaintStatus.RESOLVED and (not c.resolution or not c.root_cause):
        raise DomainError(f"complaint {complaint_id}: resolving needs a resolution and a root cause")
    if new is not cur:
        c = attrs.evolve(c, history=(*c.history, StatusChange(new, at, actor, note)))
    store.put_document(COMPLAINT_KIND, c.id, c.to_dict())
    return c


def complaints(
    store: Any, *, status: ComplaintStatus | str | None = None, account_id: str | None = None,
    asof: datetime | None = None,
) -> list[Complaint]:
    """Complaints (received by ``asof`` when given; ``status`` as of then), by instant then id."""
    st = None if status is None else ComplaintStatus(status)
    out = []
    for key, d in store.documents(COMPLAINT_KIND):
        c = Complaint.from_dict(key, d)
        if asof is not None and c.at > asof:
            continue
        if account_id is not None and c.account_id != account_id:
            continue
        if st is not None and c.status_at(asof) is not st:
            continue
        out.append(c)
    out.sort(key=lambda c: (c.at, c.id))
    return out


def add_improvement(store: Any, imp: Improvement) -> Improvement:
    """Save a new improvement; every complaint and response it names must exist."""
    missing = []
    for kind, ident in imp.prompted_by:
        doc_kind = COMPLAINT_KIND if kind == "complaint" else RESPONSE_KIND
        if store.get_document(doc_kind, ident) is None:
            missing.append(f"{kind} {ident}")
    if missing:
        raise NotFoundError("feedback", ", ".join(missing))
    if store.get_document(IMPROVEMENT_KIND, imp.id) is not None:
        raise DomainError(f"improvement {imp.id} already exists")
    store.put_document(IMPROVEMENT_KIND, imp.id, imp.to_dict())
    return imp


def change_improvement(
    store: Any, improvement_id: str, status: ImprovementStatus | str, *, at: datetime,
    actor: str = "", note: str = "",
) -> Improvement:
    require_aware(at, "at")
    d = store.get_document(IMPROVEMENT_KIND, improvement_id)
    if d is None:
        raise NotFoundError("improvement", improvement_id)
    imp = Improvement.from_dict(improvement_id, d)
    if at < imp.history[-1].at:
        raise DomainError(f"improvement {improvement_id}: {at.isoformat()} is before its last change")
    new = ImprovementStatus(status)
    if new is not imp.status:
        imp = attrs.evolve(imp, history=(*imp.history, StatusChange(new, at, actor, note)))
        store.put_document(IMPROVEMENT_KIND, imp.id, imp.to_dict())
    return imp


def improvements(store: Any, *, asof: datetime | None = None) -> list[Improvement]:
    out = [Improvement.from_dict(k, d) for k, d in store.documents(IMPROVEMENT_KIND)]
    return sorted((i for i in out if asof is None or i.at <= asof), key=lambda i: (i.at, i.id))


# ----------------------------------------------------------------------------------------------
# Problems tracked until solved
# ----------------------------------------------------------------------------------------------


@attrs.frozen
class ProblemTrack:
    """A complaint or a low survey score, followed until solved.

    ``state`` is ``open`` (nothing done yet), ``in_progress`` (being handled or an improvement
    under way) or ``solved``; ``solved_at`` is when the last required step finished.
    """

    kind: str
    id: str
    account_id: str | None
    opened_at: datetime
    title: str
    state: str
    owner_id: str | None
    improvements: tuple[str, ...]
    solved_at: datetime | None = None

    def age_days(self, asof: datetime) -> Decimal:
        from .kpi import stats

        end = self.solved_at or asof
        return stats.days(stats.micros_between(self.opened_at, end))

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "account_id": self.account_id,
                "opened_at": iso(self.opened_at), "title": self.title, "state": self.state,
                "owner_id": self.owner_id, "improvements": list(self.improvements),
                "solved_at": _opt_iso(self.solved_at)}


def problems(
    store: Any, *, asof: datetime, thresholds: Mapping[SurveyKind, int] = LOW_SCORES,
) -> list[ProblemTrack]:
    """Every complaint and low survey score known at ``asof`` with its state then."""
    require_aware(asof, "asof")
    imps = improvements(store, asof=asof)
    by_ref: dict[FeedbackRef, list[Improvement]] = {}
    for imp in imps:
        for ref in imp.prompted_by:
            by_ref.setdefault(ref, []).append(imp)
    out: list[ProblemTrack] = []
    for c in complaints(store, asof=asof):
        linked = by_ref.get(("complaint", c.id), [])
        st = c.status_at(asof)
        done = [i.finished_at(asof) for i in linked]
        settled = st in _SETTLED
        if settled and all(x is not None for x in done):
            times = [c.resolved_at(asof)] + done
            state, solved = "solved", max(t for t in times if t is not None)
        elif st is ComplaintStatus.OPEN and not linked:
            state, solved = "open", None
        else:
            state, solved = "in_progress", None
        out.append(ProblemTrack("complaint", c.id, c.account_id, c.at, c.subject or c.id, state,
                                c.owner_id, tuple(i.id for i in linked), solved))
    for r in responses(store, asof=asof):
        if not r.is_low(thresholds):
            continue
        linked = by_ref.get(("response", r.id), [])
        done = [i.finished_at(asof) for i in linked]
        if linked and all(x is not None for x in done):
            state, solved = "solved", max(x for x in done if x is not None)
        else:
            state, solved = ("in_progress" if linked else "open"), None
        title = f"{r.response.kind.value} {r.response.score}" + (f": {r.comment}" if r.comment else "")
        out.append(ProblemTrack("response", r.id, r.response.account_id, r.response.at, title,
                                state, r.response.owner_id, tuple(i.id for i in linked), solved))
    out.sort(key=lambda p: (p.opened_at, p.kind, p.id))
    return out


def unsolved(store: Any, *, asof: datetime, thresholds: Mapping[SurveyKind, int] = LOW_SCORES) -> list[ProblemTrack]:
    """The problems not solved as of ``asof``."""
    return [p for p in problems(store, asof=asof, thresholds=thresholds) if p.state != "solved"]


def root_causes(store: Any, *, asof: datetime | None = None) -> list[tuple[str, int, Decimal | None]]:
    """(root cause, complaints, mean resolution days) for complaints settled by ``asof``, most
    frequent first; unsettled complaints count under ``"(unknown)"`` until a cause is named."""
    from .kpi import stats

    agg: dict[str, list[Decimal]] = {}
    counts: dict[str, int] = {}
    for c in complaints(store, asof=asof):
        cause = c.root_cause or "(unknown)"
        counts[cause] = counts.get(cause, 0) + 1
        d = c.resolution_days(asof)
        if d is not None:
            agg.setdefault(cause, []).append(d)
    rows = []
    for cause, n in counts.items():
        ds = agg.get(cause, [])
        m = stats.mean(ds)
        rows.append((cause, n, None if m is None else stats.tidy(m, stats.DAY_PLACES)))
    rows.sort(key=lambda r: (-r[1], r[0]))
    return rows


# ----------------------------------------------------------------------------------------------
# KPIs
# ----------------------------------------------------------------------------------------------


def _complaints(v: Iterable[Complaint] | None) -> tuple[Complaint, ...]:
    return tuple(v or ())


@attrs.frozen
class FeedbackInputs(KpiInputs):
    """:class:`~salesprocess.kpi.KpiInputs` with complaints, for the complaint KPIs."""

    complaints: tuple[Complaint, ...] = attrs.field(default=(), converter=_complaints)

    def available(self) -> frozenset[str]:
        base = super().available()
        return base | {"complaints"} if self.complaints else base


def kpi_inputs(store: Any, *, base: KpiInputs | None = None) -> FeedbackInputs:
    """The store's survey responses and complaints as KPI inputs (added to ``base``'s)."""
    b = base or KpiInputs()
    surveys_ = tuple(b.surveys) + tuple(r.response for r in responses(store))
    comps = tuple(getattr(b, "complaints", ())) + tuple(complaints(store))
    return FeedbackInputs(surveys_, b.costs, b.revenue, b.targets, b.gross_margin, comps)


class _ComplaintRecord:
    """A complaint seen through the KPI dimensions (owner: the deal's, else the account's)."""

    __slots__ = ("account_id", "complaint", "deal", "owner_id", "product_ids")

    def __init__(self, c: Complaint, view: Any) -> None:
        self.complaint = c
        self.deal = view.by_id.get(c.deal_id) if c.deal_id else None
        acc = view.accounts.get(c.account_id)
        self.account_id = c.account_id
        self.owner_id = (self.deal.owner_id if self.deal else None) or (acc.owner_id if acc else None)
        self.product_ids = self.deal.product_ids if self.deal else ()


def _cell_complaints(c: Any, when: Callable[[Complaint], datetime | None]) -> list[Complaint]:
    from .kpi.dimensions import dimension_values

    comps: Sequence[Complaint] = getattr(c.inputs, "complaints", ())
    key = {k: v for k, v in c.key.items() if k != "period"}
    tz: tzinfo = c.tz
    out = []
    for comp in comps:
        at = when(comp)
        if at is None or (c.asof is not None and at > c.asof):
            continue
        if c.window is not None and at.astimezone(tz).date() not in c.window:
            continue
        if key:
            rec = _ComplaintRecord(comp, c.view)
            if any(v not in dimension_values(c.view, rec, k) for k, v in key.items()):
                continue
        out.append(comp)
    return out


def _resolution_time(c: Any) -> Value:
    from .kpi import stats

    comps = _cell_complaints(c, lambda x: x.resolved_at(c.asof))
    ds = [x.resolution_days(c.asof) for x in comps]
    m = stats.mean([d for d in ds if d is not None])
    return None if m is None else stats.tidy(m, stats.DAY_PLACES)


def _complaint_count(c: Any) -> Value:
    return len(_cell_complaints(c, lambda x: x.at))


FEEDBACK_KPIS: tuple[Kpi, ...] = (
    Kpi("complaint_resolution_time",
        "Mean days from receiving a complaint to resolving it, over complaints resolved (or "
        "closed) in the window.",
        "Σ (resolved_at − received_at) / count(resolved)", Unit.DAYS, Direction.LOWER,
        _resolution_time, Basis.MIXED, inputs={"complaints"}),
    Kpi("complaints", "Complaints received in the window.", "count(complaints)", Unit.COUNT,
        Direction.LOWER, _complaint_count, Basis.MIXED, additive=True, inputs={"complaints"}),
)
