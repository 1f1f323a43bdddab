"""The console's "now": the wall clock (or the clock a test injects), or, in a sandbox
(`ADLEDGER_CLOCK=sandbox`), the sandbox time the platform's services follow (issue 17), so that spend
per day, the runway and campaign end dates are of the sandbox's day, not the wall clock's.

The sandbox time is read from the wallet's public `/health` (`sandbox_clock.now`): identity's
`GET /v1/sandbox/clock` is the platform operator's only, and the `sandbox_clock` schema is a private
database. If the wallet does not say (down, or not in a sandbox), the console falls back to its clock
and logs it: a page is better drawn on the wall clock's day than not at all."""

from __future__ import annotations

from datetime import UTC, datetime

from adledger_libs.clock import Clock
from adledger_libs.logs import get_logger

from adledger_console.apis import Apis, Refusal

log = get_logger(__name__)


class ConsoleTime:
    def __init__(self, clock: Clock, apis: Apis, *, sandbox: bool) -> None:
        self.clock, self.apis, self.sandbox = clock, apis, sandbox

    async def now(self) -> datetime:
        if not self.sandbox:
            return self.clock.now()
        try:
            health = await self.apis.public("wallet", "/health")
        except Refusal as refusal:
            log.warning("sandbox_time_unknown", reason=refusal.reason)
            return self.clock.now()
        reported = sandbox_now(health)
        if reported is None:
            log.warning("sandbox_time_unknown", reason="the wallet's /health reports no sandbox_clock.now")
            return self.clock.now()
        return reported


def sandbox_now(health: object) -> datetime | None:
    """`sandbox_clock.now` of a service's /health, an aware UTC time; None if it has none (or a malformed one)."""
    if not isinstance(health, dict):
        return None
    clock = health.get("sandbox_clock")
    value = clock.get("now") if isinstance(clock, dict) else None
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
