"""The commission engine: credits in, statements out.

For each rep the engine walks every settlement period from the plan's first version up to the
requested period (draw balances, deficits and clawbacks of earlier periods depend on them):

1. **Rating.** At the end of each settlement period, every credit of the attainment period so far
   is rated against the attainment reached so far (cumulative to date). The credits are laid
   out in time order on the attainment axis; in *graduated* mode each slice earns its own band's
   rate, in *retroactive* mode every credit earns the rate of the band the attainment reached.
   Bands come from the tiers, accelerators, decelerators and the attainment cap. A product or
   segment rule replaces the rate (``rate``) or scales it (``multiplier``).
2. **Rounding.** Each credit's cumulative commission per band is rounded with the plan's mode;
   a period's line is the change of that rounded value since the previous period, so lines of
   all periods add up exactly to the rounded final commission (true-ups included).
3. **Reductions.** A reduction takes back its share of the commission computed on the credit it
   reduces, at the rate that credit earned: in the same attainment period the share follows the
   credit's commission as it changes; once the credit's attainment period has closed, it is a
   share of what the credit finally earned (net of any payout cap withheld then). Reductions in
   the same attainment period also lower attainment.
4. **Period lines.** SPIF awards and adjustments are added; the payout cap withholds commission
   above it (per attainment period, cumulative); then deficits are recovered, draws paid or
   recovered, a negative result carried forward, and the minimum payout topped up.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from itertools import islice
from operator import eq as _eq
from typing import Any

import attrs

from ..errors import Problem
from ..money import _CTX, Money
from ..periods import Period
from ._credit import WINDOWED, Credit, CreditBook, SpifAward
from ._inputs import Adjustment, CommissionInputs, Quota
from ._plan import Plan, PlanVersion, TierBasis, TierMode
from ._statement import LineKind, Statement, StatementLine

__all__ = ["CommissionRun"]

_ZERO = Decimal(0)
_ONE = Decimal(1)
_mkline = StatementLine._make
_tnew = tuple.__new__
_COMMISSION = LineKind.COMMISSION
_CLAWBACK = LineKind.CLAWBACK
_REVERSAL = LineKind.REVERSAL
_TRUE_UP = LineKind.TRUE_UP
# positions of Credit fields, for the hot loops
_F = {name: i for i, name in enumerate(Credit._fields)}
_DAY, _AT, _DEAL, _OF, _KIND, _VERSION = _F["day"], _F["at"], _F["deal_id"], _F["of"], _F["kind"], _F["version"]
_AMOUNT, _RULE, _COUNTS, _FRACTION, _PRIOR = _F["amount"], _F["rule"], _F["counts"], _F["fraction"], _F["prior"]


def _round(v: Decimal, mode: str) -> int:
    return int(v.to_integral_value(rounding=mode))


_INTEGRAL: dict[str, Callable[[Decimal], Decimal]] = {}


def _integral(mode: str) -> Callable[[Decimal], Decimal]:
    """``to_integral_value`` with rounding ``mode`` as one C call (``_round`` without its keyword)."""
    f = _INTEGRAL.get(mode)
    if f is None:
        ctx = _CTX.copy()
        ctx.rounding = mode
        f = _INTEGRAL[mode] = ctx.to_integral_value
    return f


def _against_origin(in_run: bool, of: int, fr: Decimal | None, pr: Decimal | None,
                    paid: Mapping[int, int], final_paid: Mapping[int, int],
                    rnd: Callable[[Decimal], Decimal]) -> tuple[int, int, Decimal]:
    """``(base, value, share)`` of a reversal or clawback credit against origin credit ``of``:
    the base is what the origin paid in this run when it is rated in this run, else what it
    finally paid; the value takes back the difference between the prior and the new fraction."""
    assert fr is not None
    assert pr is not None
    base = paid.get(of, 0) if in_run else final_paid.get(of, 0)
    mul = _CTX.multiply
    return base, int(rnd(mul(pr, base))) - int(rnd(mul(fr, base))), fr - pr


def _tidy(rate: Decimal) -> Decimal:
    """The same rate without trailing zeros (``0.090`` → ``0.09``), never in exponent form."""
    n = rate.normalize()
    return n.quantize(_ONE) if n == n.to_integral_value() else n


@attrs.frozen
class _Band:
    lo: Decimal
    rate: Decimal
    label: str


class _Bands:
    """The rate bands of one version for one quota, on the axis of credited minor units."""

    __slots__ = ("bands", "cap", "los", "retro")

    def __init__(self, version: PlanVersion, quota_minor: int | None, scale: Decimal) -> None:
        r = version.rates
        if r.basis is TierBasis.ATTAINMENT:
            unit = Decimal(quota_minor) if quota_minor is not None else None
        else:
            unit = scale
        def pos(x: Decimal) -> Decimal:
            assert unit is not None
            return _CTX.multiply(x, unit)

        cap: Decimal | None = None
        if version.caps.attainment is not None and quota_minor is not None:
            cap = _CTX.multiply(version.caps.attainment, Decimal(quota_minor))
        points = {_ZERO}
        tiers = [(pos(t.start) if unit is not None else _ZERO, t) for t in r.tiers] if unit is not None else [
            (_ZERO, r.tiers[0])]
        accs = [(pos(a.above), a) for a in r.accelerators] if unit is not None else []
        decs = [(pos(d.below), d) for d in r.decelerators] if unit is not None else []
        points.update(p for p, _ in tiers)
        points.update(p for p, _ in accs)
        points.update(p for p, _ in decs)
        if cap is not None:
            points.add(cap)
        los = sorted(p for p in points if p >= 0)
        bands: list[_Band] = []
        for lo in los:
            if cap is not None and lo >= cap:
                bands.append(_Band(lo, _ZERO, "cap:attainment"))
                break
            tier = [t for p, t in tiers if p <= lo][-1]
            rate = tier.rate
            label = f"tier:{tier.name}"
            acc = [a for p, a in accs if p <= lo]
            if acc:
                rate = _CTX.multiply(rate, acc[-1].multiplier)
                label += f"+accelerator:{acc[-1].name}"
            dec = [d for p, d in decs if lo < p]
            if dec:
                rate = _CTX.multiply(rate, dec[0].multiplier)
                label += f"+decelerator:{dec[0].name}"
            bands.append(_Band(lo, _tidy(rate), label))
        # merge neighbours with the same label (a threshold that changes nothing)
        merged: list[_Band] = []
        for b in bands:
            if merged and merged[-1].label == b.label and merged[-1].rate == b.rate:
                continue
            merged.append(b)
        self.bands = merged
        self.los = [b.lo for b in merged]
        self.cap = cap
        self.retro = r.mode is TierMode.RETROACTIVE

    def at(self, x: Decimal | int) -> _Band:
        i = bisect.bisect_right(self.los, x) - 1
        return self.bands[max(i, 0)]

    def reached(self, x: Decimal | int) -> _Band:
        """The band the attainment ``x`` reached (below the attainment cap)."""
        if self.cap is not None and x >= self.cap:
            i = bisect.bisect_left(self.los, self.cap) - 1
            return self.bands[max(i, 0)]
        return self.at(x)


@attrs.frozen(eq=False)
class CommissionRun:
    """The result of :func:`compute_statements`: statements, problems, notes and the credits."""

    plan: Plan
    period: Period
    statements: tuple[Statement, ...]
    book: CreditBook = attrs.field(repr=False)
    problems: tuple[Problem, ...] = ()

    @property
    def notes(self) -> list[str]:
        return self.book.notes

    def for_rep(self, rep_id: str) -> list[Statement]:
        return [s for s in self.statements if s.rep_id == rep_id]

    def statement(self, rep_id: str, period: Period | str | None = None) -> Statement:
        """The statement of ``rep_id`` (for ``period``, when the run covers several)."""
        found = self.for_rep(rep_id)
        if period is not None:
            p = self.plan.parse_period(period)
            found = [s for s in found if (s.period.start, s.period.end) == (p.start, p.end)]
        if len(found) != 1:
            raise KeyError(f"{len(found)} statements for {rep_id!r} in {period or self.period}")
        return found[0]

    @property
    def total(self) -> Money:
        return Money.from_minor(sum(ln.amount_minor for s in self.statements for ln in s.lines),
                                self.plan.currency)


class _Engine:
    def __init__(self, plan: Plan, book: CreditBook, inputs: CommissionInputs, reps: Mapping[str, Any],
                 period: Period, fast: bool = True) -> None:
        self.plan = plan
        self.fast = fast
        self.book = book
        self.reps = reps
        self.scale = Decimal(10) ** plan.exponent
        self.cur = plan.currency
        self.problems: list[Problem] = []
        # settlement periods from the plan's start through the requested period
        if period.start < plan.start:
            first = plan.settlement_period(period.start)
        else:
            first = plan.settlement_period(plan.start)
        sps: list[Period] = []
        p = first
        while p.start < period.end:
            sps.append(p)
            p = p.shift(1, plan.fiscal)
        if not sps or sps[-1].end != period.end or plan.settlement_period(period.start).start != period.start:
            self.problems.append(Problem(
                "period", "alignment",
                f"{period.label} is not made of whole {plan.settlement.value} settlement periods"))
        self.settlements = sps
        self.starts = [s.start.toordinal() for s in sps]
        self._si: dict[date, int | None] = {}
        self.requested = {i for i, s in enumerate(sps) if s.start >= period.start and s.end <= period.end}
        aps: list[Period] = []
        self.ap_of: list[int] = []
        for s in sps:
            a = plan.attainment_period(s.start)
            if not aps or aps[-1].start != a.start:
                aps.append(a)
            self.ap_of.append(len(aps) - 1)
        self.attainments = aps
        self.quotas: dict[tuple[str, date, date], Quota] = {}
        for q in inputs.quotas:
            k = (q.rep_id, q.period.start, q.period.end)
            if k in self.quotas:
                self.problems.append(Problem(f"quotas[{q.rep_id}]", "duplicate",
                                             f"two quotas for {q.rep_id} in {q.period.label}"))
            self.quotas[k] = q
        self.adjustments: dict[str, list[tuple[int, Adjustment]]] = {}
        for adj in inputs.adjustments:
            day = adj.at.astimezone(plan.tz).date()
            si = self.sindex(day)
            if si is None:
                continue
            if adj.amount.currency != self.cur:
                self.problems.append(Problem(f"adjustments[{adj.id}]", "currency",
                                             f"adjustment {adj.id} is in {adj.amount.currency}, the plan in {self.cur}"))
                continue
            self.adjustments.setdefault(adj.rep_id, []).append((si, adj))
        self._bands: dict[tuple[int, int | None], _Bands] = {}

    def sindex(self, day: date) -> int | None:
        """The index of the settlement period holding ``day`` (``None`` outside the horizon)."""
        try:
            return self._si[day]
        except KeyError:
            pass
        i: int | None = bisect.bisect_right(self.starts, day.toordinal()) - 1
        if i is not None and (i < 0 or day >= self.settlements[-1].end):
            i = None
        self._si[day] = i
        return i

    def bands(self, v: PlanVersion, quota: int | None) -> _Bands:
        k = (v.version, quota)
        b = self._bands.get(k)
        if b is None:
            b = _Bands(v, quota, self.scale)
            self._bands[k] = b
        return b

    def quota(self, rep: str, ap: Period, v: PlanVersion) -> int | None:
        q = self.quotas.get((rep, ap.start, ap.end))
        if q is not None:
            if q.amount.currency != self.cur:
                self.problems.append(Problem(f"quotas[{rep}]", "currency",
                                             f"quota of {rep} for {ap.label} is in {q.amount.currency}, the plan in {self.cur}"))
                return None
            return _round(_CTX.multiply(q.amount.amount, self.scale), v.rounding.mode)
        if v.quota is not None:
            return _round(_CTX.multiply(v.quota, self.scale), v.rounding.mode)
        return None

    # --- one rep ----------------------------------------------------------------------------------
    def rep(self, rep_id: str, idxs: Sequence[int], awards: Sequence[SpifAward]) -> list[Statement]:
        plan = self.plan
        credits = self.book.credits
        nsp = len(self.settlements)
        buckets: list[list[int]] = [[] for _ in range(nsp)]
        sindex = self.sindex
        si_of = self._si.get
        reds: list[int] = []
        if self.fast:
            # the instants of each bucket, read while the credit is at hand
            ats: list[list[datetime]] = [[] for _ in range(nsp)]
            for i in idxs:
                c = credits[i]
                day = c[_DAY]
                si = si_of(day, -1)
                if si == -1:
                    si = sindex(day)
                if si is not None:
                    buckets[si].append(i)
                    ats[si].append(c[_AT])
                if c[_OF] >= 0:
                    reds.append(i)
            for k, b in enumerate(buckets):
                if len(b) > 1:
                    buckets[k] = _in_order_fast(b, ats[k], credits)
        else:
            for i in idxs:
                c = credits[i]
                si = sindex(c[_DAY])
                if si is not None:
                    buckets[si].append(i)
                if c[_OF] >= 0:
                    reds.append(i)
            for k, b in enumerate(buckets):
                if len(b) > 1:
                    buckets[k] = _in_order(b, credits)
        award_b: list[list[SpifAward]] = [[] for _ in range(nsp)]
        for a in awards:
            si = self.sindex(a.day)
            if si is not None:
                award_b[si].append(a)
        adj_b: list[list[Adjustment]] = [[] for _ in range(nsp)]
        for si, adj in self.adjustments.get(rep_id, ()):
            adj_b[si].append(adj)
        ap_index = self.ap_of
        # reductions in the attainment period of their credit, and credits that later
        # attainment periods reduce (those need their final commission)
        same: set[int] = set()
        needed: set[int] = set()
        for i in reds:
            c = credits[i]
            if c.of >= 0:
                si_o = self.sindex(credits[c.of].day)
                si_r = self.sindex(c.day)
                if si_o is None or si_r is None:
                    continue
                if ap_index[si_o] == ap_index[si_r]:
                    same.add(i)
                else:
                    needed.add(c.of)
        origins = {credits[i].of for i in same} | needed
        final_paid: dict[int, int] = {}
        role = getattr(self.reps.get(rep_id), "role", None)
        name = getattr(self.reps.get(rep_id), "name", None)
        out: list[Statement] = []
        draw_balance = 0
        draw_limit: Decimal | None = None
        deficit = 0
        cur = self.cur
        si = 0
        while si < nsp:
            ai = ap_index[si]
            ap = self.attainments[ai]
            v = plan.version_on(ap.start)
            last = si
            while last + 1 < nsp and ap_index[last + 1] == ai:
                last += 1
            quota = self.quota(rep_id, ap, v) if v is not None else None
            has_credits = any(buckets[k] for k in range(si, last + 1))
            bands: _Bands | None = None
            if v is not None and v.needs_quota and quota is None:
                if has_credits:
                    self.problems.append(Problem(
                        f"quotas[{rep_id}]", "missing_quota",
                        f"no quota for {rep_id} in {ap.label}: plan version {v.version} rates or caps need one"))
            elif v is not None:
                bands = self.bands(v, quota)
            items: list[int] = []
            # one settlement period in the attainment period: no later period compares pieces
            direct = (self.fast and si == last and bands is not None and not bands.retro and v is not None
                      and not any(r.multiplier is not None for r in v.rates.rules))
            prev: list[tuple[tuple[str, Any, Decimal, int], ...]] = []
            paid: dict[int, int] = {}
            excess_prev = 0
            cum_total = 0
            position = 0
            for k in range(si, last + 1):
                new_start = len(items)
                items.extend(buckets[k])
                want = k in self.requested
                lines: list[StatementLine] = []
                earn = 0
                if bands is not None and v is not None and items:
                    if direct:
                        position, cum_total, e = self._rate_lines(items, bands, v, same, origins, final_paid,
                                                                  paid, lines if want else None, cur)
                        earn += e
                    else:
                        rate_of = self._rate_fast if self.fast and not bands.retro else self._rate
                        pieces, position, cum_total = rate_of(items, bands, v, same, origins, final_paid, paid)
                        add = lines.append
                        # earlier credits of the attainment period: what changed (true-ups)
                        for j in range(new_start):
                            pcs = pieces[j]
                            old = prev[j]
                            if old == pcs:
                                continue
                            c = credits[items[j]]
                            ver = c[_VERSION]
                            olds = {p[0]: p[3] for p in old}
                            for label, base, rate, value in pcs:
                                d = value - olds.pop(label, 0)
                                if d:
                                    earn += d
                                    if want:
                                        add(_tnew(StatementLine, (_TRUE_UP, d, cur, label, ver, c, base, rate, "",
                                                                  None)))
                            for label, val in olds.items():
                                if val:
                                    earn -= val
                                    if want:
                                        add(_tnew(StatementLine, (_TRUE_UP, -val, cur, label, ver, c, _ZERO, _ZERO,
                                                                  "", None)))
                        # credits of this settlement period
                        for j in range(new_start, len(items)):
                            c = credits[items[j]]
                            kind = _COMMISSION if c[_OF] < 0 else (
                                LineKind.CLAWBACK if c[_KIND] in WINDOWED else LineKind.REVERSAL)
                            ver = c[_VERSION]
                            pcs = pieces[j]
                            if len(pcs) == 1:
                                label, base, rate, value = pcs[0]
                                earn += value
                                if want:
                                    add(_tnew(StatementLine, (kind, value, cur, label, ver, c, base, rate, "", None)))
                                continue
                            for label, base, rate, value in pcs:
                                earn += value
                                if want:
                                    add(_tnew(StatementLine, (kind, value, cur, label, ver, c, base, rate, "", None)))
                        prev = pieces
                # the payout cap (cumulative over the attainment period)
                withheld = 0
                excess = excess_prev
                if v is not None and v.caps.payout is not None:
                    cap = _round(_CTX.multiply(v.caps.payout, self.scale), v.rounding.mode)
                    excess = max(0, cum_total - cap)
                    withheld = excess - excess_prev
                    if withheld:
                        earn -= withheld
                        if want:
                            lines.append(_mkline((LineKind.CAP, -withheld, cur, "cap:payout", v.version, None,
                                                  None, None, f"payout cap {v.caps.payout} {cur} per {ap.label}",
                                                  None)))
                    excess_prev = excess
                for a in award_b[k]:
                    earn += a.amount
                    if want:
                        lines.append(_mkline((LineKind.SPIF, a.amount, cur, f"spif:{a.spif}", a.version, a,
                                              None, None, "" if a.units == 1 else f"× {abs(a.units)}", None)))
                for adj in adj_b[k]:
                    amt = adj.amount.to_minor(v.rounding.mode if v is not None else "ROUND_HALF_EVEN")
                    earn += amt
                    if want:
                        lines.append(_mkline((LineKind.ADJUSTMENT, amt, cur, "adjustment",
                                              v.version if v is not None else 0, adj, None, None, adj.reason, None)))
                # balances: deficits, draws, negative carry, floor
                sp = self.settlements[k]
                sv = plan.version_on(sp.start) or v
                total = earn
                if deficit > 0 and total > 0:
                    r = min(deficit, total)
                    deficit -= r
                    total -= r
                    if want:
                        lines.append(_mkline((LineKind.DEFICIT_RECOVERY, -r, cur, "deficit", sv.version if sv else 0,
                                              None, None, None, "recovery of an earlier negative period", None)))
                draws = [d for d in (sv.draws if sv is not None else ()) if d.applies(rep_id, role, sp)]
                if len(draws) > 1:
                    self.problems.append(Problem(f"draws[{rep_id}]", "draws",
                                                 f"{rep_id} has {len(draws)} draws in {sp.label}; give at most one"))
                    draws = draws[:1]
                assert sv is not None or not draws
                if draws:
                    dr = draws[0]
                    amount = _round(_CTX.multiply(dr.amount, self.scale), sv.rounding.mode)  # type: ignore[union-attr]
                    if dr.recoverable:
                        draw_limit = dr.recovery_limit
                    if total < amount:
                        top = amount - total
                        total = amount
                        if dr.recoverable:
                            draw_balance += top
                        if want:
                            lines.append(_mkline((LineKind.DRAW, top, cur, f"draw:{dr.name}", sv.version,  # type: ignore[union-attr]
                                                  None, None, None,
                                                  "recoverable advance" if dr.recoverable else "non-recoverable guarantee",
                                                  None)))
                    elif draw_balance > 0:
                        r = self._recover(draw_balance, total - amount, draw_limit)
                        if r:
                            draw_balance -= r
                            total -= r
                            if want:
                                lines.append(_mkline((LineKind.DRAW_RECOVERY, -r, cur, f"draw:{dr.name}",
                                                      sv.version, None, None, None, "", None)))  # type: ignore[union-attr]
                elif draw_balance > 0 and total > 0:
                    r = self._recover(draw_balance, total, draw_limit)
                    if r:
                        draw_balance -= r
                        total -= r
                        if want:
                            lines.append(_mkline((LineKind.DRAW_RECOVERY, -r, cur, "draw", sv.version if sv else 0,
                                                  None, None, None, "", None)))
                if total < 0 and (sv is None or sv.payout.carry_negative):
                    deficit += -total
                    if want:
                        lines.append(_mkline((LineKind.CARRY_FORWARD, -total, cur, "deficit", sv.version if sv else 0,
                                              None, None, None, "negative period carried forward", None)))
                    total = 0
                if sv is not None and sv.payout.minimum is not None:
                    floor = _round(_CTX.multiply(sv.payout.minimum, self.scale), sv.rounding.mode)
                    if total < floor:
                        if want:
                            lines.append(_mkline((LineKind.FLOOR, floor - total, cur, "floor", sv.version, None,
                                                  None, None, f"minimum payout {sv.payout.minimum} {cur}", None)))
                        total = floor
                if want:
                    tier = None
                    att = None
                    if bands is not None:
                        tier = bands.reached(position).label
                        if quota:
                            att = _CTX.divide(Decimal(position), Decimal(quota))
                    out.append(Statement(
                        plan_key=plan.key, plan_name=plan.name,
                        plan_version=None if sv is None else sv.version,
                        rep_id=rep_id, rep_name=name, period=sp, attainment_period=ap, currency=cur,
                        lines=tuple(lines),
                        quota=None if quota is None else Money.from_minor(quota, cur),
                        credited=Money.from_minor(int(position), cur),
                        attainment=att, tier=tier,
                        withheld=Money.from_minor(withheld, cur),
                        withheld_to_date=Money.from_minor(excess, cur),
                        draw_balance=Money.from_minor(draw_balance, cur),
                        deficit=Money.from_minor(deficit, cur),
                    ))
            # the attainment period is over: keep what reduced credits finally earned
            if needed and paid and v is not None:
                kept = cum_total - excess_prev
                for i in needed:
                    if i in paid:
                        amt = paid[i]
                        if excess_prev and cum_total > 0:
                            amt = _round(_CTX.divide(_CTX.multiply(Decimal(amt), Decimal(kept)),
                                                     Decimal(cum_total)), v.rounding.mode)
                        final_paid[i] = amt
            si = last + 1
        return out

    @staticmethod
    def _recover(balance: int, available: int, limit: Decimal | None) -> int:
        if available <= 0:
            return 0
        cap = available if limit is None else int(_CTX.multiply(Decimal(available), limit))
        return min(balance, cap)

    def _rate(self, items: list[int], bands: _Bands, v: PlanVersion, same: set[int], origins: set[int],
              final_paid: Mapping[int, int], paid: dict[int, int],
              ) -> tuple[list[tuple[tuple[str, Any, Decimal, int], ...]], int, int]:
        """Rate ``items`` (in order): the pieces of each, the attainment position reached and the
        commission total of the attainment period (``paid`` gets the total of each origin)."""
        credits = self.book.credits
        mode = v.rounding.mode
        rules = v.rates.rules
        mul = _CTX.multiply
        # the position reached, for retroactive bands
        final = 0
        if bands.retro:
            for i in items:
                c = credits[i]
                if c[_COUNTS] and (c[_OF] < 0 or i in same):
                    final += c[_AMOUNT]
        retro_band = bands.reached(final) if bands.retro else None
        cap = bands.cap
        los = bands.los
        bl = bands.bands
        nb = len(bl)
        single = bands.bands[0] if nb == 1 else None
        out: list[tuple[tuple[str, Any, Decimal, int], ...]] = []
        append = out.append
        total = 0
        pos = 0
        for i in items:
            c = credits[i]
            a = c[_AMOUNT]
            of = c[_OF]
            counts = c[_COUNTS]
            if of >= 0:
                counted = i in same
                if counted and counts:
                    pos += a
                base, val, share = _against_origin(counted, of, c[_FRACTION], c[_PRIOR], paid, final_paid,
                                                   _integral(mode))
                label = ("clawback:" if c[_KIND] in WINDOWED else "reversal:") + _pct(share)
                append(((label, base, -share, val),))
                if counted:
                    total += val
                continue
            ri = c[_RULE]
            rule = rules[ri] if ri >= 0 else None
            if single is not None and rule is None:
                # one band and no rule: the common flat case
                val = _round(mul(single.rate, a), mode)
                pcs: tuple[tuple[str, Any, Decimal, int], ...] = ((single.label, a, single.rate, val),)
                if counts:
                    pos += a
            elif rule is not None and rule.rate is not None:
                pcs = ((f"rule:{rule.name}", a, rule.rate, _round(mul(rule.rate, a), mode)),)
                if counts:
                    pos += a
            elif not counts:
                b = retro_band if retro_band is not None else bands.at(pos)
                pcs = ((b.label, a, b.rate, _round(mul(b.rate, a), mode)),)
            else:
                lo = pos
                hi = pos + a
                pos = hi
                if retro_band is not None:
                    rb = retro_band
                    if cap is not None and hi > cap:
                        below = cap - lo if lo < cap else _ZERO
                        lst: list[tuple[str, Any, Decimal, int]] = []
                        if below:
                            lst.append((rb.label, below, rb.rate, _round(mul(rb.rate, below), mode)))
                        lst.append(("cap:attainment", a - below, _ZERO, 0))
                        pcs = tuple(lst)
                    else:
                        pcs = ((rb.label, a, rb.rate, _round(mul(rb.rate, a), mode)),)
                else:
                    j = bisect.bisect_right(los, lo) - 1
                    if j < 0:
                        j = 0
                    if j + 1 >= nb or hi <= los[j + 1]:
                        b = bl[j]
                        pcs = ((b.label, a, b.rate, _round(mul(b.rate, a), mode)),)
                    else:
                        lst = []
                        x: Any = lo
                        while x < hi:
                            b = bl[j]
                            top = los[j + 1] if j + 1 < nb else hi
                            end = hi if top > hi else top
                            base = end - x
                            if base > 0:
                                lst.append((b.label, base, b.rate, _round(mul(b.rate, base), mode)))
                            x = end
                            j += 1
                        pcs = tuple(lst)
            if rule is not None and rule.multiplier is not None:
                m = rule.multiplier
                pcs = tuple((f"{p[0]}+rule:{rule.name}", p[1], _tidy(mul(p[2], m)),
                             _round(mul(mul(p[2], m), p[1]), mode)) for p in pcs)
            append(pcs)
            if len(pcs) == 1:
                t = pcs[0][3]
            else:
                t = 0
                for p in pcs:
                    t += p[3]
            total += t
            if i in origins:
                paid[i] = t
        return out, (final if bands.retro else pos), total

    def _rate_fast(self, items: list[int], bands: _Bands, v: PlanVersion, same: set[int], origins: set[int],
                   final_paid: Mapping[int, int], paid: dict[int, int],
                   ) -> tuple[list[tuple[tuple[str, Any, Decimal, int], ...]], int, int]:
        """:meth:`_rate` for graduated bands, with the credit's fields unpacked at once, the
        bands and rules read once, and rounding as one C call: the same pieces, position and
        total (tests compare the two)."""
        rules = v.rates.rules
        if any(r.multiplier is not None for r in rules):
            return self._rate(items, bands, v, same, origins, final_paid, paid)
        credits = self.book.credits
        mode = v.rounding.mode
        rnd = _integral(mode)
        mul = _CTX.multiply
        bisect_right = bisect.bisect_right
        # (label, rate) of the rules that replace the rate; None for the others
        rule_rates = [(f"rule:{r.name}", r.rate) if r.rate is not None else None for r in rules]
        los = bands.los
        labels = [b.label for b in bands.bands]
        rates = [b.rate for b in bands.bands]
        nb = len(los)
        out: list[tuple[tuple[str, Any, Decimal, int], ...]] = []
        append = out.append
        total = 0
        pos = 0
        for i in items:
            (_r, _d, _ro, kind, _e, _at, _day, a, _v, ri, counts, _s, _src, _fx, _via, of, fr, pr) = credits[i]
            if of >= 0:
                counted = i in same
                if counted and counts:
                    pos += a
                base, val, share = _against_origin(counted, of, fr, pr, paid, final_paid, rnd)
                label = ("clawback:" if kind in WINDOWED else "reversal:") + _pct(share)
                append(((label, base, -share, val),))
                if counted:
                    total += val
                continue
            rr = rule_rates[ri] if ri >= 0 else None
            if rr is not None:
                label, rate = rr
                t = int(rnd(mul(rate, a)))
                append(((label, a, rate, t),))
                if counts:
                    pos += a
            elif not counts:
                j = bisect_right(los, pos) - 1
                if j < 0:
                    j = 0
                rate = rates[j]
                t = int(rnd(mul(rate, a)))
                append(((labels[j], a, rate, t),))
            else:
                lo = pos
                hi = pos + a
                pos = hi
                j = bisect_right(los, lo) - 1
                if j < 0:
                    j = 0
                if j + 1 >= nb or hi <= los[j + 1]:
                    rate = rates[j]
                    t = int(rnd(mul(rate, a)))
                    append(((labels[j], a, rate, t),))
                else:
                    lst: list[tuple[str, Any, Decimal, int]] = []
                    t = 0
                    x: Any = lo
                    while x < hi:
                        top = los[j + 1] if j + 1 < nb else hi
                        end = hi if top > hi else top
                        base = end - x
                        if base > 0:
                            rate = rates[j]
                            val = int(rnd(mul(rate, base)))
                            lst.append((labels[j], base, rate, val))
                            t += val
                        x = end
                        j += 1
                    append(tuple(lst))
            total += t
            if i in origins:
                paid[i] = t
        return out, pos, total

    def _rate_lines(self, items: list[int], bands: _Bands, v: PlanVersion, same: set[int], origins: set[int],
                    final_paid: Mapping[int, int], paid: dict[int, int], lines: list[StatementLine] | None,
                    cur: str) -> tuple[int, int, int]:
        """:meth:`_rate_fast` for an attainment period of one settlement period (graduated bands,
        no multiplier rule): each credit's lines are added to ``lines`` (when given) as it is
        rated. Returns the position, the commission total and the earnings of the lines."""
        credits = self.book.credits
        rnd = _integral(v.rounding.mode)
        mul = _CTX.multiply
        bisect_right = bisect.bisect_right
        rule_rates = [(f"rule:{r.name}", r.rate) if r.rate is not None else None for r in v.rates.rules]
        los = bands.los
        labels = [b.label for b in bands.bands]
        rates = [b.rate for b in bands.bands]
        nb = len(los)
        add = lines.append if lines is not None else None
        total = 0
        earn = 0
        pos = 0
        for i in items:
            c = credits[i]
            (_r, _d, _ro, kind, _e, _at, _day, a, ver, ri, counts, _s, _src, _fx, _via, of, fr, pr) = c
            if of >= 0:
                counted = i in same
                if counted and counts:
                    pos += a
                base, val, share = _against_origin(counted, of, fr, pr, paid, final_paid, rnd)
                if kind in WINDOWED:
                    lk, label = _CLAWBACK, "clawback:" + _pct(share)
                else:
                    lk, label = _REVERSAL, "reversal:" + _pct(share)
                earn += val
                if add is not None:
                    add(_tnew(StatementLine, (lk, val, cur, label, ver, c, base, -share, "", None)))
                if counted:
                    total += val
                continue
            rr = rule_rates[ri] if ri >= 0 else None
            if rr is not None:
                label, rate = rr
                t = int(rnd(mul(rate, a)))
                if add is not None:
                    add(_tnew(StatementLine, (_COMMISSION, t, cur, label, ver, c, a, rate, "", None)))
                if counts:
                    pos += a
            elif not counts:
                j = bisect_right(los, pos) - 1
                if j < 0:
                    j = 0
                rate = rates[j]
                t = int(rnd(mul(rate, a)))
                if add is not None:
                    add(_tnew(StatementLine, (_COMMISSION, t, cur, labels[j], ver, c, a, rate, "", None)))
            else:
                lo = pos
                hi = pos + a
                pos = hi
                j = bisect_right(los, lo) - 1
                if j < 0:
                    j = 0
                if j + 1 >= nb or hi <= los[j + 1]:
                    rate = rates[j]
                    t = int(rnd(mul(rate, a)))
                    if add is not None:
                        add(_tnew(StatementLine, (_COMMISSION, t, cur, labels[j], ver, c, a, rate, "", None)))
                else:
                    t = 0
                    x: Any = lo
                    while x < hi:
                        top = los[j + 1] if j + 1 < nb else hi
                        end = hi if top > hi else top
                        base = end - x
                        if base > 0:
                            rate = rates[j]
                            val = int(rnd(mul(rate, base)))
                            if add is not None:
                                add(_tnew(StatementLine, (_COMMISSION, val, cur, labels[j], ver, c, base, rate, "",
                                                          None)))
                            t += val
                        x = end
                        j += 1
            earn += t
            total += t
            if i in origins:
                paid[i] = t
        return pos, total, earn


def _in_order_fast(b: list[int], ats: list[datetime], credits: Sequence[Credit]) -> list[int]:
    """:func:`_in_order` given the instants ``ats`` of ``b``, looking for equal instants among
    sorted neighbours in C (the general function breaks ties)."""
    order = sorted(range(len(b)), key=ats.__getitem__)
    out = [b[k] for k in order]
    sats = [ats[k] for k in order]
    if not any(map(_eq, sats, islice(sats, 1, None))):
        return out
    return _in_order(b, credits)


def _in_order(b: list[int], credits: Sequence[Credit]) -> list[int]:
    """Credit indices ``b`` (ascending) ordered by instant, then deal id, then index."""
    ats = [credits[i][_AT] for i in b]
    order = sorted(range(len(b)), key=ats.__getitem__)  # stable: equal instants keep index order
    out = [b[k] for k in order]
    n = len(out)
    j = 0
    while j < n:
        at = ats[order[j]]
        k = j + 1
        while k < n and ats[order[k]] == at:
            k += 1
        if k - j > 1:
            out[j:k] = sorted(out[j:k], key=lambda i: (credits[i][_DEAL], i))
        j = k
    return out


def _pct(share: Decimal) -> str:
    return f"{(share * 100).normalize():f}%"


def compute_run(plan: Plan, book: CreditBook, inputs: CommissionInputs, reps: Mapping[str, Any],
                period: Period, only: Iterable[str] | None, *, fast: bool = True) -> CommissionRun:
    eng = _Engine(plan, book, inputs, reps, period, fast)
    by_rep = book.by_rep()
    awards: dict[str, list[SpifAward]] = {}
    for a in book.awards:
        awards.setdefault(a.rep_id, []).append(a)
    wanted: set[str]
    if only is not None:
        wanted = set(only)
    else:
        wanted = set(by_rep) | set(awards) | set(eng.adjustments)
        # every eligible rep gets a statement, zero or not
        for sp_i in eng.requested:
            sp = eng.settlements[sp_i]
            v = plan.version_on(plan.attainment_period(sp.start).start)
            if v is None:
                continue
            for rid, r in reps.items():
                elig = v.eligibility
                if (elig.roles or elig.reps) and elig.admits(rid, getattr(r, "role", None)):
                    wanted.add(rid)
                if any(d.applies(rid, getattr(r, "role", None), sp) for d in v.draws if d.reps or d.roles):
                    wanted.add(rid)
    statements: list[Statement] = []
    if not eng.problems:
        for rid in sorted(wanted):
            # each rep's index list is dropped once used: less memory held while lines pile up
            statements.extend(eng.rep(rid, by_rep.pop(rid, ()), awards.get(rid, ())))
    statements.sort(key=lambda s: (s.period.start, s.rep_id))
    return CommissionRun(plan, period, tuple(statements), book, tuple(book.problems) + tuple(eng.problems))
