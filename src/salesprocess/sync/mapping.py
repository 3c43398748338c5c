"""From CRM pipelines to local processes: proposals and stage mappings.

:func:`propose` reads a CRM's pipelines (won/lost flags, probabilities) and proposes one
:class:`~salesprocess.process.Process` per pipeline plus the :class:`StageMapping` that links CRM
stages to local stages. An explicit mapping file (:meth:`StageMapping.from_toml`) overrides the
proposal, e.g. to map a CRM pipeline onto the shipped ``b2b`` process::

    [pipelines.default]
    process = "b2b"

    [pipelines.default.stages]
    appointmentscheduled = "lead"
    closedwon = "won"

A top-level ``process = ...`` with a ``[stages]`` table applies to every pipeline not listed.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from .. import _toml
from ..errors import DefinitionError, Problem, ProcessFileError
from ..model import FrozenMap
from ..money import Rate
from ..process import DEAL_FIELDS, Criteria, Process, Stage, StageKind, Transition
from .adapter import RemotePipeline

__all__ = ["PipelineMapping", "Proposal", "StageMapping", "propose", "slug"]

ANY_PIPELINE = "*"


def slug(text: str) -> str:
    """A readable key: lower case, runs of other characters than letters, digits, ``_`` and
    ``-`` become ``_`` (``"Closed Won"`` → ``closed_won``; Chinese letters are kept)."""
    s = re.sub(r"[^\w-]+", "_", text.strip().lower()).strip("_")
    return s or "stage"


@attrs.frozen
class PipelineMapping:
    """How one CRM pipeline maps onto a local process: ``stages`` maps CRM stage ids to local
    stage keys (several CRM stages may share one local stage)."""

    pipeline: str
    process: str
    stages: FrozenMap = attrs.field(converter=FrozenMap)

    def local_stage(self, remote: str) -> str | None:
        v = self.stages.get(remote)
        return None if v is None else str(v)

    def remote_stage(self, local: str) -> str | None:
        """The first CRM stage that maps to ``local`` (the one a push writes)."""
        for r, loc in self.stages.items():
            if loc == local:
                return r
        return None


def _maps(v: Iterable[PipelineMapping]) -> tuple[PipelineMapping, ...]:
    return tuple(v)


@attrs.frozen
class StageMapping:
    """Every pipeline's mapping; ``for_pipeline`` falls back to the ``*`` entry."""

    pipelines: tuple[PipelineMapping, ...] = attrs.field(converter=_maps)

    def __attrs_post_init__(self) -> None:
        seen: set[str] = set()
        for p in self.pipelines:
            if p.pipeline in seen:
                raise DefinitionError([Problem(f"pipelines.{p.pipeline}", "duplicate", "pipeline mapped twice")])
            seen.add(p.pipeline)

    def for_pipeline(self, pipeline: str | None) -> PipelineMapping | None:
        for p in self.pipelines:
            if p.pipeline == pipeline:
                return p
        for p in self.pipelines:
            if p.pipeline == ANY_PIPELINE:
                return p
        return None

    def for_process(self, key: str) -> PipelineMapping | None:
        """The pipeline new local deals of process ``key`` are pushed into."""
        for p in self.pipelines:
            if p.process == key:
                return p
        return None

    def process_keys(self) -> list[str]:
        return sorted({p.process for p in self.pipelines})

    # --- plain data / TOML -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "pipelines": {
                p.pipeline: {"process": p.process, "stages": {k: str(v) for k, v in p.stages.items()}}
                for p in self.pipelines
            }
        }

    def to_toml(self) -> str:
        return _toml.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> StageMapping:
        """Build from plain data; every problem is reported in one :class:`DefinitionError`."""
        problems: list[Problem] = []
        out: list[PipelineMapping] = []

        def one(pid: str, d: Any, path: str) -> None:
            if not isinstance(d, Mapping):
                problems.append(Problem(path, "type", "expected a table"))
                return
            for k in d:
                if k not in ("process", "stages"):
                    problems.append(Problem(f"{path}.{k}" if path else k, "unknown_key", f"unknown key {k!r}"))
            proc = d.get("process")
            if not isinstance(proc, str) or not proc:
                problems.append(Problem(f"{path}.process" if path else "process", "required", "expected the key of a local process"))
                return
            stages = d.get("stages", {})
            if not isinstance(stages, Mapping) or not all(isinstance(v, str) and v for v in stages.values()):
                problems.append(Problem(f"{path}.stages" if path else "stages", "type", "expected a table of CRM stage id = local stage key"))
                return
            out.append(PipelineMapping(pid, proc, {str(k): v for k, v in stages.items()}))

        for k in data:
            if k not in ("pipelines", "process", "stages"):
                problems.append(Problem(k, "unknown_key", f"unknown key {k!r}"))
        if "process" in data or "stages" in data:
            one(ANY_PIPELINE, {k: data[k] for k in ("process", "stages") if k in data}, "")
        pipes = data.get("pipelines", {})
        if not isinstance(pipes, Mapping):
            problems.append(Problem("pipelines", "type", "expected a table of pipelines"))
            pipes = {}
        for pid, d in pipes.items():
            one(str(pid), d, f"pipelines.{pid}")
        if not out and not problems:
            problems.append(Problem("pipelines", "required", "the mapping maps no pipeline"))
        if problems:
            raise DefinitionError(problems, source=source)
        return cls(tuple(out))

    @classmethod
    def from_toml(cls, path_or_text: str | Path) -> StageMapping:
        """Load a mapping file (a path) or TOML text."""
        path: str | None = None
        if isinstance(path_or_text, Path) or (
            isinstance(path_or_text, str) and "\n" not in path_or_text and path_or_text.endswith(".toml")
        ):
            path = str(path_or_text)
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as e:
                raise ProcessFileError(path, f"cannot read: {e.strerror or e}") from None
        else:
            text = str(path_or_text)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ProcessFileError(path or "<string>", f"invalid TOML: {e}") from None
        try:
            return cls.from_dict(data, source=path)
        except DefinitionError as e:
            if path is None:
                raise
            raise ProcessFileError(path, "invalid stage mapping", problems=e.problems) from None

    def check(self, processes: Mapping[str, Process]) -> list[Problem]:
        """Problems of this mapping against the local processes: unknown processes or stages."""
        probs: list[Problem] = []
        for p in self.pipelines:
            proc = processes.get(p.process)
            if proc is None:
                probs.append(Problem(f"pipelines.{p.pipeline}.process", "unknown_process", f"no local process {p.process!r}"))
                continue
            for remote, local in p.stages.items():
                if not proc.has_stage(str(local)):
                    probs.append(Problem(
                        f"pipelines.{p.pipeline}.stages.{remote}", "unknown_stage",
                        f"process {p.process!r} has no stage {local!r}",
                    ))
        return probs


