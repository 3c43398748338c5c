"""HubSpot adapter and fake: the vendor-specific behaviour the conformance kit does not cover.

Everything runs in-process (the fake as an httpx transport, rate limits on a manual clock).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from salesprocess import Account, Activity, ActivityKind, Contact, MemoryStore
from salesprocess.errors import AuthError, RateLimited, RemoteValidationError
from salesprocess.model import ProcessMigrated
from salesprocess.sync import (
    ManualClock,
    ObjectKind,
    PushItem,
    RetryPolicy,
    StageMapping,
    SyncEngine,
)
from salesprocess_adapters.fakes import HubSpotFake
from salesprocess_adapters.hubspot import HubSpotAdapter

TOKEN = "pat-na1-00000000-fake"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> HubSpotFake:
    return HubSpotFake(monotonic=clock.now, rate_limit=None, search_rate_limit=None)


def make_adapter(fake: HubSpotFake, clock: ManualClock, **kw: Any) -> HubSpotAdapter:
    opts: dict[str, Any] = {
        "base_url": "http://hubspot.fake", "token": TOKEN, "transport": fake.transport(),
        "clock": clock.now, "sleep": clock.sleep, "retry": RetryPolicy(attempts=4, base=0.1), "seed": 1,
        "rate_limit": None, "search_rate_limit": None,
    }
    opts.update(kw)
    return HubSpotAdapter(**opts)


@pytest.fixture
def raw(fake: HubSpotFake) -> Iterator[httpx.Client]:
    with httpx.Client(transport=fake.transport(), base_url="http://hubspot.fake",
                      headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def engine(fake: HubSpotFake, clock: ManualClock, store: Any = None, **kw: Any) -> SyncEngine:
    ad = kw.pop("adapter", None) or make_adapter(fake, clock)
    return SyncEngine(store or MemoryStore(), ad, connection="hs", **kw)


# ------------------------------------------------------------------------------------------------
# The fake follows the contract
# ------------------------------------------------------------------------------------------------


def test_fake_enforces_paging_and_batch_limits(fake: HubSpotFake, raw: httpx.Client) -> None:
    r = raw.get("/crm/v3/objects/deals", params={"limit": 101})
    assert r.status_code == 400
    body = r.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["status"] == "error"
    assert body["correlationId"]
    r = raw.post("/crm/v3/objects/deals/batch/upsert", json={"inputs": [
        {"id": f"x{i}", "idProperty": "salesprocess_id", "properties": {"dealname": "n"}} for i in range(101)]})
    assert r.status_code == 400
    assert "at most 100" in r.json()["message"]
    r = raw.post("/crm/v3/objects/deals/search", json={"limit": 201})
    assert r.status_code == 400
    assert raw.get("/crm/v3/objects/deals", headers={"Authorization": "Basic abc"}).status_code == 401


def test_fake_list_paging_shape_and_object_type_ids(fake: HubSpotFake, raw: httpx.Client) -> None:
    ids = [fake.create_deal(f"D{i}") for i in range(5)]
    r = raw.get("/crm/v3/objects/0-3", params={"limit": 2})
    assert r.status_code == 200
    body = r.json()
    assert [x["id"] for x in body["results"]] == ids[:2]
    nxt = body["paging"]["next"]["after"]
    assert nxt == ids[2]
    assert nxt in body["paging"]["next"]["link"]
    assert r.headers["X-HubSpot-RateLimit-Max"] if fake.window else True
    last = raw.get("/crm/v3/objects/deals", params={"limit": 2, "after": ids[4]}).json()
    assert [x["id"] for x in last["results"]] == [ids[4]]
    assert "paging" not in last
    p = body["results"][0]["properties"]
    assert set(p) >= {"dealname", "dealstage", "pipeline", "hs_lastmodifieddate", "hs_object_id"}


def test_fake_search_cap_refuses_paging_beyond_it(clock: ManualClock) -> None:
    fake = HubSpotFake(monotonic=clock.now, rate_limit=None, search_rate_limit=None, search_cap=50)
    for i in range(60):
        fake.create_deal(f"D{i}")
    with httpx.Client(transport=fake.transport(), base_url="http://x",
                      headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        r = c.post("/crm/v3/objects/deals/search", json={"limit": 100})
        assert len(r.json()["results"]) == 50
        assert r.json()["total"] == 60
        r = c.post("/crm/v3/objects/deals/search", json={"limit": 10, "after": "50"})
        assert r.status_code == 400
        assert r.json()["category"] == "VALIDATION_ERROR"


def test_fake_batch_207_lists_each_failed_record(fake: HubSpotFake, raw: httpx.Client) -> None:
    r = raw.post("/crm/v3/objects/deals/batch/upsert", json={"inputs": [
        {"id": "ok-1", "idProperty": "salesprocess_id", "properties": {"dealname": "A", "dealstage": "qualifiedtobuy"}},
        {"id": "bad-1", "idProperty": "salesprocess_id", "properties": {"dealname": "B", "dealstage": "nope"}},
        {"id": "bad-2", "idProperty": "salesprocess_id", "properties": {"dealname": "C", "amount": "ten"}},
    ]})
    assert r.status_code == 207
    body = r.json()
    assert body["numErrors"] == 2
    assert sorted(e["context"]["ids"][0] for e in body["errors"]) == ["bad-1", "bad-2"]
    assert {e["errors"][0]["in"] for e in body["errors"]} == {"dealstage", "amount"}
    (ok,) = body["results"]
    assert ok["new"] is True
    assert ok["properties"]["salesprocess_id"] == "ok-1"
    again = raw.post("/crm/v3/objects/deals/batch/upsert", json={"inputs": [
        {"id": "ok-1", "idProperty": "salesprocess_id", "properties": {"dealname": "A2"}}]}).json()
    assert again["results"][0]["new"] is False
    assert again["results"][0]["id"] == ok["id"]


def test_fake_stage_history_is_newest_first(fake: HubSpotFake, raw: httpx.Client) -> None:
    rid = fake.create_deal("H", "appointmentscheduled")
    fake.update_deal(rid, stage="qualifiedtobuy")
    fake.update_deal(rid, stage="contractsent")
    r = raw.get(f"/crm/v3/objects/deals/{rid}", params={"propertiesWithHistory": "dealstage"}).json()
    values = [h["value"] for h in r["propertiesWithHistory"]["dealstage"]]
    assert values == ["contractsent", "qualifiedtobuy", "appointmentscheduled"]


# ------------------------------------------------------------------------------------------------
# The adapter
# ------------------------------------------------------------------------------------------------


def test_pipelines_become_a_proposed_process(fake: HubSpotFake, clock: ManualClock) -> None:
    eng = engine(fake, clock)
    pm = eng.mapping.for_pipeline("default")
    assert pm is not None
    proc = eng.process(pm.process)
    assert proc.key == "hs-default"
    assert [s.key for s in proc.open_stages][:2] == ["appointmentscheduled", "qualifiedtobuy"]
    assert [s.key for s in proc.won_stages] == ["closedwon"]
    assert [s.key for s in proc.lost_stages] == ["closedlost"]
    assert proc.stage("contractsent").probability.value == Decimal("0.9")


def test_search_cap_is_handled_by_requerying_from_the_last_timestamp(clock: ManualClock) -> None:
    fake = HubSpotFake(monotonic=clock.now, rate_limit=None, search_rate_limit=None, search_cap=40)
    ids = [fake.create_deal(f"D{i}", amount="1") for i in range(130)]
    eng = engine(fake, clock, kinds=[ObjectKind.DEALS])
    assert eng.pull().created == 130
    for rid in ids:
        fake.update_deal(rid, amount="2")
    s = eng.pull()
    assert s.updated == 130
    assert fake.status_counts["400"] == 0, "the adapter paged past the search cap"
    assert all(d.amount is not None and d.amount.amount == 2 for d in eng.store.deals())


def test_a_timestamp_shared_by_more_records_than_a_search_page(fake: HubSpotFake, clock: ManualClock) -> None:
    ids = [fake.create_deal(f"D{i}", amount="1") for i in range(250)]
    eng = engine(fake, clock, kinds=[ObjectKind.DEALS])
    eng.pull()
    fake.advance(1)
    fake.freeze(True)
    for rid in ids:
        fake.update_deal(rid, amount="3")
    fake.freeze(False)
    s = eng.pull()
    assert s.updated == 250
    assert s.fetched == 250, "records at the page boundary were fetched twice"


def test_retry_after_is_honoured(clock: ManualClock) -> None:
    fake = HubSpotFake(monotonic=clock.now, rate_limit=(2, 1.0), search_rate_limit=None, retry_after=3)
    for i in range(5):
        fake.create_deal(f"D{i}")
    eng = engine(fake, clock, adapter=make_adapter(fake, clock, page_size=1), kinds=[ObjectKind.DEALS])
    assert eng.pull().created == 5
    assert fake.status_counts["throttled"] > 0
    assert 3.0 in clock.slept
    r = httpx.Client(transport=fake.transport(), base_url="http://x")
    for _ in range(3):
        resp = r.get("/crm/v3/objects/deals", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 429
    assert resp.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert resp.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert resp.headers["Retry-After"] == "3"


def test_without_retry_after_the_client_waits_the_interval(clock: ManualClock) -> None:
    fake = HubSpotFake(monotonic=clock.now, rate_limit=(2, 1.5), search_rate_limit=None)
    for i in range(4):
        fake.create_deal(f"D{i}")
    eng = engine(fake, clock, adapter=make_adapter(fake, clock, page_size=1), kinds=[ObjectKind.DEALS])
    assert eng.pull().created == 4
    assert 1.5 in clock.slept


def test_client_side_limiter_keeps_a_long_pull_under_the_limit(clock: ManualClock) -> None:
    fake = HubSpotFake(monotonic=clock.now, rate_limit=(10, 1.0), search_rate_limit=(5, 1.0))
    for i in range(120):
        fake.create_deal(f"D{i}")
    ad = make_adapter(fake, clock, page_size=5, rate_limit=(10, 1.0), search_rate_limit=(5, 1.0))
    eng = engine(fake, clock, adapter=ad)
    assert eng.pull().created == 120
    assert fake.status_counts["throttled"] == 0
    assert ad.http.calls >= 24


def test_daily_quota_stops_without_hammering(clock: ManualClock) -> None:
    fake = HubSpotFake(monotonic=clock.now, rate_limit=(100, 10.0), search_rate_limit=None, daily_limit=3)
    for i in range(10):
        fake.create_deal(f"D{i}")
    eng = engine(fake, clock, adapter=make_adapter(fake, clock, page_size=2), kinds=[ObjectKind.DEALS])
    with pytest.raises(RateLimited) as ei:
        eng.pull()
    assert ei.value.policy == "DAILY"
    assert ei.value.retriable is False
    assert fake.status_counts["429"] == 1, "a spent daily quota is not retried"


def test_expired_token_is_refreshed_once(fake: HubSpotFake, clock: ManualClock) -> None:
    fake.create_deal("D")
    ad = make_adapter(fake, clock, refresh_token="fake-refresh-token", client_id="fake-client-id",
                      client_secret="fake-client-secret")
    eng = engine(fake, clock, adapter=ad, kinds=[ObjectKind.DEALS])
    eng.mapping  # noqa: B018
    fake.fail_next("expired_token")
    assert eng.pull().created == 1
    assert ad.http.refreshes == 1


def test_expired_token_without_refresh_is_a_typed_auth_error(fake: HubSpotFake, clock: ManualClock) -> None:
    fake.create_deal("D")
    eng = engine(fake, clock, kinds=[ObjectKind.DEALS])
    eng.mapping  # noqa: B018
    fake.fail_next("expired_token")
    with pytest.raises(AuthError) as ei:
        eng.pull()
    assert ei.value.vendor_code == "EXPIRED_AUTHENTICATION"
    assert ei.value.request_id is not None
    assert ei.value.request_id.startswith("00000000-")
    assert TOKEN not in str(ei.value)


def test_a_refused_refresh_token_is_an_auth_error(fake: HubSpotFake, clock: ManualClock) -> None:
    ad = make_adapter(fake, clock, token="wrong", refresh_token="also-wrong", client_id="fake-client-id",
                      client_secret="fake-client-secret")
    with pytest.raises(AuthError, match="refresh token"):
        ad.pipelines()


def test_whole_batch_refusal_carries_code_and_correlation_id(fake: HubSpotFake, clock: ManualClock) -> None:
    ad = make_adapter(fake, clock)
    with pytest.raises(RemoteValidationError) as ei:
        ad.http.request("GET", "/crm/v3/objects/deals", params={"limit": 500})
    assert ei.value.vendor_code == "VALIDATION_ERROR"
    assert ei.value.status == 400
    assert ei.value.request_id
    with pytest.raises(ValueError, match="at most 100"):
        ad.push([PushItem(f"l{i}", None, {"name": "x"}) for i in range(101)])


def test_push_to_a_deal_deleted_in_the_crm_is_parked(fake: HubSpotFake, clock: ManualClock) -> None:
    rid = fake.create_deal("Gone soon", amount="5")
    eng = engine(fake, clock, kinds=[ObjectKind.DEALS])
    eng.pull()
    d = eng.store.find_deal("hs", rid)
    assert d is not None
    fake.archive("deals", rid)
    eng.outbox.save_deal(d.with_amount(None, at=d.updated_at, actor="me"), expected_version=d.version)
    s = eng.push()
    assert s.failed == 1
    assert s.parked == 1
    assert s.failures[0].code == "OBJECT_NOT_FOUND"
    entry = eng.outbox.get(d.id)
    assert entry is not None
    assert entry.status == "parked"


def test_companies_contacts_and_engagements_are_pulled_and_linked(fake: HubSpotFake, clock: ManualClock) -> None:
    cid = fake.create_company("华东制造", industry="MANUFACTURING", country="China")
    pid = fake.create_contact("Li", "Wei", email="li@example.com", company=cid)
    did = fake.create_deal("ERP", "qualifiedtobuy", amount="480000", company=cid, contacts=[pid],
                           close_date=date(2026, 9, 30))
    call = fake.create_engagement("calls", at=datetime(2026, 1, 6, 3, tzinfo=UTC), subject="Kick-off",
                                  deal=did, status="COMPLETED")
    task = fake.create_engagement("tasks", at=datetime(2026, 2, 1, tzinfo=UTC), subject="Send quote",
                                  deal=did, status="NOT_STARTED")
    eng = engine(fake, clock)
    s = eng.pull()
    assert s.failed == 0
    st = eng.store
    acc = st.get(Account, f"hs-{cid}")
    assert (acc.name, acc.industry, acc.country) == ("华东制造", "MANUFACTURING", "China")
    assert st.get(Contact, f"hs-{pid}").account_id == acc.id
    deal = st.find_deal("hs", did)
    assert deal is not None
    assert deal.account_id == acc.id
    assert deal.contact_ids == (f"hs-{pid}",)
    assert deal.close_date == date(2026, 9, 30)
    a = st.get(Activity, f"hs-{call}")
    assert (a.kind, a.deal_id, a.subject, a.done) == (ActivityKind.CALL, deal.id, "Kick-off", True)
    assert st.get(Activity, f"hs-{task}").done is False
    fake.update_company(cid, name="华东制造集团")
    s2 = eng.pull()
    assert s2.by_kind["accounts"]["updated"] == 1
    assert st.get(Account, f"hs-{cid}").name == "华东制造集团"


def test_a_deal_moved_to_another_pipeline_changes_process(fake: HubSpotFake, clock: ManualClock) -> None:
    fake.add_pipeline("ent", "Enterprise", [("e1", "Scoping", "0.3", False), ("e2", "Pilot", "0.7", False),
                                            ("ewon", "Won", "1.0", True), ("elost", "Lost", "0.0", True)])
    rid = fake.create_deal("Big one", "e1", pipeline="ent")
    eng = engine(fake, clock, kinds=[ObjectKind.DEALS])
    eng.pull()
    d = eng.store.find_deal("hs", rid)
    assert d is not None
    assert (d.process, d.stage) == ("hs-ent", "e1")
    fake.update_deal(rid, pipeline="default", stage="qualifiedtobuy")
    eng.pull()
    d = eng.store.find_deal("hs", rid)
    assert d is not None
    assert (d.process, d.stage) == ("hs-default", "qualifiedtobuy")
    assert any(isinstance(e, ProcessMigrated) for e in d.events)
    assert "pipeline_changed" in {b.kind for b in eng.bypasses()}


def test_explicit_mapping_onto_the_shipped_b2b_process(fake: HubSpotFake, clock: ManualClock) -> None:
    stages = {"appointmentscheduled": "lead", "qualifiedtobuy": "first_contact", "closedwon": "won",
              "closedlost": "lost"}
    mapping = StageMapping.from_dict({"pipelines": {"default": {"process": "b2b", "stages": stages}}})
    ok = fake.create_deal("Mapped", "qualifiedtobuy")
    unmapped = fake.create_deal("Unmapped", "contractsent")
    eng = engine(fake, clock, mapping=mapping, kinds=[ObjectKind.DEALS])
    s = eng.pull()
    assert (s.created, s.failed) == (1, 1)
    d = eng.store.find_deal("hs", ok)
    assert d is not None
    assert (d.process, d.stage) == ("b2b", "first_contact")
    (f,) = eng.failures()
    assert (f.record_id, f.code, f.direction) == (unmapped, "unmapped_stage", "pull")
    fixed = StageMapping.from_dict({"pipelines": {"default": {"process": "b2b", "stages": {
        **stages, "contractsent": "negotiation"}}}})
    eng2 = SyncEngine(eng.store, make_adapter(fake, clock), connection="hs", mapping=fixed, kinds=[ObjectKind.DEALS])
    s2 = eng2.pull()
    assert (s2.created, s2.failed) == (1, 0), "a failed record is retried, never dropped"
    d2 = eng.store.find_deal("hs", unmapped)
    assert d2 is not None
    assert d2.stage == "negotiation"
    assert eng2.failures() == []


def test_token_is_sent_only_in_the_authorization_header(fake: HubSpotFake, clock: ManualClock) -> None:
    seen: list[httpx.Request] = []
    inner = fake.transport()

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return inner.handle_request(request)

    ad = make_adapter(fake, clock, transport=httpx.MockTransport(spy))
    ad.pipelines()
    (req,) = seen
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(req.url)
    assert TOKEN not in repr(ad)
    assert TOKEN not in repr(ad.http._client.headers)


def test_stage_changes_in_the_same_millisecond_keep_their_order(fake: HubSpotFake, clock: ManualClock) -> None:
    # the history comes newest first; changes sharing a timestamp must not come out reversed
    fake.seed_deals(3)
    eng = engine(fake, clock, kinds=[ObjectKind.DEALS])
    pages = list(eng.adapter.pull(ObjectKind.DEALS, None))
    moved = [r for p in pages for r in p.records if r.history and len(r.history) == 2]
    assert moved
    for r in moved:
        assert r.history is not None
        assert r.history[0].at == r.history[1].at
        assert r.history[0].stage == "appointmentscheduled"
        assert r.history[1].stage == r.stage
    assert eng.pull().bypasses == 1  # the move skips stages; no spurious move backwards
    d = eng.store.get_deal(eng.local_id(moved[0].id))
    assert [e.kind for e in d.events] == ["created", "stage_changed"]
