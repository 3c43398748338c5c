"""The company generator: reproducible, valid for its process, and shaped like a real pipeline."""

from __future__ import annotations

import io
import itertools
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from salesprocess import SalesProcess
from salesprocess.errors import DomainError
from salesprocess.generate import Company, generate_company, iter_company, write_company
from salesprocess.model import (
    Activity,
    ActivityStatus,
    CloseDateChanged,
    Deal,
    DealCreated,
    DealLost,
    DealReopened,
    DealStatus,
    DealWon,
    OwnerChanged,
    StageChanged,
    replay,
)
from salesprocess.process import Process
from salesprocess.processes import load
from salesprocess.store import MemoryStore
from salesprocess_adapters.tabular import EXPORT_KINDS, export

START = date(2024, 1, 1)


@pytest.fixture(scope="module")
def company() -> Company:
    return generate_company(deals=1200, seed=11, start=START, months=24)


def _export_all(c: Company) -> str:
    store = MemoryStore()
    write_company(store, c)
    out = io.StringIO()
    for kind in EXPORT_KINDS:
        export(store, kind, out, format="jsonl")
    return out.getvalue()


def _check_history(p: Process, deal: Deal, acts: list[Activity]) -> None:
    """Re-drive every stage event of ``deal`` through the process: each move must be allowed
    (no unmet criterion) and the machine must produce exactly the recorded event."""
    d = replay(deal.events[:1])
    for e in deal.events[1:]:
        if isinstance(e, StageChanged):
            done = [a for a in acts if a.at <= e.at]
            problems = p.check(d, e.to_stage, at=e.at, reason=e.reason, activities=done)
            assert problems == [], (deal.id, e, problems)
            moved = p.advance(d, e.to_stage, at=e.at, actor=e.actor, reason=e.reason, activities=done)
            assert moved.events[-1] == e, (deal.id, e)
        d = d.append(e)
    assert d == deal


def test_same_seed_same_company_byte_for_byte() -> None:
    a = generate_company(deals=150, seed=5, start=START, months=12)
    b = generate_company(deals=150, seed=5, start=START, months=12)
    assert _export_all(a) == _export_all(b)
    assert a.deals == b.deals


def test_different_seed_different_company() -> None:
    a = generate_company(deals=150, seed=5, start=START, months=12)
    b = generate_company(deals=150, seed=6, start=START, months=12)
    assert _export_all(a) != _export_all(b)
    assert [d.amount for d in a.deals] != [d.amount for d in b.deals]


def test_streaming_equals_collected() -> None:
    items = list(iter_company(deals=80, seed=3, start=START, months=6))
    c = generate_company(deals=80, seed=3, start=START, months=6)
    assert [x for x in items if isinstance(x, Deal)] == list(c.deals)
    assert [x for x in items if isinstance(x, Activity)] == list(c.activities)
    # each deal comes right after its own activities
    seen: set[str] = set()
    for x in items:
        if isinstance(x, Activity):
            assert x.deal_id not in seen
        elif isinstance(x, Deal):
            seen.add(x.id)


def test_every_history_replays_and_is_valid_for_the_process(company: Company) -> None:
    p = company.process
    acts: dict[str | None, list[Activity]] = {}
    for a in company.activities:
        if a.status is ActivityStatus.DONE:
            acts.setdefault(a.deal_id, []).append(a)
    for d in company.deals:
        assert replay(d.events) == d
        _check_history(p, d, acts.get(d.id, []))


def test_time_order_and_the_as_of_end(company: Company) -> None:
    asof = company.asof
    assert asof == datetime(2026, 1, 1, tzinfo=UTC)
    for d in company.deals:
        ats = [e.at for e in d.events]
        assert ats == sorted(ats), d.id
        assert ats[-1] <= asof
        assert d.created_at >= datetime(2024, 1, 1, tzinfo=UTC)
    open_deals = [d for d in company.deals if d.status is DealStatus.OPEN]
    # deals created in the last month are mostly still open at the end
    recent = [d for d in company.deals if d.created_at >= asof - timedelta(days=30)]
    assert recent
    assert sum(d.status is DealStatus.OPEN for d in recent) / len(recent) > 0.8
    assert len(open_deals) < len(company.deals) / 2


