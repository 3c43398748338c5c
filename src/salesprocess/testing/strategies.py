"""Hypothesis strategies for salesprocess values.

Every strategy takes keyword-only arguments, and an argument that shapes a part of the value takes
either a plain value or a strategy (``money(currency="JPY")`` or ``money(currency=currencies())``).
Defaults are cheap so the strategies run under Hypothesis' default health checks.

Everything generated is valid: processes pass validation, deals are opened through
:meth:`Process.open_deal`, and histories are built only from moves the process allows (criteria
are satisfied first, by ticking checklist items, setting fields and passing activities) and from
ordinary field changes, with time never going backwards.

:func:`register_type_strategies` teaches ``st.from_type`` these types; it runs automatically
through the ``hypothesis`` entry point when the package is installed.
"""

from __future__ import annotations

import functools
import itertools
import string
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import attrs
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from salesprocess.model import (
    Account,
    Activity,
    ActivityKind,
    ActivityStatus,
    Contact,
    Deal,
    EventSource,
    ForecastCategory,
    Product,
    Rep,
    Team,
)
from salesprocess.money import Money, Rate, minor_units, to_decimal
from salesprocess.periods import FiscalCalendar, Period, PeriodKind
from salesprocess.process import (
    DEAL_FIELDS,
    Criteria,
    Playbook,
    PlaybookStep,
    ProbabilityPolicy,
    Process,
    Resource,
    Script,
    Stage,
    StageKind,
    Transition,
)

from ._drive import FIXABLE_GUARDS, prepare_move

__all__ = [
    "COMMON_CURRENCIES",
    "TIMEZONES",
    "accounts",
    "activities",
    "aware_datetimes",
    "contacts",
    "criteria",
    "currencies",
    "dates",
    "deal_histories",
    "deals",
    "decimals_for",
    "fiscal_calendars",
    "money",
    "names",
    "period_labels",
    "periods",
    "probabilities",
    "processes",
    "products",
    "rates",
    "register_type_strategies",
    "reps",
    "stage_keys",
    "stages",
    "teams",
    "timezones",
]

T = TypeVar("T")
Strat = SearchStrategy

COMMON_CURRENCIES: tuple[str, ...] = ("CNY", "USD", "EUR", "JPY", "KWD", "GBP", "HKD", "CLF")
"""Currencies drawn by default: every minor-unit count (0, 2, 3, 4) is represented."""

TIMEZONES: tuple[str, ...] = (
    "UTC",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Europe/Berlin",
    "America/New_York",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
)
"""IANA zones drawn by default: China first, plus half-hour offsets and daylight saving time."""

_MIN_DATE = date(2000, 1, 1)
_MAX_DATE = date(2045, 12, 31)
_KEY_CHARS = string.ascii_lowercase + string.digits + "_" + "线索接触需求方案报价谈判签约赢输单阶段"
_CJK = "潜在客户识别初次接触需求分析方案制定报价谈判与签约赢单输单交付实施培训回访续约销售阶段"
_NAME_CHARS = string.ascii_letters + string.digits + " -&/'.,()\"\\\t\n" + _CJK + "éßØ€£¥"
_FIXABLE = tuple(sorted(FIXABLE_GUARDS))
_FILLABLE_FIELDS = (*DEAL_FIELDS, "custom.budget", "custom.预算")


P = ParamSpec("P")
R = TypeVar("R")


def _cache(fn: Callable[P, R]) -> Callable[P, R]:
    """Build a strategy once per (hashable) argument set: building is much dearer than drawing."""
    cached = functools.lru_cache(maxsize=512)(fn)

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            hash((args, tuple(kwargs.items())))
        except TypeError:  # an unhashable argument (a list): build afresh
            return fn(*args, **kwargs)
        return cached(*args, **kwargs)  # type: ignore[arg-type]

    return wrapper


