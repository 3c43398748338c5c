"""The exception tree of salesprocess.

Every error the library raises on purpose derives from :class:`SalesProcessError`. Where a caller
would naturally catch a builtin, the error refines it too (``CurrencyMismatchError`` is a
``ValueError``), so ``except ValueError`` keeps working. Messages read well on their own; the data
behind them sits in attributes so programs never parse messages.

::

    SalesProcessError
    ├── DefinitionError (ValueError)          a process/plan/rule definition is invalid
    │   └── ProcessFileError                  ... and it came from a file (path, line)
    ├── DomainError (ValueError)              a value or operation breaks a domain rule
    │   ├── CurrencyMismatchError             Money of two currencies combined
    │   ├── InvalidMoneyError (TypeError)     float/bool/NaN/Infinity where money belongs
    │   ├── NaiveDatetimeError                a datetime without a timezone
    │   ├── PeriodError                       an unparseable or inconsistent period
    │   ├── TransitionNotAllowed              a deal cannot move to the requested stage
    │   ├── ReplayError                       an event history that does not replay
    │   ├── MigrationError                    in-flight deals cannot follow a process change
    │   ├── KpiError                          an unknown KPI or dimension, or a query that cannot run
    │   └── GoalError                         a goal or a goal decomposition is invalid
    ├── PluginError                           a plugin misbehaved or could not be loaded
    │   └── PluginValidationError             a plugin returned something invalid
    ├── StoreError                            persistence failed
    │   ├── NotFoundError (KeyError)          no record with that id
    │   ├── ConflictError                     optimistic concurrency: a stale version was written
    │   │   └── BatchConflictError            ... several of them, in one batch
    │   └── SchemaError                       the store's schema is newer/unknown
    ├── ImportDataError                       a batch import found bad rows (carries the report)
    └── AdapterError                          a CRM/notifier adapter failed (vendor code, request id)
        ├── AuthError                         credentials refused or expired beyond refresh
        ├── RateLimited                       the vendor throttled us (retry_after, quota policy)
        ├── RemoteValidationError (ValueError) the vendor refused the data we sent
        └── RemoteUnavailable                 5xx, timeout, broken response: retries ran out

``InvalidMoneyError`` is raised as ``TypeError`` for wrong types (float, bool) and as ``ValueError``
for wrong values (NaN, Infinity): it subclasses both so either ``except`` catches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AdapterError",
    "AuthError",
    "BatchConflictError",
    "ConflictError",
    "CurrencyMismatchError",
    "DefinitionError",
    "DomainError",
    "GoalError",
    "ImportDataError",
    "InvalidMoneyError",
    "KpiError",
    "MigrationError",
    "NaiveDatetimeError",
    "NotFoundError",
    "PeriodError",
    "PluginError",
    "PluginValidationError",
    "Problem",
    "ProcessFileError",
    "RateLimited",
    "RemoteUnavailable",
    "RemoteValidationError",
    "ReplayError",
    "SalesProcessError",
    "SchemaError",
    "StoreError",
    "TransitionNotAllowed",
]


class SalesProcessError(Exception):
    """Base of every error raised on purpose by salesprocess."""


class Problem:
    """One finding of a validation: where (a path such as ``stages[3].probability``) and what.

    Problems are data: batch validations return all of them at once.
    """

    __slots__ = ("code", "message", "path")

    def __init__(self, path: str, code: str, message: str) -> None:
        self.path = path
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"Problem({self.path!r}, {self.code!r}, {self.message!r})"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Problem):
            return NotImplemented
        return (self.path, self.code, self.message) == (other.path, other.code, other.message)

    def __hash__(self) -> int:
        return hash((self.path, self.code, self.message))

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}


class DefinitionError(SalesProcessError, ValueError):
    """A definition (process, plan, rule set) is invalid; ``problems`` lists every finding."""

    def __init__(self, problems: Sequence[Problem], *, source: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        where = f"{source}: " if source else ""
        lines = "; ".join(str(p) for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{where}{len(self.problems)} problem(s): {lines}{more}")


class ProcessFileError(DefinitionError):
    """A process file could not be read or parsed: ``path``, ``line`` and ``column`` say where."""

    def __init__(
        self,
        path: str,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        problems: Sequence[Problem] = (),
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        where = path + (f":{line}" if line is not None else "") + (
            f":{column}" if column is not None else ""
        )
        probs = tuple(problems) or (Problem("", "parse", message),)
        super().__init__(probs, source=where)


class DomainError(SalesProcessError, ValueError):
    """A value or operation breaks a rule of the domain."""


class CurrencyMismatchError(DomainError):
    """Two amounts in different currencies were combined."""

    def __init__(self, left: str, right: str, operation: str = "combine") -> None:
        self.left = left
        self.right = right
        self.operation = operation
        super().__init__(f"cannot {operation} {left} and {right}: currencies differ")


class InvalidMoneyError(DomainError, TypeError):
    """A float, bool, NaN or Infinity (or another non-decimal value) was given as money."""

    def __init__(self, value: object, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"invalid money amount {value!r}: {reason}")


class NaiveDatetimeError(DomainError):
    """A datetime without timezone was given where an instant is required."""

    def __init__(self, field: str, value: object) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field}: datetime {value!r} has no timezone; pass an aware datetime")


class PeriodError(DomainError):
    """A period label could not be parsed, or a period is inconsistent."""

    def __init__(self, message: str, *, label: str | None = None) -> None:
        self.label = label
        super().__init__(message)


class TransitionNotAllowed(DomainError):
    """A deal cannot move to the requested stage.

    ``unmet`` holds every unmet criterion (never just the first), as :class:`Problem` values whose
    ``code`` names the criterion kind (``transition``, ``field``, ``activity``, ``checklist``,
    ``guard``, ``closed``, ``veto``).
    """

    def __init__(self, deal_id: str, source: str, target: str, unmet: Sequence[Problem]) -> None:
        self.deal_id = deal_id
        self.source = source
        self.target = target
        self.unmet: tuple[Problem, ...] = tuple(unmet)
        reasons = "; ".join(p.message for p in self.unmet)
        super().__init__(f"deal {deal_id} cannot move {source} → {target}: {reasons}")


class ReplayError(DomainError):
    """An event history is inconsistent (wrong deal, out of order, or does not start with creation)."""

    def __init__(self, deal_id: str, index: int, message: str) -> None:
        self.deal_id = deal_id
        self.index = index
        super().__init__(f"deal {deal_id}, event {index}: {message}")


class MigrationError(DomainError):
    """Deals could not be migrated between process versions; ``problems`` lists each deal."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class KpiError(DomainError):
    """A KPI query cannot run: an unknown metric or dimension, a missing input, a bad parameter.

    ``problems`` lists every finding (path such as ``metrics[2]`` or ``by[0]``).
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class GoalError(DomainError):
    """A goal, its decomposition or its progress cannot be computed; ``problems`` lists each finding."""

    def __init__(self, problems: Sequence[Problem], *, goal_id: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.goal_id = goal_id
        where = f"goal {goal_id}: " if goal_id else ""
        super().__init__(where + "; ".join(str(p) for p in self.problems))


class PluginError(SalesProcessError):
    """A plugin could not be loaded, registered or called."""

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        self.plugin = plugin
        super().__init__(message)


class PluginValidationError(PluginError, ValueError):
    """A plugin returned a value that breaks the contract of its hook."""

    def __init__(self, message: str, *, plugin: str | None = None, hook: str | None = None) -> None:
        self.hook = hook
        super().__init__(message, plugin=plugin)


class StoreError(SalesProcessError):
    """A store failed to read or write."""


class NotFoundError(StoreError, KeyError):
    """No record of ``kind`` with ``key`` exists."""

    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"no {kind} with id {key!r}")

    def __str__(self) -> str:  # KeyError quotes its argument; keep the sentence readable
        return f"no {self.kind} with id {self.key!r}"


class ConflictError(StoreError):
    """A writer held a stale version: nothing was written."""

    def __init__(self, kind: str, key: object, expected: int, actual: int | None) -> None:
        self.kind = kind
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{kind} {key!r}: expected version {expected}, store has {actual}; reload and retry"
        )


class BatchConflictError(ConflictError):
    """Several writes of one batch were stale or clashed; nothing of the batch was written.

    ``conflicts`` holds one :class:`ConflictError` per problem, in batch order; ``kind``, ``key``,
    ``expected`` and ``actual`` are those of the first.
    """

    def __init__(self, conflicts: Sequence[ConflictError]) -> None:
        self.conflicts: tuple[ConflictError, ...] = tuple(conflicts)
        if not self.conflicts:
            raise ValueError("BatchConflictError needs at least one conflict")
        first = self.conflicts[0]
        super().__init__(first.kind, first.key, first.expected, first.actual)
        shown = "; ".join(str(c) for c in self.conflicts[:5])
        more = f" (and {len(self.conflicts) - 5} more)" if len(self.conflicts) > 5 else ""
        self.args = (f"{len(self.conflicts)} conflicts, nothing written: {shown}{more}",)

    def __str__(self) -> str:
        return str(self.args[0])


class SchemaError(StoreError):
    """The store's schema is of an unknown (newer) version or could not be migrated."""


