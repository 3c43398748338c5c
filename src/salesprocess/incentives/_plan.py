"""Commission plans: effective-dated versions of crediting rules, rates, caps, SPIFs, draws,
clawback and rounding policies; loaded from TOML or plain data, with every problem reported."""

from __future__ import annotations

import bisect
import decimal
import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from .. import _toml
from ..errors import DefinitionError, DomainError, Problem
from ..money import CURRENCY_MINOR_UNITS, Money, to_decimal
from ..periods import FiscalCalendar, Period, PeriodKind
from . import _tomlpos
from ._errors import PlanFileError

__all__ = [
    "Accelerator",
    "Caps",
    "ClawbackPolicy",
    "CreditBasis",
    "Crediting",
    "Decelerator",
    "Draw",
    "Eligibility",
    "Override",
    "PayoutPolicy",
    "Plan",
    "PlanVersion",
    "RateRule",
    "Rates",
    "RoundingPolicy",
    "Spif",
    "Tier",
    "TierBasis",
    "TierMode",
]


class CreditBasis(enum.StrEnum):
    """When revenue is credited."""

    BOOKING = "booking"
    """When the deal is won (amount changes while won adjust it; reopening reverses it)."""
    INVOICE = "invoice"
    """When an invoice is issued (credit notes reverse their share)."""
    CASH = "cash"
    """When a payment is received (each partial payment on its own)."""


class TierMode(enum.StrEnum):
    GRADUATED = "graduated"
    """Each slice of attainment earns its own tier's rate (marginal)."""
    RETROACTIVE = "retroactive"
    """Every credit of the period earns the rate of the tier the period's attainment reached."""


class TierBasis(enum.StrEnum):
    ATTAINMENT = "attainment"
    """Tier thresholds are fractions of the quota (``"1.0"`` is 100 %)."""
    AMOUNT = "amount"
    """Tier thresholds are amounts of credited revenue in the plan's currency."""


_ROUNDING = {
    "half_up": decimal.ROUND_HALF_UP,
    "half_even": decimal.ROUND_HALF_EVEN,
    "half_down": decimal.ROUND_HALF_DOWN,
    "up": decimal.ROUND_UP,
    "down": decimal.ROUND_DOWN,
}
_ROUNDING_NAMES = {v: k for k, v in _ROUNDING.items()}

_PERIOD_MONTHS = {
    PeriodKind.MONTH: 1, PeriodKind.QUARTER: 3, PeriodKind.HALF: 6, PeriodKind.YEAR: 12,
    PeriodKind.FISCAL_QUARTER: 3, PeriodKind.FISCAL_HALF: 6, PeriodKind.FISCAL_YEAR: 12,
}
_FISCAL_KINDS = {PeriodKind.FISCAL_QUARTER, PeriodKind.FISCAL_HALF, PeriodKind.FISCAL_YEAR}


def _d(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else to_decimal(v)


def _opt_d(v: Any) -> Decimal | None:
    return None if v is None else _d(v)


def _t(v: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(v)


def _fs(v: Iterable[str] | None) -> frozenset[str]:
    return frozenset(v or ())


def _seg(v: Mapping[str, Iterable[str]] | Iterable[tuple[str, Iterable[str]]] | None,
         ) -> tuple[tuple[str, frozenset[str]], ...]:
    if v is None:
        return ()
    items = v.items() if isinstance(v, Mapping) else v
    return tuple(sorted((k, frozenset(vals)) for k, vals in items))


@attrs.frozen
class RoundingPolicy:
    """How amounts are rounded to the currency's minor units.

    ``mode`` rounds every statement line's cumulative value (lines are differences of rounded
    cumulative values, so nothing drifts across periods); ``fx`` rounds converted amounts. Modes:
    ``half_up``, ``half_even``, ``half_down``, ``up``, ``down`` (all symmetric around zero).
    """

    mode: str = attrs.field(default=decimal.ROUND_HALF_UP)
    fx: str = attrs.field(default=decimal.ROUND_HALF_EVEN)

    @mode.validator
    @fx.validator
    def _check(self, a: attrs.Attribute[Any], v: str) -> None:
        if v not in _ROUNDING_NAMES:
            raise DomainError(f"rounding {a.name}: unsupported mode {v!r}")

    def to_dict(self) -> dict[str, str]:
        return {"mode": _ROUNDING_NAMES[self.mode], "fx": _ROUNDING_NAMES[self.fx]}


@attrs.frozen
class Tier:
    """Rate ``rate`` from threshold ``start`` (fraction of quota, or amount) upwards."""

    start: Decimal = attrs.field(converter=_d)
    rate: Decimal = attrs.field(converter=_d)
    name: str = ""


@attrs.frozen
class Accelerator:
    """Multiply the rate by ``multiplier`` above the threshold ``above``."""

    above: Decimal = attrs.field(converter=_d)
    multiplier: Decimal = attrs.field(converter=_d)
    name: str = ""


@attrs.frozen
class Decelerator:
    """Multiply the rate by ``multiplier`` below the threshold ``below``."""

    below: Decimal = attrs.field(converter=_d)
    multiplier: Decimal = attrs.field(converter=_d)
    name: str = ""


@attrs.frozen
class RateRule:
    """A rate for some products, product families or customer segments.

    A credit matches when every given condition matches: one of its deal's products is in
    ``products``, or a product's family in ``families``, and for each ``segment`` field (``industry``,
    ``size_band``, ``region``, ``country`` of the account, or ``custom.NAME`` of the deal) the value
    is one of those listed. The first matching rule applies: ``rate`` replaces the tiers (a flat
    rate for those credits), ``multiplier`` scales the tier rate.
    """

    name: str
    products: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)
    families: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)
    segment: tuple[tuple[str, frozenset[str]], ...] = attrs.field(default=(), converter=_seg)
    rate: Decimal | None = attrs.field(default=None, converter=_opt_d)
    multiplier: Decimal | None = attrs.field(default=None, converter=_opt_d)


