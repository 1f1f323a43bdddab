"""The platform's identity for a test world, without the identity service: the snapshots it would
publish (a signing key, users, roles, API keys) go to the world's own `identity.events.v1`-like
topic, and session tokens are signed with the world's own key. A service under test replicates
them exactly as it replicates the real identity service's, so what it verifies is real; tests that
need the identity service itself (sign-in, passwords, rotation) run it (tests/integration/identity,
the platform journeys).

    identity = await TestIdentity.create(stack, new_topic, clock)
    settings = Settings(..., identity_events_topic=identity.topic)
    alice = await identity.person("alice", replicas=[runtime.pool])        # (user id, session token)
    await identity.grant(business_center, alice.user_id, "admin", replicas=[runtime.pool])

`PLATFORM` is the platform operator's API key in every world, so `Authorization: Bearer
test-platform-token` works as the operator's token did before there was one identity.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from adledger_auth import tokens
from adledger_contracts.identity import ApiKeyChanged, MembershipChanged, SessionRevoked, SigningKeyPublished, UserChanged
from adledger_libs.clock import Clock
from adledger_libs.events import Event, encode

from .conftest import Stack, TopicFactory, unique
from .kafka_io import produce
from .waits import until

PLATFORM = "test-platform-token"
PLATFORM_USER = "platform"


@dataclass(frozen=True)
class Person:
    user_id: str
    token: str

    def __iter__(self):  # type: ignore[no-untyped-def]
        # `user_id, token = await identity.person(...)`, as the services' own user endpoints answered.
        return iter((self.user_id, self.token))


@dataclass
class TestIdentity:
    __test__ = False  # not a test class, for pytest

    stack: Stack
    topic: str
    clock: Clock
    key_id: str = "test-key"
    key: tokens.Ed25519PrivateKey = field(default_factory=tokens.new_signing_key)
    _versions: dict[str, int] = field(default_factory=dict)
    _roles: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    @classmethod
    async def create(cls, stack: Stack, new_topic: TopicFactory, clock: Clock) -> TestIdentity:
        topic = await new_topic("identity", partitions=1)
        identity = cls(stack, topic, clock)
        await identity._publish(
            f"signing-key:{identity.key_id}",
            lambda version: SigningKeyPublished(
                key_id=identity.key_id, algorithm="EdDSA", public_key=tokens.public_key_text(identity.key), retired=False,
                version=version, published_at=clock.now(),
            ),
        )
        await identity.user(PLATFORM_USER, platform_operator=True)
        await identity.api_key(PLATFORM_USER, token=PLATFORM, key_id="platform-bootstrap")
        return identity

    async def _publish(self, key: str, build: object) -> Event:
        version = self._versions.get(key, 0) + 1
        self._versions[key] = version
        event = build(version)  # type: ignore[operator]
        envelope = encode(event, key=key, trace_id="test-identity")
        await produce(self.stack.kafka_bootstrap_servers, self.topic, [(envelope.key, envelope.value, list(envelope.headers))])
        return event  # type: ignore[no-any-return]

    async def user(self, user_id: str, *, name: str = "", kind: str = "person", platform_operator: bool = False,
                   disabled: bool = False, replicas: Sequence[asyncpg.Pool] = ()) -> str:
        await self._publish(f"user:{user_id}", lambda version: UserChanged(
            user_id=user_id, name=name or user_id, kind=kind, platform_operator=platform_operator,  # type: ignore[arg-type]
            disabled=disabled, version=version, changed_at=self.clock.now(),
        ))
        for pool in replicas:
            await _replicated(pool, "select true from identity_users where user_id = $1 and disabled = $2", user_id, disabled)
        return user_id

    def session(self, user_id: str, *, lifetime: timedelta = timedelta(days=400), session_id: str | None = None) -> str:
        """A session token as the identity service signs them, valid for `lifetime` on the world's clock (long:
        tests move their clocks by days)."""
        now = self.clock.now()
        claims = tokens.SessionClaims(user_id=user_id, session_id=session_id or str(uuid.uuid4()), issued_at=now,
                                      expires_at=now + lifetime)
        return tokens.sign_session(self.key, self.key_id, claims)

    async def person(self, name: str, *, platform_operator: bool = False, replicas: Sequence[asyncpg.Pool] = ()) -> Person:
        user_id = await self.user(unique(name), name=name, platform_operator=platform_operator, replicas=replicas)
        return Person(user_id, self.session(user_id))

    async def integration(self, name: str, *, scopes: Sequence[str] = ("*",), replicas: Sequence[asyncpg.Pool] = ()) -> Person:
        user_id = await self.user(unique(name), name=name, kind="integration", replicas=replicas)
        return Person(user_id, await self.api_key(user_id, scopes=scopes, replicas=replicas))

    async def api_key(self, user_id: str, *, scopes: Sequence[str] = ("*",), token: str | None = None, key_id: str | None = None,
                      expires_at: datetime | None = None, revoked: bool = False, replicas: Sequence[asyncpg.Pool] = ()) -> str:
        key_id = key_id or f"key-{uuid.uuid4().hex[:12]}"
        token = token or tokens.new_api_key(key_id)
        await self._publish(f"api-key:{key_id}", lambda version: ApiKeyChanged(
            key_id=key_id, token_sha256=tokens.token_digest(token), user_id=user_id, name="test key", scopes=list(scopes),
            expires_at=expires_at, revoked=revoked, version=version, changed_at=self.clock.now(),
        ))
        for pool in replicas:
            await _replicated(pool, "select true from identity_api_keys where key_id = $1 and revoked = $2", key_id, revoked)
        return token

    async def grant(self, business_center_id: str, user_id: str, *roles: str, replicas: Sequence[asyncpg.Pool] = ()) -> None:
        held = self._roles.setdefault((business_center_id, user_id), set())
        held.update(roles)
        await self._membership(business_center_id, user_id, replicas)

    async def revoke(self, business_center_id: str, user_id: str, *roles: str, replicas: Sequence[asyncpg.Pool] = ()) -> None:
        held = self._roles.setdefault((business_center_id, user_id), set())
        held.difference_update(roles or set(held))
        await self._membership(business_center_id, user_id, replicas)

    async def _membership(self, business_center_id: str, user_id: str, replicas: Sequence[asyncpg.Pool]) -> None:
        roles = sorted(self._roles[(business_center_id, user_id)])
        await self._publish(f"membership:{business_center_id}:{user_id}", lambda version: MembershipChanged(
            business_center_id=business_center_id, user_id=user_id, roles=roles, version=version,  # type: ignore[arg-type]
            changed_at=self.clock.now(),
        ))
        for pool in replicas:
            await _replicated(
                pool, "select true from identity_memberships where business_center_id = $1 and user_id = $2 and roles = $3",
                business_center_id, user_id, roles,
            )

    async def end_session(self, token: str, user_id: str, replicas: Sequence[asyncpg.Pool] = ()) -> None:
        claims = tokens.read_session(token, self.key.public_key(), self.clock.now())
        await self._publish(f"session:{claims.session_id}", lambda _: SessionRevoked(
            session_id=claims.session_id, user_id=user_id, expires_at=claims.expires_at, revoked_at=self.clock.now(),
        ))
        for pool in replicas:
            await _replicated(pool, "select true from identity_revoked_sessions where session_id = $1", claims.session_id)

    async def replicated(self, pool: asyncpg.Pool) -> None:
        """Wait until a service's replica has the world's signing key and platform operator."""
        await _replicated(pool, "select true from identity_api_keys where key_id = 'platform-bootstrap'")
        await _replicated(pool, "select true from identity_signing_keys where key_id = $1", self.key_id)


async def _replicated(pool: asyncpg.Pool, query: str, *args: object) -> None:
    async def found() -> bool:
        return bool(await pool.fetchval(query, *args))

    await until(found, f"the service's identity replica: {query} {args}", timeout_s=30)
