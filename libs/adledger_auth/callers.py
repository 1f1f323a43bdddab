"""From a bearer token to a `Caller`, verified locally against the service's identity replica.

A session token's signature, issuer, audience and expiry are checked with the public key its
`kid` names; then its session must not be revoked and its user must exist and not be disabled. An
API key is looked up by its SHA-256 and must be neither revoked nor expired, nor its user disabled.
Every refusal is the same `UnauthenticatedError` with a reason; the reason never says whether a
user or key exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adledger_auth import replica
from adledger_auth.roles import Action, PermissionDeniedError, Role, authorize
from adledger_auth.tokens import (
    MAXIMUM_TOKEN_LENGTH,
    InvalidTokenError,
    looks_like_session_token,
    public_key_from_text,
    read_session,
    token_digest,
    token_key_id,
)
from adledger_libs.clock import Clock
from adledger_libs.refusals import Refusal

#: How long a signing key read from the replica is trusted before it is read again (a retirement
#: takes effect within this time).
_KEY_CACHE_S = 30.0


class UnauthenticatedError(Refusal):
    """No valid credential: missing, malformed, expired, revoked, or not this platform's (401)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    """Who is calling: a user (a person or an integration), how they proved it, what they may do."""

    user_id: str
    kind: str
    platform_operator: bool
    via: Literal["session", "api_key"]
    #: The session id or the API key id: what a revocation names.
    credential_id: str
    #: What the credential may be used for; a session may do everything its user may (`*`).
    scopes: frozenset[str] = frozenset({"*"})
    roles_by_business_center: Mapping[str, frozenset[Role]] = field(default_factory=dict)

    def roles_in(self, business_center_id: str) -> frozenset[Role]:
        return self.roles_by_business_center.get(business_center_id, frozenset())

    def is_member_of(self, business_center_id: str) -> bool:
        return bool(self.roles_in(business_center_id))

    def may_use(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes

    def require_scope(self, scope: str) -> None:
        if not self.may_use(scope):
            raise PermissionDeniedError(f"this API key may not be used for {scope} (its scopes: {sorted(self.scopes)})")

    def require_platform(self, action: str) -> None:
        if not self.platform_operator:
            raise PermissionDeniedError(f"only a platform operator may {action}", action=action)

    def require(self, business_center_id: str, action: Action, *, finance_roles_set_up: bool) -> None:
        """W9 for this caller in one Business Center (a platform operator may do everything)."""
        if not self.platform_operator:
            authorize(self, business_center_id, action, finance_roles_set_up=finance_roles_set_up)


class Authenticator:
    """Verifies bearer tokens against the replica in the service's database."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], clock: Clock) -> None:
        self._pool = pool
        self._clock = clock
        self._keys: dict[str, tuple[float, Ed25519PublicKey]] = {}

    async def authenticate(self, token: str) -> Caller:
        if not token or len(token) > MAXIMUM_TOKEN_LENGTH:
            raise UnauthenticatedError("a bearer token is required (Authorization: Bearer <token>)")
        pool = self._pool()
        if looks_like_session_token(token):
            try:
                key_id = token_key_id(token)
                claims = read_session(token, await self._public_key(pool, key_id), self._clock.now())
            except InvalidTokenError as error:
                raise UnauthenticatedError(str(error)) from None
            if await replica.session_revoked(pool, claims.session_id):
                raise UnauthenticatedError("the session was ended (signed out or revoked)")
            user_id, via, credential_id, scopes = claims.user_id, "session", claims.session_id, frozenset({"*"})
        else:
            key = await replica.api_key(pool, token_digest(token))
            if key is None:
                raise UnauthenticatedError("the bearer token is not valid")
            if key.revoked:
                raise UnauthenticatedError("the API key was revoked")
            if key.expires_at is not None and key.expires_at <= self._clock.now():
                raise UnauthenticatedError("the API key has expired")
            user_id, via, credential_id, scopes = key.user_id, "api_key", key.key_id, key.scopes
        known = await replica.user(pool, user_id)
        if known is None or known.disabled:
            raise UnauthenticatedError("the bearer token is not valid")
        return Caller(
            user_id=user_id, kind=known.kind, platform_operator=known.platform_operator, via=via,  # type: ignore[arg-type]
            credential_id=credential_id, scopes=scopes,
            roles_by_business_center=await replica.memberships_of(pool, user_id),
        )

    async def _public_key(self, pool: asyncpg.Pool, key_id: str) -> Ed25519PublicKey:
        cached = self._keys.get(key_id)
        if cached is not None and time.monotonic() - cached[0] < _KEY_CACHE_S:
            return cached[1]
        text = await replica.signing_key(pool, key_id)
        if text is None:
            self._keys.pop(key_id, None)
            raise InvalidTokenError(f"the token's signing key {key_id} is not known here (or was retired)")
        key = public_key_from_text(text)
        self._keys[key_id] = (time.monotonic(), key)
        return key
