"""The identity's store in PostgreSQL: the library's replica tables plus the identity's own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from adledger_auth import replica
from adledger_auth.replica import KnownUser
from adledger_auth.roles import Role
from adledger_identity.ports.store import StoredApiKey
from adledger_libs.outbox import UnitOfWork


class PostgresIdentityStore:
    """Implements `ports.store.IdentityStore` on one transaction's connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @classmethod
    def of(cls, uow: UnitOfWork) -> PostgresIdentityStore:
        return cls(uow.conn)

    async def user(self, user_id: str, *, for_update: bool = False) -> tuple[KnownUser, int] | None:
        row = await self._conn.fetchrow(
            "select user_id, name, kind, platform_operator, disabled, version from identity_users where user_id = $1"
            + (" for update" if for_update else ""),
            user_id,
        )
        if row is None:
            return None
        values = dict(row)
        version = values.pop("version")
        return KnownUser(**values), version

    async def password_hash(self, user_id: str) -> str | None:
        return await self._conn.fetchval("select password_hash from credentials where user_id = $1", user_id)

    async def set_password_hash(self, user_id: str, password_hash: str, now: datetime) -> None:
        await self._conn.execute(
            """insert into credentials (user_id, password_hash, changed_at) values ($1, $2, $3)
               on conflict (user_id) do update set password_hash = excluded.password_hash, changed_at = excluded.changed_at""",
            user_id, password_hash, now,
        )

    async def roles(self, business_center_id: str, user_id: str, *, for_update: bool = False) -> tuple[frozenset[Role], int]:
        row = await self._conn.fetchrow(
            "select roles, version from identity_memberships where business_center_id = $1 and user_id = $2"
            + (" for update" if for_update else ""),
            business_center_id, user_id,
        )
        if row is None:
            return frozenset(), 0
        return frozenset(Role(role) for role in row["roles"]), row["version"]

    async def memberships_of(self, user_id: str) -> dict[str, frozenset[Role]]:
        return await replica.memberships_of(self._conn, user_id)

    async def members_of(self, business_center_id: str) -> dict[str, frozenset[Role]]:
        return await replica.members_of(self._conn, business_center_id)

    async def business_center_exists(self, business_center_id: str) -> bool:
        return bool(await self._conn.fetchval("select true from business_centers where business_center_id = $1", business_center_id))

    async def add_business_center(self, business_center_id: str, opened_at: datetime) -> None:
        await self._conn.execute(
            "insert into business_centers (business_center_id, opened_at) values ($1, $2) on conflict do nothing",
            business_center_id, opened_at,
        )

    async def api_key(self, key_id: str, *, for_update: bool = False) -> StoredApiKey | None:
        row = await self._conn.fetchrow(
            "select key_id, user_id, name, scopes, expires_at, revoked, token_sha256, version from identity_api_keys"
            " where key_id = $1" + (" for update" if for_update else ""),
            key_id,
        )
        return _api_key(row) if row is not None else None

    async def api_keys_of(self, user_id: str) -> Sequence[StoredApiKey]:
        rows = await self._conn.fetch(
            "select key_id, user_id, name, scopes, expires_at, revoked, token_sha256, version from identity_api_keys"
            " where user_id = $1 order by key_id",
            user_id,
        )
        return [_api_key(row) for row in rows]

    async def add_session(self, session_id: str, user_id: str, issued_at: datetime, expires_at: datetime) -> None:
        await self._conn.execute(
            "insert into sessions (session_id, user_id, issued_at, expires_at) values ($1, $2, $3, $4)",
            session_id, user_id, issued_at, expires_at,
        )

    async def session(self, session_id: str) -> tuple[str, datetime, datetime | None] | None:
        row = await self._conn.fetchrow("select user_id, expires_at, revoked_at from sessions where session_id = $1", session_id)
        return (row["user_id"], row["expires_at"], row["revoked_at"]) if row is not None else None

    async def revoke_sessions(self, user_id: str, now: datetime, session_id: str | None = None) -> list[tuple[str, datetime]]:
        rows = await self._conn.fetch(
            """update sessions set revoked_at = $2
               where user_id = $1 and revoked_at is null and expires_at > $2 and ($3::text is null or session_id = $3)
               returning session_id, expires_at""",
            user_id, now, session_id,
        )
        return [(row["session_id"], row["expires_at"]) for row in rows]

    async def sign_in_failures(self, user_id: str, since: datetime) -> list[datetime]:
        rows = await self._conn.fetch(
            "select failed_at from sign_in_failures where user_id = $1 and failed_at > $2", user_id, since
        )
        return [row["failed_at"] for row in rows]

    async def record_sign_in_failure(self, user_id: str, now: datetime, forget_before: datetime) -> None:
        await self._conn.execute("delete from sign_in_failures where user_id = $1 and failed_at < $2", user_id, forget_before)
        await self._conn.execute("insert into sign_in_failures (user_id, failed_at) values ($1, $2)", user_id, now)

    async def clear_sign_in_failures(self, user_id: str) -> None:
        await self._conn.execute("delete from sign_in_failures where user_id = $1", user_id)

    async def signing_keys(self) -> dict[str, tuple[str, bool, int]]:
        rows = await self._conn.fetch("select key_id, public_key, retired, version from identity_signing_keys")
        return {row["key_id"]: (row["public_key"], row["retired"], row["version"]) for row in rows}

    async def apply(self, event: Any) -> None:
        await replica.apply(self._conn, event)


def _api_key(row: asyncpg.Record) -> StoredApiKey:
    return StoredApiKey(
        key_id=row["key_id"], user_id=row["user_id"], name=row["name"], scopes=tuple(row["scopes"]),
        expires_at=row["expires_at"], revoked=row["revoked"], token_sha256=row["token_sha256"], version=row["version"],
    )
