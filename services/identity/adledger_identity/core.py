"""The identity's use cases: users, passwords and sign-in, sessions, API keys, roles (W9), and
the bootstrap of the platform operator and the signing keys.

Each runs inside one unit of work: the change, the snapshot event on `identity.events.v1` (outbox)
and the same event applied to the identity's own tables, together. Every service reads callers
from its replica of those events; the identity reads them from the same tables, so it is never
behind itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adledger_auth import tokens
from adledger_auth.callers import Caller
from adledger_auth.replica import KnownUser
from adledger_auth.roles import PermissionDeniedError, Role
from adledger_contracts.identity import ApiKeyChanged, MembershipChanged, SessionRevoked, SigningKeyPublished, UserChanged
from adledger_identity.domain import identity as rules
from adledger_identity.ports.signing import SigningKeys
from adledger_identity.ports.store import IdentityStore, StoredApiKey
from adledger_libs.clock import Clock
from adledger_libs.logs import get_logger
from adledger_libs.outbox import UnitOfWork

log = get_logger(__name__)

IDENTITY_EVENTS_TOPIC = "identity.events.v1"
PLATFORM_USER_ID = "platform"
BOOTSTRAP_KEY_ID = "platform-bootstrap"


@dataclass(frozen=True)
class Session:
    token: str
    session_id: str
    user_id: str
    expires_at: datetime


@dataclass(frozen=True)
class IssuedApiKey:
    key: StoredApiKey
    token: str


class Identity:
    def __init__(
        self, clock: Clock, store: Callable[[UnitOfWork], IdentityStore], signing: Callable[[], SigningKeys], *,
        topic: str = IDENTITY_EVENTS_TOPIC, session_ttl_s: int = 3600, sign_in_failures_allowed: int = 10,
        sign_in_failure_window_s: int = 900,
    ) -> None:
        self._clock = clock
        self._store = store
        self._signing = signing
        self._topic = topic
        self._session_ttl_s = session_ttl_s
        self._failures_allowed = sign_in_failures_allowed
        self._failure_window_s = sign_in_failure_window_s

    # Publishing ---------------------------------------------------------------------------------

    async def _record(self, uow: UnitOfWork, store: IdentityStore, event: Any, key: str) -> None:
        await store.apply(event)
        uow.publish(event, topic=self._topic, key=key)

    async def _publish_user(self, uow: UnitOfWork, store: IdentityStore, user: KnownUser, version: int) -> None:
        await self._record(uow, store, UserChanged(
            user_id=user.user_id, name=user.name, kind=user.kind,  # type: ignore[arg-type]
            platform_operator=user.platform_operator, disabled=user.disabled, version=version,
            changed_at=self._clock.now(),
        ), f"user:{user.user_id}")

    async def _publish_key(self, uow: UnitOfWork, store: IdentityStore, key: StoredApiKey) -> None:
        await self._record(uow, store, ApiKeyChanged(
            key_id=key.key_id, token_sha256=key.token_sha256, user_id=key.user_id, name=key.name, scopes=list(key.scopes),
            expires_at=key.expires_at, revoked=key.revoked, version=key.version, changed_at=self._clock.now(),
        ), f"api-key:{key.key_id}")

    async def _publish_membership(
        self, uow: UnitOfWork, store: IdentityStore, business_center_id: str, user_id: str, roles: frozenset[Role], version: int
    ) -> None:
        await self._record(uow, store, MembershipChanged(
            business_center_id=business_center_id, user_id=user_id, roles=sorted(roles), version=version,
            changed_at=self._clock.now(),
        ), f"membership:{business_center_id}:{user_id}")

    async def _revoke_sessions(self, uow: UnitOfWork, store: IdentityStore, user_id: str, session_id: str | None = None) -> int:
        now = self._clock.now()
        revoked = await store.revoke_sessions(user_id, now, session_id)
        for revoked_id, expires_at in revoked:
            await self._record(uow, store, SessionRevoked(
                session_id=revoked_id, user_id=user_id, expires_at=expires_at, revoked_at=now,
            ), f"session:{revoked_id}")
        return len(revoked)

    # Bootstrap ----------------------------------------------------------------------------------

    async def publish_signing_keys(self, uow: UnitOfWork) -> list[str]:
        """Publish every signing key present, and retire those published before and gone now."""
        store = self._store(uow)
        signing = self._signing()
        published = await store.signing_keys()
        changed: list[str] = []
        now = self._clock.now()
        for key_id, key in sorted(signing.keys.items()):
            public = tokens.public_key_text(key)
            before = published.get(key_id)
            if before is None or before[0] != public or before[1]:
                version = before[2] + 1 if before else 1
                await self._record(uow, store, SigningKeyPublished(
                    key_id=key_id, algorithm="EdDSA", public_key=public, retired=False, version=version, published_at=now,
                ), f"signing-key:{key_id}")
                changed.append(key_id)
        for key_id, (public, retired, version) in sorted(published.items()):
            if key_id not in signing.keys and not retired:
                await self._record(uow, store, SigningKeyPublished(
                    key_id=key_id, algorithm="EdDSA", public_key=public, retired=True, version=version + 1, published_at=now,
                ), f"signing-key:{key_id}")
                changed.append(key_id)
        return changed

    async def ensure_platform_operator(self, uow: UnitOfWork, platform_token: str) -> None:
        """The platform operator and its bootstrap API key. A changed token replaces the old one's
        digest under the same key id, so the old token is refused wherever the change is read;
        no token means the bootstrap key is revoked."""
        store = self._store(uow)
        found = await store.user(PLATFORM_USER_ID, for_update=True)
        if found is None:
            user = KnownUser(PLATFORM_USER_ID, "Platform operator", "person", platform_operator=True, disabled=False)
            await self._publish_user(uow, store, user, 1)
        existing = await store.api_key(BOOTSTRAP_KEY_ID, for_update=True)
        digest = tokens.token_digest(platform_token) if platform_token else (existing.token_sha256 if existing else None)
        if digest is None:
            return
        revoked = not platform_token
        if existing is not None and existing.token_sha256 == digest and existing.revoked == revoked:
            return
        key = StoredApiKey(
            key_id=BOOTSTRAP_KEY_ID, user_id=PLATFORM_USER_ID, name="the platform operator's bootstrap token", scopes=("*",),
            expires_at=None, revoked=revoked, token_sha256=digest, version=existing.version + 1 if existing else 1,
        )
        await self._publish_key(uow, store, key)
        log.info("platform_token_published", rotated=existing is not None, revoked=revoked)

    # Users ---------------------------------------------------------------------------------------

    async def create_user(
        self, uow: UnitOfWork, caller: Caller, user_id: str, name: str, *, kind: str, password: str | None,
        platform_operator: bool,
    ) -> KnownUser:
        caller.require_platform("create users")
        store = self._store(uow)
        if await store.user(user_id) is not None:
            raise rules.UserExistsError(user_id)
        if kind == "person":
            if password is None:
                raise rules.WeakPasswordError("a person signs in with a password: give one")
            rules.check_password(password)
        elif password is not None:
            raise rules.IntegrationSignInError("an integration signs in with API keys, not a password")
        user = KnownUser(user_id, name, kind, platform_operator=platform_operator, disabled=False)
        await self._publish_user(uow, store, user, 1)
        if password is not None:
            await store.set_password_hash(user_id, tokens.hash_password(password), self._clock.now())
        return user

    async def set_password(self, uow: UnitOfWork, caller: Caller, user_id: str, password: str) -> None:
        """A user sets their own password, or a platform operator sets anyone's; sessions end."""
        if caller.user_id != user_id:
            caller.require_platform("set another user's password")
        store = self._store(uow)
        found = await store.user(user_id, for_update=True)
        if found is None:
            raise rules.UnknownUserError(user_id)
        if found[0].kind != "person":
            raise rules.IntegrationSignInError("an integration signs in with API keys, not a password")
        rules.check_password(password)
        await store.set_password_hash(user_id, tokens.hash_password(password), self._clock.now())
        await self._revoke_sessions(uow, store, user_id)

    async def disable_user(self, uow: UnitOfWork, caller: Caller, user_id: str) -> KnownUser:
        """Refused everywhere from now on: the user, every live session and every API key."""
        caller.require_platform("disable users")
        store = self._store(uow)
        found = await store.user(user_id, for_update=True)
        if found is None:
            raise rules.UnknownUserError(user_id)
        user, version = found
        if not user.disabled:
            user = KnownUser(user.user_id, user.name, user.kind, user.platform_operator, disabled=True)
            await self._publish_user(uow, store, user, version + 1)
        await self._revoke_sessions(uow, store, user_id)
        for key in await store.api_keys_of(user_id):
            if not key.revoked:
                await self._publish_key(uow, store, _revoked(key))
        return user

    async def user(self, uow: UnitOfWork, caller: Caller, user_id: str) -> tuple[KnownUser, dict[str, frozenset[Role]]]:
        """A user and their roles: themselves, a platform operator, or an Admin of a Business
        Center the user is part of. Anyone else gets the same answer as for a user who does not
        exist."""
        store = self._store(uow)
        found = await store.user(user_id)
        memberships = await store.memberships_of(user_id)
        shares_admin = any(Role.ADMIN in caller.roles_in(center) for center in memberships)
        if found is None or not (caller.user_id == user_id or caller.platform_operator or shares_admin):
            raise rules.UnknownUserError(user_id)
        return found[0], memberships

    # Sessions ------------------------------------------------------------------------------------

    async def sign_in(self, uow: UnitOfWork, user_id: str, password: str) -> Session | rules.SignInRefusedError:
        """A session, or the refusal to raise once this unit of work committed (the failed attempt
        it records must be kept, or the brake would never engage)."""
        store = self._store(uow)
        now = self._clock.now()
        window_start = now - timedelta(seconds=self._failure_window_s)
        retry_after_s = rules.brake_retry_after_s(
            await store.sign_in_failures(user_id, window_start), now,
            allowed=self._failures_allowed, window_s=self._failure_window_s,
        )
        if retry_after_s:
            raise rules.TooManyAttemptsError(retry_after_s)
        found = await store.user(user_id)
        stored_hash = await store.password_hash(user_id) if found is not None else None
        # The check runs even without a user, so a wrong user id costs as long as a wrong password.
        matches = tokens.check_password(password, stored_hash or tokens.DUMMY_PASSWORD_HASH)
        if found is None or stored_hash is None or not matches or found[0].disabled:
            await store.record_sign_in_failure(user_id, now, forget_before=window_start)
            return rules.SignInRefusedError()
        await store.clear_sign_in_failures(user_id)
        signing = self._signing()
        session_id = str(uuid.uuid4())
        expires_at = rules.session_expires_at(now, self._session_ttl_s)
        await store.add_session(session_id, user_id, now, expires_at)
        token = tokens.sign_session(
            signing.active, signing.active_key_id,
            tokens.SessionClaims(user_id=user_id, session_id=session_id, issued_at=now, expires_at=expires_at),
        )
        return Session(token=token, session_id=session_id, user_id=user_id, expires_at=expires_at)

    async def sign_out(self, uow: UnitOfWork, caller: Caller) -> int:
        if caller.via != "session":
            raise PermissionDeniedError("an API key is revoked, not signed out: DELETE /v1/api-keys/{key_id}")
        return await self._revoke_sessions(uow, self._store(uow), caller.user_id, caller.credential_id)

    # API keys ------------------------------------------------------------------------------------

    async def issue_api_key(
        self, uow: UnitOfWork, caller: Caller, user_id: str, name: str, scopes: list[str], expires_at: datetime | None
    ) -> IssuedApiKey:
        """A platform operator issues keys for anyone; a user for themselves (with no more than
        their session may do). The key is returned once; only its digest is kept."""
        if caller.user_id != user_id:
            caller.require_platform("issue API keys for another user")
        elif caller.via != "session" and not caller.platform_operator:
            raise PermissionDeniedError("an API key cannot issue API keys; sign in")
        store = self._store(uow)
        found = await store.user(user_id)
        if found is None or found[0].disabled:
            raise rules.UnknownUserError(user_id)
        if expires_at is not None and expires_at <= self._clock.now():
            raise rules.WeakPasswordError("an API key must expire in the future")
        key_id = f"key-{uuid.uuid4().hex[:16]}"
        token = tokens.new_api_key(key_id)
        key = StoredApiKey(
            key_id=key_id, user_id=user_id, name=name, scopes=tuple(sorted(set(scopes))), expires_at=expires_at,
            revoked=False, token_sha256=tokens.token_digest(token), version=1,
        )
        await self._publish_key(uow, store, key)
        return IssuedApiKey(key=key, token=token)

    async def revoke_api_key(self, uow: UnitOfWork, caller: Caller, key_id: str) -> StoredApiKey:
        store = self._store(uow)
        key = await store.api_key(key_id, for_update=True)
        if key is None or not (caller.platform_operator or key.user_id == caller.user_id):
            raise rules.UnknownApiKeyError(key_id)
        if not key.revoked:
            key = _revoked(key)
            await self._publish_key(uow, store, key)
        return key

    async def api_keys(self, uow: UnitOfWork, caller: Caller, user_id: str) -> list[StoredApiKey]:
        if caller.user_id != user_id and not caller.platform_operator:
            raise rules.UnknownUserError(user_id)
        return list(await self._store(uow).api_keys_of(user_id))

    # Roles (W9) ----------------------------------------------------------------------------------

    async def business_center_opened(self, uow: UnitOfWork, business_center_id: str, admin_user_id: str | None, opened_at: datetime) -> None:
        """The wallet opened a Business Center: it exists here, and its first Admin is that user."""
        store = self._store(uow)
        await store.add_business_center(business_center_id, opened_at)
        if admin_user_id and await store.user(admin_user_id) is not None:
            roles, version = await store.roles(business_center_id, admin_user_id, for_update=True)
            if Role.ADMIN not in roles:
                await self._publish_membership(uow, store, business_center_id, admin_user_id, roles | {Role.ADMIN}, version + 1)

    async def grant_role(self, uow: UnitOfWork, caller: Caller, business_center_id: str, user_id: str, role: Role) -> frozenset[Role]:
        store = self._store(uow)
        await self._require_manager(store, caller, business_center_id)
        if await store.user(user_id) is None:
            raise rules.UnknownUserError(user_id)
        roles, version = await store.roles(business_center_id, user_id, for_update=True)
        if role not in roles:
            roles = roles | {role}
            await self._publish_membership(uow, store, business_center_id, user_id, roles, version + 1)
        return roles

    async def revoke_roles(self, uow: UnitOfWork, caller: Caller, business_center_id: str, user_id: str, role: Role | None) -> frozenset[Role]:
        """Take one role (or every role, `role` None) from a user in a Business Center."""
        store = self._store(uow)
        await self._require_manager(store, caller, business_center_id)
        roles, version = await store.roles(business_center_id, user_id, for_update=True)
        remaining = frozenset() if role is None else roles - {role}
        if remaining != roles:
            await self._publish_membership(uow, store, business_center_id, user_id, remaining, version + 1)
        return remaining

    async def members(self, uow: UnitOfWork, caller: Caller, business_center_id: str) -> dict[str, frozenset[Role]]:
        store = self._store(uow)
        if not caller.platform_operator and not caller.is_member_of(business_center_id):
            raise rules.UnknownBusinessCenterError(business_center_id)
        if not await store.business_center_exists(business_center_id):
            raise rules.UnknownBusinessCenterError(business_center_id)
        return await store.members_of(business_center_id)

    async def _require_manager(self, store: IdentityStore, caller: Caller, business_center_id: str) -> None:
        # Not a member and not an operator: the same answer as a Business Center that does not exist.
        if not caller.platform_operator and not caller.is_member_of(business_center_id):
            raise rules.UnknownBusinessCenterError(business_center_id)
        if not await store.business_center_exists(business_center_id):
            raise rules.UnknownBusinessCenterError(business_center_id)
        rules.require_member_manager(
            user_id=caller.user_id, business_center_id=business_center_id, held=caller.roles_in(business_center_id),
            platform_operator=caller.platform_operator,
        )


def _revoked(key: StoredApiKey) -> StoredApiKey:
    return StoredApiKey(
        key_id=key.key_id, user_id=key.user_id, name=key.name, scopes=key.scopes, expires_at=key.expires_at, revoked=True,
        token_sha256=key.token_sha256, version=key.version + 1,
    )
