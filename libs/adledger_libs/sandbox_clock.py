"""The sandbox test clock (issue 17, T1): one shared time for every service, moved forward on request.

In a sandbox (`ADLEDGER_CLOCK=sandbox`, refused in production) every service reads time from a
`SandboxClock`, which follows one durable time kept in PostgreSQL (schema `sandbox_clock` by default,
`ADLEDGER_SANDBOX_CLOCK_SCHEMA`):

- `clock` (one row): the sandbox time. Between advances it stands still (as Stripe's test clocks
  do): a deadline fires only when the time is moved to it, never half-way through a test.
- `reached` (a row per service): the sandbox time the service has caught up with (its clock-driven
  jobs ran for it) and the next time one of its jobs is due.

`advance_to` (the coordinator, served by the identity service) moves the time in hops: to the earliest
next-due time any service reports (capped by the target), waits until every service reached it, and
goes on until the target. So a deadline inside an advance fires once, at its own time: the events
carry the time they were due, not the time of the advance. A service restarted during an advance
reads the durable time at start, runs its jobs for it (which are exactly once by their own
done-marks) and reports again; the coordinator waits for it (bounded, then a clear error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from adledger_libs.clock import utc_day_ends_at, utc_day_of
from adledger_libs.db import checked_schema
from adledger_libs.logs import get_logger

log = get_logger(__name__)

#: The longest advance one call makes (every UTC midnight inside it is a hop of its own).
MAXIMUM_ADVANCE = timedelta(days=400)

NextDue = Callable[[], Awaitable[datetime | None]]


class SandboxClockError(Exception):
    """A sandbox-clock request that cannot be carried out; `code` is the API's error code."""

    code = "sandbox_clock"


class ClockBackwardsError(SandboxClockError):
    code = "clock_backwards"


class AdvanceTooLargeError(SandboxClockError):
    code = "advance_too_large"


class AdvanceInProgressError(SandboxClockError):
    code = "advance_in_progress"


class ServicesBehindError(SandboxClockError):
    """Some services did not catch up with a hop in time; the time stays at that hop."""

    code = "services_behind"

    def __init__(self, reason: str, now: datetime, behind: Sequence[str]) -> None:
        super().__init__(reason)
        self.now = now
        self.behind = list(behind)


