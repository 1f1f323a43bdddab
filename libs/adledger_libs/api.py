"""Typed JSON endpoints over Starlette, with their OpenAPI document and idempotent commands.

A service declares each endpoint once (method, path, request and response models, the typed
errors it may answer), and gets from that both the route and its entry in the OpenAPI
document, which is served at `/openapi.json` and checked in under `schemas/openapi/`.

Commands (POST/PUT/PATCH/DELETE) take an `Idempotency-Key` header (rule M5): the handler's
effects and the answer are stored in the same transaction, and the same key again returns the
first answer without applying anything; the same key with a different request is rejected.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adledger_libs.http import ApiError
from adledger_libs.outbox import (
    IdempotencyConflict,
    OutboxRelay,
    UnitOfWork,
    remember_answer,
    remembered_answer,
    unit_of_work,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
_PATH_PARAMETER = re.compile(r"{([a-z_]+)}")


class RequestValidationError(ApiError):
    status_code = 422
    code = "invalid_request"


class IdempotencyKeyRequiredError(ApiError):
    status_code = 400
    code = "idempotency_key_required"


class IdempotencyKeyReusedError(ApiError):
    status_code = 422
    code = "idempotency_key_reused"


class UnauthenticatedError(ApiError):
    status_code = 401
    code = "unauthenticated"


@dataclass(frozen=True)
class Call:
    """What a handler gets: the validated body, path parameters, query, caller and keys."""

    body: Any
    path: dict[str, str]
    query: dict[str, str]
    bearer_token: str | None
    idempotency_key: str | None
    trace_id: str

    def request_fingerprint(self, method: str, path: str) -> str:
        """A hash of what the request asks, to tell a true repeat from a reused key."""
        body = self.body.model_dump(mode="json") if isinstance(self.body, BaseModel) else None
        text = json.dumps([method, path, body, self.query], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


#: A handler answers a status and a model, a list of models, or stored JSON (a repeated command).
Handler = Callable[[Call], Awaitable[tuple[int, Any]]]


def _json(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, list):
        return [_json(item) for item in result]
    return result


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    handler: Handler
    response_model: type[BaseModel]
    request_model: type[BaseModel] | None = None
    success_status: int = 200
    errors: tuple[type[ApiError], ...] = ()
    returns_list: bool = False
    query: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    authenticated: bool = True
    description: str = ""
    extra_responses: dict[int, str] = field(default_factory=dict)

    @property
    def is_command(self) -> bool:
        return self.method in {"POST", "PUT", "PATCH", "DELETE"}


def route(endpoint: Endpoint) -> Route:
    async def serve(request: Request) -> Response:
        body: Any = None
        if endpoint.request_model is not None:
            raw = await request.body()
            try:
                body = endpoint.request_model.model_validate_json(raw or b"{}")
            except ValidationError as error:
                raise RequestValidationError(
                    "the request body is not valid",
                    errors=[
                        {"field": ".".join(str(part) for part in issue["loc"]), "reason": issue["msg"]}
                        for issue in error.errors(include_url=False)
                    ],
                ) from None
        idempotency_key = request.headers.get(IDEMPOTENCY_HEADER)
        if endpoint.is_command and not idempotency_key:
            raise IdempotencyKeyRequiredError(f"commands need an {IDEMPOTENCY_HEADER} header (rule M5)")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 128:
            raise RequestValidationError(f"{IDEMPOTENCY_HEADER} must be 1 to 128 characters")
        authorization = request.headers.get("authorization", "")
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
        if endpoint.authenticated and not token:
            raise UnauthenticatedError("a bearer token is required (Authorization: Bearer <token>)")
        call = Call(
            body=body,
            path=dict(request.path_params),
            query={name: request.query_params[name] for name in endpoint.query if name in request.query_params},
            bearer_token=token,
            idempotency_key=idempotency_key,
            trace_id=str(request.scope.get("state", {}).get("trace_id", "")),
        )
        status, result = await endpoint.handler(call)
        content = _json(result)
        return JSONResponse(content, status_code=status)

    return Route(endpoint.path, serve, methods=[endpoint.method])


class ErrorBody(BaseModel):
    """Every rejection: a stable code to branch on and a reason for people."""

    error: str
    reason: str
    details: dict[str, Any] | None = None


def openapi_document(*, title: str, version: str, description: str, endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorBody}
    for endpoint in endpoints:
        models.add(endpoint.response_model)
        if endpoint.request_model is not None:
            models.add(endpoint.request_model)
    ordered = sorted(models, key=lambda model: model.__name__)
    _, definitions = models_json_schema(
        [(model, "validation") for model in ordered], ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PATH_PARAMETER.findall(endpoint.path)
        ]
        parameters += [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in endpoint.query]
        if endpoint.is_command:
            parameters.append(
                {
                    "name": IDEMPOTENCY_HEADER,
                    "in": "header",
                    "required": True,
                    "description": "Caller-supplied key: the same key twice applies once and returns the first answer (M5).",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                }
            )
        reference = {"$ref": f"#/components/schemas/{endpoint.response_model.__name__}"}
        responses: dict[str, Any] = {
            str(endpoint.success_status): {
                "description": "OK",
                "content": {"application/json": {"schema": {"type": "array", "items": reference} if endpoint.returns_list else reference}},
            }
        }
        error_reference = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        errors = list(endpoint.errors)
        if endpoint.request_model is not None:
            errors.append(RequestValidationError)
        if endpoint.authenticated:
            errors.append(UnauthenticatedError)
        if endpoint.is_command:
            errors += [IdempotencyKeyRequiredError, IdempotencyKeyReusedError]
        for error in errors:
            entry = responses.setdefault(str(error.status_code), {"description": "", **error_reference})
            codes = [code for code in entry["description"].split(", ") if code]
            if error.code not in codes:
                codes.append(error.code)
            entry["description"] = ", ".join(sorted(codes))
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "operationId": f"{endpoint.method.lower()}_{endpoint.path.strip('/').replace('/', '_').replace('{', '').replace('}', '').replace('-', '_')}",
            "parameters": parameters,
            "responses": responses,
        }
        if endpoint.description:
            operation["description"] = endpoint.description
        if endpoint.tags:
            operation["tags"] = list(endpoint.tags)
        if endpoint.authenticated:
            operation["security"] = [{"bearer": []}]
        if endpoint.request_model is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{endpoint.request_model.__name__}"}}},
            }
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_route(document: dict[str, Any]) -> Route:
    async def serve(_: Request) -> Response:
        return JSONResponse(document)

    return Route("/openapi.json", serve, methods=["GET"])


async def run_command(
    pool: asyncpg.Pool,
    relay: OutboxRelay | None,
    call: Call,
    *,
    scope: str,
    fingerprint: str,
    apply: Callable[[UnitOfWork], Awaitable[tuple[int, BaseModel]]],
) -> tuple[int, Any]:
    """Apply a command once per idempotency key, in one transaction with its outbox rows.

    A repeat of the key returns the stored answer (as JSON) and applies nothing. A rejection
    (a typed error) rolls everything back and stores no answer, so the caller may retry the
    same key once the cause is gone (for example after a top-up); decided in docs/decisions.md.
    """
    assert call.idempotency_key is not None
    async with unit_of_work(pool, relay) as uow:
        try:
            stored = await remembered_answer(uow, scope=scope, key=call.idempotency_key, fingerprint=fingerprint)
        except IdempotencyConflict as conflict:
            raise IdempotencyKeyReusedError(str(conflict)) from None
        if stored is not None:
            return stored.status_code, stored.response
        status, answer = await apply(uow)
        await remember_answer(
            uow,
            scope=scope,
            key=call.idempotency_key,
            fingerprint=fingerprint,
            status_code=status,
            response=answer.model_dump(mode="json"),
        )
        return status, answer


CallerT = TypeVar("CallerT")
Apply = Callable[[UnitOfWork, CallerT, Call], Awaitable[tuple[int, Any]]]


class AuthenticatedApi(Generic[CallerT]):
    """A service's endpoints whose handlers get the caller its bearer token maps to: commands run
    once per idempotency key (scoped to the token), queries in a read transaction."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], relay: Callable[[], OutboxRelay], *, service: str) -> None:
        self._pool = pool
        self._relay = relay
        self._service = service

    async def caller(self, uow: UnitOfWork, call: Call) -> CallerT:
        """The caller the bearer token belongs to; raise `UnauthenticatedError` when none."""
        raise NotImplementedError

    def command(self, method: str, path: str, apply: Apply[CallerT]) -> Handler:
        async def handle(call: Call) -> tuple[int, Any]:
            async def apply_once(uow: UnitOfWork) -> tuple[int, Any]:
                return await apply(uow, await self.caller(uow, call), call)

            token_digest = hashlib.sha256((call.bearer_token or "").encode()).hexdigest()
            return await run_command(
                self._pool(), self._relay(), call, scope=f"{self._service}:{token_digest}",
                fingerprint=call.request_fingerprint(method, path.format(**call.path)), apply=apply_once,
            )

        return handle

    def query(self, read: Apply[CallerT]) -> Handler:
        async def handle(call: Call) -> tuple[int, Any]:
            async with unit_of_work(self._pool()) as uow:
                return await read(uow, await self.caller(uow, call), call)

        return handle
