"""A sales process as data: stages, transitions, criteria and playbooks.

Build one with :meth:`Process.from_toml` or :meth:`Process.from_dict`; dump it with
:meth:`Process.to_dict` / :meth:`Process.to_toml` (lossless); compare versions with
:func:`diff_processes`. Construction validates the whole definition and raises one
:class:`~salesprocess.errors.DefinitionError` listing every problem with its path.

Advancing deals lives in :mod:`salesprocess.machine`; ``Process.advance``/``check``/
``allowed_targets`` are thin doors to it.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from . import _toml
from .errors import DefinitionError, DomainError, Problem, ProcessFileError, TransitionNotAllowed
from .guards import DEAL_ONLY, DealCheck, GuardRegistry, Move, builtin_registry
from .model import (
    ActivityKind,
    Deal,
    DealLost,
    DealReopened,
    DealStatus,
    DealWon,
    EventSource,
    ForecastCategory,
    StageChanged,
    _open_deal,
)
from .money import Money, Rate
from .periods import require_aware

if TYPE_CHECKING:
    from .model import Activity

__all__ = [
    "Criteria",
    "Playbook",
    "PlaybookStep",
    "ProbabilityPolicy",
    "Process",
    "ProcessDiff",
    "Resource",
    "Script",
    "Stage",
    "StageKind",
    "Transition",
    "diff_processes",
]


class StageKind(enum.StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class ProbabilityPolicy(enum.StrEnum):
    """What happens to a deal's probability when it changes stage.

    - ``keep_manual`` (default): a probability whose source is ``user``, ``model``, ``import`` or
      ``crm_sync`` survives moves between open stages; one set by a ``rule`` or by a stage default is
      replaced by the new stage's default.
    - ``stage_default``: every stage change applies the new stage's default.
    - ``keep_any``: any probability not set by a stage default (``rule`` included) survives moves
      between open stages.

    Under every policy, a move into a won or lost stage (and a deal without a probability) takes the
    target stage's probability, recorded with source ``stage_default``.
    """

    KEEP_MANUAL = "keep_manual"
    STAGE_DEFAULT = "stage_default"
    KEEP_ANY = "keep_any"


DEAL_FIELDS = (
    "name",
    "amount",
    "close_date",
    "owner_id",
    "account_id",
    "contact_ids",
    "product_ids",
    "competitors",
    "lost_reason",
    "probability",
    "forecast_category",
)


def _strs(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    return tuple(v)


@attrs.frozen
class Criteria:
    """Requirements to enter or leave a stage; all must hold."""

    fields: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    """Deal fields that must be set (``custom.NAME`` for a custom field)."""
    activities: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    """Activity kinds of which at least one must be done."""
    checklist: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    """Playbook checklist items that must be ticked."""
    guards: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    """Named guards (built-in or from plugins) that must pass."""

    def __bool__(self) -> bool:
        return bool(self.fields or self.activities or self.checklist or self.guards)


@attrs.frozen
class PlaybookStep:
    title: str
    description: str = ""
    owner_role: str | None = None
    due_days: int | None = None


@attrs.frozen
class Resource:
    title: str
    url: str = ""


@attrs.frozen
class Script:
    """A call or e-mail script for the stage."""

    kind: str
    title: str
    body: str = ""


@attrs.frozen
class Playbook:
    """What to do in a stage: steps, a checklist, resources, and call/e-mail scripts."""

    steps: tuple[PlaybookStep, ...] = ()
    checklist: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    resources: tuple[Resource, ...] = ()
    scripts: tuple[Script, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.steps or self.checklist or self.resources or self.scripts)


@attrs.frozen
class Stage:
    key: str
    name: str
    kind: StageKind = attrs.field(default=StageKind.OPEN, converter=StageKind)
    probability: Rate = attrs.field(
        default=attrs.Factory(
            lambda self: Rate(1) if self.kind is StageKind.WON else Rate(0), takes_self=True
        )
    )
    """Default win probability of deals in the stage; a won stage must say 1 and a lost stage 0."""
    forecast_category: ForecastCategory | None = None
    sla_days: int | None = None
    sla_business_days: bool = False
    description: str = ""
    names: tuple[tuple[str, str], ...] = ()
    """Translations of ``name`` as (language, name) pairs."""
    entry: Criteria = Criteria()
    exit: Criteria = Criteria()
    playbook: Playbook = Playbook()

    @property
    def is_closed(self) -> bool:
        return self.kind is not StageKind.OPEN

    def display_name(self, language: str | None = None) -> str:
        if language:
            for lang, n in self.names:
                if lang == language:
                    return n
        return self.name

    @property
    def effective_forecast_category(self) -> ForecastCategory:
        if self.forecast_category is not None:
            return self.forecast_category
        if self.kind is StageKind.WON:
            return ForecastCategory.CLOSED
        if self.kind is StageKind.LOST:
            return ForecastCategory.OMITTED
        return ForecastCategory.PIPELINE


@attrs.frozen
class Transition:
    source: str
    target: str
    guards: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    name: str = ""
    reopen: bool = False


# --------------------------------------------------------------------------------------------
# The compiled edge used by the machine
# --------------------------------------------------------------------------------------------


class _Edge:
    """A compiled transition: event class, resulting status, and the checks to run."""

    __slots__ = (
        "category",
        "clears_lost",
        "closing",
        "deal_checks",
        "entry",
        "event_cls",
        "exit",
        "forward",
        "guard_funcs",
        "guards",
        "has_checks",
        "hot",
        "probability",
        "source",
        "status",
        "target",
        "target_stage",
        "transition",
    )

    def __init__(self, process: Process, t: Transition) -> None:
        src = process.stage(t.source)
        dst = process.stage(t.target)
        self.source = t.source
        self.target = t.target
        self.transition = t
        self.target_stage = dst
        self.probability = dst.probability
        self.category = dst.effective_forecast_category
        if dst.kind is StageKind.WON:
            self.event_cls: type[StageChanged] = DealWon
            self.status = DealStatus.WON
        elif dst.kind is StageKind.LOST:
            self.event_cls = DealLost
            self.status = DealStatus.LOST
        elif src.is_closed:
            self.event_cls = DealReopened
            self.status = DealStatus.OPEN
        else:
            self.event_cls = StageChanged
            self.status = DealStatus.OPEN
        self.forward = dst.kind is StageKind.WON or (
            dst.kind is StageKind.OPEN
            and not src.is_closed
            and process.order(t.target) > process.order(t.source)
        )
        self.entry = dst.entry if dst.entry else None
        self.exit = src.exit if (src.exit and self.forward) else None
        self.guards = tuple(t.guards)
        reg = process.guards
        self.guard_funcs = tuple((g, reg[g].func) for g in t.guards)
        self.closing = dst.kind is not StageKind.OPEN
        self.has_checks = bool(self.entry is not None or self.exit is not None or self.guards)
        # Guards only, each a built-in that reads nothing but the deal: the hot path calls the
        # deal-only checks and builds a Move only to report a failure.
        checks = [DEAL_ONLY.get(f) for _g, f in self.guard_funcs]
        self.deal_checks: tuple[DealCheck, ...] | None = (
            tuple(c for c in checks if c is not None)
            if self.entry is None and self.exit is None and None not in checks
            else None
        )
        self.clears_lost = src.is_closed and dst.kind is StageKind.OPEN  # a reopen clears it
        # what the hot path needs, read in one go: the deal-only checks to run (empty when the edge
        # has no checks, None when the general check is needed), then what the move writes
        self.hot: tuple[
            tuple[DealCheck, ...] | None, bool, Rate, DealStatus, ForecastCategory, bool,
            type[StageChanged],
        ] = (
            self.deal_checks if self.has_checks else (),
            self.closing, self.probability, self.status, self.category, self.clears_lost,
            self.event_cls,
        )


# --------------------------------------------------------------------------------------------
# Process
# --------------------------------------------------------------------------------------------


@attrs.frozen(eq=False, repr=False)
class Process:
    """A validated sales process. Build with :meth:`from_toml`/:meth:`from_dict` or directly."""

    key: str
    name: str
    stages: tuple[Stage, ...]
    transitions: tuple[Transition, ...] = ()
    """Explicit edges. When empty, edges are generated from the linear switches below."""
    version: int = 1
    description: str = ""
    initial: str | None = None
    allow_skip: bool = False
    allow_back: bool = True
    allow_reopen: bool = True
    reopen_to: str | None = None
    probability_policy: ProbabilityPolicy = attrs.field(
        default=ProbabilityPolicy.KEEP_MANUAL, converter=ProbabilityPolicy
    )
    currency: str | None = None
    after_sales: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    """Follow-on activities after a win (e.g. delivery, onboarding, renewal)."""
    guards: GuardRegistry = attrs.field(factory=builtin_registry, eq=False)

    # derived
    _by_key: dict[str, Stage] = attrs.field(init=False)
    _order: dict[str, int] = attrs.field(init=False)
    _edges: dict[tuple[str, str], _Edge] = attrs.field(init=False)
    _edges_from: dict[str, dict[str, _Edge]] = attrs.field(init=False)
    _targets: dict[str, tuple[str, ...]] = attrs.field(init=False)
    _keep: frozenset[EventSource] = attrs.field(init=False)
    _opening: dict[str, tuple[DealStatus, Rate, ForecastCategory]] = attrs.field(init=False)
    _initial_key: str = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        problems = _validate(self)
        if problems:
            raise DefinitionError(problems, source=f"process {self.key!r}")
        by_key = {s.key: s for s in self.stages}
        object.__setattr__(self, "_by_key", by_key)
        object.__setattr__(self, "_order", {s.key: i for i, s in enumerate(self.stages)})
        edges = {(t.source, t.target): _Edge(self, t) for t in self.effective_transitions()}
        object.__setattr__(self, "_edges", edges)
        edges_from: dict[str, dict[str, _Edge]] = {s.key: {} for s in self.stages}
        for (src, dst), e in edges.items():
            edges_from[src][dst] = e
        object.__setattr__(self, "_edges_from", edges_from)
        targets: dict[str, list[str]] = {s.key: [] for s in self.stages}
        for src, dst in edges:
            targets[src].append(dst)
        object.__setattr__(self, "_targets", {k: tuple(v) for k, v in targets.items()})
        object.__setattr__(self, "_keep", _KEEP_SOURCES[self.probability_policy])
        status_of = {StageKind.OPEN: DealStatus.OPEN, StageKind.WON: DealStatus.WON, StageKind.LOST: DealStatus.LOST}
        object.__setattr__(self, "_opening", {
            s.key: (status_of[s.kind], s.probability, s.effective_forecast_category) for s in self.stages
        })
        object.__setattr__(self, "_initial_key", self.initial or self.stages[0].key)

    def __repr__(self) -> str:
        return f"Process(key={self.key!r}, version={self.version}, stages={[s.key for s in self.stages]})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Process):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.key, self.version))

    # --- lookups ---------------------------------------------------------------------------
    def stage(self, key: str) -> Stage:
        try:
            return self._by_key[key] if hasattr(self, "_by_key") else _stage_map(self)[key]
        except KeyError:
            raise KeyError(f"process {self.key!r} has no stage {key!r}") from None

    def has_stage(self, key: str) -> bool:
        return key in self._by_key

    def order(self, key: str) -> int:
        if hasattr(self, "_order"):
            return self._order[key]
        return [s.key for s in self.stages].index(key)

    @property
    def initial_stage(self) -> Stage:
        return self.stage(self.initial) if self.initial else self.stages[0]

    @property
    def open_stages(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.kind is StageKind.OPEN)

    @property
    def won_stages(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.kind is StageKind.WON)

    @property
    def lost_stages(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.kind is StageKind.LOST)

    def effective_transitions(self) -> tuple[Transition, ...]:
        """The explicit transitions, or the ones the linear switches generate."""
        if self.transitions:
            return self.transitions
        return _linear_edges(self)

    def edge(self, source: str, target: str) -> Transition | None:
        e = self._edges.get((source, target))
        return e.transition if e else None

    # --- the machine ---------------------------------------------------------------------------
    def open_deal(
        self,
        id: str,
        *,
        at: datetime,
        actor: str,
        source: EventSource = EventSource.USER,
        stage: str | None = None,
        name: str = "",
        amount: Money | None = None,
        close_date: date | None = None,
        owner_id: str | None = None,
        account_id: str | None = None,
        **fields: Any,
    ) -> Deal:
        """A new deal in ``stage`` (default: the initial stage) with the stage's probability and
        forecast category unless given. Other keyword arguments are those of :meth:`Deal.create`."""
        key = stage or self._initial_key
        try:
            status, prob, category = self._opening[key]
        except KeyError:
            raise KeyError(f"process {self.key!r} has no stage {key!r}") from None
        if not fields:  # the common case: no detail fields, the stage's defaults
            return _open_deal(
                id, self.key, self.version, key, status, at, actor, source, name, amount,
                close_date, owner_id, account_id, prob, category,
            )
        if fields.get("probability") is None:
            fields["probability"] = prob
            fields["probability_source"] = _STAGE_DEFAULT
        if "forecast_category" not in fields:
            fields["forecast_category"] = category
        return Deal.create(
            id,
            process=self.key,
            process_version=self.version,
            stage=key,
            status=status,
            at=at,
            actor=actor,
            source=source,
            name=name,
            amount=amount,
            close_date=close_date,
            owner_id=owner_id,
            account_id=account_id,
            **fields,
        )

    def check(
        self,
        deal: Deal,
        to: str,
        *,
        at: datetime | None = None,
        actor: str = "",
        reason: str | None = None,
        activities: Sequence[Activity] = (),
    ) -> list[Problem]:
        """Every unmet criterion for moving ``deal`` to ``to`` (empty when the move is allowed)."""
        from .machine import check

        return check(self, deal, to, at=at, actor=actor, reason=reason, activities=activities)

    def advance(
        self,
        deal: Deal,
        to: str,
        *,
        at: datetime,
        actor: str,
        reason: str | None = None,
        source: EventSource = EventSource.USER,
        activities: Sequence[Activity] = (),
    ) -> Deal:
        """The deal moved to ``to`` with its new event appended.

        Raises :class:`TransitionNotAllowed` listing every unmet criterion;
        :class:`~salesprocess.errors.DomainError` when the deal follows another process or ``at``
        is before the deal's last change; :class:`~salesprocess.errors.NaiveDatetimeError` for a
        naive ``at``. This is the stage machine's hot path: it is written for speed.
        """
        (
            id_, process, version, name, stage, status, amount, close_date, owner_id, account_id,
            prob, psrc, category, created_at, _entered, _closed, competitors, lost_reason,
            contact_ids, product_ids, checklist, custom, external_ids, events,
        ) = deal
        if process != self.key:
            raise DomainError(f"deal {id_} follows process {process!r}, not {self.key!r}")
        tz = at.tzinfo
        if tz is None or (tz.__class__ is not timezone and at.utcoffset() is None):
            require_aware(at, "at")
        last = events[-1][1]  # the last event's ``at``
        # Same fixed-offset zone: plain comparison is exact; otherwise compare real instants
        # (a same-zone comparison would ignore a DST fold).
        if at < last if (tz is last.tzinfo and tz.__class__ is timezone) else _utc(at) < _utc(last):
            raise DomainError(
                f"deal {id_}: move at {at.isoformat()} is earlier than its last change "
                f"at {last.isoformat()}"
            )
        try:
            edge = self._edges_from[stage].get(to)
        except KeyError:  # a stage this process does not have
            edge = None
        if edge is None:
            raise TransitionNotAllowed(id_, stage, to, _machine._missing_edge(self, deal, to))
        checks, closing, stage_prob, status, category, clears_lost, event_cls = edge.hot
        failed = checks is None
        if checks is not None:  # no checks, or built-in guards that read only the deal: no Move
            for check in checks:
                if check(deal):
                    failed = True
                    break
        if failed:
            move = _make_move((self, stage, to, at, actor, reason, activities))
            unmet = _machine._edge_problems(self, deal, edge, move)
            if unmet:
                raise TransitionNotAllowed(id_, stage, to, unmet)
        # probability precedence (see ProbabilityPolicy)
        if closing or prob is None or psrc not in self._keep:
            prob = stage_prob
            psrc = _STAGE_DEFAULT
        if source.__class__ is not EventSource:
            source = EventSource(source)
        if reason is not None and status is _LOST:
            lost_reason = reason
        elif clears_lost:
            lost_reason = None
        return _tnew(Deal, (
            id_, process, version, name, to, status, amount, close_date, owner_id, account_id,
            prob, psrc, category, created_at, at, at if closing else None, competitors, lost_reason,
            contact_ids, product_ids, checklist, custom, external_ids,
            events + (_tnew(event_cls, (id_, at, actor, source, stage, to, prob, psrc, category, reason)),),
        ))

    def allowed_targets(
        self,
        deal: Deal,
        *,
        at: datetime | None = None,
        activities: Sequence[Activity] = (),
    ) -> list[str]:
        """Stages the deal may move to now (all criteria met)."""
        from .machine import allowed_targets

        return allowed_targets(self, deal, at=at, activities=activities)

    def graph_targets(self, stage: str) -> tuple[str, ...]:
        """Stages reachable from ``stage`` in one transition, criteria aside."""
        return self._targets.get(stage, ())

    # --- validation / serialisation -------------------------------------------------------------
    def validate(self) -> list[Problem]:
        """Problems of this definition; always empty for a constructed process (kept for symmetry
        with :meth:`Process.problems_in`)."""
        return _validate(self)

    @classmethod
    def problems_in(cls, data: Mapping[str, Any], *, guards: GuardRegistry | None = None) -> list[Problem]:
        """Every problem of a process given as a dict, without raising."""
        try:
            cls.from_dict(data, guards=guards)
        except DefinitionError as e:
            return list(e.problems)
        return []

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, guards: GuardRegistry | None = None, source: str | None = None
    ) -> Process:
        """Build from plain data (the shape of the TOML file); every problem is reported at once."""
        problems: list[Problem] = []
        kwargs = _parse(data, problems)
        if problems:
            raise DefinitionError(problems, source=source)
        try:
            return cls(**kwargs, guards=guards if guards is not None else builtin_registry())
        except DefinitionError as e:
            raise DefinitionError(e.problems, source=source or e.source) from None

    @classmethod
    def from_toml(cls, text_or_path: str | Path, *, guards: GuardRegistry | None = None) -> Process:
        """Load from TOML text or a path to a ``.toml`` file."""
        path: str | None = None
        if isinstance(text_or_path, Path) or (
            isinstance(text_or_path, str) and "\n" not in text_or_path and text_or_path.endswith(".toml")
        ):
            path = str(text_or_path)
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as e:
                raise ProcessFileError(path, f"cannot read: {e.strerror or e}") from None
            except UnicodeDecodeError as e:
                raise ProcessFileError(path, f"not UTF-8 text: {e}") from None
        else:
            text = str(text_or_path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            line, col = _toml_pos(e)
            if line is None:  # "at end of document": the last line
                lines = text.splitlines() or [""]
                line, col = len(lines), len(lines[-1]) + 1
            raise ProcessFileError(path or "<string>", f"invalid TOML: {e}", line=line, column=col) from None
        try:
            return cls.from_dict(data, guards=guards, source=path)
        except DefinitionError as e:
            if path is None:
                raise
            raise ProcessFileError(path, "invalid process", problems=e.problems) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (TOML/JSON-ready); ``Process.from_dict(p.to_dict()) == p``."""
        d: dict[str, Any] = {"key": self.key, "name": self.name, "version": self.version}
        if self.description:
            d["description"] = self.description
        if self.currency:
            d["currency"] = self.currency
        if self.initial:
            d["initial"] = self.initial
        d["probability_policy"] = self.probability_policy.value
        if self.after_sales:
            d["after_sales"] = list(self.after_sales)
        d["flow"] = {
            "allow_skip": self.allow_skip,
            "allow_back": self.allow_back,
            "allow_reopen": self.allow_reopen,
        }
        if self.reopen_to:
            d["flow"]["reopen_to"] = self.reopen_to
        d["stages"] = [_stage_to_dict(s) for s in self.stages]
        if self.transitions:
            d["transitions"] = [_transition_to_dict(t) for t in self.transitions]
        return d

    def to_toml(self) -> str:
        return _toml.dumps(self.to_dict())

    def with_version(self, version: int) -> Process:
        return attrs.evolve(self, version=version)


