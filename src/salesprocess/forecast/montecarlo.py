"""Seeded, reproducible Monte Carlo of a period's revenue.

Every open deal either closes won inside the period or does not: a Bernoulli draw with the deal's
effective probability ``p`` (its win probability times the share expected to close in the period).
A trial's revenue is the revenue already won in the period plus the amounts of the deals drawn as
won. The simulation reports P10/P50/P90, the mean, the probability of reaching a target, and the
deals that move the outcome most.

**The random numbers** (one documented generator, the same on every engine):

- One stream per simulation: ``random.Random(f"montecarlo:{seed}")``, CPython's Mersenne Twister
  (MT19937). A ``str`` seed is turned into the key ``int.from_bytes(s + sha512(s), "big")`` split
  into 32-bit words (CPython's version-2 seeding), which is stable across runs, platforms and
  ``PYTHONHASHSEED``, and which NumPy's ``RandomState(key_words)`` reproduces exactly
  (``init_by_array``).
- Deals draw in the order of their ids (sorted as strings).
- ``p`` is rounded half-even to ``k = 16`` binary places: ``threshold = round(p × 65536)``.
  ``threshold = 0`` never wins and ``threshold = 65536`` always wins; neither draws numbers.
- Any other deal draws 16 *bit planes* of ``W`` bits each, ``W`` being the number of trials rounded
  up to a multiple of 64: plane ``j`` is ``getrandbits(W)`` (32-bit outputs filled from the least
  significant word up), bit ``t`` of plane ``j`` is bit ``15 − j`` of trial ``t``'s 16-bit uniform
  ``U_t``, and the deal wins trial ``t`` when ``U_t < threshold``.

The pure-Python engine compares all trials at once with big-integer bit operations; the NumPy
engine reads the same 32-bit outputs with ``RandomState.randint(0, 2**32, dtype=uint32)`` (which
returns the raw outputs for the full range) and compares them in arrays. Both produce the same win
masks, so the same trials, bit for bit.

:func:`simulate_groups` draws once and totals several groups of deals (a team, its reps, the
company) from the same trials, so a team's trials add up exactly to its share of the company's.

**Money** never becomes a float: amounts are taken in integer minor units of the currency
(rounded half-even when an amount has finer digits), trial totals are exact integers (the NumPy
engine adds eight deals at a time through a table of their amounts' subset sums in int64, and falls
back to exact big integers when the amounts could overflow it), and the percentiles use linear interpolation between closest ranks (type 7, as
:func:`salesprocess.kpi.stats.percentile`), rounded half-even to minor units.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs

from salesprocess.errors import CurrencyMismatchError, DomainError
from salesprocess.kpi import stats
from salesprocess.money import Money, Rate

__all__ = [
    "PROBABILITY_BITS",
    "Mover",
    "SimDeal",
    "SimGroup",
    "Simulation",
    "numpy_available",
    "simulate",
    "simulate_groups",
]

PROBABILITY_BITS = 16
"""Binary places of the effective probabilities (``threshold = round(p × 2**16)``)."""
_ONE = 1 << PROBABILITY_BITS
_CHUNK = 256


def numpy_available() -> bool:
    """Whether the NumPy engine can run (the ``numpy`` extra is installed)."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


@attrs.frozen
class SimDeal:
    """One open deal in a simulation: its amount and effective probability of closing won in the
    period (win probability × share in the period)."""

    deal_id: str
    amount: Money
    probability: Rate = attrs.field()
    group: str = ""
    """The leaf group the deal belongs to (e.g. its owner), for :func:`simulate_groups`."""

    @probability.validator
    def _check(self, _a: Any, v: Rate) -> None:
        if not isinstance(v, Rate) or not v.is_probability():
            raise DomainError(f"deal {self.deal_id}: probability must be a Rate within [0, 1]")


@attrs.frozen
class Mover:
    """A deal that moves the outcome: how much of the variance it carries and, with a target, the
    chance of reaching the target when it is won versus when it is not."""

    deal_id: str
    amount: Money
    probability: Rate
    variance_share: Rate
    p_target_if_won: Rate | None = None
    p_target_if_lost: Rate | None = None

    @property
    def swing(self) -> Rate | None:
        """``p_target_if_won − p_target_if_lost`` (None without a target or when undefined)."""
        if self.p_target_if_won is None or self.p_target_if_lost is None:
            return None
        return Rate(self.p_target_if_won.value - self.p_target_if_lost.value)


