"""The order escrow's ports on PostgreSQL (schema `order_escrow`): its tables (orders, channels,
deadlines, owners), the library's identity replica for people and roles, and the library's
outbox for what it publishes, all in one transaction per unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from adledger_auth import replica
from adledger_libs import outbox
from adledger_libs.events import Message

from adledger_order_escrow.domain.orders import DeadlineKind, Order, OrderStatus
from adledger_order_escrow.domain.parties import Channel, Owner
from adledger_order_escrow.ports.channels import ChannelExistsError, UnknownChannelError
from adledger_order_escrow.ports.deadlines import DueDeadline
from adledger_order_escrow.ports.orders import Settlement, UnknownOrderError
from adledger_order_escrow.ports.owners import Person, UnknownOwnerError
from adledger_order_escrow.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory


class PostgresOrders:
    """Implements `ports.orders.OrderRepository`."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def next_number(self) -> int:
        return int(await self._conn.fetchval("select nextval('order_numbers')"))

    async def add(self, order: Order) -> None:
        await self._conn.execute(
            """insert into orders (id, number, buyer_user_id, buyer_owner_id, channel_id, seller_owner_id, price_micros,
                   currency, status, placed_at, reordered_from_order_id, updated_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10)""",
            order.id,
            order.number,
            order.buyer_user_id,
            order.buyer_owner_id,
            order.channel_id,
            order.seller_owner_id,
            order.price_micros,
            order.currency,
            order.status.value,
            order.placed_at,
            order.reordered_from_order_id,
        )

    async def find(self, order_id: str, *, for_update: bool = False) -> Order | None:
        row = await self._conn.fetchrow(
            "select * from orders where id = $1" + (" for update" if for_update else ""), order_id
        )
        return _order(row) if row is not None else None

    async def get(self, order_id: str, *, for_update: bool = False) -> Order:
        order = await self.find(order_id, for_update=for_update)
        if order is None:
            raise UnknownOrderError(order_id)
        return order

    async def save(self, order: Order, now: datetime) -> None:
        await self._conn.execute(
            """update orders set status = $2, answer_due_at = $3, completed_at = $4, decline_reason = $5,
                   dispute_reason = $6, seller_micros = $7, buyer_micros = $8, updated_at = $9
               where id = $1""",
            order.id,
            order.status.value,
            order.answer_due_at,
            order.completed_at,
            order.decline_reason,
            order.dispute_reason,
            order.seller_micros,
            order.buyer_micros,
            now,
        )

    async def settlement(self, order_id: str) -> Settlement:
        row = await self._conn.fetchrow(
            "select settled_at, settled_posted_micros, hold_error from orders where id = $1", order_id
        )
        if row is None:
            raise UnknownOrderError(order_id)
        return Settlement(row["settled_at"], row["settled_posted_micros"], row["hold_error"])

    async def record_settlement(self, order_id: str, posted_micros: int, now: datetime) -> None:
        await self._conn.execute(
            "update orders set settled_at = $2, settled_posted_micros = $3, hold_error = null, updated_at = $2"
            " where id = $1 and settled_at is null",
            order_id,
            now,
            posted_micros,
        )

    async def record_hold_error(self, order_id: str, error: str, now: datetime) -> None:
        # Only while the hold is unresolved: after the wallet confirmed a post or void, a refusal is
        # another environment's wallet answering on the shared topic.
        await self._conn.execute(
            "update orders set hold_error = $2, updated_at = $3 where id = $1 and settled_at is null",
            order_id,
            error,
            now,
        )


def _order(row: Any) -> Order:
    return Order(
        id=row["id"],
        number=row["number"],
        buyer_user_id=row["buyer_user_id"],
        buyer_owner_id=row["buyer_owner_id"],
        channel_id=row["channel_id"],
        seller_owner_id=row["seller_owner_id"],
        price_micros=row["price_micros"],
        currency=row["currency"],
        status=OrderStatus(row["status"]),
        placed_at=row["placed_at"],
        answer_due_at=row["answer_due_at"],
        completed_at=row["completed_at"],
        decline_reason=row["decline_reason"],
        dispute_reason=row["dispute_reason"],
        seller_micros=row["seller_micros"],
        buyer_micros=row["buyer_micros"],
        reordered_from_order_id=row["reordered_from_order_id"],
    )


