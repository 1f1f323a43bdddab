"""The identity's rules, pure: passwords, who may give roles, the sign-in brake, sessions.

Errors live here beside the rules that raise them; each is a `Refusal` (the caller's fault).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from adledger_auth.roles import PermissionDeniedError, Role
from adledger_auth.tokens import MINIMUM_PASSWORD_LENGTH
from adledger_libs.refusals import Refusal

MAXIMUM_PASSWORD_LENGTH = 256


class WeakPasswordError(Refusal):
    """A password too short (or too long to hash cheaply)."""


class SignInRefusedError(Refusal):
    """Wrong user id or password: one answer for both, so it says nothing about who exists."""

    def __init__(self) -> None:
        super().__init__("the user id or the password is wrong")


class TooManyAttemptsError(Refusal):
    """The sign-in brake: too many failed attempts for this user in the window."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed sign-ins for this user; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class UserExistsError(Refusal):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id!r} exists already")


class UnknownUserError(Refusal, LookupError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"no user {user_id!r}")


class UnknownBusinessCenterError(Refusal, LookupError):
    def __init__(self, business_center_id: str) -> None:
        super().__init__(f"no Business Center {business_center_id!r}")


class UnknownApiKeyError(Refusal, LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key {key_id!r}")


class IntegrationSignInError(Refusal):
    """An integration has API keys, no password."""


def check_password(password: str) -> None:
    if not MINIMUM_PASSWORD_LENGTH <= len(password) <= MAXIMUM_PASSWORD_LENGTH:
        raise WeakPasswordError(
            f"a password is {MINIMUM_PASSWORD_LENGTH} to {MAXIMUM_PASSWORD_LENGTH} characters"
        )
    if len(set(password)) < 4:
        raise WeakPasswordError("a password needs at least four different characters")


def require_member_manager(*, user_id: str, business_center_id: str, held: Iterable[Role], platform_operator: bool) -> None:
    """W9: roles in a Business Center are given and taken by its Admins (or a platform operator)."""
    if not platform_operator and Role.ADMIN not in set(held):
        raise PermissionDeniedError(
            f"user {user_id} may not manage users in business center {business_center_id}: it needs admin there",
            action="manage_users", business_center_id=business_center_id,
        )


def brake_retry_after_s(failures: Iterable[datetime], now: datetime, *, allowed: int, window_s: int) -> int:
    """Seconds until a new sign-in may be tried, or 0 when it may be now."""
    recent = sorted(failure for failure in failures if failure > now - timedelta(seconds=window_s))
    if len(recent) < allowed:
        return 0
    oldest_that_counts = recent[-allowed]
    return max(1, int((oldest_that_counts + timedelta(seconds=window_s) - now).total_seconds()) + 1)


def session_expires_at(now: datetime, ttl_s: int) -> datetime:
    return now + timedelta(seconds=ttl_s)
