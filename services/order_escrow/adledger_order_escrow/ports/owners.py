"""The owners (Business Centers, ad accounts) the service learnt from the wallet's events, and
the people it knows from the platform's identity (its local replica of `identity.events.v1`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from adledger_libs.refusals import Refusal

from adledger_order_escrow.domain.parties import Owner


class UnknownOwnerError(Refusal, LookupError):
    """No Business Center or ad account has this id here (a caller with no role in its Business
    Center gets the same answer)."""

    def __init__(self, owner_id: str) -> None:
        super().__init__(f"no business center or ad account {owner_id!r}")
        self.owner_id = owner_id


class UnknownUserError(Refusal, LookupError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"no user {user_id!r}")
        self.user_id = user_id


@dataclass(frozen=True)
class Person:
    """A user of the platform, as the identity published them."""

    user_id: str
    name: str
    disabled: bool


class OwnerRepository(Protocol):
    async def find(self, owner_id: str) -> Owner | None: ...

    async def get(self, owner_id: str) -> Owner:
        """Raises:
        UnknownOwnerError: the wallet opened no such owner (or its event has not arrived yet).
        """
        ...

    async def add(self, owner: Owner, opened_at: datetime) -> None: ...


class People(Protocol):
    async def person(self, user_id: str) -> Person | None: ...

    async def finance_roles_set_up(self, business_center_id: str) -> bool:
        """W9: the Business Center has at least one Finance Manager."""
        ...
