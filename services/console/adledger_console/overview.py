"""What the overview shows, from the APIs' answers: spend per day and the runway, in integer micros.

Spend of a day is what left the Business Center and its ad accounts that day: the sum over them
of the real balance at the previous close less the real balance at this close (W13; allocations
between them cancel out), plus the money paid in that day (paid invoices). Today's bar compares the
last close with the balances now. The runway is the available balance divided by the average
daily spend of the last 7 days: `available × 7 ÷ spend of 7 days`, whole days, rounded down."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from adledger_console.charts import Point

RUNWAY_DAYS = 7


def balance_points(history: Sequence[Mapping[str, Any]]) -> list[Point]:
    return [Point(date.fromisoformat(item["day"]), int(item["real_micros"])) for item in history]


def spend_per_day(
    histories: Iterable[Sequence[Mapping[str, Any]]], current_real: int, invoices: Sequence[Mapping[str, Any]], today: date,
) -> list[Point]:
    """`histories`: the day closes of the Business Center and of each of its ad accounts;
    `current_real`: their real balances now, summed."""
    closes: dict[date, int] = {}
    for history in histories:
        for item in history:
            day = date.fromisoformat(item["day"])
            closes[day] = closes.get(day, 0) + int(item["real_micros"])
    paid: dict[date, int] = {}
    for invoice in invoices:
        if invoice.get("status") == "paid" and invoice.get("paid_at"):
            day = datetime.fromisoformat(str(invoice["paid_at"]).replace("Z", "+00:00")).date()
            paid[day] = paid.get(day, 0) + int(invoice["amount_micros"])
    days = sorted(closes)
    points: list[Point] = []
    for previous, day in zip(days, days[1:], strict=False):
        if (day - previous).days == 1:
            points.append(Point(day, max(0, closes[previous] - closes[day] + paid.get(day, 0))))
    if days and days[-1] < today:
        points.append(Point(today, max(0, closes[days[-1]] - current_real + paid.get(today, 0))))
    return points


def runway_days(available_micros: int, spend: Sequence[Point], today: date) -> int | None:
    """Whole days the available balance lasts at the last 7 days' average; None without spend."""
    since = today - timedelta(days=RUNWAY_DAYS - 1)
    spent = sum(point.micros for point in spend if point.day >= since)
    if spent <= 0:
        return None
    return max(0, available_micros) * RUNWAY_DAYS // spent
