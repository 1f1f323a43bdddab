"""The escrowed order's state machine (rules O1-O5), pure: no broker, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adledger_order_escrow.domain import orders as domain
from adledger_order_escrow.domain.orders import (
    DeadlineKind,
    OrderStatus,
    RequestCompletionEmail,
    ResolveEscrow,
    ScheduleDeadline,
)

USD = 1_000_000
T0 = datetime(2026, 11, 21, 9, tzinfo=UTC)
H48 = timedelta(hours=48)


def _placed(price_micros: int = 10 * USD) -> domain.Order:
    return domain.place(
        order_id="o1", number=1000, buyer_user_id="buyer", buyer_owner_id="bc-buyer", channel_id="ch",
        seller_owner_id="bc-seller", price_micros=price_micros, currency="USD", channel_currency="USD", now=T0,
    )


def _awaiting_seller() -> domain.Order:
    return domain.funds_held(_placed(), T0).after


def _complete() -> domain.Order:
    accepted = domain.accept(_awaiting_seller(), T0 + timedelta(hours=1)).after
    return domain.complete(accepted, T0 + timedelta(hours=2)).after


def test_o1_a_placed_order_awaits_its_funds_then_the_seller_with_a_48_hour_deadline() -> None:
    order = _placed()
    assert order.status is OrderStatus.AWAITING_FUNDS
    decision = domain.funds_held(order, T0)
    assert decision.after.status is OrderStatus.AWAITING_SELLER
    assert decision.effects == (ScheduleDeadline(DeadlineKind.SELLER_ANSWER, T0 + H48),)


def test_o1_a_rejected_hold_ends_the_order_and_a_late_hold_for_it_is_voided() -> None:
    rejected = domain.funds_rejected(_placed(), "insufficient_funds").after
    assert rejected.status is OrderStatus.REJECTED_INSUFFICIENT_FUNDS
    assert domain.funds_rejected(_placed(), "currency_mismatch").after.status is OrderStatus.HOLD_REJECTED
    assert domain.funds_rejected(_placed(), "unknown_owner").after.status is OrderStatus.AWAITING_FUNDS, "not definitive"
    late = domain.funds_held(rejected, T0)
    assert late.after == rejected and late.effects == (ResolveEscrow("void"),)


@pytest.mark.parametrize("price", [0, -1])
def test_o1_m1_a_price_is_a_positive_integer_and_in_the_channels_currency(price: int) -> None:
    with pytest.raises(domain.InvalidOrderError):
        domain.place(
            order_id="x", number=1, buyer_user_id="b", buyer_owner_id="a", channel_id="c", seller_owner_id="s",
            price_micros=price, currency="USD", channel_currency="USD", now=T0,
        )
    with pytest.raises(domain.InvalidOrderError):
        domain.place(
            order_id="x", number=1, buyer_user_id="b", buyer_owner_id="a", channel_id="c", seller_owner_id="s",
            price_micros=USD, currency="EUR", channel_currency="USD", now=T0,
        )


def test_o2_accept_within_48_hours_and_never_twice() -> None:
    accepted = domain.accept(_awaiting_seller(), T0 + H48 - timedelta(seconds=1)).after
    assert accepted.status is OrderStatus.ACCEPTED
    with pytest.raises(domain.IllegalTransitionError):
        domain.accept(accepted, T0 + timedelta(hours=1))
    with pytest.raises(domain.AnswerWindowClosedError):
        domain.accept(_awaiting_seller(), T0 + H48)


def test_o2_decline_needs_a_short_reason_and_voids_the_hold() -> None:
    for reason in ("", "   ", "x" * 201):
        with pytest.raises(domain.InvalidDeclineReasonError):
            domain.decline(_awaiting_seller(), reason, T0)
    decision = domain.decline(_awaiting_seller(), " fully booked ", T0)
    assert decision.after.status is OrderStatus.DECLINED and decision.after.decline_reason == "fully booked"
    assert decision.effects == (ResolveEscrow("void"),)


def test_o2_no_answer_in_48_hours_voids_the_hold_once_and_an_answered_order_is_left_alone() -> None:
    order = _awaiting_seller()
    assert domain.answer_deadline_passed(order, T0 + H48 - timedelta(seconds=1)).effects == ()
    decision = domain.answer_deadline_passed(order, T0 + H48)
    assert decision.after.status is OrderStatus.EXPIRED and decision.effects == (ResolveEscrow("void"),)
    assert domain.answer_deadline_passed(decision.after, T0 + H48).effects == (), "acts once"
    accepted = domain.accept(order, T0).after
    assert domain.answer_deadline_passed(accepted, T0 + H48).after == accepted


def test_o3_accepted_ready_complete_and_complete_may_skip_ready() -> None:
    accepted = domain.accept(_awaiting_seller(), T0).after
    ready = domain.mark_ready(accepted).after
    assert ready.status is OrderStatus.READY
    assert domain.complete(ready, T0).after.status is OrderStatus.COMPLETE
    assert domain.complete(accepted, T0).after.status is OrderStatus.COMPLETE
    with pytest.raises(domain.IllegalTransitionError):
        domain.mark_ready(_awaiting_seller())
    with pytest.raises(domain.IllegalTransitionError):
        domain.complete(_awaiting_seller(), T0)


def test_o3_a_declined_order_cannot_be_completed() -> None:
    declined = domain.decline(_awaiting_seller(), "no", T0).after
    for act in (lambda: domain.complete(declined, T0), lambda: domain.accept(declined, T0), lambda: domain.mark_ready(declined)):
        with pytest.raises(domain.IllegalTransitionError):
            act()


def test_o4_complete_asks_for_the_buyers_email_and_starts_the_release_deadline() -> None:
    accepted = domain.accept(_awaiting_seller(), T0).after
    at = T0 + timedelta(hours=5)
    decision = domain.complete(accepted, at)
    assert decision.effects == (RequestCompletionEmail(), ScheduleDeadline(DeadlineKind.RELEASE, at + H48))


def test_o5_dispute_within_48_hours_of_complete_freezes_the_funds() -> None:
    complete = _complete()
    assert complete.release_due_at is not None
    decision = domain.dispute(complete, "nothing ran", complete.release_due_at - timedelta(seconds=1))
    assert decision.after.status is OrderStatus.DISPUTED and decision.effects == ()
    assert domain.release_deadline_passed(decision.after, complete.release_due_at).effects == (), "frozen"
    with pytest.raises(domain.DisputeWindowClosedError):
        domain.dispute(complete, None, complete.release_due_at)
    with pytest.raises(domain.IllegalTransitionError):
        domain.dispute(decision.after, None, complete.release_due_at - timedelta(seconds=1))


def test_o5_without_a_dispute_the_whole_hold_is_posted_to_the_seller_after_48_hours() -> None:
    complete = _complete()
    assert complete.release_due_at is not None
    assert domain.release_deadline_passed(complete, complete.release_due_at - timedelta(seconds=1)).effects == ()
    decision = domain.release_deadline_passed(complete, complete.release_due_at)
    assert decision.after.status is OrderStatus.RELEASED and decision.effects == (ResolveEscrow("post"),)
    assert (decision.after.seller_micros, decision.after.buyer_micros) == (10 * USD, 0)


def test_o5_an_admin_releases_refunds_or_splits_and_a_split_must_add_up() -> None:
    complete = _complete()
    disputed = domain.dispute(complete, None, T0 + timedelta(hours=3)).after
    assert domain.resolve_dispute(disputed, "release").effects == (ResolveEscrow("post"),)
    assert domain.resolve_dispute(disputed, "refund").effects == (ResolveEscrow("void"),)
    split = domain.resolve_dispute(disputed, "split", 6 * USD, 4 * USD)
    assert split.after.status is OrderStatus.SPLIT and split.effects == (ResolveEscrow("post", 6 * USD),)
    for seller, buyer in ((6 * USD, 3 * USD), (10 * USD, 0), (None, 10 * USD), (11 * USD, -USD)):
        with pytest.raises(domain.InvalidSplitError):
            domain.resolve_dispute(disputed, "split", seller, buyer)
    with pytest.raises(domain.IllegalTransitionError):
        domain.resolve_dispute(complete, "release")


def test_o1_a_reorder_copies_the_seller_and_price_of_a_past_order() -> None:
    past = _complete()
    new = domain.reorder(past, order_id="o2", number=1001, buyer_user_id="buyer", now=T0 + timedelta(days=9))
    assert (new.status, new.seller_owner_id, new.price_micros, new.currency, new.reordered_from_order_id) == (
        OrderStatus.AWAITING_FUNDS, past.seller_owner_id, past.price_micros, past.currency, past.id,
    )
