"""The rule engine: find occurrences, check conditions, act once per occurrence.

An *occurrence* is one thing a trigger reacts to, with a stable key: deal ``D-1``'s fourth event,
the idle spell that started at a given instant, the 2027 anniversary of a customer, the Spring
Festival of 2027 for an account, survey response ``S-9``, the raise of a risk alert, a goal
milestone. Occurrences are derived from what the store holds (deal histories, activities,
accounts, survey responses, risk-alert and goal-milestone documents) and the instant ``asof``:
the same store and ``asof`` give the same occurrences, however often or rarely the engine ran
before. Conditions are checked against the deal *as it was* when the occurrence happened (or
fell due); account and rep conditions read their current values.

A rule fires at most once per occurrence: the fire record (store document kind
``automation_fire``, key ``<rule id>|<occurrence key>``) is written in the same transaction as the
actions' store writes (tasks, field changes, stage moves, new deals). Messages go out after the
commit from an outbox (kind ``automation_outbox``) and leave it once a notifier accepted them, so a
crash or a notifier outage delays a message but never loses it; its stable id lets the receiver
drop the rare repeat after a crash between sending and recording.

:meth:`RuleEngine.run_due` is deterministic in ``asof``, the store and the notifiers; it never
reads the clock. With ``dry_run`` it writes and sends nothing and lists what would fire and why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from ..codec import instant, iso
from ..errors import (
    AdapterError,
    DomainError,
    NotFoundError,
    RemoteValidationError,
    SalesProcessError,
    TransitionNotAllowed,
)
from ..model import (
    Account,
    Activity,
    ActivityKind,
    ActivityStatus,
    Contact,
    Deal,
    DealCreated,
    DealStatus,
    EventSource,
    ForecastCategory,
    Product,
    Rep,
    StageChanged,
    replay,
    replay_until,
)
from ..money import Money, Rate
from ..periods import BusinessCalendar, require_aware
from ..process import Process
from .notify import Message, Notifier, Recipient
from .rules import Action, Condition, Rule, RuleSet
from .templates import Text

__all__ = [
    "FIRE_KIND",
    "OUTBOX_KIND",
    "Context",
    "Firing",
    "Occurrence",
    "Outcome",
    "RuleEngine",
    "RunReport",
]

FIRE_KIND = "automation_fire"
OUTBOX_KIND = "automation_outbox"
_GOAL_MILESTONE_KIND = "goal_milestone"
_RISK_ALERT_KIND = "risk_alert"
_SEVERITY = ("low", "medium", "high", "critical")
_FAR = datetime.max.replace(tzinfo=UTC)

Advance = Callable[..., Deal]


@attrs.frozen
class Occurrence:
    """Something a trigger reacts to: ``key`` is stable across runs and restarts; ``at`` is when it
    happened or fell due; ``data`` carries the details templates and conditions read as
    ``event.*``; ``why`` says it in words."""

    trigger: str
    key: str
    at: datetime
    deal_id: str | None = None
    account_id: str | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)
    why: str = ""


@attrs.frozen
class Outcome:
    """What one action did: ``status`` is ``done``, ``skipped``, ``failed`` or (dry run)
    ``planned``."""

    action: str
    status: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"action": self.action, "status": self.status, "detail": self.detail}


@attrs.frozen
class Firing:
    """A rule firing for an occurrence (or, in a dry run, one that would)."""

    rule: str
    occurrence: Occurrence
    key: str
    why: str
    outcomes: tuple[Outcome, ...] = ()
    messages: tuple[tuple[str, Message], ...] = ()
    """(notifier name, message) pairs."""

    def as_dict(self) -> dict[str, Any]:
        o = self.occurrence
        return {"rule": self.rule, "key": self.key, "trigger": o.trigger, "occurrence": o.key,
                "at": o.at.isoformat(), "deal_id": o.deal_id, "account_id": o.account_id,
                "why": self.why, "outcomes": [x.as_dict() for x in self.outcomes],
                "messages": [{"via": v, **m.to_dict()} for v, m in self.messages]}


@attrs.frozen
class RunReport:
    """The result of :meth:`RuleEngine.run_due` or :meth:`RuleEngine.handle`.

    ``fired``: the firings of this run (would-be firings in a dry run); ``already``: occurrences
    skipped because their rule fired for them before; ``not_matching``: occurrences whose
    conditions did not hold; ``late``: occurrences skipped by ``max_late_days``; ``sent``:
    messages notifiers accepted; ``send_failures``: (message id, error) of messages kept for a
    later run (or dropped, for errors a retry cannot fix); ``saved``: the deals actions saved,
    with the events they appended.
    """

    asof: datetime
    dry_run: bool
    fired: tuple[Firing, ...] = ()
    already: int = 0
    not_matching: int = 0
    late: int = 0
    sent: int = 0
    send_failures: tuple[tuple[str, str], ...] = ()
    saved: tuple[tuple[Deal, tuple[Any, ...]], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"asof": self.asof.isoformat(), "dry_run": self.dry_run,
                "fired": [f.as_dict() for f in self.fired], "already": self.already,
                "not_matching": self.not_matching, "late": self.late, "sent": self.sent,
                "send_failures": [{"message": m, "error": e} for m, e in self.send_failures]}


# ----------------------------------------------------------------------------------------------
# Facts: what the store holds, loaded once per run
# ----------------------------------------------------------------------------------------------


class _Facts:
    def __init__(self, store: Any, asof: datetime) -> None:
        self.store = store
        self.asof = asof
        self.deals: list[Deal] = list(store.deals())
        self.by_id = {d.id: d for d in self.deals}
        self.accounts: dict[str, Account] = {a.id: a for a in store.all(Account)}
        self.reps: dict[str, Rep] = {r.id: r for r in store.all(Rep)}
        self._contacts: dict[str, Contact] | None = None
        self._done: dict[str, list[datetime]] | None = None
        self._first_win: dict[str, datetime] | None = None
        self._start: dict[str, datetime] | None = None
        self._processes: dict[tuple[str, int], Process] = {}

    def deal(self, deal_id: str | None) -> Deal | None:
        return self.by_id.get(deal_id) if deal_id else None

    @property
    def contacts(self) -> dict[str, Contact]:
        if self._contacts is None:
            self._contacts = {c.id: c for c in self.store.all(Contact)}
        return self._contacts

    def done_times(self, deal_id: str) -> list[datetime]:
        if self._done is None:
            done: dict[str, list[datetime]] = {}
            for a in self.store.all(Activity):
                if a.deal_id is not None and a.status is ActivityStatus.DONE and a.at <= self.asof:
                    done.setdefault(a.deal_id, []).append(a.at)
            for v in done.values():
                v.sort()
            self._done = done
        return self._done.get(deal_id, [])

    def first_win(self, account_id: str) -> datetime | None:
        if self._first_win is None:
            fw: dict[str, datetime] = {}
            for d in self.deals:
                if (d.account_id and d.status is DealStatus.WON and d.closed_at is not None
                        and d.closed_at <= self.asof):
                    have = fw.get(d.account_id)
                    if have is None or d.closed_at < have:
                        fw[d.account_id] = d.closed_at
            self._first_win = fw
        return self._first_win.get(account_id)

    def account_start(self, account: Account) -> datetime | None:
        """When the account became known: its creation, else its first deal's."""
        if account.created_at is not None:
            return account.created_at
        if self._start is None:
            st: dict[str, datetime] = {}
            for d in self.deals:
                if d.account_id and (d.account_id not in st or d.created_at < st[d.account_id]):
                    st[d.account_id] = d.created_at
            self._start = st
        return self._start.get(account.id)

    def process(self, deal: Deal) -> Process:
        k = (deal.process, deal.process_version)
        p = self._processes.get(k)
        if p is None:
            p = self.store.get_process(deal.process, deal.process_version)
            self._processes[k] = p
        return p


