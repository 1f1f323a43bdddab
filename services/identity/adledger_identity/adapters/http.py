"""The identity's HTTP API (FastAPI): sign-in, users, API keys, Business Center roles, and the
public signing keys (JWKS) for anyone who wants to verify a session token themselves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from adledger_auth import tokens
from adledger_auth.http import CurrentCaller
from adledger_auth.replica import KnownUser
from adledger_auth.roles import PermissionDeniedError, Role
from adledger_contracts.types import Name, ResourceId, UtcDatetime
from adledger_identity.core import Identity
from adledger_identity.domain import identity as rules
from adledger_identity.ports.signing import SigningKeys
from adledger_identity.ports.store import StoredApiKey
from adledger_libs.outbox import UnitOfWork
from adledger_libs.web import (
    AUTHENTICATED_ERRORS,
    COMMAND_ERRORS,
    AlreadyExists,
    ApiError,
    Commands,
    IdempotencyKeyHeader,
    InvalidRequest,
    InvalidValue,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RejectionTable,
    responses,
)

# Requests and answers ----------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Password = str


class SignIn(_Model):
    user_id: ResourceId = Field(description="Who signs in.")
    password: str = Field(min_length=1, max_length=rules.MAXIMUM_PASSWORD_LENGTH, description="Their password.")


class SessionAnswer(_Model):
    token: str = Field(description="The session token: send it as `Authorization: Bearer <token>` to every service.")
    token_type: Literal["Bearer"] = "Bearer"
    session_id: str = Field(description="The session; signing out ends it.")
    user_id: str
    expires_at: datetime = Field(description="After this the token is refused; sign in again.")


class CreateUser(_Model):
    id: ResourceId = Field(description="The user's id.")
    name: Name = Field(description="A name for people.")
    kind: Literal["person", "integration"] = Field(default="person", description="A person signs in; an integration uses API keys.")
    password: str | None = Field(
        default=None, min_length=1, max_length=rules.MAXIMUM_PASSWORD_LENGTH,
        description=f"A person's first password, at least {tokens.MINIMUM_PASSWORD_LENGTH} characters.",
    )
    platform_operator: bool = Field(default=False, description="Runs the platform itself.")


class SetPassword(_Model):
    password: str = Field(min_length=1, max_length=rules.MAXIMUM_PASSWORD_LENGTH)


class UserAnswer(_Model):
    id: str
    name: str
    kind: str
    platform_operator: bool
    disabled: bool
    roles: dict[str, list[str]] = Field(description="Roles per Business Center (W9).")


class GrantRole(_Model):
    role: Role = Field(description="The role to give (W9).")


class MembershipAnswer(_Model):
    business_center_id: str
    user_id: str
    roles: list[str]


class IssueApiKey(_Model):
    user_id: ResourceId = Field(description="The user (person or integration) the key acts as.")
    name: Name = Field(description="What the key is for.")
    scopes: list[Name] = Field(default_factory=lambda: ["*"], min_length=1, max_length=32,
                               description="What the key may be used for, e.g. `sends`; `*` for everything its user may.")
    expires_at: UtcDatetime | None = Field(default=None, description="When the key stops working; null: until revoked.")


class ApiKeyAnswer(_Model):
    key_id: str
    user_id: str
    name: str
    scopes: list[str]
    expires_at: datetime | None
    revoked: bool


class ApiKeyIssued(ApiKeyAnswer):
    token: str | None = Field(
        description="The key, shown once: a repeat of the request (same Idempotency-Key) answers without it."
    )


class SignedOut(_Model):
    sessions_ended: int


class JsonWebKey(_Model):
    kty: Literal["OKP"] = "OKP"
    crv: Literal["Ed25519"] = "Ed25519"
    alg: Literal["EdDSA"] = "EdDSA"
    use: Literal["sig"] = "sig"
    kid: str
    x: str


class JsonWebKeySet(_Model):
    keys: list[JsonWebKey]


# Typed errors ----------------------------------------------------------------------------------------


class WrongCredentials(ApiError):
    status_code, code = 401, "sign_in_refused"


class TooManyAttempts(ApiError):
    status_code, code = 429, "too_many_attempts"


class WeakPassword(ApiError):
    status_code, code = 422, "weak_password"


REJECTIONS: RejectionTable = [
    ((PermissionDeniedError,), PermissionDenied),
    ((rules.SignInRefusedError,), WrongCredentials),
    ((rules.TooManyAttemptsError,), TooManyAttempts),
    ((rules.UserExistsError,), AlreadyExists),
    ((rules.UnknownUserError, rules.UnknownBusinessCenterError, rules.UnknownApiKeyError), NotFound),
    ((rules.WeakPasswordError,), WeakPassword),
    ((rules.IntegrationSignInError,), InvalidValue),
]

PUBLIC_PATHS = ("/v1/sessions", "/.well-known/jwks.json")


def router(identity: Identity, commands: Commands, signing: Callable[[], SigningKeys]) -> APIRouter:
    api = APIRouter()
    as_command = responses(*AUTHENTICATED_ERRORS, *COMMAND_ERRORS, PermissionDenied, NotFound)

    @api.post("/v1/sessions", status_code=201, response_model=SessionAnswer, tags=["sessions"],
              summary="Sign in: a session token for every service of the platform",
              responses=responses(WrongCredentials, TooManyAttempts, InvalidRequest, PayloadTooLarge))
    async def sign_in(body: SignIn) -> SessionAnswer:
        session = await commands.read(lambda uow: identity.sign_in(uow, body.user_id, body.password))
        if isinstance(session, rules.SignInRefusedError):
            raise session
        return SessionAnswer(token=session.token, session_id=session.session_id, user_id=session.user_id,
                             expires_at=session.expires_at)

    @api.delete("/v1/sessions/current", response_model=SignedOut, tags=["sessions"],
                summary="Sign out: the session token is refused everywhere from now on",
                responses=responses(*AUTHENTICATED_ERRORS, PermissionDenied))
    async def sign_out(caller: CurrentCaller) -> SignedOut:
        return SignedOut(sessions_ended=await commands.read(lambda uow: identity.sign_out(uow, caller)))

    @api.post("/v1/users", status_code=201, response_model=UserAnswer, tags=["users"],
              summary="Create a user: a person (with a password) or an integration (platform operators)",
              responses=responses(*AUTHENTICATED_ERRORS, *COMMAND_ERRORS, PermissionDenied, AlreadyExists, WeakPassword,
                                  InvalidValue))
    async def create_user(body: CreateUser, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            user = await identity.create_user(uow, caller, body.id, body.name, kind=body.kind, password=body.password,
                                              platform_operator=body.platform_operator)
            return 201, _user_answer(user, {})

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply,
                                  fingerprint_body=body.model_copy(update={"password": None}))

    @api.get("/v1/users/me", response_model=UserAnswer, tags=["users"], summary="Who I am, and my roles",
             responses=responses(*AUTHENTICATED_ERRORS))
    async def me(caller: CurrentCaller) -> UserAnswer:
        return await _read_user(caller.user_id, caller)

    @api.get("/v1/users/{user_id}", response_model=UserAnswer, tags=["users"],
             summary="A user and their roles (themselves, platform operators, Admins of a shared Business Center)",
             responses=responses(*AUTHENTICATED_ERRORS, NotFound))
    async def read_user(user_id: ResourceId, caller: CurrentCaller) -> UserAnswer:
        return await _read_user(user_id, caller)

    async def _read_user(user_id: str, caller: Any) -> UserAnswer:
        user, roles = await commands.read(lambda uow: identity.user(uow, caller, user_id))
        return _user_answer(user, roles)

    @api.put("/v1/users/{user_id}/password", response_model=UserAnswer, tags=["users"],
             summary="Set a password (the user, or a platform operator); every session of the user ends",
             responses=responses(*AUTHENTICATED_ERRORS, *COMMAND_ERRORS, PermissionDenied, NotFound, WeakPassword, InvalidValue))
    async def set_password(user_id: ResourceId, body: SetPassword, caller: CurrentCaller, key: IdempotencyKeyHeader,
                           request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            await identity.set_password(uow, caller, user_id, body.password)
            user, roles = await identity.user(uow, caller, user_id)
            return 200, _user_answer(user, roles)

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply, fingerprint_body={})

    @api.post("/v1/users/{user_id}/disable", response_model=UserAnswer, tags=["users"],
              summary="Disable a user: their sessions and API keys are refused everywhere (platform operators)",
              responses=as_command)
    async def disable_user(user_id: ResourceId, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            user = await identity.disable_user(uow, caller, user_id)
            return 200, _user_answer(user, {})

        return await commands.run(request, caller_id=caller.user_id, key=key, body=None, apply=apply)

    @api.put("/v1/business-centers/{business_center_id}/members/{user_id}", response_model=MembershipAnswer,
             tags=["business centers"], summary="Give a user a role in a Business Center (its Admins, platform operators; W9)",
             responses=as_command)
    async def grant_role(business_center_id: ResourceId, user_id: ResourceId, body: GrantRole, caller: CurrentCaller,
                         key: IdempotencyKeyHeader, request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            roles = await identity.grant_role(uow, caller, business_center_id, user_id, Role(body.role))
            return 200, MembershipAnswer(business_center_id=business_center_id, user_id=user_id, roles=sorted(roles))

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.delete("/v1/business-centers/{business_center_id}/members/{user_id}", response_model=MembershipAnswer,
                tags=["business centers"], summary="Take one role (`?role=`) or every role from a user (its Admins; W9)",
                responses=as_command)
    async def revoke_roles(business_center_id: ResourceId, user_id: ResourceId, caller: CurrentCaller, key: IdempotencyKeyHeader,
                           request: Request, role: Role | None = Query(default=None)) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            roles = await identity.revoke_roles(uow, caller, business_center_id, user_id, Role(role) if role else None)
            return 200, MembershipAnswer(business_center_id=business_center_id, user_id=user_id, roles=sorted(roles))

        return await commands.run(request, caller_id=caller.user_id, key=key, body=None, apply=apply)

    @api.get("/v1/business-centers/{business_center_id}/members", response_model=list[MembershipAnswer],
             tags=["business centers"], summary="Who holds which roles in a Business Center (any of its roles)",
             responses=responses(*AUTHENTICATED_ERRORS, NotFound))
    async def members(business_center_id: ResourceId, caller: CurrentCaller) -> list[MembershipAnswer]:
        found = await commands.read(lambda uow: identity.members(uow, caller, business_center_id))
        return [MembershipAnswer(business_center_id=business_center_id, user_id=user, roles=sorted(roles))
                for user, roles in found.items()]

    @api.post("/v1/api-keys", status_code=201, response_model=ApiKeyIssued, tags=["api keys"],
              summary="Issue an API key, shown once (a user for themselves; platform operators for anyone)",
              responses=responses(*AUTHENTICATED_ERRORS, *COMMAND_ERRORS, PermissionDenied, NotFound, WeakPassword))
    async def issue_api_key(body: IssueApiKey, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            issued = await identity.issue_api_key(uow, caller, body.user_id, body.name, list(body.scopes), body.expires_at)
            return 201, ApiKeyIssued(**_key_answer(issued.key).model_dump(), token=issued.token)

        # The answer kept for a repeat has no key in it: no credential is at rest in plain text.
        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply,
                                  stored=lambda answer: {**answer, "token": None})

    @api.get("/v1/users/{user_id}/api-keys", response_model=list[ApiKeyAnswer], tags=["api keys"],
             summary="A user's API keys, without the keys themselves", responses=responses(*AUTHENTICATED_ERRORS, NotFound))
    async def api_keys(user_id: ResourceId, caller: CurrentCaller) -> list[ApiKeyAnswer]:
        return [_key_answer(item) for item in await commands.read(lambda uow: identity.api_keys(uow, caller, user_id))]

    @api.delete("/v1/api-keys/{key_id}", response_model=ApiKeyAnswer, tags=["api keys"],
                summary="Revoke an API key: refused everywhere from now on", responses=as_command)
    async def revoke_api_key(key_id: ResourceId, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            return 200, _key_answer(await identity.revoke_api_key(uow, caller, key_id))

        return await commands.run(request, caller_id=caller.user_id, key=key, body=None, apply=apply)

    @api.get("/.well-known/jwks.json", response_model=JsonWebKeySet, tags=["sessions"],
             summary="The public keys that sign session tokens (RFC 7517)")
    async def jwks() -> JsonWebKeySet:
        return JsonWebKeySet(keys=[JsonWebKey(kid=key_id, x=tokens.public_key_text(key))
                                   for key_id, key in sorted(signing().keys.items())])

    return api


def _user_answer(user: KnownUser, roles: dict[str, frozenset[Role]]) -> UserAnswer:
    return UserAnswer(id=user.user_id, name=user.name, kind=user.kind, platform_operator=user.platform_operator,
                      disabled=user.disabled, roles={center: sorted(held) for center, held in sorted(roles.items())})


def _key_answer(key: StoredApiKey) -> ApiKeyAnswer:
    return ApiKeyAnswer(key_id=key.key_id, user_id=key.user_id, name=key.name, scopes=list(key.scopes),
                        expires_at=key.expires_at, revoked=key.revoked)