@attrs.frozen
class Proposal:
    """What :func:`propose` suggests: a process per CRM pipeline, the mapping, and notes on what
    had to be invented (a CRM pipeline without a lost stage gets one)."""

    processes: tuple[Process, ...]
    mapping: StageMapping
    notes: tuple[str, ...] = ()


def _prob(p: Decimal | None) -> Rate:
    if p is None:
        return Rate(0)
    return Rate(min(max(p, Decimal(0)), Decimal(1)))


def propose(pipelines: Sequence[RemotePipeline], *, source: str) -> Proposal:
    """One process per pipeline (stages in CRM order; won, lost and open kinds from the CRM's
    flags; open-stage probabilities from the CRM) and the mapping between them.

    Process keys are ``slug(f"{source}-{pipeline.id}")``; stage keys are slugs of the CRM's stage
    ids, made unique. Processes allow going back and reopening, not skipping: moves the CRM makes
    past that land in the bypass report.

    A pipeline that carries ``transitions`` (the CRM enforces moves of its own, like a Zoho
    Blueprint) gets exactly those moves, and the fields they require as stage criteria (exit
    criteria for forward moves, entry criteria for the others); stages the rules do not mention
    keep the default moves. When the rules
    do not make a valid process (a stage out of reach, an open stage with no way to close), the
    default moves are kept and a note says why.
    """
    processes: list[Process] = []
    maps: list[PipelineMapping] = []
    notes: list[str] = []
    for pl in pipelines:
        key = slug(f"{source}-{pl.id}")
        ordered = sorted(pl.stages, key=lambda s: s.order)
        stages: list[Stage] = []
        mapping: dict[str, str] = {}
        used: set[str] = set()
        for rs in ordered:
            base = slug(rs.id)
            k, n = base, 2
            while k in used:
                k, n = f"{base}_{n}", n + 1
            used.add(k)
            mapping[rs.id] = k
            if rs.closed and rs.won:
                stages.append(Stage(k, rs.label or rs.id, StageKind.WON, Rate(1)))
            elif rs.closed:
                stages.append(Stage(k, rs.label or rs.id, StageKind.LOST, Rate(0)))
            else:
                stages.append(Stage(k, rs.label or rs.id, StageKind.OPEN, _prob(rs.probability)))
        kinds = {s.kind for s in stages}
        if StageKind.OPEN not in kinds:
            stages.insert(0, Stage(_free("open", used), "Open", StageKind.OPEN, Rate(0)))
            notes.append(f"pipeline {pl.id!r} has no open stage; added {stages[0].key!r}")
        if StageKind.WON not in kinds:
            stages.append(Stage(_free("won", used), "Won", StageKind.WON, Rate(1)))
            notes.append(f"pipeline {pl.id!r} has no won stage; added {stages[-1].key!r}")
        if StageKind.LOST not in kinds:
            stages.append(Stage(_free("lost", used), "Lost", StageKind.LOST, Rate(0)))
            notes.append(f"pipeline {pl.id!r} has no lost stage; added {stages[-1].key!r}")
        proc = Process(
            key=key, name=pl.label or pl.id, stages=tuple(stages),
            description=f"Proposed from the {source} pipeline {pl.id!r}.",
            allow_skip=False, allow_back=True, allow_reopen=True,
        )
        if pl.transitions is not None:
            proc, note = _ruled(proc, pl, mapping)
            if note:
                notes.append(note)
        processes.append(proc)
        maps.append(PipelineMapping(pl.id, key, mapping))
    return Proposal(tuple(processes), StageMapping(tuple(maps)), tuple(notes))