# ----------------------------------------------------------------------------------------------
# Context and conditions
# ----------------------------------------------------------------------------------------------


class Context:
    """What conditions, templates and Python actions see: ``rule``, ``occurrence``, ``asof``,
    ``store``, ``deal`` (as it was at the occurrence), ``current_deal`` (as it is now),
    ``account``, ``rep`` (the deal's owner, else the account's), ``event`` (the occurrence's
    data) and ``goal``."""

    def __init__(self, rule: Rule, occ: Occurrence, facts: _Facts, asof: datetime) -> None:
        self.rule = rule
        self.occurrence = occ
        self.asof = asof
        self.store = facts.store
        self.facts = facts
        cur = facts.deal(occ.deal_id)
        self.current_deal: Deal | None = cur
        self.deal: Deal | None = replay_until(cur.events, occ.at) if cur is not None else None
        if self.deal is None and cur is not None:
            self.deal = cur
        acc_id = occ.account_id or (cur.account_id if cur is not None else None)
        self.account: Account | None = facts.accounts.get(acc_id) if acc_id else None
        owner = (self.deal.owner_id if self.deal is not None else None) or (
            self.account.owner_id if self.account is not None else None)
        self.goal: Any = occ.data.get("goal_obj")
        if owner is None and self.goal is not None and getattr(self.goal.scope, "kind", None) == "rep":
            owner = self.goal.scope.id
        self.rep: Rep | None = facts.reps.get(owner) if owner else None
        self.event: Mapping[str, Any] = {k: v for k, v in occ.data.items() if k != "goal_obj"}

    def value(self, path: str) -> Any:
        root, _, rest = path.partition(".")
        obj: Any = {"deal": self.deal, "account": self.account, "rep": self.rep,
                    "event": self.event, "goal": self.goal}.get(root)
        for p in rest.split(".") if rest else ():
            if obj is None:
                return None
            if isinstance(obj, Mapping):
                obj = obj.get(p)
            elif p.startswith("_"):
                return None
            else:
                obj = getattr(obj, p, None)
        return obj

    def template_context(self, recipient: Recipient | None = None) -> dict[str, Any]:
        return {"deal": self.current_deal or self.deal, "account": self.account, "rep": self.rep,
                "event": self.event, "goal": self.goal, "recipient": recipient,
                "rule": {"id": self.rule.id, "description": self.rule.description},
                "asof": self.asof}


def _dec(v: Any) -> Decimal | None:
    try:
        return Decimal(str(v))
    except (InvalidOperation, ValueError):
        return None


def _coerce(actual: Any, want: Any) -> tuple[Any, Any] | None:
    """Both sides in one comparable type, or None when they cannot be compared."""
    if isinstance(actual, Money):
        if isinstance(want, str) and " " in want.strip():
            amt, _, cur = want.strip().partition(" ")
            if cur.strip() != actual.currency:
                return None
            d = _dec(amt)
        else:
            d = _dec(want)
        return None if d is None else (actual.amount, d)
    if isinstance(actual, Rate):
        d = _dec(want)
        return None if d is None else (actual.value, d)
    if isinstance(actual, bool) or isinstance(want, bool):
        return (actual, want)
    if isinstance(actual, datetime):
        wt = want if isinstance(want, datetime) else (instant(want) if isinstance(want, str) else None)
        return None if wt is None else (actual, wt)
    if isinstance(actual, date):
        if isinstance(want, date):
            return (actual, want)
        try:
            return (actual, date.fromisoformat(str(want)))
        except ValueError:
            return None
    if isinstance(actual, int | Decimal) or (isinstance(want, int | Decimal) and not isinstance(actual, str)):
        a, w = _dec(actual), _dec(want)
        return None if a is None or w is None else (a, w)
    if hasattr(actual, "value") and isinstance(getattr(actual, "value", None), str):
        return (actual.value, str(want))
    if isinstance(actual, str) and isinstance(want, int | Decimal):
        a = _dec(actual)
        return None if a is None else (a, Decimal(want))
    return (actual, want)


