"""Money is an integer number of micros of one ISO-4217 currency (rules M1, M2).

The pydantic types here are strict: a float, a boolean or a numeric string is rejected where
money is expected, so a float can never slip into a balance through an event or a request.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt

MICROS_PER_UNIT = 1_000_000

#: An amount in micros; may be negative (a balance after overspend, a debit).
Micros = Annotated[StrictInt, Field(description="An amount in micros of the currency (1 unit = 1,000,000 micros).")]
#: An amount in micros that must be strictly positive (a spend, a transfer).
PositiveMicros = Annotated[StrictInt, Field(gt=0, description="A strictly positive amount in micros of the currency.")]
#: An ISO-4217 currency code.
CurrencyCode = Annotated[
    str, Field(pattern=r"^[A-Z]{3}$", description="ISO-4217 currency code, three upper-case letters.")
]


def units_to_micros(units: int) -> int:
    """Whole currency units to micros; only integers are accepted (rule M1)."""
    if not isinstance(units, int) or isinstance(units, bool):
        raise TypeError("money is counted in integers, never floats (rule M1)")
    return units * MICROS_PER_UNIT


class CurrencyMismatchError(ValueError):
    """An operation mixed two currencies (rule M2)."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"currency mismatch: expected {expected}, got {got}")
        self.expected = expected
        self.got = got


def require_same_currency(expected: str, got: str) -> None:
    if expected != got:
        raise CurrencyMismatchError(expected, got)
