"""A believable, reproducible sales company: the data behind demos, tests and benchmarks.

:func:`iter_company` streams a company — its process, teams (a hierarchy: sales → regions →
teams), reps with skills and hire dates, products, accounts (by industry and size band, some with
Chinese names) with their contacts, and then, deal by deal, each deal's activities followed by the
deal itself. Deals are driven through the real stage machine (:meth:`Process.advance`): before each
move the generator ticks the checklist items, logs the activities and fills the fields the entry
and exit criteria ask for, so every generated history is one the process accepts.

Everything comes from one ``random.Random(seed)``: the same arguments give the same company, value
for value. Nothing reads the clock; the data ends at ``start + months`` (the *as-of* instant),
where unfinished deals are simply still open.

:func:`generate_company` collects the stream into a :class:`Company`; :func:`write_company` saves a
company (or the stream, so a million deals never sit in memory) into any store.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

import attrs
from dateutil.relativedelta import relativedelta

from .errors import DomainError, TransitionNotAllowed
from .model import (
    Account,
    Activity,
    ActivityKind,
    ActivityStatus,
    Contact,
    Deal,
    DealStatus,
    ForecastCategory,
    Product,
    Rep,
    Team,
)
from .money import CURRENCY_MINOR_UNITS, Money, allocate_int
from .process import Process, StageKind

__all__ = ["Company", "CompanyItem", "generate_company", "iter_company", "write_company"]

CompanyItem = Process | Team | Rep | Product | Account | Contact | Activity | Deal
"""What :func:`iter_company` yields."""


@attrs.frozen(eq=False)
class Company:
    """A generated company: entities, activities and deals (with full event histories)."""

    process: Process
    seed: int
    start: date
    months: int
    asof: datetime
    """The end of the generated data (``start + months`` at midnight in the company's timezone)."""
    currency: str
    teams: tuple[Team, ...]
    reps: tuple[Rep, ...]
    products: tuple[Product, ...]
    accounts: tuple[Account, ...]
    contacts: tuple[Contact, ...]
    activities: tuple[Activity, ...]
    deals: tuple[Deal, ...]

    def items(self) -> Iterator[CompanyItem]:
        """Everything: the process, entities, then each deal preceded by its activities."""
        yield self.process
        yield from self.teams
        yield from self.reps
        yield from self.products
        yield from self.accounts
        yield from self.contacts
        by_deal: dict[str | None, list[Activity]] = {}
        for a in self.activities:
            by_deal.setdefault(a.deal_id, []).append(a)
        for d in self.deals:
            yield from by_deal.pop(d.id, ())
            yield d
        for rest in by_deal.values():
            yield from rest


# ----------------------------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------------------------

_REGIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("na", "North America", ("US", "US", "US", "CA")),
    ("cn", "Greater China 大中华区", ("CN", "CN", "CN", "HK", "TW")),
    ("emea", "EMEA", ("DE", "GB", "FR", "NL", "SE", "ES")),
    ("apac", "APAC", ("JP", "SG", "AU", "KR", "IN")),
)
_CHINESE_COUNTRIES = frozenset({"CN", "HK", "TW"})

_INDUSTRIES: tuple[tuple[str, float], ...] = (
    ("technology", 0.22),
    ("manufacturing", 0.18),
    ("financial_services", 0.12),
    ("healthcare", 0.1),
    ("retail", 0.1),
    ("logistics", 0.08),
    ("energy", 0.07),
    ("education", 0.05),
    ("telecom", 0.05),
    ("public_sector", 0.03),
)
# size band: (key, weight, amount multiplier, cycle multiplier, win multiplier, deal weight)
_SIZES: tuple[tuple[str, float, float, float, float, float], ...] = (
    ("smb", 0.5, 0.45, 0.75, 1.1, 1.0),
    ("mid_market", 0.35, 1.0, 1.0, 1.0, 1.6),
    ("enterprise", 0.15, 2.6, 1.5, 0.82, 2.6),
)

_EN_PREFIX = (
    "Acme", "Apex", "Blue", "Bright", "Cedar", "Crest", "Delta", "Echo", "Falcon", "Granite",
    "Harbor", "Iron", "Juniper", "Keystone", "Lumen", "Maple", "Meridian", "North", "Nova", "Oak",
    "Orbit", "Pioneer", "Quantum", "Redwood", "Sierra", "Silver", "Summit", "Titan", "Vertex", "Zenith",
)
_EN_CORE = (
    "Analytics", "Capital", "Dynamics", "Energy", "Foods", "Health", "Industries", "Labs",
    "Logistics", "Machines", "Media", "Networks", "Robotics", "Software", "Systems", "Works",
)
_EN_SUFFIX = ("Inc.", "Ltd", "GmbH", "Group", "Corp.", "AG", "LLC", "B.V.", "Pty Ltd", "K.K.")
_CN_CITY = (
    "北京", "上海", "深圳", "广州", "杭州", "成都", "苏州", "南京", "武汉", "西安", "天津", "重庆",
    "青岛", "厦门", "宁波", "合肥",
)
_CN_CORE = (
    "华信", "创新", "远航", "鼎盛", "瑞达", "金桥", "恒通", "博远", "新星", "天成", "宏图", "中科",
    "云帆", "立达", "东方", "联创", "佳和", "锦程",
)
_CN_TRADE = ("科技", "制造", "物流", "医疗", "能源", "电子", "信息技术", "零售", "精密机械", "生物")
_CN_SUFFIX = ("有限公司", "股份有限公司", "集团有限公司")

