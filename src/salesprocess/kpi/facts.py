"""The data KPIs read: deals as known at an instant, their stage stays, and linked records.

A :class:`Dataset` holds deals (with their event histories), the entities that give them
dimensions (reps, teams, accounts, products), activities, processes, and the plain-value
:class:`~salesprocess.kpi.inputs.KpiInputs`. :meth:`Dataset.view` gives a :class:`View` of all of it
*as known at* an instant: every deal is rebuilt from its events up to that instant
(:func:`~salesprocess.model.replay_until`), deals created later are absent, and activities and
survey responses after the instant are ignored — nothing known only later leaks in.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from salesprocess.model import (
    Account,
    Activity,
    ActivityStatus,
    Deal,
    DealStatus,
    ForecastCategory,
    ProcessMigrated,
    Product,
    Rep,
    StageChanged,
    Team,
    replay_until,
)
from salesprocess.money import Money, Rate
from salesprocess.periods import require_aware
from salesprocess.process import Process

from .inputs import AccountRevenue, KpiInputs, SurveyResponse

__all__ = [
    "ActivityRecord",
    "Dataset",
    "DealState",
    "RevenueRecord",
    "Stay",
    "SurveyRecord",
    "View",
]


class Stay(NamedTuple):
    """A deal's time in one stage: ``left`` is None while the deal is still there."""

    stage: str
    entered: datetime
    left: datetime | None


class DealState(NamedTuple):
    """The fields of a deal that snapshots need, at one instant."""

    stage: str
    status: DealStatus
    amount: Money | None
    probability: Rate | None
    close_date: Any
    forecast_category: ForecastCategory | None
    owner_id: str | None


_STATE_FIELDS = (
    "stage",
    "status",
    "amount",
    "probability",
    "close_date",
    "forecast_category",
    "owner_id",
)


def stays_of(deal: Deal) -> tuple[Stay, ...]:
    """The stage stays of ``deal`` in order, from its events."""
    evs = deal.events
    out: list[Stay] = []
    cur_stage = evs[0].stage  # type: ignore[attr-defined]
    cur_at = evs[0].at
    for e in evs[1:]:
        if isinstance(e, StageChanged) or (
            isinstance(e, ProcessMigrated) and e.to_stage != cur_stage
        ):
            out.append(Stay(cur_stage, cur_at, e.at))
            cur_stage, cur_at = e.to_stage, e.at
    out.append(Stay(cur_stage, cur_at, None))
    return tuple(out)


class _Timeline:
    """A deal's snapshot fields after each event, for point-in-time lookups."""

    __slots__ = ("ats", "states")

    def __init__(self, deal: Deal) -> None:
        s: dict[str, Any] = {}
        self.ats: list[datetime] = []
        self.states: list[DealState] = []
        for e in deal.events:
            e.apply(s)
            st = DealState._make(s.get(k) for k in _STATE_FIELDS)
            if self.ats and self.ats[-1] == e.at:
                self.states[-1] = st
            else:
                self.ats.append(e.at)
                self.states.append(st)

    def at(self, t: datetime, inclusive: bool) -> DealState | None:
        i = bisect.bisect_right(self.ats, t) if inclusive else bisect.bisect_left(self.ats, t)
        return self.states[i - 1] if i else None


class ActivityRecord:
    """A done activity with the deal it belongs to (as known at the view's instant)."""

    __slots__ = ("account_id", "activity", "deal", "owner_id", "product_ids")

    def __init__(self, activity: Activity, deal: Deal | None) -> None:
        self.activity = activity
        self.deal = deal
        self.owner_id = activity.owner_id or (deal.owner_id if deal else None)
        self.account_id = activity.account_id or (deal.account_id if deal else None)
        self.product_ids = deal.product_ids if deal else ()


class SurveyRecord:
    __slots__ = ("account_id", "deal", "owner_id", "product_ids", "response")

    def __init__(
        self, response: SurveyResponse, deal: Deal | None, account: Account | None
    ) -> None:
        self.response = response
        self.deal = deal
        self.owner_id = (
            response.owner_id
            or (deal.owner_id if deal else None)
            or (account.owner_id if account else None)
        )
        self.account_id = response.account_id or (deal.account_id if deal else None)
        self.product_ids = deal.product_ids if deal else ()


class RevenueRecord:
    __slots__ = ("account_id", "deal", "entry", "owner_id", "product_ids")

    def __init__(self, entry: AccountRevenue, account: Account | None) -> None:
        self.entry = entry
        self.deal = None
        self.account_id = entry.account_id
        self.owner_id = account.owner_id if account else None
        self.product_ids = (entry.product_id,) if entry.product_id else ()


def _by_id(items: Iterable[Any]) -> dict[str, Any]:
    return {x.id: x for x in items}