class PostgresChannels:
    """Implements `ports.channels.ChannelRepository`."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def add(self, channel: Channel, now: datetime) -> None:
        inserted = await self._conn.fetchval(
            """insert into channels (id, name, seller_user_id, owner_id, currency, created_at)
               values ($1, $2, $3, $4, $5, $6)
               on conflict (id) do nothing returning true""",
            channel.id,
            channel.name,
            channel.seller_user_id,
            channel.owner_id,
            channel.currency,
            now,
        )
        if not inserted:
            raise ChannelExistsError(channel.id)

    async def get(self, channel_id: str) -> Channel:
        row = await self._conn.fetchrow(
            "select id, name, seller_user_id, owner_id, currency from channels where id = $1", channel_id
        )
        if row is None:
            raise UnknownChannelError(channel_id)
        return Channel(row["id"], row["name"], row["seller_user_id"], row["owner_id"], row["currency"])


class PostgresOwners:
    """Implements `ports.owners.OwnerRepository`."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def find(self, owner_id: str) -> Owner | None:
        row = await self._conn.fetchrow(
            "select owner_id, kind, business_center_id, currency from owners where owner_id = $1", owner_id
        )
        return Owner(row["owner_id"], row["kind"], row["business_center_id"], row["currency"]) if row else None

    async def get(self, owner_id: str) -> Owner:
        owner = await self.find(owner_id)
        if owner is None:
            raise UnknownOwnerError(owner_id)
        return owner

    async def add(self, owner: Owner, opened_at: datetime) -> None:
        await self._conn.execute(
            """insert into owners (owner_id, kind, business_center_id, currency, opened_at)
               values ($1, $2, $3, $4, $5) on conflict (owner_id) do nothing""",
            owner.owner_id,
            owner.kind,
            owner.business_center_id,
            owner.currency,
            opened_at,
        )


class ReplicaPeople:
    """Implements `ports.owners.People` on the library's replica of the platform's identity."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def person(self, user_id: str) -> Person | None:
        known = await replica.user(self._conn, user_id)
        return Person(known.user_id, known.name, known.disabled) if known is not None else None

    async def finance_roles_set_up(self, business_center_id: str) -> bool:
        return await replica.finance_roles_set_up(self._conn, business_center_id)


class PostgresDeadlines:
    """Implements `ports.deadlines.DeadlineRepository`."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def schedule(self, order_id: str, kind: DeadlineKind, due_at: datetime) -> None:
        await self._conn.execute(
            "insert into deadlines (order_id, kind, due_at) values ($1, $2, $3) on conflict do nothing",
            order_id,
            kind.value,
            due_at,
        )

    async def take_due(self, now: datetime) -> DueDeadline | None:
        # FOR UPDATE SKIP LOCKED: a second instance skips a row this transaction holds instead of
        # waiting for it, and once this commits the row is done for everyone (O6).
        row = await self._conn.fetchrow(
            """select order_id, kind, due_at from deadlines
               where done_at is null and due_at <= $1
               order by due_at, order_id
               limit 1
               for update skip locked""",
            now,
        )
        return DueDeadline(row["order_id"], DeadlineKind(row["kind"]), row["due_at"]) if row is not None else None

    async def mark_done(self, deadline: DueDeadline, outcome: str, now: datetime) -> None:
        await self._conn.execute(
            "update deadlines set done_at = $3, outcome = $4 where order_id = $1 and kind = $2",
            deadline.order_id,
            deadline.kind.value,
            now,
            outcome,
        )


class PostgresUnitOfWork:
    """Implements `ports.unit_of_work.UnitOfWork` over one of the library's units of work: its
    connection's transaction, and its outbox for what is published."""

    def __init__(self, uow: outbox.UnitOfWork) -> None:
        self._uow = uow
        self._orders = PostgresOrders(uow.conn)
        self._channels = PostgresChannels(uow.conn)
        self._owners = PostgresOwners(uow.conn)
        self._people = ReplicaPeople(uow.conn)
        self._deadlines = PostgresDeadlines(uow.conn)

    @property
    def orders(self) -> PostgresOrders:
        return self._orders

    @property
    def channels(self) -> PostgresChannels:
        return self._channels

    @property
    def owners(self) -> PostgresOwners:
        return self._owners

    @property
    def people(self) -> ReplicaPeople:
        return self._people

    @property
    def deadlines(self) -> PostgresDeadlines:
        return self._deadlines

    def publish(self, message: Message, *, topic: str, key: str | None) -> None:
        self._uow.publish(message, topic=topic, key=key)


def units_of_work(
    pool: Callable[[], asyncpg.Pool], relay: Callable[[], outbox.OutboxRelay | None]
) -> UnitOfWorkFactory:
    """Units of work on the service's pool, each one transaction, the relay woken after commit."""

    def open_unit() -> AbstractAsyncContextManager[UnitOfWork]:
        return _unit(pool(), relay())

    return open_unit


@asynccontextmanager
async def _unit(pool: asyncpg.Pool, relay: outbox.OutboxRelay | None) -> AsyncIterator[UnitOfWork]:
    async with outbox.unit_of_work(pool, relay) as uow:
        yield PostgresUnitOfWork(uow)


async def next_deadline(pool: asyncpg.Pool) -> datetime | None:
    """When the earliest order deadline not yet acted on is due (the sandbox clock stops there, issue 17)."""
    due: datetime | None = await pool.fetchval("select min(due_at) from deadlines where done_at is null")
    return due
