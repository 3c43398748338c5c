"""The sync engine's own rules, against the reference CRM: outbox atomicity, hooks after commit,
mapping files, proposals, connections, retries, rate limiting and secrets."""

from __future__ import annotations

import pickle
import random
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesprocess import MemoryStore, Money, SalesProcess, hookimpl
from salesprocess.errors import (
    AdapterError,
    AuthError,
    DefinitionError,
    ProcessFileError,
    RemoteValidationError,
    StoreError,
)
from salesprocess.model import DealWon, EventSource
from salesprocess.sync import (
    ConflictPolicy,
    InMemoryCrm,
    ManualClock,
    ObjectKind,
    PushItem,
    PushResult,
    RateLimiter,
    ReferenceAdapter,
    RemotePipeline,
    RemoteStage,
    RetryPolicy,
    Secret,
    StageMapping,
    SyncEngine,
    load_connections,
    parse_rate,
    propose,
    save_deal,
    slug,
)
from salesprocess.sync.engine import decode_record, encode_record
from salesprocess_adapters.sqlite import SQLiteStore


@pytest.fixture
def crm() -> InMemoryCrm:
    return InMemoryCrm()


def engine(crm: InMemoryCrm, store: Any = None, **kw: Any) -> SyncEngine:
    clock = ManualClock()
    adapter = kw.pop("adapter", None) or ReferenceAdapter(
        crm, token="ref-token-0", refresh_token="ref-refresh", page_size=kw.pop("page_size", 3),
        retry=RetryPolicy(attempts=3, base=0.01), clock=clock.now, sleep=clock.sleep, seed=1)
    return SyncEngine(store if store is not None else MemoryStore(), adapter, connection="ref", **kw)


# ------------------------------------------------------------------------------------------------
# Timing, secrets, rates
# ------------------------------------------------------------------------------------------------


def test_secret_never_shows_itself() -> None:
    s = Secret("tok-123")
    assert s.reveal() == "tok-123"
    for text in (repr(s), str(s), f"{s}", f"{s!r}", repr([s]), repr({"t": s})):
        assert "tok-123" not in text
    assert s == Secret("tok-123")
    assert s != Secret("other")
    with pytest.raises(TypeError):
        pickle.dumps(s)


@given(st.integers(0, 12), st.floats(0, 1))
def test_backoff_grows_is_capped_and_jittered(retry: int, jitter: float) -> None:
    p = RetryPolicy(attempts=20, base=0.5, cap=8.0, jitter=jitter)
    d = p.delay(retry, random.Random(retry))
    top = min(8.0, 0.5 * 2**retry)
    assert top * (1 - jitter) - 1e-9 <= d <= top + 1e-9
    assert p.delay(retry, random.Random(0), asked=3.0) == 3.0
    assert p.delay(retry, random.Random(0), asked=1e6) == p.max_wait


@given(st.lists(st.floats(0, 0.5), min_size=1, max_size=40), st.integers(1, 6), st.floats(0.1, 3))
def test_rate_limiter_never_allows_more_than_max_in_any_window(gaps: list[float], mx: int, period: float) -> None:
    clock = ManualClock()
    lim = RateLimiter(mx, period, clock=clock.now, sleep=clock.sleep, margin=0, slack=0)
    starts = []
    for g in gaps:
        clock.advance(g)
        lim.acquire()
        starts.append(clock.now())
    for i, t in enumerate(starts):
        assert sum(1 for u in starts[i:] if u < t + period) <= mx


def test_rate_limiter_follows_the_vendors_remaining_count() -> None:
    clock = ManualClock()
    lim = RateLimiter(10, 1.0, clock=clock.now, sleep=clock.sleep, margin=0, slack=0)
    lim.acquire()
    lim.observe(0)  # another client spent the rest of the window
    assert lim.acquire() == pytest.approx(1.0)
    lim.pause(2.5)
    assert lim.acquire() == pytest.approx(2.5)