def test_drop_off_counts_decrease_through_the_stages(company: Company) -> None:
    p = company.process
    path = [s.key for s in p.stages if s.kind.value == "open"] + ["won"]
    reached: Counter[str] = Counter()
    for d in company.deals:
        stages = {d.events[0].stage} | {e.to_stage for e in d.events if isinstance(e, StageChanged)}
        reached.update(stages)
    counts = [reached[k] for k in path]
    assert counts[0] == len(company.deals)
    assert all(a > b for a, b in itertools.pairwise(counts)), counts
    won = sum(d.status is DealStatus.WON for d in company.deals)
    assert 0.12 < won / len(company.deals) < 0.4


def test_the_company_looks_real(company: Company) -> None:
    kinds = Counter(type(e).__name__ for d in company.deals for e in d.events)
    for k in ("CloseDateChanged", "AmountChanged", "DetailsChanged", "ChecklistItemChanged",
              "DealWon", "DealLost", "DealReopened", "OwnerChanged", "ProbabilityChanged"):
        assert kinds[k] > 0, k
    assert any(d.competitors for d in company.deals)
    reasons = Counter(d.lost_reason for d in company.deals if d.status is DealStatus.LOST)
    assert None not in reasons
    assert len(reasons) >= 4
    # slipped close dates: pushed to a later date while the deal was open
    slips = [e for d in company.deals for e in d.events
             if isinstance(e, CloseDateChanged) and e.old is not None and e.new is not None and e.new > e.old]
    assert len(slips) > len(company.deals) / 10
    acts = Counter((a.kind.value, a.status.value) for a in company.activities)
    for kind in ("call", "email", "meeting", "visit"):
        assert acts[(kind, "done")] > 0, kind
    assert sum(n for (_, st), n in acts.items() if st == "planned") > 0
    # Chinese company names next to English ones
    cjk = [a for a in company.accounts if re.search(r"[\u4e00-\u9fff]", a.name)]
    assert 0 < len(cjk) < len(company.accounts)
    assert {a.size_band for a in company.accounts} == {"smb", "mid_market", "enterprise"}
    assert len({a.industry for a in company.accounts}) >= 6
    # amounts: Money in the company's currency, spread over orders of magnitude
    amounts = sorted(d.amount.amount for d in company.deals if d.amount is not None)
    assert {d.amount.currency for d in company.deals if d.amount is not None} == {"USD"}
    assert amounts[len(amounts) * 9 // 10] > 5 * amounts[len(amounts) // 10]


def test_hierarchy_and_reps(company: Company) -> None:
    teams = {t.id: t for t in company.teams}
    reps = {r.id: r for r in company.reps}
    roots = [t for t in teams.values() if t.parent_id is None]
    assert len(roots) == 1
    for t in teams.values():
        assert t.manager_id in reps
        depth, cur = 0, t
        while cur.parent_id is not None:
            cur = teams[cur.parent_id]
            depth += 1
        assert depth <= 2
    aes = [r for r in reps.values() if r.role == "ae"]
    for r in aes:
        mgr = reps[r.manager_id]  # type: ignore[index]
        assert mgr.role == "manager"
        assert teams[r.team_id].manager_id == mgr.id  # type: ignore[index]
    # some reps joined during the period and ramp up
    assert any(r.hired_on is not None and r.hired_on > START for r in aes)
    # skill differs: win rates of reps with enough closed deals are spread out
    closed: dict[str, list[bool]] = {}
    for d in company.deals:
        if d.is_closed and d.owner_id:
            closed.setdefault(d.owner_id, []).append(d.status is DealStatus.WON)
    rates = [sum(v) / len(v) for v in closed.values() if len(v) >= 30]
    assert max(rates) - min(rates) > 0.08
    # managers own no deals, and nobody owns a deal from before they joined
    assert {d.owner_id for d in company.deals} <= {r.id for r in aes}
    for d in company.deals:
        owners = [d.events[0].owner_id] + [e.new for e in d.events if isinstance(e, OwnerChanged)]
        for o in owners:
            hired = reps[o].hired_on
            assert hired is not None
            assert hired <= d.created_at.date(), (d.id, o)


def test_quarter_end_spike(company: Company) -> None:
    wins = [d.closed_at.date() for d in company.deals if d.status is DealStatus.WON and d.closed_at]
    def last_two_weeks(day: date) -> bool:
        q_end_month = ((day.month - 1) // 3 + 1) * 3
        nxt = date(day.year + (q_end_month == 12), q_end_month % 12 + 1, 1)
        return (nxt - day).days <= 14
    share = sum(map(last_two_weeks, wins)) / len(wins)
    assert share > 1.5 * 14 / 91


def test_drives_another_process() -> None:
    saas = load("saas")
    c = generate_company(deals=200, seed=2, start=START, months=12, process=saas, currency="EUR")
    assert {d.process for d in c.deals} == {"saas"}
    assert {p.list_price.currency for p in c.products if p.list_price} == {"EUR"}
    assert any(d.status is DealStatus.WON for d in c.deals)
    acts: dict[str | None, list[Activity]] = {}
    for a in c.activities:
        if a.status is ActivityStatus.DONE:
            acts.setdefault(a.deal_id, []).append(a)
    for d in c.deals:
        _check_history(saas, d, acts.get(d.id, []))


def test_timezone_of_working_hours() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    c = generate_company(deals=60, seed=4, start=START, months=3, tz=tz)
    assert c.asof == datetime(2024, 4, 1, tzinfo=tz)
    created = [d.created_at.astimezone(tz) for d in c.deals]
    assert all(9 <= t.hour < 18 and t.weekday() < 5 for t in created)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(DomainError, match="deals"):
        generate_company(deals=-1, seed=1, start=START)
    with pytest.raises(DomainError, match="currency"):
        generate_company(deals=10, seed=1, start=START, currency="XXY")
    with pytest.raises(DomainError, match="months"):
        generate_company(deals=10, seed=1, start=START, months=0)


def test_write_company_into_sqlite(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "gen.sqlite"
    store = SalesProcess().open_store(str(path))
    calls: list[int] = []
    try:
        n = write_company(store, iter_company(deals=120, seed=9, start=START, months=6),
                          progress=calls.append, batch_size=50)
        assert n == 120
        assert calls == [50, 50, 20]
        c = generate_company(deals=120, seed=9, start=START, months=6)
        assert list(store.deals()) == sorted(c.deals, key=lambda d: d.id)
        assert list(store.all(Activity)) == sorted(c.activities, key=lambda a: a.id)
        assert store.get_process("b2b") == c.process
    finally:
        store.close()


def test_stage_events_are_the_real_event_types(company: Company) -> None:
    for d in company.deals:
        assert isinstance(d.events[0], DealCreated)
        for e in d.events[1:]:
            if isinstance(e, DealWon | DealLost | DealReopened):
                assert e.to_stage in ("won", "lost", "negotiation")


def test_same_company_whatever_the_hash_seed() -> None:
    """String hashing differs between interpreter runs; the company must not."""
    import hashlib
    import os
    import subprocess
    import sys

    code = (
        "import io, hashlib\n"
        "from datetime import date\n"
        "from salesprocess.generate import generate_company, write_company\n"
        "from salesprocess.processes import load\n"
        "from salesprocess.store import MemoryStore\n"
        "from salesprocess_adapters.tabular import EXPORT_KINDS, export\n"
        "s = MemoryStore()\n"
        "for p in ('b2b', 'saas'):\n"
        "    c = generate_company(deals=60, seed=8, start=date(2024, 1, 1), months=6, process=load(p))\n"
        "    s = MemoryStore(); write_company(s, c); out = io.StringIO()\n"
        "    for k in EXPORT_KINDS: export(s, k, out, format='csv')\n"
        "    print(hashlib.sha256(out.getvalue().encode()).hexdigest())\n"
    )
    digests = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        digests.append(r.stdout)
    assert digests[0] == digests[1]
    assert len(digests[0].split()) == 2
    assert hashlib.sha256(b"").hexdigest() not in digests[0]
