"""The order-escrow use cases: orders placed, answered, completed, disputed and resolved, the
wallet's answers, and the deadlines (rules O1-O6). Money moves only through the wallet: this
service sends it `PlaceHold` / `ResolveHold` on `wallet.commands.v1` through the outbox, in the
same transaction as the order's change, and reads the answers on `wallet.events.v1`.

W14 (a payout only while the payer's real balance covers it) holds by construction for an
escrowed order: the price is held at purchase, and a hold is part of the buyer's real balance
until it is posted, so posting it to the seller is always covered and never waits. The wallet's
`RequestPayout` (with its outstanding state) is for payouts that were not escrowed.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import asyncpg

from adledger_contracts.notifications import EmailRequested
from adledger_contracts.orders import OrderPlaced, OrderStatusChanged
from adledger_contracts.wallet import HoldPlaced, HoldRejected, HoldResolved, PlaceHold, ResolveHold
from adledger_libs.clock import Clock
from adledger_libs.logs import get_logger
from adledger_libs.outbox import OutboxRelay, UnitOfWork, unit_of_work
from adledger_order_escrow.adapters import postgres as store
from adledger_order_escrow.domain import orders as domain
from adledger_order_escrow.domain.orders import Decision, DeadlineKind, Order

log = get_logger(__name__)

SERVICE = "order_escrow"
WALLET_COMMANDS_TOPIC = "wallet.commands.v1"
WALLET_EVENTS_TOPIC = "wallet.events.v1"
ORDERS_EVENTS_TOPIC = "orders.events.v1"

Role = Literal["buyer", "seller", "admin"]
NO_LONGER_DUE = "no_longer_due"


class PermissionDeniedError(Exception):
    """The caller has no role in this order (or is not an admin) for what they asked."""


class AlreadyExistsError(Exception):
    """A user or channel with this id exists already."""


@dataclass(frozen=True)
class Caller:
    user: store.User

    @property
    def id(self) -> str:
        return self.user.id


class OrderEscrow:
    def __init__(
        self, clock: Clock, *, commands_topic: str = WALLET_COMMANDS_TOPIC, orders_topic: str = ORDERS_EVENTS_TOPIC
    ) -> None:
        self.clock = clock
        self.commands_topic = commands_topic
        self.orders_topic = orders_topic

    # Users and channels -----------------------------------------------------------------------

    async def create_user(
        self, uow: UnitOfWork, caller: Caller, user_id: str, name: str, buyer_owner_ids: list[str], admin: bool
    ) -> str:
        """An admin creates a user and gets their bearer token (shown once, only its hash is kept)."""
        self._require_admin(caller)
        token = secrets.token_urlsafe(32)
        if not await store.insert_user(uow.conn, user_id, name, token, admin=admin, buyer_owner_ids=buyer_owner_ids, now=self.clock.now()):
            raise AlreadyExistsError(f"user {user_id!r} exists already")
        return token

    async def register_channel(self, uow: UnitOfWork, caller: Caller, channel: store.Channel) -> store.Channel:
        """An admin registers a seller: a channel, who answers its orders, and whom it pays."""
        self._require_admin(caller)
        await store.load_user(uow.conn, channel.seller_user_id)
        if not await store.insert_channel(uow.conn, channel, self.clock.now()):
            raise AlreadyExistsError(f"channel {channel.id!r} exists already")
        return channel

    # Orders -------------------------------------------------------------------------------------

    async def place_order(
        self, uow: UnitOfWork, caller: Caller, channel_id: str, buyer_owner_id: str, price_micros: int, currency: str
    ) -> Order:
        """O1: a buyer orders from a channel; the price is held in escrow by the wallet."""
        if not await store.may_buy_for(uow.conn, caller.id, buyer_owner_id):
            raise PermissionDeniedError(f"user {caller.id} may not buy for {buyer_owner_id}")
        channel = await store.load_channel(uow.conn, channel_id)
        order = domain.place(
            order_id=str(uuid.uuid4()), number=await store.next_order_number(uow.conn), buyer_user_id=caller.id,
            buyer_owner_id=buyer_owner_id, channel_id=channel.id, seller_owner_id=channel.owner_id,
            price_micros=price_micros, currency=currency, channel_currency=channel.currency, now=self.clock.now(),
        )
        return await self._open(uow, order)

    async def reorder(self, uow: UnitOfWork, caller: Caller, past_order_id: str) -> Order:
        """A new order copying a past one: same buyer owner, seller and price (its buyer only)."""
        past = await store.load_order(uow.conn, past_order_id)
        await self._require_role(uow, caller, past, "buyer")
        order = domain.reorder(
            past, order_id=str(uuid.uuid4()), number=await store.next_order_number(uow.conn), buyer_user_id=caller.id, now=self.clock.now()
        )
        return await self._open(uow, order)

    async def _open(self, uow: UnitOfWork, order: Order) -> Order:
        await store.insert_order(uow.conn, order)
        # The hold's id is the order's id, and its idempotency key derives from it, so a repeat
        # of this command (or of the outbox row) holds the price once (M5).
        uow.publish(
            PlaceHold(
                idempotency_key=f"order:{order.id}:hold", hold_id=order.id, owner_id=order.buyer_owner_id,
                payee_owner_id=order.seller_owner_id, amount_micros=order.price_micros, currency=order.currency,
                purpose="order_escrow", requested_by=SERVICE,
            ),
            topic=self.commands_topic, key=order.buyer_owner_id,
        )
        uow.publish(
            OrderPlaced(
                order_id=order.id, order_number=order.number, buyer_user_id=order.buyer_user_id,
                buyer_owner_id=order.buyer_owner_id, channel_id=order.channel_id, seller_owner_id=order.seller_owner_id,
                price_micros=order.price_micros, currency=order.currency,
                reordered_from_order_id=order.reordered_from_order_id, placed_at=order.placed_at,
            ),
            topic=self.orders_topic, key=order.id,
        )
        return order

    async def read_order(self, uow: UnitOfWork, caller: Caller, order_id: str) -> tuple[Order, store.Settlement]:
        order = await store.load_order(uow.conn, order_id)
        await self._require_role(uow, caller, order, "buyer", "seller", "admin")
        return order, await store.settlement_of(uow.conn, order_id)

    async def accept(self, uow: UnitOfWork, caller: Caller, order_id: str) -> Order:
        order = await self._locked(uow, caller, order_id, "seller")
        return await self._apply(uow, domain.accept(order, self.clock.now()))

    async def decline(self, uow: UnitOfWork, caller: Caller, order_id: str, reason: str) -> Order:
        order = await self._locked(uow, caller, order_id, "seller")
        return await self._apply(uow, domain.decline(order, reason, self.clock.now()))

    async def mark_ready(self, uow: UnitOfWork, caller: Caller, order_id: str) -> Order:
        order = await self._locked(uow, caller, order_id, "seller")
        return await self._apply(uow, domain.mark_ready(order))

    async def complete(self, uow: UnitOfWork, caller: Caller, order_id: str) -> Order:
        order = await self._locked(uow, caller, order_id, "seller")
        return await self._apply(uow, domain.complete(order, self.clock.now()))

    async def dispute(self, uow: UnitOfWork, caller: Caller, order_id: str, reason: str | None) -> Order:
        order = await self._locked(uow, caller, order_id, "buyer")
        return await self._apply(uow, domain.dispute(order, reason, self.clock.now()))

    async def resolve_dispute(
        self, uow: UnitOfWork, caller: Caller, order_id: str, outcome: Literal["release", "refund", "split"],
        seller_micros: int | None, buyer_micros: int | None,
    ) -> Order:
        order = await self._locked(uow, caller, order_id, "admin")
        return await self._apply(uow, domain.resolve_dispute(order, outcome, seller_micros, buyer_micros))

    # The wallet's answers ------------------------------------------------------------------------

    async def hold_placed(self, uow: UnitOfWork, event: HoldPlaced) -> None:
        order = await self._answered_order(uow, event.requested_by, event.hold_id)
        if order is not None:
            await self._apply(uow, domain.funds_held(order, self.clock.now()))

    async def hold_rejected(self, uow: UnitOfWork, event: HoldRejected) -> None:
        order = await self._answered_order(uow, event.requested_by, event.hold_id)
        if order is None:
            return
        decision = domain.funds_rejected(order, event.error)
        if decision.after == order:
            # Not a definitive refusal of the hold (see domain.DEFINITIVE_REFUSALS), or a refused
            # post or void: recorded on the order for an operator; its status stays as it is.
            log.warning("escrow_resolution_rejected", order_id=order.id, status=order.status.value, error=event.error, reason=event.reason)
            await store.record_hold_error(uow.conn, order.id, event.error, self.clock.now())
            return
        await self._apply(uow, decision)

    async def hold_resolved(self, uow: UnitOfWork, event: HoldResolved) -> None:
        order = await self._answered_order(uow, event.requested_by, event.hold_id)
        if order is not None:
            await store.record_settlement(uow.conn, order.id, event.posted_micros, self.clock.now())

    async def _answered_order(self, uow: UnitOfWork, requested_by: str, hold_id: str) -> Order | None:
        if requested_by != SERVICE:
            return None
        # An unknown hold is another environment's order (the topic is shared): not ours to act on.
        return await store.find_order(uow.conn, hold_id, for_update=True)

    # Deadlines (O6) ----------------------------------------------------------------------------

    async def act_on_next_due_deadline(self, uow: UnitOfWork) -> str | None:
        """Act on one due deadline, mark it done in the same transaction; None when none is due."""
        now = self.clock.now()
        deadline = await store.take_due_deadline(uow.conn, now)
        if deadline is None:
            return None
        order = await store.load_order(uow.conn, deadline.order_id, for_update=True)
        if deadline.kind is DeadlineKind.SELLER_ANSWER:
            decision = domain.answer_deadline_passed(order, now)
        else:
            decision = domain.release_deadline_passed(order, now)
        await self._apply(uow, decision)
        outcome = decision.after.status.value if decision.after.status != order.status else NO_LONGER_DUE
        await store.mark_deadline_done(uow.conn, deadline, outcome, now)
        log.info("deadline_done", order_id=order.id, kind=deadline.kind.value, outcome=outcome)
        return outcome

    # Helpers -------------------------------------------------------------------------------------

    async def _apply(self, uow: UnitOfWork, decision: Decision) -> Order:
        """Save the order and carry out the decision's effects in this unit of work (outbox)."""
        before, after = decision.before, decision.after
        now = self.clock.now()
        if after != before:
            await store.save_order(uow.conn, after, now)
        for effect in decision.effects:
            if isinstance(effect, domain.ResolveEscrow):
                # One resolution per hold: the key makes a repeat (or an outbox re-publish) apply once.
                uow.publish(
                    ResolveHold(
                        idempotency_key=f"order:{after.id}:resolve", hold_id=after.id, action=effect.action,
                        amount_micros=effect.amount_micros, requested_by=SERVICE,
                    ),
                    topic=self.commands_topic, key=after.buyer_owner_id,
                )
            elif isinstance(effect, domain.ScheduleDeadline):
                await store.schedule_deadline(uow.conn, after.id, effect.kind, effect.due_at)
            elif isinstance(effect, domain.RequestCompletionEmail):
                buyer = await store.load_user(uow.conn, after.buyer_user_id)
                channel = await store.load_channel(uow.conn, after.channel_id)
                uow.publish(
                    EmailRequested(
                        email_id=f"order:{after.id}:completed", template="order_completed",
                        recipient_user_id=buyer.id, subject_id=after.id,
                        fields={"user_name": buyer.name, "channel_name": channel.name, "order_number": str(after.number)},
                        requested_at=now,
                    ),
                    topic=self.orders_topic, key=after.id,
                )
        if after.status != before.status:
            uow.publish(
                OrderStatusChanged(
                    order_id=after.id, order_number=after.number, previous_status=before.status.value,
                    status=after.status.value, changed_by=decision.changed_by, reason=decision.reason,
                    seller_micros=after.seller_micros if after.seller_micros != before.seller_micros else None,
                    buyer_micros=after.buyer_micros if after.buyer_micros != before.buyer_micros else None,
                    changed_at=now,
                ),
                topic=self.orders_topic, key=after.id,
            )
        return after

    async def _locked(self, uow: UnitOfWork, caller: Caller, order_id: str, *roles: Role) -> Order:
        order = await store.load_order(uow.conn, order_id, for_update=True)
        await self._require_role(uow, caller, order, *roles)
        return order

    async def _require_role(self, uow: UnitOfWork, caller: Caller, order: Order, *roles: Role) -> None:
        if "admin" in roles and caller.user.admin:
            return
        if "buyer" in roles and caller.id == order.buyer_user_id:
            return
        if "seller" in roles and caller.id == (await store.load_channel(uow.conn, order.channel_id)).seller_user_id:
            return
        raise PermissionDeniedError(f"user {caller.id} is not the order's {' or '.join(roles)}")

    @staticmethod
    def _require_admin(caller: Caller) -> None:
        if not caller.user.admin:
            raise PermissionDeniedError("only an admin may do this")


class DueDeadlines:
    """The periodic job of O6: act on every due deadline, one transaction each, exactly once.

    Each round takes one due row with `FOR UPDATE SKIP LOCKED`, acts (wallet command and order
    event through the outbox) and marks it done in the same transaction. Two instances running
    at once take different rows; an instance that was down finds the rows still due when it is
    back. Tests move the ManualClock and call `run` themselves (T1)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], relay: Callable[[], OutboxRelay | None], escrow: OrderEscrow, *, batch_limit: int = 1000) -> None:
        self._pool = pool
        self._relay = relay
        self._escrow = escrow
        self._batch_limit = batch_limit

    async def run(self) -> int:
        """Take every due deadline; returns how many changed an order. A deadline that is no
        longer due (the seller answered, the buyer disputed) is only marked done."""
        acted = 0
        for _ in range(self._batch_limit):
            async with unit_of_work(self._pool(), self._relay()) as uow:
                outcome = await self._escrow.act_on_next_due_deadline(uow)
            if outcome is None:
                break
            if outcome != NO_LONGER_DUE:
                acted += 1
        return acted
