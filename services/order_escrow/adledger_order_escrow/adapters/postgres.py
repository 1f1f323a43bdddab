"""The order-escrow tables (schema `order_escrow`): users, channels, orders, deadlines."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from adledger_order_escrow.domain.orders import DeadlineKind, Order, OrderStatus


class UnknownOrderError(LookupError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"no order {order_id!r}")
        self.order_id = order_id


class UnknownChannelError(LookupError):
    def __init__(self, channel_id: str) -> None:
        super().__init__(f"no channel {channel_id!r}")
        self.channel_id = channel_id


class UnknownUserError(LookupError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"no user {user_id!r}")
        self.user_id = user_id


@dataclass(frozen=True)
class User:
    id: str
    name: str
    admin: bool


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    seller_user_id: str
    owner_id: str
    currency: str


@dataclass(frozen=True)
class DueDeadline:
    order_id: str
    kind: DeadlineKind
    due_at: datetime


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def user_by_token(conn: asyncpg.Connection, token: str) -> User | None:
    row = await conn.fetchrow("select id, name, admin from users where token_sha256 = $1", token_digest(token))
    return User(row["id"], row["name"], row["admin"]) if row is not None else None


async def load_user(conn: asyncpg.Connection, user_id: str) -> User:
    row = await conn.fetchrow("select id, name, admin from users where id = $1", user_id)
    if row is None:
        raise UnknownUserError(user_id)
    return User(row["id"], row["name"], row["admin"])


async def insert_user(
    conn: asyncpg.Connection, user_id: str, name: str, token: str, *, admin: bool, buyer_owner_ids: list[str], now: datetime
) -> bool:
    """Create a user; False when the id exists already (nothing changed)."""
    inserted = await conn.fetchval(
        "insert into users (id, name, token_sha256, admin, created_at) values ($1, $2, $3, $4, $5)"
        " on conflict (id) do nothing returning true",
        user_id, name, token_digest(token), admin, now,
    )
    if inserted:
        await conn.executemany(
            "insert into buyer_owners (user_id, owner_id) values ($1, $2) on conflict do nothing",
            [(user_id, owner_id) for owner_id in buyer_owner_ids],
        )
    return bool(inserted)


async def may_buy_for(conn: asyncpg.Connection, user_id: str, owner_id: str) -> bool:
    return bool(await conn.fetchval("select exists(select 1 from buyer_owners where user_id = $1 and owner_id = $2)", user_id, owner_id))


async def insert_channel(conn: asyncpg.Connection, channel: Channel, now: datetime) -> bool:
    inserted = await conn.fetchval(
        "insert into channels (id, name, seller_user_id, owner_id, currency, created_at) values ($1, $2, $3, $4, $5, $6)"
        " on conflict (id) do nothing returning true",
        channel.id, channel.name, channel.seller_user_id, channel.owner_id, channel.currency, now,
    )
    return bool(inserted)


async def load_channel(conn: asyncpg.Connection, channel_id: str) -> Channel:
    row = await conn.fetchrow("select id, name, seller_user_id, owner_id, currency from channels where id = $1", channel_id)
    if row is None:
        raise UnknownChannelError(channel_id)
    return Channel(row["id"], row["name"], row["seller_user_id"], row["owner_id"], row["currency"])


async def next_order_number(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("select nextval('order_numbers')"))


def _order(row: asyncpg.Record) -> Order:
    return Order(
        id=row["id"], number=row["number"], buyer_user_id=row["buyer_user_id"], buyer_owner_id=row["buyer_owner_id"],
        channel_id=row["channel_id"], seller_owner_id=row["seller_owner_id"], price_micros=row["price_micros"],
        currency=row["currency"], status=OrderStatus(row["status"]), placed_at=row["placed_at"],
        answer_due_at=row["answer_due_at"], completed_at=row["completed_at"], decline_reason=row["decline_reason"],
        dispute_reason=row["dispute_reason"], seller_micros=row["seller_micros"], buyer_micros=row["buyer_micros"],
        reordered_from_order_id=row["reordered_from_order_id"],
    )


async def find_order(conn: asyncpg.Connection, order_id: str, *, for_update: bool = False) -> Order | None:
    row = await conn.fetchrow("select * from orders where id = $1" + (" for update" if for_update else ""), order_id)
    return _order(row) if row is not None else None


async def load_order(conn: asyncpg.Connection, order_id: str, *, for_update: bool = False) -> Order:
    order = await find_order(conn, order_id, for_update=for_update)
    if order is None:
        raise UnknownOrderError(order_id)
    return order


@dataclass(frozen=True)
class Settlement:
    settled_at: datetime | None
    posted_micros: int | None
    hold_error: str | None


async def settlement_of(conn: asyncpg.Connection, order_id: str) -> Settlement:
    row = await conn.fetchrow("select settled_at, settled_posted_micros, hold_error from orders where id = $1", order_id)
    if row is None:
        raise UnknownOrderError(order_id)
    return Settlement(row["settled_at"], row["settled_posted_micros"], row["hold_error"])


async def insert_order(conn: asyncpg.Connection, order: Order) -> None:
    await conn.execute(
        """insert into orders (id, number, buyer_user_id, buyer_owner_id, channel_id, seller_owner_id, price_micros,
               currency, status, placed_at, reordered_from_order_id, updated_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10)""",
        order.id, order.number, order.buyer_user_id, order.buyer_owner_id, order.channel_id, order.seller_owner_id,
        order.price_micros, order.currency, order.status.value, order.placed_at, order.reordered_from_order_id,
    )


async def save_order(conn: asyncpg.Connection, order: Order, now: datetime) -> None:
    await conn.execute(
        """update orders set status = $2, answer_due_at = $3, completed_at = $4, decline_reason = $5,
               dispute_reason = $6, seller_micros = $7, buyer_micros = $8, updated_at = $9
           where id = $1""",
        order.id, order.status.value, order.answer_due_at, order.completed_at, order.decline_reason,
        order.dispute_reason, order.seller_micros, order.buyer_micros, now,
    )


async def record_settlement(conn: asyncpg.Connection, order_id: str, posted_micros: int, now: datetime) -> None:
    await conn.execute(
        "update orders set settled_at = $2, settled_posted_micros = $3, hold_error = null, updated_at = $2"
        " where id = $1 and settled_at is null",
        order_id, now, posted_micros,
    )


async def record_hold_error(conn: asyncpg.Connection, order_id: str, error: str, now: datetime) -> None:
    # Only while the hold is unresolved: after the wallet confirmed a post or void, a refusal is
    # another environment's wallet answering on the shared topic.
    await conn.execute("update orders set hold_error = $2, updated_at = $3 where id = $1 and settled_at is null", order_id, error, now)


async def schedule_deadline(conn: asyncpg.Connection, order_id: str, kind: DeadlineKind, due_at: datetime) -> None:
    await conn.execute(
        "insert into deadlines (order_id, kind, due_at) values ($1, $2, $3) on conflict do nothing", order_id, kind.value, due_at
    )


async def take_due_deadline(conn: asyncpg.Connection, now: datetime) -> DueDeadline | None:
    """The oldest due deadline no other transaction holds, locked for this one (O6): a second
    instance skips it instead of waiting, and once this commits the row is done for everyone."""
    row = await conn.fetchrow(
        """select order_id, kind, due_at from deadlines
           where done_at is null and due_at <= $1
           order by due_at, order_id
           limit 1
           for update skip locked""",
        now,
    )
    return DueDeadline(row["order_id"], DeadlineKind(row["kind"]), row["due_at"]) if row is not None else None


async def mark_deadline_done(conn: asyncpg.Connection, deadline: DueDeadline, outcome: str, now: datetime) -> None:
    await conn.execute(
        "update deadlines set done_at = $3, outcome = $4 where order_id = $1 and kind = $2",
        deadline.order_id, deadline.kind.value, now, outcome,
    )
