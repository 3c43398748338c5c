"""Assess risk: one explainable score per open deal and per customer.

:func:`assess` reads the deals as known at ``asof``, computes every enabled deal signal (built-in
and plugin) for each open deal, and combines them with the configured points into a 0–100 score
(:func:`~salesprocess.risk.points.combine`: contributions add up to the score) and a level
(``none``, ``low``, ``medium``, ``high``, ``critical``). For customers — accounts with open deals or
with credit or churn inputs — it combines the credit score, the churn signals, the riskiest open
deal and plugin customer signals the same way.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

import attrs

from salesprocess.kpi import Dataset, View
from salesprocess.model import Account, ActivityStatus, Deal, DealStatus
from salesprocess.money import Money
from salesprocess.periods import BusinessCalendar, require_aware

from .churn import ChurnInputs, churn_findings
from .config import LEVELS, RiskConfig, SignalConfig, SignalSettings
from .credit import CreditAssessment, CreditInputs, assess_credit
from .facts import DealFacts, FactsBuilder, Workdays
from .points import Contribution, combine, score_of
from .signals import (
    BUILTIN_DEAL_SIGNALS,
    SEVERITY_ONLY,
    RiskContext,
    RiskFinding,
    SignalRegistry,
    call_plugin,
)

__all__ = ["CustomerRisk", "DealRisk", "RiskEngine", "RiskReport", "assess"]


class DealRisk:
    """The risk of one open deal: score, level, the findings and each signal's contribution.

    The findings' sentences are built when :attr:`findings` is first read (scoring many deals
    computes only the severities and the score).
    """

    __slots__ = ("_contributions", "_findings", "_lazy", "_parts", "account_id", "amount",
                 "deal_id", "level", "name", "owner_id", "recipients", "score", "stage")

    def __init__(
        self,
        deal_id: str,
        name: str,
        stage: str,
        amount: Money | None,
        owner_id: str | None,
        account_id: str | None,
        score: Decimal,
        level: str,
        findings: tuple[RiskFinding, ...] | None,
        contributions: tuple[Contribution, ...] | None,
        recipients: tuple[tuple[str, str], ...] = (),
        lazy: tuple[Any, ...] | None = None,
        parts: Sequence[tuple[str, Decimal, float]] = (),
    ) -> None:
        self.deal_id = deal_id
        self.name = name
        self.stage = stage
        self.amount = amount
        self.owner_id = owner_id
        self.account_id = account_id
        self.score = score
        self.level = level
        self._findings = findings
        self._contributions = contributions
        self._parts = parts
        self.recipients = recipients
        """(role, id) pairs alert rules resolve: owner, manager, team_manager, account_owner."""
        self._lazy = lazy

    @property
    def contributions(self) -> tuple[Contribution, ...]:
        """Each signal's points; they add up exactly to :attr:`score`."""
        if self._contributions is None:
            score, self._contributions = combine(self._parts)
            assert score == self.score
            self._parts = ()
        return self._contributions

    @property
    def findings(self) -> tuple[RiskFinding, ...]:
        if self._findings is None:
            facts, ctx, fired = self._lazy or (None, None, ())
            out = []
            for item in fired:
                if isinstance(item, RiskFinding):
                    out.append(item)
                else:
                    fn, settings = item
                    found = fn(facts, settings, ctx)
                    assert found is not None
                    out.append(found)
            self._findings = tuple(out)
            self._lazy = None
        return self._findings

    def __repr__(self) -> str:
        return f"DealRisk({self.deal_id!r}, score={self.score}, level={self.level!r})"

    def explain(self) -> list[str]:
        """One line per contributing signal: its points and its sentence."""
        by = {f.signal: f for f in self.findings}
        return [f"+{c.points} {c.signal}: {by[c.signal].explanation}" for c in self.contributions
                if c.signal in by]

    def as_dict(self) -> dict[str, Any]:
        return {
            "deal_id": self.deal_id, "name": self.name, "stage": self.stage, "amount": self.amount,
            "owner_id": self.owner_id, "account_id": self.account_id, "score": self.score,
            "level": self.level, "findings": [f.as_dict() for f in self.findings],
            "contributions": [c.as_dict() for c in self.contributions],
        }


