"""The store conformance kit: one test suite every :class:`~salesprocess.store.Store` must pass.

Subclass :class:`StoreConformance` in a test module and give it one fixture, ``store``, that
yields a fresh, empty store and closes it afterwards::

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            s = MyStore(tmp_path / "data")
            yield s
            s.close()

Tests that need a capability the store does not declare in ``capabilities`` (see
:class:`~salesprocess.store.Capability`) are skipped with a reason. Stores that declare
``PERSISTENT`` or ``MULTI_PROCESS`` are reopened through :meth:`StoreConformance.reopen`, which
calls ``store.reopen()`` unless the subclass overrides it.

The Hypothesis tests reuse the one store across examples, so every example writes deals under
fresh ids (see :class:`DealRecipe`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ..errors import ConflictError, NotFoundError
from ..model import (
    Account,
    Activity,
    ActivityKind,
    ActivityStatus,
    Contact,
    Deal,
    DealLost,
    DealReopened,
    DealStatus,
    DealWon,
    EventSource,
    ForecastCategory,
    ProcessMigrated,
    Product,
    Rep,
    StageChanged,
    Team,
    replay,
)
from ..money import Money, Rate
from ..periods import Period
from ..process import Process
from ..store import Capability, DealFilter, Store

__all__ = [
    "DealRecipe",
    "StoreConformance",
    "build_deal",
    "deal_recipes",
    "money_values",
    "move",
    "texts",
]

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
"""The instant the kit's hand-built deals start at."""

_uids = itertools.count(1)


def _uid(prefix: str) -> str:
    return f"{prefix}-{next(_uids)}"


# ------------------------------------------------------------------------------------------------
# Deal building helpers
# ------------------------------------------------------------------------------------------------


def build_deal(
    id: str,
    *,
    at: datetime = T0,
    process: str = "b2b",
    stage: str = "lead",
    name: str | None = None,
    **fields: Any,
) -> Deal:
    """A new deal (one ``created`` event) with the given fields (see :meth:`Deal.create`)."""
    return Deal.create(id, process=process, stage=stage, at=at, actor="kit", name=name or f"Deal {id}", **fields)


def move(deal: Deal, to: str, at: datetime, *, outcome: str = "open", reason: str | None = None) -> Deal:
    """``deal`` moved to stage ``to`` at ``at``: ``outcome`` is ``open``, ``won``, ``lost`` or
    ``reopened`` (picks the event type)."""
    cls = {"open": StageChanged, "won": DealWon, "lost": DealLost, "reopened": DealReopened}[outcome]
    return deal.append(
        cls(
            deal_id=deal.id, at=at, actor="kit", source=EventSource.USER,
            from_stage=deal.stage, to_stage=to, reason=reason,
        )
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Hypothesis strategies (self-contained: the kit does not depend on other test helpers)
# ------------------------------------------------------------------------------------------------

_SAMPLE_TEXTS = ("华东区年度框架协议", "北京·智慧园区二期（含运维）", "Ωmega GmbH & Co. KG", "😀 émoji—deal", "")


def texts(max_size: int = 30) -> st.SearchStrategy[str]:
    """Unicode text any store must keep: every character but surrogates and NUL."""
    return st.text(
        st.characters(codec="utf-8", exclude_characters="\x00"), max_size=max_size
    ) | st.sampled_from(_SAMPLE_TEXTS)


_keys = st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=45))]
)
_instants = st.builds(
    lambda dt, tz: dt.replace(tzinfo=UTC).astimezone(tz),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)),
    _zones,
)
_steps_apart = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40))


def money_values(currencies: Sequence[str] = ("JPY", "USD", "KWD", "CNY", "EUR")) -> st.SearchStrategy[Money]:
    """Non-negative amounts with 0 to 12 decimals up to 10^18 (and a few awkward exact forms)."""
    amounts = st.integers(0, 12).flatmap(
        lambda places: st.decimals(
            min_value=0, max_value=Decimal(10) ** 18, places=places, allow_nan=False, allow_infinity=False
        )
    ) | st.sampled_from([Decimal("0"), Decimal("0.000"), Decimal("1E+3"), Decimal("123456789012345678.123456789")])
    return st.builds(Money, amounts, st.sampled_from(list(currencies)))


_custom_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | texts(10)
    | st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**9), max_value=10**9)
    | st.dates()
    | money_values(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=6,
)