_EN_FIRST = (
    "Alice", "Ben", "Carla", "David", "Emma", "Frank", "Grace", "Henry", "Isla", "Jack", "Kate",
    "Liam", "Maya", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera",
    "Will", "Yara", "Zoe", "Hiro", "Anika", "Lars", "Sofia", "Mateo",
)
_EN_LAST = (
    "Anderson", "Brown", "Clark", "Davis", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen",
    "Kowalski", "Lopez", "Martin", "Nakamura", "Olsen", "Patel", "Quinn", "Rossi", "Schmidt",
    "Tanaka", "Usman", "Vogel", "Walker", "Young", "Zimmer",
)
_CN_SURNAME = ("王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭")
_CN_GIVEN = (
    "伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "勇", "军", "杰", "涛", "明", "超", "秀英",
    "建华", "志强", "晓东", "丽娟", "海燕", "子涵",
)
_TITLES_EN = ("CTO", "CFO", "Head of IT", "Procurement Manager", "VP Operations", "IT Manager", "COO")
_TITLES_CN = ("IT总监", "采购经理", "总经理", "财务总监", "运营副总裁", "信息部经理")
_ROLES = ("decision_maker", "champion", "influencer", "user", "procurement")

# (id suffix, name, family, list price in USD)
_PRODUCTS: tuple[tuple[str, str, str, int], ...] = (
    ("core-basic", "Core Basic", "Core", 1_200),
    ("core-pro", "Core Pro", "Core", 4_800),
    ("core-enterprise", "Core Enterprise", "Core", 18_000),
    ("analytics", "Analytics Add-on", "Add-ons", 2_400),
    ("integration", "Integration Pack", "Add-ons", 3_600),
    ("iot-gateway", "IoT Gateway", "Hardware", 950),
    ("services-days", "Professional Services (10 days)", "Services", 12_000),
    ("training", "Training 客户培训", "Services", 2_000),
)
_FX: dict[str, Decimal] = {
    "USD": Decimal(1), "EUR": Decimal("0.92"), "GBP": Decimal("0.79"), "CNY": Decimal("7.2"),
    "JPY": Decimal(150), "HKD": Decimal("7.8"), "SGD": Decimal("1.35"), "AUD": Decimal("1.5"),
    "CAD": Decimal("1.36"), "CHF": Decimal("0.88"), "KRW": Decimal(1350), "INR": Decimal(83),
}

_COMPETITORS = ("Globex", "Initech", "Hooli", "Vandelay Systems", "Umbrella Software", "星云软件", "Massive Dynamic")
_LOST_REASONS: tuple[tuple[str, float], ...] = (
    ("price", 0.26),
    ("competitor", 0.22),
    ("no_decision", 0.2),
    ("timing", 0.12),
    ("budget_cut", 0.1),
    ("product_fit", 0.1),
)
_ACTIVITY_MIX: tuple[tuple[ActivityKind, float], ...] = (
    (ActivityKind.EMAIL, 0.4),
    (ActivityKind.CALL, 0.33),
    (ActivityKind.MEETING, 0.17),
    (ActivityKind.VISIT, 0.1),
)
_SUBJECTS: dict[ActivityKind, tuple[str, ...]] = {
    ActivityKind.CALL: ("Intro call", "Follow-up call", "电话沟通需求", "Pricing call", "Check-in"),
    ActivityKind.EMAIL: ("Sent overview", "Sent case study", "发送方案资料", "Follow-up e-mail", "Sent quote"),
    ActivityKind.MEETING: ("Discovery meeting", "Demo", "方案讲解会", "Stakeholder meeting", "Negotiation meeting"),
    ActivityKind.VISIT: ("On-site visit", "客户拜访", "Executive visit", "Site survey"),
    ActivityKind.NOTE: ("Note",),
    ActivityKind.TASK: ("Task",),
}
_DURATION = {ActivityKind.CALL: (10, 45), ActivityKind.MEETING: (30, 120), ActivityKind.VISIT: (60, 240)}
# new deals per month, relative: quiet around Chinese New Year and in summer, busy in March/October
_MONTH_SEASON = (0.85, 0.78, 1.08, 1.02, 1.0, 0.98, 0.88, 0.86, 1.04, 1.1, 1.06, 0.8)
_RAMP_DAYS = 120
_DEAL_ACTOR_FALLBACK = "system"


class _Weighted:
    """Values with weights, ready to draw from (cumulative weights computed once)."""

    __slots__ = ("cum", "values")

    def __init__(self, weighted: Sequence[tuple[Any, float]]) -> None:
        self.values = [v for v, _ in weighted]
        self.cum = list(itertools.accumulate(w for _, w in weighted))


def _pick(rng: random.Random, table: _Weighted) -> Any:
    cum = table.cum
    return table.values[min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)]


_W_INDUSTRIES = _Weighted(_INDUSTRIES)
_W_SIZES = _Weighted([(i, s[1]) for i, s in enumerate(_SIZES)])
_W_LOST_REASONS = _Weighted(_LOST_REASONS)
_W_ACTIVITY_MIX = _Weighted(_ACTIVITY_MIX)


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


# ----------------------------------------------------------------------------------------------
# The process, compiled into what the generator needs
# ----------------------------------------------------------------------------------------------


@attrs.frozen
class _Need:
    checklist: tuple[str, ...]
    activities: tuple[str, ...]
    fields: tuple[str, ...]
    guards: tuple[str, ...]


def _happy_path(p: Process) -> tuple[list[str], str]:
    """Open stages from the initial stage along the forward path, and the won stage at its end."""
    won_keys = {s.key for s in p.won_stages}
    path = [p.initial_stage.key]
    seen = set(path)
    while True:
        cur = path[-1]
        targets = p.graph_targets(cur)
        wins = [t for t in targets if t in won_keys]
        if wins:
            return path, wins[0]
        forward = sorted(
            (t for t in targets if t not in seen and p.stage(t).kind is StageKind.OPEN and p.order(t) > p.order(cur)),
            key=p.order,
        )
        if forward:
            path.append(forward[0])
            seen.add(forward[0])
            continue
        # no forward open stage: the shortest way to a won stage
        prev: dict[str, str] = {}
        todo = [cur]
        found = None
        while todo and found is None:
            nxt = []
            for s in todo:
                for t in p.graph_targets(s):
                    if t in prev or t in seen or p.stage(t).kind is StageKind.LOST:
                        continue
                    prev[t] = s
                    if t in won_keys:
                        found = t
                        break
                    nxt.append(t)
                if found:
                    break
            todo = nxt
        if found is None:
            raise DomainError(f"process {p.key!r}: no way from {cur!r} to a won stage")
        chain = [found]
        while prev[chain[-1]] != cur:
            chain.append(prev[chain[-1]])
        chain.reverse()
        path.extend(chain[:-1])
        seen.update(chain[:-1])
        return path, found


