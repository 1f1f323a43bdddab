"""The arithmetic of balance alerts (rules I6, I8, M1), pure: int micros, no floats, no I/O.

- Average daily spend: the spend of the 7 whole UTC days before the current UTC day (days with
  no spend count as 0), summed and divided by 7 with integer floor division. The current,
  partial day is left out, so the rate does not swing with the hour of the day.
- Runway alert: when the average is positive and the available balance is at most 3 x the
  average. The runway shown is the whole days the balance lasts: floor(available / average),
  0 when the balance is zero or negative. Floor is the cautious side: it never says a day more.
- Low-balance alert (Business Centers): when the available balance is strictly below the
  threshold. The threshold is the one set for the Business Center (`LowBalanceThresholdSet`),
  else 50% of its last payment received (W12's default), floor; none (no alert) before either.
  A threshold of 0 turns the alert off.
- At most one alert per owner, kind and UTC day: the alert id is `<kind>:<owner_id>:<day>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from adledger_libs.money import MICROS_PER_UNIT

WINDOW_DAYS = 7
RUNWAY_FACTOR = 3
DEFAULT_THRESHOLD_PERCENT = 50


def average_daily_spend(daily_micros: Sequence[int], days: int = WINDOW_DAYS) -> int:
    """Sum of the given days' spend // `days` (floor); the missing days count as 0."""
    if days <= 0:
        raise ValueError("days must be positive")
    if len(daily_micros) > days:
        raise ValueError(f"{len(daily_micros)} daily figures for a window of {days} days")
    for value in daily_micros:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"spend is int micros, got {value!r}")
    return sum(daily_micros) // days


def runway_is_low(available_micros: int, average_micros: int, factor: int = RUNWAY_FACTOR) -> bool:
    """The balance lasts at most `factor` days at the average rate; no spend means no runway alert."""
    return average_micros > 0 and available_micros <= factor * average_micros


def runway_days(available_micros: int, average_micros: int) -> int:
    """Whole days the balance lasts at the average rate (floor), never negative."""
    if average_micros <= 0:
        raise ValueError("no runway without spend")
    return max(available_micros, 0) // average_micros


def low_balance_threshold(
    explicit_micros: int | None, last_payment_micros: int | None, percent: int = DEFAULT_THRESHOLD_PERCENT
) -> int | None:
    """The explicit threshold when set, else `percent`% of the last payment (floor), else none."""
    if explicit_micros is not None:
        return explicit_micros
    if last_payment_micros is not None and last_payment_micros > 0:
        return last_payment_micros * percent // 100
    return None


def below_threshold(available_micros: int, threshold_micros: int | None) -> bool:
    """Strictly below a positive threshold (0 or none: the alert is off)."""
    return threshold_micros is not None and threshold_micros > 0 and available_micros < threshold_micros


def alert_id(kind: str, owner_id: str, utc_day: date) -> str:
    return f"{kind}:{owner_id}:{utc_day.isoformat()}"


def format_micros(micros: int, currency: str) -> str:
    """Micros for people, exactly: `1234.5 USD` -> `1234.50 USD`; at least 2 decimals, at most 6."""
    sign = "-" if micros < 0 else ""
    units, fraction = divmod(abs(micros), MICROS_PER_UNIT)
    decimals = f"{fraction:06d}".rstrip("0")
    decimals = decimals.ljust(2, "0")
    return f"{sign}{units}.{decimals} {currency}"
