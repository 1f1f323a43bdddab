"""An injectable clock (rule T1): every deadline and day close reads time from here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of the current time, always timezone-aware and in UTC."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to, so tests move time instead of sleeping."""

    def __init__(self, start: datetime) -> None:
        self._now = _require_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("a clock does not move backwards")
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        moment = _require_utc(moment)
        if moment < self._now:
            raise ValueError("a clock does not move backwards")
        self._now = moment


def _require_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() != timedelta(0):
        raise ValueError("times are timezone-aware and in UTC (rule T1)")
    return moment.astimezone(UTC)