class _Plan:
    def __init__(self, p: Process) -> None:
        self.process = p
        self.path, self.won = _happy_path(p)
        self.index = {k: i for i, k in enumerate(self.path)}
        reachable = {t for k in self.path for t in p.graph_targets(k)}
        self.lost = next((s.key for s in p.lost_stages if s.key in reachable), None)
        self.reopen: dict[str, str] = {}
        for s in p.stages:
            if s.is_closed:
                for t in p.graph_targets(s.key):
                    if t in self.index:
                        self.reopen[s.key] = t
                        break
        self._needs: dict[tuple[str, str], _Need] = {}
        self.dwell: dict[str, float] = {}
        for s in p.stages:
            days = float(s.sla_days or 10)
            if s.sla_business_days:
                days *= 1.4
            self.dwell[s.key] = days * 0.9
        self.playbook = {s.key: s.playbook.checklist for s in p.stages}

    def need(self, src: str, dst: str) -> _Need:
        n = self._needs.get((src, dst))
        if n is None:
            p = self.process
            s, d = p.stage(src), p.stage(dst)
            forward = d.kind is StageKind.WON or (
                d.kind is StageKind.OPEN and not s.is_closed and p.order(dst) > p.order(src)
            )
            crits = [d.entry] + ([s.exit] if forward else [])
            t = p.edge(src, dst)
            n = _Need(
                tuple(dict.fromkeys(x for c in crits for x in c.checklist)),
                tuple(dict.fromkeys(x for c in crits for x in c.activities)),
                tuple(dict.fromkeys(x for c in crits for x in c.fields)),
                tuple(dict.fromkeys([*(x for c in crits for x in c.guards), *(t.guards if t else ())])),
            )
            self._needs[(src, dst)] = n
        return n


# ----------------------------------------------------------------------------------------------
# The generator
# ----------------------------------------------------------------------------------------------


@attrs.define
class _RepInfo:
    id: str
    region: int
    hired: date
    win: float
    speed: float
    size: float


@attrs.define
class _Ctx:
    """One deal in the making."""

    deal: Deal
    actor: str
    acts: list[Activity]
    account: int
    contacts: tuple[str, ...]
    seq: int = 0
    done: set[str] = attrs.Factory(set)
    """Kinds of the done activities so far."""


