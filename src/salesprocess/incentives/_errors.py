"""Errors of the incentives package."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..errors import DefinitionError, DomainError, Problem

__all__ = ["IncentiveError", "PlanFileError"]


class IncentiveError(DomainError):
    """Commission data or a contest cannot be computed: ``problems`` lists every finding (a
    deal won without an amount, revenue splits that do not total 100 %, a missing exchange rate
    or quota...). ``source`` names the file or input the problems came from, when known."""

    def __init__(self, problems: Sequence[Problem], *, source: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        where = f"{source}: " if source else ""
        shown = "; ".join(str(p) for p in self.problems[:8])
        more = f" (and {len(self.problems) - 8} more)" if len(self.problems) > 8 else ""
        super().__init__(f"{where}{len(self.problems)} problem(s): {shown}{more}")


class PlanFileError(DefinitionError):
    """A plan or contest file is invalid. ``path`` names the file; ``lines`` maps each problem's
    path (``versions[1].rates.tiers[2].rate``) to its line in the file, where it could be found."""

    def __init__(
        self,
        path: str,
        problems: Sequence[Problem],
        *,
        lines: Mapping[str, int] | None = None,
    ) -> None:
        self.path = path
        self.lines: dict[str, int] = dict(lines or {})
        super().__init__(problems, source=path)
        shown = "; ".join(self.describe(p) for p in self.problems[:8])
        more = f" (and {len(self.problems) - 8} more)" if len(self.problems) > 8 else ""
        self.args = (f"{path}: {len(self.problems)} problem(s): {shown}{more}",)

    def line_of(self, problem: Problem) -> int | None:
        return self.lines.get(problem.path)

    def describe(self, problem: Problem) -> str:
        """``FILE:LINE: PATH: MESSAGE`` (the line when known)."""
        line = self.line_of(problem)
        loc = self.path + (f":{line}" if line is not None else "")
        return f"{loc}: {problem}"

    def __str__(self) -> str:
        return str(self.args[0])