@_cache
def _opt(strategy: SearchStrategy[T]) -> SearchStrategy[T | None]:
    return st.none() | strategy


@_cache
def _pick(values: tuple[T, ...]) -> SearchStrategy[T]:
    return st.sampled_from(values)


def _strategy(value: T | SearchStrategy[T]) -> SearchStrategy[T]:
    return value if isinstance(value, SearchStrategy) else st.just(value)


def _choice(value: Iterable[T] | SearchStrategy[T]) -> SearchStrategy[T]:
    """A strategy, or one of the given values."""
    if isinstance(value, SearchStrategy):
        return value
    return st.sampled_from(tuple(value))


# ------------------------------------------------------------------------------------------------
# Money, rates, time
# ------------------------------------------------------------------------------------------------


@_cache
def currencies(*, codes: Sequence[str] = COMMON_CURRENCIES) -> SearchStrategy[str]:
    """ISO 4217 codes, from ``codes`` (default :data:`COMMON_CURRENCIES`; CNY shrinks first)."""
    for c in codes:
        minor_units(c)  # refuse unknown codes early
    return st.sampled_from(tuple(codes))


@_cache
def decimals_for(
    currency: str,
    *,
    min_value: Decimal | int | str = 0,
    max_value: Decimal | int | str = 10_000_000,
) -> SearchStrategy[Decimal]:
    """Finite decimals with exactly the minor units of ``currency`` (JPY 0, CNY 2, KWD 3)."""
    return st.decimals(
        min_value=to_decimal(min_value),
        max_value=to_decimal(max_value),
        places=minor_units(currency),
        allow_nan=False,
        allow_infinity=False,
    )


@_cache
@st.composite
def money(
    draw: st.DrawFn,
    *,
    currency: str | SearchStrategy[str] | None = None,
    min_value: Decimal | int | str = 0,
    max_value: Decimal | int | str = 10_000_000,
) -> Money:
    """:class:`Money` in ``currency`` (default: :func:`currencies`) between the bounds, rounded to
    the currency's minor units."""
    cur = draw(_strategy(currency) if currency is not None else currencies())
    return Money(draw(decimals_for(cur, min_value=min_value, max_value=max_value)), cur)


@_cache
def rates(
    *,
    min_value: Decimal | int | str = 0,
    max_value: Decimal | int | str = 1,
    places: int = 4,
) -> SearchStrategy[Rate]:
    """:class:`Rate` values between the bounds with at most ``places`` decimal places."""
    return st.decimals(
        min_value=to_decimal(min_value),
        max_value=to_decimal(max_value),
        places=places,
        allow_nan=False,
        allow_infinity=False,
    ).map(Rate)


@_cache
def probabilities(*, places: int = 4) -> SearchStrategy[Rate]:
    """Rates in [0, 1] (0 and 1 included)."""
    return rates(min_value=0, max_value=1, places=places)


@_cache
def dates(*, min_value: date = _MIN_DATE, max_value: date = _MAX_DATE) -> SearchStrategy[date]:
    """Calendar dates (default 2000–2045)."""
    return st.dates(min_value=min_value, max_value=max_value)


@_cache
def timezones(*, names: Sequence[str] = TIMEZONES, fixed: bool = True) -> SearchStrategy[tzinfo]:
    """IANA zones from ``names`` (via ``zoneinfo``), plus fixed offsets (UTC+8, UTC−5:30) when
    ``fixed``."""
    zones: list[tzinfo] = [ZoneInfo(n) for n in names]
    if fixed:
        zones += [timezone(timedelta(hours=8)), timezone(-timedelta(hours=5, minutes=30))]
    return st.sampled_from(zones)


_timezones = timezones


