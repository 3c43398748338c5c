"""Salesforce adapter and fake: vendor-specific behaviour the conformance kit does not cover.

Everything runs in-process (the fake as an httpx transport, rate limits on a manual clock).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from salesprocess import Account, Activity, ActivityKind, Contact, MemoryStore, Money
from salesprocess.errors import AuthError, RateLimited, RemoteValidationError
from salesprocess.model import DealLost, DealWon, EventSource
from salesprocess.sync import ManualClock, ObjectKind, RetryPolicy, SyncEngine
from salesprocess_adapters.fakes import SalesforceFake
from salesprocess_adapters.salesforce import SalesforceAdapter

TOKEN = "00Dfake!AQ0AQ.fake-session"
API = "/services/data/v62.0"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> SalesforceFake:
    return SalesforceFake(monotonic=clock.now, min_batch_size=1)


def make_adapter(fake: SalesforceFake, clock: ManualClock, **kw: Any) -> SalesforceAdapter:
    opts: dict[str, Any] = {
        "base_url": "http://sf.fake", "token": TOKEN, "transport": fake.transport(), "clock": clock.now,
        "sleep": clock.sleep, "retry": RetryPolicy(attempts=4, base=0.1), "seed": 2,
    }
    opts.update(kw)
    return SalesforceAdapter(**opts)


@pytest.fixture
def raw(fake: SalesforceFake) -> Iterator[httpx.Client]:
    with httpx.Client(transport=fake.transport(), base_url="http://sf.fake",
                      headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def engine(fake: SalesforceFake, clock: ManualClock, **kw: Any) -> SyncEngine:
    ad = kw.pop("adapter", None) or make_adapter(fake, clock)
    return SyncEngine(kw.pop("store", None) or MemoryStore(), ad, connection="sf", **kw)


# ------------------------------------------------------------------------------------------------
# The fake follows the contract
# ------------------------------------------------------------------------------------------------


def test_errors_are_json_arrays_with_codes(raw: httpx.Client) -> None:
    r = raw.get(f"{API}/query", params={"q": "SELEC Id FROM Opportunity"})
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "MALFORMED_QUERY"
    r = raw.get(f"{API}/query", params={"q": "SELECT Nope FROM Opportunity"})
    assert r.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "Nope" in r.json()[0]["message"]
    r = raw.get(f"{API}/query", params={"q": "SELECT Id FROM Opportunity"}, headers={"Authorization": "Bearer x"})
    assert r.status_code == 401
    assert r.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert r.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_query_pages_through_locators_that_expire(fake: SalesforceFake, raw: httpx.Client) -> None:
    for i in range(5):
        fake.create_deal(f"O{i}", amount="10")
    r = raw.get(f"{API}/query", params={"q": "SELECT Id, Name FROM Opportunity ORDER BY Name"},
                headers={"Sforce-Query-Options": "batchSize=2"}).json()
    assert (r["totalSize"], r["done"], [x["Name"] for x in r["records"]]) == (5, False, ["O0", "O1"])
    assert r["records"][0]["attributes"]["type"] == "Opportunity"
    nxt = r["nextRecordsUrl"]
    assert nxt.startswith(f"{API}/query/01g")
    r2 = raw.get(nxt).json()
    assert [x["Name"] for x in r2["records"]] == ["O2", "O3"]
    fake.expire_locators()
    r3 = raw.get(r2["nextRecordsUrl"])
    assert r3.status_code == 400
    assert r3.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_soql_where_order_and_history_subquery(fake: SalesforceFake, raw: httpx.Client) -> None:
    a = fake.create_deal("Alpha", "Prospecting", amount="100")
    fake.update_deal(a, stage="Qualification")
    fake.create_deal("Beta", "Closed Won", amount="900.50")
    q = ("SELECT Id, Name, Amount, IsWon, (SELECT StageName FROM OpportunityHistories ORDER BY CreatedDate) "
         "FROM Opportunity WHERE (Amount > 50 AND Name LIKE 'A%') OR IsWon = true ORDER BY Amount DESC")
    recs = raw.get(f"{API}/query", params={"q": q}).json()["records"]
    assert [(x["Name"], x["IsWon"]) for x in recs] == [("Beta", True), ("Alpha", False)]
    assert isinstance(recs[0]["Amount"], float) or recs[0]["Amount"] == 900.5
    assert [h["StageName"] for h in recs[1]["OpportunityHistories"]["records"]] == ["Prospecting", "Qualification"]
    exact = httpx.Response(200, content=raw.get(f"{API}/query", params={"q": "SELECT Amount FROM Opportunity WHERE Name = 'Beta'"}).content)
    assert b"900.50" in exact.content


def test_collections_enforce_size_and_report_rows(fake: SalesforceFake, raw: httpx.Client) -> None:
    big = {"allOrNone": False, "records": [{"attributes": {"type": "Opportunity"}, "Name": "x"}] * 201}
    assert raw.post(f"{API}/composite/sobjects", json=big).status_code == 400
    body = {"allOrNone": False, "records": [
        {"attributes": {"type": "Opportunity"}, "SalesProcess_Id__c": "L1", "Name": "Fine", "StageName": "Prospecting", "CloseDate": "2026-05-01"},
        {"attributes": {"type": "Opportunity"}, "SalesProcess_Id__c": "L2", "Name": "No date", "StageName": "Prospecting"},
        {"attributes": {"type": "Opportunity"}, "SalesProcess_Id__c": "L3", "Name": "Bad stage", "StageName": "Nope", "CloseDate": "2026-05-01"},
    ]}
    rows = raw.patch(f"{API}/composite/sobjects/Opportunity/SalesProcess_Id__c", json=body).json()
    assert rows[0]["success"] is True
    assert rows[0]["created"] is True
    assert rows[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert rows[1]["errors"][0]["fields"] == ["CloseDate"]
    assert rows[2]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    again = raw.patch(f"{API}/composite/sobjects/Opportunity/SalesProcess_Id__c",
                      json={"records": [body["records"][0]]}).json()
    assert again[0]["created"] is False
    assert again[0]["id"] == rows[0]["id"]
    body["allOrNone"] = True
    rolled = raw.patch(f"{API}/composite/sobjects/Opportunity/SalesProcess_Id__c", json=body).json()
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert len(fake.deal_ids()) == 1


def test_updated_and_deleted_windows(fake: SalesforceFake, raw: httpx.Client) -> None:
    a = fake.create_deal("A")
    fake.delete("Opportunity", a)
    start, end = "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"
    up = raw.get(f"{API}/sobjects/Opportunity/updated", params={"start": start, "end": end}).json()
    assert a in up["ids"]
    gone = raw.get(f"{API}/sobjects/Opportunity/deleted", params={"start": start, "end": end}).json()
    assert [d["id"] for d in gone["deletedRecords"]] == [a]
    assert raw.get(f"{API}/sobjects/Opportunity/updated", params={"start": start, "end": "2026-03-01T00:00:00Z"}).status_code == 400


# ------------------------------------------------------------------------------------------------
# The adapter
# ------------------------------------------------------------------------------------------------


def test_stage_history_from_opportunity_history(fake: SalesforceFake, clock: ManualClock) -> None:
    w = fake.create_deal("Won it", "Prospecting", amount="5000", close_date=date(2026, 3, 31))
    fake.update_deal(w, stage="Needs Analysis")
    fake.update_deal(w, stage="Closed Won")
    lost = fake.create_deal("Lost it", "Qualification")
    fake.update_deal(lost, stage="Closed Lost")
    eng = engine(fake, clock, kinds=[ObjectKind.DEALS])
    s = eng.pull()
    assert s.created == 2
    d = eng.store.find_deal("sf", w)
    assert d is not None
    assert [e.kind for e in d.events] == ["created", "stage_changed", "won"]
    assert isinstance(d.events[-1], DealWon)
    assert d.events[0].payload()["stage"] == "prospecting"
    assert all(e.source is EventSource.CRM_SYNC for e in d.events)
    assert d.amount == Money("5000", "USD")
    lo = eng.store.find_deal("sf", lost)
    assert lo is not None
    assert isinstance(lo.events[-1], DealLost)
    assert "skipped_stage" in {b.kind for b in eng.bypasses()}, "Needs Analysis skipped Qualification"


class _DiesAfterOnePage:
    """The adapter of a process that is killed after the first page was applied."""

    def __init__(self, inner: SalesforceAdapter) -> None:
        self.inner = inner
        self.name, self.capabilities, self.push_batch_size = inner.name, inner.capabilities, inner.push_batch_size

    def pipelines(self) -> Any:
        return self.inner.pipelines()

    def pull(self, kind: str, cursor: Any) -> Any:
        for i, page in enumerate(self.inner.pull(kind, cursor)):
            if i == 1:
                raise KeyboardInterrupt
            yield page

    def push(self, items: Any) -> Any:
        return self.inner.push(items)

    def close(self) -> None:
        pass


def test_interrupted_pull_resumes_after_its_locator_expired(fake: SalesforceFake, clock: ManualClock) -> None:
    ids = [fake.create_deal(f"O{i}") for i in range(9)]
    store = MemoryStore()
    dying = engine(fake, clock, store=store, adapter=_DiesAfterOnePage(make_adapter(fake, clock, page_size=3)),
                   kinds=[ObjectKind.DEALS], prefetch=0)
    with pytest.raises(KeyboardInterrupt):
        dying.pull()
    assert store.count_deals() == 3
    cursor = dying.cursor("deals")
    assert cursor is not None
    assert cursor["next"], "the cursor keeps the query locator"
    fake.expire_locators()
    eng = engine(fake, clock, store=store, adapter=make_adapter(fake, clock, page_size=3), kinds=[ObjectKind.DEALS])
    s = eng.pull()
    assert s.created == 6
    assert s.fetched == 6, "the restarted query handed back records already seen"
    assert store.count_deals() == 9
    assert {d.external_ids["sf"] for d in store.deals()} == set(ids)


def test_locators_expiring_while_paging_restart_the_query_from_the_cursor(clock: ManualClock) -> None:
    # every locator outlives only one second, and the client waits a second between calls:
    # each next page is refused and the query starts again from the newest instant seen
    fake = SalesforceFake(monotonic=clock.now, min_batch_size=1)
    ids = [fake.create_deal(f"O{i}") for i in range(7)]
    ad = make_adapter(fake, clock, page_size=2, rate_limit=(1, 1.0))
    eng = engine(fake, clock, adapter=ad, kinds=[ObjectKind.DEALS])
    eng.mapping  # noqa: B018  (the stage listing pages through locators too)
    fake.locator_ttl = 0.5
    s = eng.pull()
    assert (s.created, s.failed) == (7, 0)
    assert {d.external_ids["sf"] for d in eng.store.deals()} == set(ids)
    assert fake.status_counts["400"] >= 3, "the locators did expire"


def test_invalid_session_refreshes_once(fake: SalesforceFake, clock: ManualClock) -> None:
    fake.create_deal("O")
    ad = make_adapter(fake, clock, refresh_token="5Aep-fake-refresh", client_id="fake-consumer-key",
                      client_secret="fake-consumer-secret")
    eng = engine(fake, clock, adapter=ad, kinds=[ObjectKind.DEALS])
    eng.mapping  # noqa: B018
    fake.fail_next("expired_token")
    assert eng.pull().created == 1
    assert ad.http.refreshes == 1


def test_invalid_session_without_refresh_is_a_typed_error(fake: SalesforceFake, clock: ManualClock) -> None:
    with pytest.raises(AuthError) as ei:
        make_adapter(fake, clock, token="stale").pipelines()
    assert ei.value.vendor_code == "INVALID_SESSION_ID"
    assert "stale" not in str(ei.value)


def test_refused_refresh_token(fake: SalesforceFake, clock: ManualClock) -> None:
    ad = make_adapter(fake, clock, token="stale", refresh_token="wrong", client_id="fake-consumer-key",
                      client_secret="fake-consumer-secret")
    with pytest.raises(AuthError, match="refresh token") as ei:
        ad.pipelines()
    assert ei.value.vendor_code == "invalid_grant"


def test_total_requests_limit_stops_at_once(clock: ManualClock) -> None:
    fake = SalesforceFake(monotonic=clock.now, min_batch_size=1, daily_limit=2)
    for i in range(6):
        fake.create_deal(f"O{i}")
    eng = engine(fake, clock, adapter=make_adapter(fake, clock, page_size=2), kinds=[ObjectKind.DEALS])
    with pytest.raises(RateLimited) as ei:
        eng.pull()
    assert ei.value.policy == "TotalRequests"
    assert ei.value.retriable is False
    assert fake.status_counts["403"] == 0, "the adapter stopped before asking past the allocation"


def test_concurrent_request_limit_is_retried(fake: SalesforceFake, clock: ManualClock) -> None:
    fake.create_deal("O")
    eng = engine(fake, clock, kinds=[ObjectKind.DEALS])
    eng.mapping  # noqa: B018
    fake.fail_next("429", 2)
    assert eng.pull().created == 1
    assert fake.status_counts["403"] == 2
    assert len([x for x in clock.slept if x > 0]) >= 2


def test_reserve_keeps_part_of_the_daily_allocation(clock: ManualClock) -> None:
    fake = SalesforceFake(monotonic=clock.now, min_batch_size=1, daily_limit=10)
    for i in range(20):
        fake.create_deal(f"O{i}")
    ad = make_adapter(fake, clock, page_size=2, reserve=6)
    with pytest.raises(RateLimited, match="reserve"):
        engine(fake, clock, adapter=ad, kinds=[ObjectKind.DEALS]).pull()
    assert fake.daily_used <= 10 - 6 + 1


def test_push_requires_close_date_and_amounts_stay_exact(fake: SalesforceFake, clock: ManualClock) -> None:
    eng = engine(fake, clock, kinds=[ObjectKind.DEALS])
    proc = eng.process(eng.mapping.pipelines[0].process)
    at = fake.now()
    eng.outbox.save_deal(proc.open_deal("ok", at=at, actor="me", name="Exact", amount=Money("1234.56", "USD"),
                                        close_date=date(2026, 6, 30)), expected_version=None)
    eng.outbox.save_deal(proc.open_deal("nodate", at=at, actor="me", name="No date"), expected_version=None)
    s = eng.push()
    assert (s.created, s.failed, s.parked) == (1, 1, 1)
    (f,) = s.failures
    assert (f.record_id, f.code) == ("nodate", "REQUIRED_FIELD_MISSING")
    rid = eng.store.get_deal("ok").external_ids["sf"]
    assert fake.objects["Opportunity"][rid]["Amount"] == Decimal("1234.56")
    assert fake.get_deal(rid)["local_id"] == "ok"


def test_accounts_contacts_tasks_and_events(fake: SalesforceFake, clock: ManualClock) -> None:
    acc = fake.create_account("北方重工", industry="Machinery", country="China")
    con = fake.create_contact("Zhang", "San", email="z@example.com", account=acc)
    opp = fake.create_deal("Turbines", "Qualification", account=acc)
    call = fake.create_task("Intro call", what=opp, subtype="Call", activity_date=date(2026, 1, 7))
    todo = fake.create_task("Send deck", what=opp, status="Not Started")
    meet = fake.create_event("On-site", what=opp, start=datetime(2026, 1, 9, 2, tzinfo=UTC), minutes=90)
    eng = engine(fake, clock)
    s = eng.pull()
    assert s.failed == 0
    st = eng.store
    assert st.get(Account, f"sf-{acc}").name == "北方重工"
    assert st.get(Contact, f"sf-{con}").account_id == f"sf-{acc}"
    d = st.find_deal("sf", opp)
    assert d is not None
    assert d.account_id == f"sf-{acc}"
    c = st.get(Activity, f"sf-{call}")
    assert (c.kind, c.deal_id, c.done) == (ActivityKind.CALL, d.id, True)
    assert st.get(Activity, f"sf-{todo}").done is False
    m = st.get(Activity, f"sf-{meet}")
    assert (m.kind, m.duration_minutes) == (ActivityKind.MEETING, 90)
    fake.update_account(acc, Name="北方重工集团")
    assert eng.pull().by_kind["accounts"]["updated"] == 1


def test_malformed_request_is_a_validation_error(fake: SalesforceFake, clock: ManualClock) -> None:
    ad = make_adapter(fake, clock)
    with pytest.raises(RemoteValidationError) as ei:
        list(ad.query("SELECT Id FROM Nowhere"))
    assert ei.value.vendor_code == "INVALID_TYPE"
    assert ei.value.status == 400
