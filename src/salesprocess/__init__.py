"""salesprocess: embeddable sales-process management.

A functional core of frozen values and pure calculators (stage machine, goals, KPIs, incentives,
risk), one plugin shell (:class:`SalesProcess`) where hooks fire, adapters (stores, CRM sync) as
plugins, and a testing kit (:mod:`salesprocess.testing`).
"""

from __future__ import annotations

from .app import SalesProcess
from .errors import (
    AdapterError,
    BatchConflictError,
    ConflictError,
    CurrencyMismatchError,
    DefinitionError,
    DomainError,
    ImportDataError,
    InvalidMoneyError,
    MigrationError,
    NaiveDatetimeError,
    NotFoundError,
    PeriodError,
    PluginError,
    PluginValidationError,
    Problem,
    ProcessFileError,
    ReplayError,
    SalesProcessError,
    SchemaError,
    StoreError,
    TransitionNotAllowed,
)
from .guards import GuardRegistry, Move
from .hookspecs import hookimpl
from .machine import migrate_deals
from .model import (
    Account,
    Activity,
    ActivityKind,
    ActivityStatus,
    Contact,
    Deal,
    DealEvent,
    DealStatus,
    EventSource,
    ForecastCategory,
    Product,
    Rep,
    Team,
    replay,
)
from .money import Money, Rate, allocate, allocate_int
from .periods import BusinessCalendar, FiscalCalendar, Period, PeriodKind
from .process import (
    Criteria,
    Playbook,
    ProbabilityPolicy,
    Process,
    Stage,
    StageKind,
    Transition,
    diff_processes,
)
from .store import Capability, DealFilter, MemoryStore, Store

__version__ = "0.1.0"

__all__ = [
    "Account",
    "Activity",
    "ActivityKind",
    "ActivityStatus",
    "AdapterError",
    "BatchConflictError",
    "BusinessCalendar",
    "Capability",
    "ConflictError",
    "Contact",
    "Criteria",
    "CurrencyMismatchError",
    "Deal",
    "DealEvent",
    "DealFilter",
    "DealStatus",
    "DefinitionError",
    "DomainError",
    "EventSource",
    "FiscalCalendar",
    "ForecastCategory",
    "GuardRegistry",
    "ImportDataError",
    "InvalidMoneyError",
    "MemoryStore",
    "MigrationError",
    "Money",
    "Move",
    "NaiveDatetimeError",
    "NotFoundError",
    "Period",
    "PeriodError",
    "PeriodKind",
    "Playbook",
    "PluginError",
    "PluginValidationError",
    "ProbabilityPolicy",
    "Problem",
    "Process",
    "ProcessFileError",
    "Product",
    "Rate",
    "Rep",
    "ReplayError",
    "SalesProcess",
    "SalesProcessError",
    "SchemaError",
    "Stage",
    "StageKind",
    "Store",
    "StoreError",
    "Team",
    "Transition",
    "TransitionNotAllowed",
    "allocate",
    "allocate_int",
    "diff_processes",
    "hookimpl",
    "migrate_deals",
    "replay",
]
