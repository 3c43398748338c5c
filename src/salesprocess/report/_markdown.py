"""The review as Markdown: the same sections, numbers and notes as the HTML page, as headings,
lists and pipe tables (the charts' numbers are in the tables)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..money import Money
from ..review import Section, SectionStatus, WeeklyReview
from . import _fmt
from ._i18n import has_label, label
from ._text import action_text, bottleneck_text, cap, note_text, risk_reasons


def _esc(v: Any) -> str:
    s = str(v).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return s or " "


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Iterable[int] = ()) -> str:
    nums = set(numeric)
    out = ["| " + " | ".join(_esc(h) for h in headers) + " |",
           "|" + "|".join("---:" if i in nums else "---" for i in range(len(headers))) + "|"]
    for row in rows:
        out.append("| " + " | ".join(_esc(c) for c in row) + " |")
    return "\n".join(out) + "\n"


def _signed(m: Money) -> str:
    if m.amount > 0:
        return "+" + _fmt.money(m)
    if m.amount < 0:
        return "−" + _fmt.money(abs(m))
    return _fmt.money(m)


def _arrow(before: str | None, after: str) -> str:
    return after if before is None or before == after else f"{before} → {after}"


class _Doc:
    def __init__(self, review: WeeklyReview, lang: str, limit: int) -> None:
        self.r = review
        self.lang = lang
        self.limit = limit
        self.out: list[str] = []

    def L(self, key: str, **kw: object) -> str:
        return label(key, self.lang, **kw)

    def w(self, text: str = "") -> None:
        self.out.append(text)

    def h(self, level: int, text: str) -> None:
        self.w(f"{'#' * level} {text}\n")

    def note(self, sec: Section) -> bool:
        if sec.status is SectionStatus.OK:
            return False
        self.w(f"> {note_text(self.r, sec, self.lang)}\n")
        return True

    def more(self, n: int) -> None:
        if n > 0:
            self.w(f"_{self.L('more', n=n)}_\n")

    def amount(self) -> str:
        cur = self.r.currency
        return f"{self.L('col.amount')} ({cur})" if cur else self.L("col.amount")

    def render(self) -> str:
        r = self.r
        self.h(1, f"{self.L('title')} · {r.week.label}")
        scope = ", ".join(r.scope_names) if r.scope else self.L("company")
        for k, v in (
            ("week", f"{r.week.label} ({r.week.start.isoformat()} – {r.week.last_day.isoformat()})"),
            ("period", r.period.label), ("scope", scope), ("asof", _fmt.day(r.asof, r.tz)),
            ("currency", r.currency or "—"), ("deals_in_scope", _fmt.number(r.deals)),
        ):
            self.w(f"- {self.L(k)}: **{_esc(v)}**")
        self.w()
        self.w(f"_{self.L('charts_in_html')}_\n")
        self.summary()
        for i, (sid, build) in enumerate((
            ("goals", self.goals), ("pipeline", self.pipeline), ("funnel", self.funnel),
            ("forecast", self.forecast), ("risk", self.risk), ("contests", self.contests),
            ("feedback", self.feedback), ("actions", self.actions),
        ), start=1):
            self.h(2, f"{i}. {self.L(f'section.{sid}')}")
            build()
        self.w(f"---\n\n_{self.L('generated')}_")
        return "\n".join(self.out).rstrip() + "\n"

    def summary(self) -> None:
        r, lang = self.r, self.lang
        self.h(2, self.L("section.summary"))
        rows: list[list[str]] = []
        counts = {c.reason: c for c in r.pipeline.counts}
        for key, reason in (("card.won_week", "won"), ("card.new_week", "new")):
            c = counts.get(reason)
            if c is not None and c.amount is not None:
                rows.append([self.L(key), _fmt.money_with_currency(c.amount), self.L("card.deals", n=c.deals)])
        fc = r.forecast
        if fc.ok and fc.closed is not None:
            rows.append([self.L("card.closed_period", period=r.period.label), _fmt.money_with_currency(fc.closed),
                         ""])
            if fc.p50 is not None:
                rows.append([self.L("card.forecast", period=r.period.label), _fmt.money_with_currency(fc.p50),
                             f"P10 {_fmt.money(fc.p10)} – P90 {_fmt.money(fc.p90)}"])
        if r.risk.ok:
            rows.append([self.L("card.at_risk"), _fmt.number(len(r.risk.deals)), self.L("card.open_deals", n=r.risk.open)])
        if r.funnel.ok and r.funnel.bottleneck is not None:
            rows.append([self.L("card.bottleneck"), _fmt.stage(r.funnel.bottleneck, lang), ""])
        self.w(table([self.L("col.measure"), self.L("col.value"), self.L("col.note")], rows, [1]))

    def goals(self) -> None:
        g, lang = self.r.goals, self.lang
        if self.note(g):
            return
        if g.elapsed is not None and g.period is not None:
            self.w(self.L("goals.elapsed", pct=_fmt.percent(g.elapsed), period=g.period.label) + "\n")
        heads = ["col.scope", "col.name", "col.metric", "col.target", "col.actual", "col.attainment",
                 "col.expected", "col.gap", "col.projected", "col.status"]
        rows = [[_fmt.tr("scope", x.scope, lang), self.L("company") if x.scope == "company" else x.name,
                 _fmt.tr("metric", x.metric, lang),
                 _fmt.metric_value(x.metric, x.target), _fmt.metric_value(x.metric, x.actual),
                 _fmt.percent(x.attainment), _fmt.metric_value(x.metric, x.expected),
                 _fmt.metric_value(x.metric, x.gap), _fmt.percent(x.projected_attainment),
                 _fmt.tr("status", x.status, lang)] for x in g.lines]
        self.w(table([self.L(h) for h in heads], rows, range(3, 9)))

    def pipeline(self) -> None:
        p, lang = self.r.pipeline, self.lang
        noted = self.note(p)
        if p.status in (SectionStatus.ERROR, SectionStatus.UNAVAILABLE):
            return
        if not noted:
            self.w(self.L("pipeline.window", start=_fmt.day(p.start, self.r.tz), end=_fmt.day(p.end, self.r.tz)) + "\n")
        wf = p.waterfall
        if wf is not None:
            self.h(3, self.L("pipeline.waterfall", period=wf.period.label))
            rows = [[self.L("step.start"), _fmt.money(wf.start)]]
            rows += [[self.L(f"step.{k}"), _signed(m)] for k, m in wf.steps()]
            rows.append([self.L("step.end"), _fmt.money(wf.end)])
            self.w(table([self.L("col.step"), self.amount()], rows, [1]))
            self.w(f"_{self.L('pipeline.waterfall_note')}_\n")
        self.h(3, self.L("pipeline.reasons"))
        rows = [[_fmt.tr("reason", c.reason, lang), _fmt.number(c.deals), _fmt.money(c.amount)]
                for c in p.counts if c.deals]
        self.w(table([self.L("col.reason"), self.L("col.deals"), self.amount()], rows, [1, 2]))
        for c in p.counts:
            deals = p.by_reason(c.reason)
            if not deals:
                continue
            self.h(4, f"{_fmt.tr('reason', c.reason, lang)} ({c.deals})")
            shown, rest = cap(deals, self.limit)
            rows = [[f"{d.name} ({d.deal_id})", d.owner or "—",
                     _arrow(_fmt.stage(d.stage_before, lang) if d.stage_before else None, _fmt.stage(d.stage_after, lang)),
                     _arrow(_fmt.money(d.amount_before) if d.amount_before else None, _fmt.money(d.amount_after)),
                     _arrow(_fmt.day(d.close_before) if d.close_before else None, _fmt.day(d.close_after)),
                     _arrow(_fmt.tr("category", d.forecast_before, lang) if d.forecast_before else None,
                            _fmt.tr("category", d.forecast_after, lang)),
                     ", ".join(_fmt.tr("reason", x, lang) for x in d.reasons[1:]) or "—"] for d in shown]
            heads = ["col.deal", "col.owner", "col.stage", "col.amount", "col.close_date", "col.category", "col.also"]
            self.w(table([self.L(h) for h in heads], rows, [3]))
            self.more(rest)
        if p.bridge:
            b = p.bridge
            self.h(3, self.L("pipeline.bridge"))
            rows = [[self.L("step.start"), _fmt.money(b["start"])], [self.L("step.new"), _signed(b["new"])],
                    [self.L("step.reopened"), _signed(b["reopened"])], [self.L("step.won"), _signed(-b["won"])],
                    [self.L("step.lost"), _signed(-b["lost"])], [self.L("step.changed"), _signed(b["changed"])],
                    [self.L("step.end"), _fmt.money(b["end"])]]
            self.w(table([self.L("col.step"), self.amount()], rows, [1]))

    def funnel(self) -> None:
        f, lang = self.r.funnel, self.lang
        if self.note(f) or f.window is None:
            return
        self.w(self.L("funnel.window", start=f.window.start.isoformat(), end=f.window.last_day.isoformat(),
                      cohort=_fmt.number(f.cohort), won=_fmt.number(f.won),
                      conversion=_fmt.percent(f.overall_conversion)) + "\n")
        self.w(f"**{bottleneck_text(f, lang)}**\n")
        heads = ["col.stage", "col.reached", "col.conversion", "col.lost", "col.drop_off", "col.history",
                 "col.open", "col.median_days"]
        rows = []
        for s in f.steps:
            name = _fmt.stage(s.stage, lang)
            if f.bottleneck is not None and s.stage.key == f.bottleneck.key:
                name = f"**{name}** ({self.L('chart.bottleneck')})"
            rows.append([name, _fmt.number(s.reached), _fmt.percent(s.conversion), _fmt.number(s.lost),
                         _fmt.percent(s.drop_off), _fmt.percent(s.baseline_drop_off), _fmt.number(s.open),
                         _fmt.days(s.median_days)])
        self.w(table([self.L(h) for h in heads], rows, range(1, 8)))

    def forecast(self) -> None:
        fc, lang, r = self.r.forecast, self.lang, self.r
        if self.note(fc) or fc.period is None:
            return
        self.w(self.L("forecast.intro", period=fc.period.label, trials=_fmt.number(fc.trials)) + "\n")
        if fc.target is None:
            self.w(f"_{self.L('note.no_target')}_\n")
        rows: list[list[str]] = [[self.L(f"measure.{k}"), _fmt.money(v)] for k, v in (
            ("closed", fc.closed), ("p10", fc.p10), ("p50", fc.p50), ("p90", fc.p90), ("mean", fc.mean),
            ("expected", fc.expected), ("target", fc.target)) if v is not None]
        if fc.p_target is not None:
            rows.append([self.L("measure.p_target"), _fmt.percent(fc.p_target)])
        for k, v in (("commit", fc.commit), ("best_case", fc.best_case), ("forecast_commit", fc.forecast_commit),
                     ("forecast_best_case", fc.forecast_best_case)):
            if v is not None:
                rows.append([self.L(f"measure.{k}"), _fmt.money(v)])
        self.w(table([self.L("col.measure"), f"{self.L('col.value')} ({fc.currency})"], rows, [1]))
        if fc.unpriced:
            self.w(self.L("forecast.unpriced", n=fc.unpriced) + "\n")
        if fc.lines:
            self.h(3, self.L("forecast.lines"))
            heads = ["col.level", "col.name", "col.closed", "col.p10", "col.p50", "col.p90", "col.target",
                     "col.p_target", "col.forecast_commit"]
            self.w(table([self.L(h) for h in heads], [
                [_fmt.tr("scope", x.level, lang), x.name, _fmt.money(x.closed), _fmt.money(x.p10),
                 _fmt.money(x.p50), _fmt.money(x.p90), _fmt.money(x.target), _fmt.percent(x.p_target),
                 _fmt.money(x.forecast_commit)] for x in fc.lines], range(2, 9)))
        self.h(3, self.L("forecast.commits"))
        if fc.submissions:
            heads = ["col.scope", "col.submitted_by", "col.at", "col.commit", "col.best_case", "col.note"]
            self.w(table([self.L(h) for h in heads], [
                [s.scope, s.submitted_by, _fmt.day(s.at, r.tz), _fmt.money(s.commit), _fmt.money(s.best_case),
                 s.note or "—"] for s in fc.submissions], [3, 4]))
        else:
            self.w(f"_{self.L('note.no_submissions')}_\n")

    def risk(self) -> None:
        k, lang = self.r.risk, self.lang
        if self.note(k):
            return
        levels = ", ".join(f"{_fmt.tr('level', lv, lang)} {n}" for lv, n in k.levels.items())
        self.w(f"{self.L('risk.levels', open=_fmt.number(k.open))} {levels}\n")
        self.h(3, self.L("risk.heat"))
        head = [self.L("col.owner"), self.L("col.open"), self.L("col.at_risk")] + [
            _fmt.tr("signal", s, lang) for s in k.signals]
        self.w(table(head, [[h.owner, _fmt.number(h.open), _fmt.number(h.at_risk), *[str(n) for n in h.counts]]
                            for h in k.heat], range(1, 3 + len(k.signals))))
        level = _fmt.tr("level", k.level, lang)
        self.h(3, self.L("risk.list", level=level))
        if not k.deals:
            self.w(f"_{self.L('note.no_risky', level=level)}_\n")
            return
        shown, rest = cap(k.deals, self.limit)
        heads = ["col.deal", "col.owner", "col.stage", "col.amount", "col.score", "col.level", "col.reasons"]
        self.w(table([self.L(h) for h in heads], [
            [f"{d.name} ({d.deal_id})", d.owner or "—", _fmt.stage(d.stage, lang), _fmt.money(d.amount),
             _fmt.number(d.score), _fmt.tr("level", d.level, lang),
             "; ".join(f"{sig}: {text}" for sig, text in risk_reasons(d, lang))] for d in shown], [3, 4]))
        self.more(rest)

    def contests(self) -> None:
        c, lang = self.r.contests, self.lang
        if self.note(c):
            return
        for b in c.boards:
            title = label(f"contest.{b.key}", lang) if has_label(f"contest.{b.key}") else b.name
            self.h(3, f"{title} · {b.period.label}")
            champ = next((s for s in b.standings if s.participant == b.champion), None)
            if champ is not None:
                self.w("**" + self.L("contest.champion", name=champ.name,
                                     value=_fmt.metric_value(b.metric, champ.value)) + "**\n")
            else:
                self.w(self.L("contest.no_champion") + "\n")
            listed = [s for s in b.standings if s.qualified or s.value is not None]
            self.w(table([self.L("col.rank"), self.L("col.participant"), _fmt.tr("metric", b.metric, lang),
                          self.L("col.note")],
                         [[_fmt.number(s.rank) if s.rank is not None else "—", s.name,
                           _fmt.metric_value(b.metric, s.value),
                           self.L("contest.winner") if s.winner else (s.note or "")]
                          for s in listed], [0, 2]))
            if len(b.standings) > len(listed):
                self.w(self.L("contest.others", n=len(b.standings) - len(listed)) + "\n")

    def feedback(self) -> None:
        f, lang, r = self.r.feedback, self.lang, self.r
        noted = self.note(f)
        if f.status in (SectionStatus.ERROR, SectionStatus.UNAVAILABLE):
            return
        if not noted:
            if f.scores:
                self.h(3, self.L("feedback.scores"))
                self.w(table([self.L("col.kind"), self.L("col.value")],
                             [[_fmt.tr("survey", k, lang), _fmt.metric_value(k, v)] for k, v in f.scores.items()], [1]))
            if f.responses:
                self.h(3, self.L("feedback.responses"))
                heads = ["col.at", "col.kind", "col.score", "col.account", "col.owner", "col.comment", "col.low"]
                self.w(table([self.L(h) for h in heads], [
                    [_fmt.day(x.at, r.tz), _fmt.tr("survey", x.kind, lang), _fmt.number(x.score), x.account or "—",
                     x.owner or "—", x.comment or "—", self.L("yes") if x.low else ""] for x in f.responses], [2]))
            if f.complaints:
                self.h(3, self.L("feedback.complaints"))
                heads = ["col.at", "col.account", "col.subject", "col.severity", "col.status", "col.owner"]
                self.w(table([self.L(h) for h in heads], [
                    [_fmt.day(x.at, r.tz), x.account or "—", x.subject or "—", _fmt.tr("severity", x.severity, lang),
                     _fmt.tr("complaint", x.status, lang), x.owner or "—"] for x in f.complaints]))
        self.w(self.L("feedback.unsolved", n=f.unsolved) + "\n")

    def actions(self) -> None:
        if not self.r.actions:
            self.w(f"> {self.L('note.no_actions')}\n")
            return
        for i, a in enumerate(self.r.actions, start=1):
            self.w(f"{i}. **[{self.L(f'priority.{a.priority}')}]** {_esc_text(action_text(a, self.lang))}")
        self.w()


def _esc_text(s: str) -> str:
    return s.replace("*", "\\*").replace("_", "\\_")


def render_markdown(review: WeeklyReview, *, lang: str = "zh", limit: int = 10) -> str:
    """The review as Markdown in ``lang`` (``zh`` or ``en``), lists capped at ``limit`` rows."""
    return _Doc(review, lang, limit).render()