@_cache
def aware_datetimes(
    *,
    min_value: datetime = datetime(2000, 1, 1),
    max_value: datetime = datetime(2045, 12, 31),
    timezones: SearchStrategy[tzinfo] | None = None,
) -> SearchStrategy[datetime]:
    """Timezone-aware instants (bounds are naive local times, as ``st.datetimes`` wants them).

    Times that do not exist in their zone (skipped by a daylight-saving jump) are not drawn; times
    that exist twice are, with either ``fold``.
    """
    tz = timezones if timezones is not None else _timezones()
    return st.datetimes(
        min_value=min_value, max_value=max_value, timezones=tz, allow_imaginary=False
    )


@_cache
def fiscal_calendars() -> SearchStrategy[FiscalCalendar]:
    """Fiscal calendars starting in any month, named by the year they end or start in."""
    return st.builds(
        FiscalCalendar,
        start_month=st.integers(1, 12),
        named_by=st.sampled_from(("end", "start")),
    )


_PERIOD_KINDS = tuple(k for k in PeriodKind if k is not PeriodKind.CUSTOM)


@_cache
@st.composite
def periods(
    draw: st.DrawFn,
    *,
    kinds: Iterable[PeriodKind | str] | SearchStrategy[PeriodKind | str] = _PERIOD_KINDS,
    calendars: FiscalCalendar | SearchStrategy[FiscalCalendar] | None = None,
    within: SearchStrategy[date] | None = None,
) -> Period:
    """Periods of the given ``kinds`` (day … fiscal year), containing a date from ``within``.

    Fiscal kinds use a calendar from ``calendars`` (default :func:`fiscal_calendars`).
    """
    kind = PeriodKind(draw(_choice(kinds)))
    cal = draw(_strategy(calendars) if calendars is not None else fiscal_calendars())
    d = draw(within if within is not None else dates())
    return Period.containing(d, kind, cal)


@_cache
def period_labels(
    *, kinds: Iterable[PeriodKind | str] | SearchStrategy[PeriodKind | str] = _PERIOD_KINDS
) -> SearchStrategy[str]:
    """Labels that :meth:`Period.parse` accepts: ``2026``, ``2026-H1``, ``2026-Q3``, ``2026-03``,
    ``2026-W07``, ``2026-03-15``, ``FY2027``, ``FY2027-Q1``, ``FY2027-H2``."""
    return periods(kinds=kinds, calendars=FiscalCalendar()).map(lambda p: p.label)


# ------------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------------


@_cache
def stage_keys() -> SearchStrategy[str]:
    """Short stage keys: ASCII slugs and Chinese words (``lead``, ``谈判``, ``q_2``)."""
    return st.text(st.sampled_from(_KEY_CHARS), min_size=1, max_size=6)


@_cache
def names(*, min_size: int = 0, max_size: int = 12) -> SearchStrategy[str]:
    """Display text: mostly Chinese and ASCII, with quotes, backslashes and newlines, and now and
    then any Unicode text."""
    return st.one_of(
        st.text(st.sampled_from(_NAME_CHARS), min_size=min_size, max_size=max_size),
        st.text(st.characters(exclude_categories=["Cs"]), min_size=min_size, max_size=max_size),
    )


@_cache
def _small_lists(elements: SearchStrategy[T], max_size: int = 2) -> SearchStrategy[list[T]]:
    return st.lists(elements, max_size=max_size, unique=True)


@_cache
@st.composite
def criteria(
    draw: st.DrawFn,
    *,
    guards: Iterable[str] | SearchStrategy[str] = _FIXABLE,
    checklist: SearchStrategy[str] | None = None,
) -> Criteria:
    """Entry/exit criteria: deal fields, done activities, checklist items and named guards
    (default: built-in guards)."""
    items = checklist if checklist is not None else stage_keys()
    return Criteria(
        fields=tuple(draw(_small_lists(_pick(_FILLABLE_FIELDS)))),
        activities=tuple(draw(_small_lists(_pick(tuple(k.value for k in ActivityKind))))),
        checklist=tuple(draw(_small_lists(items))),
        guards=tuple(draw(_small_lists(_choice(guards)))),
    )


