"""Pipedrive adapter and fake: what the conformance kit does not cover — the x-api-token header and
OAuth refresh, cursor pages and their limits, won and lost from a deal's status, stage history
from the v1 changelog, the burst window and its headers, the daily budget, creates that never
duplicate, organizations and persons, exact money.

Everything runs in-process (the fake as an httpx transport, rate limits on a manual clock).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, timedelta
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
    RateLimiter,
    RetryPolicy,
    SyncEngine,
)
from salesprocess_adapters._pacing import paced
from salesprocess_adapters.fakes import PipedriveFake
from salesprocess_adapters.fakes.pipedrive import ID_FIELD_KEY
from salesprocess_adapters.pipedrive import LOST, WON, PipedriveAdapter, parse_pipedrive_time

TOKEN = "pd-test-api-token-0001"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> PipedriveFake:
    return PipedriveFake(token=TOKEN, monotonic=clock.now)


class Recorder(httpx.BaseTransport):
    """Wraps the fake's transport and keeps every request."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.inner.handle_request(request)

    def paths(self, part: str = "") -> list[str]:
        return [r.url.path for r in self.requests if part in r.url.path]


def make(fake: PipedriveFake, clock: ManualClock, **kw: Any) -> PipedriveAdapter:
    opts: dict[str, Any] = {"token": TOKEN, "base_url": "http://pipedrive.fake", "transport": fake.transport(),
                            "clock": clock.now, "sleep": clock.sleep, "retry": RetryPolicy(attempts=4, base=0.1),
                            "seed": 3, "id_field": ID_FIELD_KEY}
    opts.update(kw)
    return PipedriveAdapter(**opts)


def engine(adapter: PipedriveAdapter, **kw: Any) -> SyncEngine:
    return SyncEngine(MemoryStore(), adapter, connection="pd", kinds=(ObjectKind.DEALS,), **kw)


@pytest.fixture
def raw(fake: PipedriveFake) -> Iterator[httpx.Client]:
    with httpx.Client(transport=fake.transport(), base_url="http://pipedrive.fake") as c:
        yield c


# --- the fake's contract ------------------------------------------------------------------------------
def test_auth_header_and_error_envelope(raw: httpx.Client) -> None:
    r = raw.get("/api/v2/deals")
    assert r.status_code == 401
    body = r.json()
    assert body["success"] is False
    assert body["error"] == "unauthorized access"
    assert body["data"] is None
    assert raw.get("/api/v2/deals", headers={"x-api-token": TOKEN}).status_code == 200
    assert raw.get("/api/v2/deals", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401


def test_cursor_pages_end_with_null_and_limit_is_capped(fake: PipedriveFake, raw: httpx.Client) -> None:
    for i in range(5):
        fake.create_deal(f"D{i}", "1")
    h = {"x-api-token": TOKEN}
    assert raw.get("/api/v2/deals", params={"limit": 501}, headers=h).status_code == 400
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, "sort_by": "update_time", "sort_direction": "asc"}
        if cursor:
            params["cursor"] = cursor
        body = raw.get("/api/v2/deals", params=params, headers=h).json()
        seen += [d["id"] for d in body["data"]]
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    assert raw.get("/api/v2/deals", params={"cursor": "not-a-cursor"}, headers=h).status_code == 400


def test_updated_since_is_inclusive_and_times_are_rfc3339(fake: PipedriveFake, raw: httpx.Client) -> None:
    a = fake.create_deal("A", "1")
    fake.create_deal("B", "1")
    at = fake.get_deal(a)["modified"]
    body = raw.get("/api/v2/deals", params={"updated_since": at.strftime("%Y-%m-%dT%H:%M:%SZ")},
                   headers={"x-api-token": TOKEN}).json()
    assert [d["title"] for d in body["data"]] == ["A", "B"]
    assert body["data"][0]["update_time"].endswith("Z")
    assert parse_pipedrive_time(body["data"][0]["update_time"]) == at


def test_an_omitted_value_is_zero(fake: PipedriveFake, raw: httpx.Client) -> None:
    r = raw.post("/api/v2/deals", json={"title": "No value"}, headers={"x-api-token": TOKEN})
    assert r.json()["data"]["value"] == 0


