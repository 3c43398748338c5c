"""Sales contests and recognition: leaderboards by any KPI, qualifying minimums, tie-breaks,
individual and team scopes, and recurring periods (the quarterly champion, 季度冠军)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from ..errors import DefinitionError, DomainError, KpiError, Problem
from ..money import Money, to_decimal
from ..periods import CALENDAR_YEAR, FiscalCalendar, Period, PeriodKind
from . import _tomlpos
from ._errors import IncentiveError, PlanFileError
from ._plan import _P, _fs, _t

__all__ = [
    "Contest",
    "Leaderboard",
    "Prize",
    "Qualifier",
    "Season",
    "Standing",
    "run_contest",
    "run_season",
]

_SCOPES = {"individual": "owner", "team": "team"}


@attrs.frozen
class Qualifier:
    """A participant qualifies only when ``metric`` is at least ``min`` (and at most ``max``).
    Money KPIs compare their amount."""

    metric: str
    min: Decimal | None = None
    max: Decimal | None = None

    def check(self, value: Any) -> str | None:
        """``None`` when ``value`` qualifies, else the reason."""
        v = _num(value)
        if v is None:
            return f"no {self.metric}"
        if self.min is not None and v < self.min:
            return f"{self.metric} {_show(value)} is below the minimum {self.min}"
        if self.max is not None and v > self.max:
            return f"{self.metric} {_show(value)} is above the maximum {self.max}"
        return None


@attrs.frozen
class Prize:
    """What rank ``rank`` wins (a title, a bonus, a trophy: free text)."""

    rank: int
    reward: str


@attrs.frozen
class Contest:
    """A contest: rank participants by ``metric`` (any KPI, parametric ones as ``name:param``)
    over each ``period`` (``quarter`` for the quarterly champion).

    ``scope`` is ``individual`` (reps, by deal owner) or ``team``. ``direction`` overrides the
    KPI's own (``higher`` or ``lower`` is better). Participants must meet every qualifier;
    ``tie_break`` lists KPIs that separate equal values, in order (each by its own direction);
    those still equal share the rank. ``winners`` is how many ranks win; ``roles`` limits the
    individuals taking part (all reps when empty); ``start`` and ``end`` bound the season.
    """

    key: str
    name: str
    metric: str
    period: PeriodKind = attrs.field(default=PeriodKind.QUARTER, converter=PeriodKind)
    scope: str = "individual"
    direction: str | None = None
    qualify: tuple[Qualifier, ...] = attrs.field(default=(), converter=_t)
    tie_break: tuple[str, ...] = attrs.field(default=(), converter=_t)
    winners: int = 1
    prizes: tuple[Prize, ...] = attrs.field(default=(), converter=_t)
    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)
    start: date | None = None
    end: date | None = None
    description: str = ""

    def __attrs_post_init__(self) -> None:
        probs = []
        if self.scope not in _SCOPES:
            probs.append(Problem("scope", "choice", "scope is 'individual' or 'team'"))
        if self.direction not in (None, "higher", "lower"):
            probs.append(Problem("direction", "choice", "direction is 'higher' or 'lower'"))
        if self.winners < 1:
            probs.append(Problem("winners", "range", "at least one winner"))
        if self.period is PeriodKind.CUSTOM:
            probs.append(Problem("period", "choice", "a contest recurs by day, week, month, quarter, half or year"))
        if self.start and self.end and self.end < self.start:
            probs.append(Problem("end", "order", "the season ends before it starts"))
        if probs:
            raise DefinitionError(probs, source=f"contest {self.key}")

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every KPI the contest reads (the metric, qualifiers and tie-breaks), once each."""
        seen: dict[str, None] = {self.metric: None}
        for q in self.qualify:
            seen.setdefault(q.metric, None)
        for t in self.tie_break:
            seen.setdefault(t, None)
        return tuple(seen)

    def periods(self, start: date, end: date, calendar: FiscalCalendar = CALENDAR_YEAR) -> list[Period]:
        """The contest periods overlapping ``[start, end)`` (within the season)."""
        if self.start is not None:
            start = max(start, self.start)
        if self.end is not None:
            end = min(end, self.end + timedelta(days=1))
        out: list[Period] = []
        if start >= end:
            return out
        p = Period.containing(start, self.period, calendar)
        while p.start < end:
            out.append(p)
            p = p.shift(1, calendar)
        return out

    # --- I/O -----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Contest:
        probs: list[Problem] = []
        t = _P(data, "", probs)
        key = t.text("key", "", required=True)
        name = t.text("name", key)
        metric = t.text("metric", "", required=True)
        period = t.text("period", "quarter")
        try:
            pk = PeriodKind(period)
        except ValueError:
            t.fail("period", "choice", "period is day, week, month, quarter, half or year")
            pk = PeriodKind.QUARTER
        scope = t.text("scope", "individual")
        direction = t.text("direction")
        quals = []
        for q in t.tables("qualify"):
            quals.append(Qualifier(q.text("metric", "", required=True), q.dec("min"), q.dec("max")))
            q.done()
        tie = t.raw("tie_break")
        if tie is None:
            tie = []
        if not isinstance(tie, list) or not all(isinstance(x, str) for x in tie):
            t.fail("tie_break", "type", "tie_break is a list of KPI names")
            tie = []
        winners = t.whole("winners", 1)
        prizes = []
        for pz in t.tables("prizes"):
            prizes.append(Prize(pz.whole("rank", 1), pz.text("reward", "", required=True)))
            pz.done()
        roles = t.strs("roles")
        start, end = t.day("start"), t.day("end")
        description = t.text("description", "")
        t.done()
        if probs:
            raise DefinitionError(probs, source=source)
        try:
            return cls(key, name, metric, pk, scope, direction, quals, tie, winners, prizes, roles,
                       start, end, description)
        except DefinitionError as e:
            raise DefinitionError(e.problems, source=source) from None

    @classmethod
    def from_toml(cls, text_or_path: str | Path) -> Contest:
        """Load from TOML text or a ``.toml`` path (problems raise :class:`PlanFileError`)."""
        from ._plan import _read

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

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "name": self.name, "metric": self.metric,
                             "period": self.period.value, "scope": self.scope, "winners": self.winners}
        if self.description:
            d["description"] = self.description
        if self.direction:
            d["direction"] = self.direction
        if self.roles:
            d["roles"] = sorted(self.roles)
        if self.tie_break:
            d["tie_break"] = list(self.tie_break)
        if self.start:
            d["start"] = self.start.isoformat()
        if self.end:
            d["end"] = self.end.isoformat()
        if self.qualify:
            d["qualify"] = [{"metric": q.metric, **({"min": str(q.min)} if q.min is not None else {}),
                             **({"max": str(q.max)} if q.max is not None else {})} for q in self.qualify]
        if self.prizes:
            d["prizes"] = [{"rank": p.rank, "reward": p.reward} for p in self.prizes]
        return d