@_cache
@st.composite
def _playbooks(draw: st.DrawFn) -> Playbook:
    if not draw(st.booleans()):
        return Playbook()
    steps = draw(
        st.lists(
            st.builds(
                PlaybookStep,
                title=names(),
                description=names(max_size=8),
                owner_role=_opt(_pick(("ae", "se", "legal", "经理"))),
                due_days=_opt(st.integers(0, 30)),
            ),
            max_size=2,
        )
    )
    resources = draw(
        st.lists(
            st.builds(Resource, title=names(), url=_pick(("", "https://example.invalid/x"))),
            max_size=1,
        )
    )
    scripts = draw(
        st.lists(
            st.builds(
                Script,
                kind=_pick(("call", "email", "meeting", "visit")),
                title=names(),
                body=names(),
            ),
            max_size=1,
        )
    )
    return Playbook(
        tuple(steps), tuple(draw(_small_lists(stage_keys()))), tuple(resources), tuple(scripts)
    )


@_cache
@st.composite
def stages(
    draw: st.DrawFn,
    *,
    kind: StageKind | str | SearchStrategy[StageKind | str] | None = None,
    key: str | SearchStrategy[str] | None = None,
    with_criteria: bool | SearchStrategy[bool] | None = None,
) -> Stage:
    """One stage. Open stages get a probability in [0, 1]; won stages 1 and lost stages 0."""
    k = StageKind(draw(_strategy(kind) if kind is not None else _pick(tuple(StageKind))))
    crit = draw(_strategy(with_criteria) if with_criteria is not None else st.booleans())
    if k is StageKind.OPEN:
        prob = draw(probabilities(places=2))
    else:
        prob = Rate(1) if k is StageKind.WON else Rate(0)
    langs = draw(_small_lists(_pick(("en", "zh", "ja", "de")), max_size=2))
    return Stage(
        key=draw(_strategy(key) if key is not None else stage_keys()),
        name=draw(names(min_size=1)),
        kind=k,
        probability=prob,
        forecast_category=draw(_opt(_pick(tuple(ForecastCategory)))),
        sla_days=draw(_opt(st.integers(1, 60))),
        sla_business_days=draw(st.booleans()),
        description=draw(st.just("") | names()),
        names=tuple((lang, draw(names(min_size=1))) for lang in langs),
        entry=draw(criteria()) if crit and draw(st.booleans()) else Criteria(),
        exit=draw(criteria()) if crit and draw(st.booleans()) else Criteria(),
        playbook=draw(_playbooks()),
    )


