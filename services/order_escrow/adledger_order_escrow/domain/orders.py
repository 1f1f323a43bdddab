"""The escrowed order and its state machine (rules O1-O5): pure, no I/O, no awaits.

Each transition takes the order and the time, checks that it is legal, and returns a
`Decision`: the order after the change and the effects the core must carry out in the same
unit of work (a wallet command for the hold, a deadline to schedule, an e-mail to ask for).
An illegal transition raises a typed error and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from adledger_libs.refusals import Refusal

#: The seller's window to accept or decline (O2), and the buyer's window to dispute (O5).
ANSWER_WINDOW = timedelta(hours=48)
DISPUTE_WINDOW = timedelta(hours=48)
DECLINE_REASON_MAX_CHARS = 200


class OrderStatus(StrEnum):
    AWAITING_FUNDS = "awaiting_funds"
    REJECTED_INSUFFICIENT_FUNDS = "rejected_insufficient_funds"
    HOLD_REJECTED = "hold_rejected"
    AWAITING_SELLER = "awaiting_seller"
    DECLINED = "declined"
    EXPIRED = "expired"
    ACCEPTED = "accepted"
    READY = "ready"
    COMPLETE = "complete"
    DISPUTED = "disputed"
    RELEASED = "released"
    REFUNDED = "refunded"
    SPLIT = "split"


class DeadlineKind(StrEnum):
    #: The seller's 48 hours to accept or decline; when it passes, the hold is voided (O2).
    SELLER_ANSWER = "seller_answer"
    #: The buyer's 48 hours to dispute after Complete; when it passes, the hold is posted (O5).
    RELEASE = "release"


class OrderError(Refusal):
    """A rejected order command; nothing changed."""


class IllegalTransitionError(OrderError):
    def __init__(self, order_id: str, status: OrderStatus, action: str) -> None:
        super().__init__(f"order {order_id} is {status.value}: cannot {action}")
        self.order_id = order_id
        self.status = status
        self.action = action


class AnswerWindowClosedError(OrderError):
    """The seller answered after the 48 hours of O2; the hold is (being) returned to the buyer."""


class DisputeWindowClosedError(OrderError):
    """The buyer disputed after the 48 hours of O5; the funds are (being) released to the seller."""


class InvalidDeclineReasonError(OrderError):
    """A decline needs a short reason: 1 to 200 characters (O2)."""


class InvalidSplitError(OrderError):
    """A split's parts must both be positive and add up to the held price (O5, M1)."""


class InvalidOrderError(OrderError):
    """An order that cannot be placed (a price of zero, a currency mismatch, ...)."""


@dataclass(frozen=True)
class Order:
    id: str
    number: int
    buyer_user_id: str
    buyer_owner_id: str
    channel_id: str
    seller_owner_id: str
    price_micros: int
    currency: str
    status: OrderStatus
    placed_at: datetime
    answer_due_at: datetime | None = None
    completed_at: datetime | None = None
    decline_reason: str | None = None
    dispute_reason: str | None = None
    seller_micros: int | None = None
    buyer_micros: int | None = None
    reordered_from_order_id: str | None = None

    @property
    def release_due_at(self) -> datetime | None:
        return self.completed_at + DISPUTE_WINDOW if self.completed_at is not None else None


@dataclass(frozen=True)
class ResolveEscrow:
    """Post the hold to the seller (all, or `amount_micros` of it; the rest goes back), or void it."""

    action: Literal["post", "void"]
    amount_micros: int | None = None


@dataclass(frozen=True)
class ScheduleDeadline:
    kind: DeadlineKind
    due_at: datetime


@dataclass(frozen=True)
class RequestCompletionEmail:
    """O4: e-mail the buyer that the seller asks for the funds to be released."""


Effect = ResolveEscrow | ScheduleDeadline | RequestCompletionEmail
#: Who caused a change, as `OrderStatusChanged.changed_by` says it: "admin" is a platform operator.
Actor = Literal["buyer", "seller", "admin", "wallet", "deadline"]


@dataclass(frozen=True)
class Decision:
    before: Order
    after: Order
    changed_by: Actor
    effects: tuple[Effect, ...] = ()
    reason: str | None = None


def _require(order: Order, action: str, *allowed: OrderStatus) -> None:
    if order.status not in allowed:
        raise IllegalTransitionError(order.id, order.status, action)