@attrs.frozen
class CustomerRisk:
    """The risk of one customer (account)."""

    account_id: str
    name: str
    owner_id: str | None
    score: Decimal
    level: str
    credit: CreditAssessment | None
    findings: tuple[RiskFinding, ...]
    contributions: tuple[Contribution, ...]
    open_deals: int = 0
    recipients: tuple[tuple[str, str], ...] = ()

    @property
    def over_limit(self) -> bool:
        return self.credit is not None and self.credit.over_limit

    def explain(self) -> list[str]:
        by = {f.signal: f for f in self.findings}
        out = []
        for c in self.contributions:
            if c.signal == "credit" and self.credit is not None:
                detail = "; ".join(self.credit.explain()) or "no credit finding"
                out.append(f"+{c.points} credit (score {self.credit.score}, grade "
                           f"{self.credit.grade}): {detail}")
            elif c.signal in by:
                out.append(f"+{c.points} {c.signal}: {by[c.signal].explanation}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id, "name": self.name, "owner_id": self.owner_id,
            "score": self.score, "level": self.level, "open_deals": self.open_deals,
            "over_limit": self.over_limit,
            "credit": self.credit.as_dict() if self.credit else None,
            "findings": [f.as_dict() for f in self.findings],
            "contributions": [c.as_dict() for c in self.contributions],
        }


@attrs.frozen(eq=False)
class RiskReport:
    asof: datetime
    deals: tuple[DealRisk, ...]
    customers: tuple[CustomerRisk, ...]

    def deal(self, deal_id: str) -> DealRisk:
        for d in self.deals:
            if d.deal_id == deal_id:
                return d
        raise KeyError(deal_id)

    def customer(self, account_id: str) -> CustomerRisk:
        for c in self.customers:
            if c.account_id == account_id:
                return c
        raise KeyError(account_id)

    def at_least(self, level: str) -> RiskReport:
        """Only the deals and customers at ``level`` or above."""
        i = LEVELS.index(level)
        return RiskReport(self.asof, tuple(d for d in self.deals if LEVELS.index(d.level) >= i),
                          tuple(c for c in self.customers if LEVELS.index(c.level) >= i))

    def to_json_obj(self) -> dict[str, Any]:
        return {"asof": self.asof.isoformat(), "deals": [d.as_dict() for d in self.deals],
                "customers": [c.as_dict() for c in self.customers]}


