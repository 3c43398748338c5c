"""Registered through the ``hypothesis`` entry point: teaches ``st.from_type`` our model types.

The hook runs while Hypothesis itself is being imported, so it must not import our strategies
module (which imports Hypothesis): it registers resolvers that import it on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (module, class name, strategy factory name in salesprocess.testing.strategies)
TYPES: tuple[tuple[str, str, str], ...] = (
    ("salesprocess.money", "Money", "money"),
    ("salesprocess.money", "Rate", "rates"),
    ("salesprocess.periods", "Period", "periods"),
    ("salesprocess.periods", "FiscalCalendar", "fiscal_calendars"),
    ("salesprocess.process", "Criteria", "criteria"),
    ("salesprocess.process", "Stage", "stages"),
    ("salesprocess.process", "Process", "processes"),
    ("salesprocess.model", "Deal", "deals"),
    ("salesprocess.model", "Account", "accounts"),
    ("salesprocess.model", "Contact", "contacts"),
    ("salesprocess.model", "Team", "teams"),
    ("salesprocess.model", "Rep", "reps"),
    ("salesprocess.model", "Product", "products"),
    ("salesprocess.model", "Activity", "activities"),
)


def _resolver(factory: str) -> Callable[[type], Any]:
    def resolve(_typ: type) -> Any:
        from salesprocess.testing import strategies

        return getattr(strategies, factory)()

    return resolve


def _hypothesis_setup_hook() -> None:
    import importlib

    from hypothesis import strategies as st

    for module, name, factory in TYPES:
        st.register_type_strategy(getattr(importlib.import_module(module), name), _resolver(factory))
