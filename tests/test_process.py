"""Processes as code: loading, dumping, validation, diff and migration of in-flight deals."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings

from salesprocess import (
    DefinitionError,
    MigrationError,
    Money,
    Problem,
    Process,
    ProcessFileError,
    Rate,
    StageKind,
    diff_processes,
    migrate_deals,
    processes,
    replay,
)
from salesprocess.model import ProcessMigrated
from salesprocess.testing import strategies as sps

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=SH)

heavy = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _minimal(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": "mini",
        "name": "最小流程",
        "stages": [
            {"key": "线索", "name": "线索"},
            {"key": "报价", "name": "报价", "probability": "0.5"},
            {"key": "赢单", "name": "赢单", "kind": "won"},
            {"key": "输单", "name": "输单", "kind": "lost"},
        ],
    }
    data.update(extra)
    return data


def _codes(problems: list[Problem] | tuple[Problem, ...]) -> set[tuple[str, str]]:
    return {(p.path, p.code) for p in problems}


# --- loading and dumping ------------------------------------------------------------------------


@heavy
@given(sps.processes())
def test_dict_round_trip_is_lossless(p: Process) -> None:
    again = Process.from_dict(p.to_dict())
    assert again == p
    assert again.stages == p.stages
    assert again.effective_transitions() == p.effective_transitions()


@heavy
@given(sps.processes())
def test_toml_round_trip_is_lossless(p: Process) -> None:
    text = p.to_toml()
    again = Process.from_toml(text)
    assert again == p
    assert again.stages == p.stages
    assert again.to_toml() == text


@pytest.mark.parametrize("key", ["b2b", "saas"])
def test_shipped_processes_round_trip(key: str) -> None:
    p = processes.load(key)
    assert Process.from_toml(p.to_toml()) == p
    assert Process.from_toml(processes.toml_text(key)) == p


def test_b2b_has_seven_chinese_stages_and_playbooks() -> None:
    p = processes.load("b2b")
    assert [s.name for s in p.stages] == [
        "潜在客户识别",
        "初次接触",
        "需求分析",
        "方案制定",
        "报价",
        "谈判与签约",
        "赢单",
        "输单",
    ]
    assert p.stage("lead").display_name("en") == "Lead identification"
    assert p.stage("solution").entry.checklist == ("budget_confirmed", "decision_maker_known")
    assert p.stage("first_contact").playbook.scripts[0].body.startswith("您好")
    assert p.after_sales


def test_chinese_names_end_to_end(tmp_path: Path) -> None:
    p = Process.from_dict(
        _minimal(
            transitions=[
                {"from": "线索", "to": "报价", "name": "推进"},
                {"from": "报价", "to": "赢单"},
                {"from": "线索", "to": "输单"},
                {"from": "报价", "to": "输单"},
                {"from": "输单", "to": "线索", "reopen": True},
            ]
        )
    )
    path = tmp_path / "流程.toml"
    path.write_text(p.to_toml(), encoding="utf-8")
    loaded = Process.from_toml(path)
    assert loaded == p
    assert loaded.name == "最小流程"
    deal = loaded.open_deal(
        "d-1", at=T0, actor="王伟", name="华东制造 ERP", amount=Money("100000", "CNY")
    )
    assert deal.stage == "线索"
    deal = loaded.advance(deal, "报价", at=T0, actor="王伟")
    deal = loaded.advance(deal, "赢单", at=T0 + timedelta(days=1), actor="王伟")
    assert deal.is_closed
    assert replay(deal.events) == deal
    assert loaded.edge("线索", "报价").name == "推进"  # type: ignore[union-attr]


def test_from_toml_reads_path_strings_too(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(processes.toml_text("saas"), encoding="utf-8")
    assert Process.from_toml(str(path)) == processes.load("saas")


def test_stage_probabilities_default_by_kind() -> None:
    p = Process.from_dict(_minimal())
    assert p.stage("赢单").probability == Rate(1)
    assert p.stage("输单").probability == Rate(0)
    assert p.stage("线索").kind is StageKind.OPEN


# --- validation: every problem, with its path -----------------------------------------------------


def test_validation_reports_every_problem_with_its_path() -> None:
    data = _minimal(
        stages=[
            {"key": "a", "name": "A", "probability": "1.5", "entry": {"guards": ["no_such_guard"]}},
            {"key": "a", "name": "A again"},
            {"key": "w", "name": "W", "kind": "won", "probability": "0.9"},
        ],
        transitions=[
            {"from": "a", "to": "w"},
            {"from": "a", "to": "nowhere"},
            {"from": "w", "to": "a"},
            {"from": "a", "to": "w", "guards": ["also_missing"]},
        ],
    )
    with pytest.raises(DefinitionError) as info:
        Process.from_dict(data)
    found = _codes(info.value.problems)
    assert {
        ("stages[0].probability", "range"),
        ("stages[0].entry.guards[0]", "unknown_guard"),
        ("stages[1].key", "duplicate"),
        ("stages[2].probability", "range"),
        ("stages", "no_lost"),
        ("transitions[1].to", "unknown_stage"),
        ("transitions[2]", "leaves_closed"),
        ("transitions[3].guards[0]", "unknown_guard"),
    } <= found
    assert Process.problems_in(data) == list(info.value.problems)


def test_validation_finds_unreachable_and_trapped_stages() -> None:
    data = _minimal(
        stages=[
            {"key": "a", "name": "A"},
            {"key": "b", "name": "B"},
            {"key": "island", "name": "Island"},
            {"key": "trap", "name": "Trap"},
            {"key": "w", "name": "W", "kind": "won"},
            {"key": "l", "name": "L", "kind": "lost"},
        ],
        transitions=[
            {"from": "a", "to": "b"},
            {"from": "b", "to": "w"},
            {"from": "a", "to": "l"},
            {"from": "a", "to": "trap"},
            {"from": "island", "to": "w"},
        ],
    )
    problems = Process.problems_in(data)
    assert _codes(problems) == {("stages[2]", "unreachable"), ("stages[3]", "trap")}
    assert all(p.message for p in problems)


def test_validation_of_file_level_mistakes() -> None:
    data = _minimal(
        unknown_top=1, probability_policy="sometimes", flow={"allow_skip": "yes", "bogus": 1}
    )
    data["stages"][0]["kind"] = "maybe"
    data["stages"][1]["entry"] = {"fields": ["budgett"], "activities": ["dance"]}
    found = _codes(Process.problems_in(data))
    assert {
        ("unknown_top", "unknown_key"),
        ("probability_policy", "value"),
        ("flow.allow_skip", "type"),
        ("flow.bogus", "unknown_key"),
        ("stages[0].kind", "value"),
    } <= found
    # semantic problems of stage criteria are reported once the file parses
    data = _minimal()
    data["stages"][1]["entry"] = {"fields": ["budgett"], "activities": ["dance"]}
    assert _codes(Process.problems_in(data)) == {
        ("stages[1].entry.fields[0]", "unknown_field"),
        ("stages[1].entry.activities[0]", "unknown_activity"),
    }


def test_missing_won_or_lost_stage_and_reopen_from_open() -> None:
    data = {"key": "x", "stages": [{"key": "a"}, {"key": "b"}]}
    assert {("stages", "no_won"), ("stages", "no_lost")} <= _codes(Process.problems_in(data))
    data = _minimal(
        transitions=[
            {"from": "线索", "to": "报价", "reopen": True},
            {"from": "报价", "to": "赢单"},
            {"from": "线索", "to": "输单"},
            {"from": "报价", "to": "输单"},
        ]
    )
    assert ("transitions[0]", "reopen_open") in _codes(Process.problems_in(data))


def test_unknown_guard_names_are_reported_and_plugin_guards_accepted() -> None:
    from salesprocess.guards import builtin_registry

    data = _minimal()
    data["stages"][2]["entry"] = {"guards": ["credit_ok"]}
    assert _codes(Process.problems_in(data)) == {("stages[2].entry.guards[0]", "unknown_guard")}
    reg = builtin_registry()
    reg.register("credit_ok", lambda deal, move: None, plugin="finance")
    assert Process.from_dict(data, guards=reg).stage("赢单").entry.guards == ("credit_ok",)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('key = "x"\n[[stages]\nkey = "a"\n', 2),
        ('key = "x"\nname = \n', 2),
        ('key = "x"\n\n\nstages = [ { key = "a" }\n', 4),
        ('key = "x"\nkey = "y"\n', 2),
    ],
)
def test_bad_toml_raises_process_file_error_with_line(text: str, line: int) -> None:
    with pytest.raises(ProcessFileError) as info:
        Process.from_toml(text)
    assert info.value.line == line
    assert info.value.column is not None
    assert f":{line}:" in str(info.value)


def test_bad_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('key = "x"\nstages = []\n', encoding="utf-8")
    with pytest.raises(ProcessFileError) as info:
        Process.from_toml(path)
    assert info.value.path == str(path)
    assert ("stages", "required") in _codes(info.value.problems)
    with pytest.raises(ProcessFileError, match="cannot read"):
        Process.from_toml(tmp_path / "missing.toml")


# --- diff -------------------------------------------------------------------------------------------


def test_diff_lists_added_removed_and_changed() -> None:
    old = processes.load("saas")
    data = old.to_dict()
    data["version"] = 2
    data["stages"] = [s for s in data["stages"] if s["key"] != "trial"]
    data["stages"].insert(1, {"key": "pilot", "name": "Pilot", "probability": "0.4"})
    data["stages"][2]["probability"] = "0.35"  # demo
    data["name"] = "SaaS sales v2"
    new = Process.from_dict(data)
    d = diff_processes(old, new)
    assert d.added == ("pilot",)
    assert d.removed == ("trial",)
    assert ("demo", "probability", "0.30", "0.35") in d.changed
    assert ("name", "SaaS sales", "SaaS sales v2") in d.settings_changed
    assert ("discovery", "pilot") in d.transitions_added
    assert ("demo", "trial") in d.transitions_removed
    assert "+ stage pilot" in d.lines()
    assert not diff_processes(old, old)


@heavy
@given(sps.processes())
def test_diff_with_itself_is_empty(p: Process) -> None:
    assert not diff_processes(p, Process.from_dict(p.to_dict()))


# --- migration of in-flight deals --------------------------------------------------------------------


def _saas_v2() -> Process:
    data = processes.load("saas").to_dict()
    data["version"] = 2
    for s in data["stages"]:
        if s["key"] == "trial":
            s["key"], s["name"] = "pilot", "Pilot"
    return Process.from_dict(data)


def test_migration_moves_in_flight_deals_with_a_mapping() -> None:
    v1, v2 = processes.load("saas"), _saas_v2()
    d1 = v1.open_deal("d-1", at=T0, actor="a", owner_id="rep-1")
    d1 = v1.advance(d1, "demo", at=T0, actor="a")
    d2 = v1.advance(d1, "trial", at=T0, actor="a", activities=[_meeting("d-1")])
    moved = migrate_deals(
        v1, v2, [d1, d2], mapping={"trial": "pilot"}, at=T0 + timedelta(days=1), actor="ops"
    )
    assert [(d.stage, d.process_version) for d in moved] == [("demo", 2), ("pilot", 2)]
    ev = moved[1].events[-1]
    assert isinstance(ev, ProcessMigrated)
    assert (ev.from_stage, ev.to_stage, ev.from_version, ev.to_version) == ("trial", "pilot", 1, 2)
    assert all(replay(d.events) == d for d in moved)
    # the migrated deal follows the new version from now on
    ready = moved[1].with_amount(Money("5000", "USD"), at=T0 + timedelta(days=2), actor="a")
    assert v2.advance(ready, "proposal", at=T0 + timedelta(days=2), actor="a").stage == "proposal"


def _meeting(deal_id: str) -> Any:
    from salesprocess import Activity

    return Activity("m-1", "meeting", T0, deal_id=deal_id)


def test_migration_error_lists_every_problem_and_moves_nothing() -> None:
    v1, v2 = processes.load("saas"), _saas_v2()
    in_trial = v1.advance(
        v1.advance(v1.open_deal("d-1", at=T0, actor="a", owner_id="r"), "demo", at=T0, actor="a"),
        "trial",
        at=T0,
        actor="a",
        activities=[_meeting("d-1")],
    )
    other_trial = v1.advance(
        v1.advance(v1.open_deal("d-2", at=T0, actor="a", owner_id="r"), "demo", at=T0, actor="a"),
        "trial",
        at=T0,
        actor="a",
        activities=[_meeting("d-2")],
    )
    won = v1.advance(
        v1.open_deal("d-3", at=T0, actor="a", amount=Money("10", "USD")),
        "closed_won",
        at=T0,
        actor="a",
    )
    wrong_version = v2.open_deal("d-4", at=T0, actor="a")
    with pytest.raises(MigrationError) as info:
        migrate_deals(
            v1,
            v2,
            [in_trial, other_trial, won, wrong_version],
            mapping={"closed_won": "closed_lost", "ghost": "demo"},
            at=T0,
            actor="ops",
        )
    codes = [(p.path, p.code) for p in info.value.problems]
    assert ("mapping.ghost", "unknown_stage") in codes
    assert ("deal.d-1", "unmapped") in codes  # 'trial' has no counterpart in version 2
    assert ("deal.d-2", "unmapped") in codes
    assert ("deal.d-3", "kind") in codes  # a won deal cannot become lost
    assert ("deal.d-4", "version") in codes
    assert in_trial.process_version == 1


def test_migration_needs_an_aware_instant_and_the_same_process() -> None:
    v1 = processes.load("saas")
    with pytest.raises(ValueError, match="timezone"):
        migrate_deals(v1, _saas_v2(), [], at=datetime(2026, 1, 1), actor="ops")
    with pytest.raises(ValueError, match="another process"):
        migrate_deals(v1, processes.load("b2b"), [], at=T0, actor="ops")