class Dataset:
    """Deals and everything KPIs group and filter them by, in memory.

    Build one with :meth:`from_store` or directly from values. ``processes`` gives stage order
    (funnels, stage forward/back); ``inputs`` carries the data the store does not hold.
    """

    def __init__(
        self,
        deals: Iterable[Deal] = (),
        *,
        reps: Iterable[Rep] = (),
        teams: Iterable[Team] = (),
        accounts: Iterable[Account] = (),
        products: Iterable[Product] = (),
        activities: Iterable[Activity] = (),
        processes: Iterable[Process] = (),
        inputs: KpiInputs | None = None,
    ) -> None:
        self.deals: list[Deal] = list(deals)
        self.reps: dict[str, Rep] = _by_id(reps)
        self.teams: dict[str, Team] = _by_id(teams)
        self.accounts: dict[str, Account] = _by_id(accounts)
        self.products: dict[str, Product] = _by_id(products)
        self.activities: list[Activity] = list(activities)
        self.processes: dict[str, Process] = {}
        for p in processes:
            have = self.processes.get(p.key)
            if have is None or have.version < p.version:
                self.processes[p.key] = p
        self.inputs = inputs or KpiInputs()
        self._views: dict[datetime | None, View] = {}

    @classmethod
    def from_store(
        cls, store: Any, *, inputs: KpiInputs | None = None, filter: Any = None
    ) -> Dataset:
        """Everything KPIs need from ``store`` (deals matching ``filter``, all entities)."""
        processes = []
        for key in store.process_keys():
            for v in store.process_versions(key):
                processes.append(store.get_process(key, v))
        return cls(
            store.deals(filter),
            reps=store.all(Rep),
            teams=store.all(Team),
            accounts=store.all(Account),
            products=store.all(Product),
            activities=store.all(Activity),
            processes=processes,
            inputs=inputs,
        )

    def with_inputs(self, inputs: KpiInputs) -> Dataset:
        new = Dataset.__new__(Dataset)
        new.__dict__.update(self.__dict__)
        new.inputs = inputs
        new._views = {}
        return new

    def view(self, asof: datetime | None = None) -> View:
        """The data as known at ``asof`` (``None``: everything held)."""
        if asof is not None:
            require_aware(asof, "asof")
        v = self._views.get(asof)
        if v is None:
            v = View(self, asof)
            self._views[asof] = v
        return v


class View:
    """A :class:`Dataset` as known at one instant (see the module documentation)."""

    def __init__(self, data: Dataset, asof: datetime | None) -> None:
        self.data = data
        self.asof = asof
        self.reps = data.reps
        self.teams = data.teams
        self.accounts = data.accounts
        self.products = data.products
        self.processes = data.processes
        self.inputs = data.inputs
        if asof is None:
            self.deals: list[Deal] = list(data.deals)
        else:
            out = []
            for d in data.deals:
                if d.updated_at <= asof:
                    out.append(d)
                elif d.created_at <= asof:
                    old = replay_until(d.events, asof)
                    if old is not None:
                        out.append(old)
            self.deals = out
        self.by_id: dict[str, Deal] = {d.id: d for d in self.deals}
        self._stays: dict[str, tuple[Stay, ...]] = {}
        self._timelines: dict[str, _Timeline] = {}
        self._first_won: dict[str, str] | None = None

    # --- per-deal derived data --------------------------------------------------------------------
    def stays(self, deal: Deal) -> tuple[Stay, ...]:
        s = self._stays.get(deal.id)
        if s is None:
            s = stays_of(deal)
            self._stays[deal.id] = s
        return s

    def state_at(self, deal: Deal, t: datetime | None, inclusive: bool = True) -> DealState | None:
        """``deal`` as it stood at ``t`` (events at ``t`` count when ``inclusive``)."""
        last = deal.events[-1].at
        if t is None or last < t or (inclusive and last == t):
            return DealState._make(getattr(deal, k) for k in _STATE_FIELDS)
        if deal.created_at > t or (not inclusive and deal.created_at == t):
            return None
        tl = self._timelines.get(deal.id)
        if tl is None:
            tl = _Timeline(deal)
            self._timelines[deal.id] = tl
        return tl.at(t, inclusive)

    def first_won(self) -> dict[str, str]:
        """For each account, the id of its first won deal (by close instant, then id)."""
        if self._first_won is None:
            best: dict[str, tuple[datetime, str]] = {}
            for d in self.deals:
                if d.status is DealStatus.WON and d.account_id and d.closed_at is not None:
                    k = (d.closed_at, d.id)
                    have = best.get(d.account_id)
                    if have is None or k < have:
                        best[d.account_id] = k
            self._first_won = {a: v[1] for a, v in best.items()}
        return self._first_won

    # --- linked records ---------------------------------------------------------------------------
    def activity_records(self) -> Iterator[ActivityRecord]:
        asof = self.asof
        for a in self.data.activities:
            if a.status is not ActivityStatus.DONE:
                continue
            if asof is not None and a.at > asof:
                continue
            deal = self.by_id.get(a.deal_id) if a.deal_id else None
            if a.deal_id and deal is None:
                continue  # linked to a deal not known at asof (or filtered out)
            yield ActivityRecord(a, deal)

    def survey_records(self) -> Iterator[SurveyRecord]:
        asof = self.asof
        for r in self.inputs.surveys:
            if asof is not None and r.at > asof:
                continue
            deal = self.by_id.get(r.deal_id) if r.deal_id else None
            yield SurveyRecord(
                r, deal, self.accounts.get(r.account_id or "") if r.account_id else None
            )

    def revenue_records(self) -> Iterator[RevenueRecord]:
        asof = self.asof
        for e in self.inputs.revenue:
            if asof is not None and e.period.end > asof.date():
                continue  # a period's run-rate is known once the period is over
            yield RevenueRecord(e, self.accounts.get(e.account_id))

    def currencies(self) -> set[str]:
        cur = {d.amount.currency for d in self.deals if d.amount is not None}
        cur.update(e.amount.currency for e in self.inputs.revenue)
        return cur


def first_done_activity(records: Sequence[ActivityRecord]) -> dict[str, datetime]:
    """For each deal id, the instant of its first done activity."""
    out: dict[str, datetime] = {}
    for r in records:
        if r.deal is None:
            continue
        at = r.activity.at
        have = out.get(r.deal.id)
        if have is None or at < have:
            out[r.deal.id] = at
    return out


def lookup(m: Mapping[str, Any], key: str | None) -> Any:
    return m.get(key) if key is not None else None