def _to_second(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


async def ensure_schema(conn: asyncpg.Connection, schema: str) -> None:
    """The sandbox clock's two tables (idempotent; an advisory lock makes concurrent starts safe)."""
    schema = checked_schema(schema)
    await conn.execute("select pg_advisory_lock(hashtext($1))", f"adledger.sandbox_clock.{schema}")
    try:
        await conn.execute(f"create schema if not exists {schema}")
        await conn.execute(
            f"""create table if not exists {schema}.clock (
                    id boolean primary key default true check (id),
                    now timestamptz not null,
                    anchored_at timestamptz not null default now(),
                    advanced_at timestamptz)"""
        )
        await conn.execute(
            f"""create table if not exists {schema}.reached (
                    service text primary key,
                    reached timestamptz not null,
                    next_due timestamptz,
                    reported_at timestamptz not null default now())"""
        )
    finally:
        await conn.execute("select pg_advisory_unlock(hashtext($1))", f"adledger.sandbox_clock.{schema}")


async def ensure_schema_on(pool: asyncpg.Pool, schema: str) -> None:
    async with pool.acquire() as conn:
        await ensure_schema(conn, schema)


async def read_time(conn: asyncpg.Connection | asyncpg.Pool, schema: str, *, anchor: datetime | None = None) -> datetime:
    """The sandbox time; the first reader anchors it (at `anchor`, by default the wall clock)."""
    schema = checked_schema(schema)
    found = await conn.fetchval(f"select now from {schema}.clock")
    if found is None:
        start = _to_second(anchor or datetime.now(UTC))
        await conn.execute(f"insert into {schema}.clock (now) values ($1) on conflict do nothing", start)
        found = await conn.fetchval(f"select now from {schema}.clock")
    return found.astimezone(UTC)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ServiceReached:
    service: str
    reached: datetime
    next_due: datetime | None
    reported_at: datetime


async def services_reached(conn: asyncpg.Connection | asyncpg.Pool, schema: str) -> list[ServiceReached]:
    schema = checked_schema(schema)
    rows = await conn.fetch(f"select service, reached, next_due, reported_at from {schema}.reached order by service")
    return [ServiceReached(r["service"], r["reached"].astimezone(UTC), r["next_due"] and r["next_due"].astimezone(UTC),
                           r["reported_at"].astimezone(UTC)) for r in rows]


class SandboxClock:
    """The clock of a service in a sandbox: the durable sandbox time, as last read.

    `now()` never blocks and never moves by itself; the runtime's follower (`ServiceRuntime`) reads
    the durable time, runs the clock-driven jobs for each new time, then `report`s it."""

    def __init__(self, schema: str = "sandbox_clock", *, poll_interval_s: float = 0.1) -> None:
        self.schema = checked_schema(schema)
        self.poll_interval_s = poll_interval_s
        self._now: datetime | None = None

    def now(self) -> datetime:
        if self._now is None:
            raise RuntimeError("the sandbox clock is read before the service started (it reads the time at start)")
        return self._now

    @property
    def started(self) -> bool:
        return self._now is not None

    async def attach(self, pool: asyncpg.Pool) -> datetime:
        """Make the tables if missing and read the time (at a service's start, before anything runs)."""
        async with pool.acquire() as conn:
            await ensure_schema(conn, self.schema)
            self._now = await read_time(conn, self.schema)
        return self._now

    async def refresh(self, pool: asyncpg.Pool) -> bool:
        """Read the durable time; True when it moved since the last read (it never moves backwards)."""
        found = await read_time(pool, self.schema)
        if self._now is not None and found <= self._now:
            return False
        self._now = found
        return True

    async def report(self, pool: asyncpg.Pool, service: str, reached: datetime, next_due: datetime | None) -> None:
        await pool.execute(
            f"""insert into {self.schema}.reached (service, reached, next_due, reported_at) values ($1, $2, $3, now())
                on conflict (service) do update set reached = greatest({self.schema}.reached.reached, excluded.reached),
                    next_due = excluded.next_due, reported_at = now()""",
            service, reached, next_due,
        )


def default_next_due(now: datetime) -> datetime:
    """When a job without a schedule of its own may be due next: the next UTC day close (day closes,
    month closes, budget periods and the W10 day all change at a UTC midnight)."""
    return utc_day_ends_at(utc_day_of(now))


async def advance_to(
    pool: asyncpg.Pool, schema: str, target: datetime, *, hop_timeout_s: float = 60.0, poll_interval_s: float = 0.05,
) -> tuple[datetime, int]:
    """Move the sandbox time to `target` hop by hop; returns (the time, how many hops). Only one advance
    runs at a time (an advisory lock); moving backwards is refused; an advance of more than
    `MAXIMUM_ADVANCE` too. Raises `ServicesBehindError` when a service did not catch up with a hop
    within `hop_timeout_s` (the time then stays at that hop, durable: call again when it is back)."""
    schema = checked_schema(schema)
    target = _to_second(target)
    async with pool.acquire() as conn:
        await ensure_schema(conn, schema)
        if not await conn.fetchval("select pg_try_advisory_lock(hashtext($1))", f"adledger.sandbox_clock.advance.{schema}"):
            raise AdvanceInProgressError("another advance of the sandbox clock is under way; try again when it returned")
        try:
            now = await read_time(conn, schema)
            if target < now:
                raise ClockBackwardsError(
                    f"the sandbox time is {now.isoformat()}; it does not move backwards to {target.isoformat()}"
                )
            if target - now > MAXIMUM_ADVANCE:
                raise AdvanceTooLargeError(f"one advance moves at most {MAXIMUM_ADVANCE.days} days")
            hops = 0
            await _wait_for_services(conn, schema, now, hop_timeout_s, poll_interval_s)
            while now < target:
                dues = [r.next_due for r in await services_reached(conn, schema) if r.next_due is not None and r.next_due > now]
                hop = min([target, default_next_due(now), *dues])
                await conn.execute(f"update {schema}.clock set now = $1, advanced_at = now()", hop)
                hops += 1
                log.info("sandbox_clock_moved", now=hop.isoformat(), target=target.isoformat())
                now = hop
                await _wait_for_services(conn, schema, now, hop_timeout_s, poll_interval_s)
            return now, hops
        finally:
            await conn.execute("select pg_advisory_unlock(hashtext($1))", f"adledger.sandbox_clock.advance.{schema}")


async def _wait_for_services(conn: asyncpg.Connection, schema: str, now: datetime, timeout_s: float, poll_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        behind = [r.service for r in await services_reached(conn, schema) if r.reached < now]
        if not behind:
            return
        if loop.time() > deadline:
            raise ServicesBehindError(
                f"the sandbox time is {now.isoformat()}, but {', '.join(behind)} did not catch up within {timeout_s:.0f} s "
                "(is it running?); advance again once it is back", now, behind,
            )
        await asyncio.sleep(poll_s)
