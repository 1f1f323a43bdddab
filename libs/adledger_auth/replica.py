"""A service's local copy of the platform's identity, kept from `identity.events.v1`.

The consumer applies the identity snapshots in the same transactions as the service's other
inputs (exactly once, newest version wins), into the library's tables (migration
`adledger_libs/0003_identity_replica.sql`), and the reads below are all a service needs to know
who calls and what they may do: no call to the identity service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from adledger_auth.roles import Role
from adledger_contracts.identity import (
    ApiKeyChanged,
    MembershipChanged,
    SessionRevoked,
    SigningKeyPublished,
    UserChanged,
)
from adledger_libs.consumer import Inbound, Subscription
from adledger_libs.outbox import UnitOfWork

IDENTITY_EVENTS_TOPIC = "identity.events.v1"


def subscriptions(topic: str = IDENTITY_EVENTS_TOPIC) -> list[Subscription]:
    """The replica's inputs: snapshots upserted by version, so no event-id dedupe is needed."""
    return [
        Subscription(topic=topic, model=model, handler=_handler(apply), dedupe_by_event_id=False)
        for model, apply in APPLY.items()
    ]


def _handler(apply: Callable[[asyncpg.Connection, Sequence[Any]], Awaitable[None]]) -> Any:
    async def handle(uow: UnitOfWork, batch: list[Inbound[Any]]) -> None:
        await apply(uow.conn, [inbound.message for inbound in batch])

    return handle


def _newest(events: Sequence[Any], key: Any) -> list[Any]:
    newest: dict[Any, Any] = {}
    for message in events:
        found = newest.get(key(message))
        if found is None or found.version < message.version:
            newest[key(message)] = message
    return list(newest.values())


async def apply_signing_keys(conn: asyncpg.Connection, events: Sequence[SigningKeyPublished]) -> None:
    items = _newest(events, lambda event: event.key_id)
    await conn.execute(
        """insert into identity_signing_keys as k (key_id, public_key, retired, version, published_at)
           select * from unnest($1::text[], $2::text[], $3::boolean[], $4::bigint[], $5::timestamptz[])
           on conflict (key_id) do update set public_key = excluded.public_key, retired = excluded.retired,
               version = excluded.version, published_at = excluded.published_at
           where k.version < excluded.version""",
        [item.key_id for item in items], [item.public_key for item in items], [item.retired for item in items],
        [item.version for item in items], [item.published_at for item in items],
    )


async def apply_users(conn: asyncpg.Connection, events: Sequence[UserChanged]) -> None:
    items = _newest(events, lambda event: event.user_id)
    await conn.execute(
        """insert into identity_users as u (user_id, name, kind, platform_operator, disabled, version, changed_at)
           select * from unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::boolean[], $6::bigint[],
                                $7::timestamptz[])
           on conflict (user_id) do update set name = excluded.name, kind = excluded.kind,
               platform_operator = excluded.platform_operator, disabled = excluded.disabled,
               version = excluded.version, changed_at = excluded.changed_at
           where u.version < excluded.version""",
        [item.user_id for item in items], [item.name for item in items], [item.kind for item in items],
        [item.platform_operator for item in items], [item.disabled for item in items],
        [item.version for item in items], [item.changed_at for item in items],
    )


async def apply_memberships(conn: asyncpg.Connection, events: Sequence[MembershipChanged]) -> None:
    items = _newest(events, lambda event: (event.business_center_id, event.user_id))
    # One statement per item: a text[] of text[] does not unnest into rows.
    for item in items:
        await conn.execute(
            """insert into identity_memberships as m (business_center_id, user_id, roles, version, changed_at)
               values ($1, $2, $3, $4, $5)
               on conflict (business_center_id, user_id) do update set roles = excluded.roles,
                   version = excluded.version, changed_at = excluded.changed_at
               where m.version < excluded.version""",
            item.business_center_id, item.user_id, sorted(set(item.roles)), item.version, item.changed_at,
        )


async def apply_api_keys(conn: asyncpg.Connection, events: Sequence[ApiKeyChanged]) -> None:
    items = _newest(events, lambda event: event.key_id)
    for item in items:
        # A key id's digest may change (a rotated platform token): the old digest goes with it.
        await conn.execute(
            """insert into identity_api_keys as k (key_id, token_sha256, user_id, name, scopes, expires_at, revoked,
                                                   version, changed_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               on conflict (key_id) do update set token_sha256 = excluded.token_sha256, user_id = excluded.user_id,
                   name = excluded.name, scopes = excluded.scopes, expires_at = excluded.expires_at,
                   revoked = excluded.revoked, version = excluded.version, changed_at = excluded.changed_at
               where k.version < excluded.version""",
            item.key_id, item.token_sha256, item.user_id, item.name, list(item.scopes), item.expires_at, item.revoked,
            item.version, item.changed_at,
        )


