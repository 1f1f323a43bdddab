"""In-memory fakes of the order escrow's ports, for use-case tests on the core (cosmicpython's
`FakeUnitOfWork` is the model).

A `FakeStore` is the committed state. `store.unit()` opens a `FakeUnitOfWork` on a copy of it:
when the block ends without error the copy and the messages published in it become the store's,
and when it raises nothing of it is kept, exactly like the PostgreSQL unit of work. Locks are not
modelled (two units of work at once are the integration tests' business).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adledger_auth.callers import Caller
from adledger_auth.roles import Role
from adledger_libs.events import Message
from adledger_order_escrow.domain.orders import DeadlineKind, Order
from adledger_order_escrow.domain.parties import Channel, Owner
from adledger_order_escrow.ports.channels import ChannelExistsError, UnknownChannelError
from adledger_order_escrow.ports.deadlines import DueDeadline
from adledger_order_escrow.ports.orders import Settlement, UnknownOrderError
from adledger_order_escrow.ports.owners import Person, UnknownOwnerError
from adledger_order_escrow.ports.unit_of_work import UnitOfWork


@dataclass
class Published:
    topic: str
    key: str | None
    message: Message


@dataclass
class State:
    orders: dict[str, Order] = field(default_factory=dict)
    settlements: dict[str, Settlement] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    owners: dict[str, Owner] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)
    #: Roles per (Business Center, user), as the identity replica holds them.
    memberships: dict[tuple[str, str], frozenset[Role]] = field(default_factory=dict)
    #: (order id, kind) → (due at, done at, outcome).
    deadlines: dict[tuple[str, DeadlineKind], tuple[datetime, datetime | None, str | None]] = field(
        default_factory=dict
    )
    next_number: int = 1000


class FakeOrders:
    def __init__(self, state: State) -> None:
        self._state = state

    async def next_number(self) -> int:
        self._state.next_number += 1
        return self._state.next_number - 1

    async def add(self, order: Order) -> None:
        assert order.id not in self._state.orders
        self._state.orders[order.id] = order
        self._state.settlements[order.id] = Settlement(None, None, None)

    async def find(self, order_id: str, *, for_update: bool = False) -> Order | None:
        return self._state.orders.get(order_id)

    async def get(self, order_id: str, *, for_update: bool = False) -> Order:
        order = await self.find(order_id)
        if order is None:
            raise UnknownOrderError(order_id)
        return order

    async def save(self, order: Order, now: datetime) -> None:
        assert order.id in self._state.orders
        self._state.orders[order.id] = order

    async def settlement(self, order_id: str) -> Settlement:
        if order_id not in self._state.settlements:
            raise UnknownOrderError(order_id)
        return self._state.settlements[order_id]

    async def record_settlement(self, order_id: str, posted_micros: int, now: datetime) -> None:
        if self._state.settlements[order_id].settled_at is None:
            self._state.settlements[order_id] = Settlement(now, posted_micros, None)

    async def record_hold_error(self, order_id: str, error: str, now: datetime) -> None:
        found = self._state.settlements[order_id]
        if found.settled_at is None:
            self._state.settlements[order_id] = Settlement(None, None, error)


class FakeChannels:
    def __init__(self, state: State) -> None:
        self._state = state

    async def add(self, channel: Channel, now: datetime) -> None:
        if channel.id in self._state.channels:
            raise ChannelExistsError(channel.id)
        self._state.channels[channel.id] = channel

    async def get(self, channel_id: str) -> Channel:
        if channel_id not in self._state.channels:
            raise UnknownChannelError(channel_id)
        return self._state.channels[channel_id]


class FakeOwners:
    def __init__(self, state: State) -> None:
        self._state = state

    async def find(self, owner_id: str) -> Owner | None:
        return self._state.owners.get(owner_id)

    async def get(self, owner_id: str) -> Owner:
        if owner_id not in self._state.owners:
            raise UnknownOwnerError(owner_id)
        return self._state.owners[owner_id]

    async def add(self, owner: Owner, opened_at: datetime) -> None:
        self._state.owners.setdefault(owner.owner_id, owner)


class FakePeople:
    def __init__(self, state: State) -> None:
        self._state = state

    async def person(self, user_id: str) -> Person | None:
        return self._state.people.get(user_id)

    async def finance_roles_set_up(self, business_center_id: str) -> bool:
        return any(
            center == business_center_id and Role.FINANCE_MANAGER in roles
            for (center, _), roles in self._state.memberships.items()
        )


class FakeDeadlines:
    def __init__(self, state: State) -> None:
        self._state = state

    async def schedule(self, order_id: str, kind: DeadlineKind, due_at: datetime) -> None:
        self._state.deadlines.setdefault((order_id, kind), (due_at, None, None))

    async def take_due(self, now: datetime) -> DueDeadline | None:
        due = sorted(
            (due_at, order_id, kind)
            for (order_id, kind), (due_at, done_at, _) in self._state.deadlines.items()
            if done_at is None and due_at <= now
        )
        if not due:
            return None
        due_at, order_id, kind = due[0]
        return DueDeadline(order_id, kind, due_at)

    async def mark_done(self, deadline: DueDeadline, outcome: str, now: datetime) -> None:
        key = (deadline.order_id, deadline.kind)
        self._state.deadlines[key] = (self._state.deadlines[key][0], now, outcome)


class FakeUnitOfWork:
    """Implements `ports.unit_of_work.UnitOfWork` on its own copy of the store's state."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.published: list[Published] = []
        self._orders = FakeOrders(state)
        self._channels = FakeChannels(state)
        self._owners = FakeOwners(state)
        self._people = FakePeople(state)
        self._deadlines = FakeDeadlines(state)

    @property
    def orders(self) -> FakeOrders:
        return self._orders

    @property
    def channels(self) -> FakeChannels:
        return self._channels

    @property
    def owners(self) -> FakeOwners:
        return self._owners

    @property
    def people(self) -> FakePeople:
        return self._people

    @property
    def deadlines(self) -> FakeDeadlines:
        return self._deadlines

    def publish(self, message: Message, *, topic: str, key: str | None) -> None:
        self.published.append(Published(topic, key, message))