def place(
    *,
    order_id: str,
    number: int,
    buyer_user_id: str,
    buyer_owner_id: str,
    channel_id: str,
    seller_owner_id: str,
    price_micros: int,
    currency: str,
    channel_currency: str | None,
    now: datetime,
    buyer_currency: str | None = None,
    reordered_from_order_id: str | None = None,
) -> Order:
    """O1: a new order waits for its price to be held in escrow. The price is in the currency
    of the channel and of the buyer owner (M2): the wallet would refuse a hold in another."""
    if isinstance(price_micros, bool) or not isinstance(price_micros, int) or price_micros <= 0:
        raise InvalidOrderError("the price is a positive integer of micros (M1)")
    if channel_currency is not None and channel_currency != currency:
        raise InvalidOrderError(f"the channel sells in {channel_currency}, not {currency} (M2)")
    if buyer_currency is not None and buyer_currency != currency:
        raise InvalidOrderError(f"{buyer_owner_id} holds its money in {buyer_currency}, not {currency} (M2)")
    if buyer_owner_id == seller_owner_id:
        raise InvalidOrderError("the buyer and the seller are paid from and to the same owner")
    return Order(
        id=order_id,
        number=number,
        buyer_user_id=buyer_user_id,
        buyer_owner_id=buyer_owner_id,
        channel_id=channel_id,
        seller_owner_id=seller_owner_id,
        price_micros=price_micros,
        currency=currency,
        status=OrderStatus.AWAITING_FUNDS,
        placed_at=now,
        reordered_from_order_id=reordered_from_order_id,
    )


def funds_held(order: Order, now: datetime) -> Decision:
    """The wallet held the price: the seller's 48 hours start now (O1, O2).

    A hold that arrives for an order already given up (a rejection was read first) is voided at
    once, so money is never left held for an order nobody can act on."""
    if order.status is not OrderStatus.AWAITING_FUNDS:
        if order.status in (OrderStatus.REJECTED_INSUFFICIENT_FUNDS, OrderStatus.HOLD_REJECTED):
            return Decision(order, order, "wallet", (ResolveEscrow("void"),))
        return Decision(order, order, "wallet")
    due_at = now + ANSWER_WINDOW
    after = replace(order, status=OrderStatus.AWAITING_SELLER, answer_due_at=due_at)
    return Decision(order, after, "wallet", (ScheduleDeadline(DeadlineKind.SELLER_ANSWER, due_at),))


#: The wallet's refusals that end an order. Any other (unknown_owner, ...) leaves it awaiting its
#: funds with the error shown: on a shared topic it may be another environment's wallet, which
#: does not know our owners, and a hold placed later by ours still moves the order on.
DEFINITIVE_REFUSALS = {
    "insufficient_funds": OrderStatus.REJECTED_INSUFFICIENT_FUNDS,
    "currency_mismatch": OrderStatus.HOLD_REJECTED,
}


def funds_rejected(order: Order, error: str) -> Decision:
    """The wallet could not hold the price: the order ends, nothing was held (O1)."""
    status = DEFINITIVE_REFUSALS.get(error)
    if order.status is not OrderStatus.AWAITING_FUNDS or status is None:
        return Decision(order, order, "wallet")  # A late or foreign answer, or not a definitive one.
    return Decision(order, replace(order, status=status), "wallet", reason=error)


def _within_answer_window(order: Order, now: datetime) -> None:
    assert order.answer_due_at is not None
    if now >= order.answer_due_at:
        raise AnswerWindowClosedError(
            f"order {order.id}: the 48 hours to accept or decline ended at {order.answer_due_at.isoformat()} (O2)"
        )


def accept(order: Order, now: datetime) -> Decision:
    _require(order, "accept", OrderStatus.AWAITING_SELLER)
    _within_answer_window(order, now)
    return Decision(order, replace(order, status=OrderStatus.ACCEPTED), "seller")


def decline(order: Order, reason: str, now: datetime) -> Decision:
    """O2: the seller declines with a short reason; the hold goes back to the buyer at once."""
    _require(order, "decline", OrderStatus.AWAITING_SELLER)
    reason = reason.strip()
    if not 1 <= len(reason) <= DECLINE_REASON_MAX_CHARS:
        raise InvalidDeclineReasonError(f"a decline needs a reason of 1 to {DECLINE_REASON_MAX_CHARS} characters (O2)")
    _within_answer_window(order, now)
    after = replace(
        order, status=OrderStatus.DECLINED, decline_reason=reason, seller_micros=0, buyer_micros=order.price_micros
    )
    return Decision(order, after, "seller", (ResolveEscrow("void"),), reason=reason)


