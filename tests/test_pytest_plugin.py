"""The opt-in pytest plugin, exercised in throwaway test sessions with pytester."""

from __future__ import annotations

import hypothesis  # noqa: F401  (imported once here: pytester restores sys.modules after each run)
import pytest

import salesprocess.testing.pytest_plugin  # noqa: F401

pytest_plugins = ["pytester"]

PLUGIN = "salesprocess.testing.pytest_plugin"

USES_FIXTURES = '''
from datetime import datetime, timezone

from salesprocess import MemoryStore, Process, SalesProcess, hookimpl

SEEN = []


class Guards:
    @hookimpl
    def salesprocess_register_guards(self, register):
        register("always_no", lambda deal, move: "never allowed")


def test_app_is_fresh_and_isolated(salesprocess_app):
    assert isinstance(salesprocess_app, SalesProcess)
    assert "always_no" not in salesprocess_app.guards
    assert all(n.startswith("salesprocess") for n in salesprocess_app.plugin_names())


def test_register_plugin_adds_guard(salesprocess_app, register_plugin):
    plugin = Guards()
    name = register_plugin(plugin, name="guards-for-one-test")
    assert name == "guards-for-one-test"
    assert "always_no" in salesprocess_app.guards
    SEEN.append((salesprocess_app, plugin))


def test_plugin_was_unregistered_after_its_test():
    app, plugin = SEEN[0]
    assert not app.pm.is_registered(plugin)
    assert "always_no" not in app.guards


def test_processes(b2b_process, saas_process):
    assert isinstance(b2b_process, Process)
    assert b2b_process.key == "b2b"
    assert [s.key for s in saas_process.stages][0] == "discovery"


def test_memory_store_is_empty_and_works(memory_store, saas_process):
    assert isinstance(memory_store, MemoryStore)
    assert list(memory_store.deals()) == []
    at = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
    deal = saas_process.open_deal("d-1", at=at, actor="me")
    memory_store.save_deal(deal, expected_version=None)
    assert memory_store.get_deal("d-1") == deal


def test_each_test_gets_a_new_store(memory_store):
    assert memory_store.count_deals() == 0
'''


def test_fixtures_work_when_enabled_with_p(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=USES_FIXTURES)
    result = pytester.runpytest("-p", PLUGIN, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)


def test_fixtures_work_through_pytest_plugins_in_conftest(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(f"pytest_plugins = [{PLUGIN!r}]\n")
    pytester.makepyfile(test_inner=USES_FIXTURES)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)


def test_plugin_is_opt_in(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
def test_needs_app(salesprocess_app):
    pass
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'salesprocess_app' not found*"])


def test_register_plugin_refuses_a_misspelt_hook(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
import pytest
from salesprocess import PluginValidationError, hookimpl


class Misspelt:
    @hookimpl
    def salesprocess_befor_transition(self, deal):
        return None


def test_misspelt_hook_is_refused(salesprocess_app, register_plugin):
    with pytest.raises(PluginValidationError):
        register_plugin(Misspelt())
    assert not any(isinstance(p, Misspelt) for p in salesprocess_app.pm.get_plugins())
"""
    )
    result = pytester.runpytest("-p", PLUGIN, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
