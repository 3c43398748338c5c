"""Registered through the ``hypothesis`` entry point: teaches ``st.from_type`` our model types."""

from __future__ import annotations


def _hypothesis_setup_hook() -> None:
    from salesprocess.testing import strategies

    strategies.register_type_strategies()