@_cache
@st.composite
def processes(
    draw: st.DrawFn,
    *,
    min_open: int = 2,
    max_open: int = 5,
    linear: bool | SearchStrategy[bool] | None = None,
    with_criteria: bool | SearchStrategy[bool] | None = None,
    policy: ProbabilityPolicy | str | SearchStrategy[ProbabilityPolicy | str] | None = None,
) -> Process:
    """Valid processes with random (often Chinese) stage names and probabilities.

    ``linear`` picks between a linear flow (edges generated from ``allow_skip``/``allow_back``/
    ``allow_reopen``) and an explicit transition graph; ``with_criteria`` adds entry/exit criteria
    made of deal fields, activities, checklist items and built-in guards (all of which
    :func:`deal_histories` and the stateful machine know how to satisfy).
    """
    if not 1 <= min_open <= max_open:
        raise ValueError("need 1 <= min_open <= max_open")
    n_open = draw(st.integers(min_open, max_open))
    n_lost = draw(st.integers(1, 2))
    n = n_open + 1 + n_lost
    keys = draw(st.lists(stage_keys(), min_size=n, max_size=n, unique=True))
    crit = _strategy(with_criteria) if with_criteria is not None else st.booleans()
    with_crit = draw(crit)
    opens = [
        attrs.evolve(draw(stages(kind=StageKind.OPEN, with_criteria=with_crit)), key=k)
        for k in keys[:n_open]
    ]
    won = attrs.evolve(draw(stages(kind=StageKind.WON, with_criteria=with_crit)), key=keys[n_open])
    losts = [
        attrs.evolve(draw(stages(kind=StageKind.LOST, with_criteria=with_crit)), key=k)
        for k in keys[n_open + 1 :]
    ]
    all_stages = (*opens, won, *losts)
    is_linear = draw(_strategy(linear) if linear is not None else st.booleans())
    common: dict[str, Any] = {
        "key": draw(_process_keys()),
        "name": draw(names(min_size=1)),
        "stages": all_stages,
        "version": draw(st.integers(1, 20)),
        "description": draw(st.just("") | names()),
        "initial": draw(st.sampled_from((None, opens[0].key))),
        "probability_policy": ProbabilityPolicy(
            draw(_strategy(policy) if policy is not None else _pick(tuple(ProbabilityPolicy)))
        ),
        "currency": draw(_opt(currencies())),
        "after_sales": tuple(draw(st.lists(names(min_size=1), max_size=2))),
    }
    open_keys = [s.key for s in opens]
    if is_linear:
        return Process(
            **common,
            allow_skip=draw(st.booleans()),
            allow_back=draw(st.booleans()),
            allow_reopen=draw(st.booleans()),
            reopen_to=draw(_opt(_pick(tuple(open_keys)))),
        )
    return Process(**common, transitions=draw(_graph(open_keys, won.key, [s.key for s in losts])))


@st.composite
def _graph(draw: st.DrawFn, opens: list[str], won: str, losts: list[str]) -> tuple[Transition, ...]:
    """An explicit transition graph that passes validation: a spine through the open stages to
    the won stage, a way from every open stage to a lost stage, and random extra edges."""
    edges: dict[tuple[str, str], Transition] = {}
    guard = st.lists(st.sampled_from(sorted(FIXABLE_GUARDS)), max_size=1, unique=True)
    label = st.just("") | names(max_size=6)

    def add(src: str, dst: str, reopen: bool = False) -> None:
        if (src, dst) not in edges and src != dst:
            edges[(src, dst)] = Transition(src, dst, tuple(draw(guard)), draw(label), reopen)

    for a, b in itertools.pairwise(opens):
        add(a, b)
    add(opens[-1], won)
    for k in opens:
        add(k, draw(st.sampled_from(losts)))
    for lost in losts:  # every lost stage is reachable from some open stage
        add(draw(st.sampled_from(opens)), lost)
    closed = [won, *losts]
    extra = draw(
        st.lists(
            st.tuples(st.sampled_from(opens), st.sampled_from(opens + closed)),
            max_size=len(opens) + 2,
        )
    )
    for src, dst in extra:
        add(src, dst)
    for c in closed:
        if draw(st.booleans()):
            add(c, draw(st.sampled_from(opens)), reopen=True)
    ordered = list(edges.values())
    return tuple(draw(st.permutations(ordered)))


# ------------------------------------------------------------------------------------------------
# Entities
# ------------------------------------------------------------------------------------------------


@_cache
def _ids(prefix: str) -> SearchStrategy[str]:
    return st.text(
        _pick(tuple(string.ascii_lowercase + string.digits)), min_size=1, max_size=6
    ).map(f"{prefix}-{{}}".format)


@_cache
def _process_keys() -> SearchStrategy[str]:
    return st.text(_pick(tuple(string.ascii_lowercase + "_-")), min_size=1, max_size=8)


@_cache
def _custom() -> SearchStrategy[dict[str, Any]]:
    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**6), 10**6),
        names(max_size=6),
        st.decimals(
            allow_nan=False, allow_infinity=False, places=3, min_value=-1000, max_value=1000
        ),
        dates(),
        money(),
        probabilities(),
        st.lists(names(max_size=4), max_size=2).map(tuple),
    )
    return st.dictionaries(stage_keys(), values, max_size=2)


