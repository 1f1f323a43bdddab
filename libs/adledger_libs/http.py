"""HTTP for every service: /health, /metrics, a trace-id middleware, and JSON error answers.

A service adds its own routes. Rejections are typed errors that map to a 4xx with a reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adledger_libs.logs import new_trace_id

TRACE_HEADER = "x-trace-id"
HealthCheck = Callable[[], Awaitable[None]]


class TraceIdMiddleware:
    """Takes the caller's `X-Trace-Id` (or starts one), binds it for logs, and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or ()).get(TRACE_HEADER.encode())
        trace_id = incoming.decode("latin-1")[:128] if incoming else new_trace_id()
        scope.setdefault("state", {})["trace_id"] = trace_id

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((TRACE_HEADER.encode(), trace_id.encode()))
            await send(message)

        with structlog.contextvars.bound_contextvars(trace_id=trace_id):
            await self.app(scope, receive, send_with_trace)


class ApiError(Exception):
    """A rejected request: an HTTP status, a stable machine-readable code, and a reason for people."""

    status_code = 400
    code = "bad_request"

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


# The rejections every service answers alike; a service adds its own next to its routes.


class PermissionDenied(ApiError):
    status_code, code = 403, "permission_denied"


class NotFound(ApiError):
    status_code, code = 404, "not_found"


class AlreadyExists(ApiError):
    status_code, code = 409, "already_exists"


class InvalidValue(ApiError):
    status_code, code = 422, "invalid_value"


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return JSONResponse(
        {"error": error.code, "reason": error.reason, **({"details": error.details} if error.details else {})},
        status_code=error.status_code,
    )


def build_app(
    *,
    service: str,
    health_checks: dict[str, HealthCheck],
    routes: Sequence[BaseRoute] = (),
    error_handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] | None = None,
) -> Starlette:
    async def health(_: Request) -> Response:
        results: dict[str, str] = {}
        healthy = True
        for name, check in health_checks.items():
            try:
                await asyncio.wait_for(check(), timeout=3.0)
                results[name] = "ok"
            except Exception as error:  # noqa: BLE001 - any failure makes the check fail, with its reason
                healthy = False
                results[name] = f"failing: {error!r}"
        return JSONResponse(
            {"status": "ok" if healthy else "failing", "service": service, "checks": results},
            status_code=200 if healthy else 503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {ApiError: _api_error}
    handlers.update(error_handlers or {})
    app = Starlette(
        routes=[Route("/health", health), Route("/metrics", metrics), *routes],
        exception_handlers=handlers,
    )
    app.add_middleware(TraceIdMiddleware)
    return app


RejectionTable = Sequence[tuple[tuple[type[Exception], ...], type[ApiError]]]


def rejection_handler(table: RejectionTable) -> Callable[[Request, Exception], Awaitable[Response]]:
    """An exception handler that answers the core's typed rejections with their 4xx, in the
    order of `table` (the first matching row wins); anything else is a bug and re-raised (500)."""

    async def answer(request: Request, error: Exception) -> Response:
        for types, api_error in table:
            if isinstance(error, types):
                return await _api_error(request, api_error(str(error)))
        raise error

    return answer
