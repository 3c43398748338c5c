"""Training: a catalogue of modules mapped to competencies and KPI gaps, and completion records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import attrs

from ..errors import Problem
from ._common import EvaluationError, _dec

__all__ = [
    "TRAINING_DOCUMENT",
    "Recommendation",
    "TrainingCatalog",
    "TrainingModule",
    "TrainingRecord",
    "load_training_records",
    "save_training_records",
]

TRAINING_DOCUMENT = "training_record"
"""Store document kind of training records (key: ``REP/MODULE/DATE``)."""


def _fs(v: Iterable[str] | None) -> frozenset[str]:
    return frozenset(v or ())


@attrs.frozen
class TrainingModule:
    """A training module: what it develops (``competencies``) and which KPI gaps it addresses
    (``kpis``), its length and the modules to take first."""

    id: str
    title: str
    competencies: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)
    kpis: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)
    hours: Decimal = attrs.field(default=Decimal(0), converter=_dec)
    prerequisites: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)
    url: str = ""


@attrs.frozen
class TrainingRecord:
    """``rep_id`` completed ``module_id`` on ``completed_on`` (with an optional test ``score``)."""

    rep_id: str
    module_id: str
    completed_on: date
    score: Decimal | None = None

    @property
    def key(self) -> str:
        return f"{self.rep_id}/{self.module_id}/{self.completed_on.isoformat()}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"rep_id": self.rep_id, "module_id": self.module_id,
                             "completed_on": self.completed_on.isoformat()}
        if self.score is not None:
            d["score"] = str(self.score)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainingRecord:
        s = d.get("score")
        return cls(str(d["rep_id"]), str(d["module_id"]), date.fromisoformat(str(d["completed_on"])),
                   None if s is None else _dec(s))


@attrs.frozen
class Recommendation:
    """A module to take, why (the weaknesses it addresses) and its ``priority`` (1 first)."""

    module: TrainingModule
    reasons: tuple[str, ...]
    priority: int


class TrainingCatalog:
    """Modules by id, with lookups by competency and by KPI."""

    def __init__(self, modules: Iterable[TrainingModule] = ()) -> None:
        self._m: dict[str, TrainingModule] = {}
        problems = []
        for m in modules:
            if m.id in self._m:
                problems.append(Problem(f"training[{m.id}]", "duplicate", f"module {m.id} listed twice"))
            self._m[m.id] = m
        for m in self._m.values():
            for p in sorted(m.prerequisites):
                if p not in self._m:
                    problems.append(Problem(f"training[{m.id}].prerequisites", "unknown",
                                            f"module {m.id} needs unknown module {p}"))
        if problems:
            raise EvaluationError(problems)

    @property
    def modules(self) -> tuple[TrainingModule, ...]:
        return tuple(self._m[k] for k in sorted(self._m))

    def __contains__(self, module_id: object) -> bool:
        return module_id in self._m

    def __len__(self) -> int:
        return len(self._m)

    def get(self, module_id: str) -> TrainingModule:
        return self._m[module_id]

    def for_competency(self, competency: str) -> list[TrainingModule]:
        return [m for m in self.modules if competency in m.competencies]

    def for_kpi(self, metric: str) -> list[TrainingModule]:
        name = metric.partition(":")[0]
        return [m for m in self.modules if metric in m.kpis or name in m.kpis]

    def recommend(
        self,
        gaps: Iterable[tuple[str, str, Decimal, str]],
        records: Iterable[TrainingRecord],
        *,
        rep_id: str,
        on: date,
        refresh_days: int = 365,
        limit: int = 3,
    ) -> list[Recommendation]:
        """Modules for ``gaps`` — ``(kind, key, size, reason)`` with kind ``competency`` or
        ``kpi`` and a larger ``size`` for a bigger gap — that ``rep_id`` has not completed within
        ``refresh_days`` before ``on``. A prerequisite not yet taken comes first. At most
        ``limit`` modules (0: no limit), biggest gaps first."""
        done = {r.module_id for r in records if r.rep_id == rep_id and r.completed_on <= on
                and r.completed_on > on - timedelta(days=refresh_days)}
        ever = {r.module_id for r in records if r.rep_id == rep_id and r.completed_on <= on}
        found: dict[str, tuple[Decimal, list[str]]] = {}
        for kind, key, size, reason in gaps:
            mods = self.for_competency(key) if kind == "competency" else self.for_kpi(key)
            for m in mods:
                if m.id in done:
                    continue
                s, rs = found.get(m.id, (Decimal(0), []))
                found[m.id] = (max(s, size), [*rs, reason])
        # prerequisites first
        for mid in list(found):
            size, _ = found[mid]
            for pre in sorted(self._m[mid].prerequisites):
                if pre in ever or pre in done:
                    continue
                s, rs = found.get(pre, (Decimal(0), []))
                found[pre] = (max(s, size), [*rs, f"prerequisite of {mid}"])
        order = sorted(found.items(), key=lambda kv: (-kv[1][0], self._depth(kv[0]), kv[0]))
        # a prerequisite always precedes the module needing it
        ranked: list[str] = []
        for mid, _v in order:
            for pre in self._chain(mid):
                if pre in found and pre not in ranked:
                    ranked.append(pre)
            if mid not in ranked:
                ranked.append(mid)
        if limit:
            ranked = ranked[:limit]
        return [Recommendation(self._m[mid], tuple(dict.fromkeys(found[mid][1])), i)
                for i, mid in enumerate(ranked, 1)]

    def _depth(self, mid: str, seen: frozenset[str] = frozenset()) -> int:
        pres = self._m[mid].prerequisites - seen
        return 0 if not pres else 1 + max(self._depth(p, seen | {mid}) for p in pres)

    def _chain(self, mid: str, seen: frozenset[str] = frozenset()) -> list[str]:
        out: list[str] = []
        for p in sorted(self._m[mid].prerequisites - seen):
            out.extend(self._chain(p, seen | {mid}))
            out.append(p)
        return out

    @classmethod
    def from_dicts(cls, items: Iterable[Mapping[str, Any]]) -> TrainingCatalog:
        mods = []
        problems = []
        for i, d in enumerate(items):
            try:
                mods.append(TrainingModule(
                    id=str(d["id"]), title=str(d.get("title", d["id"])),
                    competencies=d.get("competencies", ()), kpis=d.get("kpis", ()),
                    hours=d.get("hours", "0"), prerequisites=d.get("prerequisites", ()),
                    url=str(d.get("url", "")),
                ))
            except (KeyError, TypeError, ValueError) as e:
                problems.append(Problem(f"training[{i}]", "invalid", f"bad training module: {e}"))
        if problems:
            raise EvaluationError(problems)
        return cls(mods)


def save_training_records(store: Any, records: Iterable[TrainingRecord]) -> int:
    """Keep training records as store documents (kind ``training_record``), in one transaction."""
    n = 0
    with store.transaction():
        for r in records:
            store.put_document(TRAINING_DOCUMENT, r.key, r.to_dict())
            n += 1
    return n


def load_training_records(store: Any, rep_id: str | None = None) -> list[TrainingRecord]:
    out = [TrainingRecord.from_dict(d) for _k, d in store.documents(TRAINING_DOCUMENT)]
    if rep_id is not None:
        out = [r for r in out if r.rep_id == rep_id]
    out.sort(key=lambda r: (r.rep_id, r.completed_on, r.module_id))
    return out
