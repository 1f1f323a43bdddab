"""The sandbox test clock's API (issue 17): read it, and move it forward (platform operators only).

Served by the identity service, and only when it runs with `ADLEDGER_CLOCK=sandbox` (never in
production). The coordinator itself is `adledger_libs.sandbox_clock.advance_to`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from adledger_auth.http import CurrentCaller
from adledger_contracts.types import UtcDatetime
from adledger_libs import sandbox_clock as sandbox
from adledger_libs.web import AUTHENTICATED_ERRORS, ApiError, PermissionDenied, responses


class ClockBackwards(ApiError):
    status_code, code = 409, "clock_backwards"


class AdvanceInProgress(ApiError):
    status_code, code = 409, "advance_in_progress"


class AdvanceTooLarge(ApiError):
    status_code, code = 422, "advance_too_large"


class ServicesBehind(ApiError):
    status_code, code = 504, "services_behind"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Advance(_Model):
    """Exactly one of `to` (idempotent: a retry of the same call changes nothing) or `by_seconds`."""

    to: UtcDatetime | None = Field(default=None, description="Move the sandbox time to this moment (UTC).")
    by_seconds: int | None = Field(
        default=None, ge=1, le=int(sandbox.MAXIMUM_ADVANCE.total_seconds()),
        description="Move the sandbox time forward by this many seconds (not idempotent: prefer `to` to retry).",
    )

    @model_validator(mode="after")
    def _one(self) -> Advance:
        if (self.to is None) == (self.by_seconds is None):
            raise ValueError("give exactly one of `to` and `by_seconds`")
        return self


class ServiceTime(_Model):
    service: str
    reached: datetime = Field(description="The sandbox time the service has caught up with (its jobs ran for it).")
    next_due: datetime | None = Field(description="When one of the service's jobs is due next, if it knows.")
    caught_up: bool


class ClockAnswer(_Model):
    now: datetime = Field(description="The sandbox time: it stands still between advances.")
    services: list[ServiceTime]
    hops: int | None = Field(default=None, description="How many stops the advance made (each due time inside it).")


async def _answer(pool: asyncpg.Pool, schema: str, hops: int | None = None) -> ClockAnswer:
    now = await sandbox.read_time(pool, schema)
    services = [
        ServiceTime(service=r.service, reached=r.reached, next_due=r.next_due, caught_up=r.reached >= now)
        for r in await sandbox.services_reached(pool, schema)
    ]
    return ClockAnswer(now=now, services=services, hops=hops)


def router(pool: Callable[[], asyncpg.Pool], *, schema: str, hop_timeout_s: float) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/sandbox/clock", response_model=ClockAnswer, tags=["sandbox clock"],
             summary="The sandbox time and the time every service has reached",
             responses=responses(*AUTHENTICATED_ERRORS, PermissionDenied))
    async def show(caller: CurrentCaller) -> ClockAnswer:
        _operator(caller)
        await sandbox.ensure_schema_on(pool(), schema)
        return await _answer(pool(), schema)

    @api.post("/v1/sandbox/clock/advance", response_model=ClockAnswer, tags=["sandbox clock"],
              summary="Move the sandbox time forward; answers once every service has caught up",
              responses=responses(*AUTHENTICATED_ERRORS, PermissionDenied, ClockBackwards, AdvanceInProgress,
                                  AdvanceTooLarge, ServicesBehind))
    async def advance(body: Advance, caller: CurrentCaller) -> ClockAnswer:
        _operator(caller)
        await sandbox.ensure_schema_on(pool(), schema)
        if body.to is not None:
            target = body.to
        else:
            target = await sandbox.read_time(pool(), schema) + timedelta(seconds=body.by_seconds or 0)
        try:
            _, hops = await sandbox.advance_to(pool(), schema, target, hop_timeout_s=hop_timeout_s)
        except sandbox.ClockBackwardsError as error:
            raise ClockBackwards(str(error)) from error
        except sandbox.AdvanceInProgressError as error:
            raise AdvanceInProgress(str(error)) from error
        except sandbox.AdvanceTooLargeError as error:
            raise AdvanceTooLarge(str(error)) from error
        except sandbox.ServicesBehindError as error:
            raise ServicesBehind(str(error), now=error.now.isoformat(), behind=error.behind) from error
        return await _answer(pool(), schema, hops)

    return api


def _operator(caller: CurrentCaller) -> None:
    if not caller.platform_operator:
        raise PermissionDenied("only a platform operator may read or move the sandbox clock")
