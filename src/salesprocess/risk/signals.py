"""Risk signals: the built-in deal signals, findings, and the registry plugins add signals to.

A signal looks at one subject (a deal, or a customer account) and returns ``None`` or a
:class:`RiskFinding`: a severity in [0, 1] and one sentence with its numbers. Built-in deal signals
(settings in :mod:`salesprocess.risk.config`, changeable per stage):

==================  ===========================================================================
``stalled``         days in the stage beyond the stage SLA (business days when the stage says so)
                    and/or beyond the p75 time in stage of the owner's team (else the process)
``no_activity``     no done activity for ``threshold`` (business) days
``close_date_pushed`` the close date moved later ``threshold`` or more times
``amount_cut``      the amount fell by ``threshold`` or more from its peak
``single_threaded`` at most ``threshold`` contacts engaged
``competitor``      a competitor is named on the deal
``discount``        the deal's ``discount`` custom field at or above ``threshold``
``no_next_step``    no planned activity from now on
``close_date_past`` the expected close date lies ``threshold`` or more days in the past
==================  ===========================================================================

Plugins register more through the ``salesprocess_register_risk_signals`` hook:
``register(name, func, description="", applies_to="deal")`` where ``func(subject, context)``
returns ``None``, a :class:`RiskFinding`, or a ``(severity, explanation)`` pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any, NamedTuple

import attrs

from salesprocess.errors import PluginValidationError
from salesprocess.kpi import View

from .config import SignalSettings
from .facts import DealFacts, FactsBuilder
from .points import severity_decimal

__all__ = [
    "BUILTIN_DEAL_SIGNALS",
    "RiskContext",
    "RiskFinding",
    "SignalRegistry",
    "SignalSpec",
    "builtin_signals",
]


_sev = severity_decimal


class RiskFinding(NamedTuple):
    """A fired signal: ``severity`` in [0, 1] and a one-sentence ``explanation`` with its numbers."""

    signal: str
    severity: Decimal
    explanation: str
    facts: tuple[tuple[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "severity": self.severity,
                "explanation": self.explanation, "facts": dict(self.facts)}


@attrs.define
class RiskContext:
    """What a signal may read besides its subject.

    ``settings`` are the signal's settings for the subject (its stage, for deals); ``facts`` the
    subject deal's :class:`~salesprocess.risk.facts.DealFacts` (``None`` for customers); ``view``
    the data as known at ``asof``; ``inputs`` the plain-value inputs given to the assessment.
    """

    asof: datetime
    tz: tzinfo
    view: View
    builder: FactsBuilder
    settings: SignalSettings = attrs.field(factory=SignalSettings)
    facts: DealFacts | None = None
    inputs: Mapping[str, Any] = attrs.field(factory=dict)
    cache: dict[Any, Any] = attrs.field(factory=dict)
    """Scratch space signals may use to remember lookups across deals of one assessment."""


DealSignal = Callable[[DealFacts, SignalSettings, RiskContext], "RiskFinding | None"]


def _money(m: Any) -> str:
    return f"{m.amount:,.{m.exponent}f} {m.currency}"


def _pct(d: Decimal | float) -> str:
    return f"{float(d) * 100:.0f}%"


def _sla(f: DealFacts, ctx: RiskContext) -> tuple[int, bool]:
    deal = f.deal
    key = ("sla", deal.process, deal.stage)
    sla: tuple[int, bool] | None = ctx.cache.get(key)
    if sla is None:
        proc = ctx.view.processes.get(deal.process)
        stage = proc.stage(deal.stage) if proc is not None and proc.has_stage(deal.stage) else None
        sla = (stage.sla_days or 0, stage.sla_business_days) if stage is not None else (0, False)
        ctx.cache[key] = sla
    return sla


def _stall_ratio(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> float:
    sla_days, sla_business = _sla(f, ctx)
    basis = s.option("basis", "either")
    x = -1.0
    if basis != "p75" and sla_days:
        x = (f.business_days_in_stage if sla_business else f.days_in_stage) / sla_days
    if basis != "sla" and f.p75_stage_days is not None and f.p75_stage_days > 0:
        x = max(x, f.days_in_stage / float(f.p75_stage_days))
    return x


def _stalled(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> RiskFinding | None:
    x = _stall_ratio(f, s, ctx)
    if x < 0:
        return None
    sev = s.severity(x)
    if sev <= 0:
        return None
    sla_days, sla_business = _sla(f, ctx)
    basis = s.option("basis", "either")
    parts = []
    if basis != "p75" and sla_days:
        days = f.business_days_in_stage if sla_business else f.days_in_stage
        unit = "business days" if sla_business else "days"
        parts.append(f"{days} {unit} against a {sla_days}-{unit[:-1]} SLA")
    if basis != "sla" and f.p75_stage_days is not None and f.p75_stage_days > 0:
        parts.append(f"{f.days_in_stage} days against the {f.p75_scope} p75 of "
                     f"{float(f.p75_stage_days):g} days")
    return RiskFinding(
        "stalled", _sev(sev),
        f"Stalled in stage {f.deal.stage!r}: {'; '.join(parts)} ({x:.1f}× the limit).",
        (("days_in_stage", f.days_in_stage), ("business_days_in_stage", f.business_days_in_stage),
         ("ratio", Decimal(f"{x:.2f}"))),
    )


def _no_activity(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> RiskFinding | None:
    business = bool(s.option("business_days", True))
    days = f.business_days_since_activity if business else f.days_since_activity
    sev = s.severity(days)
    if sev <= 0:
        return None
    unit = "business days" if business else "days"
    last = (f"the last on {f.last_activity_at.astimezone(ctx.tz).date()}"
            if f.last_activity_at else "none since the deal was created")
    return RiskFinding(
        "no_activity", _sev(sev),
        f"No done activity for {days} {unit} (threshold {s.threshold}); {last}.",
        (("days", days), ("business_days", business)),
    )


def _pushed(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> RiskFinding | None:
    sev = s.severity(f.pushes)
    if sev <= 0:
        return None
    return RiskFinding(
        "close_date_pushed", _sev(sev),
        f"Close date pushed {f.pushes} times (threshold {s.threshold}), {f.slip_days} days later in all.",
        (("pushes", f.pushes), ("slip_days", f.slip_days)),
    )


def _amount_cut(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> RiskFinding | None:
    if f.amount_cut <= 0:
        return None
    sev = s.severity(float(f.amount_cut))
    if sev <= 0:
        return None
    amt = f.deal.amount
    return RiskFinding(
        "amount_cut", _sev(sev),
        f"Amount cut by {_pct(f.amount_cut)} from its peak, now {_money(amt)} "
        f"(threshold {_pct(s.threshold or 0)}).",
        (("cut", f.amount_cut.quantize(Decimal("0.0001"))),),
    )


def _single(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> RiskFinding | None:
    t = int(s.threshold if s.threshold is not None else 1)
    if f.contacts_engaged > t:
        return None
    sev = min(1.0, 0.5 + 0.5 * (t - f.contacts_engaged) / max(t, 1))
    return RiskFinding(
        "single_threaded", _sev(sev),
        f"Single-threaded: {f.contacts_engaged} contact(s) engaged (at most {t} raises the flag).",
        (("contacts_engaged", f.contacts_engaged),),
    )


def _competitor(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> RiskFinding | None:
    n = len(f.deal.competitors)
    sev = s.severity(n) if n else 0.0
    if sev <= 0:
        return None
    return RiskFinding(
        "competitor", _sev(sev),
        f"{n} competitor(s) on the deal: {', '.join(f.deal.competitors)}.",
        (("competitors", n),),
    )


def _discount(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> RiskFinding | None:
    if f.discount is None:
        return None
    sev = s.severity(float(f.discount))
    if sev <= 0:
        return None
    return RiskFinding(
        "discount", _sev(sev),
        f"Discount of {_pct(f.discount)} reaches the {_pct(s.threshold or 0)} threshold.",
        (("discount", f.discount),),
    )


def _next_step(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> RiskFinding | None:
    if f.next_step_at is not None:
        return None
    return RiskFinding("no_next_step", Decimal(1),
                       f"No next step planned: no planned activity from {f.today} on.")


def _past(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> RiskFinding | None:
    if f.days_overdue <= 0:
        return None
    sev = s.severity(f.days_overdue)
    if sev <= 0:
        return None
    return RiskFinding(
        "close_date_past", _sev(sev),
        f"Expected close date {f.deal.close_date} is {f.days_overdue} days in the past.",
        (("days_overdue", f.days_overdue),),
    )


# Severity only (the hot path): each gives exactly the severity its finding function reports.
def _sv_stalled(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> float:
    x = _stall_ratio(f, s, ctx)
    return s.severity(x) if x >= 0 else 0.0


def _sv_no_activity(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> float:
    business = bool(s.option("business_days", True))
    return s.severity(f.business_days_since_activity if business else f.days_since_activity)


def _sv_pushed(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> float:
    return s.severity(f.pushes)


def _sv_amount_cut(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> float:
    return s.severity(float(f.amount_cut)) if f.amount_cut > 0 else 0.0


def _sv_single(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> float:
    t = int(s.threshold if s.threshold is not None else 1)
    if f.contacts_engaged > t:
        return 0.0
    return min(1.0, 0.5 + 0.5 * (t - f.contacts_engaged) / max(t, 1))


def _sv_competitor(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> float:
    n = len(f.deal.competitors)
    return s.severity(n) if n else 0.0


def _sv_discount(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> float:
    return s.severity(float(f.discount)) if f.discount is not None else 0.0


def _sv_next_step(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> float:
    return 1.0 if f.next_step_at is None else 0.0


def _sv_past(f: DealFacts, s: SignalSettings, ctx: RiskContext) -> float:
    return s.severity(f.days_overdue) if f.days_overdue > 0 else 0.0


SEVERITY_ONLY: dict[str, Callable[[DealFacts, SignalSettings, RiskContext], float]] = {
    "stalled": _sv_stalled,
    "no_activity": _sv_no_activity,
    "close_date_pushed": _sv_pushed,
    "amount_cut": _sv_amount_cut,
    "single_threaded": _sv_single,
    "competitor": _sv_competitor,
    "discount": _sv_discount,
    "no_next_step": _sv_next_step,
    "close_date_past": _sv_past,
}
"""The built-in deal signals' severities without their sentences (scoring computes these and
builds the sentences when a deal's findings are first read)."""