@dataclass
class FakeStore:
    state: State = field(default_factory=State)
    published: list[Published] = field(default_factory=list)
    commits: int = 0

    def unit(self) -> AbstractAsyncContextManager[UnitOfWork]:
        return self._unit()

    @asynccontextmanager
    async def _unit(self) -> AsyncIterator[UnitOfWork]:
        uow = FakeUnitOfWork(copy.deepcopy(self.state))
        yield uow
        # Reached only when the block did not raise: the unit of work commits.
        self.state = uow.state
        self.published.extend(uow.published)
        self.commits += 1

    def messages(self, kind: type[Any], *, topic: str | None = None) -> list[Any]:
        return [p.message for p in self.published if isinstance(p.message, kind) and topic in (None, p.topic)]

    # The world outside the service, as the tests set it up -------------------------------------

    def person(self, user_id: str, name: str = "", *, disabled: bool = False) -> str:
        self.state.people[user_id] = Person(user_id, name or user_id, disabled)
        return user_id

    def grant(self, business_center_id: str, user_id: str, *roles: Role) -> None:
        key = (business_center_id, user_id)
        self.state.memberships[key] = self.state.memberships.get(key, frozenset()) | frozenset(roles)

    def revoke(self, business_center_id: str, user_id: str) -> None:
        self.state.memberships.pop((business_center_id, user_id), None)

    def caller(
        self, user_id: str, *, platform_operator: bool = False, scopes: frozenset[str] = frozenset({"*"})
    ) -> Caller:
        """The caller as `adledger_auth.callers.Authenticator` builds it from the replica."""
        roles = {center: held for (center, user), held in self.state.memberships.items() if user == user_id and held}
        return Caller(
            user_id=user_id,
            kind="person",
            platform_operator=platform_operator,
            via="session" if scopes == frozenset({"*"}) else "api_key",
            credential_id=f"credential-{user_id}",
            scopes=scopes,
            roles_by_business_center=roles,
        )