@attrs.frozen
class Simulation:
    """The result of :func:`simulate`. Money is rounded half-even to the currency's minor units."""

    trials: int
    seed: int
    engine: str
    currency: str
    base: Money
    """Revenue already won in the period, added to every trial."""
    expected: Money
    """``base + Σ amount × p`` (exact expectation, not sampled)."""
    mean: Money
    p10: Money
    p50: Money
    p90: Money
    target: Money | None
    p_target: Rate | None
    """Share of trials whose revenue reaches ``target``."""
    movers: tuple[Mover, ...]
    deals: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials, "seed": self.seed, "engine": self.engine,
            "currency": self.currency, "deals": self.deals, "base": self.base,
            "expected": self.expected, "mean": self.mean, "p10": self.p10, "p50": self.p50,
            "p90": self.p90, "target": self.target, "p_target": self.p_target,
            "movers": [
                {"deal_id": m.deal_id, "amount": m.amount, "probability": m.probability,
                 "variance_share": m.variance_share, "p_target_if_won": m.p_target_if_won,
                 "p_target_if_lost": m.p_target_if_lost, "swing": m.swing}
                for m in self.movers
            ],
        }


def _threshold(p: Rate) -> int:
    return int((p.value * _ONE).to_integral_value(rounding=ROUND_HALF_EVEN))


def _minor(m: Money) -> int:
    return m.to_minor(ROUND_HALF_EVEN)


# ------------------------------------------------------------------------------------------------
# Engines: both return (win masks, per-trial totals in minor units)
# ------------------------------------------------------------------------------------------------


def _stream_seed(seed: int) -> str:
    return f"montecarlo:{seed}"


def _key_words(text: str) -> list[int]:
    """The ``init_by_array`` key CPython derives from a ``str`` seed."""
    import hashlib

    b = text.encode()
    n = int.from_bytes(b + hashlib.sha512(b).digest(), "big")
    words = []
    while n:
        words.append(n & 0xFFFFFFFF)
        n >>= 32
    return words or [0]