def _holds(c: Condition, ctx: Context) -> bool:
    v = ctx.value(c.field)
    op = c.op
    if op == "exists":
        return v not in (None, "", (), frozenset())
    if op == "missing":
        return v in (None, "", (), frozenset())
    if v is None:
        return op in ("!=", "not_in")
    if op in ("in", "not_in"):
        hit = False
        for w in c.value:
            pair = _coerce(v, w)
            if pair is not None and pair[0] == pair[1]:
                hit = True
                break
        return hit if op == "in" else not hit
    if op == "contains":
        if isinstance(v, str):
            return str(c.value) in v
        try:
            return c.value in v
        except TypeError:
            return False
    pair = _coerce(v, c.value)
    if pair is None:
        return op == "!="
    a, w = pair
    try:
        return bool({"==": a == w, "!=": a != w}.get(op)) if op in ("==", "!=") else bool(
            {"<": lambda: a < w, "<=": lambda: a <= w, ">": lambda: a > w, ">=": lambda: a >= w}[op]())
    except TypeError:
        return False


def _check(rule: Rule, ctx: Context) -> tuple[bool, list[str]]:
    notes = []
    for c in rule.conditions:
        if isinstance(c, Condition):
            ok = _holds(c, ctx)
            notes.append(f"{c.describe()} {'✓' if ok else '✗'}")
        else:
            ok = bool(c(ctx))
            notes.append(f"{getattr(c, '__name__', 'python condition')} {'✓' if ok else '✗'}")
        if not ok:
            return False, notes
    return True, notes


# ----------------------------------------------------------------------------------------------
# Occurrences
# ----------------------------------------------------------------------------------------------


def _field_value(deal: Deal, field: str) -> Any:
    if field.startswith("custom."):
        return deal.custom.get(field[7:])
    if field.startswith("checklist."):
        return field[10:] in deal.checklist
    return getattr(deal, field, None)


def _as_date(v: Any) -> date | None:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    if isinstance(v, str):
        try:
            return date.fromisoformat(v)
        except ValueError:
            return None
    return None


def _states(deal: Deal) -> Iterator[tuple[int, Deal | None, Deal]]:
    """(event index, state before, state after) for each event of a deal."""
    prev: Deal | None = None
    cur = replay(deal.events[:1])
    yield 0, None, cur
    for i in range(1, len(deal.events)):
        prev, cur = cur, cur.append(deal.events[i])
        yield i, prev, cur


def _deal_event_occurrences(rule: Rule, deal: Deal, asof: datetime, start: int = 0) -> Iterator[Occurrence]:
    t = rule.trigger
    kind = t.kind
    want_stage = t.get("stage")
    field = t.get("field")
    for i, e in enumerate(deal.events):
        if i < start:
            continue
        if e.at > asof:
            break
        key = f"deal:{deal.id}:ev{i}"
        if kind == "deal_created" and isinstance(e, DealCreated):
            yield Occurrence(kind, f"deal:{deal.id}:created", e.at, deal.id, e.account_id,
                             {"stage": e.stage}, f"deal {deal.id} was created in {e.stage}")
        elif kind == "stage_entered":
            st = e.stage if isinstance(e, DealCreated) else (e.to_stage if isinstance(e, StageChanged) else None)
            frm = e.from_stage if isinstance(e, StageChanged) else None
            if st is not None and (want_stage is None or st == want_stage):
                yield Occurrence(kind, key, e.at, deal.id, None, {"stage": st, "from_stage": frm},
                                 f"deal {deal.id} entered {st}" + (f" from {frm}" if frm else ""))
        elif kind == "stage_left" and isinstance(e, StageChanged):
            if want_stage is None or e.from_stage == want_stage:
                yield Occurrence(kind, key, e.at, deal.id, None,
                                 {"stage": e.from_stage, "to_stage": e.to_stage},
                                 f"deal {deal.id} left {e.from_stage} for {e.to_stage}")
    if kind == "field_changed" and field:
        for i, prev, cur in _states(deal):
            if prev is None or i < start:
                continue
            e = deal.events[i]
            if e.at > asof:
                break
            old, new = _field_value(prev, field), _field_value(cur, field)
            if old != new:
                yield Occurrence(kind, f"deal:{deal.id}:ev{i}:{field}", e.at, deal.id, None,
                                 {"field": field, "old": old, "new": new},
                                 f"deal {deal.id}: {field} changed from {old!r} to {new!r}")


def _local_due(d: date, t: time, tz: tzinfo) -> datetime:
    return datetime.combine(d, t, tz)


def _idle_occurrences(rule: Rule, deal: Deal, facts: _Facts, asof: datetime, tz: tzinfo,
                      cal: BusinessCalendar) -> Iterator[Occurrence]:
    n = int(rule.trigger.get("days"))
    business = bool(rule.trigger.get("business_days"))
    if deal.created_at > asof:
        return
    anchors = sorted({deal.created_at, *(a for a in facts.done_times(deal.id) if a >= deal.created_at)})
    for j, a in enumerate(anchors):
        if business:
            local = a.astimezone(tz)
            due = datetime.combine(cal.add_working_days(local.date(), n), local.timetz())
        else:
            due = a + timedelta(days=n)
        if due > asof:
            break
        if j + 1 < len(anchors) and anchors[j + 1] <= due:
            continue
        state = replay_until(deal.events, due)
        if state is None or state.status is not DealStatus.OPEN:
            continue
        unit = "business days" if business else "days"
        yield Occurrence("no_activity", f"deal:{deal.id}:idle:{iso(a)}", due, deal.id, None,
                         {"days": n, "since": a},
                         f"deal {deal.id} had no done activity for {n} {unit} after {a.isoformat()}")