class ImportDataError(SalesProcessError):
    """A batch import found bad input; ``report`` holds every bad row (file, line, column, reason)."""

    def __init__(self, message: str, report: Any = None) -> None:
        self.report = report
        super().__init__(message)


class AdapterError(SalesProcessError):
    """An adapter (CRM connector, notifier) failed.

    ``vendor_code`` is the vendor's own error code and ``request_id`` its correlation id, when known.
    """

    def __init__(
        self, message: str, *, vendor_code: str | None = None, request_id: str | None = None
    ) -> None:
        self.vendor_code = vendor_code
        self.request_id = request_id
        super().__init__(message)


class AuthError(AdapterError):
    """The vendor refused our credentials (missing, wrong, or expired and not refreshable).

    Never carries the credential itself: messages, ``repr`` and attributes hold only the vendor's
    code and correlation id.
    """

    def __init__(
        self, message: str, *, vendor_code: str | None = None, request_id: str | None = None,
        status: int | None = None,
    ) -> None:
        self.status = status
        super().__init__(message, vendor_code=vendor_code, request_id=request_id)


class RateLimited(AdapterError):
    """The vendor throttled us and retrying did not help, or the quota is spent for the day.

    ``retry_after`` is the wait the vendor asked for in seconds (``None`` when unknown);
    ``policy`` names the vendor's limit (``TEN_SECONDLY_ROLLING``, ``DAILY``, ``TotalRequests``);
    ``retriable`` is false for daily quotas, where waiting minutes will not help.
    """

    def __init__(
        self, message: str, *, vendor_code: str | None = None, request_id: str | None = None,
        retry_after: float | None = None, policy: str | None = None, retriable: bool = True,
        status: int | None = None,
    ) -> None:
        self.retry_after = retry_after
        self.policy = policy
        self.retriable = retriable
        self.status = status
        super().__init__(message, vendor_code=vendor_code, request_id=request_id)


class RemoteValidationError(AdapterError, ValueError):
    """The vendor refused what we sent (HTTP 400-class, or a per-record batch failure).

    ``fields`` names the vendor fields the vendor blamed, when it said.
    """

    def __init__(
        self, message: str, *, vendor_code: str | None = None, request_id: str | None = None,
        fields: Sequence[str] = (), status: int | None = None,
    ) -> None:
        self.fields: tuple[str, ...] = tuple(fields)
        self.status = status
        super().__init__(message, vendor_code=vendor_code, request_id=request_id)


class RemoteUnavailable(AdapterError):
    """The vendor could not be reached or answered with 5xx, a timeout or a broken body, and
    retries ran out. ``status`` is the last HTTP status (``None`` for timeouts and network errors)."""

    def __init__(
        self, message: str, *, vendor_code: str | None = None, request_id: str | None = None,
        status: int | None = None,
    ) -> None:
        self.status = status
        super().__init__(message, vendor_code=vendor_code, request_id=request_id)