BUILTIN_DEAL_SIGNALS: dict[str, tuple[DealSignal, str]] = {
    "stalled": (_stalled, "in the stage beyond its SLA or the scope's p75 time in stage"),
    "no_activity": (_no_activity, "no done activity for N (business) days"),
    "close_date_pushed": (_pushed, "the close date was pushed k or more times"),
    "amount_cut": (_amount_cut, "the amount fell from its peak"),
    "single_threaded": (_single, "at most N contacts engaged"),
    "competitor": (_competitor, "a competitor is present"),
    "discount": (_discount, "the discount is above a threshold"),
    "no_next_step": (_next_step, "no next step planned"),
    "close_date_past": (_past, "the expected close date is in the past"),
}


# ------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class SignalSpec:
    name: str
    func: Callable[..., Any] = attrs.field(eq=False)
    description: str = ""
    applies_to: str = "deal"
    plugin: str | None = None

    @property
    def builtin(self) -> bool:
        return self.plugin is None


_HOOK = "salesprocess_register_risk_signals"


class SignalRegistry(Mapping[str, SignalSpec]):
    """Plugin risk signals by name (the built-in deal signals are listed too, as ``builtin``)."""

    def __init__(self) -> None:
        self._s: dict[str, SignalSpec] = {}

    def register(self, name: str, func: Callable[..., Any], description: str = "",
                 applies_to: str = "deal", *, plugin: str | None = None) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise PluginValidationError(f"risk signal name must be an identifier, got {name!r}",
                                        plugin=plugin, hook=_HOOK)
        if not callable(func):
            raise PluginValidationError(f"risk signal {name!r} is not callable", plugin=plugin, hook=_HOOK)
        if applies_to not in ("deal", "customer"):
            raise PluginValidationError(
                f"risk signal {name!r}: applies_to must be 'deal' or 'customer', got {applies_to!r}",
                plugin=plugin, hook=_HOOK)
        have = self._s.get(name)
        if have is not None and have.func is not func:
            raise PluginValidationError(
                f"risk signal {name!r} registered twice (by {have.plugin or 'builtin'} and "
                f"{plugin or 'builtin'})", plugin=plugin, hook=_HOOK)
        self._s[name] = SignalSpec(name, func, description, applies_to, plugin)

    def __getitem__(self, key: str) -> SignalSpec:
        return self._s[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._s)

    def __len__(self) -> int:
        return len(self._s)

    def plugins(self, applies_to: str) -> list[SignalSpec]:
        return [s for s in self._s.values() if not s.builtin and s.applies_to == applies_to]


