"""Risk management: deal risk signals, customer credit and churn risk, one explainable score per
deal and per customer, and alert rules that fire once per new alert.

Start with :func:`assess` (a store or :class:`~salesprocess.kpi.Dataset` and an ``asof`` instant in,
a :class:`RiskReport` out); settings come from :class:`RiskConfig` (TOML over shipped defaults);
:func:`evaluate_alerts` turns a report into alerts.

Names load on first use, so a shell that only needs the credit guard (:mod:`.book`) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .alerts import (
        ALERT_KIND,
        AlertRun,
        RiskAlert,
        evaluate_alerts,
    )
    from .book import (
        CreditBook,
        CreditLimitGuard,
    )
    from .churn import (
        BUILTIN_CUSTOMER_SIGNALS,
        ChurnInputs,
        Complaint,
        churn_findings,
    )
    from .config import (
        LEVELS,
        SEVERITIES,
        AlertRule,
        CreditConfig,
        RiskConfig,
        SignalConfig,
        SignalSettings,
    )
    from .credit import (
        CreditAssessment,
        CreditInputs,
        Invoice,
        Order,
        Payment,
        assess_credit,
    )
    from .engine import (
        CustomerRisk,
        DealRisk,
        RiskEngine,
        RiskReport,
        assess,
    )
    from .facts import (
        DealFacts,
        FactsBuilder,
        Workdays,
    )
    from .inputs import (
        inputs_from_dict,
        read_inputs,
    )
    from .points import (
        Contribution,
        combine,
    )
    from .signals import (
        BUILTIN_DEAL_SIGNALS,
        RiskContext,
        RiskFinding,
        SignalRegistry,
        SignalSpec,
        builtin_signals,
    )

_WHERE: dict[str, str] = {
    "inputs_from_dict": "inputs",
    "read_inputs": "inputs",
    "ALERT_KIND": "alerts",
    "AlertRun": "alerts",
    "RiskAlert": "alerts",
    "evaluate_alerts": "alerts",
    "CreditBook": "book",
    "CreditLimitGuard": "book",
    "BUILTIN_CUSTOMER_SIGNALS": "churn",
    "ChurnInputs": "churn",
    "Complaint": "churn",
    "churn_findings": "churn",
    "Contribution": "points",
    "combine": "points",
    "LEVELS": "config",
    "SEVERITIES": "config",
    "AlertRule": "config",
    "CreditConfig": "config",
    "RiskConfig": "config",
    "SignalConfig": "config",
    "SignalSettings": "config",
    "CreditAssessment": "credit",
    "CreditInputs": "credit",
    "Invoice": "credit",
    "Order": "credit",
    "Payment": "credit",
    "assess_credit": "credit",
    "CustomerRisk": "engine",
    "DealRisk": "engine",
    "RiskEngine": "engine",
    "RiskReport": "engine",
    "assess": "engine",
    "DealFacts": "facts",
    "FactsBuilder": "facts",
    "Workdays": "facts",
    "BUILTIN_DEAL_SIGNALS": "signals",
    "RiskContext": "signals",
    "RiskFinding": "signals",
    "SignalRegistry": "signals",
    "SignalSpec": "signals",
    "builtin_signals": "signals",
}

__all__ = [
    "ALERT_KIND",
    "BUILTIN_CUSTOMER_SIGNALS",
    "BUILTIN_DEAL_SIGNALS",
    "LEVELS",
    "SEVERITIES",
    "AlertRule",
    "AlertRun",
    "ChurnInputs",
    "Complaint",
    "Contribution",
    "CreditAssessment",
    "CreditBook",
    "CreditConfig",
    "CreditInputs",
    "CreditLimitGuard",
    "CustomerRisk",
    "DealFacts",
    "DealRisk",
    "FactsBuilder",
    "Invoice",
    "Order",
    "Payment",
    "RiskAlert",
    "RiskConfig",
    "RiskContext",
    "RiskEngine",
    "RiskFinding",
    "RiskReport",
    "SignalConfig",
    "SignalRegistry",
    "SignalSettings",
    "SignalSpec",
    "Workdays",
    "assess",
    "assess_credit",
    "builtin_signals",
    "churn_findings",
    "combine",
    "evaluate_alerts",
    "inputs_from_dict",
    "read_inputs",
]


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
