"""An opt-in pytest plugin with fixtures for testing code built on salesprocess.

Enable it with ``pytest -p salesprocess.testing.pytest_plugin`` or, in a ``conftest.py``,
``pytest_plugins = ["salesprocess.testing.pytest_plugin"]``. Fixtures (all function-scoped):

- ``salesprocess_app``: a fresh :class:`~salesprocess.SalesProcess` with the first-party plugins
  only (entry points are not loaded, so plugins installed in the environment cannot leak in);
- ``register_plugin``: ``register_plugin(obj, name=None)`` registers a plugin on that app for
  the current test and unregisters it afterwards; returns the plugin's name;
- ``b2b_process`` / ``saas_process``: the shipped processes, loaded through that app (so guards
  registered with ``register_plugin`` before the fixture is used are known);
- ``memory_store``: an empty in-memory store opened through the app (``memory:``), closed after
  the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from salesprocess.app import SalesProcess
from salesprocess.process import Process
from salesprocess.store import Store

__all__ = [
    "b2b_process",
    "memory_store",
    "register_plugin",
    "saas_process",
    "salesprocess_app",
]


@pytest.fixture
def salesprocess_app() -> SalesProcess:
    """A fresh plugin shell with the first-party plugins and no entry points."""
    return SalesProcess(load_entrypoints=False)


@pytest.fixture
def register_plugin(salesprocess_app: SalesProcess) -> Iterator[Callable[..., str | None]]:
    """Register plugin objects on ``salesprocess_app`` for one test."""
    registered: list[object] = []

    def register(plugin: object, name: str | None = None) -> str | None:
        n = salesprocess_app.register(plugin, name=name)
        if n is not None:
            registered.append(plugin)
        return n

    yield register
    for plugin in reversed(registered):
        if salesprocess_app.pm.is_registered(plugin):
            salesprocess_app.unregister(plugin)


@pytest.fixture
def b2b_process(salesprocess_app: SalesProcess) -> Process:
    """The shipped seven-stage B2B process."""
    return salesprocess_app.process("b2b")


@pytest.fixture
def saas_process(salesprocess_app: SalesProcess) -> Process:
    """The shipped SaaS process."""
    return salesprocess_app.process("saas")


@pytest.fixture
def memory_store(salesprocess_app: SalesProcess) -> Iterator[Store]:
    """An empty in-memory store, closed after the test."""
    store: Any = salesprocess_app.open_store("memory:")
    try:
        yield store
    finally:
        store.close()
