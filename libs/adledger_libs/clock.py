"""An injectable clock (rule T1): every deadline and day close reads time from here."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
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


def utc_day_of(moment: datetime) -> date:
    """The UTC calendar day `moment` falls in (T1); a naive moment has no UTC day and is refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times are timezone-aware (rule T1); a naive datetime has no UTC day")
    return moment.astimezone(UTC).date()


def utc_day_starts_at(utc_day: date) -> datetime:
    return datetime(utc_day.year, utc_day.month, utc_day.day, tzinfo=UTC)


def utc_day_ends_at(utc_day: date) -> datetime:
    """The first instant after `utc_day`: the day is `[utc_day_starts_at, utc_day_ends_at)`."""
    return utc_day_starts_at(utc_day) + timedelta(days=1)


def utc_month_ends_at(moment: datetime) -> datetime:
    """The first instant of the UTC month after the one `moment` falls in (the end of "that month")."""
    day = utc_day_of(moment)
    return datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