def _masks_python(thresholds: Sequence[int], trials: int, seed: int) -> list[int]:
    width = -(-trials // 64) * 64
    everyone = (1 << trials) - 1
    rng = random.Random(_stream_seed(seed))
    draw = rng.getrandbits
    k = PROBABILITY_BITS
    out = []
    for thr in thresholds:
        if thr <= 0:
            out.append(0)
            continue
        if thr >= _ONE:
            out.append(everyone)
            continue
        lt = 0
        eq = everyone
        for j in range(k):
            u = draw(width)
            if (thr >> (k - 1 - j)) & 1:
                lt |= eq & ~u
                eq &= u
            else:
                eq &= ~u
        out.append(lt)
    return out


def _masks_numpy(thresholds: Sequence[int], trials: int, seed: int) -> Any:
    import numpy as np

    k = PROBABILITY_BITS
    width = -(-trials // 64) * 64
    words = width // 64
    everyone = np.zeros(words, dtype="<u8")
    full, rest = divmod(trials, 64)
    everyone[:full] = np.uint64(0xFFFFFFFFFFFFFFFF)
    if rest:
        everyone[full] = np.uint64((1 << rest) - 1)
    rs = np.random.RandomState(np.array(_key_words(_stream_seed(seed)), dtype=np.uint32))
    thr = np.asarray(thresholds, dtype=np.int64)
    masks = np.zeros((len(thresholds), words), dtype="<u8")
    masks[thr >= _ONE] = everyone
    drawing = np.flatnonzero((thr > 0) & (thr < _ONE))
    shifts = np.arange(k - 1, -1, -1, dtype=np.int64)
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    for lo in range(0, len(drawing), _CHUNK):
        idx = drawing[lo: lo + _CHUNK]
        n = len(idx)
        raw = rs.randint(0, 2**32, size=n * k * words * 2, dtype=np.uint32)
        u = raw.view("<u8").reshape(n, k, words)
        bitmask = (((thr[idx][:, None] >> shifts[None, :]) & 1).astype(np.uint64) * ones)
        lt = np.zeros((n, words), dtype="<u8")
        eq = np.broadcast_to(everyone, (n, words)).copy()
        for j in range(k):
            uj = u[:, j, :]
            bj = bitmask[:, j][:, None]
            lt |= eq & ~uj & bj
            eq &= uj ^ ~bj
        masks[idx] = lt
    return masks


def _add(planes: list[int], mask: int, amount: int) -> None:
    """Add ``amount`` to every trial in ``mask``; ``planes[b]`` holds bit ``b`` of each total."""
    b = 0
    while amount:
        if amount & 1:
            if len(planes) < b:
                planes.extend([0] * (b - len(planes)))
            carry = mask
            i = b
            while carry:
                if i == len(planes):
                    planes.append(carry)
                    break
                s = planes[i]
                planes[i] = s ^ carry
                carry &= s
                i += 1
        amount >>= 1
        b += 1


def _decode(planes: list[int], trials: int) -> list[int]:
    totals = [0] * trials
    for b, plane in enumerate(planes):
        if not plane:
            continue
        v = 1 << b
        bits = bin(plane)[:1:-1]  # least significant first
        i = bits.find("1")
        while i >= 0:
            totals[i] += v
            i = bits.find("1", i + 1)
    return totals


def _totals_python(masks: Sequence[int], amounts: Sequence[int], members: Sequence[Sequence[int]],
                   trials: int) -> list[list[int]]:
    out = []
    for idx in members:
        planes: list[int] = []
        for i in idx:
            if masks[i] and amounts[i]:
                _add(planes, masks[i], amounts[i])
        out.append(_decode(planes, trials))
    return out


_U64_MASKS = (
    (7, 0x00AA00AA00AA00AA),
    (14, 0x0000CCCC0000CCCC),
    (28, 0x00000000F0F0F0F0),
)


def _leaf_totals_numpy(masks: Any, amounts: Any, trials: int) -> Any:
    """Exact int64 totals per trial of the deals in ``masks`` (rows) with ``amounts``.

    Deals are taken eight at a time: an 8×8 bit transpose turns their masks into one byte per
    trial (bit ``r`` = deal ``r`` won), and a 256-entry table of the eight amounts' subset sums
    gives each trial's share.
    """
    import numpy as np

    n = len(masks)
    pad = (-n) % 8
    if pad:
        masks = np.vstack([masks, np.zeros((pad, masks.shape[1]), dtype=masks.dtype)])
        amounts = np.concatenate([amounts, np.zeros(pad, dtype=np.int64)])
    g = len(masks) // 8
    nbytes = masks.shape[1] * 8
    x = np.ascontiguousarray(
        masks.view(np.uint8).reshape(g, 8, nbytes).transpose(0, 2, 1)
    ).view("<u8").reshape(g, nbytes)
    for shift, m in _U64_MASKS:
        sh = np.uint64(shift)
        t = (x ^ (x >> sh)) & np.uint64(m)
        x = x ^ t ^ (t << sh)
    idx = x.view(np.uint8).reshape(g, nbytes * 8)[:, :trials]
    subsets = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(np.int64)
    tables = (amounts.reshape(g, 8) @ subsets.T).ravel()
    return tables[(np.arange(g) * 256)[:, None] + idx].sum(axis=0)


def _totals_numpy(masks: Any, amounts: Sequence[int], leaves: Sequence[int],
                  members: Sequence[Sequence[int]], trials: int) -> list[list[int]]:
    """Totals per group: each leaf's trials are summed once, groups add their leaves' rows."""
    import numpy as np

    if sum(amounts) >= (1 << 62):  # int64 could overflow: exact big-integer path
        ints = [int.from_bytes(m.tobytes(), "little") for m in masks]
        return _totals_python(ints, amounts, members, trials)
    amt = np.asarray(amounts, dtype=np.int64)
    n_leaves = max(leaves, default=-1) + 1
    by_leaf: list[list[int]] = [[] for _ in range(n_leaves)]
    for i, leaf in enumerate(leaves):
        by_leaf[leaf].append(i)
    needed = sorted({leaves[i] for idx in members for i in idx})
    leaf_rows: dict[int, Any] = {}
    for leaf in needed:
        rows = np.asarray(by_leaf[leaf], dtype=np.int64)
        row = np.zeros(trials, dtype=np.int64)
        for lo in range(0, len(rows), 1024):
            part = rows[lo: lo + 1024]
            row += _leaf_totals_numpy(masks[part], amt[part], trials)
        leaf_rows[leaf] = row
    out = []
    for idx in members:
        group_leaves = sorted({leaves[i] for i in idx})
        if any(set(by_leaf[lf]) - set(idx) for lf in group_leaves):
            raise DomainError("a simulation group must hold whole leaves")
        tot = np.zeros(trials, dtype=np.int64)
        for lf in group_leaves:
            tot += leaf_rows[lf]
        out.append(tot.tolist())
    return out


def _count(mask: Any) -> int:
    if isinstance(mask, int):
        return mask.bit_count()
    import numpy as np

    return int(np.unpackbits(mask.view(np.uint8)).sum())


def _hit_counts(masks: Any, idx: Sequence[int], hits: Sequence[bool], engine: str) -> list[int]:
    """For each deal of ``idx``: in how many trials it won and the group reached its target."""
    if engine == "python":
        hit_mask = int("".join("1" if h else "0" for h in reversed(hits)) or "0", 2)
        return [(masks[i] & hit_mask).bit_count() for i in idx]
    import numpy as np

    words = masks.shape[1]
    flags = np.zeros(words * 64, dtype=np.uint8)
    flags[: len(hits)] = np.asarray(hits, dtype=bool)
    hm = np.packbits(flags, bitorder="little").view("<u8")
    sel = masks[np.asarray(idx, dtype=np.int64)] & hm
    if hasattr(np, "bitwise_count"):
        return [int(x) for x in np.bitwise_count(sel).sum(axis=1)]
    return [int(x) for x in np.unpackbits(sel.view(np.uint8), axis=1).sum(axis=1)]


def _won_counts(masks: Any, idx: Sequence[int], engine: str) -> list[int]:
    if engine == "python":
        return [masks[i].bit_count() for i in idx]
    import numpy as np

    sel = masks[np.asarray(idx, dtype=np.int64)]
    if hasattr(np, "bitwise_count"):
        return [int(x) for x in np.bitwise_count(sel).sum(axis=1)]
    return [int(x) for x in np.unpackbits(sel.view(np.uint8), axis=1).sum(axis=1)]


# ------------------------------------------------------------------------------------------------
# The public entry points
# ------------------------------------------------------------------------------------------------


def _frozen(v: Iterable[str]) -> frozenset[str]:
    return frozenset(v)


@attrs.frozen
class SimGroup:
    """A group of simulated deals to total: the deals whose ``group`` is one of ``leaves``."""

    key: str
    leaves: frozenset[str] = attrs.field(converter=_frozen)
    base: Money | None = None
    target: Money | None = None


def _money(minor: Decimal, currency: str) -> Money:
    return Money(minor.scaleb(-Money.zero(currency).exponent), currency).round(ROUND_HALF_EVEN)


def _rate(num: int, den: int) -> Rate:
    return Rate(stats.tidy(Decimal(num) / Decimal(den), 4))


def _check_args(trials: int, seed: int, engine: str) -> str:
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise DomainError(f"trials must be a positive integer, got {trials!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DomainError(f"seed must be a non-negative integer, got {seed!r}")
    if engine not in ("auto", "python", "numpy"):
        raise DomainError(f"engine must be auto, python or numpy, got {engine!r}")
    if engine == "auto":
        return "numpy" if numpy_available() else "python"
    if engine == "numpy" and not numpy_available():
        raise DomainError("the numpy engine needs NumPy: pip install 'salesprocess[numpy]'")
    return engine


def simulate_groups(
    deals: Sequence[SimDeal],
    groups: Sequence[SimGroup],
    *,
    currency: str,
    trials: int = 10_000,
    seed: int = 0,
    engine: str = "auto",
    movers: int = 10,
) -> dict[str, Simulation]:
    """Draw once (see the module documentation) and summarise each group of deals.

    A deal belongs to a group when its ``group`` is one of the group's ``leaves``.
    """
    engine = _check_args(trials, seed, engine)
    seen: set[str] = set()
    for d in deals:
        if d.amount.currency != currency:
            raise CurrencyMismatchError(currency, d.amount.currency, f"simulate deal {d.deal_id}")
        if d.deal_id in seen:
            raise DomainError(f"deal {d.deal_id} appears twice in the simulation")
        seen.add(d.deal_id)
    for g in groups:
        for m in (g.base, g.target):
            if m is not None and m.currency != currency:
                raise CurrencyMismatchError(currency, m.currency, f"simulate group {g.key}")
    ordered = sorted(deals, key=lambda d: d.deal_id)
    thresholds = [_threshold(d.probability) for d in ordered]
    amounts = [_minor(d.amount) for d in ordered]
    if any(a < 0 for a in amounts):
        raise DomainError("simulated amounts must not be negative")
    leaf_ids = {g: i for i, g in enumerate(sorted({d.group for d in ordered}))}
    leaves = [leaf_ids[d.group] for d in ordered]
    members = [[i for i, d in enumerate(ordered) if d.group in g.leaves] for g in groups]
    if engine == "numpy":
        masks: Any = _masks_numpy(thresholds, trials, seed)
        totals = _totals_numpy(masks, amounts, leaves, members, trials)
    else:
        masks = _masks_python(thresholds, trials, seed)
        totals = _totals_python(masks, amounts, members, trials)
    out: dict[str, Simulation] = {}
    for g, idx, tot in zip(groups, members, totals, strict=True):
        out[g.key] = _summary(ordered, idx, masks, amounts, thresholds, tot, g, currency, trials,
                              seed, engine, movers)
    return out


def simulate(
    deals: Sequence[SimDeal],
    *,
    currency: str,
    trials: int = 10_000,
    seed: int = 0,
    base: Money | None = None,
    target: Money | None = None,
    engine: str = "auto",
    movers: int = 10,
) -> Simulation:
    """Simulate ``trials`` outcomes of the period (see the module documentation).

    ``engine`` is ``"python"``, ``"numpy"`` or ``"auto"`` (NumPy when installed); every engine gives
    the same numbers. ``base`` is revenue already won; ``target`` the goal to reach. ``movers`` is
    how many deals to report, ranked by swing when a target is given, else by variance share.
    """
    group = SimGroup("all", frozenset(d.group for d in deals), base, target)
    return simulate_groups(deals, [group], currency=currency, trials=trials, seed=seed,
                           engine=engine, movers=movers)["all"]


def _summary(
    ordered: Sequence[SimDeal], idx: Sequence[int], masks: Any, amounts: Sequence[int],
    thresholds: Sequence[int], totals: list[int], g: SimGroup, currency: str, trials: int,
    seed: int, engine: str, movers: int,
) -> Simulation:
    base = g.base if g.base is not None else Money.zero(currency)
    base_minor = _minor(base)
    srt = sorted(totals)
    exp_minor = Decimal(base_minor)
    for i in idx:
        exp_minor += Decimal(amounts[i]) * ordered[i].probability.value

    def pct(p: str) -> Money:
        v = stats.percentile(srt, Decimal(p))
        assert v is not None
        return _money(v + base_minor, currency)

    mean = _money(Decimal(sum(totals)) / Decimal(trials) + base_minor, currency)
    # movers: variance a²p(1−p) of each deal's Bernoulli term, with the quantised p actually drawn
    var = {i: amounts[i] * amounts[i] * thresholds[i] * (_ONE - thresholds[i]) for i in idx}
    var_total = sum(var.values())
    cands = sorted((i for i in idx if var[i] > 0), key=lambda i: (-var[i], ordered[i].deal_id))
    ranked: list[Mover] = []
    p_target = None
    if g.target is not None:
        need = _minor(g.target) - base_minor
        hits = [t >= need for t in totals]
        n_hits = sum(hits)
        p_target = _rate(n_hits, trials)
        won = _won_counts(masks, cands, engine)
        both = _hit_counts(masks, cands, hits, engine)
        scored = []
        for i, w, hw in zip(cands, won, both, strict=True):
            lost = trials - w
            # ranking only (IEEE division is exact-rounded, so every engine ranks alike)
            sw = hw / w if w else 0.0
            sl = (n_hits - hw) / lost if lost else 0.0
            scored.append((abs(sw - sl), i, w, hw))
        scored.sort(key=lambda x: (-x[0], -var[x[1]], ordered[x[1]].deal_id))
        for _, i, w, hw in scored[:movers]:
            lost = trials - w
            pw = _rate(hw, w) if w else None
            pl = _rate(n_hits - hw, lost) if lost else None
            ranked.append(Mover(ordered[i].deal_id, ordered[i].amount, ordered[i].probability,
                                _rate(var[i], var_total), pw, pl))
    else:
        for i in cands[:movers]:
            ranked.append(Mover(ordered[i].deal_id, ordered[i].amount, ordered[i].probability,
                                _rate(var[i], var_total)))
    return Simulation(
        trials=trials, seed=seed, engine=engine, currency=currency,
        base=base.round(ROUND_HALF_EVEN), expected=_money(exp_minor, currency), mean=mean,
        p10=pct("0.1"), p50=pct("0.5"), p90=pct("0.9"), target=g.target, p_target=p_target,
        movers=tuple(ranked), deals=len(idx),
    )
