"""Incentive compensation: commission plans, credits, statements, what-if estimates and contests.

People are paid by these numbers, so everything here is exact and explainable:

- A :class:`Plan` (TOML or plain data) holds effective-dated :class:`PlanVersion` values: who is
  credited (owners, revenue and overlay splits, manager overrides through the hierarchy as it
  was), the rate table (flat, tiered graduated or retroactive, accelerators, decelerators,
  product and segment rules), caps, a minimum payout, SPIFs, draws, the clawback policy and the
  rounding policy.
- :func:`compute_statements` turns deals (their event histories) and plain inputs (invoices,
  payments, refunds, churn, splits, quotas, FX rates, reporting lines) into one
  :class:`Statement` per rep and settlement period. Every :class:`StatementLine` traces to its
  deal, event, rule and plan version; the total is the sum of the lines to the minor unit.
- :func:`what_if` estimates a prospective deal; :func:`save_statements` and
  :func:`check_statements` keep snapshots in a store and check a recomputation against them.
- :class:`Contest` ranks reps or teams by any KPI (quarterly champion 季度冠军 and others).
"""

from __future__ import annotations

from ._api import (
    PLAN_DOCUMENT,
    STATEMENT_DOCUMENT,
    StatementCheck,
    WhatIf,
    check_statements,
    compute_statements,
    load_plan,
    load_statement,
    save_plan,
    save_statements,
    saved_statements,
    what_if,
)
from ._contests import (
    Contest,
    Leaderboard,
    Prize,
    Qualifier,
    Season,
    Standing,
    run_contest,
    run_season,
)
from ._credit import Credit, CreditBook, SpifAward, credit_deals
from ._engine import CommissionRun
from ._errors import IncentiveError, PlanFileError
from ._inputs import (
    Adjustment,
    Churn,
    CommissionInputs,
    FxRate,
    FxTable,
    Invoice,
    OrgHistory,
    Payment,
    Quota,
    Refund,
    ReportingLine,
    Split,
    SplitKind,
)
from ._plan import (
    Accelerator,
    Caps,
    ClawbackPolicy,
    CreditBasis,
    Crediting,
    Decelerator,
    Draw,
    Eligibility,
    Override,
    PayoutPolicy,
    Plan,
    PlanVersion,
    RateRule,
    Rates,
    RoundingPolicy,
    Spif,
    Tier,
    TierBasis,
    TierMode,
)
from ._statement import LineKind, Statement, StatementLine

__all__ = [
    "PLAN_DOCUMENT",
    "STATEMENT_DOCUMENT",
    "Accelerator",
    "Adjustment",
    "Caps",
    "Churn",
    "ClawbackPolicy",
    "CommissionInputs",
    "CommissionRun",
    "Contest",
    "Credit",
    "CreditBasis",
    "CreditBook",
    "Crediting",
    "Decelerator",
    "Draw",
    "Eligibility",
    "FxRate",
    "FxTable",
    "IncentiveError",
    "Invoice",
    "Leaderboard",
    "LineKind",
    "OrgHistory",
    "Override",
    "Payment",
    "PayoutPolicy",
    "Plan",
    "PlanFileError",
    "PlanVersion",
    "Prize",
    "Qualifier",
    "Quota",
    "RateRule",
    "Rates",
    "Refund",
    "ReportingLine",
    "RoundingPolicy",
    "Season",
    "Spif",
    "SpifAward",
    "Split",
    "SplitKind",
    "Standing",
    "Statement",
    "StatementCheck",
    "StatementLine",
    "Tier",
    "TierBasis",
    "TierMode",
    "WhatIf",
    "check_statements",
    "compute_statements",
    "credit_deals",
    "load_plan",
    "load_statement",
    "run_contest",
    "run_season",
    "save_plan",
    "save_statements",
    "saved_statements",
    "what_if",
]
