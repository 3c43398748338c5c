"""Automation rules: loading, each trigger kind, actions through the real stage machine, dry runs,
outbox and hooks. Stores are real SQLite files."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from salesprocess import (
    Account,
    Activity,
    ActivityKind,
    Contact,
    Money,
    Rep,
    SalesProcess,
    hookimpl,
)
from salesprocess.automation import (
    FIRE_KIND,
    Action,
    AutomationPlugin,
    Condition,
    MemoryNotifier,
    Rule,
    RuleEngine,
    RuleSet,
    Text,
    Trigger,
    render,
)
from salesprocess.errors import DefinitionError, ProcessFileError
from salesprocess.kpi import SurveyResponse
from salesprocess.model import ActivityStatus, EventSource

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday


def _note(to: str = "owner") -> Action:
    return Action("notify", {"via": "m", "to": [to], "subject": {"zh": "提醒 {deal.id}", "en": "About {deal.id}"},
                             "body": "{event.days}"})


@pytest.fixture
def world(tmp_path: Path) -> Any:
    sp = SalesProcess()
    store = sp.open_store(tmp_path / "a.sqlite")
    b2b = sp.process("b2b")
    store.save_process(b2b)
    store.put(Rep("wang", "王芳", email="wang@example.com", language="zh", manager_id="li"),
              Rep("li", "Li", email="li@example.com", language="en"),
              Account("acme", "华东制造", country="CN", industry="manufacturing", owner_id="wang",
                      created_at=datetime(2024, 5, 1, tzinfo=UTC)),
              Contact("c1", "Amy", account_id="acme", email="amy@example.com", language="en"))
    deal = b2b.open_deal("D-1", at=T0, actor="wang", owner_id="wang", account_id="acme",
                         amount=Money("200000", "CNY"), close_date=date(2026, 4, 30), name="ERP")
    store.save_deal(deal, expected_version=None)
    yield sp, store, b2b
    store.close()


def test_toml_problems_are_all_reported_with_lines() -> None:
    text = """
[[rules]]
id = "ok"
trigger = { kind = "deal_created" }
[[rules.actions]]
kind = "create_task"
title = "x"

[[rules]]
id = "bad"
trigger = { kind = "no_activity" }
conditions = [{ field = "amount", op = "~", value = 1 }]
[[rules.actions]]
kind = "notify"
via = "m"

