"""The KPI library: a registry of named KPIs, a grouping engine, funnels and pipeline change.

>>> from salesprocess.kpi import compute, default_registry
>>> "win_rate" in default_registry()
True

Start with :func:`compute` (a :class:`Dataset` or a store in, a :class:`KpiTable` out),
:func:`compare` for period-over-period change, :func:`funnel` for stage conversion and
:func:`pipeline_change` for what moved between two instants. Plugins add KPIs through the
``salesprocess_register_kpis`` hook; :attr:`salesprocess.SalesProcess.kpis` holds them all.
"""

from __future__ import annotations

from .change import ChangeReason, DealChange, PipelineChange, pipeline_change
from .engine import Cell, Change, KpiRow, KpiTable, compare, compute, default_registry, parse_where
from .facts import Dataset, DealState, Stay, View
from .funnel import Funnel, FunnelStage, funnel, stage_ranks
from .inputs import AccountRevenue, CostEntry, KpiInputs, SurveyKind, SurveyResponse, Target
from .registry import Basis, Direction, Kpi, KpiRegistry, Unit, Value

__all__ = [
    "AccountRevenue",
    "Basis",
    "Cell",
    "Change",
    "ChangeReason",
    "CostEntry",
    "Dataset",
    "DealChange",
    "DealState",
    "Direction",
    "Funnel",
    "FunnelStage",
    "Kpi",
    "KpiInputs",
    "KpiRegistry",
    "KpiRow",
    "KpiTable",
    "PipelineChange",
    "Stay",
    "SurveyKind",
    "SurveyResponse",
    "Target",
    "Unit",
    "Value",
    "View",
    "compare",
    "compute",
    "default_registry",
    "funnel",
    "parse_where",
    "pipeline_change",
    "stage_ranks",
]