async def apply_revocations(conn: asyncpg.Connection, events: Sequence[SessionRevoked]) -> None:
    items = list({event.session_id: event for event in events}.values())
    await conn.execute(
        """insert into identity_revoked_sessions (session_id, user_id, expires_at, revoked_at)
           select * from unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])
           on conflict (session_id) do nothing""",
        [item.session_id for item in items], [item.user_id for item in items],
        [item.expires_at for item in items], [item.revoked_at for item in items],
    )


#: How each snapshot type is applied, for the consumer and for the identity service itself (which
#: applies its own events in the transaction that made them, so it never lags behind itself).
APPLY: dict[type[Any], Callable[[asyncpg.Connection, Sequence[Any]], Awaitable[None]]] = {
    SigningKeyPublished: apply_signing_keys,
    UserChanged: apply_users,
    MembershipChanged: apply_memberships,
    ApiKeyChanged: apply_api_keys,
    SessionRevoked: apply_revocations,
}


async def apply(conn: asyncpg.Connection, event: Any) -> None:
    await APPLY[type(event)](conn, [event])


# Reads ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownUser:
    user_id: str
    name: str
    kind: str
    platform_operator: bool
    disabled: bool


@dataclass(frozen=True)
class KnownApiKey:
    key_id: str
    user_id: str
    scopes: frozenset[str]
    expires_at: datetime | None
    revoked: bool


async def signing_key(conn: asyncpg.Connection | asyncpg.Pool, key_id: str) -> str | None:
    """The public key (base64url) of a signing key that is not retired."""
    found: str | None = await conn.fetchval(
        "select public_key from identity_signing_keys where key_id = $1 and not retired", key_id
    )
    return found


async def user(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> KnownUser | None:
    row = await conn.fetchrow(
        "select user_id, name, kind, platform_operator, disabled from identity_users where user_id = $1", user_id
    )
    return KnownUser(**dict(row)) if row is not None else None


async def session_revoked(conn: asyncpg.Connection | asyncpg.Pool, session_id: str) -> bool:
    return bool(await conn.fetchval("select true from identity_revoked_sessions where session_id = $1", session_id))


async def api_key(conn: asyncpg.Connection | asyncpg.Pool, token_sha256: str) -> KnownApiKey | None:
    row = await conn.fetchrow(
        "select key_id, user_id, scopes, expires_at, revoked from identity_api_keys where token_sha256 = $1",
        token_sha256,
    )
    if row is None:
        return None
    return KnownApiKey(row["key_id"], row["user_id"], frozenset(row["scopes"]), row["expires_at"], row["revoked"])


async def memberships_of(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> dict[str, frozenset[Role]]:
    rows = await conn.fetch(
        "select business_center_id, roles from identity_memberships where user_id = $1 and cardinality(roles) > 0",
        user_id,
    )
    return {row["business_center_id"]: frozenset(Role(role) for role in row["roles"]) for row in rows}


async def finance_roles_set_up(conn: asyncpg.Connection | asyncpg.Pool, business_center_id: str) -> bool:
    """W9: the Business Center has at least one Finance Manager."""
    return bool(
        await conn.fetchval(
            "select true from identity_memberships where business_center_id = $1 and 'finance_manager' = any(roles)"
            " limit 1",
            business_center_id,
        )
    )


async def members_of(conn: asyncpg.Connection | asyncpg.Pool, business_center_id: str) -> dict[str, frozenset[Role]]:
    rows = await conn.fetch(
        "select user_id, roles from identity_memberships where business_center_id = $1 and cardinality(roles) > 0"
        " order by user_id",
        business_center_id,
    )
    return {row["user_id"]: frozenset(Role(role) for role in row["roles"]) for row in rows}


async def forget_expired_revocations(conn: asyncpg.Connection | asyncpg.Pool, now: datetime) -> int:
    """A revoked session past its expiry is refused anyway: its row can go."""
    status = await conn.execute("delete from identity_revoked_sessions where expires_at < $1", now)
    return int(status.split()[-1])
