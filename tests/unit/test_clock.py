from datetime import UTC, datetime, timedelta, timezone

import pytest

from adledger_libs.clock import ManualClock, SystemClock


def test_t1_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(datetime(2026, 1, 31, 23, 59, tzinfo=UTC))
    assert clock.now() == datetime(2026, 1, 31, 23, 59, tzinfo=UTC)
    clock.advance(timedelta(hours=48))
    assert clock.now() == datetime(2026, 2, 2, 23, 59, tzinfo=UTC)


def test_t1_clock_is_utc_and_never_goes_back() -> None:
    with pytest.raises(ValueError, match="UTC"):
        ManualClock(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="UTC"):
        ManualClock(datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2))))
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError):
        clock.set(datetime(2025, 12, 31, tzinfo=UTC))
    assert SystemClock().now().tzinfo is UTC
