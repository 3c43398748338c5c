"""Alert rules over a risk report, with state that makes each alert fire once.

:func:`evaluate_alerts` is pure: given a :class:`~salesprocess.risk.engine.RiskReport`, the rules
and the previous alert state, it returns the alerts **raised** now (the condition holds and did
not hold at the previous run), the ones still active (not raised again), the ones that **cleared**
(the condition stopped holding, or the subject is no longer assessed), and the new state.
A cleared alert is raised again when its condition returns.

The state is one JSON-safe document per (rule, subject) under the store document kind
``risk_alert``; :meth:`salesprocess.SalesProcess.run_risk_alerts` loads it, evaluates, saves
the changes in one transaction and only then fires the ``salesprocess_risk_alert`` hook once per
raised alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from salesprocess.codec import iso
from salesprocess.periods import require_aware

from .config import GRADES, SEVERITIES, AlertRule
from .engine import CustomerRisk, DealRisk, RiskReport

__all__ = ["ALERT_KIND", "AlertRun", "RiskAlert", "evaluate_alerts"]

ALERT_KIND = "risk_alert"

_ROLES = ("owner", "manager", "team_manager", "account_owner")


@attrs.frozen
class RiskAlert:
    """One alert: which rule, about what, how severe, why, and whom to tell."""

    key: str
    rule: str
    subject: str
    subject_id: str
    severity: str
    score: Decimal
    level: str
    message: str
    recipients: tuple[str, ...]
    at: datetime
    signals: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "rule": self.rule, "subject": self.subject,
                "subject_id": self.subject_id, "severity": self.severity, "score": self.score,
                "level": self.level, "message": self.message, "recipients": list(self.recipients),
                "at": self.at.isoformat(), "signals": list(self.signals)}


@attrs.frozen
class AlertRun:
    raised: tuple[RiskAlert, ...]
    active: tuple[RiskAlert, ...]
    """Alerts whose condition still holds and that were raised at an earlier run."""
    cleared: tuple[str, ...]
    changed: dict[str, dict[str, Any]]
    """The state documents to write (new, refreshed or cleared)."""


def _holds(rule: AlertRule, r: DealRisk | CustomerRisk) -> bool:
    if rule.min_score is not None and r.score < rule.min_score:
        return False
    if rule.signal is not None:
        f = next((x for x in r.findings if x.signal == rule.signal), None)
        if f is None or f.severity <= 0 or f.severity < rule.min_severity:
            return False
    if isinstance(r, CustomerRisk):
        if rule.over_limit is not None and r.over_limit != rule.over_limit:
            return False
        if rule.min_grade is not None:
            if r.credit is None or GRADES.index(r.credit.grade) < GRADES.index(rule.min_grade):
                return False
    return True


def _recipients(rule: AlertRule, r: DealRisk | CustomerRisk) -> tuple[str, ...]:
    roles = dict(r.recipients)
    out: list[str] = []
    for n in rule.notify:
        who = roles.get(n) if n in _ROLES else n
        if who and who not in out:
            out.append(who)
    return tuple(out)


def _message(rule: AlertRule, r: DealRisk | CustomerRisk) -> str:
    what = (f"deal {r.deal_id} ({r.name})" if isinstance(r, DealRisk)
            else f"customer {r.account_id} ({r.name})")
    lines = r.explain()
    why = "; ".join(lines[:3]) if lines else "no contributing signal"
    head = rule.description or rule.name
    return f"{head}: {what} scores {r.score} ({r.level}). {why}"


def evaluate_alerts(
    report: RiskReport,
    rules: Sequence[AlertRule],
    previous: Mapping[str, Mapping[str, Any]],
    *,
    at: datetime,
    clear_missing: bool = True,
) -> AlertRun:
    """Raise, keep and clear alerts (see the module documentation).

    With ``clear_missing`` (the default), an active alert whose subject is not in the report is
    cleared: pass ``False`` when the report covers only part of the pipeline.
    """
    require_aware(at, "at")
    raised: list[RiskAlert] = []
    active: list[RiskAlert] = []
    changed: dict[str, dict[str, Any]] = {}
    holding: set[str] = set()
    subjects: dict[str, Sequence[DealRisk | CustomerRisk]] = {
        "deal": report.deals, "customer": report.customers,
    }
    for rule in rules:
        for r in subjects[rule.subject]:
            if not _holds(rule, r):
                continue
            sid = r.deal_id if isinstance(r, DealRisk) else r.account_id
            key = f"{rule.name}|{rule.subject}|{sid}"
            holding.add(key)
            alert = RiskAlert(key, rule.name, rule.subject, sid, rule.severity, r.score, r.level,
                              _message(rule, r), _recipients(rule, r), at,
                              tuple(c.signal for c in r.contributions))
            prev = previous.get(key)
            doc: dict[str, Any] = {
                "rule": rule.name, "subject": rule.subject, "subject_id": sid, "active": True,
                "severity": rule.severity, "score": str(r.score), "last_seen": iso(at),
                "raised_at": iso(at), "cleared_at": None,
                "times_raised": int(prev.get("times_raised", 0)) if prev else 0,
            }
            if prev is not None and prev.get("active"):
                doc["raised_at"] = prev.get("raised_at", iso(at))
                active.append(alert)
            else:
                doc["times_raised"] += 1
                raised.append(alert)
            changed[key] = doc
    cleared: list[str] = []
    assessed = {"deal": {d.deal_id for d in report.deals},
                "customer": {c.account_id for c in report.customers}}
    for key, prev in sorted(previous.items()):
        if key in holding or not prev.get("active"):
            continue
        subject, sid = prev.get("subject", "deal"), prev.get("subject_id", "")
        if not clear_missing and sid not in assessed.get(subject, set()):
            continue
        doc = dict(prev)
        doc["active"] = False
        doc["cleared_at"] = iso(at)
        changed[key] = doc
        cleared.append(key)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    raised.sort(key=lambda a: (-order[a.severity], -a.score, a.key))
    return AlertRun(tuple(raised), tuple(active), tuple(cleared), changed)