@attrs.frozen
class DealRecipe:
    """A drawn deal history that can be built under any id (so examples never collide)."""

    created: dict[str, Any]
    steps: tuple[tuple[Any, ...], ...]

    def build(self, deal_id: str) -> Deal:
        c = dict(self.created)
        at: datetime = c.pop("at")
        ext = c.pop("external_sources")
        d = Deal.create(deal_id, at=at, external_ids={s: f"{s}-{deal_id}" for s in ext}, **c)
        for step in self.steps:
            at = at + step[1]
            kind, args = step[0], step[2:]
            if kind == "amount":
                d = d.with_amount(args[0], at=at, actor=args[1])
            elif kind == "close_date":
                d = d.with_close_date(args[0], at=at, actor=args[1])
            elif kind == "owner":
                d = d.with_owner(args[0], at=at, actor=args[1])
            elif kind == "probability":
                d = d.with_probability(args[0], at=at, actor=args[1], source=args[2])
            elif kind == "forecast":
                d = d.with_forecast_category(args[0], at=at, actor=args[1])
            elif kind == "checklist":
                d = d.with_checklist_item(args[0], args[1], at=at, actor="kit")
            elif kind == "details":
                d = d.with_details(at=at, actor="kit", **args[0])
            elif kind == "stage":
                to, outcome, reason = args
                if d.status is not DealStatus.OPEN:
                    outcome = "reopened"
                d = move(d, to, at, outcome=outcome, reason=reason)
            elif kind == "migrate":
                to_version, to_stage = args
                d = d.append(
                    ProcessMigrated(
                        deal_id=d.id, at=at, actor="kit", source=EventSource.RULE, process=d.process,
                        from_version=d.process_version, to_version=to_version, from_stage=d.stage,
                        to_stage=to_stage,
                    )
                )
        return d


def _step(kind: str, *args: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(st.just(kind), _steps_apart, *args)


_details = st.fixed_dictionaries(
    {},
    optional={
        "name": texts(),
        "account_id": st.none() | _keys,
        "competitors": st.lists(texts(8), max_size=3),
        "lost_reason": st.none() | texts(12),
        "contact_ids": st.lists(_keys, max_size=3),
        "product_ids": st.lists(_keys, max_size=3),
        "custom": st.dictionaries(_keys, _custom_values, max_size=3),
    },
)


@st.composite
def deal_recipes(draw: st.DrawFn, max_steps: int = 8) -> DealRecipe:
    """Deal histories: a creation with most fields drawn, then up to ``max_steps`` changes
    (amount, close date, owner, probability, forecast category, checklist, details, stage moves
    incl. win/loss/reopen, process migration) at non-decreasing instants."""
    opt_keys = st.none() | _keys
    created = {
        "at": draw(_instants),
        "process": draw(_keys),
        "process_version": draw(st.integers(1, 5)),
        "stage": draw(_keys),
        "actor": draw(texts(8)),
        "source": draw(st.sampled_from(list(EventSource))),
        "name": draw(texts()),
        "amount": draw(st.none() | money_values()),
        "close_date": draw(st.none() | st.dates(date(2000, 1, 1), date(2100, 1, 1))),
        "owner_id": draw(opt_keys),
        "account_id": draw(opt_keys),
        "probability": draw(st.none() | st.decimals(0, 1, places=3).map(Rate)),
        "forecast_category": draw(st.none() | st.sampled_from(list(ForecastCategory))),
        "competitors": draw(st.lists(texts(8), max_size=3)),
        "contact_ids": draw(st.lists(_keys, max_size=3)),
        "product_ids": draw(st.lists(_keys, max_size=2)),
        "checklist": draw(st.lists(_keys, max_size=3)),
        "custom": draw(st.dictionaries(_keys, _custom_values, max_size=4)),
        "external_sources": draw(st.lists(_keys, max_size=2, unique=True)),
    }
    actor = texts(6)
    step = st.one_of(
        _step("amount", st.none() | money_values(), actor),
        _step("close_date", st.none() | st.dates(date(2000, 1, 1), date(2100, 1, 1)), actor),
        _step("owner", st.none() | _keys, actor),
        _step("probability", st.none() | st.decimals(0, 1, places=2).map(Rate), actor,
              st.sampled_from(list(EventSource))),
        _step("forecast", st.none() | st.sampled_from(list(ForecastCategory)), actor),
        _step("checklist", _keys, st.booleans()),
        _step("details", _details),
        _step("stage", _keys, st.sampled_from(["open", "won", "lost"]), st.none() | texts(12)),
        _step("migrate", st.integers(1, 9), _keys),
    )  # fmt: skip
    steps = draw(st.lists(step, max_size=max_steps))
    return DealRecipe(created, tuple(steps))


_kit_settings = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.differing_executors,  # one kit method runs for every store class
    ],
)


# ------------------------------------------------------------------------------------------------
# The suite
# ------------------------------------------------------------------------------------------------


def _ids(deals: Iterator[Deal]) -> list[str]:
    return [d.id for d in deals]