_tnew = tuple.__new__
_make_move = Move._make
_I_STAGE, _I_STATUS, _I_PROB, _I_PSRC, _I_CAT, _I_ENTERED, _I_CLOSED, _I_LOST, _I_EVENTS = (
    Deal._fields.index(k)
    for k in ("stage", "status", "probability", "probability_source", "forecast_category",
              "stage_entered_at", "closed_at", "lost_reason", "events")
)


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


_STAGE_DEFAULT = EventSource.STAGE_DEFAULT
_LOST = DealStatus.LOST
_KEEP_SOURCES: dict[ProbabilityPolicy, frozenset[EventSource]] = {
    ProbabilityPolicy.STAGE_DEFAULT: frozenset(),
    ProbabilityPolicy.KEEP_MANUAL: frozenset(
        {EventSource.USER, EventSource.MODEL, EventSource.CRM_SYNC, EventSource.IMPORT}
    ),
    ProbabilityPolicy.KEEP_ANY: frozenset(
        {EventSource.USER, EventSource.MODEL, EventSource.CRM_SYNC, EventSource.IMPORT, EventSource.RULE}
    ),
}


def _stage_map(p: Process) -> dict[str, Stage]:
    return {s.key: s for s in p.stages}


def _linear_edges(p: Process) -> tuple[Transition, ...]:
    opens = [s for s in p.stages if s.kind is StageKind.OPEN]
    closed = [s for s in p.stages if s.kind is not StageKind.OPEN]
    wons = [s for s in closed if s.kind is StageKind.WON]
    losts = [s for s in closed if s.kind is StageKind.LOST]
    out: list[Transition] = []
    for i, s in enumerate(opens):
        if i + 1 < len(opens):
            out.append(Transition(s.key, opens[i + 1].key))
        if p.allow_skip:
            out.extend(Transition(s.key, t.key) for t in opens[i + 2 :])
        if p.allow_back:
            out.extend(Transition(s.key, t.key) for t in opens[:i])
        if i == len(opens) - 1 or p.allow_skip:
            out.extend(Transition(s.key, w.key) for w in wons)
        out.extend(Transition(s.key, lost.key) for lost in losts)
    if p.allow_reopen and opens:
        target = p.reopen_to or (p.initial or opens[0].key)
        out.extend(Transition(c.key, target, reopen=True) for c in closed)
    return tuple(out)


