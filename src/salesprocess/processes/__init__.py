"""Shipped processes: ``b2b`` (the seven-stage B2B process) and ``saas``."""

from __future__ import annotations

from importlib import resources

from ..guards import GuardRegistry
from ..process import Process

__all__ = ["SHIPPED", "load", "toml_text"]

SHIPPED = ("b2b", "saas")


def toml_text(key: str) -> str:
    """The TOML source of a shipped process."""
    if key not in SHIPPED:
        raise KeyError(f"no shipped process {key!r}; choose one of {', '.join(SHIPPED)}")
    return resources.files(__name__).joinpath(f"{key}.toml").read_text(encoding="utf-8")


def load(key: str, *, guards: GuardRegistry | None = None) -> Process:
    """A shipped process by key."""
    return Process.from_toml(toml_text(key), guards=guards)