[[rules]]
id = "ok"
trigger = { kind = "sometimes" }
[[rules.actions]]
kind = "teleport"
"""
    with pytest.raises(ProcessFileError) as e:
        RuleSet.from_toml(text)
    got = {(p.path, p.code) for p in e.value.problems}
    assert ("rules[1].trigger.days", "required") in got
    assert ("rules[1].conditions[0].field", "value") in got
    assert ("rules[1].conditions[0].op", "value") in got
    assert ("rules[1].actions[0].to", "required") in got
    assert ("rules[2].trigger.kind", "value") in got
    assert ("rules[2].actions[0].kind", "value") in got
    assert ("rules[2].id", "duplicate") in got
    assert e.value.line == 9
    assert any("(line 17)" in p.message for p in e.value.problems if p.path.startswith("rules[2]"))


def test_python_rule_validation() -> None:
    with pytest.raises(DefinitionError):
        Trigger("holiday", {"country": "XX-nowhere"})
    with pytest.raises(DefinitionError):
        Action("set_field", {"field": "stage", "value": "won"})
    with pytest.raises(DefinitionError):
        Rule("r", Trigger("deal_created"), [])


def test_text_picks_language_and_render_reads_dotted_names() -> None:
    t = Text.of({"zh": "您好 {who.name}", "en": "Hi {who.name}"})
    assert t.render("zh-CN", {"who": {"name": "王"}}) == "您好 王"
    assert t.render("fr", {"who": {"name": "Li"}}) == "Hi Li"
    assert render("{a.b.c}|{missing.x}|{m}", {"a": {"b": {"c": 1}}, "m": Money("1234.5", "CNY")}) == "1||1,234.50 CNY"
    assert render("{a.__class__}", {"a": 1}) == ""


def test_created_rule_fires_once_and_dry_run_changes_nothing(world: Any) -> None:
    sp, store, _ = world
    rules = RuleSet((Rule("hello", Trigger("deal_created"),
                          [Action("create_task", {"title": {"zh": "跟进 {deal.name}", "en": "Follow {deal.name}"}}), _note()]),))
    m = MemoryNotifier()
    dry = RuleEngine(rules).run_due(T0 + timedelta(hours=1), store, {"m": m}, dry_run=True)
    assert [f.rule for f in dry.fired] == ["hello"]
    assert dry.fired[0].outcomes[0].status == "planned"
    assert list(store.documents(FIRE_KIND)) == []
    assert m.sent == []
    assert list(store.all(Activity)) == []
    real = sp.run_rules(rules, store, T0 + timedelta(hours=1), notifiers={"m": m})
    assert len(real.fired) == 1
    assert real.sent == 1
    (task,) = store.all(Activity)
    assert task.status is ActivityStatus.PLANNED
    assert task.subject == "跟进 ERP"
    assert task.owner_id == "wang"
    assert m.sent[0].subject == "提醒 D-1"
    assert m.sent[0].recipient.address == "wang@example.com"
    again = sp.run_rules(rules, store, T0 + timedelta(days=30), notifiers={"m": m})
    assert again.fired == ()
    assert again.already == 1
    assert len(m.sent) == 1


def test_no_activity_counts_business_days_and_resets_on_activity(world: Any) -> None:
    _, store, _ = world
    rules = RuleSet((Rule("idle", Trigger("no_activity", {"days": 3}), [_note()]),))
    eng = RuleEngine(rules)
    # created Monday 09:00: three business days later is Thursday 09:00
    assert eng.run_due(datetime(2026, 3, 5, 8, tzinfo=UTC), store, dry_run=True).fired == ()
    (f,) = eng.run_due(datetime(2026, 3, 5, 9, tzinfo=UTC), store, dry_run=True).fired
    assert f.occurrence.at == datetime(2026, 3, 5, 9, tzinfo=UTC)
    store.put(Activity("a1", ActivityKind.CALL, datetime(2026, 3, 4, 10, tzinfo=UTC), deal_id="D-1"))
    (f2,) = eng.run_due(datetime(2026, 3, 12, tzinfo=UTC), store, dry_run=True).fired
    # the call on Wednesday restarted the clock: due the next Monday 10:00
    assert f2.occurrence.at == datetime(2026, 3, 9, 10, tzinfo=UTC)
    assert f2.occurrence.data["since"] == datetime(2026, 3, 4, 10, tzinfo=UTC)


def test_close_date_rule_follows_the_date_the_deal_had(world: Any) -> None:
    _, store, _ = world
    d = store.get_deal("D-1")
    pushed = d.with_close_date(date(2026, 6, 30), at=datetime(2026, 4, 25, tzinfo=UTC), actor="wang")
    store.save_deal(pushed, expected_version=d.version)
    rules = RuleSet((Rule("soon", Trigger("date", {"field": "close_date", "offset_days": -7}), [_note()],
                          [Condition("deal.status", "==", "open")]),))
    fired = RuleEngine(rules).run_due(datetime(2026, 7, 1, tzinfo=UTC), store, dry_run=True).fired
    # 23 April (a week before 30 April, still the close date then) and 23 June
    assert [f.occurrence.data["date"] for f in fired] == [date(2026, 4, 30), date(2026, 6, 30)]
    assert fired[0].occurrence.at == datetime(2026, 4, 23, 9, tzinfo=UTC)
    d2 = store.get_deal("D-1")
    early = d2.with_close_date(date(2026, 9, 30), at=datetime(2026, 6, 20, tzinfo=UTC), actor="wang")
    store.save_deal(early, expected_version=d2.version)
    fired = RuleEngine(rules).run_due(datetime(2026, 10, 1, tzinfo=UTC), store, dry_run=True).fired
    # pushed on 20 June, before 23 June: that reminder never fell due
    assert [f.occurrence.data["date"] for f in fired] == [date(2026, 4, 30), date(2026, 9, 30)]


def test_holidays_and_anniversaries(world: Any) -> None:
    _sp, store, _b2b = world
    rules = RuleSet((
        Rule("cny", Trigger("holiday", {"country": "CN", "names": ["Spring Festival"], "offset_days": -1}),
             [_note("contacts")]),
        Rule("anniv", Trigger("anniversary", {"of": "account.created_at"}), [_note("account_owner")]),
    ))
    fired = RuleEngine(rules).run_due(datetime(2026, 6, 1, tzinfo=UTC), store, dry_run=True).fired
    cny = [f.occurrence.data["date"] for f in fired if f.rule == "cny"]
    assert cny == [date(2025, 1, 29), date(2026, 2, 17)]  # the first day of each festival only
    local = {f.occurrence.data["holiday_local"] for f in fired if f.rule == "cny"}
    assert local == {"春节"}
    anniv = [f.occurrence for f in fired if f.rule == "anniv"]
    assert [(o.data["years"], o.at.date()) for o in anniv] == [(1, date(2025, 5, 1)), (2, date(2026, 5, 1))]


def test_stage_and_field_triggers_and_move_through_the_machine(world: Any) -> None:
    sp, store, b2b = world
    vetoed: list[str] = []

    class NoQuotes:
        @hookimpl
        def salesprocess_before_transition(self, process: Any, deal: Any, target: str, at: Any, actor: str, reason: Any) -> Any:
            if target == "first_contact" and deal.custom.get("hold"):
                vetoed.append(deal.id)
                return "on hold"
            return None

    sp.register(NoQuotes())
    rules = RuleSet((
        Rule("tick", Trigger("deal_created"), [Action("set_field", {"field": "checklist.icp_fit", "value": True})]),
        Rule("advance", Trigger("field_changed", {"field": "checklist.icp_fit"}),
             [Action("move_stage", {"to": "first_contact", "reason": "ICP fits"})],
             [Condition("event.new", "==", True)]),
        Rule("entered", Trigger("stage_entered", {"stage": "first_contact"}), [Action("start_playbook", {})]),
    ))
    eng = RuleEngine(rules)
    r1 = sp.run_rules(eng, store, T0 + timedelta(hours=1))
    assert [f.rule for f in r1.fired] == ["tick"]
    r2 = sp.run_rules(eng, store, T0 + timedelta(hours=2))
    assert [f.rule for f in r2.fired] == ["advance"]
    assert r2.fired[0].outcomes[0].status == "done"
    d = store.get_deal("D-1")
    assert d.stage == "first_contact"
    assert d.events[-1].source is EventSource.RULE
    r3 = sp.run_rules(eng, store, T0 + timedelta(hours=3))
    assert [f.rule for f in r3.fired] == ["entered"]
    assert [a.id for a in store.all(Activity)] == ["pb:D-1:first_contact:1"]
    # a refused move is reported, not forced
    d2 = b2b.open_deal("D-2", at=T0, actor="wang", owner_id="wang", account_id="acme",
                       custom={"hold": True})
    store.save_deal(d2, expected_version=None)
    sp.run_rules(eng, store, T0 + timedelta(hours=4))
    r5 = sp.run_rules(eng, store, T0 + timedelta(hours=5))
    (adv,) = [f for f in r5.fired if f.rule == "advance"]
    assert adv.outcomes[0].status == "failed"
    assert "on hold" in adv.outcomes[0].detail
    assert store.get_deal("D-2").stage == "lead"
    assert vetoed == ["D-2"]


def test_survey_rule_through_the_plugin_and_the_scan_agree(world: Any) -> None:
    sp, store, _ = world
    rules = RuleSet((Rule("detractor", Trigger("survey_below", {"survey": "nps", "threshold": 7}),
                          [_note()]),))
    eng = RuleEngine(rules)
    m = MemoryNotifier()
    plugin = AutomationPlugin(eng, store, {"m": m}, app=sp)
    sp.register(plugin)
    sp.record_survey_response(store, SurveyResponse("R-1", "nps", 3, T0 + timedelta(days=1), "acme", "D-1"))
    sp.record_survey_response(store, SurveyResponse("R-2", "nps", 9, T0 + timedelta(days=1), "acme", "D-1"))
    assert len(m.sent) == 1
    assert plugin.reports[0].fired[0].occurrence.key == "response:R-1"
    later = eng.run_due(T0 + timedelta(days=5), store, {"m": m})
    assert later.fired == ()
    assert later.already == 1
    assert len(m.sent) == 1


def test_outage_keeps_messages_until_a_later_run(world: Any) -> None:
    _, store, _ = world
    rules = RuleSet((Rule("hello", Trigger("deal_created"), [_note(), _note("manager")]),))
    eng = RuleEngine(rules)
    m = MemoryNotifier()
    m.fail_next = 1
    r = eng.run_due(T0 + timedelta(hours=1), store, {"m": m})
    assert r.sent == 1
    assert len(r.send_failures) == 1
    assert len(eng.pending(store)) == 1
    r2 = RuleEngine(rules).run_due(T0 + timedelta(hours=2), store, {"m": m})
    assert r2.fired == ()
    assert r2.sent == 1
    assert eng.pending(store) == []
    assert sorted(x.recipient.id for x in m.sent) == ["li", "wang"]
    assert {x.subject for x in m.sent} == {"提醒 D-1", "About D-1"}  # each in its own language


def test_risk_alert_and_goal_milestone_documents_trigger_rules(world: Any) -> None:
    _, store, _ = world
    store.put_document("risk_alert", "stalled|deal|D-1", {
        "rule": "stalled", "subject": "deal", "subject_id": "D-1", "active": True, "severity": "high",
        "score": "71", "raised_at": "2026-03-03T00:00:00+00:00", "times_raised": 1})
    store.put_document("goal_milestone", "g1", {"reached": ["0.5"]})
    rules = RuleSet((
        Rule("risk", Trigger("risk_alert", {"severity": "medium"}), [_note()]),
        Rule("risk-critical", Trigger("risk_alert", {"severity": "critical"}), [_note()]),
        Rule("goal", Trigger("goal_milestone", {"milestone": "0.5"}), [_note("li")]),
    ))
    fired = RuleEngine(rules).run_due(T0 + timedelta(days=2), store, dry_run=True).fired
    assert sorted(f.rule for f in fired) == ["goal", "risk"]
    (risk,) = [f for f in fired if f.rule == "risk"]
    assert risk.occurrence.deal_id == "D-1"
    assert risk.occurrence.account_id == "acme"


def test_conditions_compare_money_dates_and_lists(world: Any) -> None:
    _, store, _ = world

    def rule(*conds: Condition) -> RuleSet:
        return RuleSet((Rule("r", Trigger("deal_created"), [_note()], list(conds)),))

    def fires(*conds: Condition) -> bool:
        return bool(RuleEngine(rule(*conds)).run_due(T0 + timedelta(hours=1), store, dry_run=True).fired)

    assert fires(Condition("deal.amount", ">=", "200000"))
    assert fires(Condition("deal.amount", ">", "199999.99 CNY"))
    assert not fires(Condition("deal.amount", ">", "1 USD"))
    assert fires(Condition("deal.close_date", "<", "2026-05-01"))
    assert fires(Condition("account.industry", "in", ["retail", "manufacturing"]))
    assert not fires(Condition("account.industry", "not_in", ["manufacturing"]))
    assert fires(Condition("deal.lost_reason", "missing"))
    assert fires(Condition("deal.probability", "==", Decimal("0.05")))
    assert fires(Condition("rep.language", "==", "zh"))
