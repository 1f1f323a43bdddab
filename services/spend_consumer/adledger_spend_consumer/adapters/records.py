"""The ad servers' spend records (`ads.spend.v1`, CONTRACT.md, fixed), decoded by a compiled
msgspec decoder (issue 14, lever 1).

`SpendRecord` has the fields and bounds of `adledger_contracts.external.SpendReported`: ids 1 to
128 characters without control characters (`\\Z`, not `$`: Python's `$` also matches before a
final newline), an amount from 1 to 2^63 - 1 micros, a three-letter currency, an RFC 3339 time
with an offset, normalised to UTC within the range the domain computes with. msgspec is strict
where pydantic is lax (a number in a string, an integral float): whatever it refuses, or cannot
vouch for, `decode_spend` leaves to the pydantic model, which accepts it or gives the reason the
dead-letter topic has always carried. So the fast path changes the cost of a good record, never
what is accepted or why a record is refused (tests/unit/spend/test_spend_records.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar

import msgspec
from adledger_contracts.types import EARLIEST, LATEST
from adledger_libs.money import MAXIMUM_MICROS

_NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*\Z"

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=_NO_CONTROL)]


class SpendRecord(msgspec.Struct, frozen=True, gc=False):
    """A spend as the handler reads it: the same attribute names as `SpendReported`."""

    MESSAGE_TYPE: ClassVar[str] = "SpendReported"
    SIGNED_BY: ClassVar[frozenset[str]] = frozenset()

    event_id: _Id
    ad_account_id: _Id
    campaign_id: _Id
    amount_micros: Annotated[int, msgspec.Meta(gt=0, le=MAXIMUM_MICROS)]
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}\Z")]
    occurred_at: datetime
    charge_id: _Id | None = None


_DECODER = msgspec.json.Decoder(SpendRecord)


def decode_spend(value: bytes) -> SpendRecord | None:
    """The record as a `SpendRecord`, or None when the pydantic model must decide (see the module)."""
    try:
        record = _DECODER.decode(value)
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None
    moment = record.occurred_at
    offset = moment.utcoffset()
    if offset is None:
        return None
    if offset:
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:
            return None
        record = msgspec.structs.replace(record, occurred_at=moment)
    elif moment.tzinfo is not UTC:
        record = msgspec.structs.replace(record, occurred_at=moment.replace(tzinfo=UTC))
    if not EARLIEST <= moment < LATEST:
        return None
    return record
