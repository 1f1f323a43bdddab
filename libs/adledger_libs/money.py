"""Money is an integer number of micros of one ISO-4217 currency (rules M1, M2).

The pydantic types here are strict: a float, a boolean or a numeric string is rejected where
money is expected, so a float can never slip into a balance through an event or a request. They
are also bounded by what the ledger can hold (PostgreSQL `bigint`): an amount of 2^63 is a valid
JSON integer, and without the bound it would pass the edge and fail deep in a handler.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt

from adledger_libs.refusals import Refusal

MICROS_PER_UNIT = 1_000_000
#: The largest amount, total or balance the ledger can store (PostgreSQL bigint, 2^63 - 1).
MAXIMUM_MICROS = 2**63 - 1

#: An amount in micros; may be negative (a balance after overspend, a debit).
Micros = Annotated[
    StrictInt,
    Field(
        ge=-MAXIMUM_MICROS,
        le=MAXIMUM_MICROS,
        description="An amount in micros of the currency (1 unit = 1,000,000 micros), within ±(2^63 - 1).",
    ),
]
#: An amount in micros that must be strictly positive (a spend, a transfer).
PositiveMicros = Annotated[
    StrictInt,
    Field(gt=0, le=MAXIMUM_MICROS, description="A strictly positive amount in micros of the currency, at most 2^63 - 1."),
]
#: An amount in micros that may be zero but never negative (a limit, a budget).
NonNegativeMicros = Annotated[
    StrictInt,
    Field(ge=0, le=MAXIMUM_MICROS, description="An amount in micros of the currency, from 0 to 2^63 - 1."),
]
#: An ISO-4217 currency code.
CurrencyCode = Annotated[
    str, Field(pattern=r"^[A-Z]{3}$", description="ISO-4217 currency code, three upper-case letters.")
]


def units_to_micros(units: int) -> int:
    """Whole currency units to micros; only integers are accepted (rule M1)."""
    if not isinstance(units, int) or isinstance(units, bool):
        raise TypeError("money is counted in integers, never floats (rule M1)")
    return units * MICROS_PER_UNIT


class CurrencyMismatchError(Refusal, ValueError):
    """An operation mixed two currencies (rule M2)."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"currency mismatch: expected {expected}, got {got}")
        self.expected = expected
        self.got = got


def require_same_currency(expected: str, got: str) -> None:
    if expected != got:
        raise CurrencyMismatchError(expected, got)