@attrs.frozen
class Rates:
    """The rate table: tiers (a flat rate is one tier from 0), multipliers and product rules."""

    tiers: tuple[Tier, ...] = attrs.field(converter=_t)
    mode: TierMode = attrs.field(default=TierMode.GRADUATED, converter=TierMode)
    basis: TierBasis = attrs.field(default=TierBasis.ATTAINMENT, converter=TierBasis)
    accelerators: tuple[Accelerator, ...] = attrs.field(default=(), converter=_t)
    decelerators: tuple[Decelerator, ...] = attrs.field(default=(), converter=_t)
    rules: tuple[RateRule, ...] = attrs.field(default=(), converter=_t)

    @property
    def needs_quota(self) -> bool:
        return self.basis is TierBasis.ATTAINMENT and (
            len(self.tiers) > 1 or bool(self.accelerators) or bool(self.decelerators)
        )


@attrs.frozen
class Caps:
    """``attainment``: credit above this fraction of quota earns nothing. ``payout``: commission
    of one attainment period is at most this amount (the excess is withheld and reported)."""

    attainment: Decimal | None = attrs.field(default=None, converter=_opt_d)
    payout: Decimal | None = attrs.field(default=None, converter=_opt_d)


@attrs.frozen
class PayoutPolicy:
    """``minimum``: a floor topped up on every settlement period's statement (not recovered).
    ``carry_negative``: a negative period pays zero and the deficit is recovered later."""

    minimum: Decimal | None = attrs.field(default=None, converter=_opt_d)
    carry_negative: bool = True


@attrs.frozen
class Spif:
    """A fixed bonus per qualifying deal (or per qualifying product on it) won in the window
    ``start``..``end`` (inclusive local dates)."""

    name: str
    amount: Decimal = attrs.field(converter=_d)
    start: date
    end: date
    products: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)
    families: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)
    segment: tuple[tuple[str, frozenset[str]], ...] = attrs.field(default=(), converter=_seg)
    min_amount: Decimal | None = attrs.field(default=None, converter=_opt_d)
    per: str = "deal"
    """``deal`` (once per deal) or ``product`` (once per qualifying product of the deal)."""
    pay: str = "owner"
    """``owner`` (the whole bonus) or ``split`` (shared by the revenue split shares)."""


@attrs.frozen
class Draw:
    """An advance of ``amount`` per settlement period from ``start`` to ``end`` (inclusive) for
    the listed reps or roles. Recoverable draws are recovered from later earnings above the
    draw (at most ``recovery_limit`` of them per period); non-recoverable ones are not."""

    name: str
    amount: Decimal = attrs.field(converter=_d)
    recoverable: bool = True
    reps: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)
    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)
    start: date | None = None
    end: date | None = None
    recovery_limit: Decimal | None = attrs.field(default=None, converter=_opt_d)

    def applies(self, rep_id: str, role: str | None, period: Period) -> bool:
        if self.reps or self.roles:
            if rep_id not in self.reps and (role is None or role not in self.roles):
                return False
        if self.start is not None and period.last_day < self.start:
            return False
        return not (self.end is not None and period.start > self.end)


@attrs.frozen
class ClawbackPolicy:
    """Refunds and churn within ``days`` of a credit claw back its commission (refunded share),
    at the rate originally paid; ``spifs`` also claws back SPIFs of fully refunded deals."""

    days: int = 0
    on: frozenset[str] = attrs.field(default=frozenset({"refund", "churn"}), converter=_fs)
    spifs: bool = True


@attrs.frozen
class Override:
    """Credit the managers above a credited rep: ``levels`` up the hierarchy as it was on the
    day of the credit, each with ``share`` of the rep's credit (managers of the listed ``roles``
    only, when given). ``counts``: the override credit counts toward the manager's attainment."""

    levels: int = 1
    share: Decimal = attrs.field(default=Decimal(1), converter=_d)
    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)
    counts: bool = True


@attrs.frozen
class Crediting:
    """``direct``: owners and split holders are credited (off for pure override plans).
    ``overlay_counts``: overlay credit counts toward the overlay rep's attainment."""

    direct: bool = True
    overlay_counts: bool = True
    overrides: tuple[Override, ...] = attrs.field(default=(), converter=_t)