def _date_occurrences(rule: Rule, facts: _Facts, asof: datetime, tz: tzinfo) -> Iterator[Occurrence]:
    t = rule.trigger
    field = str(t.get("field"))
    off = int(t.get("offset_days") or 0)
    when = t.at_time
    if field.startswith("account."):
        sub = field[len("account."):]
        for acc in facts.accounts.values():
            v = _as_date(acc.custom.get(sub[7:]) if sub.startswith("custom.") else getattr(acc, sub, None))
            if v is None:
                continue
            due = _local_due(v + timedelta(days=off), when, tz)
            if due <= asof:
                yield Occurrence("date", f"account:{acc.id}:date:{field}:{v.isoformat()}:{off}", due,
                                 None, acc.id, {"field": field, "date": v, "offset_days": off},
                                 f"{field} of account {acc.id} is {v.isoformat()} ({_days_phrase(off)})")
        return
    for d in facts.deals:
        if d.created_at > asof:
            continue
        values: set[date] = set()
        for _i, _p, cur in _states(d):
            if cur.updated_at > asof:
                break
            v = _as_date(_field_value(cur, field))
            if v is not None:
                values.add(v)
        for v in sorted(values):
            due = _local_due(v + timedelta(days=off), when, tz)
            if due > asof or due < d.created_at:
                continue
            then = replay_until(d.events, due)
            if then is None or _as_date(_field_value(then, field)) != v:
                continue
            yield Occurrence("date", f"deal:{d.id}:date:{field}:{v.isoformat()}:{off}", due, d.id, None,
                             {"field": field, "date": v, "offset_days": off},
                             f"{field} of deal {d.id} is {v.isoformat()} ({_days_phrase(off)})")


def _days_phrase(off: int) -> str:
    if off == 0:
        return "today"
    return f"{-off} day(s) ahead" if off < 0 else f"{off} day(s) ago"


def _same_day(d: date, year: int) -> date:
    try:
        return d.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 2, 28)


def _anniversary_occurrences(rule: Rule, facts: _Facts, asof: datetime, tz: tzinfo) -> Iterator[Occurrence]:
    t = rule.trigger
    of = str(t.get("of"))
    off = int(t.get("offset_days") or 0)
    for acc in facts.accounts.values():
        base: date | None
        if of == "customer_since":
            fw = facts.first_win(acc.id)
            base = fw.astimezone(tz).date() if fw else None
        elif of == "account.created_at":
            base = acc.created_at.astimezone(tz).date() if acc.created_at else None
        else:
            base = _as_date(acc.custom.get(of[len("account.custom."):]))
        if base is None:
            continue
        for y in range(base.year + 1, asof.astimezone(tz).year + 2):
            d = _same_day(base, y)
            due = _local_due(d + timedelta(days=off), t.at_time, tz)
            if due > asof:
                break
            yield Occurrence("anniversary", f"account:{acc.id}:anniversary:{of}:{y}", due, None, acc.id,
                             {"years": y - base.year, "since": base, "date": d},
                             f"{y - base.year} year(s) since {base.isoformat()} ({of}) for account {acc.id}")


_HOLIDAY_CACHE: dict[tuple[str, str | None, int], list[tuple[date, str, str]]] = {}


def _greetable(country: str, subdiv: str | None, year: int) -> list[tuple[date, str, str]]:
    """(first day, English name, Chinese or local name) of each holiday of a year."""
    k = (country, subdiv, year)
    if k not in _HOLIDAY_CACHE:
        import holidays

        def names(lang: str | None) -> dict[date, str]:
            try:
                h = holidays.country_holidays(country, subdiv=subdiv, years=year, language=lang)
            except (NotImplementedError, TypeError):
                h = holidays.country_holidays(country, subdiv=subdiv, years=year)
            return {d: str(n) for d, n in h.items() if d.year == year}

        en = names("en_US")
        langs = getattr(holidays.country_holidays(country, years=year), "supported_languages", ())
        local = names("zh_CN") if "zh_CN" in langs else en
        out = []
        prev: tuple[date, str] | None = None
        for d in sorted(en):
            n = en[d]
            low = n.lower()
            if "observed" in low or "day off" in low or "substituted" in low:
                prev = None
                continue
            if prev is not None and prev[1] == n and (d - prev[0]).days == 1:
                prev = (d, n)
                continue
            prev = (d, n)
            out.append((d, n, local.get(d, n)))
        _HOLIDAY_CACHE[k] = out
    return _HOLIDAY_CACHE[k]


def _holiday_occurrences(rule: Rule, facts: _Facts, asof: datetime, tz: tzinfo) -> Iterator[Occurrence]:
    t = rule.trigger
    country = str(t.get("country"))
    subdiv = t.get("subdivision")
    wanted = [n.lower() for n in (t.get("names") or ())]
    off = int(t.get("offset_days") or 0)
    last_year = asof.astimezone(tz).year + 1
    for acc in facts.accounts.values():
        start = facts.account_start(acc)
        if start is None or start > asof:
            continue
        for y in range(start.astimezone(tz).year, last_year + 1):
            for d, name, local in _greetable(country, subdiv, y):
                if wanted and not any(w in name.lower() for w in wanted):
                    continue
                due = _local_due(d + timedelta(days=off), t.at_time, tz)
                if due < start or due > asof:
                    continue
                yield Occurrence("holiday", f"account:{acc.id}:holiday:{country}:{d.isoformat()}", due,
                                 None, acc.id, {"holiday": name, "holiday_local": local, "date": d,
                                                "country": country},
                                 f"{name} ({d.isoformat()}, {country}) for account {acc.id}")


def _survey_occurrence(rule: Rule, r: Any, facts: _Facts | None) -> Occurrence | None:
    t = rule.trigger
    resp = r.response
    if t.get("survey") is not None and resp.kind.value != t.get("survey"):
        return None
    if resp.score >= int(t.get("threshold")):
        return None
    acc = resp.account_id
    if acc is None and facts is not None:
        d = facts.deal(resp.deal_id)
        acc = d.account_id if d else None
    return Occurrence("survey_below", f"response:{resp.id}", resp.at, resp.deal_id, acc,
                      {"kind": resp.kind.value, "score": resp.score, "comment": r.comment,
                       "stage": r.stage, "contact_id": resp.contact_id, "response_id": resp.id},
                      f"{resp.kind.value} answer {resp.id} scored {resp.score}, below {t.get('threshold')}")