def _free(base: str, used: set[str]) -> str:
    k, n = base, 2
    while k in used:
        k, n = f"{base}_{n}", n + 1
    used.add(k)
    return k


def _ruled(process: Process, pl: RemotePipeline, mapping: Mapping[str, str]) -> tuple[Process, str | None]:
    """``process`` with the pipeline's own transition rules as its explicit moves.

    A rule's required fields become exit criteria of its source stage when the move goes forward
    (exit criteria are checked on forward moves only) and entry criteria of its target otherwise;
    a stage gets only the fields every such rule requires, so the process is never stricter than
    the CRM.
    """
    edges: dict[tuple[str, str], Transition] = {}
    exits: dict[str, set[str]] = {}
    entries: dict[str, set[str]] = {}
    covered: set[str] = set()

    def meet(into: dict[str, set[str]], key: str, req: set[str]) -> None:
        into[key] = set(req) if key not in into else into[key] & req

    for t in pl.transitions or ():
        src, dst = mapping.get(t.source), mapping.get(t.target)
        if src is None or dst is None or src == dst:
            continue
        covered |= {src, dst}
        s_st, d_st = process.stage(src), process.stage(dst)
        edges.setdefault((src, dst), Transition(src, dst, name=t.name, reopen=s_st.is_closed))
        req = {f for f in t.required if f in DEAL_FIELDS or f.startswith("custom.")}
        forward = d_st.kind is StageKind.WON or (
            d_st.kind is StageKind.OPEN and not s_st.is_closed and process.order(dst) > process.order(src))
        if forward:
            meet(exits, src, req)
        meet(entries, dst, req if not forward else set())
    if not edges:
        return process, f"pipeline {pl.id!r}: no transition rule names two of its stages; moves are not restricted"
    for e in process.effective_transitions():
        if e.source not in covered or e.target not in covered:
            edges.setdefault((e.source, e.target), e)
    stages = []
    for st in process.stages:
        ent, ext = entries.get(st.key), exits.get(st.key)
        if ent or ext:
            st = attrs.evolve(st, entry=Criteria(fields=tuple(sorted(ent or ()))),
                              exit=Criteria(fields=tuple(sorted(ext or ()))))
        stages.append(st)
    try:
        ruled = Process(
            key=process.key, name=process.name, stages=tuple(stages), transitions=tuple(edges.values()),
            description=process.description + " Moves follow the CRM's own transition rules.",
            allow_skip=False, allow_back=True, allow_reopen=True,
        )
    except DefinitionError as e:
        why = "; ".join(p.message for p in e.problems)
        return process, (
            f"pipeline {pl.id!r}: its transition rules do not make a complete process ({why}); "
            "moves are not restricted"
        )
    return ruled, None