def test_parse_rate() -> None:
    assert parse_rate("100/10s") == (100, 10.0)
    assert parse_rate("5/s") == (5, 1.0)
    assert parse_rate("1000/1m") == (1000, 60.0)
    assert parse_rate("20/500ms") == (20, 0.5)
    for bad in ("", "0/1s", "fast", "10/0s"):
        with pytest.raises(ValueError, match="rate limit"):
            parse_rate(bad)


# ------------------------------------------------------------------------------------------------
# Mapping and proposals
# ------------------------------------------------------------------------------------------------


def test_slug() -> None:
    assert slug("Closed Won") == "closed_won"
    assert slug("Proposal/Price Quote") == "proposal_price_quote"
    assert slug("  商机 阶段 ") == "商机_阶段"
    assert slug("!!!") == "stage"


def test_proposal_adds_missing_won_and_lost_stages() -> None:
    pl = RemotePipeline("p1", "Partners", (RemoteStage("a", "A", 0, Decimal("0.2")),
                                           RemoteStage("b", "B", 1, Decimal("1.5"))))
    prop = propose([pl], source="crm")
    (proc,) = prop.processes
    assert proc.key == "crm-p1"
    assert [s.kind.value for s in proc.stages] == ["open", "open", "won", "lost"]
    assert proc.stage("b").probability.value == 1, "probabilities are clamped into [0, 1]"
    assert len(prop.notes) == 2
    assert prop.mapping.check({proc.key: proc}) == []


def test_mapping_file_round_trip_and_problems(tmp_path: Path) -> None:
    m = StageMapping.from_dict({"process": "b2b", "stages": {"x": "lead"},
                                "pipelines": {"big": {"process": "saas", "stages": {"y": "demo"}}}})
    assert m.for_pipeline("big") is not None
    assert m.for_pipeline("other") is not None
    assert m.for_pipeline("other").process == "b2b"  # type: ignore[union-attr]
    p = tmp_path / "m.toml"
    p.write_text(m.to_toml(), encoding="utf-8")
    assert StageMapping.from_toml(p) == m
    bad = tmp_path / "bad.toml"
    bad.write_text('[pipelines.a]\nstages = { x = 1 }\nextra = true\n', encoding="utf-8")
    with pytest.raises(ProcessFileError) as ei:
        StageMapping.from_toml(bad)
    codes = {pr.code for pr in ei.value.problems}
    assert {"required", "unknown_key"} <= codes
    with pytest.raises(DefinitionError):
        StageMapping.from_dict({})
    sp = SalesProcess()
    assert [pr.code for pr in StageMapping.from_dict({"process": "b2b", "stages": {"x": "nowhere"}}).check(
        {"b2b": sp.process("b2b")})] == ["unknown_stage"]


