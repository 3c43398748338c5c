"""The review as one self-contained HTML page: inline CSS, inline SVG charts, no script, no font or
image to fetch. Responsive (tables scroll inside their own box on a phone) and printable (each
section starts a new page)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from html import escape
from typing import Any

from ..money import Money
from ..review import Section, SectionStatus, WeeklyReview
from . import _fmt, _svg
from ._i18n import label
from ._text import action_text, bottleneck_text, cap, note_text, risk_reasons

CSS = """
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI","PingFang SC","Hiragino Sans GB",
"Noto Sans CJK SC","Microsoft YaHei",sans-serif;font-size:15px;line-height:1.5;color:#1f2937;
background:#f8fafc;overflow-wrap:anywhere}
header,main,footer{max-width:1040px;margin:0 auto;padding:0 14px}
header{padding-top:18px}
h1{font-size:1.45rem;margin:0 0 6px;line-height:1.25}
h2{font-size:1.2rem;margin:0 0 10px;line-height:1.3;border-bottom:2px solid #e2e8f0;padding-bottom:4px}
h3{font-size:1rem;margin:16px 0 6px}
p{margin:6px 0}
.meta{display:flex;flex-wrap:wrap;gap:4px 16px;color:#475569;font-size:.9rem;margin:0;padding:0;list-style:none}
.meta b{color:#1f2937;font-weight:600}
nav.toc{margin:12px 0 4px}
nav.toc ol{display:flex;flex-wrap:wrap;gap:6px;margin:0;padding:0;list-style:none}
nav.toc a{display:inline-block;padding:3px 10px;border-radius:14px;background:#e2e8f0;color:#1e3a8a;
text-decoration:none;font-size:.88rem}
.section{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:14px 14px 10px;margin:14px 0}
.note{background:#fff7ed;border-left:4px solid #f59e0b;padding:8px 10px;border-radius:4px}
.section[data-status="error"] .note{background:#fef2f2;border-left-color:#dc2626}
.section[data-status="unavailable"] .note{background:#f1f5f9;border-left-color:#64748b}
.muted{color:#64748b}
.small{font-size:.85rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px}
.card{border:1px solid #e2e8f0;border-radius:8px;padding:10px;background:#f8fafc;min-width:0}
.card .k{font-size:.8rem;color:#475569}
.card .v{font-size:1.3rem;font-weight:650;line-height:1.25}
.card .s{font-size:.8rem;color:#475569}
.table-wrap{max-width:100%;overflow-x:auto;-webkit-overflow-scrolling:touch;margin:6px 0 10px;
border:1px solid #e2e8f0;border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:.86rem}
th,td{padding:5px 8px;border-bottom:1px solid #eef2f7;text-align:left;vertical-align:top;
overflow-wrap:normal;white-space:nowrap}
th{background:#f1f5f9;font-weight:600;white-space:nowrap}
td.n,th.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.w{white-space:normal;min-width:13em}
td.ww{white-space:normal;min-width:22em}
tr.hl td{background:#fef2f2}
figure.chart{margin:8px 0 12px;max-width:460px}
.pair{display:grid;gap:0 18px;align-items:start}
.pair>div{min-width:0}
@media (min-width:900px){.pair{grid-template-columns:minmax(0,460px) minmax(0,1fr)}}
figure.chart figcaption{font-size:.85rem;color:#475569;margin-bottom:2px}
.chart-svg{display:block;width:100%;height:auto}
.chart-svg .t{fill:#1f2937}
.chart-svg .small{font-size:11.5px}
.chart-svg .muted{fill:#64748b}
.chart-svg .b{font-weight:700}
.chart-svg .neg{fill:#b91c1c}
.chart-svg .on-bar{fill:#fff;font-weight:600}
.chart-svg .pace{fill:#6d28d9}
.track{fill:#f1f5f9}
.c-ahead{fill:#15803d}.c-on_track{fill:#2563eb}.c-at_risk{fill:#d97706}.c-behind{fill:#dc2626}
.c-not_started{fill:#94a3b8}
.c-total{fill:#475569}.c-pos{fill:#16a34a}.c-neg{fill:#dc2626}.c-zero{fill:#cbd5e1}
.c-funnel{fill:#3b82f6}.c-bottleneck{fill:#dc2626}
.c-fan{fill:#93c5fd;fill-opacity:.55}
.l-target{stroke:#0f172a;stroke-width:1.5}
.l-pace{stroke:#7c3aed;stroke-width:1.5;stroke-dasharray:4 3}
.l-link{stroke:#94a3b8;stroke-dasharray:2 2}
.l-break{fill:none;stroke:#fff;stroke-width:2}
.l-grid{stroke:#e2e8f0}.l-axis{stroke:#64748b}
.l-won{fill:none;stroke:#0f766e;stroke-width:2.5}
.dot-won{fill:#0f766e}
.l-p50{stroke:#1d4ed8;stroke-width:2;stroke-dasharray:5 3}
.l-target-d{stroke:#b91c1c;stroke-width:1.5;stroke-dasharray:6 3}
.badge{display:inline-block;padding:0 7px;border-radius:10px;font-size:.78rem;white-space:nowrap;
background:#e2e8f0}
.s-ahead{background:#dcfce7;color:#166534}.s-on_track{background:#dbeafe;color:#1e40af}
.s-at_risk{background:#fef3c7;color:#92400e}.s-behind{background:#fee2e2;color:#991b1b}
.lv-critical{background:#7f1d1d;color:#fff}.lv-high{background:#fee2e2;color:#991b1b}
.p1{background:#fee2e2;color:#991b1b}.p2{background:#fef3c7;color:#92400e}.p3{background:#e2e8f0;color:#334155}
.win{background:#fef9c3;color:#854d0e;font-weight:600}
.lv-medium{background:#fef3c7;color:#92400e}.lv-low{background:#ecfccb;color:#3f6212}
.heat td.h{text-align:center;min-width:3.2em}
.levels{display:flex;flex-wrap:wrap;gap:6px;margin:6px 0;padding:0;list-style:none}
ol.actions{padding-left:1.4em;margin:6px 0}
ol.actions li{margin:4px 0}
ul.reasons{margin:2px 0 0;padding-left:1.1em;font-size:.86rem}
ol.risk-list{list-style:none;margin:6px 0;padding:0}
.risk-item{border:1px solid #e2e8f0;border-radius:8px;padding:8px 10px;margin:0 0 8px;background:#fff}
.ri-score{color:#475569;font-size:.85rem;white-space:nowrap}
footer{color:#64748b;font-size:.8rem;padding-bottom:24px}
@media (max-width:600px){body{font-size:14px}.section{padding:10px 10px 6px;border-radius:8px}
header,main,footer{padding:0 8px}.card .v{font-size:1.1rem}}
@page{size:A4;margin:12mm}
@media print{body{background:#fff;font-size:10pt}nav.toc{display:none}
header,main,footer{max-width:none;padding:0}
.section{border:0;padding:0;margin:0;break-before:page;page-break-before:always}
#summary{break-before:auto;page-break-before:auto;margin-top:10px}
.table-wrap{overflow:visible;border:0}table{font-size:7.5pt}
th,td{white-space:normal;padding:3px 5px}td.w,td.ww{min-width:0}
.pair{display:block}.np{display:none}
tr,figure,.card,.risk-item{break-inside:avoid;page-break-inside:avoid}
a{color:inherit;text-decoration:none}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


class Raw(str):
    """Cell content that is already HTML."""


def _cell(v: Any) -> str:
    return v if isinstance(v, Raw) else escape(str(v))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Iterable[int] = (),
          cls: str = "", highlight: Iterable[int] = (), table_id: str | None = None,
          wrap: Iterable[int] = (), wide: Iterable[int] = (), noprint: Iterable[int] = ()) -> str:
    """A table in its own horizontally scrolling box. Cells stay on one line except the
    ``wrap`` columns (names) and ``wide`` columns (sentences); ``noprint`` columns are left out
    on paper."""
    classes: dict[int, str] = dict.fromkeys(numeric, "n")
    classes.update(dict.fromkeys(wrap, "w"))
    classes.update(dict.fromkeys(wide, "ww"))
    for i in noprint:
        classes[i] = f"{classes[i]} np" if i in classes else "np"
    hl = set(highlight)
    head = "".join(f"<th{_cls(_head_cls(classes.get(i)))}>{_cell(h)}</th>" for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        tds = "".join(f"<td{_cls(classes.get(i))}>{_cell(v)}</td>" for i, v in enumerate(row))
        body.append(f'<tr{" class=hl" if r in hl else ""}>{tds}</tr>')
    tid = f' id="{table_id}"' if table_id else ""
    c = f' class="{cls}"' if cls else ""
    return (f'<div class="table-wrap"><table{tid}{c}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _cls(c: str | None) -> str:
    return "" if not c else f' class="{c}"'


def _head_cls(c: str | None) -> str | None:
    """Headers take the numeric and print classes of their column, not the wrapping ones."""
    if c is None:
        return None
    kept = [x for x in c.split() if x in ("n", "np")]
    return " ".join(kept) or None


def _pair(left: str, right: str) -> str:
    """Two blocks side by side on a wide screen (a chart and its table), one above the other on
    a phone."""
    return f'<div class="pair"><div>{left}</div><div>{right}</div></div>'


def _figure(chart_id: str, caption: str, svg: str) -> str:
    return f'<figure class="chart" id="{chart_id}-fig"><figcaption>{escape(caption)}</figcaption>{svg}</figure>'


def _badge(text: str, cls: str) -> Raw:
    return Raw(f'<span class="badge {cls}">{escape(text)}</span>')


def _p(text: str, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f"<p{c}>{escape(text)}</p>"


def _cur(review: WeeklyReview) -> str:
    return review.currency or ""


def _amount_header(lang: str, cur: str) -> str:
    return f"{label('col.amount', lang)} ({cur})" if cur else label("col.amount", lang)


class _Page:
    def __init__(self, review: WeeklyReview, lang: str, limit: int) -> None:
        self.r = review
        self.lang = lang
        self.limit = limit

    def L(self, key: str, **kw: object) -> str:
        return label(key, self.lang, **kw)

    def section(self, sid: str, number: int, sec: Section | None, content: str) -> str:
        status = sec.status.value if sec is not None else "ok"
        head = f'<h2>{number}. {escape(self.L(f"section.{sid}"))}</h2>'
        note = ""
        if sec is not None and sec.status is not SectionStatus.OK:
            note = f'<p class="note" data-note="{escape(sec.note or "")}">{escape(note_text(self.r, sec, self.lang))}</p>'
        return f'<section id="{sid}" class="section" data-status="{status}">{head}{note}{content}</section>'

    def more(self, n: int) -> str:
        return _p(self.L("more", n=n), "muted small") if n > 0 else ""

    # -- summary ---------------------------------------------------------------------------------
    def summary(self) -> str:
        r, lang = self.r, self.lang
        cards: list[tuple[str, str, str]] = []

        def mv(m: Money) -> str:
            return f'{escape(_fmt.short_money(m, lang))} <small class="muted">{escape(m.currency)}</small>'

        counts = {c.reason: c for c in r.pipeline.counts}
        for key, reason in (("card.won_week", "won"), ("card.new_week", "new")):
            c = counts.get(reason)
            if c is not None and c.amount is not None:
                cards.append((self.L(key), mv(c.amount), self.L("card.deals", n=c.deals)))
        fc = r.forecast
        if fc.ok and fc.closed is not None:
            sub = ""
            if fc.target is not None and fc.target.amount:
                sub = self.L("card.of_target", pct=_fmt.percent(fc.closed.amount / fc.target.amount),
                             target=_fmt.short_money(fc.target, lang))
            cards.append((self.L("card.closed_period", period=r.period.label), mv(fc.closed), sub))
            if fc.p50 is not None:
                sub = (self.L("card.of_target", pct=_fmt.percent(fc.p50.amount / fc.target.amount),
                              target=_fmt.short_money(fc.target, lang))
                       if fc.target is not None and fc.target.amount else
                       f"P10 {_fmt.short_money(fc.p10, lang)} – P90 {_fmt.short_money(fc.p90, lang)}")
                cards.append((self.L("card.forecast", period=r.period.label), mv(fc.p50), sub))
        if r.risk.ok:
            cards.append((self.L("card.at_risk"), escape(_fmt.number(len(r.risk.deals))),
                          self.L("card.open_deals", n=r.risk.open)))
        if r.funnel.ok and r.funnel.bottleneck is not None:
            step = next(s for s in r.funnel.steps if s.stage.key == r.funnel.bottleneck.key)
            cards.append((self.L("card.bottleneck"), escape(_fmt.stage(r.funnel.bottleneck, lang)),
                          self.L("card.drop_off", value=_fmt.percent(step.drop_off),
                                 base=_fmt.percent(step.baseline_drop_off))))
        html = "".join(
            f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{v}</div>'
            f'<div class="s">{escape(s)}</div></div>' for k, v, s in cards)
        return (f'<section id="summary" class="section" data-status="ok"><h2>{escape(self.L("section.summary"))}</h2>'
                f'<div class="cards">{html}</div></section>')

    # -- goals -------------------------------------------------------------------------------------
    def goals(self) -> str:
        g, lang = self.r.goals, self.lang
        if not g.ok:
            return ""
        out = []
        if g.elapsed is not None and g.period is not None:
            out.append(_p(self.L("goals.elapsed", pct=_fmt.percent(g.elapsed), period=g.period.label)))
        out.append(_figure("chart-attainment", self.L("chart.attainment"), _svg.attainment(g.lines, g.elapsed, lang, label('company', lang))))
        rows = []
        for x in g.lines:
            rows.append([
                _fmt.tr("scope", x.scope, lang), _goal_name(x, lang), _fmt.tr("metric", x.metric, lang),
                _fmt.metric_value(x.metric, x.target), _fmt.metric_value(x.metric, x.actual),
                _fmt.percent(x.attainment), _fmt.metric_value(x.metric, x.expected),
                _fmt.metric_value(x.metric, x.gap), _fmt.percent(x.projected_attainment),
                _badge(_fmt.tr("status", x.status, lang), f"s-{x.status}"),
            ])
        heads = ["col.scope", "col.name", "col.metric", "col.target", "col.actual", "col.attainment",
                 "col.expected", "col.gap", "col.projected", "col.status"]
        out.append(table([self.L(h) for h in heads], rows, numeric=range(3, 9), noprint=[0, 2],
                         table_id="goals-table"))
        return "".join(out)

    # -- pipeline ----------------------------------------------------------------------------------
    def pipeline(self) -> str:
        p, lang, cur = self.r.pipeline, self.lang, _cur(self.r)
        if p.status in (SectionStatus.ERROR, SectionStatus.UNAVAILABLE):
            return ""
        out = [_p(self.L("pipeline.window", start=_fmt.day(p.start, self.r.tz), end=_fmt.day(p.end, self.r.tz)),
                  "muted small")]
        wf = p.waterfall
        if wf is not None:
            title = self.L("pipeline.waterfall", period=wf.period.label)
            out.append(f"<h3>{escape(title)}</h3>")
            fig = _figure("chart-waterfall", self.L("chart.waterfall"), _svg.waterfall(wf, lang))
            rows = [[self.L("step.start"), _fmt.money(wf.start)]]
            rows += [[self.L(f"step.{k}"), _signed(m)] for k, m in wf.steps()]
            rows.append([self.L("step.end"), _fmt.money(wf.end)])
            out.append(_pair(fig, table([self.L("col.step"), _amount_header(lang, cur)], rows, numeric=[1],
                                        table_id="waterfall-table")
                             + _p(self.L("pipeline.waterfall_note"), "muted small")))
        out.append(f'<h3>{escape(self.L("pipeline.reasons"))}</h3>')
        rows = [[_fmt.tr("reason", c.reason, lang), _fmt.number(c.deals), _fmt.money(c.amount)]
                for c in p.counts if c.deals]
        out.append(table([self.L("col.reason"), self.L("col.deals"), _amount_header(lang, cur)], rows,
                         numeric=[1, 2], table_id="reasons-table"))
        for c in p.counts:
            deals = p.by_reason(c.reason)
            if not deals:
                continue
            out.append(f'<h3 id="changes-{c.reason}">{escape(_fmt.tr("reason", c.reason, lang))} '
                       f'<span class="muted small">({c.deals})</span></h3>')
            shown, rest = cap(deals, self.limit)
            rows = []
            for d in shown:
                rows.append([
                    Raw(f"{escape(d.name)}<br><span class=\"muted small\">{escape(d.deal_id)}</span>"),
                    d.owner or "—",
                    _arrow(_fmt.stage(d.stage_before, lang) if d.stage_before else None,
                           _fmt.stage(d.stage_after, lang)),
                    _arrow(_fmt.money(d.amount_before) if d.amount_before else None, _fmt.money(d.amount_after)),
                    _arrow(_fmt.day(d.close_before) if d.close_before else None, _fmt.day(d.close_after)),
                    _arrow(_fmt.tr("category", d.forecast_before, lang) if d.forecast_before else None,
                           _fmt.tr("category", d.forecast_after, lang)),
                    ", ".join(_fmt.tr("reason", x, lang) for x in d.reasons[1:]) or "—",
                ])
            heads = ["col.deal", "col.owner", "col.stage", "col.amount", "col.close_date", "col.category", "col.also"]
            out.append(table([self.L(h) for h in heads], rows, numeric=[3], wrap=[0],
                             table_id=f"changes-{c.reason}-table"))
            out.append(self.more(rest))
        if p.bridge:
            out.append(f'<h3>{escape(self.L("pipeline.bridge"))}</h3>')
            rows = [[self.L("step.start"), _fmt.money(p.bridge["start"])],
                    [self.L("step.new"), _signed(p.bridge["new"])],
                    [self.L("step.reopened"), _signed(p.bridge["reopened"])],
                    [self.L("step.won"), _signed(-p.bridge["won"])],
                    [self.L("step.lost"), _signed(-p.bridge["lost"])],
                    [self.L("step.changed"), _signed(p.bridge["changed"])],
                    [self.L("step.end"), _fmt.money(p.bridge["end"])]]
            out.append(table([self.L("col.step"), _amount_header(lang, cur)], rows, numeric=[1],
                             table_id="bridge-table"))
        return "".join(out)

    # -- funnel ------------------------------------------------------------------------------------
    def funnel(self) -> str:
        f, lang = self.r.funnel, self.lang
        if not f.ok or f.window is None:
            return ""
        out = [_p(self.L("funnel.window", start=f.window.start.isoformat(), end=f.window.last_day.isoformat(),
                         cohort=_fmt.number(f.cohort), won=_fmt.number(f.won),
                         conversion=_fmt.percent(f.overall_conversion)))]
        out.append(_p(bottleneck_text(f, lang), "b"))
        out.append(_figure("chart-funnel", self.L("chart.funnel"), _svg.funnel(f, lang)))
        rows, hl = [], []
        for i, s in enumerate(f.steps):
            if f.bottleneck is not None and s.stage.key == f.bottleneck.key:
                hl.append(i)
            rows.append([_fmt.stage(s.stage, lang), _fmt.number(s.reached), _fmt.percent(s.conversion),
                         _fmt.number(s.lost), _fmt.percent(s.drop_off), _fmt.percent(s.baseline_drop_off),
                         _fmt.number(s.open), _fmt.days(s.median_days)])
        heads = ["col.stage", "col.reached", "col.conversion", "col.lost", "col.drop_off", "col.history",
                 "col.open", "col.median_days"]
        out.append(table([self.L(h) for h in heads], rows, numeric=range(1, 8), highlight=hl,
                         table_id="funnel-table"))
        return "".join(out)

    # -- forecast ----------------------------------------------------------------------------------
    def forecast(self) -> str:
        fc, lang, r = self.r.forecast, self.lang, self.r
        if not fc.ok or fc.period is None:
            return ""
        out = [_p(self.L("forecast.intro", period=fc.period.label, trials=_fmt.number(fc.trials)))]
        if fc.target is None:
            out.append(_p(self.L("note.no_target"), "muted"))
        day = r.asof.astimezone(r.tz).date()
        fig = _figure("chart-forecast", self.L("chart.forecast"), _svg.fan(fc, day, lang))
        measures = [("closed", fc.closed), ("p10", fc.p10), ("p50", fc.p50), ("p90", fc.p90), ("mean", fc.mean),
                    ("expected", fc.expected), ("target", fc.target)]
        rows: list[list[Any]] = [[self.L(f"measure.{k}"), _fmt.money(v)] for k, v in measures if v is not None]
        if fc.p_target is not None:
            rows.append([self.L("measure.p_target"), _fmt.percent(fc.p_target)])
        for k, v in (("commit", fc.commit), ("best_case", fc.best_case), ("forecast_commit", fc.forecast_commit),
                     ("forecast_best_case", fc.forecast_best_case)):
            if v is not None:
                rows.append([self.L(f"measure.{k}"), _fmt.money(v)])
        out.append(_pair(fig, table([self.L("col.measure"), f"{self.L('col.value')} ({fc.currency})"], rows,
                                    numeric=[1], table_id="forecast-table")))
        if fc.unpriced:
            out.append(_p(self.L("forecast.unpriced", n=fc.unpriced), "muted small"))
        if fc.lines:
            out.append(f'<h3>{escape(self.L("forecast.lines"))}</h3>')
            rows = [[_fmt.tr("scope", x.level, lang), x.name, _fmt.money(x.closed), _fmt.money(x.p10),
                     _fmt.money(x.p50), _fmt.money(x.p90), _fmt.money(x.target), _fmt.percent(x.p_target),
                     _fmt.money(x.forecast_commit)] for x in fc.lines]
            heads = ["col.level", "col.name", "col.closed", "col.p10", "col.p50", "col.p90", "col.target",
                     "col.p_target", "col.forecast_commit"]
            out.append(table([self.L(h) for h in heads], rows, numeric=range(2, 9), noprint=[0],
                             table_id="forecast-lines"))
        out.append(f'<h3>{escape(self.L("forecast.commits"))}</h3>')
        if fc.submissions:
            rows = [[s.scope, s.submitted_by, _fmt.day(s.at, r.tz), _fmt.money(s.commit), _fmt.money(s.best_case),
                     s.note or "—"] for s in fc.submissions]
            heads = ["col.scope", "col.submitted_by", "col.at", "col.commit", "col.best_case", "col.note"]
            out.append(table([self.L(h) for h in heads], rows, numeric=[3, 4], wide=[5],
                             table_id="commits-table"))
        else:
            out.append(_p(self.L("note.no_submissions"), "muted"))
        return "".join(out)

    # -- risk --------------------------------------------------------------------------------------
    def risk(self) -> str:
        k, lang = self.r.risk, self.lang
        if not k.ok:
            return ""
        levels = "".join("<li>" + _badge(_fmt.tr("level", lv, lang) + f" {n}", "lv-" + lv) + "</li>"
                         for lv, n in k.levels.items())
        out = [_p(self.L("risk.levels", open=_fmt.number(k.open))), f'<ul class="levels">{levels}</ul>']
        out.append(f'<h3>{escape(self.L("risk.heat"))}</h3>')
        out.append(self.heat())
        level = _fmt.tr("level", k.level, lang)
        out.append(f'<h3>{escape(self.L("risk.list", level=level))}</h3>')
        if not k.deals:
            out.append(_p(self.L("note.no_risky", level=level), "muted"))
            return "".join(out)
        shown, rest = cap(k.deals, self.limit)
        items = []
        cur = _cur(self.r)
        for d in shown:
            reasons = "".join(f"<li><b>{escape(sig)}</b> {escape(text)}</li>"
                              for sig, text in risk_reasons(d, lang))
            facts = " · ".join(escape(x) for x in (
                d.deal_id, d.owner or "—", _fmt.stage(d.stage, lang),
                f"{_fmt.money(d.amount)} {cur}" if d.amount is not None else "—"))
            items.append(
                f'<li class="risk-item" data-deal="{escape(d.deal_id)}">'
                f'<div class="ri-head">{_badge(_fmt.tr("level", d.level, lang), f"lv-{d.level}")} '
                f'<b class="ri-name">{escape(d.name)}</b> '
                f'<span class="ri-score">{escape(self.L("col.score"))} {escape(_fmt.number(d.score))}</span></div>'
                f'<div class="muted small ri-facts">{facts}</div><ul class="reasons">{reasons}</ul></li>')
        out.append(f'<ol class="risk-list" id="risk-deals">{"".join(items)}</ol>')
        out.append(self.more(rest))
        return "".join(out)

    def heat(self) -> str:
        k, lang = self.r.risk, self.lang
        top = max([c for h in k.heat for c in h.counts] + [1])
        head = [self.L("col.owner"), self.L("col.open"), self.L("col.at_risk")] + [
            _fmt.tr("signal", s, lang) for s in k.signals]
        rows = []
        for h in k.heat:
            cells: list[Any] = [h.owner, _fmt.number(h.open), _fmt.number(h.at_risk)]
            for n, sev in zip(h.counts, h.severity, strict=True):
                alpha = Decimal(0) if n == 0 else Decimal("0.12") + Decimal("0.78") * Decimal(n) / Decimal(top)
                a = f"{alpha:.2f}"
                ink = "#fff" if alpha > Decimal("0.55") else "#1f2937"
                tip = f' title="{escape(_fmt.percent(sev, 0))}"' if sev is not None else ""
                cells.append(Raw(f'<span class="hc" style="display:block;background:rgba(220,38,38,{a});'
                                 f'color:{ink};border-radius:3px"{tip}>{n}</span>'))
            rows.append(cells)
        return table(head, rows, numeric=[1, 2], cls="heat", table_id="risk-heat")

    # -- contests ----------------------------------------------------------------------------------
    def contests(self) -> str:
        c, lang = self.r.contests, self.lang
        if not c.ok:
            return ""
        out = []
        for b in c.boards:
            title = label(f"contest.{b.key}", lang) if _known(f"contest.{b.key}") else b.name
            out.append(f'<h3 id="board-{escape(b.key)}">{escape(title)} · {escape(b.period.label)}</h3>')
            champ = next((s for s in b.standings if s.participant == b.champion), None)
            if champ is not None:
                out.append(_p(self.L("contest.champion", name=champ.name,
                                     value=_fmt.metric_value(b.metric, champ.value)), "b"))
            else:
                out.append(_p(self.L("contest.no_champion"), "muted"))
            ranked = [s for s in b.standings if s.qualified]
            others = [s for s in b.standings if not s.qualified]
            listed = ranked + [s for s in others if s.value is not None]
            unlisted = len(b.standings) - len(listed)
            rows = [[_fmt.number(s.rank) if s.rank is not None else "—", s.name,
                     _fmt.metric_value(b.metric, s.value),
                     _badge(self.L("contest.winner"), "win") if s.winner else (s.note or "")] for s in listed]
            heads = [self.L("col.rank"), self.L("col.participant"), _metric_header(b, lang), self.L("col.note")]
            out.append(table(heads, rows, numeric=[0, 2], table_id=f"board-{b.key}-table"))
            if unlisted:
                out.append(_p(self.L("contest.others", n=unlisted), "muted small"))
        return "".join(out)

    # -- feedback ----------------------------------------------------------------------------------
    def feedback(self) -> str:
        f, lang, r = self.r.feedback, self.lang, self.r
        out = []
        if f.ok:
            if f.scores:
                rows = [[_fmt.tr("survey", k, lang), _fmt.metric_value(k, v)] for k, v in f.scores.items()]
                out.append(f'<h3>{escape(self.L("feedback.scores"))}</h3>')
                out.append(table([self.L("col.kind"), self.L("col.value")], rows, numeric=[1],
                                 table_id="feedback-scores"))
            if f.responses:
                out.append(f'<h3>{escape(self.L("feedback.responses"))}</h3>')
                rows = [[_fmt.day(x.at, r.tz), _fmt.tr("survey", x.kind, lang), _fmt.number(x.score),
                         x.account or "—", x.owner or "—", x.comment or "—",
                         self.L("yes") if x.low else ""] for x in f.responses]
                heads = ["col.at", "col.kind", "col.score", "col.account", "col.owner", "col.comment", "col.low"]
                out.append(table([self.L(h) for h in heads], rows, numeric=[2], wrap=[3], wide=[5],
                                 table_id="feedback-responses"))
            if f.complaints:
                out.append(f'<h3>{escape(self.L("feedback.complaints"))}</h3>')
                rows = [[_fmt.day(x.at, r.tz), x.account or "—", x.subject or "—",
                         _fmt.tr("severity", x.severity, lang), _fmt.tr("complaint", x.status, lang),
                         x.owner or "—"] for x in f.complaints]
                heads = ["col.at", "col.account", "col.subject", "col.severity", "col.status", "col.owner"]
                out.append(table([self.L(h) for h in heads], rows, wrap=[1], wide=[2],
                                 table_id="feedback-complaints"))
        if f.status in (SectionStatus.OK, SectionStatus.EMPTY):
            out.append(_p(self.L("feedback.unsolved", n=f.unsolved), "muted"))
        return "".join(out)

    # -- actions -----------------------------------------------------------------------------------
    def actions(self) -> str:
        acts, lang = self.r.actions, self.lang
        if not acts:
            return _p(self.L("note.no_actions"), "note")
        items = []
        for a in acts:
            items.append(f'<li data-kind="{a.kind.value}">{_badge(self.L(f"priority.{a.priority}"), f"p{a.priority}")} '
                         f"{escape(action_text(a, lang))}</li>")
        return f'<ol class="actions">{"".join(items)}</ol>'

    # -- page --------------------------------------------------------------------------------------
    def render(self) -> str:
        r, lang = self.r, self.lang
        scope = ", ".join(r.scope_names) if r.scope else self.L("company")
        title = f"{self.L('title')} · {r.week.label}"
        meta = [
            (self.L("week"), f"{r.week.label} ({r.week.start.isoformat()} – {r.week.last_day.isoformat()})"),
            (self.L("period"), r.period.label),
            (self.L("scope"), scope),
            (self.L("asof"), _fmt.day(r.asof, r.tz)),
            (self.L("currency"), r.currency or "—"),
            (self.L("deals_in_scope"), _fmt.number(r.deals)),
        ]
        meta_html = "".join(f"<li>{escape(k)}: <b>{escape(v)}</b></li>" for k, v in meta)
        sections = [("goals", r.goals, self.goals), ("pipeline", r.pipeline, self.pipeline),
                    ("funnel", r.funnel, self.funnel), ("forecast", r.forecast, self.forecast),
                    ("risk", r.risk, self.risk), ("contests", r.contests, self.contests),
                    ("feedback", r.feedback, self.feedback)]
        toc = "".join(f'<li><a href="#{sid}">{escape(self.L(f"section.{sid}"))}</a></li>'
                      for sid in [s[0] for s in sections] + ["actions"])
        body = [self.summary()]
        for i, (sid, sec, build) in enumerate(sections, start=1):
            body.append(self.section(sid, i, sec, build()))
        body.append(self.section("actions", len(sections) + 1, None, self.actions()))
        html_lang = "zh-CN" if lang == "zh" else "en"
        return (
            "<!DOCTYPE html>\n"
            f'<html lang="{html_lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><ul class=\"meta\">{meta_html}</ul>"
            f'<nav class="toc" aria-label="{escape(self.L("contents"))}"><ol>{toc}</ol></nav></header>'
            f"<main>{''.join(body)}</main>"
            f"<footer><p>{escape(self.L('generated'))}</p></footer></body></html>\n"
        )


def _goal_name(g: Any, lang: str) -> str:
    return label("company", lang) if g.scope == "company" else str(g.name)


def _metric_header(board: Any, lang: str) -> str:
    name = _fmt.tr("metric", board.metric, lang)
    money = next((s.value for s in board.standings if isinstance(s.value, Money)), None)
    return f"{name} ({money.currency})" if money is not None else name


def _known(key: str) -> bool:
    from ._i18n import has_label

    return has_label(key)


def _signed(m: Money) -> str:
    if m.amount > 0:
        return "+" + _fmt.money(m)
    if m.amount < 0:
        return "−" + _fmt.money(abs(m))
    return _fmt.money(m)


def _arrow(before: str | None, after: str) -> str:
    if before is None or before == after:
        return after
    return f"{before} → {after}"


def render_html(review: WeeklyReview, *, lang: str = "zh", limit: int = 10) -> str:
    """The review as one self-contained HTML page in ``lang`` (``zh`` or ``en``); lists longer
    than ``limit`` rows show the first ``limit`` and say how many more there are."""
    return _Page(review, lang, limit).render()