def _validate(p: Process) -> list[Problem]:
    probs: list[Problem] = []
    if not p.key:
        probs.append(Problem("key", "required", "the process needs a key"))
    if not p.stages:
        probs.append(Problem("stages", "required", "the process has no stages"))
        return probs
    seen: dict[str, int] = {}
    for i, s in enumerate(p.stages):
        path = f"stages[{i}]"
        if not s.key:
            probs.append(Problem(f"{path}.key", "required", "stage key is empty"))
        elif s.key in seen:
            probs.append(
                Problem(f"{path}.key", "duplicate", f"duplicate stage key {s.key!r} (also stages[{seen[s.key]}])")
            )
        else:
            seen[s.key] = i
        if not s.probability.is_probability():
            probs.append(
                Problem(f"{path}.probability", "range", f"probability {s.probability.value} is outside [0, 1]")
            )
        elif s.kind is StageKind.WON and s.probability.value != 1:
            probs.append(
                Problem(f"{path}.probability", "range", f"a won stage has probability 1, not {s.probability.value}")
            )
        elif s.kind is StageKind.LOST and s.probability.value != 0:
            probs.append(
                Problem(f"{path}.probability", "range", f"a lost stage has probability 0, not {s.probability.value}")
            )
        if s.sla_days is not None and s.sla_days <= 0:
            probs.append(Problem(f"{path}.sla_days", "range", "SLA must be a positive number of days"))
        for side in ("entry", "exit"):
            crit: Criteria = getattr(s, side)
            for j, g in enumerate(crit.guards):
                if g not in p.guards:
                    probs.append(Problem(f"{path}.{side}.guards[{j}]", "unknown_guard", f"unknown guard {g!r}"))
            for j, f in enumerate(crit.fields):
                if f not in DEAL_FIELDS and not f.startswith("custom."):
                    probs.append(
                        Problem(f"{path}.{side}.fields[{j}]", "unknown_field", f"unknown deal field {f!r}")
                    )
            for j, a in enumerate(crit.activities):
                if a not in ActivityKind.__members__.values():
                    probs.append(
                        Problem(f"{path}.{side}.activities[{j}]", "unknown_activity", f"unknown activity kind {a!r}")
                    )
    kinds = {s.kind for s in p.stages}
    if StageKind.WON not in kinds:
        probs.append(Problem("stages", "no_won", "the process has no won stage"))
    if StageKind.LOST not in kinds:
        probs.append(Problem("stages", "no_lost", "the process has no lost stage"))
    if StageKind.OPEN not in kinds:
        probs.append(Problem("stages", "no_open", "the process has no open stage"))
    keys = set(seen)
    if p.initial is not None and p.initial not in keys:
        probs.append(Problem("initial", "unknown_stage", f"initial stage {p.initial!r} does not exist"))
    if p.reopen_to is not None and p.reopen_to not in keys:
        probs.append(Problem("flow.reopen_to", "unknown_stage", f"reopen target {p.reopen_to!r} does not exist"))
    structural = bool(probs)
    by_key: dict[str, Stage] = {}
    for s in p.stages:
        by_key.setdefault(s.key, s)
    initial = p.initial if p.initial in by_key else p.stages[0].key
    if by_key[initial].is_closed:
        probs.append(Problem("initial", "closed_initial", f"initial stage {initial!r} is closed"))
    edges = p.effective_transitions() if not structural or p.transitions else ()
    adj: dict[str, set[str]] = {k: set() for k in keys}
    for i, t in enumerate(edges):
        path = f"transitions[{i}]"
        bad = False
        for end, k in (("from", t.source), ("to", t.target)):
            if k not in keys:
                probs.append(Problem(f"{path}.{end}", "unknown_stage", f"transition {end} unknown stage {k!r}"))
                bad = True
        if bad:
            continue
        if t.source == t.target:
            probs.append(Problem(path, "self_loop", f"transition from {t.source!r} to itself"))
        if by_key[t.source].is_closed and not t.reopen:
            probs.append(
                Problem(path, "leaves_closed", f"transition out of closed stage {t.source!r} must be marked reopen")
            )
        if t.reopen and not by_key[t.source].is_closed:
            probs.append(Problem(path, "reopen_open", f"reopen transition from open stage {t.source!r}"))
        for j, g in enumerate(t.guards):
            if g not in p.guards:
                probs.append(Problem(f"{path}.guards[{j}]", "unknown_guard", f"unknown guard {g!r}"))
        adj[t.source].add(t.target)
    if structural:
        return probs  # graph analysis would only repeat the problems above
    # reachability from the initial stage
    reach = {initial}
    todo = [initial]
    while todo:
        for n in adj[todo.pop()]:
            if n not in reach:
                reach.add(n)
                todo.append(n)
    for i, s in enumerate(p.stages):
        if s.key not in reach:
            probs.append(Problem(f"stages[{i}]", "unreachable", f"stage {s.key!r} cannot be reached from {initial!r}"))
    # every open stage must lead to a closed stage
    closed = {s.key for s in p.stages if s.is_closed}
    radj: dict[str, set[str]] = {k: set() for k in keys}
    for src, dsts in adj.items():
        for d in dsts:
            radj[d].add(src)
    can_close = set(closed)
    todo = list(closed)
    while todo:
        for n in radj[todo.pop()]:
            if n not in can_close:
                can_close.add(n)
                todo.append(n)
    for i, s in enumerate(p.stages):
        if not s.is_closed and s.key not in can_close:
            probs.append(Problem(f"stages[{i}]", "trap", f"open stage {s.key!r} has no way to a won or lost stage"))
    return probs