@attrs.frozen
class Eligibility:
    """Who is paid under the plan: reps with one of ``roles`` or listed in ``reps`` (everybody
    credited when both are empty), minus ``exclude``."""

    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)
    reps: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)
    exclude: frozenset[str] = attrs.field(default=frozenset(), converter=_fs)

    def admits(self, rep_id: str, role: str | None) -> bool:
        if rep_id in self.exclude:
            return False
        if not self.roles and not self.reps:
            return True
        return rep_id in self.reps or (role is not None and role in self.roles)


@attrs.frozen
class PlanVersion:
    """One effective-dated version of a plan. It covers whole attainment periods from
    ``effective_from`` until the next version starts (or through ``effective_to``)."""

    version: int
    effective_from: date
    rates: Rates
    effective_to: date | None = None
    description: str = ""
    quota: Decimal | None = attrs.field(default=None, converter=_opt_d)
    eligibility: Eligibility = attrs.field(factory=Eligibility)
    crediting: Crediting = attrs.field(factory=Crediting)
    caps: Caps = attrs.field(factory=Caps)
    payout: PayoutPolicy = attrs.field(factory=PayoutPolicy)
    spifs: tuple[Spif, ...] = attrs.field(default=(), converter=_t)
    draws: tuple[Draw, ...] = attrs.field(default=(), converter=_t)
    clawback: ClawbackPolicy = attrs.field(factory=ClawbackPolicy)
    rounding: RoundingPolicy = attrs.field(factory=RoundingPolicy)

    @property
    def needs_quota(self) -> bool:
        """Whether rates or caps are relative to a quota."""
        return self.rates.needs_quota or self.caps.attainment is not None


