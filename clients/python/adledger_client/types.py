"""The field types of the contract's records, bounded as the platform bounds them.

The platform refuses what does not fit these bounds (a spend with a float amount, an id of 129
characters, a time without an offset goes to the dead-letter topic), so the client refuses it
first, where the ad server can still fix it, instead of publishing a record that changes nothing.
The same types bound what the client reads: a record from Kafka is typed before it reaches a gate
or a subscriber, and one that does not fit is skipped, never trusted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field, StrictInt

#: The largest amount the platform's ledger can hold (PostgreSQL bigint): 2^63 - 1 micros.
MAXIMUM_MICROS = 2**63 - 1
MICROS_PER_UNIT = 1_000_000

#: No control character (U+0000 to U+001F, DEL, U+0080 to U+009F) anywhere in the string.
_NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*$"

#: The platform's range of times: deadline arithmetic on them (a time + 48 hours) cannot overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _to_utc(moment: datetime) -> datetime:
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"the time must be from {EARLIEST.isoformat()} to before {LATEST.isoformat()}")
    return utc


#: A time with an offset (a naive datetime is refused), normalised to UTC; RFC 3339 on the wire.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]

#: An id: 1 to 128 characters, no control characters (the contract's `event_id` bound, used for every id).
Identifier = Annotated[
    str, Field(min_length=1, max_length=128, pattern=_NO_CONTROL, description="An id: 1 to 128 characters.")
]

#: A short text for people, such as a reason: 1 to 200 characters on one line.
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=_NO_CONTROL, description="1 to 200 characters.")]

#: An amount in micros of a currency (1 unit = 1,000,000 micros); strict, so a float, a boolean or a
#: numeric string is refused (rule M1), within what the ledger can hold.
Micros = Annotated[
    StrictInt,
    Field(
        ge=-MAXIMUM_MICROS,
        le=MAXIMUM_MICROS,
        description="An amount in micros of the currency, within ±(2^63 - 1).",
    ),
]

#: A strictly positive amount in micros: the cost of what was served, 1 to 2^63 - 1.
PositiveMicros = Annotated[
    StrictInt,
    Field(gt=0, le=MAXIMUM_MICROS, description="A strictly positive amount in micros, at most 2^63 - 1."),
]

#: An ISO-4217 currency code: three upper-case letters.
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO-4217 currency code.")]

#: A version of a balance: grows by one with each change of its owner's balance.
Version = Annotated[StrictInt, Field(ge=1, le=MAXIMUM_MICROS, description="A version number, from 1.")]
