"""纷享销客 (Fxiaoke) adapter and fake: what the conformance kit does not cover — errors inside
HTTP 200, corpAccessToken expiry (20016) and refresh, epoch-millisecond times and dates, money as
exact strings, offset paging past the 10,000 cap, per-interface limits, creates that never
duplicate, and Chinese stage names end to end.

Everything runs in-process (the fake as an httpx transport, rate limits on a manual clock).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesprocess import MemoryStore, Money, SalesProcess
from salesprocess.errors import AdapterError, AuthError, RateLimited
from salesprocess.sync import (
    ManualClock,
    ObjectKind,
    PushItem,
    RetryPolicy,
    StageMapping,
    SyncEngine,
    propose,
)
from salesprocess_adapters.fakes import FxiaokeFake
from salesprocess_adapters.fakes.fxiaoke import epoch_ms
from salesprocess_adapters.fxiaoke import FxiaokeAdapter, from_ms, to_ms

APP = {"app_id": "FSAID_fake0001", "app_secret": "fake-fxiaoke-app-secret",
       "permanent_code": "fake-fxiaoke-permanent-code", "corp_id": "FSCID_FAKE0001", "user_id": "FSUID_FAKE0001"}
STAGES = ["初步接洽", "需求确定", "方案报价", "谈判审核", "赢单", "输单"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> FxiaokeFake:
    return FxiaokeFake(monotonic=clock.now)


def make_adapter(fake: FxiaokeFake, clock: ManualClock, **kw: Any) -> FxiaokeAdapter:
    opts: dict[str, Any] = {
        **APP, "base_url": "http://fxiaoke.fake", "transport": fake.transport(), "clock": clock.now,
        "sleep": clock.sleep, "retry": RetryPolicy(attempts=4, base=0.1), "seed": 5,
    }
    opts.update(kw)
    return FxiaokeAdapter(**opts)


def engine(fake: FxiaokeFake, clock: ManualClock, **kw: Any) -> SyncEngine:
    ad = kw.pop("adapter", None) or make_adapter(fake, clock)
    kw.setdefault("kinds", (ObjectKind.DEALS,))
    return SyncEngine(kw.pop("store", None) or MemoryStore(), ad, connection="fx", currency="CNY", **kw)


@pytest.fixture
def raw(fake: FxiaokeFake) -> Iterator[httpx.Client]:
    with httpx.Client(transport=fake.transport(), base_url="http://fxiaoke.fake") as c:
        yield c


def token(raw: httpx.Client) -> str:
    ans = raw.post("/cgi/corpAccessToken/get/V2", json={"appId": APP["app_id"], "appSecret": APP["app_secret"],
                                                        "permanentCode": APP["permanent_code"]}).json()
    assert ans["errorCode"] == 0
    return str(ans["corpAccessToken"])


def body(tok: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"corpAccessToken": tok, "corpId": APP["corp_id"], "currentOpenUserId": APP["user_id"], "data": data}


# ------------------------------------------------------------------------------------------------
# The fake follows what public material says
# ------------------------------------------------------------------------------------------------


def test_errors_arrive_inside_http_200(fake: FxiaokeFake, raw: httpx.Client) -> None:
    r = raw.post("/cgi/crm/v2/nothing/here", json={})
    assert r.status_code == 200
    assert r.json()["errorCode"] == 10006
    r = raw.post("/cgi/crm/v2/data/query", json={"data": {"dataObjectApiName": "NewOpportunityObj"}})
    assert (r.status_code, r.json()["errorCode"]) == (200, 10013)
    r = raw.post("/cgi/crm/v2/data/query", json=body("nope", {"dataObjectApiName": "NewOpportunityObj"}))
    assert r.json()["errorCode"] == 20016
    assert r.json()["traceId"]
    bad = raw.post("/cgi/corpAccessToken/get/V2", json={"appId": APP["app_id"], "appSecret": "x",
                                                        "permanentCode": APP["permanent_code"]}).json()
    assert bad["errorCode"] == 20006


def test_the_same_token_comes_back_until_it_nears_expiry(fake: FxiaokeFake, clock: ManualClock,
                                                          raw: httpx.Client) -> None:
    first = token(raw)
    clock.advance(6000)
    assert token(raw) == first
    clock.advance(700)
    assert token(raw) != first


def test_times_are_epoch_ms_and_money_strings(fake: FxiaokeFake, raw: httpx.Client) -> None:
    rid = fake.create_deal("华东制造", "方案报价", amount="480000.5", close_date=date(2026, 6, 1))
    ans = raw.post("/cgi/crm/v2/data/get", json=body(token(raw), {"dataObjectApiName": "NewOpportunityObj",
                                                                  "objectDataId": rid})).json()
    d = ans["data"]["data"]
    assert d["amount"] == "480000.50"
    assert d["sales_stage"] == "3"
    assert isinstance(d["last_modified_time"], int)
    assert d["close_date"] == epoch_ms(datetime(2026, 5, 31, 16, tzinfo=UTC)), "midnight in Shanghai"
    assert d["version"] == "1"


def test_offsets_past_the_cap_are_refused(fake: FxiaokeFake, raw: httpx.Client) -> None:
    ans = raw.post("/cgi/crm/v2/data/query", json=body(token(raw), {
        "dataObjectApiName": "NewOpportunityObj", "search_query_info": {"offset": 10001, "limit": 100}})).json()
    assert ans["errorCode"] == 10013
    assert "10000" in ans["errorMessage"]


# ------------------------------------------------------------------------------------------------
# Pull
# ------------------------------------------------------------------------------------------------


def test_chinese_stages_money_and_dates_arrive_exact(fake: FxiaokeFake, clock: ManualClock) -> None:
    rid = fake.create_deal("华南分销", "谈判审核", amount="1234567890123.45", close_date=date(2026, 12, 31))
    eng = engine(fake, clock)
    eng.pull()
    d = eng.store.find_deal("fx", rid)
    assert d is not None
    assert d.stage == "谈判审核"
    assert eng.process(d.process).stage(d.stage).name == "谈判审核"
    assert d.amount == Money("1234567890123.45", "CNY")
    assert d.close_date == date(2026, 12, 31)
    assert d.owner_id == "1000"


def test_incremental_pull_filters_on_last_modified_time(fake: FxiaokeFake, clock: ManualClock) -> None:
    ids = [fake.create_deal(f"D{i}", "初步接洽") for i in range(4)]
    eng = engine(fake, clock)
    eng.pull()
    sent: list[Any] = []
    inner = fake.handle

    def spy(req: Any) -> Any:
        if req.path == "/cgi/crm/v2/data/query":
            sent.append(req.json()["data"]["search_query_info"]["filters"])
        return inner(req)

    fake.handle = spy  # type: ignore[method-assign]
    fake.update_deal(ids[2], amount="99.90")
    s = eng.pull()
    assert (s.fetched, s.updated) == (1, 1)
    flt = sent[0][0]
    assert (flt["field_name"], flt["operator"]) == ("last_modified_time", "GTE")
    assert flt["field_values"][0] <= fake.get_deal(ids[2])["modified"]


def test_offset_paging_goes_past_the_cap_by_restarting_from_the_cursor(clock: ManualClock) -> None:
    fake = FxiaokeFake(monotonic=clock.now, offset_cap=6)
    ids = [fake.create_deal(f"D{i}", "初步接洽") for i in range(25)]
    eng = engine(fake, clock, adapter=make_adapter(fake, clock, page_size=3, offset_cap=6))
    s = eng.pull()
    assert (s.created, s.failed) == (25, 0)
    assert {d.external_ids["fx"] for d in eng.store.deals()} == set(ids)


def test_an_instant_holding_more_records_than_a_query_reaches_is_drained_by_id(clock: ManualClock) -> None:
    fake = FxiaokeFake(monotonic=clock.now, offset_cap=3)
    fake.create_deal("before", "初步接洽")
    fake.freeze()
    tied = [fake.create_deal(f"T{i}", "初步接洽") for i in range(11)]
    fake.freeze(False)
    after = fake.create_deal("after", "初步接洽")
    eng = engine(fake, clock, adapter=make_adapter(fake, clock, page_size=3, offset_cap=3))
    s = eng.pull()
    assert (s.created, s.failed) == (13, 0)
    assert {d.external_ids["fx"] for d in eng.store.deals()} >= {*tied, after}
    assert eng.pull().created == 0


def test_records_changed_while_listed_are_not_lost(fake: FxiaokeFake, clock: ManualClock) -> None:
    ids = [fake.create_deal(f"D{i}", "初步接洽") for i in range(9)]
    done: list[bool] = []

    def edit(obj: str, offset: int) -> None:
        if obj == "NewOpportunityObj" and offset == 3 and not done:
            done.append(True)
            fake.update_deal(ids[0], name="改了")  # D0 moves to the end; D3 slides to offset 2

    fake.on_query = edit
    eng = engine(fake, clock, adapter=make_adapter(fake, clock, page_size=3))
    s = eng.pull()
    assert done
    assert s.created == 9
    assert eng.store.find_deal("fx", ids[3]) is not None
    assert eng.store.find_deal("fx", ids[0]).name == "改了"  # type: ignore[union-attr]


def test_invalidated_records_are_marked_archived(fake: FxiaokeFake, clock: ManualClock) -> None:
    rid = fake.create_deal("作废", "初步接洽")
    fake.update_deal(rid, life_status="invalid")
    (page,) = [p for p in make_adapter(fake, clock).pull("deals", None) if p.records]
    assert page.records[0].archived  # type: ignore[union-attr]


def test_two_processes_scope_their_own_stages(clock: ManualClock) -> None:
    fake = FxiaokeFake(monotonic=clock.now, processes=[
        ("P1", "直销流程", [("1", "初步接洽"), ("2", "方案报价"), ("5", "赢单"), ("6", "输单")]),
        ("P2", "渠道流程", [("7", "渠道报备"), ("8", "渠道签约"), ("5", "赢单"), ("6", "输单")]),
    ])
    pls = {p.id: p for p in make_adapter(fake, clock).pipelines()}
    assert [s.id for s in pls["P1"].stages] == ["初步接洽", "方案报价", "赢单", "输单"]
    assert [s.id for s in pls["P2"].stages] == ["渠道报备", "渠道签约", "赢单", "输单"]
    assert pls["P2"].label == "渠道流程"
    assert [s.won for s in pls["P2"].stages] == [False, False, True, False]
    assert [s.closed for s in pls["P2"].stages] == [False, False, True, True]
    proposal = propose(list(pls.values()), source="fx")
    assert len(proposal.processes) == 2
    rid = fake.create_deal("渠道", "渠道签约", process="P2")
    eng = engine(fake, clock)
    eng.pull()
    d = eng.store.find_deal("fx", rid)
    assert d is not None
    assert (d.process, d.stage) == ("fx-p2", "渠道签约")


# ------------------------------------------------------------------------------------------------
# Tokens, errors, limits
# ------------------------------------------------------------------------------------------------


def test_an_expired_token_is_fetched_again_once(fake: FxiaokeFake, clock: ManualClock) -> None:
    fake.create_deal("D", "初步接洽")
    ad = make_adapter(fake, clock)
    ad.pipelines()
    fake.expire_tokens()
    assert engine(fake, clock, adapter=ad).pull().created == 1
    assert ad.refreshes == 1


def test_the_token_is_renewed_before_it_expires(fake: FxiaokeFake, clock: ManualClock) -> None:
    ad = make_adapter(fake, clock)
    ad.pipelines()
    clock.advance(7000)
    before = fake.status_counts["requests"]
    ad.pipelines()
    assert ad.refreshes == 0, "no 20016 was needed"
    assert fake.status_counts["requests"] - before == 2, "a token fetch, then the call"


def test_a_fixed_token_that_expires_is_an_auth_error_without_leaking(fake: FxiaokeFake, clock: ManualClock) -> None:
    ad = make_adapter(fake, clock, token="FAKECORPTOKEN-stale", permanent_code=None)
    with pytest.raises(AuthError) as ei:
        ad.pipelines()
    assert ei.value.vendor_code == "20016"
    assert "FAKECORPTOKEN-stale" not in str(ei.value)
    assert "fake-fxiaoke-app-secret" not in repr(vars(ad))


def test_busy_and_gateway_errors_are_retried(fake: FxiaokeFake, clock: ManualClock) -> None:
    fake.create_deal("D", "初步接洽")
    eng = engine(fake, clock)
    eng.mapping  # noqa: B018
    fake.fail_next("5xx", 2)  # a 502 from the gateway, then errorCode -1
    assert eng.pull().created == 1
    assert fake.status_counts["502"] == 1


def test_per_interface_limits_keep_the_adapter_unthrottled(clock: ManualClock) -> None:
    fake = FxiaokeFake(monotonic=clock.now, rate_limit=(100, 20.0))
    fake.seed_deals(1200)
    ad = make_adapter(fake, clock, page_size=10)
    s = engine(fake, clock, adapter=ad).pull()
    assert s.created == 1200
    assert fake.status_counts["throttled"] == 0
    assert ad.throttled == 0
    q = ad.limiters["/cgi/crm/v2/data/query"]
    assert q.waited > 20, "121 queries at 100 per 20 s had to wait"
    assert "/cgi/crm/v2/data/create" not in ad.limiters, "each interface has its own budget"


def test_without_a_limiter_throttling_is_retried(clock: ManualClock) -> None:
    fake = FxiaokeFake(monotonic=clock.now, rate_limit=(3, 20.0))
    fake.seed_deals(20)
    ad = make_adapter(fake, clock, page_size=5, rate_limit=None, retry=RetryPolicy(attempts=8, base=4, cap=20))
    assert engine(fake, clock, adapter=ad).pull().created == 20
    assert fake.status_counts["throttled"] > 0
    assert ad.throttled == fake.status_counts["throttled"]


def test_a_spent_daily_quota_stops_with_a_typed_error(clock: ManualClock) -> None:
    fake = FxiaokeFake(monotonic=clock.now, daily_limit=2)
    fake.seed_deals(30)
    with pytest.raises(RateLimited) as ei:
        engine(fake, clock, adapter=make_adapter(fake, clock, page_size=5)).pull()
    assert ei.value.vendor_code == "30002"
    assert not ei.value.retriable


def test_headers_auth_sends_a_fresh_trace_id_each_call(fake: FxiaokeFake, clock: ManualClock) -> None:
    fake.create_deal("D", "初步接洽")
    traces: list[str | None] = []
    inner = fake.handle

    def spy(req: Any) -> Any:
        if req.path.startswith("/cgi/crm"):
            traces.append(req.arg("thirdTraceId"))
            assert "corpAccessToken" not in req.json()
        return inner(req)

    fake.handle = spy  # type: ignore[method-assign]
    assert engine(fake, clock, adapter=make_adapter(fake, clock, auth="headers")).pull().created == 1
    assert len(traces) >= 2
    assert None not in traces
    assert len(set(traces)) == len(traces)


# ------------------------------------------------------------------------------------------------
# Push
# ------------------------------------------------------------------------------------------------


def test_chinese_stage_names_survive_pull_proposal_process_and_push(fake: FxiaokeFake, clock: ManualClock,
                                                                 tmp_path: Any) -> None:
    rid = fake.create_deal("华北项目", "初步接洽", amount="30000")
    eng = engine(fake, clock)
    eng.pull()
    (tmp_path / "m.toml").write_text(eng.mapping.to_toml(), encoding="utf-8")
    assert StageMapping.from_toml(tmp_path / "m.toml") == eng.mapping
    d = eng.store.find_deal("fx", rid)
    assert d is not None
    proc = eng.process(d.process)
    assert [s.key for s in proc.stages] == STAGES
    moved = proc.advance(d, "需求确定", at=max(d.updated_at, fake.now()) + timedelta(minutes=1), actor="li")
    eng.outbox.save_deal(moved, expected_version=d.version)
    s = eng.push()
    assert (s.sent, s.updated, s.failed) == (1, 1, 0)
    assert fake.get_deal(rid)["stage"] == "需求确定"
    assert fake.tables["NewOpportunityObj"].rows[rid]["sales_stage"] == "2", "the option value is written"
    new = proc.open_deal("L-华东", at=fake.now() + timedelta(minutes=2), actor="li", name="新商机",
                         amount=Money("88000.80", "CNY"), close_date=date(2026, 10, 8))
    eng.outbox.save_deal(new, expected_version=None)
    s = eng.push()
    assert (s.sent, s.created, s.failed) == (1, 1, 0)
    rid2 = eng.store.get_deal("L-华东").external_ids["fx"]
    got = fake.get_deal(rid2)
    assert (got["stage"], got["amount"], got["close_date"], got["local_id"]) == (
        "初步接洽", Decimal("88000.80"), date(2026, 10, 8), "L-华东")


def test_stage_values_as_ids_keep_the_chinese_names(fake: FxiaokeFake, clock: ManualClock) -> None:
    ad = make_adapter(fake, clock, stage_key="value")
    (pl,) = ad.pipelines()
    assert [(s.id, s.label) for s in pl.stages] == list(zip("123456", STAGES, strict=True))
    proc = propose([pl], source="fx").processes[0]
    assert [s.name for s in proc.stages] == STAGES


def test_a_refused_record_fails_alone(fake: FxiaokeFake, clock: ManualClock) -> None:
    fake.reject_names("拒")
    items = [PushItem("L1", None, {"name": "好", "stage": "初步接洽"}),
             PushItem("L2", None, {"name": "拒绝", "stage": "初步接洽"}),
             PushItem("L3", None, {"name": "未知阶段", "stage": "不存在"})]
    res = make_adapter(fake, clock).push(items)
    assert [r.ok for r in res] == [True, False, False]
    assert res[1].code == "32000"
    assert not res[1].retriable
    assert res[2].fields == ("sales_stage",)
    assert len(fake.deal_ids()) == 1


@pytest.mark.parametrize("fault", ["truncated", "timeout", "5xx", "429"])
def test_a_create_whose_answer_is_lost_is_never_duplicated(fake: FxiaokeFake, clock: ManualClock,
                                                            fault: str) -> None:
    ad = make_adapter(fake, clock)
    ad.pipelines()
    ad.find(["warm-up"])
    fake.fail_next(fault, 1)
    (res,) = ad.push([PushItem("L1", None, {"name": "一次", "stage": "初步接洽"})])
    assert res.ok
    assert res.created
    assert fake.deal_ids() == [res.remote_id]
    (again,) = ad.push([PushItem("L1", None, {"name": "一次", "stage": "初步接洽"})])
    assert again.remote_id == res.remote_id, "a create sent again finds the first one"
    assert len(fake.deal_ids()) == 1


@settings(max_examples=40, deadline=None)
@given(
    cents=st.integers(0, 10**17),
    day=st.dates(date(1990, 1, 1), date(2100, 12, 31)),
)
def test_money_and_dates_round_trip_exactly(cents: int, day: date) -> None:
    clock = ManualClock()
    fake = FxiaokeFake(monotonic=clock.now)
    amount = Decimal(cents).scaleb(-2)
    ad = make_adapter(fake, clock)
    (res,) = ad.push([PushItem("L", None, {"name": "x", "stage": "初步接洽", "amount": amount, "close_date": day})])
    assert res.ok
    (page,) = [p for p in ad.pull("deals", None) if p.records]
    (rd,) = page.records
    assert rd.amount == amount  # type: ignore[union-attr]
    assert rd.close_date == day  # type: ignore[union-attr]


def test_ms_helpers() -> None:
    at = datetime(2026, 1, 5, 9, 0, 0, 123000, tzinfo=UTC)
    assert from_ms(to_ms(at)) == at
    assert from_ms(str(to_ms(at))) == at
    assert from_ms(None) is None


def test_registered_with_connection_style_options(fake: FxiaokeFake) -> None:
    spec = SalesProcess().adapter("crm", "fxiaoke")
    a = spec.factory({"client_id": APP["app_id"], "client_secret": APP["app_secret"],
                      "refresh_token": APP["permanent_code"], "user_id": APP["user_id"],
                      "base_url": "http://fxiaoke.fake", "transport": fake.transport(), "rate_limit": "100/20s"})
    assert isinstance(a, FxiaokeAdapter)
    assert a.pipelines()[0].stages[0].id == "初步接洽"
    assert a.corp_id == APP["corp_id"], "learnt from the token answer"
    a.close()
    with pytest.raises(AdapterError, match="user_id"):
        spec.factory({"client_id": "x", "client_secret": "y", "refresh_token": "z"})
    with pytest.raises(AdapterError, match="colour"):
        spec.factory({"client_id": "x", "client_secret": "y", "refresh_token": "z", "user_id": "u", "colour": 1})
