"""The identity's store, as a protocol: the core names no database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from adledger_auth.replica import KnownUser
from adledger_auth.roles import Role


@dataclass(frozen=True)
class StoredApiKey:
    key_id: str
    user_id: str
    name: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    revoked: bool
    token_sha256: str
    version: int


class IdentityStore(Protocol):
    """One transaction's view of the identity (a `UnitOfWork`'s connection behind it)."""

    async def user(self, user_id: str, *, for_update: bool = False) -> tuple[KnownUser, int] | None:
        """The user and its version."""
        ...

    async def password_hash(self, user_id: str) -> str | None: ...

    async def set_password_hash(self, user_id: str, password_hash: str, now: datetime) -> None: ...

    async def roles(self, business_center_id: str, user_id: str, *, for_update: bool = False) -> tuple[frozenset[Role], int]:
        """The user's roles there and the membership's version (0 when it never existed)."""
        ...

    async def memberships_of(self, user_id: str) -> dict[str, frozenset[Role]]: ...

    async def members_of(self, business_center_id: str) -> dict[str, frozenset[Role]]: ...

    async def business_center_exists(self, business_center_id: str) -> bool: ...

    async def add_business_center(self, business_center_id: str, opened_at: datetime) -> None: ...

    async def api_key(self, key_id: str, *, for_update: bool = False) -> StoredApiKey | None: ...

    async def api_keys_of(self, user_id: str) -> Sequence[StoredApiKey]: ...

    async def add_session(self, session_id: str, user_id: str, issued_at: datetime, expires_at: datetime) -> None: ...

    async def session(self, session_id: str) -> tuple[str, datetime, datetime | None] | None:
        """(user id, expires at, revoked at) of a session."""
        ...

    async def revoke_sessions(self, user_id: str, now: datetime, session_id: str | None = None) -> list[tuple[str, datetime]]:
        """Mark the user's live sessions (or just one) revoked; (session id, expires at) of each."""
        ...

    async def sign_in_failures(self, user_id: str, since: datetime) -> list[datetime]: ...

    async def record_sign_in_failure(self, user_id: str, now: datetime, forget_before: datetime) -> None: ...

    async def clear_sign_in_failures(self, user_id: str) -> None: ...

    async def signing_keys(self) -> dict[str, tuple[str, bool, int]]:
        """key id → (public key, retired, version) of every key ever published."""
        ...

    async def apply(self, event: Any) -> None:
        """Apply one of the identity's own events to its tables (the same code every replica runs)."""
        ...
