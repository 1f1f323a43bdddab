"""The order-escrow use cases: channels registered, orders placed, answered, completed, disputed
and resolved, the wallet's answers, and the deadlines (rules O1-O6, W9). Money moves only
through the wallet: this service sends it `PlaceHold` / `ResolveHold` on its commands topic
through the unit of work (the outbox), in the same transaction as the order's change, and reads
the answers from the wallet's events.

W14 (a payout only while the payer's real balance covers it) holds by construction for an
escrowed order: the price is held at purchase, and a hold is part of the buyer's real balance
until it is posted, so posting it to the seller is always covered and never waits. The wallet's
`RequestPayout` (with its outstanding state) is for payouts that were not escrowed.

Each use case is load → decide → write: it loads what it needs through the unit of work's
repositories, lets the domain decide (`domain.orders`, `domain.parties`), and writes the
decision and its effects back through the same unit of work.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from adledger_auth.roles import Action
from adledger_contracts.notifications import EmailRequested
from adledger_contracts.orders import OrderPlaced, OrderStatusChanged
from adledger_contracts.wallet import HoldPlaced, HoldRejected, HoldResolved, PlaceHold, ResolveHold
from adledger_libs.clock import Clock
from adledger_libs.logs import get_logger

from adledger_order_escrow.domain import orders as domain
from adledger_order_escrow.domain import parties
from adledger_order_escrow.domain.orders import DeadlineKind, Decision, Order
from adledger_order_escrow.domain.parties import Channel, Owner, Party
from adledger_order_escrow.ports.inbound import ORDERS_SCOPE, Caller, DisputeOutcome, OrderEscrowPort
from adledger_order_escrow.ports.orders import Settlement
from adledger_order_escrow.ports.owners import UnknownOwnerError, UnknownUserError
from adledger_order_escrow.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = get_logger(__name__)

#: This service's name in the wallet's commands (`requested_by`): the wallet's answers carry it back.
SERVICE = "order_escrow"
NO_LONGER_DUE = "no_longer_due"


class OrderEscrow(OrderEscrowPort):
    def __init__(self, clock: Clock, *, commands_topic: str, orders_topic: str) -> None:
        self.clock = clock
        self.commands_topic = commands_topic
        self.orders_topic = orders_topic

    # Channels -----------------------------------------------------------------------------------

    async def register_channel(self, uow: UnitOfWork, caller: Caller, channel: Channel) -> Channel:
        caller.require_scope(ORDERS_SCOPE)
        caller.require_platform("register channels")
        seller = await uow.people.person(channel.seller_user_id)
        if seller is None or seller.disabled:
            raise UnknownUserError(channel.seller_user_id)
        parties.check_channel(channel, await uow.owners.get(channel.owner_id))
        await uow.channels.add(channel, self.clock.now())
        return channel

    # Orders -------------------------------------------------------------------------------------

    async def place_order(
        self, uow: UnitOfWork, caller: Caller, channel_id: str, buyer_owner_id: str, price_micros: int, currency: str
    ) -> Order:
        caller.require_scope(ORDERS_SCOPE)
        buyer_owner = await self._may_order_for(uow, caller, buyer_owner_id)
        channel = await uow.channels.get(channel_id)
        order = domain.place(
            order_id=str(uuid.uuid4()),
            number=await uow.orders.next_number(),
            buyer_user_id=caller.user_id,
            buyer_owner_id=buyer_owner.owner_id,
            channel_id=channel.id,
            seller_owner_id=channel.owner_id,
            price_micros=price_micros,
            currency=currency,
            channel_currency=channel.currency,
            buyer_currency=buyer_owner.currency,
            now=self.clock.now(),
        )
        return await self._open(uow, order)

    async def reorder(self, uow: UnitOfWork, caller: Caller, past_order_id: str) -> Order:
        past = await self._as_party(uow, caller, past_order_id, Party.BUYER, for_update=False)
        # The buyer may have lost their role in the owner's Business Center since: W9 again.
        buyer_owner = await self._may_order_for(uow, caller, past.buyer_owner_id)
        order = domain.reorder(
            past,
            order_id=str(uuid.uuid4()),
            number=await uow.orders.next_number(),
            buyer_user_id=caller.user_id,
            now=self.clock.now(),
            buyer_currency=buyer_owner.currency,
        )
        return await self._open(uow, order)

    async def _may_order_for(self, uow: UnitOfWork, caller: Caller, owner_id: str) -> Owner:
        """W9: the caller holds `PLACE_ORDER` in the owner's Business Center. A caller with no role
        there is told what a caller is told about an owner that does not exist (tenants fenced)."""
        owner = await uow.owners.get(owner_id)
        business_center_id = owner.business_center_id
        if not (caller.platform_operator or caller.is_member_of(business_center_id)):
            raise UnknownOwnerError(owner_id)
        caller.require(
            business_center_id,
            Action.PLACE_ORDER,
            finance_roles_set_up=await uow.people.finance_roles_set_up(business_center_id),
        )
        return owner

    async def _open(self, uow: UnitOfWork, order: Order) -> Order:
        await uow.orders.add(order)
        # The hold's id is the order's id, and its idempotency key derives from it, so a repeat
        # of this command (or of the outbox row) holds the price once (M5).
        uow.publish(
            PlaceHold(
                idempotency_key=f"order:{order.id}:hold",
                hold_id=order.id,
                owner_id=order.buyer_owner_id,
                payee_owner_id=order.seller_owner_id,
                amount_micros=order.price_micros,
                currency=order.currency,
                purpose="order_escrow",
                requested_by=SERVICE,
            ),
            topic=self.commands_topic,
            key=order.buyer_owner_id,
        )
        uow.publish(
            OrderPlaced(
                order_id=order.id,
                order_number=order.number,
                buyer_user_id=order.buyer_user_id,
                buyer_owner_id=order.buyer_owner_id,
                channel_id=order.channel_id,
                seller_owner_id=order.seller_owner_id,
                price_micros=order.price_micros,
                currency=order.currency,
                reordered_from_order_id=order.reordered_from_order_id,
                placed_at=order.placed_at,
            ),
            topic=self.orders_topic,
            key=order.id,
        )
        return order

    async def read_order(self, uow: UnitOfWork, caller: Caller, order_id: str) -> tuple[Order, Settlement]:
        order = await self._as_party(uow, caller, order_id, Party.BUYER, Party.SELLER, Party.ADMIN, for_update=False)
        return order, await uow.orders.settlement(order_id)

    async def accept(self, uow: UnitOfWork, caller: Caller, order_id: str) -> Order:
        order = await self._as_party(uow, caller, order_id, Party.SELLER)
        return await self._apply(uow, domain.accept(order, self.clock.now()))

    async def decline(self, uow: UnitOfWork, caller: Caller, order_id: str, reason: str) -> Order:
        order = await self._as_party(uow, caller, order_id, Party.SELLER)
        return await self._apply(uow, domain.decline(order, reason, self.clock.now()))

    async def mark_ready(self, uow: UnitOfWork, caller: Caller, order_id: str) -> Order:
        order = await self._as_party(uow, caller, order_id, Party.SELLER)
        return await self._apply(uow, domain.mark_ready(order))

    async def complete(self, uow: UnitOfWork, caller: Caller, order_id: str) -> Order:
        order = await self._as_party(uow, caller, order_id, Party.SELLER)
        return await self._apply(uow, domain.complete(order, self.clock.now()))

    async def dispute(self, uow: UnitOfWork, caller: Caller, order_id: str, reason: str | None) -> Order:
        order = await self._as_party(uow, caller, order_id, Party.BUYER)
        return await self._apply(uow, domain.dispute(order, reason, self.clock.now()))

    async def resolve_dispute(
        self,
        uow: UnitOfWork,
        caller: Caller,
        order_id: str,
        outcome: DisputeOutcome,
        seller_micros: int | None,
        buyer_micros: int | None,
    ) -> Order:
        order = await self._as_party(uow, caller, order_id, Party.ADMIN)
        return await self._apply(uow, domain.resolve_dispute(order, outcome, seller_micros, buyer_micros))

    async def _as_party(
        self, uow: UnitOfWork, caller: Caller, order_id: str, *allowed: Party, for_update: bool = True
    ) -> Order:
        """The order (locked for a change), once the caller is shown to be one of the `allowed`
        parties; someone who is none of its parties gets the answer of an unknown order."""
        caller.require_scope(ORDERS_SCOPE)
        order = await uow.orders.get(order_id, for_update=for_update)
        channel = await uow.channels.get(order.channel_id)
        held = parties.parties_of(
            order,
            seller_user_id=channel.seller_user_id,
            user_id=caller.user_id,
            platform_operator=caller.platform_operator,
        )
        parties.require_party(order, held, *allowed)
        return order

    # What the service learns from the wallet -----------------------------------------------------

    async def owner_opened(self, uow: UnitOfWork, owner: Owner, opened_at: datetime) -> None:
        if parties.learn_owner(await uow.owners.find(owner.owner_id), owner):
            await uow.owners.add(owner, opened_at)

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
            log.warning(
                "escrow_resolution_rejected",
                order_id=order.id,
                status=order.status.value,
                error=event.error,
                reason=event.reason,
            )
            await uow.orders.record_hold_error(order.id, event.error, self.clock.now())
            return
        await self._apply(uow, decision)

    async def hold_resolved(self, uow: UnitOfWork, event: HoldResolved) -> None:
        order = await self._answered_order(uow, event.requested_by, event.hold_id)
        if order is not None:
            await uow.orders.record_settlement(order.id, event.posted_micros, self.clock.now())

    async def _answered_order(self, uow: UnitOfWork, requested_by: str, hold_id: str) -> Order | None:
        if requested_by != SERVICE:
            return None
        # An unknown hold is another environment's order (the topic is shared): not ours to act on.
        return await uow.orders.find(hold_id, for_update=True)

    # Deadlines (O6) -----------------------------------------------------------------------------

    async def act_on_next_due_deadline(self, uow: UnitOfWork) -> str | None:
        now = self.clock.now()
        deadline = await uow.deadlines.take_due(now)
        if deadline is None:
            return None
        order = await uow.orders.get(deadline.order_id, for_update=True)
        if deadline.kind is DeadlineKind.SELLER_ANSWER:
            decision = domain.answer_deadline_passed(order, now)
        else:
            decision = domain.release_deadline_passed(order, now)
        await self._apply(uow, decision)
        outcome = decision.after.status.value if decision.after.status != order.status else NO_LONGER_DUE
        await uow.deadlines.mark_done(deadline, outcome, now)
        log.info("deadline_done", order_id=order.id, kind=deadline.kind.value, outcome=outcome)
        return outcome

    # Carrying out a decision ---------------------------------------------------------------------

    async def _apply(self, uow: UnitOfWork, decision: Decision) -> Order:
        """Save the order and carry out the decision's effects in this unit of work (outbox)."""
        before, after = decision.before, decision.after
        now = self.clock.now()
        if after != before:
            await uow.orders.save(after, now)
        for effect in decision.effects:
            if isinstance(effect, domain.ResolveEscrow):
                # One resolution per hold: the key makes a repeat (or an outbox re-publish) apply once.
                uow.publish(
                    ResolveHold(
                        idempotency_key=f"order:{after.id}:resolve",
                        hold_id=after.id,
                        action=effect.action,
                        amount_micros=effect.amount_micros,
                        requested_by=SERVICE,
                    ),
                    topic=self.commands_topic,
                    key=after.buyer_owner_id,
                )
            elif isinstance(effect, domain.ScheduleDeadline):
                await uow.deadlines.schedule(after.id, effect.kind, effect.due_at)
            elif isinstance(effect, domain.RequestCompletionEmail):
                await self._request_completion_email(uow, after, now)
        if after.status != before.status:
            uow.publish(
                OrderStatusChanged(
                    order_id=after.id,
                    order_number=after.number,
                    previous_status=before.status.value,
                    status=after.status.value,
                    changed_by=decision.changed_by,
                    reason=decision.reason,
                    seller_micros=after.seller_micros if after.seller_micros != before.seller_micros else None,
                    buyer_micros=after.buyer_micros if after.buyer_micros != before.buyer_micros else None,
                    changed_at=now,
                ),
                topic=self.orders_topic,
                key=after.id,
            )
        return after

    async def _request_completion_email(self, uow: UnitOfWork, order: Order, now: datetime) -> None:
        """O4: the buyer's name as the platform's identity knows it (their id, should the identity
        not have published the user here yet), the channel's name, and the order number."""
        buyer = await uow.people.person(order.buyer_user_id)
        channel = await uow.channels.get(order.channel_id)
        uow.publish(
            EmailRequested(
                email_id=f"order:{order.id}:completed",
                template="order_completed",
                recipient_user_id=order.buyer_user_id,
                subject_id=order.id,
                fields={
                    "user_name": buyer.name if buyer is not None else order.buyer_user_id,
                    "channel_name": channel.name,
                    "order_number": str(order.number),
                },
                requested_at=now,
            ),
            topic=self.orders_topic,
            key=order.id,
        )


class DueDeadlines:
    """The periodic job of O6: act on every due deadline, one unit of work each, exactly once.

    Each round takes one due deadline that no other unit of work holds, acts (wallet command and
    order event through the outbox) and marks it done in the same unit of work. Two instances
    running at once take different deadlines; an instance that was down finds them still due
    when it is back. Tests move the ManualClock and call `run` themselves (T1)."""

    def __init__(self, units: UnitOfWorkFactory, escrow: OrderEscrowPort, *, batch_limit: int = 1000) -> None:
        self._units = units
        self._escrow = escrow
        self._batch_limit = batch_limit

    async def run(self) -> int:
        """Take every due deadline; returns how many changed an order. A deadline that is no
        longer due (the seller answered, the buyer disputed) is only marked done."""
        acted = 0
        for _ in range(self._batch_limit):
            async with self._units() as uow:
                outcome = await self._escrow.act_on_next_due_deadline(uow)
            if outcome is None:
                break
            if outcome != NO_LONGER_DUE:
                acted += 1
        return acted
