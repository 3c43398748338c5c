"""The plugin shell: registration, entry points, blocking, hook validation, vetoes, guards."""

from __future__ import annotations

import itertools
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from salesprocess import (
    Deal,
    Money,
    PluginError,
    PluginValidationError,
    Process,
    SalesProcess,
    TransitionNotAllowed,
    hookimpl,
)
from salesprocess.model import DealEvent, StageChanged

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=SH)


def _open(app: SalesProcess, process: Process, **kw: Any) -> Deal:
    return process.open_deal("d-1", at=T0, actor="a", **kw)


# --- registration ----------------------------------------------------------------------------------


def test_first_party_plugins_are_registered() -> None:
    app = SalesProcess()
    names = app.plugin_names()
    assert "salesprocess.processes" in names
    assert "salesprocess_adapters.memory" in names
    assert {"b2b", "saas"} <= set(app.process_keys())
    assert ("store", "memory") in app.adapters("store")
    assert type(app.open_store("memory:")).__name__ == "MemoryStore"
    with pytest.raises(PluginError, match="no process 'nope'"):
        app.process("nope")
    with pytest.raises(PluginError, match="no store adapter named 'ftp'"):
        app.open_store("ftp://x")


def test_block_by_name() -> None:
    app = SalesProcess(block=["salesprocess_adapters.memory"])
    assert "salesprocess_adapters.memory" not in app.plugin_names()
    assert ("store", "memory") not in app.adapters()
    assert app.register(object(), name="salesprocess_adapters.memory") is None


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real distribution on sys.path with a ``salesprocess`` entry point (name 'acme')."""
    (tmp_path / "acme_sp_plugin.py").write_text(
        textwrap.dedent(
            """
            from salesprocess import hookimpl

            @hookimpl
            def salesprocess_register_guards(register):
                register("acme_ok", lambda deal, move: None, "from an installed plugin")
            """
        ),
        encoding="utf-8",
    )
    dist = tmp_path / "acme_sp_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-sp-plugin\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        "[salesprocess]\nacme = acme_sp_plugin\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "acme_sp_plugin", raising=False)
    return "acme"


def test_entry_points_load_only_when_asked(installed_plugin: str) -> None:
    plain = SalesProcess()
    assert installed_plugin not in plain.plugin_names()
    assert "acme_ok" not in plain.guards
    loaded = SalesProcess(load_entrypoints=True)
    assert installed_plugin in loaded.plugin_names()
    assert loaded.guards["acme_ok"].plugin == installed_plugin
    blocked = SalesProcess(load_entrypoints=True, block=[installed_plugin])
    assert installed_plugin not in blocked.plugin_names()


def test_an_entry_point_that_fails_to_import_is_a_plugin_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "broken_sp-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-sp\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        "[salesprocess]\nbroken = no_such_module_xyz\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="entry point"):
        SalesProcess(load_entrypoints=True)


class Misspelt:
    @hookimpl
    def salesprocess_befor_transition(
        self, process: Any, deal: Any, target: Any, at: Any, actor: Any, reason: Any
    ) -> None:
        return None


class WrongArgs:
    @hookimpl
    def salesprocess_after_transition(self, process: Any, deal_before: Any) -> None:
        return None


@pytest.mark.parametrize(
    "plugin", [Misspelt(), WrongArgs()], ids=["misspelt-hook", "unknown-argument"]
)
def test_bad_hookimpl_fails_loudly_at_registration(plugin: object) -> None:
    app = SalesProcess()
    with pytest.raises(PluginValidationError) as info:
        app.register(plugin, name="bad-plugin")
    assert info.value.plugin == "bad-plugin"
    assert not app.pm.is_registered(plugin)
    with pytest.raises(PluginValidationError):
        SalesProcess([plugin])


# --- transition hooks ---------------------------------------------------------------------------------


class Veto:
    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.calls = 0

    @hookimpl
    def salesprocess_before_transition(
        self,
        process: Process,
        deal: Deal,
        target: str,
        at: datetime,
        actor: str,
        reason: str | None,
    ) -> str | None:
        self.calls += 1
        return self.reason if target == "closed_won" else None


class Recorder:
    def __init__(self) -> None:
        self.moves: list[tuple[str, str, tuple[DealEvent, ...]]] = []

    @hookimpl
    def salesprocess_after_transition(
        self, process: Process, before: Deal, after: Deal, events: tuple[DealEvent, ...]
    ) -> None:
        self.moves.append((before.stage, after.stage, tuple(events)))


def test_before_transition_veto_carries_every_reason() -> None:
    app = SalesProcess([Veto("legal has not approved"), Veto("credit check pending")])
    saas = app.process("saas")
    deal = _open(app, saas, amount=Money("100", "USD"))
    with pytest.raises(TransitionNotAllowed) as info:
        app.advance(saas, deal, "closed_won", at=T0, actor="a")
    assert [p.code for p in info.value.unmet] == ["veto", "veto"]
    assert {p.message for p in info.value.unmet} == {
        "legal has not approved",
        "credit check pending",
    }
    assert {p.code for p in app.check(saas, deal, "closed_won", at=T0)} == {"veto"}
    assert app.advance(saas, deal, "closed_lost", at=T0, actor="a").stage == "closed_lost"


def test_vetoes_are_not_asked_about_moves_the_process_refuses() -> None:
    veto = Veto("no")
    app = SalesProcess([veto])
    saas = app.process("saas")
    deal = _open(app, saas)
    with pytest.raises(TransitionNotAllowed) as info:
        app.advance(saas, deal, "demo", at=T0, actor="a")  # owner missing
    assert [p.code for p in info.value.unmet] == ["field"]
    assert [p.code for p in app.check(saas, deal, "nowhere")] == ["unknown_stage"]
    assert veto.calls == 0


def test_after_transition_fires_once_per_move_with_its_events() -> None:
    rec = Recorder()
    app = SalesProcess([rec])
    saas = app.process("saas")
    deal = _open(app, saas, owner_id="r")
    d1 = app.advance(saas, deal, "demo", at=T0, actor="a")
    d2 = app.advance(
        saas, d1, "closed_lost", at=T0 + timedelta(hours=1), actor="a", reason="budget"
    )
    assert [(a, b) for a, b, _ in rec.moves] == [("discovery", "demo"), ("demo", "closed_lost")]
    assert rec.moves[0][2] == (d1.events[-1],)
    assert rec.moves[1][2] == (d2.events[-1],)
    assert all(isinstance(e, StageChanged) for _, _, evs in rec.moves for e in evs)
    with pytest.raises(TransitionNotAllowed):
        app.advance(saas, d2, "proposal", at=T0 + timedelta(hours=2), actor="a")
    assert len(rec.moves) == 2  # a refused move is not reported
    app.unregister(rec)
    app.advance(saas, deal, "demo", at=T0, actor="a")
    assert len(rec.moves) == 2


# --- guards -------------------------------------------------------------------------------------------


class CreditGuard:
    @hookimpl
    def salesprocess_register_guards(self, register: Any) -> None:
        register(
            "credit_ok",
            lambda deal, move: None if deal.custom.get("credit") == "ok" else "credit not checked",
        )


def test_plugin_guards_are_usable_in_processes() -> None:
    app = SalesProcess([CreditGuard()])
    data = app.process("saas").to_dict()
    data["stages"][4]["entry"] = {"guards": ["has_amount", "credit_ok"]}
    p = app.process_from_dict(data)
    deal = p.open_deal("d", at=T0, actor="a", amount=Money("1", "USD"))
    problems = p.check(deal, "closed_won", at=T0)
    assert [(q.path, q.message) for q in problems] == [
        ("entry.guards.credit_ok", "closed_won: credit not checked")
    ]
    ok = deal.with_details(custom={"credit": "ok"}, at=T0, actor="a")
    assert p.advance(ok, "closed_won", at=T0, actor="a").status.value == "won"
    # without the plugin the name is unknown, and validation says so
    problems = Process.problems_in(data)
    assert [(q.path, q.code) for q in problems] == [("stages[4].entry.guards[1]", "unknown_guard")]


def test_process_from_toml_uses_the_shell_guards(tmp_path: Path) -> None:
    app = SalesProcess([CreditGuard()])
    data = app.process("saas").to_dict()
    keys = [s["key"] for s in data["stages"]]  # discovery demo trial proposal closed_won closed_lost
    data["transitions"] = [{"from": a, "to": b} for a, b in itertools.pairwise(keys[:4])]
    data["transitions"] += [{"from": k, "to": "closed_lost"} for k in keys[:4]]
    data["transitions"].append({"from": "proposal", "to": "closed_won", "guards": ["credit_ok"]})
    path = tmp_path / "p.toml"
    path.write_text(Process.from_dict(data, guards=app.guards).to_toml(), encoding="utf-8")
    p = app.load_process(path)
    assert p.edge("proposal", "closed_won").guards == ("credit_ok",)  # type: ignore[union-attr]


class SameName:
    @hookimpl
    def salesprocess_register_guards(self, register: Any) -> None:
        register("credit_ok", lambda deal, move: None)


class ShadowsBuiltin:
    @hookimpl
    def salesprocess_register_guards(self, register: Any) -> None:
        register("has_amount", lambda deal, move: None)


class BadName:
    @hookimpl
    def salesprocess_register_guards(self, register: Any) -> None:
        register("not an identifier", lambda deal, move: None)


@pytest.mark.parametrize(
    ("plugins", "match"),
    [
        ([CreditGuard(), SameName()], "registered twice"),
        ([ShadowsBuiltin()], "builtin"),
        ([BadName()], "identifier"),
    ],
)
def test_bad_guard_registrations_are_rejected(plugins: list[object], match: str) -> None:
    app = SalesProcess(plugins)
    with pytest.raises(PluginValidationError, match=match) as info:
        _ = app.guards
    assert info.value.hook == "salesprocess_register_guards"


def test_guard_registry_follows_registration() -> None:
    app = SalesProcess()
    assert "credit_ok" not in app.guards
    plugin = CreditGuard()
    app.register(plugin)
    assert "credit_ok" in app.guards
    app.unregister(plugin)
    assert "credit_ok" not in app.guards