@attrs.frozen
class Plan:
    """A commission plan: fixed settings and its effective-dated versions.

    Build one with :meth:`from_toml` or :meth:`from_dict` (which report every problem at once);
    :meth:`to_dict` and :meth:`to_toml` write it back.
    """

    key: str
    name: str
    currency: str
    versions: tuple[PlanVersion, ...] = attrs.field(converter=_t)
    basis: CreditBasis = attrs.field(default=CreditBasis.BOOKING, converter=CreditBasis)
    settlement: PeriodKind = attrs.field(default=PeriodKind.MONTH, converter=PeriodKind)
    attainment: PeriodKind = attrs.field(default=PeriodKind.QUARTER, converter=PeriodKind)
    timezone: str = "UTC"
    fiscal_year_start: int = 1
    description: str = ""

    def __attrs_post_init__(self) -> None:
        problems = _check_plan(self)
        if problems:
            raise DefinitionError(problems, source=f"plan {self.key}")

    # --- queries -------------------------------------------------------------------------------
    @property
    def tz(self) -> tzinfo:
        return _zone(self.timezone)

    @property
    def fiscal(self) -> FiscalCalendar:
        return FiscalCalendar(self.fiscal_year_start)

    @property
    def exponent(self) -> int:
        return CURRENCY_MINOR_UNITS[self.currency]

    @property
    def start(self) -> date:
        return self.versions[0].effective_from

    def money(self, amount: Decimal | int | str) -> Money:
        return Money(amount, self.currency)

    def version_on(self, day: date) -> PlanVersion | None:
        """The version in effect on ``day`` (``None`` before the first or in a gap)."""
        starts = [v.effective_from for v in self.versions]
        i = bisect.bisect_right(starts, day) - 1
        if i < 0:
            return None
        v = self.versions[i]
        if v.effective_to is not None and day > v.effective_to:
            return None
        return v

    def version(self, number: int) -> PlanVersion:
        for v in self.versions:
            if v.version == number:
                return v
        raise KeyError(f"plan {self.key} has no version {number}")

    def settlement_period(self, day: date) -> Period:
        return Period.containing(day, self.settlement, self.fiscal)

    def attainment_period(self, day: date) -> Period:
        return Period.containing(day, self.attainment, self.fiscal)

    def parse_period(self, label: str | Period) -> Period:
        return label if isinstance(label, Period) else Period.parse(label, self.fiscal)

    # --- I/O -----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Plan:
        """Build and validate; every problem is reported in one :class:`DefinitionError`."""
        return _parse_plan(data, source)

    @classmethod
    def from_toml(cls, text_or_path: str | Path) -> Plan:
        """Load from TOML text or a ``.toml`` path; problems raise :class:`PlanFileError` with
        the line of each problem in the file."""
        path, text = _read(text_or_path)
        try:
            data = _tomlpos.load(text)
        except Exception as e:  # tomllib.TOMLDecodeError
            import tomllib

            if not isinstance(e, tomllib.TOMLDecodeError):
                raise
            line, _col = _tomlpos.decode_position(e)
            raise PlanFileError(path, [Problem("", "parse", f"invalid TOML: {e}")],
                                lines={"": line} if line else None) from None
        try:
            return _parse_plan(data, path)
        except DefinitionError as e:
            raise PlanFileError(path, e.problems,
                                lines=_tomlpos.lines_for(text, [p.path for p in e.problems])) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe data (numbers as strings, dates ISO); ``from_dict`` reads it back."""
        d: dict[str, Any] = {"key": self.key, "name": self.name}
        if self.description:
            d["description"] = self.description
        d.update(currency=self.currency, basis=self.basis.value, settlement=self.settlement.value,
                 attainment=self.attainment.value, timezone=self.timezone)
        if self.fiscal_year_start != 1:
            d["fiscal_year_start"] = self.fiscal_year_start
        d["versions"] = [_version_to_dict(v) for v in self.versions]
        return d

    def to_toml(self) -> str:
        return _toml.dumps(self.to_dict())


def _read(text_or_path: str | Path) -> tuple[str, str]:
    if isinstance(text_or_path, Path) or (
        isinstance(text_or_path, str) and "\n" not in text_or_path and text_or_path.endswith(".toml")
    ):
        path = str(text_or_path)
        try:
            return path, Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise PlanFileError(path, [Problem("", "read", f"cannot read: {e.strerror or e}")]) from None
        except UnicodeDecodeError as e:
            raise PlanFileError(path, [Problem("", "read", f"not UTF-8 text: {e}")]) from None
    return "<string>", str(text_or_path)


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DomainError(f"unknown timezone {name!r} (use an IANA name such as Asia/Shanghai)") from None


# ------------------------------------------------------------------------------------------------
# Validation of a built plan (also run on direct construction)
# ------------------------------------------------------------------------------------------------


def _check_plan(p: Plan) -> list[Problem]:
    probs: list[Problem] = []
    if not p.key:
        probs.append(Problem("key", "missing", "a plan needs a key"))
    if p.currency not in CURRENCY_MINOR_UNITS:
        probs.append(Problem("currency", "currency", f"unknown ISO 4217 currency {p.currency!r}"))
    try:
        _zone(p.timezone)
    except DomainError as e:
        probs.append(Problem("timezone", "timezone", str(e)))
    if not 1 <= p.fiscal_year_start <= 12:
        probs.append(Problem("fiscal_year_start", "range", "fiscal_year_start must be a month 1..12"))
        return probs
    sm, am = _PERIOD_MONTHS.get(p.settlement), _PERIOD_MONTHS.get(p.attainment)
    if sm is None:
        probs.append(Problem("settlement", "period", f"settlement must be one of {_kinds()}"))
    if am is None:
        probs.append(Problem("attainment", "period", f"attainment must be one of {_kinds()}"))
    if sm is not None and am is not None:
        if am % sm:
            probs.append(Problem("attainment", "nesting",
                                 f"a {p.attainment} attainment period is not made of whole {p.settlement} "
                                 "settlement periods"))
        elif (p.fiscal_year_start != 1 and sm > 1
              and (p.settlement in _FISCAL_KINDS) != (p.attainment in _FISCAL_KINDS)):
            probs.append(Problem("attainment", "nesting",
                                 "mix fiscal and calendar periods only with monthly settlement"))
    if not p.versions:
        probs.append(Problem("versions", "missing", "a plan needs at least one version"))
        return probs
    seen: dict[int, int] = {}
    for i, v in enumerate(p.versions):
        path = f"versions[{i}]"
        if v.version in seen:
            probs.append(Problem(f"{path}.version", "duplicate",
                                 f"version {v.version} also at versions[{seen[v.version]}]"))
        seen.setdefault(v.version, i)
        if i and v.effective_from <= p.versions[i - 1].effective_from:
            probs.append(Problem(f"{path}.effective_from", "order",
                                 "versions must be listed in order of effective_from"))
        if i and v.version <= p.versions[i - 1].version:
            probs.append(Problem(f"{path}.version", "order", "version numbers must increase"))
        if i:
            prev = p.versions[i - 1]
            if prev.effective_to is not None and prev.effective_to >= v.effective_from:
                probs.append(Problem(f"versions[{i - 1}].effective_to", "overlap",
                                     f"version {prev.version} ends after version {v.version} starts"))
        if sm is not None and am is not None and not probs:
            ap = Period.containing(v.effective_from, p.attainment, FiscalCalendar(p.fiscal_year_start))
            if ap.start != v.effective_from:
                probs.append(Problem(f"{path}.effective_from", "alignment",
                                     f"a version starts on the first day of an attainment period "
                                     f"({p.attainment}): {v.effective_from} is inside {ap.label}, "
                                     f"which starts {ap.start}"))
            if v.effective_to is not None:
                ap = Period.containing(v.effective_to, p.attainment, FiscalCalendar(p.fiscal_year_start))
                if ap.last_day != v.effective_to:
                    probs.append(Problem(f"{path}.effective_to", "alignment",
                                         f"a version ends on the last day of an attainment period: "
                                         f"{ap.label} ends {ap.last_day}"))
        probs.extend(_check_version(v, path))
    return probs


def _kinds() -> str:
    return ", ".join(k.value for k in _PERIOD_MONTHS)


def _check_version(v: PlanVersion, path: str) -> list[Problem]:
    probs: list[Problem] = []
    r = v.rates
    rp = f"{path}.rates"
    if not r.tiers:
        probs.append(Problem(f"{rp}.tiers", "missing", "give a flat rate or at least one tier"))
    for i, t in enumerate(r.tiers):
        if t.rate < 0:
            probs.append(Problem(f"{rp}.tiers[{i}].rate", "range", "a rate must not be negative"))
        if i == 0 and t.start != 0:
            probs.append(Problem(f"{rp}.tiers[0].from", "range", "the first tier starts at 0"))
        if i and t.start <= r.tiers[i - 1].start:
            probs.append(Problem(f"{rp}.tiers[{i}].from", "order",
                                 "tier thresholds must increase"))
    for i, a in enumerate(r.accelerators):
        if a.multiplier < 0 or a.above < 0:
            probs.append(Problem(f"{rp}.accelerators[{i}]", "range", "threshold and multiplier must not be negative"))
        if i and a.above <= r.accelerators[i - 1].above:
            probs.append(Problem(f"{rp}.accelerators[{i}].above", "order", "thresholds must increase"))
    for i, dd in enumerate(r.decelerators):
        if dd.multiplier < 0 or dd.below <= 0:
            probs.append(Problem(f"{rp}.decelerators[{i}]", "range", "threshold must be positive and multiplier not negative"))
        if i and dd.below <= r.decelerators[i - 1].below:
            probs.append(Problem(f"{rp}.decelerators[{i}].below", "order", "thresholds must increase"))
    names: set[str] = set()
    for i, rr in enumerate(r.rules):
        pth = f"{rp}.rules[{i}]"
        if not rr.name:
            probs.append(Problem(f"{pth}.name", "missing", "a rate rule needs a name"))
        elif rr.name in names:
            probs.append(Problem(f"{pth}.name", "duplicate", f"rate rule {rr.name!r} named twice"))
        names.add(rr.name)
        if (rr.rate is None) == (rr.multiplier is None):
            probs.append(Problem(pth, "rate", "give exactly one of rate and multiplier"))
        for k in ("rate", "multiplier"):
            x = getattr(rr, k)
            if x is not None and x < 0:
                probs.append(Problem(f"{pth}.{k}", "range", f"{k} must not be negative"))
        if not (rr.products or rr.families or rr.segment):
            probs.append(Problem(pth, "match", "a rate rule needs products, families or segment"))
        probs.extend(_check_segment(rr.segment, f"{pth}.segment"))
    c = v.caps
    if c.attainment is not None and c.attainment <= 0:
        probs.append(Problem(f"{path}.caps.attainment", "range", "the attainment cap must be positive"))
    if c.payout is not None and c.payout < 0:
        probs.append(Problem(f"{path}.caps.payout", "range", "the payout cap must not be negative"))
    if v.payout.minimum is not None and v.payout.minimum < 0:
        probs.append(Problem(f"{path}.payout.minimum", "range", "the minimum must not be negative"))
    if v.quota is not None and v.quota <= 0:
        probs.append(Problem(f"{path}.quota", "range", "a quota must be positive"))
    names = set()
    for i, s in enumerate(v.spifs):
        sp = f"{path}.spifs[{i}]"
        if not s.name or s.name in names:
            probs.append(Problem(f"{sp}.name", "name", "every SPIF needs a unique name"))
        names.add(s.name)
        if s.amount <= 0:
            probs.append(Problem(f"{sp}.amount", "range", "a SPIF amount must be positive"))
        if s.end < s.start:
            probs.append(Problem(f"{sp}.to", "order", "the window ends before it starts"))
        if s.per not in ("deal", "product"):
            probs.append(Problem(f"{sp}.per", "choice", "per is 'deal' or 'product'"))
        if s.per == "product" and not (s.products or s.families):
            probs.append(Problem(f"{sp}.per", "choice", "per = 'product' needs products or families"))
        if s.pay not in ("owner", "split"):
            probs.append(Problem(f"{sp}.pay", "choice", "pay is 'owner' or 'split'"))
        probs.extend(_check_segment(s.segment, f"{sp}.segment"))
    names = set()
    for i, dr in enumerate(v.draws):
        dp = f"{path}.draws[{i}]"
        if not dr.name or dr.name in names:
            probs.append(Problem(f"{dp}.name", "name", "every draw needs a unique name"))
        names.add(dr.name)
        if dr.amount <= 0:
            probs.append(Problem(f"{dp}.amount", "range", "a draw amount must be positive"))
        if dr.start and dr.end and dr.end < dr.start:
            probs.append(Problem(f"{dp}.to", "order", "the draw ends before it starts"))
        if dr.recovery_limit is not None and not 0 < dr.recovery_limit <= 1:
            probs.append(Problem(f"{dp}.recovery_limit", "range", "recovery_limit is a fraction in (0, 1]"))
    cb = v.clawback
    if cb.days < 0:
        probs.append(Problem(f"{path}.clawback.days", "range", "days must not be negative"))
    bad = cb.on - {"refund", "churn"}
    if bad:
        probs.append(Problem(f"{path}.clawback.on", "choice", f"unknown clawback triggers {sorted(bad)} (refund, churn)"))
    for i, o in enumerate(v.crediting.overrides):
        op = f"{path}.crediting.overrides[{i}]"
        if o.levels < 1:
            probs.append(Problem(f"{op}.levels", "range", "levels must be at least 1"))
        if o.share <= 0:
            probs.append(Problem(f"{op}.share", "range", "share must be positive"))
    return probs


_SEGMENT_FIELDS = ("industry", "size_band", "region", "country", "account")


def _check_segment(seg: tuple[tuple[str, frozenset[str]], ...], path: str) -> list[Problem]:
    out = []
    for k, vals in seg:
        if k not in _SEGMENT_FIELDS and not (k.startswith("custom.") and len(k) > 7):
            out.append(Problem(f"{path}.{k}", "segment",
                               f"unknown segment field {k!r} (use {', '.join(_SEGMENT_FIELDS)} or custom.NAME)"))
        if not vals:
            out.append(Problem(f"{path}.{k}", "segment", "list at least one value"))
    return out


# ------------------------------------------------------------------------------------------------
# Parsing plain data
# ------------------------------------------------------------------------------------------------


class _P:
    """Reads one table of plain data, collecting problems with their paths."""

    def __init__(self, data: Any, path: str, probs: list[Problem]) -> None:
        self.path = path
        self.probs = probs
        if not isinstance(data, Mapping):
            probs.append(Problem(path, "type", "expected a table"))
            data = {}
        self.data: Mapping[str, Any] = data
        self.used: set[str] = set()

    def _p(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, code: str, msg: str) -> None:
        self.probs.append(Problem(self._p(key), code, msg))

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def has(self, key: str) -> bool:
        return key in self.data

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> Any:
        v = self.raw(key)
        if v is None:
            if required:
                self.fail(key, "missing", f"{key} is required")
            return default
        if not isinstance(v, str):
            self.fail(key, "type", f"{key} must be a string")
            return default
        return v

    def whole(self, key: str, default: int) -> int:
        v = self.raw(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(key, "type", f"{key} must be a whole number")
            return default
        return v

    def flag(self, key: str, default: bool) -> bool:
        v = self.raw(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            self.fail(key, "type", f"{key} must be true or false")
            return default
        return v

    def dec(self, key: str, *, required: bool = False) -> Decimal | None:
        v = self.raw(key)
        if v is None:
            if required:
                self.fail(key, "missing", f"{key} is required")
            return None
        if isinstance(v, float):
            self.fail(key, "float", f"write {key} as a string, e.g. \"{v}\": binary floats lose cents")
            return None
        try:
            return to_decimal(v, field=key)
        except (DomainError, TypeError, ValueError):
            self.fail(key, "number", f"{key} must be a decimal number (as a string), got {v!r}")
            return None

    def day(self, key: str, *, required: bool = False) -> date | None:
        v = self.raw(key)
        if v is None:
            if required:
                self.fail(key, "missing", f"{key} is required (a date such as 2026-04-01)")
            return None
        if isinstance(v, datetime):
            self.fail(key, "type", f"{key} must be a date, not a date-time")
            return None
        if isinstance(v, date):
            return v
        if isinstance(v, str):
            try:
                return date.fromisoformat(v)
            except ValueError:
                pass
        self.fail(key, "type", f"{key} must be a date such as 2026-04-01")
        return None

    def strs(self, key: str) -> frozenset[str]:
        v = self.raw(key)
        if v is None:
            return frozenset()
        if isinstance(v, str):
            return frozenset([v])
        if not isinstance(v, list | tuple | set | frozenset) or not all(isinstance(x, str) for x in v):
            self.fail(key, "type", f"{key} must be a list of strings")
            return frozenset()
        return frozenset(v)

    def table(self, key: str) -> _P:
        v = self.raw(key)
        return _P(v if v is not None else {}, self._p(key), self.probs)

    def tables(self, key: str) -> list[_P]:
        v = self.raw(key)
        if v is None:
            return []
        if not isinstance(v, list):
            self.fail(key, "type", f"{key} must be an array of tables")
            return []
        return [_P(x, f"{self._p(key)}[{i}]", self.probs) for i, x in enumerate(v)]

    def segment(self, key: str) -> tuple[tuple[str, frozenset[str]], ...]:
        v = self.raw(key)
        if v is None:
            return ()
        if not isinstance(v, Mapping):
            self.fail(key, "type", f"{key} must be a table of field = [values]")
            return ()
        out = []
        for k, vals in v.items():
            if isinstance(vals, str):
                vals = [vals]
            if not isinstance(vals, list) or not all(isinstance(x, str) for x in vals):
                self.fail(f"{key}.{k}", "type", "list the segment values as strings")
                continue
            out.append((k, frozenset(vals)))
        return tuple(sorted(out))

    def choice(self, key: str, enum_cls: type[enum.StrEnum], default: Any) -> Any:
        v = self.raw(key)
        if v is None:
            return default
        try:
            return enum_cls(v)
        except ValueError:
            self.fail(key, "choice", f"{key} must be one of {', '.join(e.value for e in enum_cls)}")
            return default

    def done(self) -> None:
        for k in self.data:
            if k not in self.used:
                self.fail(k, "unknown_key", f"unknown key {k!r}")


def _parse_plan(data: Mapping[str, Any], source: str | None) -> Plan:
    probs: list[Problem] = []
    t = _P(data, "", probs)
    key = t.text("key", "", required=True)
    name = t.text("name", key)
    description = t.text("description", "")
    currency = t.text("currency", "", required=True)
    if currency:
        currency = currency.upper()
        if currency not in CURRENCY_MINOR_UNITS:
            t.fail("currency", "currency", f"unknown ISO 4217 currency {currency!r}")
    basis = t.choice("basis", CreditBasis, CreditBasis.BOOKING)
    kinds = {k.value: k for k in _PERIOD_MONTHS}
    settlement = t.text("settlement", "month")
    if settlement not in kinds:
        t.fail("settlement", "period", f"settlement must be one of {_kinds()}")
        settlement = "month"
    attainment = t.text("attainment", settlement)
    if attainment not in kinds:
        t.fail("attainment", "period", f"attainment must be one of {_kinds()}")
        attainment = settlement
    tz = t.text("timezone", "UTC")
    try:
        _zone(tz)
    except DomainError as e:
        t.fail("timezone", "timezone", str(e))
    fys = t.whole("fiscal_year_start", 1)
    versions = [_parse_version(v, probs) for v in t.tables("versions")]
    if not t.has("versions"):
        t.fail("versions", "missing", "a plan needs at least one [[versions]] table")
    t.done()
    if probs:
        raise DefinitionError(probs, source=source)
    try:
        return Plan(key=key, name=name, currency=currency, versions=versions, basis=basis,
                    settlement=settlement, attainment=attainment, timezone=tz,
                    fiscal_year_start=fys, description=description)
    except DefinitionError as e:
        raise DefinitionError(e.problems, source=source) from None


def _parse_version(t: _P, probs: list[Problem]) -> Any:
    n = len(probs)
    version = t.whole("version", 0)
    if version < 1:
        t.fail("version", "missing", "each version needs a number >= 1")
    eff = t.day("effective_from", required=True)
    eff_to = t.day("effective_to")
    description = t.text("description", "")
    quota = t.dec("quota")
    e = t.table("eligible")
    elig = Eligibility(roles=e.strs("roles"), reps=e.strs("reps"), exclude=e.strs("exclude"))
    e.done()
    c = t.table("crediting")
    overrides = []
    for o in c.tables("overrides"):
        overrides.append(Override(levels=o.whole("levels", 1), share=o.dec("share") or Decimal(1),
                                  roles=o.strs("roles"), counts=o.flag("counts", True)))
        o.done()
    cred = Crediting(direct=c.flag("direct", True), overlay_counts=c.flag("overlay_counts", True),
                     overrides=overrides)
    c.done()
    rates = _parse_rates(t.table("rates"))
    cp = t.table("caps")
    caps = Caps(attainment=cp.dec("attainment"), payout=cp.dec("payout"))
    cp.done()
    po = t.table("payout")
    payout = PayoutPolicy(minimum=po.dec("minimum"), carry_negative=po.flag("carry_negative", True))
    po.done()
    spifs: list[tuple[Any, ...]] = []
    for s in t.tables("spifs"):
        start, end = s.day("from", required=True), s.day("to", required=True)
        spifs.append((s.text("name", "", required=True), s.dec("amount", required=True), start, end,
                      s.strs("products"), s.strs("families"), s.segment("segment"),
                      s.dec("min_amount"), s.text("per", "deal"), s.text("pay", "owner")))
        s.done()
    draws: list[tuple[Any, ...]] = []
    for dr in t.tables("draws"):
        draws.append((dr.text("name", "", required=True), dr.dec("amount", required=True),
                      dr.flag("recoverable", True), dr.strs("reps"), dr.strs("roles"),
                      dr.day("from"), dr.day("to"), dr.dec("recovery_limit")))
        dr.done()
    cb = t.table("clawback")
    clawback = (cb.whole("days", 0), cb.strs("on") if cb.has("on") else frozenset({"refund", "churn"}),
                cb.flag("spifs", True))
    cb.done()
    ro = t.table("rounding")
    mode = ro.text("mode", "half_up")
    fx = ro.text("fx", "half_even")
    for k, v in (("mode", mode), ("fx", fx)):
        if v not in _ROUNDING:
            ro.fail(k, "choice", f"{k} must be one of {', '.join(_ROUNDING)}")
    ro.done()
    t.done()
    if len(probs) > n or rates is None or eff is None:
        return None
    return PlanVersion(
        version=version, effective_from=eff, effective_to=eff_to, description=description,
        quota=quota, eligibility=elig, crediting=cred, rates=rates, caps=caps, payout=payout,
        spifs=tuple(Spif(*x) for x in spifs),
        draws=tuple(Draw(*x) for x in draws),
        clawback=ClawbackPolicy(*clawback),
        rounding=RoundingPolicy(_ROUNDING[mode], _ROUNDING[fx]),
    )


def _parse_rates(t: _P) -> Rates | None:
    n = len(t.probs)
    mode = t.choice("mode", TierMode, TierMode.GRADUATED)
    basis = t.choice("basis", TierBasis, TierBasis.ATTAINMENT)
    flat = t.dec("flat")
    tiers = []
    for i, x in enumerate(t.tables("tiers")):
        start = x.dec("from", required=True)
        rate = x.dec("rate", required=True)
        tiers.append(Tier(start if start is not None else 0, rate if rate is not None else 0,
                          x.text("name", f"tier{i + 1}")))
        x.done()
    if flat is not None and tiers:
        t.fail("flat", "conflict", "give either flat or tiers, not both")
    if flat is not None:
        tiers = [Tier(0, flat, "flat")]
    if not tiers and not t.probs[n:]:
        t.fail("tiers", "missing", "give a flat rate or at least one [[…rates.tiers]] table")
    accs = []
    for i, x in enumerate(t.tables("accelerators")):
        a, m = x.dec("above", required=True), x.dec("multiplier", required=True)
        accs.append(Accelerator(a or 0, m or 0, x.text("name", f"accelerator{i + 1}")))
        x.done()
    decs = []
    for i, x in enumerate(t.tables("decelerators")):
        b, m = x.dec("below", required=True), x.dec("multiplier", required=True)
        decs.append(Decelerator(b or 0, m or 0, x.text("name", f"decelerator{i + 1}")))
        x.done()
    rules = []
    for x in t.tables("rules"):
        rules.append(RateRule(x.text("name", "", required=True), x.strs("products"), x.strs("families"),
                              x.segment("segment"), x.dec("rate"), x.dec("multiplier")))
        x.done()
    t.done()
    if len(t.probs) > n:
        return None
    return Rates(tiers=tiers, mode=mode, basis=basis, accelerators=accs, decelerators=decs, rules=rules)


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


def _s(v: Decimal) -> str:
    return str(v)


def _version_to_dict(v: PlanVersion) -> dict[str, Any]:
    d: dict[str, Any] = {"version": v.version, "effective_from": v.effective_from.isoformat()}
    if v.effective_to is not None:
        d["effective_to"] = v.effective_to.isoformat()
    if v.description:
        d["description"] = v.description
    if v.quota is not None:
        d["quota"] = _s(v.quota)
    e = v.eligibility
    el = {k: sorted(getattr(e, k)) for k in ("roles", "reps", "exclude") if getattr(e, k)}
    if el:
        d["eligible"] = el
    c = v.crediting
    cd: dict[str, Any] = {"direct": c.direct, "overlay_counts": c.overlay_counts}
    if c.overrides:
        cd["overrides"] = [
            {"levels": o.levels, "share": _s(o.share), **({"roles": sorted(o.roles)} if o.roles else {}),
             "counts": o.counts}
            for o in c.overrides
        ]
    d["crediting"] = cd
    r = v.rates
    rd: dict[str, Any] = {"mode": r.mode.value, "basis": r.basis.value}
    rd["tiers"] = [{"name": t.name, "from": _s(t.start), "rate": _s(t.rate)} for t in r.tiers]
    if r.accelerators:
        rd["accelerators"] = [{"name": a.name, "above": _s(a.above), "multiplier": _s(a.multiplier)}
                              for a in r.accelerators]
    if r.decelerators:
        rd["decelerators"] = [{"name": a.name, "below": _s(a.below), "multiplier": _s(a.multiplier)}
                              for a in r.decelerators]
    if r.rules:
        rd["rules"] = [_rule_to_dict(x) for x in r.rules]
    d["rates"] = rd
    caps = {k: _s(getattr(v.caps, k)) for k in ("attainment", "payout") if getattr(v.caps, k) is not None}
    if caps:
        d["caps"] = caps
    pd: dict[str, Any] = {"carry_negative": v.payout.carry_negative}
    if v.payout.minimum is not None:
        pd["minimum"] = _s(v.payout.minimum)
    d["payout"] = pd
    if v.spifs:
        d["spifs"] = [_spif_to_dict(s) for s in v.spifs]
    if v.draws:
        d["draws"] = [_draw_to_dict(x) for x in v.draws]
    d["clawback"] = {"days": v.clawback.days, "on": sorted(v.clawback.on), "spifs": v.clawback.spifs}
    d["rounding"] = v.rounding.to_dict()
    return d


def _seg_out(seg: Sequence[tuple[str, frozenset[str]]]) -> dict[str, list[str]]:
    return {k: sorted(vals) for k, vals in seg}


def _rule_to_dict(x: RateRule) -> dict[str, Any]:
    d: dict[str, Any] = {"name": x.name}
    if x.products:
        d["products"] = sorted(x.products)
    if x.families:
        d["families"] = sorted(x.families)
    if x.segment:
        d["segment"] = _seg_out(x.segment)
    if x.rate is not None:
        d["rate"] = _s(x.rate)
    if x.multiplier is not None:
        d["multiplier"] = _s(x.multiplier)
    return d


def _spif_to_dict(s: Spif) -> dict[str, Any]:
    d: dict[str, Any] = {"name": s.name, "amount": _s(s.amount), "from": s.start.isoformat(),
                         "to": s.end.isoformat(), "per": s.per, "pay": s.pay}
    if s.products:
        d["products"] = sorted(s.products)
    if s.families:
        d["families"] = sorted(s.families)
    if s.segment:
        d["segment"] = _seg_out(s.segment)
    if s.min_amount is not None:
        d["min_amount"] = _s(s.min_amount)
    return d


def _draw_to_dict(x: Draw) -> dict[str, Any]:
    d: dict[str, Any] = {"name": x.name, "amount": _s(x.amount), "recoverable": x.recoverable}
    if x.reps:
        d["reps"] = sorted(x.reps)
    if x.roles:
        d["roles"] = sorted(x.roles)
    if x.start is not None:
        d["from"] = x.start.isoformat()
    if x.end is not None:
        d["to"] = x.end.isoformat()
    if x.recovery_limit is not None:
        d["recovery_limit"] = _s(x.recovery_limit)
    return d