def _alert_occurrence(rule: Rule, key: str, doc: Mapping[str, Any], facts: _Facts | None) -> Occurrence | None:
    t = rule.trigger
    raised = doc.get("raised_at")
    if not raised:
        return None
    if t.get("rule") is not None and doc.get("rule") != t.get("rule"):
        return None
    sev = t.get("severity")
    if sev is not None and doc.get("severity") in _SEVERITY and _SEVERITY.index(doc["severity"]) < _SEVERITY.index(sev):
        return None
    subject, sid = doc.get("subject", "deal"), doc.get("subject_id", "")
    deal_id = sid if subject == "deal" else None
    acc = sid if subject != "deal" else None
    if acc is None and facts is not None:
        d = facts.deal(deal_id)
        acc = d.account_id if d else None
    return Occurrence("risk_alert", f"risk:{key}:{raised}", instant(raised), deal_id, acc,
                      {"rule": doc.get("rule"), "severity": doc.get("severity"),
                       "score": doc.get("score"), "subject": subject, "subject_id": sid,
                       "message": doc.get("message", "")},
                      f"risk alert {doc.get('rule')} raised for {subject} {sid}")


def _milestone_occurrence(rule: Rule, goal_id: str, milestone: str, at: datetime, goal: Any) -> Occurrence | None:
    t = rule.trigger
    if t.get("goal") is not None and t.get("goal") != goal_id:
        return None
    if t.get("milestone") is not None and Decimal(str(t.get("milestone"))) != Decimal(milestone):
        return None
    return Occurrence("goal_milestone", f"goal:{goal_id}:{milestone}", at, None, None,
                      {"goal": goal_id, "milestone": milestone, "goal_obj": goal},
                      f"goal {goal_id} reached {Decimal(milestone) * 100:.0f}%")


# ----------------------------------------------------------------------------------------------
# The engine
# ----------------------------------------------------------------------------------------------


def _fire_key(rule: Rule, occ: Occurrence) -> str:
    return f"{rule.id}|{occ.key}"