@attrs.frozen
class Standing:
    """One participant's place: ``rank`` (``None`` when not qualified), the contest ``value``,
    the tie-break values, whether the rank is ``shared``, and the prize won."""

    participant: str
    name: str | None
    rank: int | None
    value: Any
    qualified: bool
    reasons: tuple[str, ...] = ()
    tie_break: tuple[Any, ...] = ()
    shared: bool = False
    winner: bool = False
    prize: str | None = None
    values: Mapping[str, Any] = attrs.field(factory=dict)



@attrs.frozen(eq=False)
class Leaderboard:
    """The standings of one contest period, best first (qualified, then not qualified)."""

    contest: Contest
    period: Period
    standings: tuple[Standing, ...]

    @property
    def winners(self) -> list[Standing]:
        return [s for s in self.standings if s.winner]

    @property
    def champion(self) -> Standing | None:
        """The single winner of rank 1 (``None`` when nobody qualified or rank 1 is shared)."""
        top = [s for s in self.standings if s.rank == 1]
        return top[0] if len(top) == 1 else None

    def standing(self, participant: str) -> Standing:
        for s in self.standings:
            if s.participant == participant:
                return s
        raise KeyError(participant)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for s in self.standings:
            row: dict[str, Any] = {"rank": s.rank, "participant": s.participant, "name": s.name,
                                   self.contest.metric: s.value}
            for m, v in zip(self.contest.tie_break, s.tie_break, strict=True):
                row[m] = v
            for q in self.contest.qualify:
                if q.metric not in row:
                    row[q.metric] = s.values.get(q.metric)
            row["qualified"] = s.qualified
            row["winner"] = s.winner
            row["prize"] = s.prize
            row["note"] = "; ".join([*s.reasons, *(["shared rank"] if s.shared else [])])
            out.append(row)
        return out


@attrs.frozen(eq=False)
class Season:
    """A recurring contest over several periods: each period's leaderboard and the hall of fame
    (how many times each participant won)."""

    contest: Contest
    leaderboards: tuple[Leaderboard, ...]

    @property
    def hall_of_fame(self) -> list[tuple[str, int]]:
        c: Counter[str] = Counter()
        for lb in self.leaderboards:
            for s in lb.winners:
                c[s.participant] += 1
        return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))


def _num(v: Any) -> Decimal | None:
    if v is None:
        return None
    if isinstance(v, Money):
        return v.amount
    if isinstance(v, bool):
        return Decimal(int(v))
    if isinstance(v, int | Decimal):
        return Decimal(v)
    try:
        return to_decimal(v)
    except (DomainError, TypeError, ValueError):
        return None


def _show(v: Any) -> str:
    return str(v)


