"""Rule definitions: triggers, conditions and actions, from TOML or Python.

A :class:`Rule` is *when* (a :class:`Trigger`), *if* (:class:`Condition` s over the deal, the
account, the rep and the triggering event — or Python callables) and *then* (:class:`Action` s).
:class:`RuleSet` holds rules with the timezone and business-day calendar their date arithmetic
uses; :meth:`RuleSet.from_toml` reads and validates a rule file and reports every problem with its
path and line in one :class:`~salesprocess.errors.DefinitionError`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import attrs

from ..errors import DefinitionError, Problem, ProcessFileError
from ..model import ActivityKind
from ..periods import BusinessCalendar
from .templates import Text

__all__ = [
    "ACTIONS",
    "EVENT_TRIGGERS",
    "OPERATORS",
    "TIME_TRIGGERS",
    "TRIGGERS",
    "Action",
    "Condition",
    "Rule",
    "RuleSet",
    "Trigger",
]

EVENT_TRIGGERS = ("deal_created", "stage_entered", "stage_left", "field_changed", "survey_below",
                  "risk_alert", "goal_milestone")
"""Triggers fired by something that happened (an event, a response, an alert, a milestone)."""
TIME_TRIGGERS = ("no_activity", "date", "anniversary", "holiday")
"""Triggers fired by time passing."""
TRIGGERS = EVENT_TRIGGERS + TIME_TRIGGERS

_REQ = object()  # marks a required parameter

# parameter: (type, default or _REQ)
_TRIGGER_PARAMS: dict[str, dict[str, tuple[Any, Any]]] = {
    "deal_created": {},
    "stage_entered": {"stage": (str, None)},
    "stage_left": {"stage": (str, None)},
    "field_changed": {"field": (str, _REQ)},
    "no_activity": {"days": (int, _REQ), "business_days": (bool, True)},
    "date": {"field": (str, _REQ), "offset_days": (int, 0), "time": (str, "09:00")},
    "anniversary": {"of": (str, "customer_since"), "offset_days": (int, 0), "time": (str, "09:00")},
    "holiday": {"country": (str, _REQ), "subdivision": (str, None), "names": (list, ()),
                "offset_days": (int, 0), "time": (str, "09:00")},
    "survey_below": {"survey": (str, None), "threshold": (int, _REQ)},
    "risk_alert": {"rule": (str, None), "severity": (str, None)},
    "goal_milestone": {"goal": (str, None), "milestone": (str, None)},
}

ACTIONS = ("create_task", "notify", "set_field", "move_stage", "start_playbook", "create_deal",
           "python")
_ACTION_PARAMS: dict[str, dict[str, tuple[Any, Any]]] = {
    "create_task": {"title": (Text, _REQ), "due_days": (int, 1), "assignee": (str, "owner"),
                    "activity": (str, "task")},
    "notify": {"via": (str, _REQ), "to": (list, _REQ), "subject": (Text, _REQ),
               "body": (Text, _REQ)},
    "set_field": {"field": (str, _REQ), "value": (object, _REQ)},
    "move_stage": {"to": (str, _REQ), "reason": (str, None)},
    "start_playbook": {"stage": (str, None)},
    "create_deal": {"template": (str, _REQ), "term_months": (int, 12)},
    "python": {"func": (Callable, _REQ)},
}

OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in", "not_in", "exists", "missing", "contains")
_ROOTS = ("deal", "account", "rep", "event", "goal")
_SEVERITIES = ("low", "medium", "high", "critical")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_SETTABLE = ("amount", "close_date", "owner_id", "probability", "forecast_category", "name",
             "lost_reason")


def _check_params(
    kind: str, params: Mapping[str, Any], schema: Mapping[str, tuple[Any, Any]], path: str,
    probs: list[Problem],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in params:
        if k not in schema:
            probs.append(Problem(f"{path}.{k}", "unknown_key",
                                 f"{kind} takes no {k!r} (takes: {', '.join(schema) or 'nothing'})"))
    for k, (typ, default) in schema.items():
        if k not in params:
            if default is _REQ:
                probs.append(Problem(f"{path}.{k}", "required", f"{kind} needs {k!r}"))
            else:
                out[k] = default
            continue
        v = params[k]
        if typ is Text:
            try:
                out[k] = Text.of(v)
            except (TypeError, ValueError) as e:
                probs.append(Problem(f"{path}.{k}", "type", str(e)))
            continue
        if typ is Callable:
            if not callable(v):
                probs.append(Problem(f"{path}.{k}", "type", "expected a callable"))
            out[k] = v
            continue
        if typ is list:
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
                probs.append(Problem(f"{path}.{k}", "type", f"expected a list of strings, got {v!r}"))
                continue
            out[k] = tuple(v)
            continue
        if typ is object:
            out[k] = v
            continue
        if typ is int and (isinstance(v, bool) or not isinstance(v, int)):
            probs.append(Problem(f"{path}.{k}", "type", f"expected an integer, got {v!r}"))
            continue
        if typ is not int and not isinstance(v, typ):
            probs.append(Problem(f"{path}.{k}", "type", f"expected {typ.__name__}, got {v!r}"))
            continue
        out[k] = v
    return out


def _parse_time(v: str, path: str, probs: list[Problem]) -> time:
    m = _TIME.match(v)
    if m is None:
        probs.append(Problem(path, "value", f"expected a time of day HH:MM, got {v!r}"))
        return time(9)
    return time(int(m.group(1)), int(m.group(2)))


@attrs.frozen(eq=False)
class Trigger:
    """What makes a rule fire: ``kind`` (one of :data:`TRIGGERS`) and its parameters.

    ==================  ========================================================================
    ``deal_created``    a deal was created
    ``stage_entered``   a deal entered ``stage`` (any stage when omitted; creation counts)
    ``stage_left``      a deal left ``stage`` (any when omitted)
    ``field_changed``   ``field`` of a deal changed (``amount``, ``close_date``, ``owner_id``,
                        ``probability``, ``forecast_category``, ``checklist``, ``name``,
                        ``competitors``, ``lost_reason``, ``custom.NAME``...)
    ``no_activity``     an open deal went ``days`` (business) days without a done activity
    ``date``            a date ``field`` of a deal (``close_date``, ``custom.renewal_date``) or of
                        its account (``account.custom.NAME``) is ``offset_days`` away, at ``time``
    ``anniversary``     a yearly date: ``of`` = ``customer_since`` (first win), ``account.created_at``
                        or ``account.custom.NAME``
    ``holiday``         a public holiday of ``country`` (its first day; ``names`` filters by the
                        English name), for every account
    ``survey_below``    a survey answer (``survey``: csat, nps or ces) scored below ``threshold``
    ``risk_alert``      a risk alert was raised (filtered by ``rule`` and minimum ``severity``)
    ``goal_milestone``  a goal reached a milestone (filtered by ``goal`` and ``milestone``)
    ==================  ========================================================================
    """

    kind: str
    params: Mapping[str, Any] = attrs.field(factory=dict)
    at_time: time = time(9)

    def __attrs_post_init__(self) -> None:
        probs: list[Problem] = []
        checked = self.validate(self.kind, self.params, "trigger", probs)
        if probs:
            raise DefinitionError(probs, source="trigger")
        object.__setattr__(self, "params", checked)
        if "time" in checked:
            object.__setattr__(self, "at_time", _parse_time(checked["time"], "trigger.time", []))

    @staticmethod
    def validate(kind: str, params: Mapping[str, Any], path: str, probs: list[Problem]) -> dict[str, Any]:
        schema = _TRIGGER_PARAMS.get(kind)
        if schema is None:
            probs.append(Problem(f"{path}.kind", "value",
                                 f"unknown trigger {kind!r} (use {', '.join(TRIGGERS)})"))
            return dict(params)
        out = _check_params(kind, params, schema, path, probs)
        if "time" in out and isinstance(out["time"], str):
            _parse_time(out["time"], f"{path}.time", probs)
        if kind == "no_activity" and isinstance(out.get("days"), int) and out["days"] < 1:
            probs.append(Problem(f"{path}.days", "value", "days must be at least 1"))
        if kind == "survey_below" and out.get("survey") is not None:
            if out["survey"] not in ("csat", "nps", "ces"):
                probs.append(Problem(f"{path}.survey", "value",
                                     f"survey must be csat, nps or ces, got {out['survey']!r}"))
        if kind == "risk_alert" and out.get("severity") not in (None, *_SEVERITIES):
            probs.append(Problem(f"{path}.severity", "value",
                                 f"severity must be one of {', '.join(_SEVERITIES)}"))
        if kind == "goal_milestone" and out.get("milestone") is not None:
            try:
                Decimal(str(out["milestone"]))
            except InvalidOperation:
                probs.append(Problem(f"{path}.milestone", "value", "milestone must be a decimal fraction"))
        if kind == "anniversary":
            of = out.get("of", "")
            if of != "customer_since" and not re.match(r"^account\.(created_at|custom\.\w+)$", of):
                probs.append(Problem(f"{path}.of", "value", "of must be customer_since, "
                                     "account.created_at or account.custom.NAME"))
        if kind == "date":
            f = out.get("field", "")
            if not re.match(r"^(close_date|custom\.\w+|account\.custom\.\w+)$", f):
                probs.append(Problem(f"{path}.field", "value", "field must be close_date, "
                                     "custom.NAME or account.custom.NAME"))
        if kind == "holiday" and isinstance(out.get("country"), str):
            try:
                BusinessCalendar(out["country"], out.get("subdivision")).is_holiday(date(2026, 1, 1))
            except ValueError as e:
                probs.append(Problem(f"{path}.country", "value", str(e)))
        return out

    @property
    def is_time_based(self) -> bool:
        return self.kind in TIME_TRIGGERS

    def get(self, name: str) -> Any:
        return self.params.get(name)


@attrs.frozen
class Condition:
    """``field op value`` over the rule's context.

    ``field`` is a dotted path: ``deal.amount``, ``deal.stage``, ``deal.custom.tier``,
    ``account.industry``, ``account.custom.tier``, ``rep.team_id``, ``event.score``,
    ``event.new``... Money compares with a number (its amount) or ``"100000 CNY"``; dates with
    ISO dates; enums with their values. ``exists`` / ``missing`` take no value.
    """

    field: str
    op: str = "=="
    value: Any = None

    def problems(self, path: str) -> list[Problem]:
        out = []
        root = self.field.split(".", 1)[0]
        if root not in _ROOTS or "." not in self.field:
            out.append(Problem(f"{path}.field", "value",
                               f"field must start with {', '.join(r + '.' for r in _ROOTS)} got {self.field!r}"))
        if self.op not in OPERATORS:
            out.append(Problem(f"{path}.op", "value", f"unknown operator {self.op!r} (use {' '.join(OPERATORS)})"))
        elif self.op in ("in", "not_in") and not isinstance(self.value, list | tuple):
            out.append(Problem(f"{path}.value", "type", f"{self.op} needs a list"))
        elif self.op not in ("exists", "missing") and self.value is None:
            out.append(Problem(f"{path}.value", "required", f"{self.op} needs a value"))
        return out

    def describe(self) -> str:
        return f"{self.field} {self.op}" + ("" if self.op in ("exists", "missing") else f" {self.value!r}")


ConditionLike = Condition | Callable[[Any], bool]


@attrs.frozen(eq=False)
class Action:
    """What a rule does: ``kind`` (one of :data:`ACTIONS`) and its parameters.

    =================  ==========================================================================
    ``create_task``    a planned activity (``activity`` kind, default ``task``) titled ``title``,
                       due ``due_days`` business days later, assigned to ``assignee`` (``owner``,
                       ``manager``, ``account_owner`` or a rep id)
    ``notify``         a message through the notifier ``via`` to each of ``to`` (``owner``,
                       ``manager``, ``account_owner``, ``contacts``, a rep id or an e-mail address)
                       with ``subject`` and ``body`` in the recipient's language
    ``set_field``      set a deal field (``amount``, ``close_date``, ``owner_id``, ``probability``,
                       ``forecast_category``, ``name``, ``lost_reason``, ``custom.NAME``,
                       ``checklist.ITEM``) to ``value``
    ``move_stage``     move the deal to stage ``to`` through the stage machine (criteria, guards
                       and vetoes apply; a refused move is reported, not forced)
    ``start_playbook`` create the playbook tasks of ``stage`` (default: the deal's stage)
    ``create_deal``    a ``renewal`` of a won deal, or an ``upsell`` of the account's next best
                       product
    ``python``         call ``func(context)`` (Python rules only); it returns a short detail or
                       ``None``
    =================  ==========================================================================

    Text parameters (``title``, ``subject``, ``body``) are a string or a table of languages
    (``{ zh = "...", en = "..." }``) with ``{deal.name}``-style placeholders.
    """

    kind: str
    params: Mapping[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        probs: list[Problem] = []
        checked = self.validate(self.kind, self.params, "action", probs)
        if probs:
            raise DefinitionError(probs, source="action")
        object.__setattr__(self, "params", checked)

    @staticmethod
    def validate(kind: str, params: Mapping[str, Any], path: str, probs: list[Problem]) -> dict[str, Any]:
        schema = _ACTION_PARAMS.get(kind)
        if schema is None:
            probs.append(Problem(f"{path}.kind", "value",
                                 f"unknown action {kind!r} (use {', '.join(ACTIONS)})"))
            return dict(params)
        out = _check_params(kind, params, schema, path, probs)
        if kind == "create_task" and isinstance(out.get("activity"), str):
            if out["activity"] not in ActivityKind.__members__.values():
                probs.append(Problem(f"{path}.activity", "value", f"unknown activity kind {out['activity']!r}"))
        if kind == "create_deal" and out.get("template") not in (None, "renewal", "upsell"):
            probs.append(Problem(f"{path}.template", "value", "template must be renewal or upsell"))
        if kind == "set_field" and isinstance(out.get("field"), str):
            f = out["field"]
            if f not in _SETTABLE and not re.match(r"^(custom|checklist)\.\w+$", f):
                probs.append(Problem(f"{path}.field", "value",
                                     f"cannot set {f!r} (settable: {', '.join(_SETTABLE)}, custom.NAME, checklist.ITEM)"))
        if kind == "notify":
            for i, t in enumerate(out.get("to", ())):
                if not t:
                    probs.append(Problem(f"{path}.to[{i}]", "value", "empty recipient"))
        return out

    @classmethod
    def python(cls, func: Callable[[Any], str | None]) -> Action:
        return cls("python", {"func": func})

    def get(self, name: str) -> Any:
        return self.params.get(name)


def _conditions(v: Sequence[ConditionLike]) -> tuple[ConditionLike, ...]:
    return tuple(v)


def _actions(v: Sequence[Action]) -> tuple[Action, ...]:
    return tuple(v)


@attrs.frozen(eq=False)
class Rule:
    """One automation rule. ``id`` is stable: fire records are keyed by it.

    ``active_from`` ignores occurrences before it (a new rule does not act on all history);
    ``max_late_days`` skips occurrences found more than that many days after they were due.
    """

    id: str
    trigger: Trigger
    actions: tuple[Action, ...] = attrs.field(converter=_actions)
    conditions: tuple[ConditionLike, ...] = attrs.field(default=(), converter=_conditions)
    description: str = ""
    enabled: bool = True
    active_from: datetime | None = None
    max_late_days: int | None = None

    def __attrs_post_init__(self) -> None:
        probs = self.problems("")
        if probs:
            raise DefinitionError(probs, source=f"rule {self.id!r}")

    def problems(self, path: str) -> list[Problem]:
        p = f"{path}." if path else ""
        out: list[Problem] = []
        if not isinstance(self.id, str) or not re.match(r"^[\w.-]+$", self.id):
            out.append(Problem(f"{p}id", "value", f"a rule id is letters, digits, _ . -; got {self.id!r}"))
        if not self.actions:
            out.append(Problem(f"{p}actions", "required", "a rule needs at least one action"))
        for i, c in enumerate(self.conditions):
            if isinstance(c, Condition):
                out.extend(c.problems(f"{p}conditions[{i}]"))
            elif not callable(c):
                out.append(Problem(f"{p}conditions[{i}]", "type", "a condition is a Condition or a callable"))
        if self.active_from is not None and (self.active_from.tzinfo is None):
            out.append(Problem(f"{p}active_from", "value", "active_from needs a timezone"))
        return out


@attrs.frozen(eq=False)
class RuleSet:
    """Rules with the timezone (``tz``) and business-day ``calendar`` their dates use."""

    rules: tuple[Rule, ...]
    tz: tzinfo = UTC
    calendar: BusinessCalendar = attrs.field(factory=BusinessCalendar)

    def __attrs_post_init__(self) -> None:
        seen: dict[str, int] = {}
        probs = []
        for i, r in enumerate(self.rules):
            if r.id in seen:
                probs.append(Problem(f"rules[{i}].id", "duplicate",
                                     f"rule id {r.id!r} is used twice (also rules[{seen[r.id]}])"))
            seen.setdefault(r.id, i)
        if probs:
            raise DefinitionError(probs, source="rules")

    def __iter__(self) -> Any:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    # --- TOML ------------------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, text_or_path: str | Path) -> RuleSet:
        """Read rules from TOML text or a ``.toml`` file (see the automation reference for the
        format). Every problem is reported at once, with its path and line."""
        if isinstance(text_or_path, Path) or (
            isinstance(text_or_path, str) and "\n" not in text_or_path and text_or_path.endswith(".toml")
        ):
            path = Path(text_or_path)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as e:
                raise ProcessFileError(str(path), f"cannot read: {e.strerror or e}") from None
            source = str(path)
        else:
            text, source = str(text_or_path), "<rules>"
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            line = getattr(e, "lineno", None)
            if line is None:
                m = re.search(r"line (\d+)", str(e))
                line = int(m.group(1)) if m else None
            raise ProcessFileError(source, f"invalid TOML: {e}", line=line) from None
        lines = _rule_lines(text)
        try:
            return cls.from_dict(data)
        except DefinitionError as e:
            probs = []
            first: int | None = None
            for p in e.problems:
                m = re.match(r"rules\[(\d+)\]", p.path)
                ln = lines[int(m.group(1))] if m and int(m.group(1)) < len(lines) else None
                if ln is not None and first is None:
                    first = ln
                where = f" (line {ln})" if ln is not None else ""
                probs.append(Problem(p.path, p.code, p.message + where))
            raise ProcessFileError(source, str(e), line=first, problems=probs) from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleSet:
        probs: list[Problem] = []
        for k in data:
            if k not in ("timezone", "country", "subdivision", "rules"):
                probs.append(Problem(k, "unknown_key", f"unknown key {k!r}"))
        tz: tzinfo = UTC
        tzname = data.get("timezone")
        if tzname is not None:
            import zoneinfo

            try:
                tz = zoneinfo.ZoneInfo(str(tzname))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                probs.append(Problem("timezone", "value", f"unknown timezone {tzname!r}"))
        cal = BusinessCalendar()
        if data.get("country") is not None:
            try:
                cal = BusinessCalendar(str(data["country"]), data.get("subdivision"))
                cal.is_working_day(date(2026, 1, 1))
            except ValueError as e:
                probs.append(Problem("country", "value", str(e)))
                cal = BusinessCalendar()
        raw = data.get("rules", [])
        if not isinstance(raw, list):
            probs.append(Problem("rules", "type", "expected an array of [[rules]] tables"))
            raw = []
        rules: list[Rule] = []
        for i, r in enumerate(raw):
            rule = _rule_from_dict(r, f"rules[{i}]", probs)
            if rule is not None:
                rules.append(rule)
        seen: dict[str, int] = {}
        for i, r in enumerate(raw):
            rid = r.get("id") if isinstance(r, Mapping) else None
            if isinstance(rid, str):
                if rid in seen:
                    probs.append(Problem(f"rules[{i}].id", "duplicate",
                                         f"rule id {rid!r} is used twice (also rules[{seen[rid]}])"))
                seen.setdefault(rid, i)
        if probs:
            raise DefinitionError(probs, source="rules")
        return cls(tuple(rules), tz, cal)


def _rule_lines(text: str) -> list[int]:
    return [no for no, ln in enumerate(text.splitlines(), 1) if re.match(r"^\s*\[\[\s*rules\s*\]\]", ln)]


_RULE_KEYS = ("id", "description", "enabled", "trigger", "conditions", "actions", "active_from",
              "max_late_days")


def _rule_from_dict(r: Any, path: str, probs: list[Problem]) -> Rule | None:
    if not isinstance(r, Mapping):
        probs.append(Problem(path, "type", "a rule is a table"))
        return None
    before = len(probs)
    for k in r:
        if k not in _RULE_KEYS:
            probs.append(Problem(f"{path}.{k}", "unknown_key", f"unknown key {k!r}"))
    rid = r.get("id")
    if not isinstance(rid, str):
        probs.append(Problem(f"{path}.id", "required", "a rule needs an id (a string)"))
        rid = "?"
    trig = r.get("trigger")
    t_kind, t_params = "", {}
    if not isinstance(trig, Mapping):
        probs.append(Problem(f"{path}.trigger", "required", "a rule needs a trigger table with a kind"))
    else:
        t_kind = str(trig.get("kind", ""))
        t_params = {k: v for k, v in trig.items() if k != "kind"}
        Trigger.validate(t_kind, t_params, f"{path}.trigger", probs)
    conds: list[Condition] = []
    craw = r.get("conditions", [])
    if not isinstance(craw, list):
        probs.append(Problem(f"{path}.conditions", "type", "expected an array of condition tables"))
        craw = []
    for i, c in enumerate(craw):
        cp = f"{path}.conditions[{i}]"
        if not isinstance(c, Mapping) or not isinstance(c.get("field"), str):
            probs.append(Problem(cp, "type", "a condition is a table with field, op and value"))
            continue
        for k in c:
            if k not in ("field", "op", "value"):
                probs.append(Problem(f"{cp}.{k}", "unknown_key", f"unknown key {k!r}"))
        cond = Condition(c["field"], str(c.get("op", "==")), c.get("value"))
        probs.extend(cond.problems(cp))
        conds.append(cond)
    acts: list[Action] = []
    araw = r.get("actions", [])
    if not isinstance(araw, list) or not araw:
        probs.append(Problem(f"{path}.actions", "required", "a rule needs at least one [[rules.actions]]"))
        araw = []
    for i, a in enumerate(araw):
        ap = f"{path}.actions[{i}]"
        if not isinstance(a, Mapping) or not isinstance(a.get("kind"), str):
            probs.append(Problem(ap, "type", "an action is a table with a kind"))
            continue
        if a["kind"] == "python":
            probs.append(Problem(f"{ap}.kind", "value", "python actions exist only in Python rules"))
            continue
        params = {k: v for k, v in a.items() if k != "kind"}
        Action.validate(a["kind"], params, ap, probs)
    active = r.get("active_from")
    if active is not None:
        if isinstance(active, date) and not isinstance(active, datetime):
            active = datetime.combine(active, time(0), UTC)
        if not isinstance(active, datetime) or active.tzinfo is None:
            probs.append(Problem(f"{path}.active_from", "type", "expected a date or an offset date-time"))
            active = None
    late = r.get("max_late_days")
    if late is not None and (isinstance(late, bool) or not isinstance(late, int) or late < 0):
        probs.append(Problem(f"{path}.max_late_days", "type", "expected a non-negative integer"))
        late = None
    enabled = r.get("enabled", True)
    if not isinstance(enabled, bool):
        probs.append(Problem(f"{path}.enabled", "type", "expected true or false"))
        enabled = True
    if len(probs) > before:
        return None
    assert isinstance(trig, Mapping)
    for a in araw:
        acts.append(Action(a["kind"], {k: v for k, v in a.items() if k != "kind"}))
    return Rule(rid, Trigger(t_kind, t_params), tuple(acts), tuple(conds),
                str(r.get("description", "")), enabled, active, late)