def _short(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class RuleEngine:
    """Runs a :class:`~salesprocess.automation.RuleSet`.

    :param rules: a rule set, or rules (then ``tz`` and ``calendar`` apply).
    :param advance: how ``move_stage`` moves deals: ``advance(process, deal, to, *, at, actor,
        reason, source, activities)``; the default is the stage machine itself
        (:meth:`Process.advance`); :meth:`SalesProcess.run_rules` passes
        :meth:`SalesProcess.advance` so plugin vetoes apply.
    """

    def __init__(
        self,
        rules: RuleSet | Sequence[Rule],
        *,
        tz: tzinfo | None = None,
        calendar: BusinessCalendar | None = None,
        advance: Advance | None = None,
    ) -> None:
        rs = rules if isinstance(rules, RuleSet) else RuleSet(tuple(rules))
        self.ruleset = rs
        self.rules = tuple(r for r in rs.rules if r.enabled)
        self.tz: tzinfo = tz or rs.tz
        self.calendar = calendar or rs.calendar
        self._advance = advance

    # --- finding occurrences ----------------------------------------------------------------------
    def _occurrences(self, rule: Rule, facts: _Facts, asof: datetime) -> Iterator[Occurrence]:
        kind = rule.trigger.kind
        if kind in ("deal_created", "stage_entered", "stage_left", "field_changed"):
            for d in facts.deals:
                yield from _deal_event_occurrences(rule, d, asof)
        elif kind == "no_activity":
            for d in facts.deals:
                yield from _idle_occurrences(rule, d, facts, asof, self.tz, self.calendar)
        elif kind == "date":
            yield from _date_occurrences(rule, facts, asof, self.tz)
        elif kind == "anniversary":
            yield from _anniversary_occurrences(rule, facts, asof, self.tz)
        elif kind == "holiday":
            yield from _holiday_occurrences(rule, facts, asof, self.tz)
        elif kind == "survey_below":
            from ..feedback import responses

            for r in responses(facts.store, asof=asof):
                o = _survey_occurrence(rule, r, facts)
                if o is not None:
                    yield o
        elif kind == "risk_alert":
            for key, doc in facts.store.documents(_RISK_ALERT_KIND):
                o = _alert_occurrence(rule, key, doc, facts)
                if o is not None and o.at <= asof:
                    yield o
        elif kind == "goal_milestone":
            from ..goals import load_goal

            for gid, doc in facts.store.documents(_GOAL_MILESTONE_KIND):
                try:
                    goal = load_goal(facts.store, gid)
                except SalesProcessError:
                    goal = None
                for m in doc.get("reached", ()):
                    o = _milestone_occurrence(rule, gid, str(m), asof, goal)
                    if o is not None:
                        yield o

    def occurrences(self, store: Any, asof: datetime) -> list[tuple[Rule, Occurrence, bool]]:
        """Every occurrence of every enabled rule up to ``asof`` (active and not too late), with
        whether the rule already fired for it; ordered by instant, rule order, key."""
        require_aware(asof, "asof")
        facts = _Facts(store, asof)
        fired = {k for k, _ in store.documents(FIRE_KIND)}
        return [(r, o, _fire_key(r, o) in fired) for r, o, _late in self._due(facts, asof) if not _late]

    def _due(self, facts: _Facts, asof: datetime) -> list[tuple[Rule, Occurrence, bool]]:
        out: list[tuple[int, Rule, Occurrence, bool]] = []
        for idx, rule in enumerate(self.rules):
            for o in self._occurrences(rule, facts, asof):
                if rule.active_from is not None and o.at < rule.active_from:
                    continue
                late = rule.max_late_days is not None and asof - o.at > timedelta(days=rule.max_late_days)
                out.append((idx, rule, o, late))
        out.sort(key=lambda t: (t[2].at, t[0], t[2].key))
        return [(r, o, late) for _, r, o, late in out]

    # --- running ------------------------------------------------------------------------------------
    def run_due(
        self,
        asof: datetime,
        store: Any,
        notifiers: Mapping[str, Notifier] | None = None,
        *,
        dry_run: bool = False,
        advance: Advance | None = None,
    ) -> RunReport:
        """Fire every rule for each occurrence up to ``asof`` it has not fired for yet (event
        triggers included: they catch up on what happened since the last run). Messages still
        in the outbox from earlier runs go out first. With ``dry_run`` nothing is written or
        sent; the report lists what would fire and why."""
        require_aware(asof, "asof")
        notifiers = dict(notifiers or {})
        sent, failures = (0, []) if dry_run else self.flush(store, notifiers)
        facts = _Facts(store, asof)
        fired_keys = {k for k, _ in store.documents(FIRE_KIND)}
        return self._run(self._due(facts, asof), facts, store, notifiers, asof, dry_run,
                         advance, fired_keys, sent, failures)

    def handle(
        self,
        store: Any,
        occurrences: Iterable[tuple[Rule, Occurrence]],
        notifiers: Mapping[str, Notifier] | None = None,
        *,
        at: datetime,
        dry_run: bool = False,
        advance: Advance | None = None,
    ) -> RunReport:
        """Fire rules for occurrences delivered by hooks (see :class:`AutomationPlugin`); the same
        fire records keep them from firing again in :meth:`run_due`."""
        require_aware(at, "at")
        facts = _Facts(store, at)
        fired_keys = {k for k, _ in store.documents(FIRE_KIND)}
        items = [(r, o, False) for r, o in occurrences]
        return self._run(items, facts, store, dict(notifiers or {}), at, dry_run, advance,
                         fired_keys, 0, [])

    def deal_occurrences(self, deal: Deal, new_events: int, at: datetime) -> list[tuple[Rule, Occurrence]]:
        """Occurrences of the deal-event rules in the last ``new_events`` events of ``deal``."""
        start = deal.version - new_events
        out: list[tuple[Rule, Occurrence]] = []
        for r in self.rules:
            if r.trigger.kind in ("deal_created", "stage_entered", "stage_left", "field_changed"):
                out.extend((r, o) for o in _deal_event_occurrences(r, deal, at, start))
        return out

    def alert_occurrences(self, alert: Any) -> list[tuple[Rule, Occurrence]]:
        doc = {"rule": alert.rule, "subject": alert.subject, "subject_id": alert.subject_id,
               "severity": alert.severity, "score": str(alert.score), "raised_at": iso(alert.at),
               "message": alert.message}
        out = []
        for r in self.rules:
            if r.trigger.kind == "risk_alert":
                o = _alert_occurrence(r, alert.key, doc, None)
                if o is not None:
                    out.append((r, o))
        return out

    def milestone_occurrences(self, goal: Any, milestone: Decimal, at: datetime) -> list[tuple[Rule, Occurrence]]:
        out = []
        for r in self.rules:
            if r.trigger.kind == "goal_milestone":
                o = _milestone_occurrence(r, goal.id, str(milestone), at, goal)
                if o is not None:
                    out.append((r, o))
        return out

    def response_occurrences(self, linked: Any) -> list[tuple[Rule, Occurrence]]:
        out = []
        for r in self.rules:
            if r.trigger.kind == "survey_below":
                o = _survey_occurrence(r, linked, None)
                if o is not None:
                    out.append((r, o))
        return out

    def _run(
        self, items: Sequence[tuple[Rule, Occurrence, bool]], facts: _Facts, store: Any,
        notifiers: Mapping[str, Notifier], asof: datetime, dry_run: bool, advance: Advance | None,
        fired_keys: set[str], sent: int, failures: list[tuple[str, str]],
    ) -> RunReport:
        fired: list[Firing] = []
        already = not_matching = late = 0
        saved: list[tuple[Deal, tuple[Any, ...]]] = []
        adv = advance or self._advance
        for rule, occ, is_late in items:
            key = _fire_key(rule, occ)
            if key in fired_keys:
                already += 1
                continue
            if is_late:
                late += 1
                continue
            ctx = Context(rule, occ, facts, asof)
            ok, notes = _check(rule, ctx)
            if not ok:
                not_matching += 1
                continue
            why = occ.why + (f"; conditions: {', '.join(notes)}" if notes else "")
            if dry_run:
                msgs = tuple(m for i, a in enumerate(rule.actions) if a.kind == "notify"
                             for m in self._messages(rule, a, i, ctx, key))
                fired.append(Firing(rule.id, occ, key, why, tuple(
                    Outcome(a.kind, "planned", _describe(a)) for a in rule.actions), msgs))
                fired_keys.add(key)
                continue
            firing = self._fire(rule, occ, ctx, key, why, store, facts, asof, adv, saved)
            if firing is None:
                already += 1
                continue
            fired_keys.add(key)
            fired.append(firing)
            s, f = self._send(store, notifiers, firing.messages)
            sent += s
            failures.extend(f)
        return RunReport(asof, dry_run, tuple(fired), already, not_matching, late, sent,
                         tuple(failures), tuple(saved))

    # --- actions --------------------------------------------------------------------------------------
    def _fire(
        self, rule: Rule, occ: Occurrence, ctx: Context, key: str, why: str, store: Any,
        facts: _Facts, asof: datetime, adv: Advance | None, saved: list[tuple[Deal, tuple[Any, ...]]],
    ) -> Firing | None:
        outcomes: list[Outcome] = []
        messages: list[tuple[str, Message]] = []
        local_saved: list[tuple[Deal, tuple[Any, ...]]] = []
        with store.transaction():
            if store.get_document(FIRE_KIND, key) is not None:
                return None
            for i, action in enumerate(rule.actions):
                try:
                    if action.kind == "notify":
                        msgs = self._messages(rule, action, i, ctx, key)
                        messages.extend(msgs)
                        outcomes.append(Outcome("notify", "done" if msgs else "skipped",
                                                f"{len(msgs)} message(s) via {action.get('via')}"))
                    else:
                        outcomes.append(self._act(rule, action, i, ctx, key, store, facts, asof, adv, local_saved))
                except SalesProcessError as e:
                    outcomes.append(Outcome(action.kind, "failed", str(e)))
            doc = {"rule": rule.id, "occurrence": occ.key, "trigger": occ.trigger, "at": iso(occ.at),
                   "fired_at": iso(asof), "deal_id": occ.deal_id, "account_id": occ.account_id,
                   "why": why, "outcomes": [o.as_dict() for o in outcomes],
                   "messages": [m.id for _, m in messages]}
            store.put_document(FIRE_KIND, key, doc)
            for via, m in messages:
                store.put_document(OUTBOX_KIND, m.id, {"via": via, "fire": key, "message": m.to_dict()})
        saved.extend(local_saved)
        return Firing(rule.id, occ, key, why, tuple(outcomes), tuple(messages))

    def _recipients(self, spec: str, ctx: Context) -> list[Recipient]:
        f = ctx.facts

        def rep(rid: str | None) -> list[Recipient]:
            r = f.reps.get(rid) if rid else None
            return [Recipient(r.email, r.name, r.language, r.id)] if r else []

        deal = ctx.current_deal or ctx.deal
        if spec == "owner":
            return rep(ctx.rep.id if ctx.rep else None)
        if spec == "manager":
            return rep(ctx.rep.manager_id if ctx.rep else None)
        if spec == "account_owner":
            return rep(ctx.account.owner_id if ctx.account else None)
        if spec == "contacts":
            if deal is not None and deal.contact_ids:
                cs = [f.contacts[c] for c in deal.contact_ids if c in f.contacts]
            elif ctx.account is not None:
                cs = [c for c in f.contacts.values() if c.account_id == ctx.account.id]
            else:
                cs = []
            cid = ctx.event.get("contact_id")
            if cid and cid in f.contacts:
                cs = [f.contacts[cid]]
            return [Recipient(c.email, c.name, c.language, c.id) for c in sorted(cs, key=lambda c: c.id)]
        if "@" in spec:
            return [Recipient(spec)]
        if spec in f.reps:
            return rep(spec)
        if spec in f.contacts:
            c = f.contacts[spec]
            return [Recipient(c.email, c.name, c.language, c.id)]
        return [Recipient(spec)]

    def _messages(self, rule: Rule, action: Action, index: int, ctx: Context, key: str) -> list[tuple[str, Message]]:
        seen: set[tuple[str | None, str | None]] = set()
        out = []
        subject: Text = action.get("subject")
        body: Text = action.get("body")
        data = {"rule": rule.id, "trigger": ctx.occurrence.trigger, "occurrence": ctx.occurrence.key,
                "at": iso(ctx.occurrence.at), "deal_id": ctx.occurrence.deal_id,
                "account_id": ctx.occurrence.account_id or (ctx.account.id if ctx.account else None),
                "why": ctx.occurrence.why}
        for spec in action.get("to"):
            for r in self._recipients(spec, ctx):
                k = (r.address, r.id)
                if k in seen:
                    continue
                seen.add(k)
                tc = ctx.template_context(r)
                mid = f"{key}|{index}|{r.id or r.address}"
                out.append((str(action.get("via")), Message(
                    mid, r, subject.render(r.language, tc), body.render(r.language, tc), r.language,
                    data)))
        return out

    def _assignee(self, spec: str, ctx: Context) -> str | None:
        if spec == "owner":
            return ctx.rep.id if ctx.rep else None
        if spec == "manager":
            return ctx.rep.manager_id if ctx.rep else None
        if spec == "account_owner":
            return ctx.account.owner_id if ctx.account else None
        return spec

    def _act(
        self, rule: Rule, action: Action, index: int, ctx: Context, key: str, store: Any,
        facts: _Facts, asof: datetime, adv: Advance | None, saved: list[tuple[Deal, tuple[Any, ...]]],
    ) -> Outcome:
        from .. import activities as acts

        kind = action.kind
        actor = f"rule:{rule.id}"
        deal: Deal | None = None
        if ctx.occurrence.deal_id is not None:
            try:
                deal = store.get_deal(ctx.occurrence.deal_id)
            except NotFoundError:
                deal = None
        if kind == "create_task":
            owner = self._assignee(str(action.get("assignee")), ctx)
            lang = facts.reps[owner].language if owner in facts.reps else None
            due = acts.due_after(asof, int(action.get("due_days")), calendar=self.calendar, tz=self.tz)
            title: Text = action.get("title")
            a = Activity(f"auto:{_short(key)}:{index}", ActivityKind(action.get("activity")), due,
                         title.render(lang, ctx.template_context()), ActivityStatus.PLANNED,
                         deal.id if deal else None,
                         (deal.account_id if deal else None) or (ctx.account.id if ctx.account else None),
                         None, owner)
            written = acts.save_tasks(store, [acts.PlannedTask(a, due, f"rule:{rule.id}")])
            return Outcome(kind, "done" if written else "skipped", f"task {a.id} for {owner or 'nobody'} due {due.isoformat()}")
        if kind == "python":
            detail = action.get("func")(ctx)
            return Outcome(kind, "done", "" if detail is None else str(detail))
        if kind == "create_deal":
            return self._create_deal(rule, action, ctx, key, deal, store, facts, asof, actor, saved)
        if deal is None:
            return Outcome(kind, "skipped", "no deal to act on")
        if deal.updated_at > asof:
            return Outcome(kind, "failed", f"deal {deal.id} changed after {asof.isoformat()}")
        process = facts.process(deal)
        if kind == "set_field":
            new = _set_field(deal, str(action.get("field")), action.get("value"), asof, actor)
            if new is deal:
                return Outcome(kind, "skipped", f"{action.get('field')} already has that value")
            store.save_deal(new, expected_version=deal.version)
            saved.append((new, new.events_since(deal)))
            return Outcome(kind, "done", f"{action.get('field')} = {action.get('value')!r}")
        if kind == "move_stage":
            to = str(action.get("to"))
            deal_acts = list(store.all(Activity, deal_id=deal.id))
            move = adv or (lambda p, d, t, **kw: p.advance(d, t, **kw))
            try:
                new = move(process, deal, to, at=asof, actor=actor, reason=action.get("reason"),
                           source=EventSource.RULE, activities=deal_acts)
            except TransitionNotAllowed as e:
                return Outcome(kind, "failed", "; ".join(p.message for p in e.unmet) or str(e))
            store.save_deal(new, expected_version=deal.version)
            saved.append((new, new.events_since(deal)))
            return Outcome(kind, "done", f"moved {deal.id} from {deal.stage} to {to}")
        if kind == "start_playbook":
            stage = action.get("stage") or deal.stage
            tasks = acts.start_playbook(store, process, deal, at=asof, stage=stage, calendar=self.calendar,
                                        tz=self.tz, source=f"rule:{rule.id}")
            return Outcome(kind, "done" if tasks else "skipped", f"{len(tasks)} task(s) for stage {stage}")
        raise AssertionError(kind)  # pragma: no cover - validated at load

    def _create_deal(
        self, rule: Rule, action: Action, ctx: Context, key: str, deal: Deal | None, store: Any,
        facts: _Facts, asof: datetime, actor: str, saved: list[tuple[Deal, tuple[Any, ...]]],
    ) -> Outcome:
        from .. import lifecycle

        new_id = f"auto-{_short(key)}"
        try:
            store.get_deal(new_id)
            return Outcome("create_deal", "skipped", f"deal {new_id} exists")
        except NotFoundError:
            pass
        if action.get("template") == "renewal":
            if deal is None or deal.status is not DealStatus.WON:
                return Outcome("create_deal", "skipped", "a renewal needs a won deal")
            new = lifecycle.renewal_deal(facts.process(deal), deal, at=asof, actor=actor, id=new_id,
                                         term_months=int(action.get("term_months")))
        else:
            acc = ctx.account
            if acc is None:
                return Outcome("create_deal", "skipped", "an upsell needs an account")
            sugg = lifecycle.next_best_products(facts.deals, acc.id, asof=asof, accounts=facts.accounts.values(), limit=1)
            if not sugg:
                return Outcome("create_deal", "skipped", f"no product to suggest to {acc.id}")
            mine = [d for d in facts.deals if d.account_id == acc.id]
            if not mine:
                return Outcome("create_deal", "skipped", f"account {acc.id} has no deal to take a process from")
            latest = max(mine, key=lambda d: (d.created_at, d.id))
            try:
                product: Product | str = store.get(Product, sugg[0].product_id)
            except NotFoundError:
                product = sugg[0].product_id
            new = lifecycle.upsell_deal(facts.process(latest), acc.id, product, at=asof, actor=actor,
                                        id=new_id, owner_id=acc.owner_id or latest.owner_id,
                                        reason=f"bought by similar customers: {', '.join(sugg[0].because[:3])}")
        store.save_deal(new, expected_version=None)
        saved.append((new, new.events))
        return Outcome("create_deal", "done", f"deal {new.id} ({action.get('template')})")

    # --- sending -------------------------------------------------------------------------------------
    def _send(self, store: Any, notifiers: Mapping[str, Notifier],
              messages: Sequence[tuple[str, Message]]) -> tuple[int, list[tuple[str, str]]]:
        sent = 0
        failures: list[tuple[str, str]] = []
        for via, m in messages:
            n = notifiers.get(via)
            if n is None:
                failures.append((m.id, f"no notifier named {via!r}; kept in the outbox"))
                continue
            try:
                n.send(m)
            except RemoteValidationError as e:  # a retry cannot fix it
                failures.append((m.id, f"dropped: {e}"))
                store.delete_document(OUTBOX_KIND, m.id)
                continue
            except AdapterError as e:
                failures.append((m.id, f"kept for retry: {e}"))
                continue
            store.delete_document(OUTBOX_KIND, m.id)
            sent += 1
        return sent, failures

    def flush(self, store: Any, notifiers: Mapping[str, Notifier]) -> tuple[int, list[tuple[str, str]]]:
        """Send the messages still in the outbox; returns (sent, failures)."""
        pending = [(d["via"], Message.from_dict(d["message"])) for _, d in store.documents(OUTBOX_KIND)]
        return self._send(store, notifiers, pending)

    def pending(self, store: Any) -> list[tuple[str, Message]]:
        """Messages waiting in the outbox."""
        return [(d["via"], Message.from_dict(d["message"])) for _, d in store.documents(OUTBOX_KIND)]


def _describe(a: Action) -> str:
    k = a.kind
    if k == "create_task":
        return f"create a task for {a.get('assignee')} due in {a.get('due_days')} business day(s)"
    if k == "notify":
        return f"notify {', '.join(a.get('to'))} via {a.get('via')}"
    if k == "set_field":
        return f"set {a.get('field')} to {a.get('value')!r}"
    if k == "move_stage":
        return f"move the deal to {a.get('to')}"
    if k == "start_playbook":
        return f"start the playbook of {a.get('stage') or 'the deal stage'}"
    if k == "create_deal":
        return f"create a {a.get('template')} deal"
    return "call a Python function"


def _money(v: Any, deal: Deal) -> Money | None:
    if v is None or isinstance(v, Money):
        return v
    s = str(v).strip()
    if " " in s:
        amt, _, cur = s.partition(" ")
        return Money(amt, cur.strip())
    currency = deal.amount.currency if deal.amount is not None else None
    if currency is None:
        raise DomainError(f"set_field amount {s!r}: give a currency (\"{s} CNY\")")
    return Money(s, currency)


def _set_field(deal: Deal, field: str, value: Any, at: datetime, actor: str) -> Deal:
    src = EventSource.RULE
    if field == "amount":
        return deal.with_amount(_money(value, deal), at=at, actor=actor, source=src)
    if field == "close_date":
        return deal.with_close_date(_as_date(value), at=at, actor=actor, source=src)
    if field == "owner_id":
        return deal.with_owner(None if value is None else str(value), at=at, actor=actor, source=src)
    if field == "probability":
        return deal.with_probability(None if value is None else Decimal(str(value)), at=at, actor=actor, source=src)
    if field == "forecast_category":
        return deal.with_forecast_category(None if value is None else ForecastCategory(str(value)),
                                           at=at, actor=actor, source=src)
    if field.startswith("checklist."):
        return deal.with_checklist_item(field[10:], bool(value), at=at, actor=actor, source=src)
    if field.startswith("custom."):
        return deal.with_details(at=at, actor=actor, source=src, custom=deal.custom.set(field[7:], value))
    return deal.with_details(at=at, actor=actor, source=src, **{field: value})
