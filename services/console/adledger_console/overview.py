"""What the overview shows, from the APIs' answers: spend per day and the runway, in integer micros.

Spend of a day is what left the Business Center and its ad accounts that day: the sum over them
of the real balance at the previous close less the real balance at this close (W13; allocations
between them cancel out), plus the money paid in that day (paid invoices; vouchers granted are not
counted as money in). Today's bar compares the last close with the balances now. The runway is
what is available (the Business Center's and its ad accounts') divided by the average daily spend
of the last 7 days: `available × 7 ÷ spend of 7 days`, whole days, rounded down."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from adledger_console.charts import Point

RUNWAY_DAYS = 7


def balance_points(histories: Iterable[Sequence[Mapping[str, Any]]]) -> list[Point]:
    """The real balance of the Business Center and its ad accounts together at each day close."""
    totals: dict[date, int] = {}
    for history in histories:
        for item in history:
            day = date.fromisoformat(item["day"])
            totals[day] = totals.get(day, 0) + int(item["real_micros"])
    return [Point(day, totals[day]) for day in sorted(totals)]


def spend_per_day(
    histories: Iterable[Sequence[Mapping[str, Any]]],
    current_reals: Sequence[int],
    invoices: Sequence[Mapping[str, Any]],
    today: date,
    since: date,
) -> list[Point]:
    """`histories`: the day closes (from `since`) of the Business Center and of each of its ad
    accounts, in the order of `current_reals`, their real balances now. An owner whose first close
    is after `since` was opened that day: its balance before was zero."""
    outflow: dict[date, int] = {}
    for history, current in zip(histories, current_reals, strict=True):
        closes = sorted((date.fromisoformat(item["day"]), int(item["real_micros"])) for item in history)
        previous: int | None = 0 if closes and closes[0][0] > since else None
        for day, real in closes:
            if previous is not None:
                outflow[day] = outflow.get(day, 0) + previous - real
            previous = real
        if closes and closes[-1][0] < today:
            outflow[today] = outflow.get(today, 0) + closes[-1][1] - current
    paid: dict[date, int] = {}
    for invoice in invoices:
        if invoice.get("status") == "paid" and invoice.get("paid_at"):
            day = datetime.fromisoformat(str(invoice["paid_at"]).replace("Z", "+00:00")).date()
            paid[day] = paid.get(day, 0) + int(invoice["amount_micros"])
    return [Point(day, max(0, outflow[day] + paid.get(day, 0))) for day in sorted(outflow)]


def runway_days(available_micros: int, spend: Sequence[Point], today: date) -> int | None:
    """Whole days the available balance lasts at the last 7 days' average; None without spend."""
    since = today - timedelta(days=RUNWAY_DAYS - 1)
    spent = sum(point.micros for point in spend if point.day >= since)
    if spent <= 0:
        return None
    return max(0, available_micros) * RUNWAY_DAYS // spent
