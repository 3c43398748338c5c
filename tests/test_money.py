"""Money, rates and allocation."""

from __future__ import annotations

import decimal
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesprocess import (
    CurrencyMismatchError,
    InvalidMoneyError,
    Money,
    Rate,
    allocate,
    allocate_int,
)
from salesprocess.errors import DomainError
from salesprocess.money import minor_units, sum_money, to_decimal
from salesprocess.testing import strategies as sps

# --- construction: the one door for numbers ----------------------------------------------------


@pytest.mark.parametrize("bad", [1.5, 0.1, float("1e3")])
def test_float_is_refused_with_type_error(bad: float) -> None:
    with pytest.raises(TypeError):
        Money(bad, "USD")  # type: ignore[arg-type]
    with pytest.raises(InvalidMoneyError, match="float"):
        to_decimal(bad)


@pytest.mark.parametrize("bad", [True, False])
def test_bool_is_refused_with_type_error(bad: bool) -> None:
    with pytest.raises(TypeError, match="bool"):
        Money(bad, "CNY")


@pytest.mark.parametrize(
    "bad", ["NaN", "Infinity", "-Infinity", "sNaN", Decimal("NaN"), Decimal("-Inf")]
)
def test_nan_and_infinity_are_refused_with_value_error(bad: object) -> None:
    with pytest.raises(ValueError, match="NaN and Infinity"):
        Money(bad, "EUR")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["twelve", "", "1,5", [1], None])
def test_garbage_is_refused(bad: object) -> None:
    with pytest.raises(InvalidMoneyError):
        Money(bad, "USD")  # type: ignore[arg-type]


def test_accepted_inputs_keep_exact_value() -> None:
    assert Money("12.50", "usd") == Money(Decimal("12.5"), "USD")
    assert Money(" 1_000.01 ", "CNY").amount == Decimal("1000.01")
    assert Money(7, "JPY").amount == 7
    assert Money("0.1", "USD") + Money("0.2", "USD") == Money("0.3", "USD")


def test_unknown_currency_is_a_domain_error() -> None:
    with pytest.raises(DomainError, match="XXQ"):
        Money("1", "XXQ")
    with pytest.raises(TypeError):
        Money("1", 840)  # type: ignore[arg-type]


@given(sps.money(), sps.money())
def test_different_currencies_never_combine(a: Money, b: Money) -> None:
    if a.currency == b.currency:
        assert (a + b).amount == a.amount + b.amount
        assert (a - b) + b == a
        return
    for op in (lambda: a + b, lambda: a - b, lambda: a < b, lambda: a.ratio(b), lambda: a / b):
        with pytest.raises(CurrencyMismatchError) as info:
            op()
        assert {info.value.left, info.value.right} == {a.currency, b.currency}


def test_sum_money_checks_currency() -> None:
    assert sum_money([], "JPY") == Money(0, "JPY")
    assert sum_money([Money("1.10", "USD"), Money("2.20", "USD")], "USD") == Money("3.30", "USD")
    with pytest.raises(CurrencyMismatchError):
        sum_money([Money("1", "USD"), Money("1", "CNY")], "USD")
    assert sum([Money("1", "CNY"), Money("2", "CNY")]) == Money("3", "CNY")


def test_multiplication_by_float_is_refused() -> None:
    with pytest.raises(TypeError):
        Money("10", "USD") * 1.1  # type: ignore[operator]
    assert Money("10", "USD") * Rate("0.15") == Money("1.5", "USD")
    assert Money("10", "USD") * 3 == Money("30", "USD")


# --- rounding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "places"), [("JPY", 0), ("CNY", 2), ("USD", 2), ("EUR", 2), ("KWD", 3)]
)
def test_minor_units(currency: str, places: int) -> None:
    assert minor_units(currency) == places
    rounded = Money("1234.56789", currency).round(ROUND_HALF_EVEN)
    assert -rounded.amount.as_tuple().exponent == places


@pytest.mark.parametrize(
    ("amount", "mode", "expected"),
    [
        ("2.675", ROUND_HALF_UP, "2.68"),
        ("2.665", ROUND_HALF_EVEN, "2.66"),
        ("2.675", ROUND_HALF_EVEN, "2.68"),
        ("2.671", ROUND_UP, "2.68"),
        ("2.679", ROUND_DOWN, "2.67"),
        ("-2.675", ROUND_HALF_UP, "-2.68"),
    ],
)
def test_rounding_uses_the_given_mode(amount: str, mode: str, expected: str) -> None:
    assert Money(amount, "CNY").round(mode) == Money(expected, "CNY")


def test_rounding_mode_is_required() -> None:
    with pytest.raises(TypeError):
        Money("1.005", "USD").round()  # type: ignore[call-arg]


@given(
    st.decimals(min_value=-(10**9), max_value=10**9, places=6),
    sps.currencies(),
    st.sampled_from([ROUND_HALF_UP, ROUND_HALF_EVEN, ROUND_DOWN, ROUND_UP]),
)
def test_rounding_is_within_one_minor_unit(amount: Decimal, currency: str, mode: str) -> None:
    m = Money(amount, currency)
    r = m.round(mode)
    unit = Decimal(1).scaleb(-minor_units(currency))
    assert abs(r.amount - m.amount) < unit
    assert r.round(mode) == r
    assert Money.from_minor(r.to_minor(mode), currency) == r