def test_connections_file(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(
        '[connections.hubspot-main]\nadapter = "hubspot"\nbase_url = "http://127.0.0.1:9"\n'
        'token_env = "HS_TOKEN"\npolicy = "crm-wins"\ncurrency = "CNY"\nmapping = "m.toml"\npage_size = 50\n'
        'rate_limit = "190/10s"\n[connections.hubspot-main.owners]\n"42" = "rep-wang"\n', encoding="utf-8")
    (tmp_path / "m.toml").write_text('process = "b2b"\n[stages]\nqualifiedtobuy = "first_contact"\n', encoding="utf-8")
    (c,) = load_connections(p).values()
    assert (c.name, c.adapter, c.policy, c.currency, c.source) == ("hubspot-main", "hubspot", "crm-wins", "CNY", "hubspot-main")
    assert c.mapping() is not None
    assert c.adapter_options() == {"page_size": 50, "rate_limit": "190/10s"}
    cfg = c.config({"HS_TOKEN": "pat-abc"})
    assert isinstance(cfg["token"], Secret)
    assert "pat-abc" not in repr(cfg)
    with pytest.raises(AuthError, match="HS_TOKEN is not set"):
        c.config({})


# ------------------------------------------------------------------------------------------------
# Outbox and hooks
# ------------------------------------------------------------------------------------------------


def test_outbox_entry_is_written_with_the_change_or_not_at_all(crm: InMemoryCrm, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite")
    eng = engine(crm, store)
    proc = eng.process(eng.mapping.pipelines[0].process)
    d = proc.open_deal("d1", at=crm.now(), actor="me", name="One")
    eng.outbox.save_deal(d, expected_version=None)
    assert eng.outbox.count() == 1
    stale = d.with_details(name="Two", at=crm.now(), actor="me")
    with pytest.raises(StoreError):  # a stale version: neither the deal nor the entry changes
        eng.outbox.save_deal(stale, expected_version=5)
    entry = eng.outbox.get("d1")
    assert entry is not None
    assert entry.version == 1
    assert store.get_deal("d1").name == "One"
    save_deal(store, stale, expected_version=1, connections=["ref", "other"])
    assert eng.outbox.get("d1").version == 2  # type: ignore[union-attr]
    assert SyncEngine(store, eng.adapter, connection="other").outbox.count() == 1
    store.close()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def salesprocess_sync_bypass(self, connection: str, bypass: Any, deal: Any) -> None:
        self.calls.append(("bypass", (connection, bypass.kind, deal.stage)))

    @hookimpl
    def salesprocess_sync_conflict(self, connection: str, conflict: Any) -> None:
        self.calls.append(("conflict", (connection, conflict.field)))

    @hookimpl
    def salesprocess_sync_finished(self, connection: str, direction: str, summary: Any) -> None:
        self.calls.append(("finished", direction))

    @hookimpl
    def salesprocess_deal_saved(self, deal: Any, events: Any, store: Any) -> None:
        self.calls.append(("saved", (deal.id, len(events))))


def test_hooks_fire_after_commit_and_never_in_a_dry_run(crm: InMemoryCrm) -> None:
    rec = Recorder()
    sp = SalesProcess(plugins=[rec])
    rid = crm.create_deal("Jumper", "new")
    crm.update_deal(rid, stage="proposal")
    eng = engine(crm, app=sp, kinds=[ObjectKind.DEALS])
    eng.pull(dry_run=True)
    assert rec.calls == []
    eng.pull()
    assert ("bypass", ("ref", "skipped_stage", "proposal")) in rec.calls
    assert ("saved", ("ref-" + rid, 2)) in rec.calls
    assert rec.calls[-1] == ("finished", "pull")


def test_whole_batch_refusal_is_narrowed_to_the_bad_record(crm: InMemoryCrm) -> None:
    class Strict(ReferenceAdapter):
        def push(self, items: Sequence[PushItem]) -> list[PushResult]:
            if any(i.values.get("name") == "poison" for i in items):
                raise RemoteValidationError("the batch has a bad record", vendor_code="BAD")
            return super().push(items)

    eng = engine(crm, adapter=Strict(crm, token="ref-token-0"))
    proc = eng.process(eng.mapping.pipelines[0].process)
    for i, n in enumerate(["a", "b", "poison", "c", "d"]):
        eng.outbox.save_deal(proc.open_deal(f"x{i}", at=crm.now(), actor="me", name=n), expected_version=None)
    s = eng.push()
    assert (s.created, s.failed, s.parked) == (4, 1, 1)
    assert s.failures[0].record_id == "x2"
    assert s.failures[0].code == "BAD"


def test_dry_run_push_sends_nothing(crm: InMemoryCrm) -> None:
    eng = engine(crm)
    proc = eng.process(eng.mapping.pipelines[0].process)
    eng.outbox.save_deal(proc.open_deal("n1", at=crm.now(), actor="me", name="N"), expected_version=None)
    s = eng.push(dry_run=True)
    assert (s.sent, s.dry_run) == (1, True)
    assert crm.deal_ids() == []
    assert eng.outbox.count("pending") == 1


def test_a_record_that_fails_to_apply_is_kept_and_retried(crm: InMemoryCrm) -> None:
    rid = crm.create_deal("Negative", "new", amount="-5")
    eng = engine(crm, kinds=[ObjectKind.DEALS])
    s = eng.pull()
    assert (s.created, s.failed) == (0, 1)
    (f,) = eng.failures()
    assert (f.record_id, f.code) == (rid, "invalid_amount")
    assert eng.pull().failed == 1, "the stored record is tried again"
    crm.update_deal(rid, amount="5")
    s = eng.pull()
    assert (s.created, s.failed) == (1, 0)
    assert eng.failures() == []


def test_record_encoding_round_trips(crm: InMemoryCrm) -> None:
    rid = crm.create_deal("Enc", "new", amount="12.5", close_date=date(2026, 5, 1))
    crm.update_deal(rid, stage="won")
    eng = engine(crm)
    page = next(iter(eng.adapter.pull("deals", None)))
    for r in page.records:
        assert decode_record(encode_record(r)) == r


def test_deals_created_from_the_crm_carry_history_as_crm_sync_events(crm: InMemoryCrm) -> None:
    rid = crm.create_deal("Won deal", "new", amount="100")
    crm.update_deal(rid, stage="qualified")
    crm.update_deal(rid, stage="proposal")
    crm.update_deal(rid, stage="won")
    eng = engine(crm)
    eng.pull()
    d = eng.store.find_deal("ref", rid)
    assert d is not None
    assert [e.kind for e in d.events] == ["created", "stage_changed", "stage_changed", "won"]
    assert {e.source for e in d.events} == {EventSource.CRM_SYNC}
    assert isinstance(d.events[-1], DealWon)
    assert d.amount == Money("100", "USD")
    assert eng.bypasses() == []


def test_newest_wins_compares_change_times(crm: InMemoryCrm) -> None:
    rid = crm.create_deal("T", "new", amount="1", close_date=date(2026, 1, 1))
    eng = engine(crm, policy=ConflictPolicy.NEWEST_WINS)
    eng.pull()
    d = eng.store.find_deal("ref", rid)
    assert d is not None
    crm.update_deal(rid, close_date=date(2026, 2, 2))
    later = crm.now() + timedelta(minutes=5)
    eng.outbox.save_deal(d.with_close_date(date(2026, 3, 3), at=later, actor="me"), expected_version=d.version)
    eng.push()
    assert crm.get_deal(rid)["close_date"] == date(2026, 3, 3)
    (c,) = eng.conflicts()
    assert (c.field, c.winner, c.local, c.remote) == ("close_date", "local", date(2026, 3, 3), date(2026, 2, 2))
    assert c.local_at == later


def test_account_changes_are_pull_only(crm: InMemoryCrm) -> None:
    acc = crm.create_account("Acme")
    rid = crm.create_deal("With account", "new")
    crm.update_deal(rid, account=acc)
    eng = engine(crm)
    eng.pull()
    d = eng.store.find_deal("ref", rid)
    assert d is not None
    assert d.account_id == f"ref-{acc}"
    eng.outbox.save_deal(d.with_details(account_id="mine", at=d.updated_at, actor="me"), expected_version=d.version)
    s = eng.push()
    assert s.sent == 0, "account changes are not pushed"


def test_engine_refuses_bad_connection_names(crm: InMemoryCrm) -> None:
    with pytest.raises(ValueError, match="connection name"):
        SyncEngine(MemoryStore(), ReferenceAdapter(crm, token="t"), connection="a/b")


def test_retries_are_exhausted_into_typed_errors(crm: InMemoryCrm) -> None:
    crm.create_deal("x")
    eng = engine(crm)
    eng.mapping  # noqa: B018
    crm.fail_next("timeout", 10)
    with pytest.raises(AdapterError, match="timeout"):
        eng.pull()
    crm.clear_faults()
    crm.fail_next("expired_token", 1)
    bad = SyncEngine(MemoryStore(), ReferenceAdapter(crm, token="ref-token-0"), connection="x")
    with pytest.raises(AuthError):
        bad.pull()



# ------------------------------------------------------------------------------------------------
# Pages applied together (a backlog taken at once) give what one page at a time gives
# ------------------------------------------------------------------------------------------------


class _ListAdapter(ReferenceAdapter):
    """Pipelines from the reference CRM; a fixed list of deal pages."""

    pages: Sequence[Any] = ()

    def pull(self, kind: str, cursor: Any) -> Any:
        return iter(self.pages if kind == ObjectKind.DEALS else [])


def _pull_grouped(crm: InMemoryCrm, pages: list[Any], sizes: list[int], store: Any) -> tuple[Any, SyncEngine]:
    from unittest import mock

    import salesprocess.sync.engine as engine_mod

    def grouped(it: Any, depth: int) -> Any:
        items, i, k = list(it), 0, 0
        while i < len(items):
            n = sizes[k % len(sizes)]
            yield items[i:i + n]
            i, k = i + n, k + 1

    ad = _ListAdapter(crm, token="ref-token-0")
    ad.pages = pages
    eng = SyncEngine(store, ad, connection="ref", kinds=[ObjectKind.DEALS], prefetch=1)
    with mock.patch.object(engine_mod, "_prefetch", grouped):
        summary = eng.pull()
    return summary, eng


def _history_pages(seed: int) -> tuple[InMemoryCrm, list[Any], list[str]]:
    rng = random.Random(seed)
    crm = InMemoryCrm()
    ids = [crm.create_deal(f"D{i}", rng.choice(crm.open_stage_ids()), amount=rng.choice(["-5", "10", "20"]))
           for i in range(7)]
    ref = ReferenceAdapter(crm, token="ref-token-0", page_size=3)
    pages = list(ref.pull(ObjectKind.DEALS, None))
    for rid in rng.sample(ids, 4):
        crm.update_deal(rid, stage=rng.choice(crm.stage_ids()), amount=rng.choice(["-1", "30"]))
    pages += list(ref.pull(ObjectKind.DEALS, None))  # the same deals again, some changed
    pages += pages[: rng.randint(0, 2)]  # and a few pages seen twice
    return crm, pages, ids


def _outcome(summary: Any, eng: SyncEngine, ids: list[str]) -> Any:
    return (
        summary.as_dict(), [eng.store.find_deal("ref", rid) for rid in ids], eng.bypasses(),
        sorted((f.record_id, f.code) for f in eng.failures()), eng.cursor(ObjectKind.DEALS),
    )


@given(st.lists(st.integers(1, 5), min_size=1, max_size=6), st.integers(0, 2**16))
def test_pages_applied_together_equal_pages_applied_one_by_one(sizes: list[int], seed: int) -> None:
    crm, pages, ids = _history_pages(seed)
    one = _outcome(*_pull_grouped(crm, pages, [1], MemoryStore()), ids)
    together = _outcome(*_pull_grouped(crm, pages, sizes, MemoryStore()), ids)
    assert together == one


def test_pages_applied_together_on_sqlite(tmp_path: Path) -> None:
    crm, pages, ids = _history_pages(7)
    one = _outcome(*_pull_grouped(crm, pages, [1], SQLiteStore(tmp_path / "one.db")), ids)
    together = _outcome(*_pull_grouped(crm, pages, [len(pages)], SQLiteStore(tmp_path / "all.db")), ids)
    assert together == one


def test_prefetch_hands_over_the_backlog_in_order_and_then_the_error() -> None:
    import threading
    import time

    from salesprocess.sync.adapter import Page
    from salesprocess.sync.engine import _prefetch

    ready = threading.Event()
    pages = [Page((), {"n": i}) for i in range(6)]

    def produce() -> Any:
        yield from pages[:1]
        ready.wait(5)
        yield from pages[1:]
        raise RemoteValidationError("boom")

    got: list[list[Any]] = []
    it = _prefetch(produce(), depth=10, group=1)
    with pytest.raises(RemoteValidationError):
        for batch in it:
            got.append(batch)
            ready.set()
    assert [p for b in got for p in b] == pages, "every page, in order, before the error"

    big = [Page(("r1", "r2"), {"n": i}) for i in range(7)]  # type: ignore[arg-type]
    it2 = _prefetch(iter(big), depth=10, group=4)
    first = next(it2)
    time.sleep(0.2)  # the producer fills the queue meanwhile
    rest = list(it2)
    assert [p for b in [first, *rest] for p in b] == big
    assert all(sum(len(p.records) for p in b) <= 4 for b in [first, *rest])
    assert any(len(b) == 2 for b in rest), "waiting pages come together"