@_cache
def _external_ids() -> SearchStrategy[dict[str, str]]:
    return st.dictionaries(
        _pick(("hubspot", "salesforce", "feishu", "dingtalk")), _ids("x"), max_size=2
    )


@_cache
def accounts(*, ids: SearchStrategy[str] | None = None) -> SearchStrategy[Account]:
    """Customer accounts with Chinese or other names, regions, credit limits and custom fields."""
    return st.builds(
        Account,
        id=ids if ids is not None else _ids("acct"),
        name=names(min_size=1),
        industry=_opt(_pick(("制造业", "software", "retail", "金融"))),
        size_band=_opt(_pick(("1-50", "51-500", "500+"))),
        region=_opt(_pick(("华东", "华南", "华北", "EMEA"))),
        country=_opt(_pick(("CN", "US", "DE", "JP"))),
        parent_id=_opt(_ids("acct")),
        owner_id=_opt(_ids("rep")),
        credit_limit=_opt(money()),
        created_at=_opt(aware_datetimes()),
        external_ids=_external_ids(),
        custom=_custom(),
    )


@_cache
def contacts(
    *, account_id: str | SearchStrategy[str | None] | None = None
) -> SearchStrategy[Contact]:
    """Contacts of an account."""
    return st.builds(
        Contact,
        id=_ids("contact"),
        name=names(min_size=1),
        account_id=_strategy(account_id) if account_id is not None else _opt(_ids("acct")),
        email=_opt(_ids("mail").map(lambda s: f"{s}@example.invalid")),
        phone=_opt(st.from_regex(r"\+86 1[3-9]\d{9}", fullmatch=True)),
        title=_opt(_pick(("CIO", "采购经理", "CFO"))),
        role=_opt(_pick(("decision_maker", "champion", "influencer"))),
        language=_opt(_pick(("zh", "en"))),
        external_ids=_external_ids(),
        custom=_custom(),
    )


@_cache
def teams() -> SearchStrategy[Team]:
    """Sales teams."""
    return st.builds(
        Team,
        id=_ids("team"),
        name=names(min_size=1),
        manager_id=_opt(_ids("rep")),
        parent_id=_opt(_ids("team")),
        region=_opt(_pick(("华东", "华南", "EMEA"))),
        external_ids=_external_ids(),
    )


@_cache
def reps(*, team_id: str | SearchStrategy[str | None] | None = None) -> SearchStrategy[Rep]:
    """Sales reps with a positive capacity."""
    return st.builds(
        Rep,
        id=_ids("rep"),
        name=names(min_size=1),
        email=_opt(_ids("mail").map(lambda s: f"{s}@example.invalid")),
        team_id=_strategy(team_id) if team_id is not None else _opt(_ids("team")),
        manager_id=_opt(_ids("rep")),
        region=_opt(_pick(("华东", "华南", "EMEA"))),
        role=st.sampled_from(("ae", "sdr", "manager", "se")),
        hired_on=_opt(dates()),
        capacity=st.decimals(min_value=Decimal("0.1"), max_value=Decimal(2), places=2),
        active=st.booleans(),
        language=_opt(_pick(("zh", "en"))),
        external_ids=_external_ids(),
    )


@_cache
def products() -> SearchStrategy[Product]:
    """Products with an optional list price."""
    return st.builds(
        Product,
        id=_ids("prod"),
        name=names(min_size=1),
        family=_opt(_pick(("license", "service", "硬件"))),
        list_price=_opt(money()),
        external_ids=_external_ids(),
    )


