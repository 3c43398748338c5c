"""Money and rates: ``Decimal`` amounts with an ISO 4217 currency, and exact allocation.

There is one door for numbers: :func:`to_decimal`. It accepts ``Decimal``, ``int`` and numeric
strings, and refuses ``float`` and ``bool`` (``TypeError``) and NaN/Infinity (``ValueError``), so a
binary fraction can never leak into anybody's pay. Arithmetic runs in a private decimal context;
rounding always names its mode and uses the currency's minor units (JPY 0, USD 2, KWD 3).
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final, SupportsIndex

import attrs

from .errors import CurrencyMismatchError, DomainError, InvalidMoneyError

__all__ = [
    "CURRENCY_MINOR_UNITS",
    "Money",
    "Rate",
    "allocate",
    "allocate_int",
    "minor_units",
    "sum_money",
    "to_decimal",
]

_CTX: Final = decimal.Context(prec=40, rounding=ROUND_HALF_EVEN, Emax=999999, Emin=-999999)

# ISO 4217 active codes with their minor units (exponent). Codes not listed default to 2 only if
# they are in this table; anything else is refused as an unknown currency.
_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP "
    "GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK "
    "LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK "
    "NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD "
    "SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG "
    "YER ZAR ZMW ZWG ZWL"
)
CURRENCY_MINOR_UNITS: Final[dict[str, int]] = {
    **dict.fromkeys(_TWO.split(), 2),
    **dict.fromkeys(_ZERO.split(), 0),
    **dict.fromkeys(_THREE.split(), 3),
    **dict.fromkeys(_FOUR.split(), 4),
}
_QUANTA: Final[dict[int, Decimal]] = {e: Decimal(1).scaleb(-e) for e in range(0, 5)}

NumberLike = Decimal | int | str


def to_decimal(value: object, *, field: str = "amount") -> Decimal:
    """Convert ``value`` to a finite ``Decimal``: the one door numbers come through.

    Accepts ``Decimal``, ``int`` and strings such as ``"12.50"``; refuses ``float`` and ``bool``
    with ``TypeError`` and NaN/Infinity/garbage with ``ValueError`` (both :class:`InvalidMoneyError`).
    """
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, bool):
        raise InvalidMoneyError(value, f"{field}: bool is not a number")
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        raise InvalidMoneyError(
            value, f"{field}: float is refused (binary fractions lose cents); pass a str or Decimal"
        )
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip().replace("_", ""))
        except decimal.InvalidOperation:
            raise InvalidMoneyError(value, f"{field}: not a decimal number") from None
    else:
        raise InvalidMoneyError(value, f"{field}: expected Decimal, int or str, got {type(value).__name__}")
    if not d.is_finite():
        raise InvalidMoneyError(value, f"{field}: NaN and Infinity are not amounts")
    return d


def minor_units(currency: str) -> int:
    """Number of decimal places of ``currency`` (JPY 0, USD 2, KWD 3)."""
    try:
        return CURRENCY_MINOR_UNITS[currency]
    except KeyError:
        raise DomainError(f"unknown ISO 4217 currency code {currency!r}") from None


def _check_currency(_inst: object, _attr: object, value: str) -> None:
    if value not in CURRENCY_MINOR_UNITS:
        raise DomainError(f"unknown ISO 4217 currency code {value!r}")


def _currency(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"currency must be an ISO 4217 code string, got {type(value).__name__}")
    return value.strip().upper()


@attrs.frozen(order=False, repr=False)
class Money:
    """An exact amount in one currency.

    ``Money("12.50", "USD")``; amount as ``Decimal``, ``int`` or ``str`` (never ``float``).
    Amounts keep full precision through arithmetic; call :meth:`round` with an explicit mode to get
    the currency's minor units.
    """

    amount: Decimal = attrs.field(converter=to_decimal)
    currency: str = attrs.field(converter=_currency, validator=_check_currency)

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    @classmethod
    def from_minor(cls, units: int, currency: str) -> Money:
        """Build from an integer number of minor units (cents, fen...)."""
        if isinstance(units, bool) or not isinstance(units, int):
            raise InvalidMoneyError(units, "minor units must be an int")
        return cls(Decimal(units).scaleb(-minor_units(currency)), currency)

    # --- presentation -------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Money('{self.amount}', '{self.currency}')"

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"

    # --- queries ------------------------------------------------------------------------------
    @property
    def exponent(self) -> int:
        return CURRENCY_MINOR_UNITS[self.currency]

    def to_minor(self, rounding: str = ROUND_HALF_EVEN) -> int:
        """The amount in integer minor units, rounded with ``rounding``."""
        return int(self.round(rounding).amount.scaleb(self.exponent, _CTX))

    def is_zero(self) -> bool:
        return self.amount == 0

    def __bool__(self) -> bool:
        return self.amount != 0

    # --- arithmetic ---------------------------------------------------------------------------
    def _same(self, other: Money, op: str) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatchError(self.currency, other.currency, op)

    def __add__(self, other: object) -> Money:
        if isinstance(other, Money):
            self._same(other, "add")
            return Money(_CTX.add(self.amount, other.amount), self.currency)
        return NotImplemented

    def __radd__(self, other: object) -> Money:
        # sum() starts from int 0
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    def __sub__(self, other: object) -> Money:
        if isinstance(other, Money):
            self._same(other, "subtract")
            return Money(_CTX.subtract(self.amount, other.amount), self.currency)
        return NotImplemented

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __mul__(self, factor: object) -> Money:
        if isinstance(factor, Rate):
            return Money(_CTX.multiply(self.amount, factor.value), self.currency)
        if isinstance(factor, Money):
            return NotImplemented
        return Money(_CTX.multiply(self.amount, to_decimal(factor, field="factor")), self.currency)

    __rmul__ = __mul__

    def __truediv__(self, divisor: object) -> Money | Decimal:
        """``Money / number`` is Money; ``Money / Money`` (same currency) is a plain ratio."""
        if isinstance(divisor, Money):
            self._same(divisor, "divide")
            return _CTX.divide(self.amount, divisor.amount)
        d = to_decimal(divisor, field="divisor")
        return Money(_CTX.divide(self.amount, d), self.currency)

    def ratio(self, other: Money) -> Decimal:
        """``self / other`` as a Decimal (same currency); typed alternative to ``/``."""
        self._same(other, "divide")
        return _CTX.divide(self.amount, other.amount)

    # --- comparison ---------------------------------------------------------------------------
    def _cmp(self, other: object, op: str) -> tuple[Decimal, Decimal]:
        if not isinstance(other, Money):
            raise TypeError(f"cannot compare Money with {type(other).__name__}")
        self._same(other, "compare")
        return self.amount, other.amount

    def __lt__(self, other: object) -> bool:
        a, b = self._cmp(other, "<")
        return a < b

    def __le__(self, other: object) -> bool:
        a, b = self._cmp(other, "<=")
        return a <= b

    def __gt__(self, other: object) -> bool:
        a, b = self._cmp(other, ">")
        return a > b

    def __ge__(self, other: object) -> bool:
        a, b = self._cmp(other, ">=")
        return a >= b

    # --- rounding and allocation ----------------------------------------------------------------
    def round(self, rounding: str, *, places: int | None = None) -> Money:
        """Round to the currency's minor units (or ``places``) with an explicit ``rounding`` mode.

        ``rounding`` is one of the ``decimal`` module's modes, e.g. ``decimal.ROUND_HALF_UP``.
        """
        exp = self.exponent if places is None else places
        quantum = _QUANTA.get(exp) or Decimal(1).scaleb(-exp)
        return Money(self.amount.quantize(quantum, rounding=rounding, context=_CTX), self.currency)

    def allocate(self, weights: Sequence[NumberLike | Rate]) -> list[Money]:
        """Split into parts proportional to ``weights`` that sum exactly to the rounded whole."""
        return allocate(self, weights)


def _weight(w: object) -> Decimal:
    d = w.value if isinstance(w, Rate) else to_decimal(w, field="weight")
    if d < 0:
        raise ValueError(f"weights must be non-negative, got {w!r}")
    return d


def allocate_int(total: int, weights: Sequence[NumberLike | Rate]) -> list[int]:
    """Split the integer ``total`` by ``weights`` with the largest-remainder method.

    Parts always sum to ``total``. Ties in the remainder go to the earlier weight, so the result is
    deterministic. All-zero weights split equally.
    """
    if isinstance(total, bool) or not isinstance(total, int):
        raise TypeError("total must be an int")
    iws, wsum = _int_weights(weights)
    return _allocate_scaled(total, iws, wsum)


def _int_weights(weights: Sequence[NumberLike | Rate]) -> tuple[list[int], int]:
    """``weights`` as exact integers and their sum: every weight scaled by a common power of ten,
    so no rounding of the shares can ever make the parts miss the total (all-zero weights count
    equally). Callers that split many totals by the same weights compute this once."""
    ws = [_weight(w) for w in weights]
    if not ws:
        raise ValueError("allocate needs at least one weight")
    exp = min(int(w.as_tuple().exponent) for w in ws)
    iws = [_scaled(w, exp) for w in ws]
    wsum = sum(iws)
    if wsum == 0:
        iws = [1] * len(iws)
        wsum = len(iws)
    return iws, wsum


def _allocate_scaled(total: int, iws: list[int], wsum: int) -> list[int]:
    """The largest-remainder split of ``total`` by the weights :func:`_int_weights` made: ties go
    to the earlier weight, parts sum to ``total``."""
    t = -total if total < 0 else total
    floors = []
    rems = []
    for w in iws:
        q, r = divmod(t * w, wsum)
        floors.append(q)
        rems.append(r)
    left = t - sum(floors)
    if left:
        order = sorted(range(len(iws)), key=lambda i: (-rems[i], i))
        for i in order[:left]:
            floors[i] += 1
    if total < 0:
        return [-f for f in floors]
    return floors


def _scaled(w: Decimal, exp: int) -> int:
    """``w * 10**-exp`` as an exact int (``exp`` is at most ``w``'s own exponent)."""
    _sign, digits, e = w.as_tuple()
    n = int("".join(map(str, digits)) or "0")
    scale: int = 10 ** (int(e) - exp)
    return n * scale


def allocate(
    total: Money, weights: Sequence[NumberLike | Rate], *, rounding: str = ROUND_HALF_EVEN
) -> list[Money]:
    """Split ``total`` by ``weights`` so the parts sum exactly to ``total`` rounded to minor units.

    The whole is first rounded (with ``rounding``) to the currency's minor units; the parts are then
    allocated in integer minor units by the largest-remainder method.
    """
    units = total.to_minor(rounding)
    return [Money.from_minor(u, total.currency) for u in allocate_int(units, weights)]


def sum_money(items: Iterable[Money], currency: str) -> Money:
    """Sum ``items`` (all in ``currency``); an empty iterable gives zero in ``currency``."""
    acc = Decimal(0)
    for m in items:
        if m.currency != currency:
            raise CurrencyMismatchError(currency, m.currency, "add")
        acc = _CTX.add(acc, m.amount)
    return Money(acc, currency)


def _rate_value(v: object) -> Decimal:
    return to_decimal(v, field="rate")


@attrs.frozen(order=True, repr=False)
class Rate:
    """A ratio held as a ``Decimal`` fraction: ``Rate("0.25")`` is 25 %.

    Used for probabilities (check with :meth:`is_probability`), commission rates, attainment and
    other percentages, which may exceed 1.
    """

    value: Decimal = attrs.field(converter=_rate_value)

    @classmethod
    def percent(cls, pct: NumberLike) -> Rate:
        """``Rate.percent(25)`` is ``Rate("0.25")``."""
        return cls(_CTX.divide(to_decimal(pct, field="percent"), Decimal(100)))

    @classmethod
    def probability(cls, value: NumberLike | Rate) -> Rate:
        """A rate that must lie in [0, 1]."""
        r = value if isinstance(value, Rate) else cls(value)
        if not r.is_probability():
            raise DomainError(f"probability must be within [0, 1], got {r.value}")
        return r

    def is_probability(self) -> bool:
        return Decimal(0) <= self.value <= Decimal(1)

    @property
    def as_percent(self) -> Decimal:
        return _CTX.multiply(self.value, Decimal(100))

    def __repr__(self) -> str:
        return f"Rate('{self.value}')"

    def __str__(self) -> str:
        return f"{self.as_percent.normalize():f}%"

    def __mul__(self, other: object) -> Rate | Money:
        if isinstance(other, Money):
            return other * self
        if isinstance(other, Rate):
            return Rate(_CTX.multiply(self.value, other.value))
        return Rate(_CTX.multiply(self.value, to_decimal(other, field="factor")))

    def complement(self) -> Rate:
        """``1 - self``."""
        return Rate(_CTX.subtract(Decimal(1), self.value))

    def __float__(self) -> float:  # for charts and statistics only, never for money
        return float(self.value)

    def __round__(self, ndigits: SupportsIndex | None = None) -> Rate:
        places = 0 if ndigits is None else int(ndigits)
        return Rate(self.value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))
