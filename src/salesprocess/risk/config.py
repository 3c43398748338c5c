"""Risk settings: signal points and thresholds (per stage), score levels, credit factors, grades
and alert rules — loaded from TOML and laid over the shipped defaults (``risk/default.toml``).

Every problem in a file is reported at once in a :class:`~salesprocess.errors.DefinitionError`
whose problems name the path (``deal.stalled.threshold``, ``alerts[1].severity``...).
"""

from __future__ import annotations

import copy
import itertools
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from salesprocess.errors import DefinitionError, Problem, ProcessFileError

__all__ = [
    "LEVELS",
    "SEVERITIES",
    "AlertRule",
    "CreditConfig",
    "RiskConfig",
    "SignalConfig",
    "SignalSettings",
]

LEVELS = ("none", "low", "medium", "high", "critical")
"""Risk levels, lowest first."""
SEVERITIES = ("info", "low", "medium", "high", "critical")
"""Alert severities, lowest first."""
GRADES = ("A", "B", "C", "D", "E")

_RESERVED = frozenset({"enabled", "points", "threshold", "full", "stages"})


@attrs.frozen
class SignalSettings:
    """How one signal behaves (in one stage): on or off, points, thresholds and options."""

    enabled: bool = True
    points: Decimal = Decimal(10)
    threshold: Decimal | None = None
    full: Decimal | None = None
    options: tuple[tuple[str, Any], ...] = ()
    _t: float = attrs.field(init=False, repr=False, eq=False)
    _f: float = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        t = float(self.threshold) if self.threshold is not None else 0.0
        object.__setattr__(self, "_t", t)
        object.__setattr__(self, "_f", float(self.full) if self.full is not None else t)

    def option(self, name: str, default: Any = None) -> Any:
        for k, v in self.options:
            if k == name:
                return v
        return default

    def severity(self, x: float) -> float:
        """0 below ``threshold``; 0.5 at it, rising linearly to 1 at ``full``."""
        t = self._t
        if x < t:
            return 0.0
        full = self._f
        if full <= t:
            return 1.0
        s = 0.5 + 0.5 * (x - t) / (full - t)
        return 1.0 if s > 1.0 else s


@attrs.frozen
class SignalConfig:
    """A signal's settings and their per-stage overrides."""

    name: str
    base: SignalSettings
    stages: tuple[tuple[str, SignalSettings], ...] = ()

    def for_stage(self, stage: str | None) -> SignalSettings:
        if stage is not None:
            for k, s in self.stages:
                if k == stage:
                    return s
        return self.base


@attrs.frozen
class AlertRule:
    """When to alert whom.

    All given conditions must hold: ``min_score`` (the combined score reaches it), ``signal``
    (that signal fired with at least ``min_severity``), ``over_limit`` (customers: the credit
    over-limit flag), ``min_grade`` (customers: credit grade at or below, e.g. ``D`` means D or E).
    ``notify`` names recipients: ``owner`` (the deal's owner), ``manager`` (the owner's manager),
    ``team_manager``, ``account_owner``, or any other string taken as it is (an address, a role).
    """

    name: str
    subject: str
    severity: str
    notify: tuple[str, ...] = ()
    min_score: Decimal | None = None
    signal: str | None = None
    min_severity: Decimal = Decimal(0)
    over_limit: bool | None = None
    min_grade: str | None = None
    description: str = ""


@attrs.frozen
class CreditConfig:
    factors: tuple[tuple[str, SignalSettings], ...]
    grades: tuple[tuple[str, Decimal], ...]
    """(grade, lowest score) from A up."""

    def factor(self, name: str) -> SignalSettings:
        for k, s in self.factors:
            if k == name:
                return s
        return SignalSettings(enabled=False, points=Decimal(0))

    def grade(self, score: Decimal) -> str:
        g = self.grades[0][0]
        for name, lo in self.grades:
            if score >= lo:
                g = name
        return g


DEAL_SIGNALS = ("stalled", "no_activity", "close_date_pushed", "amount_cut", "single_threaded",
                "competitor", "discount", "no_next_step", "close_date_past")