@_cache
def activities(
    *,
    deal_id: str | SearchStrategy[str | None] | None = None,
    kinds: Iterable[ActivityKind | str] | SearchStrategy[ActivityKind | str] = tuple(ActivityKind),
    status: ActivityStatus | str | SearchStrategy[ActivityStatus | str] | None = None,
    at: SearchStrategy[datetime] | None = None,
) -> SearchStrategy[Activity]:
    """Calls, e-mails, meetings, visits, notes and tasks (done by default about half the time)."""
    return st.builds(
        Activity,
        id=_ids("act"),
        kind=_choice(kinds),
        at=at if at is not None else aware_datetimes(),
        subject=names(),
        status=_strategy(status) if status is not None else _pick(tuple(ActivityStatus)),
        deal_id=_strategy(deal_id) if deal_id is not None else _opt(_ids("deal")),
        account_id=_opt(_ids("acct")),
        contact_id=_opt(_ids("contact")),
        owner_id=_opt(_ids("rep")),
        outcome=_opt(names(max_size=8)),
        duration_minutes=_opt(st.integers(1, 240)),
        external_ids=_external_ids(),
    )


# ------------------------------------------------------------------------------------------------
# Deals and histories
# ------------------------------------------------------------------------------------------------

_MANUAL_SOURCES = (
    EventSource.USER,
    EventSource.MODEL,
    EventSource.RULE,
    EventSource.IMPORT,
    EventSource.CRM_SYNC,
)


def _checklist_items(process: Process) -> list[str]:
    items: set[str] = set()
    for s in process.stages:
        items.update(s.playbook.checklist)
        items.update(s.entry.checklist)
        items.update(s.exit.checklist)
    return sorted(items)


@_cache
@st.composite
def deals(
    draw: st.DrawFn,
    *,
    process: Process | SearchStrategy[Process] | None = None,
    at: SearchStrategy[datetime] | None = None,
    ids: SearchStrategy[str] | None = None,
    any_stage: bool | SearchStrategy[bool] = False,
) -> Deal:
    """Valid new deals opened with :meth:`Process.open_deal` (one ``created`` event).

    By default the deal starts in the process's initial stage; with ``any_stage`` it may start in
    any stage (as an import would), closed ones included. Fields are filled at random: amount (in
    the process currency when it has one), close date, owner, account, contacts, a manual
    probability, ticked checklist items and custom fields.
    """
    proc = draw(_strategy(process) if process is not None else processes())
    when = draw(at if at is not None else aware_datetimes())
    stage = None
    if draw(_strategy(any_stage)):
        stage = draw(_pick(tuple(s.key for s in proc.stages)))
    currency = proc.currency if proc.currency else draw(currencies())
    fields: dict[str, Any] = {
        "name": draw(names()),
        "amount": draw(_opt(money(currency=currency))),
        "close_date": (
            when.date() + timedelta(days=draw(st.integers(-60, 365)))
            if draw(st.booleans())
            else None
        ),
        "owner_id": draw(_opt(_ids("rep"))),
        "account_id": draw(_opt(_ids("acct"))),
        "contact_ids": draw(_small_lists(_ids("contact"), max_size=3)),
        "product_ids": draw(_small_lists(_ids("prod"))),
        "competitors": draw(_small_lists(_pick(("Acme", "金蝶", "用友", "Globex")))),
        "custom": draw(_custom()),
        "external_ids": draw(_external_ids()),
    }
    if draw(st.booleans()):
        fields["probability"] = draw(probabilities(places=2))
    items = _checklist_items(proc)
    if items:
        fields["checklist"] = draw(st.lists(_pick(tuple(items)), unique=True))
    return proc.open_deal(
        draw(ids if ids is not None else _ids("deal")),
        at=when,
        actor=draw(_ids("user")),
        source=draw(_pick(_MANUAL_SOURCES)),
        stage=stage,
        **fields,
    )


_STEPS = (
    "move",
    "move",
    "move",
    "amount",
    "close_date",
    "owner",
    "probability",
    "category",
    "checklist",
    "details",
)