class RiskEngine:
    """Scores deals and customers of one view at one instant (see :func:`assess`)."""

    def __init__(
        self,
        view: View,
        asof: datetime,
        *,
        config: RiskConfig | None = None,
        signals: SignalRegistry | None = None,
        tz: tzinfo = UTC,
        calendar: BusinessCalendar | None = None,
        workdays: Workdays | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> None:
        require_aware(asof, "asof")
        self.view = view
        self.asof = asof
        self.tz = tz
        self.config = config or RiskConfig.default()
        self.signals = signals
        self.builder = FactsBuilder(view, asof, tz=tz, calendar=calendar, workdays=workdays)
        self.inputs = inputs or {}
        self._plan: dict[str, list[tuple[str, Any, SignalSettings, bool]]] = {}
        self._ctx = RiskContext(asof, tz, view, self.builder, inputs=self.inputs)
        self._who: dict[str | None, tuple[tuple[str, str], ...]] = {}
        self._who_acc: dict[str | None, tuple[tuple[str, str], ...]] = {}
        self._levels = tuple(reversed(self.config.levels))
        self._plugins = signals.plugins("deal") if signals is not None else []
        self._cplugins = signals.plugins("customer") if signals is not None else []

    def _stage_plan(self, stage: str) -> list[tuple[str, Any, SignalSettings, bool]]:
        plan = self._plan.get(stage)
        if plan is None:
            plan = []
            for name, cfg in self.config.deal:
                s = cfg.for_stage(stage)
                fn = BUILTIN_DEAL_SIGNALS.get(name)
                if fn is not None and s.enabled:
                    plan.append((name, (fn[0], SEVERITY_ONLY[name]), s, False))
            for spec in self._plugins:
                pcfg = self.config.deal_signal(spec.name)
                s = pcfg.for_stage(stage) if pcfg else SignalSettings(points=self.config.plugin_points)
                if s.enabled:
                    plan.append((spec.name, spec, s, True))
            self._plan[stage] = plan
        return plan

    def _recipients(self, owner: str | None, account_id: str | None) -> tuple[tuple[str, str], ...]:
        a = self._who.get(owner)
        if a is None:
            a = self._who[owner] = self._resolve(owner, None)
        b = self._who_acc.get(account_id)
        if b is None:
            b = self._who_acc[account_id] = self._resolve(None, account_id)
        return a + b if b else a

    def _resolve(self, owner: str | None, account_id: str | None) -> tuple[tuple[str, str], ...]:
        v = self.view
        out: list[tuple[str, str]] = []
        if owner:
            out.append(("owner", owner))
            rep = v.reps.get(owner)
            team = v.teams.get(rep.team_id) if rep is not None and rep.team_id else None
            mgr = (rep.manager_id if rep is not None and rep.manager_id else
                   (team.manager_id if team is not None else None))
            if mgr:
                out.append(("manager", mgr))
            if team is not None and team.manager_id:
                out.append(("team_manager", team.manager_id))
        acc = v.accounts.get(account_id) if account_id else None
        if acc is not None and acc.owner_id:
            out.append(("account_owner", acc.owner_id))
        return tuple(out)

    def facts(self, deal: Deal) -> DealFacts:
        return self.builder.facts(deal)

    def deal_risk(self, deal: Deal) -> DealRisk:
        f = self.builder.facts(deal)
        ctx = self._ctx
        ctx.facts = f
        parts: list[tuple[str, Decimal, float]] = []
        fired: list[Any] = []
        plan = self._plan.get(deal.stage)
        if plan is None:
            plan = self._stage_plan(deal.stage)
        for name, fn, s, plugin in plan:
            if plugin:
                ctx.settings = s
                r = call_plugin(fn, deal, ctx)
                if r is not None:
                    fired.append(r)
                    parts.append((name, s.points, float(r.severity)))
            else:
                sev = fn[1](f, s, ctx)
                if sev > 0:
                    fired.append((fn[0], s))
                    parts.append((name, s.points, sev))
        score = score_of(parts)
        level = "none"
        for lv, lo in self._levels:
            if score >= lo:
                level = lv
                break
        return DealRisk(deal.id, deal.name, deal.stage, deal.amount, deal.owner_id,
                        deal.account_id, score, level, None, None,
                        self._recipients(deal.owner_id, deal.account_id), (f, ctx, tuple(fired)),
                        parts)

    def deal_risks(self, deals: Iterable[Deal] | None = None) -> list[DealRisk]:
        """Score many deals (default: the open deals of the view).

        Python's cyclic garbage collector is paused while the results are built: they hold no
        reference cycles, and with a large dataset in memory its full collections would double
        the time. It is re-enabled afterwards (if it was enabled).
        """
        src = deals if deals is not None else (d for d in self.view.deals if d.status is DealStatus.OPEN)
        was = gc.isenabled()
        gc.disable()
        try:
            return [self.deal_risk(d) for d in src]
        finally:
            if was:
                gc.enable()

    def customer_risks(
        self,
        deal_risks: Sequence[DealRisk],
        *,
        credit: CreditInputs | None = None,
        churn: ChurnInputs | None = None,
        accounts: Iterable[str] | None = None,
    ) -> list[CustomerRisk]:
        v = self.view
        open_deals: dict[str, list[Deal]] = {}
        for d in v.deals:
            if d.status is DealStatus.OPEN and d.account_id:
                open_deals.setdefault(d.account_id, []).append(d)
        worst: dict[str, Decimal] = {}
        for r in deal_risks:
            if r.account_id:
                worst[r.account_id] = max(worst.get(r.account_id, Decimal(0)), r.score)
        if accounts is None:
            ids = set(open_deals)
            if credit is not None:
                ids |= {i.account_id for i in credit.invoices} | {o.account_id for o in credit.orders}
                ids |= {k for k, _ in credit.limits}
            if churn is not None:
                ids |= churn.accounts()
            accounts = sorted(ids)
        last_act: dict[str, datetime] = {}
        deal_acc = {d.id: d.account_id for d in v.deals}
        for a in v.data.activities:
            if a.status is not ActivityStatus.DONE or a.at > self.asof:
                continue
            acc_id = a.account_id or (deal_acc.get(a.deal_id) if a.deal_id else None)
            if acc_id and (acc_id not in last_act or a.at > last_act[acc_id]):
                last_act[acc_id] = a.at
        ccfg: dict[str, SignalConfig] = dict(self.config.customer)
        out = []
        for aid in accounts:
            acc = v.accounts.get(aid) or Account(aid, aid)
            parts: list[tuple[str, Decimal, float]] = []
            findings: list[RiskFinding] = []
            ca = None
            cc = ccfg.get("credit")
            if credit is not None or acc.credit_limit is not None:
                ca = assess_credit(acc, credit or CreditInputs(), open_deals.get(aid, ()),
                                   asof=self.asof, config=self.config.credit, tz=self.tz,
                                   processes=v.processes)
                if cc is not None and cc.base.enabled:
                    sev = float(ca.score) / 100
                    parts.append(("credit", cc.base.points, sev))
                    if sev > 0:
                        text = (f"Credit score {ca.score} (grade {ca.grade})"
                                + (", over its credit limit" if ca.over_limit else "") + ".")
                        findings.append(RiskFinding("credit", Decimal(f"{sev:.4f}"), text))
            for name, sev, fnd in churn_findings(acc, churn or ChurnInputs(), asof=self.asof,
                                                 tz=self.tz, config=ccfg,
                                                 last_activity=last_act.get(aid)):
                parts.append((name, ccfg[name].base.points, sev))
                if fnd is not None:
                    findings.append(fnd)
            od = ccfg.get("open_deal_risk")
            if od is not None and od.base.enabled and aid in worst:
                sev = float(worst[aid]) / 100
                parts.append(("open_deal_risk", od.base.points, sev))
                if sev > 0:
                    findings.append(RiskFinding("open_deal_risk", Decimal(f"{sev:.4f}"),
                                                f"Its riskiest open deal scores {worst[aid]}."))
            for spec in self._cplugins:
                pcfg = ccfg.get(spec.name)
                s = pcfg.base if pcfg else SignalSettings(points=self.config.plugin_points)
                if not s.enabled:
                    continue
                ctx = RiskContext(self.asof, self.tz, v, self.builder, settings=s,
                                  inputs=self.inputs)
                found = call_plugin(spec, acc, ctx)
                if found is not None:
                    findings.append(found)
                    parts.append((spec.name, s.points, float(found.severity)))
            score, contribs = combine(parts)
            out.append(CustomerRisk(aid, acc.name, acc.owner_id, score,
                                    self.config.level_of(score), ca, tuple(findings), contribs,
                                    len(open_deals.get(aid, ())),
                                    self._recipients(acc.owner_id, aid)))
        return out


def assess(
    source: Dataset | Any,
    *,
    asof: datetime,
    config: RiskConfig | None = None,
    signals: SignalRegistry | None = None,
    credit: CreditInputs | None = None,
    churn: ChurnInputs | None = None,
    calendar: BusinessCalendar | None = None,
    tz: tzinfo = UTC,
    customers: bool = True,
    deal_ids: Iterable[str] | None = None,
) -> RiskReport:
    """Score open deals (and customers) as known at ``asof``.

    ``source`` is a store or a :class:`~salesprocess.kpi.Dataset`; ``signals`` carries plugin
    signals (``SalesProcess.risk_signals``); ``credit`` and ``churn`` are the plain-value inputs the
    store does not hold; ``calendar`` gives working days (default Monday–Friday).
    """
    require_aware(asof, "asof")
    data = source if isinstance(source, Dataset) else Dataset.from_store(source)
    view = data.view(asof)
    inputs: dict[str, Any] = {"credit": credit, "churn": churn}
    eng = RiskEngine(view, asof, config=config, signals=signals, tz=tz, calendar=calendar,
                     inputs=inputs)
    if deal_ids is not None:
        wanted = set(deal_ids)
        deals = [d for d in view.deals if d.id in wanted and d.status is DealStatus.OPEN]
    else:
        deals = [d for d in view.deals if d.status is DealStatus.OPEN]
    drs = eng.deal_risks(deals)
    crs = eng.customer_risks(drs, credit=credit, churn=churn) if customers else []
    return RiskReport(asof, tuple(drs), tuple(crs))