class _Generator:
    def __init__(
        self,
        *,
        deals: int,
        seed: int,
        start: date,
        months: int,
        process: Process,
        currency: str,
        tz: tzinfo,
    ) -> None:
        if isinstance(deals, bool) or not isinstance(deals, int) or deals < 0:
            raise DomainError(f"deals must be a non-negative integer, got {deals!r}")
        if isinstance(months, bool) or not isinstance(months, int) or months < 1:
            raise DomainError(f"months must be a positive integer, got {months!r}")
        if not isinstance(start, date) or isinstance(start, datetime):
            raise TypeError("start must be a date")
        if currency not in CURRENCY_MINOR_UNITS:
            raise DomainError(f"unknown ISO 4217 currency code {currency!r}")
        if not isinstance(tz, tzinfo):
            raise TypeError("tz must be a tzinfo")
        self.n = deals
        self.seed = seed
        self.rng = random.Random(seed)
        self.start = start
        self.months = months
        self.end = start + relativedelta(months=months)
        self.tz = tz
        self.asof = datetime.combine(self.end, time(0), tz)
        self.process = process
        self.plan = _Plan(process)
        self.currency = currency
        self.exp = CURRENCY_MINOR_UNITS[currency]
        self.fx = _FX.get(currency, Decimal(1))
        self.width = max(5, len(str(max(deals, 1))))
        self._minute = timedelta(minutes=1)

    # --- fast draws (random.Random's randrange/choice/sample are slow in hot loops) ---------
    def ri(self, a: int, b: int) -> int:
        """An integer in ``[a, b)``."""
        return a + int(self.rng.random() * (b - a))

    def one(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.rng.random() * len(seq))]

    def some(self, seq: Sequence[Any], k: int) -> list[Any]:
        """``k`` distinct items of ``seq``, in ``seq`` order."""
        r = self.rng.random
        if k == 1:
            return [seq[int(r() * len(seq))]]
        pool = list(range(len(seq)))
        out = []
        for j in range(min(k, len(pool))):
            x = j + int(r() * (len(pool) - j))
            pool[j], pool[x] = pool[x], pool[j]
            out.append(pool[j])
        return [seq[x] for x in sorted(out)]

    def logn(self, mu: float, sigma: float) -> float:
        return math.exp(mu + sigma * self.rng.gauss(0.0, 1.0))

    def uni(self, a: float, b: float) -> float:
        return a + (b - a) * self.rng.random()

    # --- time helpers ----------------------------------------------------------------------
    def work_instant(self, d: date) -> datetime:
        """A business-hours instant on ``d`` (moved to Monday when ``d`` is a weekend day)."""
        wd = d.weekday()
        if wd >= 5:
            d = d + timedelta(days=7 - wd)
        minute = 540 + int(self.rng.random() * 540)
        return datetime(d.year, d.month, d.day, minute // 60, minute % 60, tzinfo=self.tz)

    def slots(self, lo: datetime, hi: datetime, k: int) -> list[datetime]:
        """``k`` sorted instants in ``[lo, hi]`` (whole minutes after ``lo``)."""
        span = int((hi - lo).total_seconds() // 60)
        if span <= 0:
            return [lo] * k
        r = self.rng.random
        n = span + 1
        offs = sorted([int(r() * n) for _ in range(k)])
        return [lo + timedelta(0, 60 * m) for m in offs]

    # --- organisation ----------------------------------------------------------------------
    def organisation(self) -> Iterator[CompanyItem]:
        # a rep opens about six deals a month; teams of up to eight; even a small company sells
        # in two regions (North America and Greater China)
        n_ae = int(_clip(round(self.n / (self.months * 6)), 6, 3000))
        n_teams = max(2, math.ceil(n_ae / 8))
        n_regions = min(len(_REGIONS), max(2, math.ceil(n_teams / 3)))
        team_sizes = allocate_int(n_ae, [1] * n_teams)
        self.regions = _REGIONS[:n_regions]
        self.reps: list[_RepInfo] = []
        self.region_reps: list[list[int]] = [[] for _ in range(n_regions)]
        teams: list[Team] = []
        reps: list[Rep] = []

        def person(region: int) -> tuple[str, str]:
            if self.regions[region][0] == "cn":
                return self.one(_CN_SURNAME) + self.one(_CN_GIVEN), "zh"
            return f"{self.one(_EN_FIRST)} {self.one(_EN_LAST)}", "en"

        def hired(tenured: bool) -> date:
            if tenured:
                return self.start - timedelta(days=self.ri(_RAMP_DAYS, 2400))
            span = max(1, (self.end - self.start).days * 3 // 4)
            return self.start + timedelta(days=self.ri(0, span))

        vp_name, vp_lang = person(0)
        reps.append(Rep("rep-vp", vp_name, email="rep-vp@example.com", team_id="team-sales", role="vp",
                        hired_on=hired(True), language=vp_lang))
        teams.append(Team("team-sales", "Sales 销售部", manager_id="rep-vp"))
        team_no = 0
        ae_no = 0
        per_region = allocate_int(n_teams, [1] * n_regions)
        for r, (rkey, rname, _countries) in enumerate(self.regions):
            dir_id = f"rep-{rkey}-director"
            name, lang = person(r)
            reps.append(Rep(dir_id, name, email=f"{dir_id}@example.com", team_id=f"team-{rkey}",
                            manager_id="rep-vp", region=rkey, role="director", hired_on=hired(True),
                            language=lang))
            teams.append(Team(f"team-{rkey}", rname, manager_id=dir_id, parent_id="team-sales", region=rkey))
            for _ in range(per_region[r]):
                team_no += 1
                tid = f"team-{rkey}-{team_no:02d}"
                mgr = f"rep-{rkey}-mgr{team_no:02d}"
                name, lang = person(r)
                reps.append(Rep(mgr, name, email=f"{mgr}@example.com", team_id=tid, manager_id=dir_id,
                                region=rkey, role="manager", hired_on=hired(True), language=lang))
                teams.append(Team(tid, f"{rname} – Team {team_no}", manager_id=mgr, parent_id=f"team-{rkey}", region=rkey))
                for _ in range(team_sizes[team_no - 1]):
                    ae_no += 1
                    rid = f"rep-{ae_no:04d}"
                    name, lang = person(r)
                    tenured = ae_no % 5 != 0  # one rep in five joins during the period
                    h = hired(tenured)
                    info = _RepInfo(
                        rid, r, h,
                        win=_clip(self.logn(0, 0.28), 0.45, 1.8),
                        speed=_clip(self.logn(0, 0.25), 0.5, 2.0),
                        size=_clip(self.logn(0, 0.3), 0.4, 2.5),
                    )
                    self.region_reps[r].append(len(self.reps))
                    self.reps.append(info)
                    reps.append(Rep(rid, name, email=f"{rid}@example.com", team_id=tid, manager_id=mgr,
                                    region=rkey, role="ae", hired_on=h, language=lang))
        yield from teams
        yield from reps

    def catalog(self) -> Iterator[CompanyItem]:
        q = Decimal(1).scaleb(-self.exp)
        self.products: list[tuple[str, str, Decimal]] = []
        for key, name, family, usd in _PRODUCTS:
            price = (Decimal(usd) * self.fx).quantize(q)
            pid = f"prod-{key}"
            self.products.append((pid, name, price))
            yield Product(pid, name, family=family, list_price=Money(price, self.currency))

    def accounts(self) -> Iterator[CompanyItem]:
        rng = self.rng
        n = int(_clip(self.n // 6, 10, 100_000))
        self.acc_region = bytearray(n)
        self.acc_size = bytearray(n)
        self.acc_contacts = bytearray(n)
        self.acc_names: list[str] = []
        self.acc_cn = bytearray(n)
        region_accounts: list[list[int]] = [[] for _ in self.regions]
        region_cum: list[list[float]] = [[] for _ in self.regions]
        used: dict[str, int] = {}
        for i in range(n):
            r = i % len(self.regions) if i < len(self.regions) else self.ri(0, len(self.regions))
            size = _pick(rng, _W_SIZES)
            country = self.one(self.regions[r][2])
            industry = _pick(rng, _W_INDUSTRIES)
            cn = country in _CHINESE_COUNTRIES
            if cn:
                base = self.one(_CN_CITY) + self.one(_CN_CORE) + self.one(_CN_TRADE)
                full = base + self.one(_CN_SUFFIX)
            else:
                base = f"{self.one(_EN_PREFIX)} {self.one(_EN_CORE)}"
                full = f"{base} {self.one(_EN_SUFFIX)}"
            k = used.get(full, 0)
            used[full] = k + 1
            if k:
                full = f"{full} ({k + 1})"
            aid = f"acc-{i + 1:06d}"
            rr = self.region_reps[r]
            owner = self.reps[rr[self.ri(0, len(rr))]].id if rr else None
            self.acc_region[i] = r
            self.acc_size[i] = size
            self.acc_cn[i] = cn
            self.acc_names.append(base)
            region_accounts[r].append(i)
            prev = region_cum[r][-1] if region_cum[r] else 0.0
            region_cum[r].append(prev + _SIZES[size][5])
            created = datetime.combine(self.start - timedelta(days=self.ri(30, 1500)), time(9), self.tz)
            yield Account(aid, full, industry=industry, size_band=_SIZES[size][0], region=self.regions[r][0],
                          country=country, owner_id=owner, created_at=created)
            nc = 2 + (rng.random() < 0.6) + (rng.random() < 0.35) + (size == 2) * 2
            self.acc_contacts[i] = nc
            for c in range(nc):
                if cn:
                    name = self.one(_CN_SURNAME) + self.one(_CN_GIVEN)
                    title = self.one(_TITLES_CN)
                    lang = "zh"
                else:
                    name = f"{self.one(_EN_FIRST)} {self.one(_EN_LAST)}"
                    title = self.one(_TITLES_EN)
                    lang = "en"
                cid = f"ct-{i + 1:06d}-{c + 1}"
                yield Contact(cid, name, account_id=aid, email=f"{cid}@example.com", title=title,
                              role=_ROLES[c % len(_ROLES)] if c < len(_ROLES) else self.one(_ROLES),
                              language=lang, phone=f"+{self.ri(10**9, 10**10)}")
        self.region_accounts = region_accounts
        self.region_cum = region_cum

    # --- deals -----------------------------------------------------------------------------
    def creation_times(self) -> Iterator[datetime]:
        """Creation instants of all deals, in time order, with seasonality and growth."""
        weights = []
        for m in range(self.months):
            d = self.start + relativedelta(months=m)
            weights.append(Decimal(str(round(_MONTH_SEASON[d.month - 1] * (1.02**m), 6))))
        counts = allocate_int(self.n, weights) if self.n else [0] * self.months
        last = self.end - timedelta(days=1)
        for m, k in enumerate(counts):
            first = self.start + relativedelta(months=m)
            days = (first + relativedelta(months=1) - first).days
            for day in sorted(self.ri(0, days) for _ in range(k)):
                d = first + timedelta(days=day)
                if d.weekday() >= 5 and d + timedelta(days=7 - d.weekday()) > last:
                    d -= timedelta(days=d.weekday() - 4)  # no Monday left: the Friday before
                yield self.work_instant(d)

    def eligible(self, when: date) -> tuple[list[int], list[float]]:
        """Reps hired by ``when`` and their assignment weights (ramping reps get fewer deals)."""
        idx = []
        cum = []
        tot = 0.0
        for i, r in enumerate(self.reps):
            days = (when - r.hired).days
            if days < 0:
                continue
            w = 1.0 if days >= _RAMP_DAYS else 0.25 + 0.75 * days / _RAMP_DAYS
            tot += w
            idx.append(i)
            cum.append(tot)
        if not idx:  # everybody joins later: the earliest hire takes the deal
            first = min(range(len(self.reps)), key=lambda i: self.reps[i].hired)
            return [first], [1.0]
        return idx, cum

    def deals(self) -> Iterator[CompanyItem]:
        rng = self.rng
        month_cache: dict[tuple[int, int], tuple[list[int], list[float]]] = {}
        for n, created in enumerate(self.creation_times(), 1):
            mk = (created.year, created.month)
            el = month_cache.get(mk)
            if el is None:
                el = self.eligible(date(created.year, created.month, 1))  # reps on board all month
                month_cache[mk] = el
            ri = el[0][bisect.bisect_right(el[1], rng.random() * el[1][-1]) if len(el[0]) > 1 else 0]
            ri = min(ri, len(self.reps) - 1)
            rep = self.reps[ri]
            accs = self.region_accounts[rep.region] or self.region_accounts[0]
            cum = self.region_cum[rep.region] or self.region_cum[0]
            acc = accs[min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(accs) - 1)]
            deal, acts = self.one_deal(n, created, rep, acc)
            yield from acts
            yield deal

    def amount(self, acc: int, rep: _RepInfo, products: Sequence[int]) -> Money:
        total = 0.0
        for p in products:
            qty = max(1.0, self.logn(0.9, 0.8))
            total += float(self.products[p][2]) * qty
        total *= _SIZES[self.acc_size[acc]][2] * rep.size * self.uni(0.78, 1.0)
        # amounts are quoted in round figures: whole units, or hundreds for large deals
        step = 100 if total >= 20_000 else 10 if total >= 1_000 else 1
        units = max(step, round(total / step) * step)
        return Money(units, self.currency)

    def _activity(
        self, c: _Ctx, kind: ActivityKind, at: datetime, status: ActivityStatus = ActivityStatus.DONE
    ) -> Activity:
        c.seq += 1
        dur = _DURATION.get(kind)
        a = Activity(
            f"act-{c.deal.id[5:]}-{c.seq:02d}",
            kind,
            at,
            subject=self.one(_SUBJECTS[kind]),
            status=status,
            deal_id=c.deal.id,
            account_id=c.deal.account_id,
            contact_id=c.contacts[self.ri(0, len(c.contacts))] if c.contacts else None,
            owner_id=c.actor,
            duration_minutes=self.ri(dur[0], dur[1] + 1) if dur else None,
        )
        c.acts.append(a)
        if status is ActivityStatus.DONE:
            c.done.add(kind.value)
        return a

    def _random_kind(self, cn: bool) -> ActivityKind:
        k: ActivityKind = _pick(self.rng, _W_ACTIVITY_MIX)
        if cn and k is ActivityKind.EMAIL and self.rng.random() < 0.35:
            return ActivityKind.VISIT  # face to face is the norm with Chinese customers
        return k

    def _fill(self, c: _Ctx, need: _Need, at: datetime, move_at: datetime, rep: _RepInfo, acc: int) -> str | None:
        """Satisfy the criteria of the next move; returns a reason when a guard asks for one."""
        d = c.deal
        actor = c.actor
        for item in need.checklist:
            d = d.with_checklist_item(item, at=at, actor=actor)
        c.deal = d
        for k in need.activities:
            if k not in c.done:
                self._activity(c, ActivityKind(k), at)
        reason = None
        # an ordered set: the order of the fields decides the order of random draws
        wants = dict.fromkeys(need.fields)
        for g in need.guards:
            if g == "has_amount":
                wants["amount"] = None
            elif g == "has_close_date":
                wants["close_date"] = None
            elif g == "close_date_not_past":
                if d.close_date is not None and d.close_date < move_at.date():
                    d = d.with_close_date(move_at.date() + timedelta(days=self.ri(7, 45)), at=at, actor=actor)
            elif g in ("has_contact", "multi_threaded"):
                wants["contact_ids"] = None
                if g == "multi_threaded" and len(d.contact_ids) < 2 and len(c.contacts) >= 2:
                    d = d.with_details(contact_ids=c.contacts[:2], at=at, actor=actor)
            elif g == "has_owner":
                wants["owner_id"] = None
            elif g == "has_reason":
                reason = "customer confirmed"
        for f in wants:
            d = self._set_field(d, f, at, actor, rep, acc, c.contacts, move_at)
        c.deal = d
        return reason

    def _set_field(
        self, d: Deal, f: str, at: datetime, actor: str, rep: _RepInfo, acc: int,
        contacts: Sequence[str], move_at: datetime,
    ) -> Deal:
        if f == "amount":
            if d.amount is None or d.amount.amount <= 0:
                prods = [i for i, (pid, _, _) in enumerate(self.products) if pid in d.product_ids] or [0]
                d = d.with_amount(self.amount(acc, rep, prods), at=at, actor=actor)
        elif f == "close_date":
            if d.close_date is None:
                days = int(sum(self.plan.dwell.values()) * rep.speed * self.uni(0.4, 0.9))
                d = d.with_close_date(move_at.date() + timedelta(days=max(7, days)), at=at, actor=actor)
        elif f == "owner_id":
            if d.owner_id is None:
                d = d.with_owner(rep.id, at=at, actor=actor)
        elif f == "account_id":
            if d.account_id is None:
                d = d.with_details(account_id=f"acc-{acc + 1:06d}", at=at, actor=actor)
        elif f == "contact_ids":
            if not d.contact_ids and contacts:
                d = d.with_details(contact_ids=contacts[:2], at=at, actor=actor)
        elif f == "product_ids":
            if not d.product_ids:
                d = d.with_details(product_ids=(self.products[0][0],), at=at, actor=actor)
        elif f == "competitors":
            if not d.competitors:
                d = d.with_details(competitors=(self.one(_COMPETITORS),), at=at, actor=actor)
        elif f == "probability":
            if d.probability is None:
                d = d.with_probability(self.process.stage(d.stage).probability, at=at, actor=actor)
        elif f == "forecast_category":
            if d.forecast_category is None:
                d = d.with_forecast_category(ForecastCategory.PIPELINE, at=at, actor=actor)
        elif f == "name":
            if not d.name:
                d = d.with_details(name=d.id, at=at, actor=actor)
        elif f.startswith("custom."):
            key = f[7:]
            if d.custom.get(key) in (None, ""):
                d = d.with_details(custom=d.custom.set(key, "yes"), at=at, actor=actor)
        return d

    def one_deal(self, n: int, created: datetime, rep: _RepInfo, acc: int) -> tuple[Deal, list[Activity]]:
        rng = self.rng
        plan = self.plan
        proc = self.process
        asof = self.asof
        size = _SIZES[self.acc_size[acc]]
        cn = bool(self.acc_cn[acc])
        did = f"deal-{n:0{self.width}d}"
        nprod = 1 + (rng.random() < 0.35) + (rng.random() < 0.1)
        prods = self.some(range(len(self.products)), nprod)
        nc = self.acc_contacts[acc]
        acc_id = f"acc-{acc + 1:06d}"
        all_contacts = tuple(f"ct-{acc + 1:06d}-{k + 1}" for k in range(nc))
        contacts = tuple(self.some(all_contacts, 1 + (rng.random() < 0.5) + (rng.random() < 0.2)))
        fields: dict[str, Any] = {
            "name": f"{self.acc_names[acc]} – {self.products[prods[0]][1]}",
            "owner_id": rep.id,
            "account_id": acc_id,
            "product_ids": [self.products[p][0] for p in prods],
            "contact_ids": contacts,
        }
        early_amount = rng.random() < 0.4
        if early_amount:
            fields["amount"] = self.amount(acc, rep, prods)
        deal = proc.open_deal(did, at=created, actor=rep.id, **fields)
        c = _Ctx(deal, rep.id, [], acc, all_contacts)
        # skill, ramp, account size and the path length make the funnel
        ramp_days = (created.date() - rep.hired).days
        ramp = 1.0 if ramp_days >= _RAMP_DAYS else 0.55 + 0.45 * max(0, ramp_days) / _RAMP_DAYS
        path = plan.path
        steps = len(path)  # moves to the won stage
        skill = (rep.win * ramp * size[4]) ** (1.0 / steps)
        speed = rep.speed * size[3]
        manual_prob = rng.random() < 0.08
        with_competitors = rng.random() < 0.4
        handover = rng.random() < 0.03
        i = 0
        t = created
        lost_reason: str | None = None
        while True:
            cur = path[i]
            target = path[i + 1] if i + 1 < steps else plan.won
            base = 0.7 + 0.14 * (i / max(1, steps - 1))
            if i + 1 == steps:
                base = 0.68
            p_adv = _clip(base * skill, 0.05, 0.97)
            advance = rng.random() < p_adv
            dwell = plan.dwell[cur] * speed * self.logn(0, 0.55)
            if not advance:
                dwell *= self.uni(1.2, 2.5)
            move_at = self.work_instant((t + timedelta(days=dwell)).date())
            if move_at <= t:
                move_at = t + timedelta(minutes=self.ri(10, 240))
            if advance and target == plan.won:
                move_at = self._quarter_end_pull(move_at, t)
            extra = self.ri(0, 3)
            n_slots = extra + 4
            times = self.slots(t, move_at, n_slots)
            done_early = move_at > asof
            if done_early:
                times = [x for x in times if x <= asof]
            self._step_work(c, cur, times, extra, cn, i, with_competitors, manual_prob, early_amount, rep, acc, move_at)
            if done_early:
                break  # the data ends before the move: the deal is open at the as-of instant
            if handover and i == 1:
                handover = False
                others = [self.reps[j] for j in self.region_reps[rep.region] if self.reps[j].id != rep.id
                          and self.reps[j].hired <= move_at.date()]
                if others:
                    new = others[self.ri(0, len(others))]
                    c.deal = c.deal.with_owner(new.id, at=times[-1], actor=c.actor)
                    c.actor = new.id
                    rep = new
            if advance:
                need = plan.need(cur, target)
                reason = self._fill(c, need, times[-1], move_at, rep, acc)
                if target == plan.won:
                    if c.deal.close_date != move_at.date():
                        c.deal = c.deal.with_close_date(move_at.date(), at=move_at, actor=c.actor)
                try:
                    c.deal = proc.advance(c.deal, target, at=move_at, actor=c.actor, reason=reason, activities=c.acts)
                except TransitionNotAllowed:
                    break  # a plugin guard the generator cannot satisfy: the deal stalls
                t = move_at
                if target == plan.won:
                    if not self._maybe_reopen(c, plan.won, t, rep, acc):
                        break
                    i = plan.index[c.deal.stage]
                    t = c.deal.updated_at
                    continue
                i += 1
                continue
            # the deal does not progress: lost, or it stalls
            if plan.lost is None or rng.random() < 0.18:
                if rng.random() < 0.5:
                    break  # stalled for good: still open at the end
                late = move_at + timedelta(days=self.ri(60, 200))
                if late > asof or plan.lost is None:
                    break
                move_at = self.work_instant(late.date())
                if move_at > asof:
                    break
            lost_reason = _pick(rng, _W_LOST_REASONS)
            if lost_reason == "competitor" and not c.deal.competitors:
                c.deal = c.deal.with_details(competitors=(self.one(_COMPETITORS),), at=c.deal.updated_at, actor=c.actor)
            need = plan.need(cur, plan.lost)
            self._fill(c, need, c.deal.updated_at, move_at, rep, acc)
            if c.deal.close_date is not None and c.deal.close_date != move_at.date():
                c.deal = c.deal.with_close_date(move_at.date(), at=move_at, actor=c.actor)
            try:
                c.deal = proc.advance(c.deal, plan.lost, at=move_at, actor=c.actor, reason=lost_reason, activities=c.acts)
            except TransitionNotAllowed:
                break
            t = move_at
            if not self._maybe_reopen(c, plan.lost, t, rep, acc):
                break
            i = plan.index[c.deal.stage]
            t = c.deal.updated_at
        self._planned(c, cn)
        return c.deal, c.acts

    def _quarter_end_pull(self, move_at: datetime, after: datetime) -> datetime:
        """Deals that would close in the weeks around a quarter end tend to close just before it:
        late in the quarter reps push to sign now, early in the next they had pulled deals in."""
        d = move_at.date()
        q_end = date(d.year + (d.month > 9), ((d.month - 1) // 3 + 1) * 3 % 12 + 1, 1) - timedelta(days=1)
        days_left = (q_end - d).days
        r = self.rng.random()
        if 4 <= days_left <= 30 and r < 0.6:
            target = q_end
        elif days_left >= 77 and r < 0.3:  # the first two weeks of a quarter: pulled into the last
            target = date(d.year, d.month, 1) - timedelta(days=1)
        else:
            return move_at
        nd = target - timedelta(days=self.ri(0, 4))
        if nd.weekday() >= 5:  # close on the Friday before
            nd -= timedelta(days=nd.weekday() - 4)
        cand = self.work_instant(nd)
        if after < cand <= self.asof:
            return cand
        return move_at

    def _maybe_reopen(self, c: _Ctx, closed: str, t: datetime, rep: _RepInfo, acc: int) -> bool:
        """A few lost deals come back (and, rarely, a won one is reopened for a re-quote)."""
        rng = self.rng
        target = self.plan.reopen.get(closed)
        if target is None:
            return False
        chance = 0.07 if closed != self.plan.won else 0.01
        if rng.random() >= chance:
            return False
        at = self.work_instant((t + timedelta(days=self.ri(14, 90))).date())
        if at > self.asof or at <= t:
            return False
        need = self.plan.need(closed, target)
        self._fill(c, need, at, at, rep, acc)
        if c.deal.close_date is not None and c.deal.close_date <= at.date():
            c.deal = c.deal.with_close_date(at.date() + timedelta(days=self.ri(20, 60)), at=at, actor=c.actor)
        try:
            c.deal = self.process.advance(c.deal, target, at=at, actor=c.actor, reason="customer came back", activities=c.acts)
        except TransitionNotAllowed:
            return False
        return True

    def _step_work(
        self, c: _Ctx, stage: str, times: list[datetime], extra: int, cn: bool, i: int,
        with_competitors: bool, manual_prob: bool, early_amount: bool, rep: _RepInfo, acc: int,
        move_at: datetime,
    ) -> None:
        """The work done while the deal sits in ``stage``: activities, checklist, field updates."""
        rng = self.rng
        actor = c.actor
        k = 0
        for _ in range(extra):
            if k >= len(times):
                return
            self._activity(c, self._random_kind(cn), times[k])
            k += 1
        if k >= len(times):
            return
        at = times[k]
        k += 1
        d = c.deal
        for item in self.plan.playbook.get(stage, ()):
            if rng.random() < 0.9:
                d = d.with_checklist_item(item, at=at, actor=actor)
        # a slipped close date is noticed and moved out
        if d.close_date is not None and d.close_date < at.date():
            d = d.with_close_date(at.date() + timedelta(days=self.ri(14, 60)), at=at, actor=actor)
        if k < len(times):
            at = times[k]
            k += 1
            if i == 1 and with_competitors and not d.competitors:
                comp = tuple(self.some(_COMPETITORS, 1 + (rng.random() < 0.3)))
                d = d.with_details(competitors=comp, at=at, actor=actor)
            if i == 2 and d.amount is None:
                prods = [j for j, (pid, _, _) in enumerate(self.products) if pid in d.product_ids] or [0]
                d = d.with_amount(self.amount(acc, rep, prods), at=at, actor=actor)
            if i == 2 and d.close_date is None:
                days = int(sum(self.plan.dwell[s] for s in self.plan.path[i:]) * rep.speed * self.uni(0.5, 1.0))
                d = d.with_close_date(move_at.date() + timedelta(days=max(7, days)), at=at, actor=actor)
            elif i == 3 and early_amount and d.amount is not None and rng.random() < 0.5:
                # the early estimate is refined with the solution
                new = d.amount * Decimal(str(round(self.uni(0.75, 1.3), 2)))
                d = d.with_amount(new.round("ROUND_HALF_EVEN", places=0), at=at, actor=actor)
            elif i >= 4 and d.amount is not None and rng.random() < 0.35:
                # discount during quote and negotiation, sometimes an upsell
                f = self.uni(0.8, 0.97) if rng.random() < 0.8 else self.uni(1.05, 1.25)
                new = d.amount * Decimal(str(round(f, 3)))
                d = d.with_amount(new.round("ROUND_HALF_EVEN", places=0), at=at, actor=actor)
            if i != 2 and d.close_date is not None and rng.random() < 0.1:  # a date pushed out
                d = d.with_close_date(d.close_date + timedelta(days=self.ri(7, 40)), at=at, actor=actor)
        if k < len(times):
            at = times[k]
            k += 1
            if manual_prob and i == 2:
                d = d.with_probability(
                    Decimal(self.one(("0.15", "0.25", "0.35", "0.5"))), at=at, actor=actor
                )
            st = self.process.stage(stage)
            if st.forecast_category is ForecastCategory.BEST_CASE and rng.random() < 0.15:
                d = d.with_forecast_category(ForecastCategory.COMMIT, at=at, actor=actor)
        c.deal = d

    def _planned(self, c: _Ctx, cn: bool) -> None:
        """Open deals have a next step on the calendar; closed ones sometimes a cancelled one."""
        rng = self.rng
        d = c.deal
        if d.status is DealStatus.OPEN:
            if rng.random() < 0.7:
                due = self.work_instant((self.asof + timedelta(days=self.ri(0, 14))).date())
                self._activity(c, self._random_kind(cn), max(due, d.updated_at), ActivityStatus.PLANNED)
        elif rng.random() < 0.1 and d.closed_at is not None:
            self._activity(c, ActivityKind.MEETING, d.closed_at, ActivityStatus.CANCELLED)

    def run(self) -> Iterator[CompanyItem]:
        yield self.process
        yield from self.organisation()
        yield from self.catalog()
        yield from self.accounts()
        yield from self.deals()


def iter_company(
    *,
    deals: int,
    seed: int,
    start: date,
    months: int = 24,
    process: Process | None = None,
    currency: str = "USD",
    tz: tzinfo = UTC,
) -> Iterator[CompanyItem]:
    """Stream a generated company: the process, teams, reps, products, accounts and contacts, then
    for each deal (in creation order) its activities followed by the deal.

    ``process`` defaults to the shipped ``b2b`` process. Memory stays flat in ``deals``: only the
    organisation and compact account tables are kept while deals stream out.
    """
    if process is None:
        from .processes import load

        process = load("b2b")
    return _Generator(
        deals=deals, seed=seed, start=start, months=months, process=process, currency=currency, tz=tz
    ).run()


def generate_company(
    *,
    deals: int,
    seed: int,
    start: date,
    months: int = 24,
    process: Process | None = None,
    currency: str = "USD",
    tz: tzinfo = UTC,
) -> Company:
    """A whole generated company in memory (see :func:`iter_company` for the parameters)."""
    it = iter_company(deals=deals, seed=seed, start=start, months=months, process=process,
                      currency=currency, tz=tz)
    proc = next(it)
    assert isinstance(proc, Process)
    buckets: dict[type, list[Any]] = {t: [] for t in (Team, Rep, Product, Account, Contact, Activity, Deal)}
    for item in it:
        buckets[type(item)].append(item)
    end = start + relativedelta(months=months)
    return Company(
        process=proc,
        seed=seed,
        start=start,
        months=months,
        asof=datetime.combine(end, time(0), tz),
        currency=currency,
        teams=tuple(buckets[Team]),
        reps=tuple(buckets[Rep]),
        products=tuple(buckets[Product]),
        accounts=tuple(buckets[Account]),
        contacts=tuple(buckets[Contact]),
        activities=tuple(buckets[Activity]),
        deals=tuple(buckets[Deal]),
    )


def write_company(
    store: Any,
    company: Company | Iterable[CompanyItem],
    progress: Callable[[int], None] | None = None,
    *,
    batch_size: int = 1000,
) -> int:
    """Save a company (or the stream of :func:`iter_company`) into ``store`` in batches.

    The process is saved with ``save_process``, entities with ``put`` and deals with
    ``save_deals`` (as new deals). ``progress(n)`` is called after each batch of ``n`` deals.
    Returns the number of deals written.
    """
    items = company.items() if isinstance(company, Company) else company
    ents: list[Any] = []
    deals: list[tuple[Deal, int | None]] = []
    written = 0

    def flush_entities() -> None:
        if ents:
            store.put(*ents)
            ents.clear()

    for it in items:
        if isinstance(it, Deal):
            deals.append((it, None))
            if len(deals) >= batch_size:
                flush_entities()
                store.save_deals(deals)
                written += len(deals)
                if progress is not None:
                    progress(len(deals))
                deals = []
        elif isinstance(it, Process):
            store.save_process(it)
        else:
            ents.append(it)
            if len(ents) >= batch_size * 4:
                flush_entities()
    flush_entities()
    if deals:
        store.save_deals(deals)
        written += len(deals)
        if progress is not None:
            progress(len(deals))
    return written