def answer_deadline_passed(order: Order, now: datetime) -> Decision:
    """O2: no answer in 48 hours, the hold is returned to the buyer at once. A no-op when the
    seller answered in time (the deadline is then only marked done)."""
    if order.status is not OrderStatus.AWAITING_SELLER or order.answer_due_at is None or now < order.answer_due_at:
        return Decision(order, order, "deadline")
    after = replace(order, status=OrderStatus.EXPIRED, seller_micros=0, buyer_micros=order.price_micros)
    return Decision(order, after, "deadline", (ResolveEscrow("void"),))


def mark_ready(order: Order) -> Decision:
    """O3: the seller approved the creatives."""
    _require(order, "mark ready", OrderStatus.ACCEPTED)
    return Decision(order, replace(order, status=OrderStatus.READY), "seller")


def complete(order: Order, now: datetime) -> Decision:
    """O3, O4, O5: Complete (straight after Accepted, or after Ready) e-mails the buyer and starts
    the 48 hours after which the funds go to the seller unless the buyer disputes."""
    _require(order, "complete", OrderStatus.ACCEPTED, OrderStatus.READY)
    after = replace(order, status=OrderStatus.COMPLETE, completed_at=now)
    return Decision(
        order, after, "seller", (RequestCompletionEmail(), ScheduleDeadline(DeadlineKind.RELEASE, now + DISPUTE_WINDOW))
    )


def dispute(order: Order, reason: str | None, now: datetime) -> Decision:
    """O5: within 48 hours of Complete the buyer may dispute; the funds stay frozen in the hold."""
    _require(order, "dispute", OrderStatus.COMPLETE)
    assert order.release_due_at is not None
    if now >= order.release_due_at:
        raise DisputeWindowClosedError(
            f"order {order.id}: the 48 hours to dispute ended at {order.release_due_at.isoformat()} (O5)"
        )
    cleaned = (reason or "").strip() or None
    return Decision(order, replace(order, status=OrderStatus.DISPUTED, dispute_reason=cleaned), "buyer", reason=cleaned)


def release_deadline_passed(order: Order, now: datetime) -> Decision:
    """O5: no dispute within 48 hours of Complete, the whole hold is posted to the seller. A
    no-op when the order was disputed (the deadline is then only marked done)."""
    if order.status is not OrderStatus.COMPLETE or order.release_due_at is None or now < order.release_due_at:
        return Decision(order, order, "deadline")
    after = replace(order, status=OrderStatus.RELEASED, seller_micros=order.price_micros, buyer_micros=0)
    return Decision(order, after, "deadline", (ResolveEscrow("post"),))


def resolve_dispute(
    order: Order,
    outcome: Literal["release", "refund", "split"],
    seller_micros: int | None = None,
    buyer_micros: int | None = None,
) -> Decision:
    """O5: an admin ends a dispute: all to the seller, all back to the buyer, or a split in micros
    whose two positive parts add up to the hold (the wallet posts the seller's part and returns
    the rest to the buyer)."""
    _require(order, "resolve a dispute", OrderStatus.DISPUTED)
    if outcome == "release":
        after = replace(order, status=OrderStatus.RELEASED, seller_micros=order.price_micros, buyer_micros=0)
        return Decision(order, after, "admin", (ResolveEscrow("post"),))
    if outcome == "refund":
        after = replace(order, status=OrderStatus.REFUNDED, seller_micros=0, buyer_micros=order.price_micros)
        return Decision(order, after, "admin", (ResolveEscrow("void"),))
    for part in (seller_micros, buyer_micros):
        if part is None or isinstance(part, bool) or not isinstance(part, int) or part <= 0:
            raise InvalidSplitError(
                "a split needs seller_micros and buyer_micros, both positive integers (use release or refund otherwise)"
            )
    assert seller_micros is not None and buyer_micros is not None
    if seller_micros + buyer_micros != order.price_micros:
        raise InvalidSplitError(
            f"the split's parts add up to {seller_micros + buyer_micros}, not the held {order.price_micros} micros"
        )
    after = replace(order, status=OrderStatus.SPLIT, seller_micros=seller_micros, buyer_micros=buyer_micros)
    return Decision(order, after, "admin", (ResolveEscrow("post", seller_micros),))


def reorder(
    past: Order, *, order_id: str, number: int, buyer_user_id: str, now: datetime, buyer_currency: str | None = None
) -> Order:
    """A new order with the same buyer owner, seller and price as a past one."""
    return place(
        order_id=order_id,
        number=number,
        buyer_user_id=buyer_user_id,
        buyer_owner_id=past.buyer_owner_id,
        channel_id=past.channel_id,
        seller_owner_id=past.seller_owner_id,
        price_micros=past.price_micros,
        currency=past.currency,
        channel_currency=None,
        now=now,
        buyer_currency=buyer_currency,
        reordered_from_order_id=past.id,
    )
