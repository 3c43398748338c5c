"""Odoo adapter and fake: what the conformance kit does not cover — JSON-2 and JSON-RPC requests and
errors, choosing the transport by version, many2one pairs, lost as archived with a reason, archived
records in incremental pulls, many records sharing one write_date (and fractions of a second),
stage history from tracking values and its absence, float money read exactly, batch creates and
lost answers, sales teams as pipelines.

Everything runs in-process (the fake as an httpx transport, rate limits on a manual clock).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesprocess import MemoryStore, Money, SalesProcess
from salesprocess.errors import AdapterError, AuthError, RemoteValidationError
from salesprocess.sync import ManualClock, ObjectKind, PushItem, RetryPolicy, SyncEngine
from salesprocess_adapters.fakes import OdooFake
from salesprocess_adapters.odoo import LOST, PIPELINE, OdooAdapter, odoo_money, parse_odoo_time

KEY = "odoo-test-key-0001"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> OdooFake:
    return OdooFake(api_key=KEY, monotonic=clock.now)


class Recorder(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.inner.handle_request(request)


def make(fake: OdooFake, clock: ManualClock, **kw: Any) -> OdooAdapter:
    opts: dict[str, Any] = {"base_url": "http://odoo.fake", "db": fake.db, "token": KEY, "login": fake.login,
                            "protocol": "json2", "transport": fake.transport(), "clock": clock.now,
                            "sleep": clock.sleep, "retry": RetryPolicy(attempts=4, base=0.1), "seed": 5}
    opts.update(kw)
    return OdooAdapter(**opts)


def engine(adapter: OdooAdapter, **kw: Any) -> SyncEngine:
    return SyncEngine(MemoryStore(), adapter, connection="odoo", kinds=(ObjectKind.DEALS,), **kw)


@pytest.fixture
def raw(fake: OdooFake) -> Iterator[httpx.Client]:
    with httpx.Client(transport=fake.transport(), base_url="http://odoo.fake") as c:
        yield c


def rpc(raw: httpx.Client, service: str, method: str, *args: Any) -> dict[str, Any]:
    r = raw.post("/jsonrpc", json={"jsonrpc": "2.0", "method": "call", "id": 7,
                                   "params": {"service": service, "method": method, "args": list(args)}})
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


# --- the fake's contract ------------------------------------------------------------------------------
def test_json2_values_are_odoo_shaped(fake: OdooFake, raw: httpx.Client) -> None:
    fake.create_deal("Shaped", "2", amount="1234.56")
    r = raw.post("/json/2/crm.lead/search_read", headers={"Authorization": f"bearer {KEY}"}, json={
        "domain": [["type", "=", "opportunity"]], "fields": ["stage_id", "user_id", "expected_revenue",
                                                             "date_deadline", "lost_reason_id", "write_date"]})
    (row,) = r.json()
    assert row["stage_id"] == [2, "Qualified"]
    assert row["user_id"] == [2, "Mitchell Admin"]
    assert row["lost_reason_id"] is False
    assert row["date_deadline"] is False
    assert isinstance(json.loads(r.content, parse_float=str)[0]["expected_revenue"], str), "a JSON float"
    assert len(row["write_date"]) == 19


def test_json2_errors_and_auth(fake: OdooFake, raw: httpx.Client) -> None:
    r = raw.post("/json/2/crm.lead/search_read", headers={"Authorization": "bearer nope"}, json={})
    assert r.status_code == 401
    assert r.json()["name"] == "werkzeug.exceptions.Unauthorized"
    h = {"Authorization": f"bearer {KEY}"}
    r = raw.post("/json/2/crm.lead/search_read", headers=h, json={"fields": ["no_such_field"]})
    assert r.status_code == 422
    assert "Invalid field" in r.json()["message"]
    assert raw.post("/json/2/no.model/search_read", headers=h, json={}).status_code == 404
    assert raw.post("/json/2/crm.lead/search_read", headers={**h, "X-Odoo-Database": "other"}, json={}).status_code == 401


def test_jsonrpc_errors_come_inside_http_200(fake: OdooFake, raw: httpx.Client) -> None:
    assert rpc(raw, "common", "authenticate", fake.db, fake.login, KEY, {})["result"] == fake.uid
    assert rpc(raw, "common", "authenticate", fake.db, fake.login, "bad", {})["result"] is False
    body = rpc(raw, "object", "execute_kw", fake.db, fake.uid, "bad", "crm.lead", "search_read", [[]], {})
    assert body["error"]["data"]["name"] == "odoo.exceptions.AccessDenied"
    body = rpc(raw, "object", "execute_kw", fake.db, fake.uid, KEY, "crm.lead", "write", [[999], {"name": "x"}], {})
    assert body["error"]["data"]["name"] == "odoo.exceptions.MissingError"
    assert rpc(raw, "common", "version")["result"]["server_version_info"][0] == 19


def test_one_transaction_writes_all_or_nothing_with_one_write_date(fake: OdooFake) -> None:
    fake.reject_names("BAD")
    with pytest.raises(Exception, match="not allowed"):
        fake.call("crm.lead", "create", None, {"vals_list": [{"name": "Good"}, {"name": "BAD"}]}, {})
    assert fake.deal_ids() == []
    ids = fake.call("crm.lead", "create", None, {"vals_list": [{"name": "A"}, {"name": "B"}]}, {})
    rows = fake.call("crm.lead", "read", ids, {"fields": ["write_date"]}, {})
    assert rows[0]["write_date"] == rows[1]["write_date"]


def test_archived_records_need_active_test_off(fake: OdooFake) -> None:
    kept = fake.create_deal("Kept", "1")
    gone = fake.create_deal("Gone", "1")
    fake.update_deal(gone, stage="lost")
    plain = fake.call("crm.lead", "search", None, {"domain": []}, {})
    every = fake.call("crm.lead", "search", None, {"domain": []}, {"active_test": False})
    assert plain == [int(kept)]
    assert sorted(every) == sorted([int(kept), int(gone)])
    assert fake.call("crm.lead", "search", None, {"domain": [["active", "=", False]]}, {}) == [int(gone)]


# --- transports --------------------------------------------------------------------------------------
def test_json2_requests_carry_the_key_in_the_header_only(fake: OdooFake, clock: ManualClock,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.create_deal("A", "1")
    rec = Recorder(fake.transport())
    a = make(fake, clock, transport=rec)
    engine(a).pull()
    assert {r.url.path.split("/")[3] for r in rec.requests} >= {"crm.stage", "crm.lead", "mail.tracking.value"}
    for r in rec.requests:
        assert r.headers["authorization"] == f"bearer {KEY}"
        assert r.headers["x-odoo-database"] == fake.db
        assert KEY not in str(r.url)
        assert KEY.encode() not in r.content
    assert KEY not in caplog.text


def test_auto_picks_json2_from_19_and_jsonrpc_before(clock: ManualClock) -> None:
    for version, path in ((19, "/json/2/crm.stage/search_read"), (17, "/jsonrpc")):
        fake = OdooFake(api_key=KEY, monotonic=clock.now, version=version)
        rec = Recorder(fake.transport())
        a = make(fake, clock, protocol="auto", transport=rec)
        assert [p.id for p in a.pipelines()] == [PIPELINE]
        assert a.protocol == ("json2" if version >= 19 else "jsonrpc")
        assert rec.requests[-1].url.path == path
    old = OdooFake(api_key=KEY, monotonic=clock.now, version=17)
    rec = Recorder(old.transport())
    a = make(old, clock, protocol="auto", transport=rec)
    engine(a).pull()
    bodies = [json.loads(r.content) for r in rec.requests]
    assert [b["params"]["method"] for b in bodies[:3]] == ["version", "authenticate", "execute_kw"]
    assert bodies[2]["params"]["args"][:5] == [old.db, old.uid, KEY, "crm.stage", "search_read"]


def test_json2_against_an_old_server_says_to_use_jsonrpc(clock: ManualClock) -> None:
    old = OdooFake(api_key=KEY, monotonic=clock.now, version=18)
    with pytest.raises(RemoteValidationError, match="jsonrpc"):
        make(old, clock).pipelines()


def test_refused_credentials_are_auth_errors(fake: OdooFake, clock: ManualClock) -> None:
    with pytest.raises(AuthError) as ei:
        make(fake, clock, token="wrong-key-123456").pipelines()
    assert "wrong-key-123456" not in str(ei.value) + repr(ei.value)
    with pytest.raises(AuthError, match="refused the login"):
        make(fake, clock, token="wrong-key-123456", protocol="jsonrpc").pipelines()
    fake.revoke_key()
    with pytest.raises(AuthError):
        make(fake, clock, protocol="jsonrpc", uid=fake.uid).pipelines()


# --- stages, won and lost ----------------------------------------------------------------------------
def test_lost_is_archived_with_a_reason_and_archived_alone_is_not_lost(fake: OdooFake, clock: ManualClock) -> None:
    lost = fake.create_deal("Lost", "2")
    fake.update_deal(lost, stage="lost")
    shelved = fake.create_deal("Shelved", "3")
    fake.call("crm.lead", "write", [int(shelved)], {"vals": {"active": False}}, {})  # archived, probability kept
    won = fake.create_deal("Won", "1")
    fake.call("crm.lead", "action_set_won", [int(won)], {}, {})
    a = make(fake, clock)
    recs = {r.id: r for page in a.pull("deals", None) for r in page.records}
    assert (recs[lost].stage, recs[lost].archived) == (LOST, True)
    assert (recs[shelved].stage, recs[shelved].archived) == ("3", True)
    assert (recs[won].stage, recs[won].archived) == ("4", False)
    eng = engine(make(fake, clock))
    eng.pull()
    d = eng.store.find_deal("odoo", lost)
    assert d is not None
    assert [(e.kind, getattr(e, "to_stage", None)) for e in d.events] == [("created", None), ("lost", "lost")]
    assert d.status.value == "lost"


def test_an_opportunity_lost_after_a_pull_comes_in_the_next(fake: OdooFake, clock: ManualClock) -> None:
    rid = fake.create_deal("Later lost", "2", amount="100")
    fake.create_lead("Only a lead")
    eng = engine(make(fake, clock))
    assert eng.pull().created == 1, "leads that are not opportunities stay out"
    fake.update_deal(rid, stage="lost")
    s = eng.pull()
    assert (s.fetched, s.updated) == (1, 1)
    d = eng.store.find_deal("odoo", rid)
    assert d is not None
    assert d.status.value == "lost"
    fake.update_deal(rid, stage="1")  # reactivated in Odoo
    eng.pull()
    d = eng.store.find_deal("odoo", rid)
    assert d is not None
    assert (d.status.value, d.stage, d.events[-1].kind) == ("open", "1", "reopened")


def test_history_comes_from_tracking_values(fake: OdooFake, clock: ManualClock) -> None:
    rid = fake.create_deal("Walker", "1")
    for st_ in ("2", "3", "lost", "2", "4"):
        fake.advance(60)
        fake.update_deal(rid, stage=st_)
    eng = engine(make(fake, clock))
    eng.pull()
    d = eng.store.find_deal("odoo", rid)
    assert d is not None
    assert [(e.kind, getattr(e, "to_stage", None)) for e in d.events[1:]] == [
        ("stage_changed", "2"), ("stage_changed", "3"), ("lost", "lost"), ("reopened", "2"), ("won", "4")]
    gaps = [(b.at - a.at).total_seconds() for a, b in zip(d.events[1:], d.events[2:], strict=False)]
    assert all(g >= 60 for g in gaps)
    assert fake.stage_history(rid) == ["1", "2", "3", "2", "4"]


def test_without_access_to_tracking_the_pull_goes_on_without_history(clock: ManualClock,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    fake = OdooFake(api_key=KEY, monotonic=clock.now, history_access=False)
    rid = fake.create_deal("Walker", "1")
    fake.update_deal(rid, stage="3")
    eng = engine(make(fake, clock))
    with caplog.at_level(logging.WARNING, logger="salesprocess.adapters.odoo"):
        assert eng.pull().created == 1
    assert "without stage history" in caplog.text
    d = eng.store.find_deal("odoo", rid)
    assert d is not None
    assert d.stage == "3"


def test_old_versions_track_in_field(clock: ManualClock) -> None:
    fake = OdooFake(api_key=KEY, monotonic=clock.now, version=16)
    rid = fake.create_deal("Walker", "1")
    fake.update_deal(rid, stage="2")
    a = make(fake, clock, protocol="jsonrpc")
    eng = engine(a)
    eng.pull()
    assert a.tracking_field == "field"
    d = eng.store.find_deal("odoo", rid)
    assert d is not None
    assert [e.kind for e in d.events] == ["created", "stage_changed"]


def test_teams_as_pipelines(fake: OdooFake, clock: ManualClock) -> None:
    team = fake.add_team("Export", [("Samples sent", 5, False)])
    rid = fake.create_deal("Export deal", None, team=team)
    a = make(fake, clock, by_team=True)
    pipes = {p.id: [s.label for s in p.stages] for p in a.pipelines()}
    assert pipes["1"] == ["New", "Qualified", "Proposition", "Won", "Lost"]
    assert pipes[str(team)] == ["New", "Qualified", "Proposition", "Samples sent", "Won", "Lost"]
    eng = engine(make(fake, clock, by_team=True))
    eng.pull()
    d = eng.store.find_deal("odoo", rid)
    assert d is not None
    assert d.process == eng.mapping.for_pipeline(str(team)).process  # type: ignore[union-attr]


# --- listing ------------------------------------------------------------------------------------------
def test_a_crowded_second_is_read_by_id(clock: ManualClock) -> None:
    fake = OdooFake(api_key=KEY, monotonic=clock.now)
    ids = fake.seed_deals(23, stage_moves=False, batch=23)  # one transaction: one write_date
    rec = Recorder(fake.transport())
    a = make(fake, clock, page_size=4, tie_limit=8, transport=rec, history=False)
    pages = list(a.pull("deals", None))
    got = [r.id for p in pages for r in p.records]
    assert sorted(got, key=int) == ids
    assert len(got) == len(set(got))
    assert any(p.cursor.get("drain") is not None for p in pages)
    orders = [json.loads(r.content).get("order") for r in rec.requests if "crm.lead" in r.url.path]
    assert "id asc" in orders
    # resuming from a cursor taken in the middle of the crowded second loses nothing
    mid = next(p.cursor for p in pages if p.cursor.get("drain"))
    rest = [r.id for p in make(fake, clock, page_size=4, tie_limit=8, history=False).pull("deals", mid)
            for r in p.records]
    assert {i for i in ids if int(i) > int(mid["drain"])} <= set(rest)


def test_fractions_of_a_second_lose_nothing(clock: ManualClock) -> None:
    fake = OdooFake(api_key=KEY, monotonic=clock.now, subsecond=True)  # four writes a second
    ids = [fake.create_deal(f"D{i}", "1") for i in range(10)]
    eng = engine(make(fake, clock, page_size=3))
    assert eng.pull().created == 10
    fake.update_deal(ids[0], name="Changed")
    fake.update_deal(ids[9], name="Changed too")
    new = fake.create_deal("New", "1")
    s = eng.pull()
    assert (s.created, s.updated) == (1, 2)
    for rid in [*ids, new]:
        assert eng.store.find_deal("odoo", rid) is not None


def test_records_changed_during_a_pull_come_later_in_it(fake: OdooFake, clock: ManualClock) -> None:
    ids = [fake.create_deal(f"D{i}", "1") for i in range(8)]
    a = make(fake, clock, page_size=3, history=False)
    it = a.pull("deals", None)
    first = next(it)
    fake.update_deal(ids[0], name="Changed while listing")
    fake.update_deal(ids[5], name="Also changed")
    rest = [r for p in it for r in p.records]
    names = {r.id: r.name for r in [*first.records, *rest]}
    assert len(names) == 8
    assert names[ids[0]] == "Changed while listing"
    assert names[ids[5]] == "Also changed"


# --- money --------------------------------------------------------------------------------------------
def test_odoo_money_goes_through_the_string_form_to_minor_units() -> None:
    assert odoo_money(Decimal("48000.100000000006"), "USD") == Decimal("48000.10")
    assert odoo_money(Decimal("0.30000000000000004"), "CNY") == Decimal("0.30")
    assert odoo_money(Decimal("1500.0"), "JPY") == Decimal("1500")
    assert odoo_money(Decimal("1.2345"), "KWD") == Decimal("1.234")
    assert odoo_money(Decimal("0.0"), "USD") is None
    assert odoo_money(False, "USD") is None
    assert odoo_money(12, "USD") == Decimal("12.00")
    with pytest.raises(AdapterError, match="float"):
        odoo_money(0.1, "USD")


@settings(max_examples=40, deadline=None)
@given(minor=st.integers(1, 10**12), currency=st.sampled_from(["USD", "CNY", "JPY", "KWD"]),
       day=st.dates(date(2020, 1, 1), date(2035, 12, 31)))
def test_money_survives_odoo_floats_exactly(minor: int, currency: str, day: date) -> None:
    clock = ManualClock()
    fake = OdooFake(api_key=KEY, monotonic=clock.now, currency=currency)
    places = {"USD": 2, "CNY": 2, "JPY": 0, "KWD": 3}[currency]
    amount = Money(Decimal(minor).scaleb(-places), currency)
    eng = engine(make(fake, clock), currency=currency)
    proc = eng.process(eng.mapping.pipelines[0].process)
    eng.outbox.save_deal(proc.open_deal("M", at=fake.now(), actor="t", name="Money", amount=amount, close_date=day),
                         expected_version=None)
    assert eng.push().created == 1
    rid = eng.store.get_deal("M").external_ids["odoo"]
    assert isinstance(fake.tables["crm.lead"][int(rid)]["expected_revenue"], float), "Odoo keeps a float"
    fresh = engine(make(fake, clock))
    fresh.pull()
    d = fresh.store.find_deal("odoo", rid)
    assert d is not None
    assert d.amount == amount
    assert d.amount is not None
    assert d.amount.currency == currency
    assert d.close_date == day


def test_an_amount_in_another_currency_fails_its_record(fake: OdooFake, clock: ManualClock) -> None:
    rid = fake.create_deal("USD deal", "1", amount="10")
    a = make(fake, clock)
    (res,) = a.push([PushItem("x", rid, {"amount": Decimal("5"), "currency": "EUR"})])
    assert not res.ok
    assert res.code == "CURRENCY_MISMATCH"
    assert fake.get_deal(rid)["amount"] == Decimal("10.0")


# --- push ---------------------------------------------------------------------------------------------
def test_a_batch_odoo_refuses_is_created_record_by_record(fake: OdooFake, clock: ManualClock) -> None:
    fake.reject_names("BAD")
    rec = Recorder(fake.transport())
    a = make(fake, clock, transport=rec)
    res = a.push([PushItem(f"n{i}", None, {"name": n, "stage": "1"}) for i, n in enumerate(["A", "BAD", "C"])])
    assert [r.ok for r in res] == [True, False, True]
    assert res[1].code == "odoo.exceptions.ValidationError"
    assert not res[1].retriable
    assert sorted(fake.get_deal(i)["name"] for i in fake.deal_ids()) == ["A", "C"]
    creates = [r for r in rec.requests if r.url.path.endswith("/create")]
    assert len(creates) == 4, "one refused batch, then one call per record"


def test_a_create_whose_answer_was_lost_is_not_duplicated(fake: OdooFake, clock: ManualClock) -> None:
    a = make(fake, clock)
    a.pipelines()
    fake.fail_next("truncated")  # the lookup: retried
    fake.fail_next("truncated")  # the create ran; its answer was cut
    res = a.push([PushItem("L-1", None, {"name": "Once", "stage": "1"}),
                  PushItem("L-2", None, {"name": "Twice", "stage": "2"})])
    assert all(r.ok and r.created for r in res)
    assert len(fake.deal_ids()) == 2
    assert {fake.get_deal(r.remote_id or "")["local_id"] for r in res} == {"L-1", "L-2"}


def test_pushed_stages_archive_or_reactivate(fake: OdooFake, clock: ManualClock) -> None:
    rid = fake.create_deal("Mover", "2")
    a = make(fake, clock, lost_reason_id=2)
    assert a.push([PushItem("x", rid, {"stage": LOST})])[0].ok
    row = fake.tables["crm.lead"][int(rid)]
    assert (row["active"], row["probability"], row["lost_reason_id"]) == (False, 0.0, 2)
    assert a.push([PushItem("x", rid, {"stage": "3"})])[0].ok
    row = fake.tables["crm.lead"][int(rid)]
    assert (row["active"], row["stage_id"], row["lost_reason_id"]) == (True, 3, None)
    assert a.push([PushItem("x", rid, {"stage": "4"})])[0].ok
    assert fake.tables["crm.lead"][int(rid)]["probability"] == 100.0
    assert a.push([PushItem("x", rid, {"owner": "1", "close_date": date(2026, 5, 1)})])[0].ok
    assert fake.get_deal(rid)["owner"] == "1"


def test_proxy_throttling_and_bad_gateways_are_retried(clock: ManualClock) -> None:
    fake = OdooFake(api_key=KEY, monotonic=clock.now, rate_limit=(2, 1.0), retry_after=3)
    for i in range(6):
        fake.create_deal(f"D{i}", "1")
    eager = make(fake, clock, page_size=2, retry=RetryPolicy(attempts=6, base=0.1))
    start = clock.now()
    assert engine(eager).pull().created == 6
    assert eager.throttled >= 1
    assert clock.now() - start >= 3, "waited the Retry-After the proxy sent"
    fake.set_rate_limit(None)
    fake.fail_next("5xx", 2)
    fake.create_deal("After", "1")
    assert engine(make(fake, clock)).pull().created == 7


# --- registration -----------------------------------------------------------------------------------------
def test_registered_with_connection_style_options(fake: OdooFake) -> None:
    spec = SalesProcess().adapter("crm", "odoo")
    a = spec.factory({"token": KEY, "base_url": "http://odoo.fake", "db": fake.db, "login": fake.login,
                      "protocol": "jsonrpc", "rate_limit": "10/1s", "transport": fake.transport(),
                      "context": {"lang": "zh_CN"}, "connection": "odoo"})
    assert isinstance(a, OdooAdapter)
    assert a.http.limiter is not None
    assert (a.http.limiter.max_calls, a.http.limiter.period) == (10, 1.0)
    assert [p.id for p in a.pipelines()] == [PIPELINE]
    with pytest.raises(AdapterError, match="unknown odoo adapter option"):
        spec.factory({"token": KEY, "base_url": "x", "db": "d", "colour": "blue"})
    with pytest.raises(AdapterError, match="db"):
        spec.factory({"token": KEY, "base_url": "x"})
    with pytest.raises(AuthError):
        spec.factory({"base_url": "x", "db": "d"})
    a.close()


def test_time_parsing() -> None:
    at = parse_odoo_time("2025-05-14 16:02:41")
    assert at is not None
    assert at.isoformat() == "2025-05-14T16:02:41+00:00"
    assert parse_odoo_time(False) is None