CUSTOMER_SIGNALS = ("credit", "csat_drop", "nps_drop", "complaints", "shrinking_purchases",
                    "inactivity", "open_deal_risk")
CREDIT_FACTORS = ("utilisation", "days_overdue", "overdue_share", "late_payments")


@attrs.frozen(eq=False)
class RiskConfig:
    """All risk settings. Build with :meth:`default`, :meth:`from_toml` or :meth:`from_dict`."""

    deal: tuple[tuple[str, SignalConfig], ...]
    customer: tuple[tuple[str, SignalConfig], ...]
    credit: CreditConfig
    levels: tuple[tuple[str, Decimal], ...]
    alerts: tuple[AlertRule, ...]
    plugin_points: Decimal = Decimal(10)
    """Points of a plugin signal the file does not mention."""
    source: dict[str, Any] = attrs.field(factory=dict, repr=False)

    # --- lookups ---------------------------------------------------------------------------------
    def deal_signal(self, name: str) -> SignalConfig | None:
        for k, s in self.deal:
            if k == name:
                return s
        return None

    def customer_signal(self, name: str) -> SignalConfig | None:
        for k, s in self.customer:
            if k == name:
                return s
        return None

    def level_of(self, score: Decimal) -> str:
        lv = "none"
        for name, lo in self.levels:
            if score >= lo:
                lv = name
        return lv

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def default(cls) -> RiskConfig:
        return cls.from_dict({})

    @classmethod
    def from_toml(cls, text_or_path: str | Path) -> RiskConfig:
        """Settings from a TOML file (or text) laid over the defaults."""
        name = "<risk config>"
        if isinstance(text_or_path, Path) or (
            isinstance(text_or_path, str) and "\n" not in text_or_path and text_or_path.endswith(".toml")
        ):
            p = Path(text_or_path)
            name = str(p)
            try:
                text = p.read_text(encoding="utf-8")
            except OSError as e:
                raise ProcessFileError(name, f"cannot read: {e.strerror or e}") from None
        else:
            text = str(text_or_path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"at line (\d+), column (\d+)", str(e))
            raise ProcessFileError(name, f"invalid TOML: {e}", line=int(m.group(1)) if m else None,
                                   column=int(m.group(2)) if m else None) from None
        return cls.from_dict(data, source=name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<risk config>") -> RiskConfig:
        """Settings from a mapping laid over the defaults (lists such as ``alerts`` replace)."""
        base = _defaults()
        merged = _merge(base, data)
        probs: list[Problem] = []
        for k in merged:
            if k not in ("levels", "deal", "customer", "credit", "alerts", "plugin_points"):
                probs.append(Problem(k, "unknown", f"unknown section {k!r}"))
        deal = _signals(merged.get("deal", {}), "deal", probs)
        customer = _signals(merged.get("customer", {}), "customer", probs)
        credit = _credit(merged.get("credit", {}), probs)
        levels = _levels(merged.get("levels", {}), probs)
        alerts = _alerts(merged.get("alerts", []), probs, {k for k, _ in deal} | {k for k, _ in customer})
        pp = _dec(merged.get("plugin_points", 10), "plugin_points", probs)
        if probs:
            raise DefinitionError(probs, source=source)
        return cls(deal, customer, credit, levels, alerts, pp if pp is not None else Decimal(10),
                   merged)


_DEFAULTS: dict[str, Any] | None = None


def _defaults() -> dict[str, Any]:
    global _DEFAULTS
    if _DEFAULTS is None:
        text = resources.files("salesprocess.risk").joinpath("default.toml").read_text("utf-8")
        _DEFAULTS = tomllib.loads(text)
    return copy.deepcopy(_DEFAULTS)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _dec(v: Any, path: str, probs: list[Problem]) -> Decimal | None:
    if isinstance(v, bool) or v is None:
        probs.append(Problem(path, "type", f"expected a number, got {v!r}"))
        return None
    try:
        d = Decimal(str(v).strip())
    except InvalidOperation:
        probs.append(Problem(path, "type", f"expected a number, got {v!r}"))
        return None
    if not d.is_finite():
        probs.append(Problem(path, "range", f"expected a finite number, got {v!r}"))
        return None
    return d


def _settings(d: Any, path: str, probs: list[Problem], parent: SignalSettings | None) -> SignalSettings:
    if not isinstance(d, Mapping):
        probs.append(Problem(path, "type", "expected a table"))
        return parent or SignalSettings()
    base = parent or SignalSettings()
    enabled = d.get("enabled", base.enabled)
    if not isinstance(enabled, bool):
        probs.append(Problem(f"{path}.enabled", "type", "expected true or false"))
        enabled = base.enabled
    points = base.points
    if "points" in d:
        p = _dec(d["points"], f"{path}.points", probs)
        if p is not None and p < 0:
            probs.append(Problem(f"{path}.points", "range", f"points must not be negative, got {p}"))
        elif p is not None:
            points = p
    threshold = base.threshold
    if "threshold" in d:
        threshold = _dec(d["threshold"], f"{path}.threshold", probs)
    full = base.full
    if "full" in d:
        full = _dec(d["full"], f"{path}.full", probs)
    if threshold is not None and full is not None and full < threshold:
        probs.append(Problem(f"{path}.full", "range",
                             f"full ({full}) must not be below threshold ({threshold})"))
    opts = dict(base.options)
    for k, v in d.items():
        if k not in _RESERVED:
            opts[k] = v
    return SignalSettings(enabled, points, threshold, full, tuple(sorted(opts.items())))


def _signals(d: Any, section: str, probs: list[Problem]) -> tuple[tuple[str, SignalConfig], ...]:
    if not isinstance(d, Mapping):
        probs.append(Problem(section, "type", "expected a table of signals"))
        return ()
    out = []
    for name, body in d.items():
        path = f"{section}.{name}"
        base = _settings(body, path, probs, None)
        stages = []
        if isinstance(body, Mapping) and "stages" in body:
            st = body["stages"]
            if not isinstance(st, Mapping):
                probs.append(Problem(f"{path}.stages", "type", "expected a table of stages"))
            else:
                for sk, sv in st.items():
                    stages.append((sk, _settings(sv, f"{path}.stages.{sk}", probs, base)))
        if name == "stalled" and section == "deal":
            basis = base.option("basis", "either")
            if basis not in ("sla", "p75", "either"):
                probs.append(Problem(f"{path}.basis", "choice",
                                     f"basis must be sla, p75 or either, got {basis!r}"))
        out.append((name, SignalConfig(name, base, tuple(stages))))
    return tuple(out)


def _credit(d: Any, probs: list[Problem]) -> CreditConfig:
    if not isinstance(d, Mapping):
        probs.append(Problem("credit", "type", "expected a table"))
        d = {}
    factors = []
    for name, body in d.items():
        if name == "grades":
            continue
        if name not in CREDIT_FACTORS:
            probs.append(Problem(f"credit.{name}", "unknown",
                                 f"unknown credit factor {name!r} (known: {', '.join(CREDIT_FACTORS)})"))
            continue
        factors.append((name, _settings(body, f"credit.{name}", probs, None)))
    grades_d = d.get("grades", {})
    grades = []
    if not isinstance(grades_d, Mapping):
        probs.append(Problem("credit.grades", "type", "expected a table"))
        grades_d = {}
    for g in GRADES:
        if g not in grades_d:
            probs.append(Problem(f"credit.grades.{g}", "missing", f"grade {g} needs its lowest score"))
            continue
        v = _dec(grades_d[g], f"credit.grades.{g}", probs)
        if v is not None:
            grades.append((g, v))
    for k in grades_d:
        if k not in GRADES:
            probs.append(Problem(f"credit.grades.{k}", "unknown", f"grades are A–E, got {k!r}"))
    for (a, x), (b, y) in itertools.pairwise(grades):
        if y <= x:
            probs.append(Problem(f"credit.grades.{b}", "order",
                                 f"grade {b} must start above grade {a} ({y} ≤ {x})"))
    return CreditConfig(tuple(factors), tuple(grades))


def _levels(d: Any, probs: list[Problem]) -> tuple[tuple[str, Decimal], ...]:
    if not isinstance(d, Mapping):
        probs.append(Problem("levels", "type", "expected a table"))
        return ()
    out = []
    for k, v in d.items():
        if k not in LEVELS or k == "none":
            probs.append(Problem(f"levels.{k}", "unknown",
                                 f"levels are {', '.join(LEVELS[1:])}, got {k!r}"))
            continue
        x = _dec(v, f"levels.{k}", probs)
        if x is not None:
            out.append((k, x))
    out.sort(key=lambda kv: LEVELS.index(kv[0]))
    for (a, x), (b, y) in itertools.pairwise(out):
        if y <= x:
            probs.append(Problem(f"levels.{b}", "order", f"level {b} must start above {a}"))
    return tuple(out)


def _alerts(items: Any, probs: list[Problem], known: set[str]) -> tuple[AlertRule, ...]:
    if not isinstance(items, list):
        probs.append(Problem("alerts", "type", "expected an array of tables ([[alerts]])"))
        return ()
    out = []
    names: set[str] = set()
    fields = {"name", "subject", "severity", "notify", "min_score", "signal", "min_severity",
              "over_limit", "min_grade", "description"}
    for i, a in enumerate(items):
        path = f"alerts[{i}]"
        if not isinstance(a, Mapping):
            probs.append(Problem(path, "type", "expected a table"))
            continue
        for k in a:
            if k not in fields:
                probs.append(Problem(f"{path}.{k}", "unknown", f"unknown alert field {k!r}"))
        name = a.get("name")
        if not isinstance(name, str) or not name:
            probs.append(Problem(f"{path}.name", "missing", "an alert rule needs a name"))
            name = f"alert{i}"
        elif name in names:
            probs.append(Problem(f"{path}.name", "duplicate", f"alert rule {name!r} defined twice"))
        names.add(name)
        subject = a.get("subject", "deal")
        if subject not in ("deal", "customer"):
            probs.append(Problem(f"{path}.subject", "choice", f"subject must be deal or customer, got {subject!r}"))
        sev = a.get("severity", "medium")
        if sev not in SEVERITIES:
            probs.append(Problem(f"{path}.severity", "choice",
                                 f"severity must be one of {', '.join(SEVERITIES)}, got {sev!r}"))
        notify = a.get("notify", [])
        if isinstance(notify, str):
            notify = [notify]
        if not isinstance(notify, list) or not all(isinstance(x, str) for x in notify):
            probs.append(Problem(f"{path}.notify", "type", "expected a list of recipients"))
            notify = []
        ms = _dec(a["min_score"], f"{path}.min_score", probs) if "min_score" in a else None
        mv = _dec(a.get("min_severity", 0), f"{path}.min_severity", probs) or Decimal(0)
        sig = a.get("signal")
        if sig is not None and not isinstance(sig, str):
            probs.append(Problem(f"{path}.signal", "type", "expected a signal name"))
            sig = None
        ol = a.get("over_limit")
        if ol is not None and not isinstance(ol, bool):
            probs.append(Problem(f"{path}.over_limit", "type", "expected true or false"))
            ol = None
        mg = a.get("min_grade")
        if mg is not None and mg not in GRADES:
            probs.append(Problem(f"{path}.min_grade", "choice", f"min_grade must be A–E, got {mg!r}"))
            mg = None
        if subject == "deal" and (ol is not None or mg is not None):
            probs.append(Problem(path, "subject", "over_limit and min_grade apply to customer alerts"))
        if ms is None and sig is None and ol is None and mg is None:
            probs.append(Problem(path, "missing",
                                 "an alert rule needs a condition: min_score, signal, over_limit or min_grade"))
        out.append(AlertRule(name, subject, sev, tuple(notify), ms, sig, mv, ol, mg,
                             str(a.get("description", ""))))
    del known  # plugin signals may be named in rules before they are registered
    return tuple(out)