# --- auth ---------------------------------------------------------------------------------------------
def test_the_api_token_travels_in_the_header_only(fake: PipedriveFake, clock: ManualClock,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.create_deal("A", "1")
    rec = Recorder(fake.transport())
    a = make(fake, clock, transport=rec)
    engine(a).pull()
    assert rec.requests
    assert all(r.headers.get("x-api-token") == TOKEN for r in rec.requests)
    assert all("authorization" not in r.headers for r in rec.requests)
    assert all(TOKEN not in str(r.url) for r in rec.requests)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(a)


def test_oauth_fetches_a_token_and_refreshes_it_when_it_expires(fake: PipedriveFake, clock: ManualClock) -> None:
    rec = Recorder(fake.transport())
    a = make(fake, clock, token=None, transport=rec, refresh_token=fake._refresh, client_id=fake._client[0],
             client_secret=fake._client[1], oauth_url="http://pipedrive.fake")
    assert a.auth == "oauth"
    fake.create_deal("A", "1")
    eng = engine(a)
    eng.pull()
    fake.expire_tokens()
    fake.create_deal("B", "1")
    assert eng.pull().created == 1
    assert rec.paths("/oauth/token") == ["/oauth/token", "/oauth/token"]
    api = [r for r in rec.requests if r.url.path.startswith("/api/")]
    assert all(r.headers["authorization"].startswith("Bearer v1:fake-access-") for r in api)
    assert all("x-api-token" not in r.headers for r in api)


def test_a_refused_refresh_is_an_auth_error_without_the_secret(fake: PipedriveFake, clock: ManualClock) -> None:
    a = make(fake, clock, token=None, refresh_token="stolen-refresh-token", client_id=fake._client[0],
             client_secret=fake._client[1], oauth_url="http://pipedrive.fake")
    with pytest.raises(AuthError) as ei:
        a.pipelines()
    assert "stolen-refresh-token" not in str(ei.value) + repr(ei.value)


def test_a_wrong_api_token_is_an_auth_error(fake: PipedriveFake, clock: ManualClock) -> None:
    with pytest.raises(AuthError) as ei:
        make(fake, clock, token="wrong-token-xxxx").pipelines()
    assert ei.value.status == 401
    assert "wrong-token-xxxx" not in str(ei.value)


# --- won, lost and history --------------------------------------------------------------------------------
def test_pipelines_add_won_and_lost_to_pipedrive_stages(fake: PipedriveFake, clock: ManualClock) -> None:
    fake.add_pipeline("Partners", [("Intro", 30), ("Contract", 90)])
    pipes = make(fake, clock).pipelines()
    assert [p.label for p in pipes] == ["Sales", "Partners"]
    sales = pipes[0]
    assert [s.label for s in sales.stages] == ["Qualified", "Contact made", "Demo scheduled", "Proposal made",
                                               "Negotiations started", "Won", "Lost"]
    assert [(s.id, s.closed, s.won) for s in sales.stages[-2:]] == [(WON, True, True), (LOST, True, False)]
    assert sales.stages[3].probability == Decimal("0.6")
    assert [s.label for s in pipes[1].stages] == ["Intro", "Contract", "Won", "Lost"]


def test_status_decides_won_and_lost_and_the_changelog_the_history(fake: PipedriveFake, clock: ManualClock) -> None:
    won = fake.create_deal("Won deal", "1", amount="500")
    fake.update_deal(won, stage="2")
    fake.update_deal(won, stage="4")
    fake.update_deal(won, stage="won")
    lost = fake.create_deal("Lost deal", "2")
    fake.update_deal(lost, stage="lost")
    quiet = fake.create_deal("Quiet deal", "3")
    a = make(fake, clock)
    eng = engine(a)
    eng.pull()
    assert a.history_calls == 2, "a deal that never moved needs no changelog"
    d = eng.store.find_deal("pd", won)
    assert d is not None
    assert [(e.kind, getattr(e, "to_stage", None)) for e in d.events[1:]] == [
        ("stage_changed", "2"), ("stage_changed", "4"), ("won", "won")]
    assert d.status.value == "won"
    times = [e.at for e in d.events]
    assert times == sorted(times)
    dl = eng.store.find_deal("pd", lost)
    assert dl is not None
    assert dl.status.value == "lost"
    assert [e.kind for e in dl.events] == ["created", "lost"]
    dq = eng.store.find_deal("pd", quiet)
    assert dq is not None
    assert [e.kind for e in dq.events] == ["created"]
    assert dq.stage == "3"
    # reopened in Pipedrive: a reopen into its stage
    fake.update_deal(won, stage="1")
    eng.pull()
    d2 = eng.store.find_deal("pd", won)
    assert d2 is not None
    assert (d2.status.value, d2.stage) == ("open", "1")
    assert d2.events[-1].kind == "reopened"


def test_pushed_stages_set_status_or_stage(fake: PipedriveFake, clock: ManualClock) -> None:
    rid = fake.create_deal("Mover", "2")
    a = make(fake, clock, lost_reason="Went with a competitor")
    assert a.push([PushItem("x", rid, {"stage": LOST})])[0].ok
    got = fake.get_deal(rid)
    assert (got["status"], got["stage_id"]) == ("lost", "2")
    assert fake.deals.rows[int(rid)]["lost_reason"] == "Went with a competitor"
    assert a.push([PushItem("x", rid, {"stage": "4"})])[0].ok
    got = fake.get_deal(rid)
    assert (got["status"], got["stage_id"]) == ("open", "4")
    assert a.push([PushItem("x", rid, {"stage": WON})])[0].ok
    assert fake.get_deal(rid)["status"] == "won"
    bad = a.push([PushItem("x", rid, {"stage": "not-a-stage"})])[0]
    assert not bad.ok
    assert bad.code == "INVALID_STAGE"


# --- limits -------------------------------------------------------------------------------------------
def test_the_burst_window_headers_and_429_wait(clock: ManualClock) -> None:
    fake = PipedriveFake(token=TOKEN, monotonic=clock.now, rate_limit=(3, 2.0))
    for i in range(12):
        fake.create_deal(f"D{i}", "1")
    with httpx.Client(transport=fake.transport(), base_url="http://pipedrive.fake") as raw:
        r = raw.get("/api/v2/deals", headers={"x-api-token": TOKEN})
        assert (r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-remaining"]) == ("3", "2")
        raw.get("/api/v2/deals", headers={"x-api-token": TOKEN})
        raw.get("/api/v2/deals", headers={"x-api-token": TOKEN})
        r = raw.get("/api/v2/deals", headers={"x-api-token": TOKEN})
        assert r.status_code == 429
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert int(r.headers["x-ratelimit-reset"]) >= 1
    clock.sleep(5)
    start = clock.now()
    eager = make(fake, clock, rate_limit=None, page_size=2, history=False)
    assert engine(eager).pull().created == 12
    assert eager.throttled >= 1
    assert clock.now() - start >= 2.0, "the 429 waits were the x-ratelimit-reset the fake sent"


def test_the_limiter_keeps_to_the_window_and_follows_remaining(clock: ManualClock) -> None:
    fake = PipedriveFake(token=TOKEN, monotonic=clock.now, rate_limit=(5, 2.0))
    for i in range(20):
        fake.create_deal(f"D{i}", "1")
    a = make(fake, clock, rate_limit=(5, 2.0), page_size=2, history=False)
    assert engine(a).pull().created == 20
    assert fake.status_counts["throttled"] == 0
    assert a.calls >= 10
    # another client spends the shared window: the adapter slows down to what the headers say
    b = make(fake, clock, rate_limit=(5, 2.0), page_size=2, history=False)
    with httpx.Client(transport=fake.transport(), base_url="http://pipedrive.fake") as raw:
        clock.sleep(3)
        for _ in range(4):
            raw.get("/api/v2/pipelines", headers={"x-api-token": TOKEN})
        assert engine(b).pull().created == 20
    assert fake.status_counts["throttled"] == 0, "the adapter counted the other client's calls"


def test_a_spent_daily_budget_stops_with_a_typed_error(clock: ManualClock) -> None:
    fake = PipedriveFake(token=TOKEN, monotonic=clock.now, daily_budget=25)
    for i in range(6):
        fake.create_deal(f"D{i}", "1")
    a = make(fake, clock, page_size=1, history=False)
    with pytest.raises(RateLimited) as ei:
        engine(a).pull()
    assert ei.value.retriable is False
    assert ei.value.policy == "DAILY"
    assert a.http.retries == 0, "a spent daily budget is not retried"


# --- push ---------------------------------------------------------------------------------------------
def test_a_create_whose_answer_was_lost_is_not_duplicated(fake: PipedriveFake, clock: ManualClock) -> None:
    a = make(fake, clock)
    fake.fail_next("truncated")  # the search before the create: retried
    fake.fail_next("truncated")  # the create: it ran, its answer was cut
    (res,) = a.push([PushItem("L-1", None, {"name": "Once", "stage": "1", "amount": Decimal("10.5")})])
    assert res.ok
    assert res.created
    assert len(fake.deal_ids()) == 1
    assert fake.get_deal(res.remote_id or "")["local_id"] == "L-1"
    # pushed again as new (its link was lost): found by the id field, updated
    (again,) = a.push([PushItem("L-1", None, {"name": "Once more"})])
    assert again.remote_id == res.remote_id
    assert len(fake.deal_ids()) == 1
    assert fake.get_deal(res.remote_id or "")["name"] == "Once more"


def test_a_throttled_create_is_sent_again(fake: PipedriveFake, clock: ManualClock) -> None:
    a = make(fake, clock)
    fake.fail_next("429", 1)
    res = a._create(PushItem("L-2", None, {"name": "Again", "stage": "1"}))
    assert res.ok
    assert len(fake.deal_ids()) == 1


def test_each_record_gets_its_own_result(fake: PipedriveFake, clock: ManualClock) -> None:
    fake.reject_names("BAD")
    a = make(fake, clock)
    good = fake.create_deal("Good", "1")
    res = a.push([
        PushItem("a", None, {"name": "New one", "stage": "1"}),
        PushItem("b", None, {"name": "BAD new", "stage": "1"}),
        PushItem("c", good, {"name": "BAD rename"}),
        PushItem("d", "999999", {"name": "Gone"}),
        PushItem("e", good, {"amount": Decimal("99.99"), "currency": "USD"}),
    ])
    assert [r.ok for r in res] == [True, False, False, False, True]
    assert not res[1].retriable
    assert "not allowed" in res[1].message
    assert fake.get_deal(good)["amount"] == Decimal("99.99")


# --- pull details ---------------------------------------------------------------------------------------
def test_records_changed_while_listed_are_not_lost(fake: PipedriveFake, clock: ManualClock) -> None:
    ids = [fake.create_deal(f"D{i}", "1") for i in range(9)]

    def meddle(kind: str, page: int) -> None:
        if kind == "deals" and page == 2:
            fake.on_list = None
            fake.update_deal(ids[0], name="Changed while listing")
            fake.create_deal("Born while listing", "1")

    fake.on_list = meddle
    eng = engine(make(fake, clock, page_size=3, history=False))
    s = eng.pull()
    assert s.created == 10
    d = eng.store.find_deal("pd", ids[0])
    assert d is not None
    assert d.name == "Changed while listing"


def test_a_repeated_page_is_asked_for_again(fake: PipedriveFake, clock: ManualClock) -> None:
    for i in range(7):
        fake.create_deal(f"D{i}", "1")
    eng = engine(make(fake, clock, page_size=2, history=False))
    fake.fail_next("duplicate_page", 2)
    s = eng.pull()
    assert s.created == 7
    assert fake.status_counts["duplicate_page"] == 2


def test_organizations_and_persons_are_pulled_and_linked(fake: PipedriveFake, clock: ManualClock) -> None:
    org = fake.create_org("Northwind", country="DE")
    person = fake.create_person("Ada Lovelace", email="ada@northwind.test", org=int(org))
    rid = fake.create_deal("Northwind renewal", "1", org=int(org), person=int(person))
    a = make(fake, clock)
    eng = SyncEngine(MemoryStore(), a, connection="pd")
    eng.pull()
    d = eng.store.find_deal("pd", rid)
    assert d is not None
    assert d.account_id == eng.local_id(org)
    assert d.contact_ids == (eng.local_id(person),)
    fake.update_org(org, name="Northwind Traders")
    s = eng.pull()
    assert s.by_kind["accounts"]["updated"] == 1
    assert s.by_kind["deals"]["fetched"] == 0


@settings(max_examples=25, deadline=None)
@given(cents=st.integers(1, 10**13), day=st.dates(date(2020, 1, 1), date(2035, 12, 31)),
       currency=st.sampled_from(["USD", "EUR", "CNY"]))
def test_money_and_dates_round_trip_exactly(cents: int, day: date, currency: str) -> None:
    clock = ManualClock()
    fake = PipedriveFake(token=TOKEN, monotonic=clock.now)
    a = make(fake, clock)
    eng = engine(a, currency=currency)
    proc = eng.process(eng.mapping.pipelines[0].process)
    amount = Money(Decimal(cents).scaleb(-2), currency)
    eng.outbox.save_deal(proc.open_deal("M", at=fake.now(), actor="t", name="Money", amount=amount, close_date=day),
                         expected_version=None)
    assert eng.push().created == 1
    rid = eng.store.get_deal("M").external_ids["pd"]
    assert fake.get_deal(rid)["amount"] == amount.amount
    fresh = engine(make(fake, clock))
    fresh.pull()
    d = fresh.store.find_deal("pd", rid)
    assert d is not None
    assert d.amount == amount
    assert d.close_date == day


# --- registration -----------------------------------------------------------------------------------------
def test_registered_with_connection_style_options(fake: PipedriveFake) -> None:
    spec = SalesProcess().adapter("crm", "pipedrive")
    a = spec.factory({"token": TOKEN, "base_url": "http://pipedrive.fake", "rate_limit": "80/2s",
                      "transport": fake.transport(), "id_field": ID_FIELD_KEY, "connection": "pd"})
    assert isinstance(a, PipedriveAdapter)
    assert a.http.limiter is not None
    assert (a.http.limiter.max_calls, a.http.limiter.period) == (80, 2.0)
    with pytest.raises(AdapterError, match="unknown pipedrive adapter option"):
        spec.factory({"token": TOKEN, "colour": "blue"})
    with pytest.raises(AuthError):
        spec.factory({"base_url": "http://pipedrive.fake"})
    a.close()


def test_default_limits_follow_the_auth(fake: PipedriveFake) -> None:
    api = PipedriveAdapter(token=TOKEN, transport=fake.transport())
    oauth = PipedriveAdapter(token="access", auth="oauth", transport=fake.transport())
    assert api.http.limiter is not None
    assert oauth.http.limiter is not None
    assert (api.http.limiter.max_calls, oauth.http.limiter.max_calls) == (20, 80)
    with pytest.raises(ValueError, match="500"):
        PipedriveAdapter(token=TOKEN, page_size=501)


def test_time_parsing_reads_both_versions() -> None:
    v2 = parse_pipedrive_time("2025-05-14T16:02:41Z")
    v1 = parse_pipedrive_time("2025-05-14 16:02:41")
    assert v2 == v1
    assert v2 is not None
    assert v2.utcoffset() == timedelta(0)
    assert parse_pipedrive_time(None) is None


def test_the_limiter_counts_a_call_from_its_answer() -> None:
    clock = ManualClock()
    lim = paced(RateLimiter(2, 1.0, clock=clock.now, sleep=clock.sleep))
    assert lim is not None
    lim.acquire()
    clock.sleep(0.5)  # a slow call: its answer comes at 0.5 s
    lim.observe(None)
    lim.acquire()
    lim.observe(None)
    lim.acquire()  # the third call waits a window from the first answer, not from its start
    assert clock.now() >= 0.5 + lim.window
    assert paced(None) is None
