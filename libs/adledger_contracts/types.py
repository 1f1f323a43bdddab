"""Field types shared by the contracts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field


def _to_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


#: An RFC 3339 time with an offset, normalised to UTC (the contract's times are in UTC).
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]

Identifier = Annotated[str, Field(min_length=1, max_length=128)]