def run_contest(
    contest: Contest,
    data: Any,
    period: Period | str,
    *,
    participants: Iterable[Any] | None = None,
    asof: datetime | None = None,
    tz: tzinfo = UTC,
    inputs: Any = None,
    registry: Any = None,
    fiscal: FiscalCalendar = CALENDAR_YEAR,
) -> Leaderboard:
    """The leaderboard of ``contest`` for ``period`` (a :class:`Period` or label).

    ``data`` is a store or a :class:`~salesprocess.kpi.Dataset`; KPIs come from
    :func:`salesprocess.kpi.compute` grouped by owner (individual) or team. ``participants`` are
    the reps (individual) or teams taking part; by default every rep (of the contest's roles) or
    team of the store, plus anybody the KPIs name. Participants without data rank nowhere.
    """
    from ..kpi import compute, default_registry
    from ..model import Rep, Team

    p = period if isinstance(period, Period) else Period.parse(period, fiscal)
    reg = registry or default_registry()
    dim = _SCOPES[contest.scope]
    problems: list[Problem] = []
    dirs: dict[str, bool] = {}
    for i, m in enumerate(contest.metrics):
        try:
            kpi, _param = reg.resolve(m, f"metrics[{i}]")
        except KpiError as e:
            problems.extend(e.problems)
            continue
        dirs[m] = kpi.direction.value == "higher"
    if problems:
        raise IncentiveError(problems, source=f"contest {contest.key}")
    if contest.direction is not None:
        dirs[contest.metric] = contest.direction == "higher"
    table = compute(data, list(contest.metrics), by=(dim,), window=p, asof=asof, tz=tz, inputs=inputs,
                    registry=reg, fiscal=fiscal)
    values: dict[str, dict[str, Any]] = {}
    for row in table.rows:
        k = row.key.get(dim)
        if k is not None:
            values[k] = dict(row.values)
    names: dict[str, str | None] = {}
    people: list[Any]
    if participants is not None:
        people = list(participants)
    elif callable(getattr(data, "all", None)):
        people = list(data.all(Rep if dim == "owner" else Team))
    else:
        people = []
    members: list[str] = []
    for x in people:
        pid = x if isinstance(x, str) else x.id
        if dim == "owner" and contest.roles and not isinstance(x, str) and getattr(x, "role", None) not in contest.roles:
            continue
        members.append(pid)
        names[pid] = None if isinstance(x, str) else getattr(x, "name", None)
    if participants is None and not (dim == "owner" and contest.roles):
        for k in values:
            if k not in names:
                members.append(k)
                names[k] = None
    standings = _rank(contest, members, names, values, dirs)
    return Leaderboard(contest, p, tuple(standings))


def _rank(contest: Contest, members: Sequence[str], names: Mapping[str, str | None],
          values: Mapping[str, Mapping[str, Any]], dirs: Mapping[str, bool]) -> list[Standing]:
    qualified: list[tuple[tuple[Any, ...], str]] = []
    others: list[Standing] = []
    for pid in sorted(set(members)):
        vals = values.get(pid, {})
        v = vals.get(contest.metric)
        reasons = [r for q in contest.qualify if (r := q.check(vals.get(q.metric))) is not None]
        if _num(v) is None:
            reasons.insert(0, f"no {contest.metric}")
        tie = tuple(vals.get(m) for m in contest.tie_break)
        if reasons:
            others.append(Standing(pid, names.get(pid), None, v, False, tuple(dict.fromkeys(reasons)), tie,
                                   values=dict(vals)))
            continue
        parts = [_sort_key(v, dirs[contest.metric])]
        for m, tv in zip(contest.tie_break, tie, strict=True):
            parts.append(_sort_key(tv, dirs[m]))
        qualified.append((tuple(parts), pid))
    qualified.sort()
    prizes = {pz.rank: pz.reward for pz in contest.prizes}
    out: list[Standing] = []
    counts = Counter(k for k, _ in qualified)
    rank = 0
    prev: tuple[Any, ...] | None = None
    for n, (key, pid) in enumerate(qualified, 1):
        if key != prev:
            rank = n
            prev = key
        vals = values.get(pid, {})
        out.append(Standing(
            pid, names.get(pid), rank, vals.get(contest.metric), True, (),
            tuple(vals.get(m) for m in contest.tie_break), counts[key] > 1,
            rank <= contest.winners, prizes.get(rank),
            values=dict(vals),
        ))
    out.extend(sorted(others, key=lambda s: s.participant))
    return out


def _sort_key(v: Any, higher: bool) -> tuple[int, Decimal]:
    n = _num(v)
    if n is None:
        return (1, Decimal(0))
    return (0, -n if higher else n)


def run_season(
    contest: Contest,
    data: Any,
    start: date,
    end: date,
    **kw: Any,
) -> Season:
    """Run ``contest`` for every period overlapping ``[start, end)`` (recurrence)."""
    fiscal = kw.get("fiscal", CALENDAR_YEAR)
    boards = tuple(run_contest(contest, data, p, **kw) for p in contest.periods(start, end, fiscal))
    return Season(contest, boards)
