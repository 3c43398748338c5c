"""Zoho adapter and fake: what the conformance kit does not cover — v8 paging past 2,000 records,
If-Modified-Since, token refresh, 207 rows, credits and 429, Blueprint into the process and
stage changes through Blueprint transitions, Chinese stage names end to end.

Everything runs in-process (the fake as an httpx transport, rate limits on a manual clock).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from salesprocess import MemoryStore, Money, SalesProcess
from salesprocess.errors import AdapterError, AuthError, DomainError, RateLimited
from salesprocess.model import DealWon, EventSource
from salesprocess.process import StageKind
from salesprocess.sync import (
    ManualClock,
    ObjectKind,
    PushItem,
    RetryPolicy,
    StageMapping,
    SyncEngine,
    propose,
)
from salesprocess_adapters.fakes import ZohoFake
from salesprocess_adapters.zoho import ZohoAdapter, parse_zoho_time

TOKEN = "1000.fake-zoho-access-token"
REFRESH = "1000.fake-zoho-refresh-token"
STAGES = ["初步接洽", "需求确定", "方案报价", "谈判审核", "赢单", "输单"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> ZohoFake:
    return ZohoFake(monotonic=clock.now)


def make_adapter(fake: ZohoFake, clock: ManualClock, **kw: Any) -> ZohoAdapter:
    opts: dict[str, Any] = {
        "base_url": "http://zoho.fake", "accounts_url": "http://zoho.fake", "token": TOKEN,
        "refresh_token": REFRESH, "client_id": "1000.FAKECLIENTID", "client_secret": "fake-zoho-client-secret",
        "transport": fake.transport(), "clock": clock.now, "sleep": clock.sleep,
        "retry": RetryPolicy(attempts=4, base=0.1), "seed": 3,
    }
    opts.update(kw)
    return ZohoAdapter(**opts)


def engine(fake: ZohoFake, clock: ManualClock, **kw: Any) -> SyncEngine:
    ad = kw.pop("adapter", None) or make_adapter(fake, clock)
    kw.setdefault("kinds", (ObjectKind.DEALS,))
    return SyncEngine(kw.pop("store", None) or MemoryStore(), ad, connection="zoho", currency="CNY", **kw)


@pytest.fixture
def raw(fake: ZohoFake) -> Iterator[httpx.Client]:
    with httpx.Client(transport=fake.transport(), base_url="http://zoho.fake",
                      headers={"Authorization": f"Zoho-oauthtoken {TOKEN}"}) as c:
        yield c


# ------------------------------------------------------------------------------------------------
# The fake follows the v8 contract
# ------------------------------------------------------------------------------------------------


def test_auth_scheme_and_error_shape(raw: httpx.Client) -> None:
    r = raw.get("/crm/v8/Deals", params={"fields": "Deal_Name"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 401
    assert r.json() == {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}
    r = raw.get("/crm/v8/Deals")
    assert r.status_code == 400
    assert r.json()["code"] == "REQUIRED_PARAM_MISSING"
    assert r.json()["details"] == {"param_name": "fields"}
    r = raw.get("/crm/v8/Deals", params={"fields": ",".join(f"F{i}" for i in range(51))})
    assert r.json()["code"] == "LIMIT_EXCEEDED"


def test_empty_module_is_204_and_nothing_newer_is_304(fake: ZohoFake, raw: httpx.Client) -> None:
    r = raw.get("/crm/v8/Deals", params={"fields": "Deal_Name"})
    assert (r.status_code, r.content) == (204, b"")
    fake.create_deal("甲", "初步接洽")
    since = fake.now().isoformat()
    r = raw.get("/crm/v8/Deals", params={"fields": "Deal_Name"}, headers={"If-Modified-Since": since})
    assert r.status_code == 304
    r = raw.get("/crm/v8/Deals", params={"fields": "Deal_Name,Modified_Time"},
                headers={"If-Modified-Since": (fake.now() - timedelta(seconds=1)).isoformat()})
    assert r.status_code == 200
    row = r.json()["data"][0]
    assert row["Deal_Name"] == "甲"
    assert row["Modified_Time"].endswith("+08:00"), "times come in the organisation's time zone"


def test_page_numbers_stop_at_2000_and_page_tokens_are_bound_to_the_query(fake: ZohoFake, raw: httpx.Client) -> None:
    fake.discrete_limit = 4
    for i in range(7):
        fake.create_deal(f"D{i}", "初步接洽")
    q = {"fields": "Deal_Name", "per_page": 2, "sort_by": "Modified_Time", "sort_order": "asc"}
    first = raw.get("/crm/v8/Deals", params={**q, "page": 1}).json()
    assert first["info"]["more_records"] is True
    assert first["info"]["next_page_token"]
    r = raw.get("/crm/v8/Deals", params={**q, "page": 3})
    assert r.status_code == 400
    assert r.json()["code"] == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"
    assert r.json()["details"] == {"limit": 4}
    second = raw.get("/crm/v8/Deals", params={**q, "page_token": first["info"]["next_page_token"]}).json()
    assert [x["Deal_Name"] for x in second["data"]] == ["D2", "D3"]
    r = raw.get("/crm/v8/Deals", params={**q, "per_page": 3, "page_token": second["info"]["next_page_token"]})
    assert r.json()["code"] == "TOKEN_BOUND_DATA_MISMATCH"
    fake.expire_page_tokens()
    r = raw.get("/crm/v8/Deals", params={**q, "page_token": second["info"]["next_page_token"]})
    assert r.json()["code"] == "EXPIRED_VALUE"


def test_writes_report_each_row_and_207_for_mixed_results(fake: ZohoFake, raw: httpx.Client) -> None:
    fake.reject_names("坏")
    r = raw.post("/crm/v8/Deals", json={"data": [
        {"Deal_Name": "好", "Stage": "初步接洽", "Closing_Date": "2026-05-01"},
        {"Deal_Name": "坏的", "Stage": "初步接洽", "Closing_Date": "2026-05-01"},
        {"Deal_Name": "缺日期", "Stage": "初步接洽"},
    ]})
    assert r.status_code == 207
    rows = r.json()["data"]
    assert [x["status"] for x in rows] == ["success", "error", "error"]
    assert rows[0]["details"]["id"] in fake.deal_ids()
    assert rows[1]["details"]["api_name"] == "Deal_Name"
    assert (rows[2]["code"], rows[2]["details"]["api_name"]) == ("MANDATORY_NOT_FOUND", "Closing_Date")
    r = raw.post("/crm/v8/Deals", json={"data": [{"Deal_Name": "x"}] * 101})
    assert (r.status_code, r.json()["code"]) == (400, "LIMIT_EXCEEDED")


def test_a_stage_under_a_blueprint_changes_only_through_transitions(fake: ZohoFake, raw: httpx.Client) -> None:
    rid = fake.create_deal("蓝图", "初步接洽", amount="100")
    r = raw.put("/crm/v8/Deals", json={"data": [{"id": rid, "Stage": "需求确定"}]})
    assert r.status_code == 400
    assert r.json()["data"][0]["details"]["api_name"] == "Stage"
    bp = raw.get(f"/crm/v8/Deals/{rid}/actions/blueprint").json()["blueprint"]
    assert bp["process_info"]["field_value"] == "初步接洽"
    nexts = {t["next_field_value"]: t for t in bp["transitions"]}
    assert set(nexts) == {"需求确定", "输单"}
    r = raw.put(f"/crm/v8/Deals/{rid}/actions/blueprint",
                json={"blueprint": [{"transition_id": nexts["需求确定"]["id"], "data": {}}]})
    assert r.json() == {"code": "SUCCESS", "status": "success", "message": "transition updated successfully",
                        "details": {}}
    assert fake.get_deal(rid)["stage"] == "需求确定"
    r = raw.put(f"/crm/v8/Deals/{rid}/actions/blueprint",
                json={"blueprint": [{"transition_id": nexts["需求确定"]["id"], "data": {}}]})
    assert (r.status_code, r.json()["message"]) == (400, "invalid transition")
    assert fake.stage_history(rid) == ["初步接洽", "需求确定"]


# ------------------------------------------------------------------------------------------------
# Pull
# ------------------------------------------------------------------------------------------------


def test_pull_pages_past_2000_records_with_page_tokens(fake: ZohoFake, clock: ManualClock) -> None:
    fake.clock.step = timedelta(milliseconds=250)  # four deals a second: equal Modified_Time values
    with fake._lock:
        for i in range(2150):
            fake.create_deal(f"D{i}", "初步接洽", amount=Decimal(i))
    eng = engine(fake, clock, adapter=make_adapter(fake, clock, history=False))
    before = fake.status_counts["200"]
    s = eng.pull()
    assert (s.created, s.failed) == (2150, 0)
    assert fake.status_counts["200"] - before >= 11, "ten numbered pages, then tokens"
    assert {d.name for d in eng.store.deals()} == {f"D{i}" for i in range(2150)}
    s2 = eng.pull()
    assert (s2.fetched, s2.created, s2.updated) == (0, 0, 0)


def test_not_modified_is_an_empty_page(fake: ZohoFake, clock: ManualClock) -> None:
    fake.create_deal("D", "初步接洽")
    later = (fake.now() + timedelta(hours=1)).isoformat()
    pages = list(make_adapter(fake, clock).pull("deals", {"ts": later, "ids": []}))
    assert fake.status_counts["304"] == 1
    assert [p.records for p in pages] == [()]
    assert pages[-1].cursor["ts"] == later, "the cursor does not move back"


def test_incremental_pull_sends_if_modified_since_and_reads_only_changes(fake: ZohoFake, clock: ManualClock) -> None:
    ids = [fake.create_deal(f"D{i}", "初步接洽") for i in range(5)]
    seen_headers: list[str | None] = []
    eng = engine(fake, clock)
    eng.pull()
    inner = fake.handle

    def spy(req: Any) -> Any:
        if req.path == "/crm/v8/Deals":
            seen_headers.append(req.headers.get("if-modified-since"))
        return inner(req)

    fake.handle = spy  # type: ignore[method-assign]
    fake.update_deal(ids[1], name="改名")
    s = eng.pull()
    assert (s.fetched, s.updated, s.created) == (1, 1, 0)
    assert seen_headers
    assert all(h is not None for h in seen_headers)
    sent = parse_zoho_time(seen_headers[0])
    assert sent is not None
    assert sent < fake.get_deal(ids[1])["modified"], "the header asks for everything after the cursor"


def test_records_changed_while_listed_are_not_lost(fake: ZohoFake, clock: ManualClock) -> None:
    ids = [fake.create_deal(f"D{i}", "初步接洽") for i in range(9)]
    changed: list[str] = []

    def edit(module: str, page: int) -> None:
        if module == "Deals" and page == 2 and not changed:
            changed.append(ids[0])
            fake.update_deal(ids[0], name="改了")  # D0 jumps to the end; D3 slides onto page 1

    fake.on_list = edit
    eng = engine(fake, clock, adapter=make_adapter(fake, clock, page_size=3, history=False))
    s = eng.pull()
    assert changed
    assert s.created == 9, "the record that slid onto an earlier page was listed again"
    assert eng.store.find_deal("zoho", ids[0]).name == "改了"  # type: ignore[union-attr]
    assert eng.store.find_deal("zoho", ids[3]) is not None


def test_an_expired_page_token_restarts_from_the_cursor(fake: ZohoFake, clock: ManualClock) -> None:
    fake.discrete_limit = 4
    ids = [fake.create_deal(f"D{i}", "初步接洽") for i in range(10)]

    def expire(module: str, page: int) -> None:
        if page >= 3:
            fake.expire_page_tokens()

    fake.on_list = expire
    eng = engine(fake, clock, adapter=make_adapter(fake, clock, page_size=2, history=False, discrete_limit=4))
    s = eng.pull()
    fake.on_list = None
    assert (s.created, s.failed) == (10, 0)
    assert {d.external_ids["zoho"] for d in eng.store.deals()} == set(ids)


def test_stage_history_in_chinese_becomes_events(fake: ZohoFake, clock: ManualClock) -> None:
    rid = fake.create_deal("华东制造", "初步接洽", amount="480000.50")
    for st in ("需求确定", "方案报价", "谈判审核", "赢单"):
        fake.advance(3600)
        fake.update_deal(rid, stage=st)
    eng = engine(fake, clock)
    eng.pull()
    d = eng.store.find_deal("zoho", rid)
    assert d is not None
    assert [getattr(e, "to_stage", None) for e in d.events[1:]] == ["需求确定", "方案报价", "谈判审核", "赢单"]
    assert isinstance(d.events[-1], DealWon)
    assert all(e.source is EventSource.CRM_SYNC for e in d.events)
    assert d.amount == Money("480000.50", "CNY")


def test_accounts_and_contacts_are_pulled_and_linked(fake: ZohoFake, clock: ManualClock) -> None:
    acc = fake.create_account("华东制造有限公司", industry="制造业", country="中国")
    fake.create_contact("伟", "王", email="wang@example.cn", account=acc)
    rid = fake.create_deal("ERP", "初步接洽", account=acc)
    eng = engine(fake, clock, kinds=None)
    s = eng.pull()
    assert s.by_kind["accounts"]["created"] == 1
    assert s.by_kind["contacts"]["created"] == 1
    d = eng.store.find_deal("zoho", rid)
    assert d is not None
    assert d.account_id == f"zoho-{acc}"


# ------------------------------------------------------------------------------------------------
# Tokens, credits and throttling
# ------------------------------------------------------------------------------------------------


def test_expired_token_is_refreshed_once(fake: ZohoFake, clock: ManualClock) -> None:
    fake.create_deal("D", "初步接洽")
    ad = make_adapter(fake, clock)
    fake.expire_tokens()
    assert engine(fake, clock, adapter=ad).pull().created == 1
    assert ad.http.refreshes == 1


def test_without_a_token_the_adapter_fetches_one(fake: ZohoFake, clock: ManualClock) -> None:
    fake.create_deal("D", "初步接洽")
    ad = make_adapter(fake, clock, token=None)
    assert engine(fake, clock, adapter=ad).pull().created == 1
    assert ad.http.refreshes == 0
    assert ad.http.has_token


def test_a_refused_refresh_token_is_an_auth_error_even_with_http_200(fake: ZohoFake, clock: ManualClock) -> None:
    ad = make_adapter(fake, clock, refresh_token="1000.wrong")
    fake.expire_tokens()
    with pytest.raises(AuthError) as ei:
        ad.pipelines()
    assert ei.value.vendor_code == "invalid_code"
    assert "1000.wrong" not in str(ei.value)


def test_too_many_requests_is_retried_after_the_wait_zoho_names(fake: ZohoFake, clock: ManualClock) -> None:
    for i in range(4):
        fake.create_deal(f"D{i}", "初步接洽")
    fake.set_rate_limit((3, 60.0))
    ad = make_adapter(fake, clock, rate_limit=None, history=False, page_size=1,
                      retry=RetryPolicy(attempts=6, base=0.01))
    s = engine(fake, clock, adapter=ad).pull()
    assert s.created == 4
    assert fake.status_counts["429"] >= 1
    waits = [w for w in clock.slept if w >= 1]
    assert waits
    assert all(50 <= w <= 60 for w in waits), "the adapter waited what details.retry_after said"


def test_the_limiter_counts_a_write_s_credits(fake: ZohoFake, clock: ManualClock) -> None:
    ad = make_adapter(fake, clock, rate_limit=(1000, 86400.0))
    items = [PushItem(f"L{i}", None, {"name": f"N{i}", "stage": "初步接洽", "close_date": date(2026, 5, 1)})
             for i in range(25)]
    results = ad.push(items)
    assert all(r.ok and r.created for r in results)
    assert ad.http.limiter is not None
    assert len(ad.http.limiter._calls) == 3, "25 records cost three credits"


def test_daily_credits_spent_end_in_a_typed_error(fake: ZohoFake, clock: ManualClock) -> None:
    fake.create_deal("D", "初步接洽")
    fake.set_rate_limit((1, 86400.0))
    ad = make_adapter(fake, clock, history=False, retry=RetryPolicy(attempts=2, base=0.01, max_wait=1.0))
    ad.layout_id = fake.layout["id"]
    ad.http.request("GET", "/crm/v8/settings/layouts", params={"module": "Deals"})
    with pytest.raises(RateLimited) as ei:
        ad.pipelines()
    assert ei.value.vendor_code == "TOO_MANY_REQUESTS"
    assert ei.value.retry_after is not None
    assert ei.value.retry_after > 80000


# ------------------------------------------------------------------------------------------------
# Pipelines and Blueprint into the process; Chinese names end to end
# ------------------------------------------------------------------------------------------------


def test_the_blueprint_becomes_the_process_moves_and_entry_criteria(fake: ZohoFake, clock: ManualClock) -> None:
    ad = make_adapter(fake, clock)
    (pl,) = ad.pipelines()
    assert pl.id == "标准销售流程"
    assert [s.id for s in pl.stages] == STAGES
    assert pl.transitions is not None
    proposal = propose([pl], source="zoho")
    assert proposal.notes == ()
    (proc,) = proposal.processes
    assert [s.key for s in proc.stages] == STAGES, "Chinese stage names are the keys"
    assert [s.name for s in proc.stages] == STAGES
    assert [s.kind for s in proc.stages][-2:] == [StageKind.WON, StageKind.LOST]
    assert proc.stage("需求确定").probability.value == Decimal("0.3")
    moves = {(t.source, t.target) for t in proc.effective_transitions()}
    assert ("初步接洽", "需求确定") in moves
    assert ("初步接洽", "方案报价") not in moves, "the Blueprint has no such transition"
    assert ("谈判审核", "赢单") in moves
    assert ("需求确定", "赢单") not in moves
    # a forward transition's mandatory fields: exit criteria of its source (checked on forward moves)
    assert proc.stage("需求确定").exit.fields == ("amount",)
    assert proc.stage("方案报价").exit.fields == ("close_date",)
    assert proc.stage("谈判审核").exit.fields == ("amount", "close_date")
    assert not proc.stage("方案报价").entry, "going back into 方案报价 needs nothing"
    named = {(t.source, t.target): t.name for t in proc.effective_transitions()}
    assert named[("需求确定", "方案报价")] == "提交方案"


def test_the_process_refuses_a_move_zoho_would_refuse(fake: ZohoFake, clock: ManualClock) -> None:
    proc = propose(make_adapter(fake, clock).pipelines(), source="zoho").processes[0]
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    d = proc.open_deal("L1", at=at, actor="wang", name="无金额")
    d = proc.advance(d, "需求确定", at=at, actor="wang")
    problems = proc.check(d, "方案报价", at=at, actor="wang")
    assert problems
    assert all("amount" in (p.path + p.message) for p in problems)
    assert proc.check(d, "输单", at=at, actor="wang") == [], "losing the deal needs no amount"
    with pytest.raises(DomainError):
        proc.advance(d, "谈判审核", at=at, actor="wang")


def test_custom_mandatory_fields_become_custom_criteria(clock: ManualClock) -> None:
    fake = ZohoFake(monotonic=clock.now, blueprint=[("确认", ("初步接洽",), "需求确定", ("Next_Step",)),
                                                    ("赢", ("需求确定",), "赢单", ()),
                                                    ("输", ("初步接洽", "需求确定"), "输单", ())])
    proc = propose(make_adapter(fake, clock).pipelines(), source="zoho").processes[0]
    assert proc.stage("初步接洽").exit.fields == ("custom.Next_Step",)


def test_a_blueprint_that_leaves_stages_stranded_keeps_the_default_moves(clock: ManualClock) -> None:
    fake = ZohoFake(monotonic=clock.now, blueprint=[("只进不出", ("初步接洽",), "需求确定", ())])
    proposal = propose(make_adapter(fake, clock).pipelines(), source="zoho")
    proc = proposal.processes[0]
    assert ("需求确定", "方案报价") in {(t.source, t.target) for t in proc.effective_transitions()}


def test_chinese_stage_names_survive_pull_proposal_process_and_push(fake: ZohoFake, clock: ManualClock,
                                                                 tmp_path: Any) -> None:
    rid = fake.create_deal("华南分销", "初步接洽", amount="250000", close_date=date(2026, 9, 30))
    eng = engine(fake, clock)
    eng.pull()
    text = eng.mapping.to_toml()
    assert "初步接洽" in text
    (tmp_path / "m.toml").write_text(text, encoding="utf-8")
    again = StageMapping.from_toml(tmp_path / "m.toml")
    assert again == eng.mapping
    d = eng.store.find_deal("zoho", rid)
    assert d is not None
    assert d.stage == "初步接洽"
    proc = eng.process(d.process)
    assert proc.stage(d.stage).name == "初步接洽"
    at = max(d.updated_at, fake.now()) + timedelta(minutes=5)
    for target in ("需求确定", "方案报价", "谈判审核"):
        moved = proc.advance(d, target, at=at, actor="wang")
        eng.outbox.save_deal(moved, expected_version=d.version)
        d = moved
        at += timedelta(minutes=5)
        s = eng.push()
        assert (s.sent, s.failed) == (1, 0)
        assert fake.get_deal(rid)["stage"] == target
    assert fake.stage_history(rid) == ["初步接洽", "需求确定", "方案报价", "谈判审核"]
    s = eng.pull()
    assert (s.updated, s.failed, s.bypasses) == (0, 0, 0)
    assert eng.store.find_deal("zoho", rid).stage == "谈判审核"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------------
# Push through Blueprint transitions
# ------------------------------------------------------------------------------------------------


def _blueprint_puts(fake: ZohoFake) -> list[str]:
    calls: list[str] = []
    inner = fake.handle

    def spy(req: Any) -> Any:
        if req.method == "PUT" and req.path.endswith("/actions/blueprint"):
            calls.append(req.body.decode())
        return inner(req)

    fake.handle = spy  # type: ignore[method-assign]
    return calls


def test_a_jump_is_made_as_a_chain_of_transitions_with_their_mandatory_values(fake: ZohoFake,
                                                                              clock: ManualClock) -> None:
    rid = fake.create_deal("跳跃", "初步接洽", amount=None, close_date=date(2026, 6, 30))
    ad = make_adapter(fake, clock)
    puts = _blueprint_puts(fake)
    (res,) = ad.push([PushItem("L1", rid, {"stage": "谈判审核", "amount": Decimal("88000.10")})])
    assert res.ok, res.message
    assert len(puts) == 3
    assert '"Amount":88000.10' in puts[1], "the amount goes with the transition that needs it"
    assert fake.get_deal(rid)["amount"] == Decimal("88000.10")
    assert fake.stage_history(rid)[-3:] == ["需求确定", "方案报价", "谈判审核"]


def test_a_missing_mandatory_value_fails_the_record_not_the_rules(fake: ZohoFake, clock: ManualClock) -> None:
    rid = fake.create_deal("无金额", "需求确定", amount=None)
    eng = engine(fake, clock)
    eng.pull()
    d = eng.store.find_deal("zoho", rid)
    assert d is not None
    at = max(d.updated_at, fake.now()) + timedelta(minutes=1)
    # the local side forces the move (as an import would); Zoho's rules still hold
    from salesprocess.model import StageChanged

    forced = d.append(StageChanged(d.id, at, "wang", EventSource.USER, "需求确定", "方案报价", None, None, None, None))
    eng.outbox.save_deal(forced, expected_version=d.version)
    eng.max_attempts = 1
    s = eng.push()
    assert s.failed == 1
    (f,) = s.failures
    assert f.code == "MANDATORY_NOT_FOUND"
    assert f.parked
    entry = eng.outbox.get(d.id)
    assert entry is not None
    assert entry.error is not None
    assert entry.error["fields"] == ["Amount"]
    assert fake.get_deal(rid)["stage"] == "需求确定"


def test_no_chain_of_transitions_fails_with_no_transition(clock: ManualClock) -> None:
    fake = ZohoFake(monotonic=clock.now, blueprint=[("前进", ("初步接洽",), "需求确定", ()),
                                                    ("赢", ("需求确定",), "赢单", ()),
                                                    ("输", ("初步接洽", "需求确定"), "输单", ())])
    rid = fake.create_deal("回不去", "赢单")
    (res,) = make_adapter(fake, clock).push([PushItem("L1", rid, {"stage": "初步接洽"})])
    assert (res.ok, res.code, res.retriable) == (False, "NO_TRANSITION", False)
    assert fake.get_deal(rid)["stage"] == "赢单"


def test_a_record_outside_the_blueprint_moves_by_a_plain_update(clock: ManualClock) -> None:
    fake = ZohoFake(monotonic=clock.now, blueprint=None)
    rid = fake.create_deal("自由", "初步接洽")
    puts = _blueprint_puts(fake)
    (res,) = make_adapter(fake, clock).push([PushItem("L1", rid, {"stage": "谈判审核"})])
    assert res.ok
    assert puts == []
    assert fake.get_deal(rid)["stage"] == "谈判审核"


def test_push_results_are_per_record(fake: ZohoFake, clock: ManualClock) -> None:
    fake.reject_names("拒")
    ok = fake.create_deal("已有", "初步接洽")
    items = [
        PushItem("L1", None, {"name": "新的", "stage": "初步接洽", "close_date": date(2026, 5, 1)}),
        PushItem("L2", None, {"name": "拒绝我", "stage": "初步接洽", "close_date": date(2026, 5, 1)}),
        PushItem("L3", ok, {"amount": Decimal("12.30")}),
        PushItem("L4", ok + "9", {"amount": Decimal("1")}),
    ]
    res = make_adapter(fake, clock).push(items)
    assert [r.ok for r in res] == [True, False, True, False]
    assert res[0].created
    assert res[0].remote_id in fake.deal_ids()
    assert res[1].fields == ("Deal_Name",)
    assert fake.get_deal(ok)["amount"] == Decimal("12.30")
    assert fake.get_deal(res[0].remote_id or "")["local_id"] == "L1"


def test_a_retried_create_of_a_deal_under_a_blueprint_moves_it_there(fake: ZohoFake, clock: ManualClock) -> None:
    ad = make_adapter(fake, clock)
    (first,) = ad.push([PushItem("L1", None, {"name": "一次", "stage": "初步接洽", "close_date": date(2026, 5, 1)})])
    (again,) = ad.push([PushItem("L1", None, {"name": "一次", "stage": "需求确定", "close_date": date(2026, 5, 1)})])
    assert again.ok
    assert again.remote_id == first.remote_id
    assert len(fake.deal_ids()) == 1
    assert fake.get_deal(first.remote_id or "")["stage"] == "需求确定"


# ------------------------------------------------------------------------------------------------
# Plugin registration and configuration
# ------------------------------------------------------------------------------------------------


def test_registered_as_a_crm_adapter_with_typed_option_errors(fake: ZohoFake) -> None:
    sp = SalesProcess()
    spec = sp.adapter("crm", "zoho")
    a = spec.factory({"token": TOKEN, "base_url": "http://zoho.fake", "rate_limit": "5000/86400s",
                      "transport": fake.transport()})
    assert isinstance(a, ZohoAdapter)
    assert a.http.limiter is not None
    assert (a.http.limiter.max_calls, a.http.limiter.period) == (5000, 86400.0)
    assert a.pipelines()[0].id == "标准销售流程"
    a.close()
    with pytest.raises(AdapterError, match="page_sizes"):
        spec.factory({"token": TOKEN, "page_sizes": 3})
    with pytest.raises(AuthError):
        spec.factory({"base_url": "http://zoho.fake"})