# --------------------------------------------------------------------------------------------
# Parsing plain data
# --------------------------------------------------------------------------------------------


def _rate(v: Any, path: str, probs: list[Problem]) -> Rate:
    try:
        if isinstance(v, float):  # TOML floats: take the decimal digits as written
            v = repr(v)
        return Rate(v)
    except (TypeError, ValueError):
        probs.append(Problem(path, "type", f"expected a number, got {v!r}"))
        return Rate(0)


def _typed(d: Mapping[str, Any], key: str, typ: type | tuple[type, ...], path: str, probs: list[Problem], default: Any = None) -> Any:
    if key not in d:
        return default
    v = d[key]
    if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        probs.append(Problem(f"{path}{key}", "type", f"expected {names}, got {type(v).__name__} {v!r}"))
        return default
    return v


def _str_list(d: Mapping[str, Any], key: str, path: str, probs: list[Problem]) -> tuple[str, ...]:
    v = d.get(key, ())
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
        probs.append(Problem(f"{path}{key}", "type", f"expected a list of strings, got {v!r}"))
        return ()
    return tuple(v)


_STAGE_KEYS = {
    "key", "name", "kind", "probability", "forecast_category", "sla_days", "sla_business_days",
    "description", "names", "entry", "exit", "playbook",
}
_TOP_KEYS = {
    "key", "name", "version", "description", "initial", "probability_policy", "currency",
    "after_sales", "flow", "stages", "transitions",
}


