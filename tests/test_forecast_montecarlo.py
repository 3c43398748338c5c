"""The Monte Carlo sampler: reproducible, ordered percentiles, identical engines, exact money."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesprocess.errors import CurrencyMismatchError, DomainError
from salesprocess.forecast import SimDeal, SimGroup, numpy_available, simulate, simulate_groups
from salesprocess.money import Money, Rate

amounts = st.integers(0, 10**9).map(lambda c: Money(Decimal(c).scaleb(-2), "USD"))
probs = st.integers(0, 1000).map(lambda x: Rate(Decimal(x) / 1000))


@st.composite
def pipelines(draw: st.DrawFn, max_deals: int = 12) -> list[SimDeal]:
    n = draw(st.integers(0, max_deals))
    return [SimDeal(f"d{i}", draw(amounts), draw(probs), draw(st.sampled_from(["r1", "r2", "r3"])))
            for i in range(n)]


@settings(max_examples=40, deadline=None)
@given(deals=pipelines(), seed=st.integers(0, 2**40), trials=st.integers(1, 300))
def test_same_seed_same_result_and_ordered_percentiles(deals: list[SimDeal], seed: int, trials: int) -> None:
    a = simulate(deals, currency="USD", trials=trials, seed=seed, engine="python")
    b = simulate(list(reversed(deals)), currency="USD", trials=trials, seed=seed, engine="python")
    assert a == b  # same seed, same numbers (the input order does not matter)
    assert a.p10 <= a.p50 <= a.p90
    lo = sum((d.amount for d in deals), Money.zero("USD"))
    assert Money.zero("USD") <= a.p10
    assert a.p90 <= lo.round("ROUND_HALF_EVEN")


@pytest.mark.skipif(not numpy_available(), reason="NumPy is not installed")
@settings(max_examples=30, deadline=None)
@given(deals=pipelines(), seed=st.integers(0, 2**40), trials=st.integers(1, 300),
       target=st.integers(0, 5 * 10**9))
def test_numpy_engine_gives_the_same_numbers(deals: list[SimDeal], seed: int, trials: int,
                                             target: int) -> None:
    t = Money(Decimal(target).scaleb(-2), "USD")
    py = simulate(deals, currency="USD", trials=trials, seed=seed, engine="python", target=t)
    np_ = simulate(deals, currency="USD", trials=trials, seed=seed, engine="numpy", target=t)
    assert np_.engine == "numpy"
    assert (py.p10, py.p50, py.p90, py.mean, py.expected, py.p_target, py.movers) == (
        np_.p10, np_.p50, np_.p90, np_.mean, np_.expected, np_.p_target, np_.movers)


@settings(max_examples=30, deadline=None)
@given(deals=pipelines(), seed=st.integers(0, 1000), trials=st.integers(1, 200))
def test_group_trials_add_up_to_the_whole(deals: list[SimDeal], seed: int, trials: int) -> None:
    groups = [SimGroup("all", {"r1", "r2", "r3"}), SimGroup("r1", {"r1"}),
              SimGroup("rest", {"r2", "r3"})]
    out = simulate_groups(deals, groups, currency="USD", trials=trials, seed=seed, engine="python")
    # the same trials: group means add up (each is rounded to the cent)
    gap = out["r1"].mean + out["rest"].mean - out["all"].mean
    assert abs(gap.amount) <= Decimal("0.01")
    one = simulate_groups(deals, groups, currency="USD", trials=1, seed=seed, engine="python")
    # one trial: its totals are whole cents, so they add up exactly
    assert one["r1"].mean + one["rest"].mean == one["all"].mean
    assert one["all"].p50 == one["all"].mean


def test_certain_and_impossible_deals_are_exact() -> None:
    deals = [SimDeal("sure", Money("100.00", "USD"), Rate(1)),
             SimDeal("never", Money("999.99", "USD"), Rate(0))]
    s = simulate(deals, currency="USD", trials=50, seed=1, base=Money("5", "USD"))
    assert s.p10 == s.p50 == s.p90 == s.mean == s.expected == Money("105.00", "USD")
    assert s.movers == ()


def test_frequencies_follow_the_probability() -> None:
    s = simulate([SimDeal("x", Money("1", "USD"), Rate("0.3"))], currency="USD", trials=20_000,
                 seed=9, engine="python")
    # the mean is the share of trials won; 20,000 Bernoulli(0.3) draws: sd ≈ 0.0032
    assert abs(s.mean.amount - Decimal("0.30")) <= Decimal("0.02")


def test_movers_rank_the_deals_that_decide_the_target() -> None:
    deals = [SimDeal("big", Money("1000", "USD"), Rate("0.5")),
             SimDeal("small", Money("10", "USD"), Rate("0.5")),
             SimDeal("sure", Money("500", "USD"), Rate(1))]
    s = simulate(deals, currency="USD", trials=2000, seed=4, target=Money("1200", "USD"))
    assert s.movers[0].deal_id == "big"
    m = s.movers[0]
    assert m.p_target_if_lost == Rate(0)  # 500 + 10 never reaches 1200
    assert m.p_target_if_won == Rate(1)
    assert m.swing == Rate(1)
    assert s.p_target is not None
    assert Rate("0.4") < s.p_target < Rate("0.6")


def test_bad_arguments_are_refused() -> None:
    d = [SimDeal("x", Money("1", "USD"), Rate("0.5"))]
    with pytest.raises(DomainError, match="trials"):
        simulate(d, currency="USD", trials=0)
    with pytest.raises(DomainError, match="seed"):
        simulate(d, currency="USD", seed=-1)
    with pytest.raises(CurrencyMismatchError):
        simulate(d, currency="EUR")
    with pytest.raises(DomainError, match="twice"):
        simulate(d + d, currency="USD")
    with pytest.raises(DomainError, match="probability"):
        SimDeal("y", Money("1", "USD"), Rate("1.5"))
