"""The platform's one identity (issue 13), on the compacted topic `identity.events.v1`.

The identity service owns users, their credentials, API keys and Business Center memberships
(W9). Every service that authorizes callers keeps a local replica of what it needs from these
snapshots and verifies tokens itself: a session token is an EdDSA-signed JWT checked against the
published signing keys; an API key is checked against its published SHA-256. No credential travels
in clear on the topic, and no service calls another to authenticate a caller.

Each event is the whole current state of one entity, keyed `<kind>:<id>`, with a `version` per
entity: a replica keeps the newest version and ignores older ones, so reading the compacted topic
from its beginning rebuilds it.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from adledger_contracts.types import Identifier, Name, ResourceId, UtcDatetime, Version
from adledger_libs.events import Event

Role = Literal["admin", "finance_manager", "operator", "analyst"]
PrincipalKind = Literal["person", "integration"]


class UserChanged(Event):
    """A user (a person, or an integration: another system acting with API keys) was created or changed."""

    MESSAGE_TYPE: ClassVar[str] = "UserChanged"

    user_id: ResourceId = Field(description="The user's id, the `sub` of their tokens.")
    name: Name = Field(description="A name for people.")
    kind: PrincipalKind = Field(description="`person` (signs in with a password) or `integration` (API keys only).")
    platform_operator: bool = Field(description="A platform operator runs the platform itself (opens Business Centers, sets credit lines).")
    disabled: bool = Field(description="A disabled user's tokens and API keys are refused everywhere.")
    version: Version = Field(ge=1, description="Grows by one with each change of this user.")
    changed_at: UtcDatetime = Field(description="When (UTC).")


class MembershipChanged(Event):
    """A user's roles in one Business Center (W9); no roles means the user is no longer part of it."""

    MESSAGE_TYPE: ClassVar[str] = "MembershipChanged"

    business_center_id: ResourceId = Field(description="The Business Center.")
    user_id: ResourceId = Field(description="The user.")
    roles: list[Role] = Field(max_length=4, description="The roles the user holds there; empty when none.")
    version: Version = Field(ge=1, description="Grows by one with each change of this membership.")
    changed_at: UtcDatetime = Field(description="When (UTC).")


class ApiKeyChanged(Event):
    """An API key was issued, or revoked. The key itself is shown once to whoever asked for it;
    only its SHA-256 is ever stored or published."""

    MESSAGE_TYPE: ClassVar[str] = "ApiKeyChanged"

    key_id: ResourceId = Field(description="The key's id (not secret).")
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the whole key, hex.")
    user_id: ResourceId = Field(description="The user (person or integration) the key acts as.")
    name: Name = Field(description="What the key is for, for people.")
    scopes: list[Name] = Field(max_length=32, description="What the key may do, e.g. `sends`; `*` for everything its user may.")
    expires_at: UtcDatetime | None = Field(description="After this the key is refused; null: until revoked.")
    revoked: bool = Field(description="A revoked key is refused everywhere.")
    version: Version = Field(ge=1, description="Grows by one with each change of this key.")
    changed_at: UtcDatetime = Field(description="When (UTC).")


class SessionRevoked(Event):
    """A session token was revoked before it expired (sign-out, or a user disabled)."""

    MESSAGE_TYPE: ClassVar[str] = "SessionRevoked"

    session_id: Identifier = Field(description="The session (the token's `sid` claim).")
    user_id: ResourceId = Field(description="Whose session.")
    expires_at: UtcDatetime = Field(description="When the token would have expired; a replica may forget it after.")
    revoked_at: UtcDatetime = Field(description="When (UTC).")


class SigningKeyPublished(Event):
    """A public key that signs session tokens (EdDSA, Ed25519), or its retirement."""

    MESSAGE_TYPE: ClassVar[str] = "SigningKeyPublished"

    key_id: Identifier = Field(description="The token header's `kid`.")
    algorithm: Literal["EdDSA"] = Field(description="The JWS algorithm.")
    public_key: str = Field(
        pattern=r"^[A-Za-z0-9_-]{43}$", description="The raw 32-byte Ed25519 public key, base64url without padding (JWK `x`)."
    )
    retired: bool = Field(description="A retired key verifies nothing any more.")
    version: Version = Field(ge=1, description="Grows by one with each change of this key.")
    published_at: UtcDatetime = Field(description="When (UTC).")