class StoreConformance:
    """Mix into a ``Test*`` class that supplies the ``store`` fixture (a fresh, empty store)."""

    # --- hooks for subclasses -----------------------------------------------------------------
    def reopen(self, store: Any) -> Any:
        """A second handle on the data of ``store`` (used for PERSISTENT and MULTI_PROCESS tests).
        The default calls ``store.reopen()``."""
        opener: Callable[[], Any] | None = getattr(store, "reopen", None)
        if opener is None:
            pytest.fail(f"{type(store).__name__} has no reopen(); override StoreConformance.reopen")
        return opener()

    @staticmethod
    def require(store: Any, capability: str) -> None:
        """Skip the running test unless ``store`` declares ``capability``."""
        if capability not in store.capabilities:
            pytest.skip(f"{type(store).__name__} does not declare the {capability!r} capability")

    # --- the contract itself ------------------------------------------------------------------
    def test_is_a_store(self, store: Any) -> None:
        assert isinstance(store, Store)
        known = {Capability.PERSISTENT, Capability.MULTI_PROCESS, Capability.SQL_PUSHDOWN, Capability.TRANSACTIONS}
        assert isinstance(store.capabilities, frozenset)
        assert store.capabilities <= known

    def test_empty_store(self, store: Any) -> None:
        assert list(store.deals()) == []
        assert store.count_deals() == 0
        assert list(store.events()) == []
        assert store.process_keys() == []
        assert list(store.all(Account)) == []
        assert list(store.documents("goal")) == []

    # --- processes ----------------------------------------------------------------------------
    @staticmethod
    def _process(version: int = 1, name: str | None = None) -> Process:
        from ..processes import load

        data = load("b2b").to_dict()
        data["version"] = version
        if name is not None:
            data["name"] = name
        return Process.from_dict(data)

    def test_process_versions_round_trip(self, store: Any) -> None:
        p1, p2 = self._process(1), self._process(2, "B2B 流程（第二版）")
        store.save_process(p1)
        store.save_process(p2)
        assert store.process_versions("b2b") == [1, 2]
        assert store.process_keys() == ["b2b"]
        assert store.get_process("b2b") == p2
        assert store.get_process("b2b").name == "B2B 流程（第二版）"
        assert store.get_process("b2b", 1) == p1
        assert store.get_process("b2b", 1).to_dict() == p1.to_dict()

    def test_process_same_version_same_content_is_a_no_op(self, store: Any) -> None:
        store.save_process(self._process(1))
        store.save_process(self._process(1))
        assert store.process_versions("b2b") == [1]

    def test_process_same_version_other_content_conflicts(self, store: Any) -> None:
        store.save_process(self._process(1))
        with pytest.raises(ConflictError):
            store.save_process(self._process(1, "another name"))
        assert store.get_process("b2b", 1) == self._process(1)

    def test_process_not_found(self, store: Any) -> None:
        with pytest.raises(NotFoundError):
            store.get_process("nope")
        store.save_process(self._process(1))
        with pytest.raises(NotFoundError):
            store.get_process("b2b", 7)
        assert store.process_versions("nope") == []

    # --- deals: round trips and optimistic concurrency ------------------------------------------
    @staticmethod
    def _rich_deal(deal_id: str = "deal-1") -> Deal:
        d = build_deal(
            deal_id,
            name="华东区年度框架协议",
            amount=Money("1280000.50", "CNY"),
            close_date=date(2026, 6, 30),
            owner_id="rep-1",
            account_id="acc-1",
            probability=Rate("0.2"),
            forecast_category=ForecastCategory.PIPELINE,
            competitors=["竞品A", "Competitor B"],
            contact_ids=["c-1", "c-2"],
            product_ids=["p-1"],
            checklist=["budget_confirmed"],
            custom={"region": "华东", "seats": 120, "discount": Decimal("0.15"), "nested": {"k": [1, "二"]}},
            external_ids={"crm": f"X-{deal_id}"},
        )
        d = move(d, "qualify", T0 + timedelta(days=2))
        d = d.with_amount(Money("1300000.00", "CNY"), at=T0 + timedelta(days=3), actor="rep-1")
        d = d.with_checklist_item("decision_maker_met", at=T0 + timedelta(days=3), actor="rep-1")
        return move(d, "won", T0 + timedelta(days=9), outcome="won")

    def test_deal_round_trip(self, store: Any) -> None:
        d = self._rich_deal()
        assert store.save_deal(d, expected_version=None) == d
        got = store.get_deal(d.id)
        assert got == d
        assert got.events == d.events
        assert replay(got.events) == got
        assert store.deal_events(d.id) == d.events
        assert got.version == 5
        assert got.status is DealStatus.WON
        assert got.amount == Money("1300000.00", "CNY")

    def test_incremental_saves_append(self, store: Any) -> None:
        d1 = build_deal("inc", amount=Money("10", "USD"))
        store.save_deal(d1, expected_version=None)
        d2 = move(d1, "qualify", T0 + timedelta(hours=1))
        d3 = d2.with_owner("rep-9", at=T0 + timedelta(hours=2), actor="mgr")
        store.save_deal(d3, expected_version=1)
        d4 = d3.with_amount(Money("12", "USD"), at=T0 + timedelta(hours=3), actor="mgr")
        store.save_deal(d4, expected_version=3)
        assert store.get_deal("inc") == d4
        assert [e.kind for e in store.deal_events("inc")] == [e.kind for e in d4.events]

    def test_new_deal_saved_twice_conflicts(self, store: Any) -> None:
        d = build_deal("twice")
        store.save_deal(d, expected_version=None)
        other = build_deal("twice", name="someone else's")
        with pytest.raises(ConflictError) as ei:
            store.save_deal(other, expected_version=None)
        assert ei.value.actual == 1
        assert store.get_deal("twice") == d

    def test_stale_version_conflicts_and_changes_nothing(self, store: Any) -> None:
        base = build_deal("occ", amount=Money("100", "USD"), external_ids={"crm": "occ-1"})
        store.save_deal(base, expected_version=None)
        mine = base.with_amount(Money("200", "USD"), at=T0 + timedelta(hours=1), actor="me")
        theirs = move(base, "qualify", T0 + timedelta(hours=2))
        theirs = theirs.with_details(
            at=T0 + timedelta(hours=2), actor="them", external_ids={"crm": "occ-2"}
        )
        store.save_deal(mine, expected_version=1)
        before = (store.get_deal("occ"), list(store.events()), store.count_deals(stage="lead"))
        with pytest.raises(ConflictError) as ei:
            store.save_deal(theirs, expected_version=1)
        assert (ei.value.expected, ei.value.actual) == (1, 2)
        assert (store.get_deal("occ"), list(store.events()), store.count_deals(stage="lead")) == before
        assert store.find_deal("crm", "occ-1") == mine
        assert store.find_deal("crm", "occ-2") is None

    def test_expected_version_of_a_missing_deal_conflicts(self, store: Any) -> None:
        d = move(build_deal("ghost"), "qualify", T0 + timedelta(hours=1))
        with pytest.raises(ConflictError) as ei:
            store.save_deal(d, expected_version=1)
        assert ei.value.actual is None
        with pytest.raises(NotFoundError):
            store.get_deal("ghost")

    def test_find_deal_by_external_id(self, store: Any) -> None:
        d = build_deal("ext", external_ids={"hubspot": "hs-1", "salesforce": "006xx"})
        store.save_deal(d, expected_version=None)
        assert store.find_deal("hubspot", "hs-1") == d
        assert store.find_deal("salesforce", "006xx") == d
        assert store.find_deal("hubspot", "006xx") is None
        assert store.find_deal("pipedrive", "hs-1") is None
        d2 = d.with_details(at=T0 + timedelta(hours=1), actor="sync", external_ids={"hubspot": "hs-2"})
        store.save_deal(d2, expected_version=1)
        assert store.find_deal("hubspot", "hs-1") is None
        assert store.find_deal("salesforce", "006xx") is None
        assert store.find_deal("hubspot", "hs-2") == d2

    def test_external_id_of_another_deal_conflicts(self, store: Any) -> None:
        a = build_deal("ext-a", external_ids={"crm": "same"})
        store.save_deal(a, expected_version=None)
        with pytest.raises(ConflictError):
            store.save_deal(build_deal("ext-b", external_ids={"crm": "same"}), expected_version=None)
        with pytest.raises(NotFoundError):
            store.get_deal("ext-b")
        c = build_deal("ext-c", external_ids={"crm": "mine"})
        store.save_deal(c, expected_version=None)
        c2 = c.with_details(at=T0 + timedelta(hours=1), actor="x", external_ids={"crm": "same"})
        with pytest.raises(ConflictError):
            store.save_deal(c2, expected_version=1)
        assert store.get_deal("ext-c") == c
        assert store.find_deal("crm", "mine") == c
        assert store.find_deal("crm", "same") == a

    # --- batches and transactions -----------------------------------------------------------
    def test_save_deals_writes_all(self, store: Any) -> None:
        deals = [build_deal(f"b-{i:03d}", amount=Money(i, "JPY"), owner_id=f"r{i % 3}") for i in range(60)]
        assert store.save_deals((d, None) for d in deals) == 60
        updated = [move(d, "qualify", T0 + timedelta(days=1)) for d in deals[:20]]
        assert store.save_deals([(d, 1) for d in updated]) == 20
        assert store.count_deals() == 60
        assert list(store.deals()) == sorted(updated + deals[20:], key=lambda d: d.id)
        assert store.count_deals(owner_id="r1") == 20

    def test_save_deals_same_deal_twice_in_a_batch(self, store: Any) -> None:
        d1 = build_deal("dup")
        d2 = move(d1, "qualify", T0 + timedelta(hours=1))
        assert store.save_deals([(d1, None), (d2, 1)]) == 2
        assert store.get_deal("dup") == d2

    def test_failing_batch_writes_nothing(self, store: Any) -> None:
        old = build_deal("old")
        store.save_deal(old, expected_version=None)
        stale = move(old, "qualify", T0 + timedelta(hours=1))
        batch = [
            (build_deal("new-1", external_ids={"crm": "n1"}), None),
            (build_deal("new-2"), None),
            (stale, 5),
            (build_deal("new-3"), None),
        ]
        with pytest.raises(ConflictError):
            store.save_deals(batch)
        assert _ids(store.deals()) == ["old"]
        assert store.get_deal("old") == old
        assert store.find_deal("crm", "n1") is None
        assert len(list(store.events())) == 1

    def test_large_failing_batch_writes_nothing(self, store: Any) -> None:
        store.save_deal(build_deal("z-taken"), expected_version=None)
        batch = [(build_deal(f"big-{i:05d}"), None) for i in range(1200)]
        batch.append((build_deal("z-taken"), None))
        with pytest.raises(ConflictError):
            store.save_deals(batch)
        assert store.count_deals() == 1

    def test_transaction_rolls_back_everything(self, store: Any) -> None:
        self.require(store, Capability.TRANSACTIONS)
        keep = build_deal("keep")
        store.save_deal(keep, expected_version=None)
        store.put(Account("acc-keep", "Kept"))
        store.put_document("goal", "keep", {"v": 1})

        class Boom(Exception):
            pass

        def doomed() -> None:
            with store.transaction():
                store.save_deal(build_deal("tx-1"), expected_version=None)
                store.save_deal(move(keep, "qualify", T0 + timedelta(hours=1)), expected_version=1)
                store.save_deals([(build_deal("tx-2"), None)])
                store.put(Account("acc-tx", "Gone"), Rep("rep-tx", "Gone"))
                store.put(Account("acc-keep", "Renamed"))
                store.delete(Account, "acc-keep")
                store.put_document("goal", "tx", {"v": 2})
                store.put_document("goal", "keep", {"v": 3})
                store.save_process(self._process(1))
                raise Boom()

        with pytest.raises(Boom):
            doomed()
        assert _ids(store.deals()) == ["keep"]
        assert store.get_deal("keep") == keep
        assert [a.name for a in store.all(Account)] == ["Kept"]
        assert list(store.all(Rep)) == []
        assert list(store.documents("goal")) == [("keep", {"v": 1})]
        assert store.process_keys() == []

    def test_transaction_commits_and_nested_calls_join(self, store: Any) -> None:
        self.require(store, Capability.TRANSACTIONS)
        with store.transaction():
            store.save_deal(build_deal("n-1"), expected_version=None)
            with store.transaction():
                store.save_deal(build_deal("n-2"), expected_version=None)
                store.put_document("cursor", "crm", {"at": "2026-01-01"})
            store.put(Team("t-1", "East"))
        assert _ids(store.deals()) == ["n-1", "n-2"]
        assert store.get(Team, "t-1") == Team("t-1", "East")

        def outer_fails_after_inner_finished() -> None:
            with store.transaction():
                with store.transaction():
                    store.save_deal(build_deal("n-3"), expected_version=None)
                raise RuntimeError("outer fails")

        with pytest.raises(RuntimeError):
            outer_fails_after_inner_finished()
        assert _ids(store.deals()) == ["n-1", "n-2"]

    def test_conflict_inside_a_transaction_keeps_it_usable(self, store: Any) -> None:
        self.require(store, Capability.TRANSACTIONS)
        a = build_deal("c-a", external_ids={"crm": "a"})
        store.save_deal(a, expected_version=None)
        with store.transaction():
            store.save_deal(build_deal("c-b"), expected_version=None)
            with pytest.raises(ConflictError):
                store.save_deal(build_deal("c-a"), expected_version=None)
            with pytest.raises(ConflictError):
                store.save_deal(build_deal("c-x", external_ids={"crm": "a"}), expected_version=None)
            with pytest.raises(ConflictError):
                store.save_deals([(build_deal("c-y"), None), (build_deal("c-a"), None)])
            store.save_deal(build_deal("c-c"), expected_version=None)
        assert _ids(store.deals()) == ["c-a", "c-b", "c-c"]
        assert store.find_deal("crm", "a") == a

    # --- queries ----------------------------------------------------------------------------
    def _filter_world(self, store: Any) -> dict[str, Deal]:
        store.put(
            Team("t-east", "华东"), Team("t-west", "West"),
            Rep("r1", "Li Lei", team_id="t-east"), Rep("r2", "Han Meimei", team_id="t-east"),
            Rep("r3", "Wang", team_id="t-west"), Rep("r4", "Solo"),
        )  # fmt: skip
        day = timedelta(days=1)
        a = build_deal("a", owner_id="r1", account_id="acc1", at=datetime(2026, 1, 5, tzinfo=UTC),
                       external_ids={"crm": "A"})
        b = build_deal("b", owner_id="r2", account_id="acc2", at=datetime(2026, 2, 10, tzinfo=UTC))
        b = move(b, "proposal", datetime(2026, 2, 20, tzinfo=UTC))
        c = build_deal("c", process="saas", owner_id="r3", account_id="acc1",
                       at=datetime(2026, 1, 20, tzinfo=UTC), external_ids={"erp": "C"})
        c = move(c, "won", datetime(2026, 3, 15, 23, 30, tzinfo=UTC), outcome="won")
        d = build_deal("d", process="saas", owner_id="r4", at=datetime(2026, 3, 30, tzinfo=UTC))
        d = move(d, "lost", datetime(2026, 4, 2, tzinfo=UTC) + day / 2, outcome="lost", reason="price")
        # created 2026-04-01 03:00 in Beijing = 2026-03-31 19:00 UTC: periods are UTC days
        e = build_deal("e", account_id="acc2", at=datetime(2026, 4, 1, 3, tzinfo=timezone(timedelta(hours=8))))
        world = {x.id: x for x in (a, b, c, d, e)}
        store.save_deals((x, None) for x in world.values())
        return world

    def test_filters(self, store: Any) -> None:
        self._filter_world(store)

        def ids(**kw: Any) -> list[str]:
            return _ids(store.deals(**kw))

        assert ids() == ["a", "b", "c", "d", "e"]
        assert ids(owner_id="r1") == ["a"]
        assert ids(team_id="t-east") == ["a", "b"]
        assert ids(team_id="t-west") == ["c"]
        assert ids(team_id="t-none") == []
        assert ids(stage="lead") == ["a", "e"]
        assert ids(stage="proposal") == ["b"]
        assert ids(status=DealStatus.WON) == ["c"]
        assert ids(status=DealStatus.LOST) == ["d"]
        assert ids(status=DealStatus.OPEN) == ["a", "b", "e"]
        assert ids(process="saas") == ["c", "d"]
        assert ids(account_id="acc1") == ["a", "c"]
        assert ids(updated_since=datetime(2026, 3, 20, tzinfo=UTC)) == ["d", "e"]
        assert ids(updated_since=datetime(2026, 3, 15, 23, 30, tzinfo=UTC)) == ["c", "d", "e"]
        assert ids(created_in=Period.parse("2026-01")) == ["a", "c"]
        assert ids(created_in=Period.parse("2026-03")) == ["d", "e"]
        assert ids(created_in=Period.parse("2026-04")) == []
        assert ids(closed_in=Period.parse("2026-Q1")) == ["c"]
        assert ids(closed_in=Period.parse("2026-04")) == ["d"]
        assert ids(external_source="crm") == ["a"]
        assert ids(external_source="erp") == ["c"]
        assert ids(external_source="nope") == []
        assert ids(ids=("e", "a", "zz")) == ["a", "e"]
        assert ids(ids=()) == []

    def test_filters_combine(self, store: Any) -> None:
        self._filter_world(store)
        assert _ids(store.deals(DealFilter(process="b2b"), status=DealStatus.OPEN)) == ["a", "b", "e"]
        assert _ids(store.deals(DealFilter(team_id="t-east", stage="lead"))) == ["a"]
        assert _ids(store.deals(account_id="acc1", status=DealStatus.WON)) == ["c"]
        assert store.count_deals(DealFilter(account_id="acc2")) == 2
        for f in (DealFilter(), DealFilter(process="saas"), DealFilter(owner_id="r9"), DealFilter(team_id="t-east")):
            assert store.count_deals(f) == len(list(store.deals(f)))

    def test_deals_stream_in_id_order_across_pages(self, store: Any) -> None:
        n = 1100
        deals = [build_deal(f"s{i:05d}", owner_id="odd" if i % 2 else "even") for i in reversed(range(n))]
        assert store.save_deals((d, None) for d in deals) == n
        it = store.deals()
        assert iter(it) is it
        got = _ids(it)
        assert got == sorted(d.id for d in deals)
        assert store.count_deals(owner_id="odd") == n // 2
        assert _ids(store.deals(owner_id="odd")) == [f"s{i:05d}" for i in range(1, n, 2)]
        assert len(list(store.events())) == n

    def test_writing_while_iterating(self, store: Any) -> None:
        deals = [build_deal(f"w{i:04d}") for i in range(700)]
        store.save_deals((d, None) for d in deals)
        seen = []
        for d in store.deals(stage="lead"):
            seen.append(d.id)
            store.save_deal(move(d, "qualify", T0 + timedelta(hours=1)), expected_version=d.version)
        assert seen == [d.id for d in deals]
        assert store.count_deals(stage="qualify") == 700
        assert store.count_deals(stage="lead") == 0

    def test_events_order_and_bounds(self, store: Any) -> None:
        t = T0
        x = build_deal("x", at=t)
        x = move(x, "qualify", t + timedelta(hours=1))
        x = x.with_owner("r1", at=t + timedelta(hours=1), actor="m")  # same instant, later seq
        y = build_deal("y", at=t + timedelta(hours=1))  # ties with x's events: x first (deal id)
        y = move(y, "won", t + timedelta(hours=3), outcome="won")
        w = build_deal("w", at=(t + timedelta(hours=2)).astimezone(timezone(timedelta(hours=-7))))
        store.save_deals([(x, None), (y, None), (w, None)])
        every = [*x.events, *y.events, *w.events]
        index = {id(e): i for d in (x, y, w) for i, e in enumerate(d.events)}
        expected = sorted(every, key=lambda e: (e.at, e.deal_id, index[id(e)]))
        assert list(store.events()) == expected
        assert [(e.deal_id, e.kind) for e in store.events()] == [
            ("x", "created"), ("x", "stage_changed"), ("x", "owner_changed"), ("y", "created"),
            ("w", "created"), ("y", "won"),
        ]  # fmt: skip
        since, until = t + timedelta(hours=1), t + timedelta(hours=3)
        assert list(store.events(since=since, until=until)) == [e for e in expected if since <= e.at < until]
        assert [e.deal_id for e in store.events(since=since, until=until)] == ["x", "x", "y", "w"]
        assert list(store.events(since=t + timedelta(hours=3))) == [y.events[-1]]
        assert list(store.events(until=t)) == []

    # --- entities -----------------------------------------------------------------------------
    @staticmethod
    def _entities() -> list[Any]:
        return [
            Account("acc-1", "上海某某科技有限公司", industry="制造", region="华东", country="CN",
                    credit_limit=Money("5000000.00", "CNY"), created_at=datetime(2025, 5, 1, tzinfo=UTC),
                    external_ids={"crm": "A-1"}, custom={"tier": "KA", "score": Decimal("8.5")}),
            Account("acc-2", "Beta GmbH", parent_id="acc-1", owner_id="r1"),
            Contact("c-1", "张伟", account_id="acc-1", email="zhang@example.cn", role="decision_maker"),
            Contact("c-2", "Anna", account_id="acc-2", language="de"),
            Team("t-1", "华东大区", manager_id="r0", region="East"),
            Team("t-2", "上海组", parent_id="t-1"),
            Rep("r0", "Boss", role="manager", capacity=Decimal("0.5"), hired_on=date(2020, 1, 1)),
            Rep("r1", "李雷", team_id="t-2", manager_id="r0", active=False),
            Rep("r2", "Han", team_id="t-2"),
            Product("p-1", "Platform licence", family="software", list_price=Money("12000", "USD")),
            Activity("act-1", ActivityKind.CALL, datetime(2026, 1, 6, 10, tzinfo=UTC), subject="首次电话",
                     deal_id="d-1", owner_id="r1", duration_minutes=15),
            Activity("act-2", ActivityKind.MEETING, datetime(2026, 1, 8, 14, tzinfo=timezone(timedelta(hours=8))),
                     status=ActivityStatus.PLANNED, deal_id="d-1", contact_id="c-1", owner_id="r2"),
            Activity("act-3", ActivityKind.EMAIL, datetime(2026, 1, 9, tzinfo=UTC), account_id="acc-2", owner_id="r1"),
        ]  # fmt: skip

    def test_entities_round_trip(self, store: Any) -> None:
        items = self._entities()
        store.put(*items)
        for it in items:
            assert store.get(type(it), it.id) == it
        for cls in (Account, Contact, Team, Rep, Product, Activity):
            expected = sorted((it for it in items if type(it) is cls), key=lambda x: x.id)
            assert list(store.all(cls)) == expected

    def test_entity_criteria(self, store: Any) -> None:
        store.put(*self._entities())
        assert [r.id for r in store.all(Rep, team_id="t-2")] == ["r1", "r2"]
        assert [r.id for r in store.all(Rep, team_id=None)] == ["r0"]
        assert [r.id for r in store.all(Rep, team_id="t-2", active=True)] == ["r2"]
        assert [a.id for a in store.all(Activity, deal_id="d-1")] == ["act-1", "act-2"]
        assert [a.id for a in store.all(Activity, owner_id="r1")] == ["act-1", "act-3"]
        assert [a.id for a in store.all(Activity, owner_id="r1", kind=ActivityKind.EMAIL)] == ["act-3"]
        assert [a.id for a in store.all(Activity, status=ActivityStatus.PLANNED)] == ["act-2"]
        assert [c.id for c in store.all(Contact, account_id="acc-1")] == ["c-1"]
        assert [t.id for t in store.all(Team, parent_id="t-1")] == ["t-2"]
        assert [a.id for a in store.all(Account, parent_id="acc-1")] == ["acc-2"]
        assert list(store.all(Product, family="hardware")) == []

    def test_entity_put_replaces_and_delete_removes(self, store: Any) -> None:
        store.put(Rep("r1", "Old", team_id="t-1"))
        store.put(Rep("r1", "New", team_id="t-2"))
        assert store.get(Rep, "r1") == Rep("r1", "New", team_id="t-2")
        assert list(store.all(Rep, team_id="t-1")) == []
        store.delete(Rep, "r1")
        with pytest.raises(NotFoundError):
            store.get(Rep, "r1")
        with pytest.raises(NotFoundError):
            store.delete(Rep, "r1")

    def test_put_refuses_non_entities(self, store: Any) -> None:
        with pytest.raises(TypeError):
            store.put(build_deal("not-an-entity"))
        with pytest.raises(TypeError):
            store.put(Account("ok", "ok"), {"id": "dict"})
        assert list(store.all(Account)) == []

    # --- documents ----------------------------------------------------------------------------
    def test_documents(self, store: Any) -> None:
        doc = {"owner": "r1", "targets": [{"period": "2026-Q1", "amount": "1000000"}], "备注": "季度目标", "n": 3,
               "ok": True, "none": None}  # fmt: skip
        store.put_document("goal", "g-2", doc)
        store.put_document("goal", "g-1", {"v": 1})
        store.put_document("cursor", "hubspot", {"after": "abc"})
        assert store.get_document("goal", "g-2") == doc
        assert list(store.documents("goal")) == [("g-1", {"v": 1}), ("g-2", doc)]
        store.put_document("goal", "g-1", {"v": 2})
        assert store.get_document("goal", "g-1") == {"v": 2}
        store.delete_document("goal", "g-1")
        store.delete_document("goal", "never-there")
        assert store.get_document("goal", "g-1") is None
        assert [k for k, _ in store.documents("goal")] == ["g-2"]
        assert [k for k, _ in store.documents("cursor")] == ["hubspot"]
        assert list(store.documents("plan")) == []

    def test_document_copies_are_independent(self, store: Any) -> None:
        doc: dict[str, Any] = {"list": [1, 2]}
        store.put_document("goal", "g", doc)
        doc["list"].append(3)
        got = store.get_document("goal", "g")
        assert got == {"list": [1, 2]}
        got["list"].append(4)
        assert store.get_document("goal", "g") == {"list": [1, 2]}

    # --- errors -------------------------------------------------------------------------------
    def test_not_found(self, store: Any) -> None:
        with pytest.raises(NotFoundError) as ei:
            store.get_deal("missing")
        assert ei.value.key == "missing"
        assert isinstance(ei.value, KeyError)
        with pytest.raises(NotFoundError):
            store.deal_events("missing")
        with pytest.raises(NotFoundError):
            store.get(Account, "missing")
        assert store.find_deal("crm", "missing") is None
        assert store.get_document("goal", "missing") is None

    # --- persistence and several handles ------------------------------------------------------
    def test_reopen_keeps_everything(self, store: Any) -> None:
        self.require(store, Capability.PERSISTENT)
        d = self._rich_deal()
        store.save_deal(d, expected_version=None)
        store.save_process(self._process(1))
        store.put(*self._entities())
        store.put_document("goal", "g", {"备注": "保留"})
        store.close()
        again = self.reopen(store)
        try:
            assert again.get_deal(d.id) == d
            assert again.find_deal("crm", f"X-{d.id}") == d
            assert again.get_process("b2b") == self._process(1)
            assert list(again.all(Activity)) == [x for x in self._entities() if isinstance(x, Activity)]
            assert again.get_document("goal", "g") == {"备注": "保留"}
        finally:
            again.close()

    def test_second_handle_sees_commits_and_conflicts(self, store: Any) -> None:
        self.require(store, Capability.MULTI_PROCESS)
        other = self.reopen(store)
        try:
            d = build_deal("shared")
            store.save_deal(d, expected_version=None)
            loaded = other.get_deal("shared")
            assert loaded == d
            store.save_deal(move(d, "qualify", T0 + timedelta(hours=1)), expected_version=1)
            with pytest.raises(ConflictError):
                other.save_deal(loaded.with_owner("r2", at=T0 + timedelta(hours=2), actor="o"), expected_version=1)
            assert other.get_deal("shared").stage == "qualify"
            assert store.get_deal("shared").owner_id is None
        finally:
            other.close()

    # --- properties ---------------------------------------------------------------------------
    @_kit_settings
    @given(recipe=deal_recipes(), split=st.integers(0, 10))
    def test_any_deal_history_round_trips(self, store: Any, recipe: DealRecipe, split: int) -> None:
        d = recipe.build(_uid("h"))
        k = max(1, min(split, d.version))
        first = replay(d.events[:k])
        store.save_deal(first, expected_version=None)
        store.save_deal(d, expected_version=k)
        got = store.get_deal(d.id)
        assert got == d
        assert got.events == d.events
        assert replay(got.events) == got
        assert [x.id for x in store.deals(ids=(d.id,))] == [d.id]
        for source, ext in d.external_ids.items():
            assert store.find_deal(source, ext) == d

    @_kit_settings
    @given(amounts=st.lists(money_values(("JPY", "USD", "KWD")), min_size=1, max_size=4))
    @example(amounts=[Money("123456789012345678.123456789", "KWD"), Money("0.001", "KWD")])
    @example(amounts=[Money("99999999999999999999", "JPY"), Money("0.10", "USD"), Money("0.1", "USD")])
    def test_money_round_trips_exactly(self, store: Any, amounts: list[Money]) -> None:
        created = [build_deal(_uid("m"), amount=m) for m in amounts]
        chain = build_deal(_uid("m"))
        applied: list[Money] = []
        for i, m in enumerate(amounts, 1):
            if m != chain.amount:
                chain = chain.with_amount(m, at=T0 + timedelta(minutes=i), actor="kit")
                applied.append(m)
        store.save_deals((d, None) for d in [*created, chain])
        for d, m in zip(created, amounts, strict=True):
            got = store.get_deal(d.id).amount
            assert got == m
            assert got is not None
            assert got.currency == m.currency
            assert got.amount.as_tuple() == m.amount.as_tuple()
        got_chain = store.get_deal(chain.id)
        assert got_chain == chain
        news = [e.payload()["new"] for e in got_chain.events[1:]]
        assert [(x.amount.as_tuple(), x.currency) for x in news] == [
            (m.amount.as_tuple(), m.currency) for m in applied
        ]

    @_kit_settings
    @given(name=texts(60), note=texts(20))
    @example(name="华东区年度框架协议（第二期）", note="备注：含三年运维")
    def test_unicode_round_trips(self, store: Any, name: str, note: str) -> None:
        uid = _uid("u")
        d = build_deal(uid, name=name or "x", competitors=[note], custom={note or "k": name})
        store.save_deal(d, expected_version=None)
        store.put(Account(uid, name, region=note), Rep(uid, name))
        store.put_document("note", uid, {"text": note, note or "k": [name]})
        got = store.get_deal(uid)
        assert got == d
        assert got.name == (name or "x")
        assert store.get(Account, uid).name == name
        assert store.get(Rep, uid) == Rep(uid, name)
        assert store.get_document("note", uid) == {"text": note, note or "k": [name]}

    @_kit_settings
    @given(recipes=st.lists(deal_recipes(max_steps=4), min_size=1, max_size=4))
    def test_events_are_the_union_of_deal_histories(self, store: Any, recipes: list[DealRecipe]) -> None:
        deals = [r.build(_uid("e")) for r in recipes]
        store.save_deals((d, None) for d in deals)
        ours = {d.id for d in deals}
        got = [e for e in store.events() if e.deal_id in ours]
        keyed = sorted(
            ((e.at, e.deal_id, i), e) for d in deals for i, e in enumerate(d.events)
        )
        assert got == [e for _, e in keyed]