def _criteria(d: Any, path: str, probs: list[Problem]) -> Criteria:
    if d is None:
        return Criteria()
    if not isinstance(d, Mapping):
        probs.append(Problem(path, "type", "expected a table"))
        return Criteria()
    for k in d:
        if k not in ("fields", "activities", "checklist", "guards"):
            probs.append(Problem(f"{path}.{k}", "unknown_key", f"unknown key {k!r}"))
    p = f"{path}."
    return Criteria(
        _str_list(d, "fields", p, probs),
        _str_list(d, "activities", p, probs),
        _str_list(d, "checklist", p, probs),
        _str_list(d, "guards", p, probs),
    )


def _unknown_keys(
    d: Mapping[str, Any], allowed: Sequence[str], path: str, probs: list[Problem]
) -> None:
    for k in d:
        if k not in allowed:
            probs.append(Problem(f"{path}.{k}", "unknown_key", f"unknown key {k!r}"))


def _list(d: Mapping[str, Any], key: str, path: str, probs: list[Problem]) -> Sequence[Any]:
    v = d.get(key, ())
    if isinstance(v, list | tuple):
        return v
    probs.append(Problem(f"{path}.{key}", "type", f"expected an array, got {type(v).__name__} {v!r}"))
    return ()


def _playbook(d: Any, path: str, probs: list[Problem]) -> Playbook:
    if d is None:
        return Playbook()
    if not isinstance(d, Mapping):
        probs.append(Problem(path, "type", "expected a table"))
        return Playbook()
    _unknown_keys(d, ("steps", "checklist", "resources", "scripts"), path, probs)
    steps: list[PlaybookStep] = []
    for i, s in enumerate(_list(d, "steps", path, probs)):
        if isinstance(s, str):
            steps.append(PlaybookStep(s))
        elif isinstance(s, Mapping) and isinstance(s.get("title"), str):
            spath = f"{path}.steps[{i}]"
            _unknown_keys(s, ("title", "description", "owner_role", "due_days"), spath, probs)
            due = _typed(s, "due_days", int, f"{spath}.", probs, None)
            role = _typed(s, "owner_role", str, f"{spath}.", probs, None)
            steps.append(PlaybookStep(s["title"], str(s.get("description", "")), role, due))
        else:
            probs.append(Problem(f"{path}.steps[{i}]", "type", "a step is a string or a table with a title"))
    resources = []
    for i, r in enumerate(_list(d, "resources", path, probs)):
        if isinstance(r, str):
            resources.append(Resource(r))
        elif isinstance(r, Mapping) and isinstance(r.get("title"), str):
            _unknown_keys(r, ("title", "url"), f"{path}.resources[{i}]", probs)
            resources.append(Resource(r["title"], str(r.get("url", ""))))
        else:
            probs.append(Problem(f"{path}.resources[{i}]", "type", "a resource is a string or a table with a title"))
    scripts = []
    for i, s in enumerate(_list(d, "scripts", path, probs)):
        if isinstance(s, Mapping) and isinstance(s.get("title"), str):
            _unknown_keys(s, ("kind", "title", "body"), f"{path}.scripts[{i}]", probs)
            kind = str(s.get("kind", "call"))
            if kind not in ("call", "email", "meeting", "visit"):
                probs.append(Problem(f"{path}.scripts[{i}].kind", "type", f"unknown script kind {kind!r}"))
            scripts.append(Script(kind, s["title"], str(s.get("body", ""))))
        else:
            probs.append(Problem(f"{path}.scripts[{i}]", "type", "a script is a table with kind, title, body"))
    return Playbook(tuple(steps), _str_list(d, "checklist", f"{path}.", probs), tuple(resources), tuple(scripts))