@_cache
@st.composite
def deal_histories(
    draw: st.DrawFn,
    *,
    process: Process | SearchStrategy[Process] | None = None,
    max_steps: int = 8,
    at: SearchStrategy[datetime] | None = None,
) -> Deal:
    """Deals with valid event histories of up to ``max_steps`` steps after creation.

    A step is a move to a stage the process graph allows from the current one (after satisfying
    its criteria: ticking checklist items, setting fields, passing done activities and a reason)
    or a change of amount, close date, owner, probability, forecast category, checklist or other
    details. Each step happens at or after the previous one and its instant is expressed in a
    random time zone.
    """
    proc = draw(_strategy(process) if process is not None else processes())
    deal = draw(deals(process=proc, at=at))
    when = deal.created_at
    zones = timezones()
    n = draw(st.integers(0, max_steps))
    for _ in range(n):
        # step in real time (aware arithmetic in a zone is wall-clock arithmetic, DST folds
        # would make it go backwards), then express the instant in a random zone
        step_by = timedelta(seconds=draw(st.integers(0, 5 * 86400)))
        when = (when.astimezone(UTC) + step_by).astimezone(draw(zones))
        actor = draw(_pick(("alice", "王伟", "bob")))
        source = draw(_pick(_MANUAL_SOURCES))
        step = draw(_pick(_STEPS))
        if step == "move":
            targets = proc.graph_targets(deal.stage)
            if not targets:
                continue
            target = draw(_pick(targets))
            prep = prepare_move(proc, deal, target, at=when, actor=actor)
            if prep is None:
                continue
            deal = proc.advance(
                prep.deal,
                target,
                at=when,
                actor=actor,
                reason=prep.reason,
                source=source,
                activities=prep.activities,
            )
        elif step == "amount":
            currency = deal.amount.currency if deal.amount is not None else (proc.currency or "CNY")
            deal = deal.with_amount(
                draw(_opt(money(currency=currency))), at=when, actor=actor, source=source
            )
        elif step == "close_date":
            deal = deal.with_close_date(draw(_opt(dates())), at=when, actor=actor, source=source)
        elif step == "owner":
            deal = deal.with_owner(draw(_opt(_ids("rep"))), at=when, actor=actor, source=source)
        elif step == "probability":
            deal = deal.with_probability(
                draw(_opt(probabilities(places=2))), at=when, actor=actor, source=source
            )
        elif step == "category":
            deal = deal.with_forecast_category(
                draw(_opt(_pick(tuple(ForecastCategory)))), at=when, actor=actor, source=source
            )
        elif step == "checklist":
            items = _checklist_items(proc) or ["follow_up"]
            deal = deal.with_checklist_item(
                draw(_pick(tuple(items))), draw(st.booleans()), at=when, actor=actor, source=source
            )
        else:
            change = draw(
                _pick(("name", "competitors", "lost_reason", "contact_ids", "custom", "account_id"))
            )
            value: Any
            if change in ("competitors", "contact_ids"):
                value = draw(_small_lists(_ids("c"), max_size=3))
            elif change == "custom":
                value = draw(_custom())
            elif change == "lost_reason":
                value = draw(_opt(names(min_size=1, max_size=8)))
            else:
                value = draw(names(min_size=1, max_size=8))
            deal = deal.with_details(at=when, actor=actor, source=source, **{change: value})
    return deal


# ------------------------------------------------------------------------------------------------
# st.from_type
# ------------------------------------------------------------------------------------------------


def register_type_strategies() -> None:
    """Teach ``st.from_type`` the salesprocess types (Deal, Money, Rate, Period, FiscalCalendar,
    Process, Stage, Criteria, Account, Contact, Team, Rep, Product, Activity).

    The ``hypothesis`` entry point does this when Hypothesis starts; calling it again is harmless.
    """
    import importlib

    from salesprocess.testing._hypothesis_setup import TYPES

    for module, name, factory in TYPES:
        typ = getattr(importlib.import_module(module), name)
        st.register_type_strategy(typ, globals()[factory]())
