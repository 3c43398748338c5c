"""KPI definitions and the registry that names them."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from salesprocess.errors import KpiError, PluginValidationError, Problem
from salesprocess.money import Money

if TYPE_CHECKING:
    from .engine import Cell

__all__ = ["Basis", "Direction", "Kpi", "KpiRegistry", "Unit", "Value"]

Value: TypeAlias = Money | Decimal | int | None
"""What a KPI returns for one result row: Money, a Decimal, an int count, or None (no data)."""

_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


class Unit(enum.StrEnum):
    MONEY = "money"
    """:class:`~salesprocess.money.Money` in the deals' currency."""
    COUNT = "count"
    """A whole number (``int``)."""
    RATE = "rate"
    """A ``Decimal`` fraction within [0, 1]."""
    RATIO = "ratio"
    """A non-negative ``Decimal`` ratio that may exceed 1 (coverage, attainment, retention)."""
    DAYS = "days"
    """A duration in days (``Decimal``)."""
    SCORE = "score"
    """A ``Decimal`` on the scale the KPI defines (NPS −100..100, CES 1..7)."""


class Direction(enum.StrEnum):
    HIGHER = "higher"
    """Higher is better."""
    LOWER = "lower"
    """Lower is better."""


class Basis(enum.StrEnum):
    """What puts a record into a period (how a KPI is attributed when grouped by period)."""

    CLOSED = "closed"
    """Deals by the local date of their close instant (won or lost)."""
    CREATED = "created"
    """Deals by the local date of their creation."""
    SNAPSHOT = "snapshot"
    """Deals as they stood at the end of the window (never later than ``asof``)."""
    ACTIVITY = "activity"
    """Done activities by the local date they happened."""
    STAGE_EXIT = "stage_exit"
    """Stage stays by the local date the deal left the stage."""
    SURVEY = "survey"
    """Survey responses by the local date they were given."""
    REVENUE = "revenue"
    """Account revenue at the window's start and end."""
    MIXED = "mixed"
    """Several of the above (the definition says which)."""


def _names(v: Iterable[str]) -> frozenset[str]:
    return frozenset(v)


def _check_name(_i: object, _a: Any, v: str) -> None:
    if not isinstance(v, str) or not _NAME.fullmatch(v):
        raise ValueError(f"KPI name must be snake_case, got {v!r}")


@attrs.frozen
class Kpi:
    """One KPI: its name, meaning, unit, direction and calculator.

    ``calculator(cell)`` receives a :class:`~salesprocess.kpi.engine.Cell` (the records of one
    result row) and returns a :data:`Value`. It must be pure. ``parameter`` names what a
    parametric KPI takes after a colon (``activities:call`` → ``kind``); the value reaches the
    calculator as ``cell.param``. ``additive`` says values of disjoint scopes and periods add up
    (sums and counts), which goal decomposition relies on. ``inputs`` lists the
    :class:`~salesprocess.kpi.inputs.KpiInputs` fields the KPI needs.
    """

    name: str = attrs.field(validator=_check_name)
    definition: str
    formula: str
    unit: Unit = attrs.field(converter=Unit)
    direction: Direction = attrs.field(converter=Direction)
    calculator: Callable[[Cell], Value] = attrs.field(eq=False, repr=False)
    basis: Basis = attrs.field(default=Basis.MIXED, converter=Basis)
    additive: bool = False
    inputs: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    parameter: str | None = None
    parameter_required: bool = True
    plugin: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name
            if self.parameter is None
            else (
                f"{self.name}:<{self.parameter}>"
                if self.parameter_required
                else f"{self.name}[:<{self.parameter}>]"
            ),
            "definition": self.definition,
            "formula": self.formula,
            "unit": self.unit.value,
            "direction": self.direction.value,
            "basis": self.basis.value,
            "additive": self.additive,
            "inputs": sorted(self.inputs),
        }


class KpiRegistry(Mapping[str, Kpi]):
    """KPIs by name. Names are unique; registering one twice is an error naming both sources."""

    def __init__(self, kpis: Mapping[str, Kpi] | None = None) -> None:
        self._k: dict[str, Kpi] = dict(kpis or {})

    def register(self, kpi: Kpi, *, plugin: str | None = None) -> None:
        if not isinstance(kpi, Kpi):
            raise PluginValidationError(
                f"register() takes a Kpi, got {type(kpi).__name__}",
                plugin=plugin,
                hook="salesprocess_register_kpis",
            )
        if plugin is not None and kpi.plugin is None:
            kpi = attrs.evolve(kpi, plugin=plugin)
        have = self._k.get(kpi.name)
        if have is not None and have.calculator is not kpi.calculator:
            raise PluginValidationError(
                f"KPI {kpi.name!r} registered twice (by {have.plugin or 'builtin'} and "
                f"{kpi.plugin or 'builtin'})",
                plugin=plugin,
                hook="salesprocess_register_kpis",
            )
        self._k[kpi.name] = kpi

    def __getitem__(self, key: str) -> Kpi:
        return self._k[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._k)

    def __len__(self) -> int:
        return len(self._k)

    def copy(self) -> KpiRegistry:
        return KpiRegistry(self._k)

    def resolve(self, ref: str, path: str = "metric") -> tuple[Kpi, str | None]:
        """The KPI and its parameter for a reference such as ``win_rate`` or ``activities:call``."""
        name, sep, param = ref.partition(":")
        kpi = self._k.get(name)
        if kpi is None:
            raise KpiError(
                [
                    Problem(
                        path,
                        "unknown_kpi",
                        f"no KPI named {name!r} (known: {', '.join(sorted(self._k))})",
                    )
                ]
            )
        if kpi.parameter is None and sep:
            raise KpiError([Problem(path, "parameter", f"KPI {name!r} takes no parameter")])
        if kpi.parameter is not None and kpi.parameter_required and not param:
            raise KpiError(
                [
                    Problem(
                        path,
                        "parameter",
                        f"KPI {name!r} needs a {kpi.parameter}: {name}:<{kpi.parameter}>",
                    )
                ]
            )
        return kpi, (param or None)