def _parse(data: Mapping[str, Any], probs: list[Problem]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        probs.append(Problem("", "type", "a process is a table"))
        return {}
    for k in data:
        if k not in _TOP_KEYS:
            probs.append(Problem(k, "unknown_key", f"unknown key {k!r}"))
    out: dict[str, Any] = {}
    out["key"] = _typed(data, "key", str, "", probs, "")
    if "key" not in data:
        probs.append(Problem("key", "required", "the process needs a key"))
    out["name"] = _typed(data, "name", str, "", probs, out["key"])
    out["version"] = _typed(data, "version", int, "", probs, 1)
    out["description"] = _typed(data, "description", str, "", probs, "")
    out["initial"] = _typed(data, "initial", str, "", probs, None)
    out["currency"] = _typed(data, "currency", str, "", probs, None)
    out["after_sales"] = _str_list(data, "after_sales", "", probs)
    pol = _typed(data, "probability_policy", str, "", probs, "keep_manual")
    if pol not in ProbabilityPolicy.__members__.values():
        probs.append(Problem("probability_policy", "value", f"expected one of {[p.value for p in ProbabilityPolicy]}, got {pol!r}"))
        pol = "keep_manual"
    out["probability_policy"] = pol
    flow = data.get("flow", {})
    if not isinstance(flow, Mapping):
        probs.append(Problem("flow", "type", "expected a table"))
        flow = {}
    for k in flow:
        if k not in ("allow_skip", "allow_back", "allow_reopen", "reopen_to"):
            probs.append(Problem(f"flow.{k}", "unknown_key", f"unknown key {k!r}"))
    out["allow_skip"] = _typed(flow, "allow_skip", bool, "flow.", probs, False)
    out["allow_back"] = _typed(flow, "allow_back", bool, "flow.", probs, True)
    out["allow_reopen"] = _typed(flow, "allow_reopen", bool, "flow.", probs, True)
    out["reopen_to"] = _typed(flow, "reopen_to", str, "flow.", probs, None)
    stages_raw = data.get("stages")
    stages: list[Stage] = []
    if not isinstance(stages_raw, list) or not stages_raw:
        probs.append(Problem("stages", "required", "expected a non-empty array of stage tables"))
    else:
        for i, s in enumerate(stages_raw):
            path = f"stages[{i}]"
            if not isinstance(s, Mapping):
                probs.append(Problem(path, "type", "a stage is a table"))
                continue
            for k in s:
                if k not in _STAGE_KEYS:
                    probs.append(Problem(f"{path}.{k}", "unknown_key", f"unknown key {k!r}"))
            key = _typed(s, "key", str, f"{path}.", probs, "")
            if "key" not in s:
                probs.append(Problem(f"{path}.key", "required", "stage needs a key"))
            kind = _typed(s, "kind", str, f"{path}.", probs, "open")
            if kind not in StageKind.__members__.values():
                probs.append(Problem(f"{path}.kind", "value", f"kind must be open, won or lost, got {kind!r}"))
                kind = "open"
            default_p = {"won": 1, "lost": 0}.get(kind, 0)
            prob = _rate(s.get("probability", default_p), f"{path}.probability", probs)
            fc = _typed(s, "forecast_category", str, f"{path}.", probs, None)
            if fc is not None and fc not in ForecastCategory.__members__.values():
                probs.append(Problem(f"{path}.forecast_category", "value", f"unknown forecast category {fc!r}"))
                fc = None
            names = _typed(s, "names", Mapping, f"{path}.", probs, {})
            stages.append(
                Stage(
                    key=key,
                    name=_typed(s, "name", str, f"{path}.", probs, key),
                    kind=kind,
                    probability=prob,
                    forecast_category=None if fc is None else ForecastCategory(fc),
                    sla_days=_typed(s, "sla_days", int, f"{path}.", probs, None),
                    sla_business_days=_typed(s, "sla_business_days", bool, f"{path}.", probs, False),
                    description=_typed(s, "description", str, f"{path}.", probs, ""),
                    names=tuple((str(k), str(v)) for k, v in names.items()),
                    entry=_criteria(s.get("entry"), f"{path}.entry", probs),
                    exit=_criteria(s.get("exit"), f"{path}.exit", probs),
                    playbook=_playbook(s.get("playbook"), f"{path}.playbook", probs),
                )
            )
    out["stages"] = tuple(stages)
    trans: list[Transition] = []
    traw = data.get("transitions", [])
    if not isinstance(traw, list):
        probs.append(Problem("transitions", "type", "expected an array of transition tables"))
        traw = []
    for i, t in enumerate(traw):
        path = f"transitions[{i}]"
        if not isinstance(t, Mapping):
            probs.append(Problem(path, "type", "a transition is a table"))
            continue
        for k in t:
            if k not in ("from", "to", "guards", "name", "reopen"):
                probs.append(Problem(f"{path}.{k}", "unknown_key", f"unknown key {k!r}"))
        src = _typed(t, "from", str, f"{path}.", probs, "")
        dst = _typed(t, "to", str, f"{path}.", probs, "")
        if "from" not in t or "to" not in t:
            probs.append(Problem(path, "required", "a transition needs from and to"))
            continue
        trans.append(
            Transition(
                src, dst, _str_list(t, "guards", f"{path}.", probs),
                _typed(t, "name", str, f"{path}.", probs, ""), _typed(t, "reopen", bool, f"{path}.", probs, False),
            )
        )
    out["transitions"] = tuple(trans)
    return out


def _criteria_to_dict(c: Criteria) -> dict[str, Any]:
    return {k: list(getattr(c, k)) for k in ("fields", "activities", "checklist", "guards") if getattr(c, k)}


def _stage_to_dict(s: Stage) -> dict[str, Any]:
    d: dict[str, Any] = {"key": s.key, "name": s.name, "kind": s.kind.value, "probability": str(s.probability.value)}
    if s.forecast_category is not None:
        d["forecast_category"] = s.forecast_category.value
    if s.sla_days is not None:
        d["sla_days"] = s.sla_days
    if s.sla_business_days:
        d["sla_business_days"] = True
    if s.description:
        d["description"] = s.description
    if s.names:
        d["names"] = dict(s.names)
    if s.entry:
        d["entry"] = _criteria_to_dict(s.entry)
    if s.exit:
        d["exit"] = _criteria_to_dict(s.exit)
    if s.playbook:
        pb: dict[str, Any] = {}
        if s.playbook.steps:
            pb["steps"] = [
                {k: v for k, v in attrs.asdict(st).items() if k == "title" or v not in (None, "")}
                for st in s.playbook.steps
            ]
        if s.playbook.checklist:
            pb["checklist"] = list(s.playbook.checklist)
        if s.playbook.resources:
            pb["resources"] = [
                {k: v for k, v in attrs.asdict(r).items() if k == "title" or v != ""}
                for r in s.playbook.resources
            ]
        if s.playbook.scripts:
            pb["scripts"] = [attrs.asdict(sc) for sc in s.playbook.scripts]
        d["playbook"] = pb
    return d


def _transition_to_dict(t: Transition) -> dict[str, Any]:
    d: dict[str, Any] = {"from": t.source, "to": t.target}
    if t.guards:
        d["guards"] = list(t.guards)
    if t.name:
        d["name"] = t.name
    if t.reopen:
        d["reopen"] = True
    return d


def _toml_pos(e: tomllib.TOMLDecodeError) -> tuple[int | None, int | None]:
    line = getattr(e, "lineno", None)
    col = getattr(e, "colno", None)
    if line is None:
        import re

        m = re.search(r"line (\d+), column (\d+)", str(e))
        if m:
            return int(m.group(1)), int(m.group(2))
    return line, col


# --------------------------------------------------------------------------------------------
# Diff
# --------------------------------------------------------------------------------------------


@attrs.frozen
class ProcessDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[tuple[str, str, Any, Any], ...]
    """(stage key, field, old, new) for each changed stage field."""
    transitions_added: tuple[tuple[str, str], ...]
    transitions_removed: tuple[tuple[str, str], ...]
    settings_changed: tuple[tuple[str, Any, Any], ...]

    def __bool__(self) -> bool:
        return bool(
            self.added or self.removed or self.changed or self.transitions_added
            or self.transitions_removed or self.settings_changed
        )

    def lines(self) -> list[str]:
        out = [f"+ stage {k}" for k in self.added] + [f"- stage {k}" for k in self.removed]
        out += [f"~ stage {k}.{f}: {o!r} → {n!r}" for k, f, o, n in self.changed]
        out += [f"+ transition {a} → {b}" for a, b in self.transitions_added]
        out += [f"- transition {a} → {b}" for a, b in self.transitions_removed]
        out += [f"~ {k}: {o!r} → {n!r}" for k, o, n in self.settings_changed]
        return out


def diff_processes(old: Process, new: Process) -> ProcessDiff:
    """What changed between two versions of a process."""
    od = {s.key: _stage_to_dict(s) for s in old.stages}
    nd = {s.key: _stage_to_dict(s) for s in new.stages}
    changed: list[tuple[str, str, Any, Any]] = []
    for k in od.keys() & nd.keys():
        a, b = od[k], nd[k]
        for f in sorted(a.keys() | b.keys()):
            if a.get(f) != b.get(f):
                changed.append((k, f, a.get(f), b.get(f)))
    if [k for k in od if k in nd] != [k for k in nd if k in od]:
        changed.append(("*", "order", [k for k in od if k in nd], [k for k in nd if k in od]))
    oe = {(t.source, t.target) for t in old.effective_transitions()}
    ne = {(t.source, t.target) for t in new.effective_transitions()}
    ot, nt = old.to_dict(), new.to_dict()
    settings = []
    for k in ("name", "description", "initial", "probability_policy", "currency", "after_sales", "flow"):
        if ot.get(k) != nt.get(k):
            settings.append((k, ot.get(k), nt.get(k)))
    return ProcessDiff(
        added=tuple(k for k in nd if k not in od),
        removed=tuple(k for k in od if k not in nd),
        changed=tuple(sorted(changed, key=lambda c: (c[0], c[1]))),
        transitions_added=tuple(sorted(ne - oe)),
        transitions_removed=tuple(sorted(oe - ne)),
        settings_changed=tuple(settings),
    )


from . import machine as _machine  # noqa: E402  (machine builds on the names above)