def builtin_signals() -> SignalRegistry:
    """A registry holding the built-in deal signals."""
    from .churn import BUILTIN_CUSTOMER_SIGNALS

    reg = SignalRegistry()
    for name, (func, desc) in BUILTIN_DEAL_SIGNALS.items():
        reg.register(name, func, desc, "deal")
    for name, desc in BUILTIN_CUSTOMER_SIGNALS.items():
        reg.register(name, _customer_builtin, desc, "customer")
    return reg


def _customer_builtin(subject: Any, context: RiskContext) -> None:  # pragma: no cover
    """Placeholder: built-in customer signals are computed by the churn and credit modules."""
    return None


def call_plugin(spec: SignalSpec, subject: Any, ctx: RiskContext) -> RiskFinding | None:
    """Run a plugin signal and check what it returned."""
    out = spec.func(subject, ctx)
    if out is None:
        return None
    if isinstance(out, RiskFinding):
        sev, text, facts = out.severity, out.explanation, out.facts
    elif isinstance(out, tuple) and len(out) == 2:
        sev, text = out
        facts = ()
    else:
        raise PluginValidationError(
            f"risk signal {spec.name!r} returned {type(out).__name__}; expected None, a RiskFinding "
            "or (severity, explanation)", plugin=spec.plugin, hook=_HOOK)
    try:
        d = sev if isinstance(sev, Decimal) else Decimal(str(sev))
    except Exception:
        d = Decimal("NaN")
    if isinstance(sev, bool) or not d.is_finite() or not Decimal(0) <= d <= Decimal(1):
        raise PluginValidationError(
            f"risk signal {spec.name!r}: severity must be a number within [0, 1], got {sev!r}",
            plugin=spec.plugin, hook=_HOOK)
    if not isinstance(text, str) or not text.strip():
        raise PluginValidationError(
            f"risk signal {spec.name!r}: the explanation must be a non-empty sentence",
            plugin=spec.plugin, hook=_HOOK)
    if d == 0:
        return None
    return RiskFinding(spec.name, d.quantize(Decimal("0.0001")), text, tuple(facts))