# --- allocation --------------------------------------------------------------------------------

weights = st.lists(
    st.one_of(
        st.integers(0, 1000),
        st.decimals(min_value=0, max_value=1000, places=4),
        sps.rates(min_value=0, max_value=5),
    ),
    min_size=1,
    max_size=8,
)


@given(st.integers(-(10**12), 10**12), weights)
def test_allocate_int_parts_sum_exactly_to_the_total(total: int, ws: list[object]) -> None:
    parts = allocate_int(total, ws)  # type: ignore[arg-type]
    assert sum(parts) == total
    assert len(parts) == len(ws)


@given(st.integers(0, 10**9), weights)
def test_allocate_int_is_largest_remainder_and_deterministic(total: int, ws: list[object]) -> None:
    parts = allocate_int(total, ws)  # type: ignore[arg-type]
    assert parts == allocate_int(total, ws)  # type: ignore[arg-type]
    values = [w.value if isinstance(w, Rate) else Decimal(w) for w in ws]  # type: ignore[arg-type]
    wsum = sum(values)
    if wsum == 0:
        values, wsum = [Decimal(1)] * len(values), Decimal(len(values))
    exact = [Fraction(total) * Fraction(v) / Fraction(wsum) for v in values]
    for part, share in zip(parts, exact, strict=True):
        assert share - 1 < part < share + 1  # each part is its share rounded down or up
    # the units left after the floors go to the largest remainders (earlier weight wins ties)
    remainders = [e - int(e) for e in exact]
    got_extra = [p > int(e) for p, e in zip(parts, exact, strict=True)]
    for i, extra_i in enumerate(got_extra):
        for j, extra_j in enumerate(got_extra):
            if extra_i and not extra_j:
                assert (remainders[i], -i) >= (remainders[j], -j)


def test_allocate_int_examples() -> None:
    assert allocate_int(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate_int(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate_int(5, [0, 0]) == [3, 2]
    assert allocate_int(10, ["0.5", Rate("0.25"), Decimal("0.25")]) == [5, 3, 2]


def test_allocate_int_is_exact_where_decimal_division_would_round() -> None:
    # shares this large would be rounded by a 28- or 40-digit decimal context
    total = 10**29
    parts = allocate_int(total, [Decimal("1e30"), Decimal("1e30"), Decimal("1e2")])
    assert sum(parts) == total
    assert parts[2] in (4, 5)


@pytest.mark.parametrize("bad", [[], [-1, 2], [Rate("-0.5"), 1], [1.5]])
def test_allocate_int_refuses_bad_weights(bad: list[object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        allocate_int(10, bad)  # type: ignore[arg-type]


@given(sps.money(min_value=-(10**6)), weights)
def test_allocate_money_sums_exactly_to_the_rounded_whole(total: Money, ws: list[object]) -> None:
    parts = allocate(total, ws)  # type: ignore[arg-type]
    assert sum_money(parts, total.currency) == total.round(ROUND_HALF_EVEN)
    assert all(-p.amount.as_tuple().exponent <= total.exponent for p in parts)
    assert total.allocate(ws) == parts  # type: ignore[arg-type]


def test_allocate_jpy_and_kwd() -> None:
    assert allocate(Money("100", "JPY"), [1, 2]) == [Money(33, "JPY"), Money(67, "JPY")]
    assert allocate(Money("1.000", "KWD"), [1, 1, 1]) == [
        Money("0.334", "KWD"),
        Money("0.333", "KWD"),
        Money("0.333", "KWD"),
    ]


# --- rates ------------------------------------------------------------------------------------


def test_rate_basics() -> None:
    assert Rate.percent(25) == Rate("0.25")
    assert Rate("0.25").as_percent == 25
    assert str(Rate("0.125")) == "12.5%"
    assert Rate("0.3").complement() == Rate("0.7")
    assert Rate("0.5") * Rate("0.5") == Rate("0.25")
    assert Rate("1.2") > Rate("0.9")  # rates (attainment) may exceed 1
    with pytest.raises(TypeError):
        Rate(0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Rate.probability("1.01")
    with pytest.raises(DomainError):
        Rate.probability(Rate("-0.1"))
    assert Rate.probability("1") == Rate(1)


@given(sps.probabilities())
def test_generated_probabilities_are_probabilities(p: Rate) -> None:
    assert p.is_probability()
    assert Rate.probability(p) is p
    assert p.complement().is_probability()


def test_private_context_does_not_leak() -> None:
    before = decimal.getcontext().prec
    Money("1", "USD") / 3
    assert decimal.getcontext().prec == before
    third = Money("1", "USD") / 3
    assert isinstance(third, Money)
    assert len(third.amount.as_tuple().digits) > 28  # computed in the 40-digit private context
