"""Money and shares, exactly: whole cents rounded half up once, shares to four decimals."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction


def half_up(value: Fraction | int | Decimal) -> int:
    """Whole cents, halves rounded up (all values here are non-negative)."""
    return math.floor(Fraction(value) + Fraction(1, 2))


def ratio(numerator: int | Fraction, denominator: int) -> float | None:
    """A share or a rate, to four decimals (half up); None when there is nothing to divide by."""
    if denominator == 0:
        return None
    share = Fraction(numerator, denominator)
    exact = Decimal(share.numerator) / Decimal(share.denominator)
    return float(exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))
