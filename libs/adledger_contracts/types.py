"""Field types shared by every edge: the contracts' events and the services' HTTP bodies.

Everything that comes from outside is bounded here before it reaches a core: ids and texts have a
length limit and no control characters (PostgreSQL cannot store a NUL byte, and a control
character in an id makes logs and keys ambiguous), and times are UTC within a range the domain can
compute with (a deadline of 9999-12-31 + 48 hours would overflow). Money types are in
`adledger_libs.money`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field

#: No C0 or C1 control character and no DEL anywhere in the string.
_NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*$"
#: Tab, newline and carriage return are allowed in free text, no other control character.
_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
#: The ids the platform accepts when something is created through its API: letters, digits and
#: `. _ - @ +`, starting with a letter or digit. No `/` or `:`, which separate the parts of the
#: ids derived from them (ledger accounts `bc/<id>/cash`, transfer ids `hold:<id>`), so two
#: different ids can never derive the same one.
_RESOURCE_ID = r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$"

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


#: An RFC 3339 time with an offset, normalised to UTC (the contract's times are in UTC).
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]

#: Any id that arrives from outside (the contract's: 1 to 128 characters), without control characters.
Identifier = Annotated[
    str, Field(min_length=1, max_length=128, pattern=_NO_CONTROL, description="An id: 1 to 128 characters.")
]
#: The id of something created through the platform's API (a Business Center, an ad account, a user).
ResourceId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=_RESOURCE_ID,
        description="An id: 1 to 128 letters, digits or `. _ - @ +`, starting with a letter or digit.",
    ),
]
#: A short text for people (a name, a reason): 1 to 200 characters on one line.
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=_NO_CONTROL, description="1 to 200 characters.")]
#: Free text (a note, a description): up to 2,000 characters, lines allowed.
Text = Annotated[str, Field(max_length=2000, pattern=_TEXT, description="Up to 2,000 characters.")]
#: A version counter of a snapshot: grows by one per change, bounded by what PostgreSQL stores.
Version = Annotated[int, Field(ge=0, le=2**63 - 1, strict=True, description="A version number.")]
#: An e-mail address, loosely checked (one @, no spaces or control characters), at most 254 characters.
EmailAddress = Annotated[
    str, Field(min_length=3, max_length=254, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$")
]
#: A count or a number for people (events summed, an order's number), bounded like a version.
Count = Annotated[int, Field(ge=0, le=2**63 - 1, strict=True, description="A whole number.")]
