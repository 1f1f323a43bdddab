"""The order escrow's use cases on the core, against fakes of its ports (tests/unit/escrow/fakes.py):
who may place, read and act on an order (W9, tenants fenced), the wallet's answers, the
deadlines (O1-O6, T1), and that a refused use case changes and publishes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from adledger_auth.callers import Caller
from adledger_auth.roles import PermissionDeniedError, Role
from adledger_contracts.notifications import EmailRequested
from adledger_contracts.orders import OrderPlaced, OrderStatusChanged
from adledger_contracts.wallet import HoldPlaced, HoldRejected, HoldResolved, PlaceHold, ResolveHold
from adledger_libs.clock import ManualClock
from adledger_order_escrow.core import DueDeadlines, OrderEscrow
from adledger_order_escrow.domain.orders import InvalidOrderError, Order, OrderStatus
from adledger_order_escrow.domain.parties import (
    Channel,
    ChannelCurrencyError,
    NotAPartyError,
    Owner,
    OwnerConflictError,
    PartyPermissionError,
)
from adledger_order_escrow.ports.channels import ChannelExistsError, UnknownChannelError
from adledger_order_escrow.ports.orders import UnknownOrderError
from adledger_order_escrow.ports.owners import UnknownOwnerError, UnknownUserError

from .fakes import FakeStore

USD = 1_000_000
T0 = datetime(2026, 12, 3, 9, tzinfo=UTC)
H48 = timedelta(hours=48)
COMMANDS, ORDERS = "test.wallet.commands", "test.orders.events"
BUYER_BC, SELLER_BC, OTHER_BC, BUYER_ACCOUNT = "bc-buyer", "bc-seller", "bc-other", "acc-buyer"


class World:
    """The core on fakes, with a marketplace: a buyer's and a seller's Business Center, an ad
    account of the buyer's, a channel, and people with roles."""

    def __init__(self) -> None:
        self.clock = ManualClock(T0)
        self.store = FakeStore()
        self.escrow = OrderEscrow(self.clock, commands_topic=COMMANDS, orders_topic=ORDERS)
        self.deadlines = DueDeadlines(self.store.unit, self.escrow)
        state = self.store.state
        for owner in (
            Owner(BUYER_BC, "business_center", BUYER_BC, "USD"),
            Owner(SELLER_BC, "business_center", SELLER_BC, "USD"),
            Owner(OTHER_BC, "business_center", OTHER_BC, "USD"),
            Owner(BUYER_ACCOUNT, "ad_account", BUYER_BC, "USD"),
            Owner("bc-euro", "business_center", "bc-euro", "EUR"),
        ):
            state.owners[owner.owner_id] = owner
        self.buyer = self.store.person("bea", "Bea Buyer")
        self.seller = self.store.person("sam", "Sam Seller")
        self.stranger = self.store.person("otto")
        self.store.person("platform", "Platform operator")
        self.store.grant(BUYER_BC, self.buyer, Role.ADMIN)
        self.store.grant(OTHER_BC, self.stranger, Role.ADMIN)
        state.channels["gaming"] = Channel("gaming", "Gaming Weekly", self.seller, SELLER_BC, "USD")

    @property
    def operator(self) -> Caller:
        return self.store.caller("platform", platform_operator=True)

    def caller(
        self, user_id: str, *, platform_operator: bool = False, scopes: frozenset[str] = frozenset({"*"})
    ) -> Caller:
        return self.store.caller(user_id, platform_operator=platform_operator, scopes=scopes)

    async def place(self, price_micros: int = 4 * USD, *, owner: str = BUYER_BC, user: str = "") -> Order:
        async with self.store.unit() as uow:
            return await self.escrow.place_order(
                uow, self.caller(user or self.buyer), "gaming", owner, price_micros, "USD"
            )

    async def held(self, order: Order) -> Order:
        """The wallet's HoldPlaced for the order, as it arrives on wallet.events.v1."""
        async with self.store.unit() as uow:
            await self.escrow.hold_placed(
                uow,
                HoldPlaced(
                    hold_id=order.id,
                    owner_id=order.buyer_owner_id,
                    requested_micros=order.price_micros,
                    held_micros=order.price_micros,
                    currency="USD",
                    requested_by="order_escrow",
                    placed_at=self.clock.now(),
                ),
            )
        return self.store.state.orders[order.id]

    async def act(self, use_case: str, user: str, order_id: str, *arguments: object, operator: bool = False) -> Any:
        caller = self.caller(user, platform_operator=operator)
        async with self.store.unit() as uow:
            return await getattr(self.escrow, use_case)(uow, caller, order_id, *arguments)

    def nothing_more_published(self, before: int) -> bool:
        return len(self.store.published) == before


@pytest.fixture
def world() -> World:
    return World()


async def test_o1_w9_an_admin_of_the_buyer_business_center_places_an_order_and_the_price_is_held(world: World) -> None:
    order = await world.place(4 * USD)
    assert (order.status, order.buyer_user_id, order.buyer_owner_id, order.seller_owner_id) == (
        OrderStatus.AWAITING_FUNDS,
        world.buyer,
        BUYER_BC,
        SELLER_BC,
    )
    [hold] = world.store.messages(PlaceHold, topic=COMMANDS)
    assert (hold.hold_id, hold.owner_id, hold.payee_owner_id, hold.amount_micros, hold.requested_by) == (
        order.id,
        BUYER_BC,
        SELLER_BC,
        4 * USD,
        "order_escrow",
    )
    assert hold.idempotency_key == f"order:{order.id}:hold", "M5: a repeat holds once"
    [placed] = world.store.messages(OrderPlaced, topic=ORDERS)
    assert (placed.order_id, placed.buyer_user_id) == (order.id, world.buyer)
    assert world.store.state.orders[order.id] == order


async def test_w9_an_analyst_or_operator_of_the_business_center_may_not_place_an_order(world: World) -> None:
    for role in (Role.ANALYST, Role.OPERATOR):
        user = world.store.person(f"user-{role}")
        world.store.grant(BUYER_BC, user, role)
        with pytest.raises(PermissionDeniedError) as refused:
            await world.place(user=user)
        assert "place_order" in str(refused.value)
    assert world.store.published == [] and world.store.state.orders == {}, "a refusal changes and publishes nothing"


async def test_w9_a_finance_manager_places_an_order_once_finance_roles_are_set_up(world: World) -> None:
    finance = world.store.person("fiona")
    world.store.grant(BUYER_BC, finance, Role.FINANCE_MANAGER)
    order = await world.place(user=finance)
    assert order.buyer_user_id == finance


async def test_w9_roles_in_the_business_center_decide_for_its_ad_accounts_too(world: World) -> None:
    order = await world.place(owner=BUYER_ACCOUNT)
    assert order.buyer_owner_id == BUYER_ACCOUNT
    analyst = world.store.person("ana")
    world.store.grant(BUYER_BC, analyst, Role.ANALYST)
    with pytest.raises(PermissionDeniedError):
        await world.place(owner=BUYER_ACCOUNT, user=analyst)


async def test_w9_a_user_of_another_business_center_is_told_the_owner_does_not_exist(world: World) -> None:
    with pytest.raises(UnknownOwnerError) as fenced:
        await world.place(user=world.stranger)
    with pytest.raises(UnknownOwnerError) as unknown:
        await world.place(owner="bc-nowhere", user=world.stranger)
    assert str(fenced.value) == str(UnknownOwnerError(BUYER_BC)), "the same answer as an owner that does not exist"
    assert str(unknown.value) == str(UnknownOwnerError("bc-nowhere"))
    with pytest.raises(UnknownOwnerError):
        await world.place(owner=BUYER_ACCOUNT, user=world.stranger)
    assert world.store.published == []


async def test_o1_m2_an_unknown_channel_or_another_currency_than_the_owners_is_refused(world: World) -> None:
    async with world.store.unit() as uow:
        with pytest.raises(UnknownChannelError):
            await world.escrow.place_order(uow, world.caller(world.buyer), "nowhere", BUYER_BC, USD, "USD")
    world.store.grant("bc-euro", world.buyer, Role.ADMIN)
    with pytest.raises(InvalidOrderError, match="EUR"):
        await world.place(owner="bc-euro")
    assert world.store.published == []


async def test_an_api_key_without_the_orders_scope_does_nothing_with_orders(world: World) -> None:
    async with world.store.unit() as uow:
        with pytest.raises(PermissionDeniedError, match="orders"):
            await world.escrow.place_order(
                uow, world.caller(world.buyer, scopes=frozenset({"sends"})), "gaming", BUYER_BC, USD, "USD"
            )
    order = await world.place()
    with pytest.raises(PermissionDeniedError, match="orders"):
        async with world.store.unit() as uow:
            await world.escrow.read_order(uow, world.caller(world.buyer, scopes=frozenset({"sends"})), order.id)
    keyed = world.caller(world.buyer, scopes=frozenset({"orders"}))
    async with world.store.unit() as uow:
        assert (await world.escrow.read_order(uow, keyed, order.id))[0] == order


async def test_an_order_is_read_by_its_buyer_its_seller_and_operators_and_anyone_else_is_told_it_does_not_exist(
    world: World,
) -> None:
    order = await world.place()
    for caller in (world.caller(world.buyer), world.caller(world.seller), world.operator):
        async with world.store.unit() as uow:
            assert (await world.escrow.read_order(uow, caller, order.id))[0] == order
    # Another admin of the buyer's own Business Center is not the buyer: the buyer is who placed it.
    colleague = world.store.person("carla")
    world.store.grant(BUYER_BC, colleague, Role.ADMIN)
    for user in (world.stranger, colleague):
        async with world.store.unit() as uow:
            with pytest.raises(NotAPartyError) as hidden:
                await world.escrow.read_order(uow, world.caller(user), order.id)
        assert str(hidden.value) == str(UnknownOrderError(order.id)), "the same answer as an order that does not exist"
    async with world.store.unit() as uow:
        with pytest.raises(UnknownOrderError):
            await world.escrow.read_order(uow, world.caller(world.stranger), "no-such-order")


async def test_o2_o5_each_party_acts_only_as_itself_and_a_stranger_is_told_there_is_no_order(
    world: World,
) -> None:
    order = await world.held(await world.place())
    before = len(world.store.published)
    with pytest.raises(NotAPartyError):
        await world.act("accept", world.stranger, order.id)
    with pytest.raises(PartyPermissionError, match="seller"):
        await world.act("accept", world.buyer, order.id)
    with pytest.raises(PartyPermissionError, match="admin"):
        await world.act("resolve_dispute", world.seller, order.id, "release", None, None)
    with pytest.raises(PartyPermissionError, match="buyer"):
        await world.act("dispute", world.seller, order.id, "no")
    with pytest.raises(PartyPermissionError, match="buyer"):
        await world.act("reorder", world.seller, order.id)
    assert world.nothing_more_published(before) and world.store.state.orders[order.id] == order


async def test_o1_to_o6_on_the_core_accept_ready_complete_email_and_release_after_48_hours(
    world: World,
) -> None:
    order = await world.held(await world.place(4 * USD))
    assert (order.status, order.answer_due_at) == (OrderStatus.AWAITING_SELLER, T0 + H48)
    await world.act("accept", world.seller, order.id)
    await world.act("mark_ready", world.seller, order.id)
    world.clock.advance(timedelta(hours=2))
    completed = await world.act("complete", world.seller, order.id)
    assert completed.status is OrderStatus.COMPLETE
    [email] = world.store.messages(EmailRequested, topic=ORDERS)
    assert (email.recipient_user_id, email.fields) == (
        world.buyer,
        {"user_name": "Bea Buyer", "channel_name": "Gaming Weekly", "order_number": str(order.number)},
    ), "O4: the buyer's name as the platform's identity knows it"

    world.clock.advance(H48 - timedelta(seconds=1))
    assert await world.deadlines.run() == 0, "not due yet (T1: the clock decides, nothing sleeps)"
    world.clock.advance(timedelta(seconds=1))
    assert await world.deadlines.run() == 1
    assert await world.deadlines.run() == 0, "O6: acted once"
    released = world.store.state.orders[order.id]
    assert (released.status, released.seller_micros, released.buyer_micros) == (OrderStatus.RELEASED, 4 * USD, 0)
    [resolve] = world.store.messages(ResolveHold, topic=COMMANDS)
    assert (resolve.hold_id, resolve.action, resolve.amount_micros) == (order.id, "post", None)
    statuses = [event.status for event in world.store.messages(OrderStatusChanged)]
    assert statuses == ["awaiting_seller", "accepted", "ready", "complete", "released"]

    async with world.store.unit() as uow:
        await world.escrow.hold_resolved(
            uow,
            HoldResolved(
                hold_id=order.id,
                action="post",
                posted_micros=4 * USD,
                requested_by="order_escrow",
                resolved_at=world.clock.now(),
            ),
        )
        _, settlement = await world.escrow.read_order(uow, world.caller(world.seller), order.id)
    assert settlement.posted_micros == 4 * USD


async def test_o5_a_dispute_freezes_the_funds_and_an_operator_splits_them(world: World) -> None:
    order = await world.held(await world.place(10 * USD))
    await world.act("accept", world.seller, order.id)
    await world.act("complete", world.seller, order.id)
    world.clock.advance(H48 - timedelta(minutes=1))
    assert (await world.act("dispute", world.buyer, order.id, "half never ran")).status is OrderStatus.DISPUTED
    world.clock.advance(timedelta(hours=1))
    assert await world.deadlines.run() == 0, "the release deadline is only marked done"
    split = await world.act("resolve_dispute", "platform", order.id, "split", 6 * USD, 4 * USD, operator=True)
    assert (split.status, split.seller_micros, split.buyer_micros) == (OrderStatus.SPLIT, 6 * USD, 4 * USD)
    [resolve] = world.store.messages(ResolveHold)
    assert (resolve.action, resolve.amount_micros) == ("post", 6 * USD)
    assert world.store.messages(OrderStatusChanged)[-1].changed_by == "admin", "the operator, as the contract names it"


async def test_o2_no_answer_in_48_hours_voids_the_hold(world: World) -> None:
    order = await world.held(await world.place())
    world.clock.advance(H48)
    assert await world.deadlines.run() == 1
    assert world.store.state.orders[order.id].status is OrderStatus.EXPIRED
    assert [m.action for m in world.store.messages(ResolveHold)] == ["void"]


async def test_o1_an_insufficient_funds_answer_ends_the_order_and_a_late_hold_is_voided(world: World) -> None:
    order = await world.place(11 * USD)
    async with world.store.unit() as uow:
        await world.escrow.hold_rejected(
            uow,
            HoldRejected(
                hold_id=order.id,
                error="insufficient_funds",
                reason="short",
                requested_by="order_escrow",
            ),
        )
    assert world.store.state.orders[order.id].status is OrderStatus.REJECTED_INSUFFICIENT_FUNDS
    await world.held(order)
    assert [m.action for m in world.store.messages(ResolveHold)] == ["void"]


async def test_answers_to_other_services_or_unknown_holds_are_skipped(world: World) -> None:
    order = await world.place()
    async with world.store.unit() as uow:
        for hold_id, requested_by in ((order.id, "campaign"), ("another-environments-order", "order_escrow")):
            await world.escrow.hold_placed(
                uow,
                HoldPlaced(
                    hold_id=hold_id,
                    owner_id=BUYER_BC,
                    requested_micros=USD,
                    held_micros=USD,
                    currency="USD",
                    requested_by=requested_by,
                    placed_at=world.clock.now(),
                ),
            )
    assert world.store.state.orders[order.id].status is OrderStatus.AWAITING_FUNDS


async def test_w9_a_reorder_is_its_buyers_and_needs_place_order_still(world: World) -> None:
    first = await world.place(USD)
    again = await world.act("reorder", world.buyer, first.id)
    assert (again.reordered_from_order_id, again.buyer_user_id, again.price_micros) == (first.id, world.buyer, USD)
    world.store.revoke(BUYER_BC, world.buyer)
    with pytest.raises(UnknownOwnerError):
        await world.act("reorder", world.buyer, first.id)
    async with world.store.unit() as uow:
        read, _ = await world.escrow.read_order(uow, world.caller(world.buyer), first.id)
    assert read == first, "the buyer of an existing order stays the user who placed it"


async def test_owners_are_learnt_once_and_an_owner_id_seen_again_with_other_values_is_refused(world: World) -> None:
    new = Owner("bc-new", "business_center", "bc-new", "USD")
    for _ in range(2):
        async with world.store.unit() as uow:
            await world.escrow.owner_opened(uow, new, T0)
    assert world.store.state.owners["bc-new"] == new, "a replay is nothing new"
    hijack = Owner(BUYER_BC, "ad_account", OTHER_BC, "USD")
    with pytest.raises(OwnerConflictError, match=BUYER_BC):
        async with world.store.unit() as uow:
            await world.escrow.owner_opened(uow, hijack, T0)
    assert world.store.state.owners[BUYER_BC].business_center_id == BUYER_BC, "an owner never moves to another tenant"


async def test_only_a_platform_operator_registers_a_channel_for_a_known_seller_and_payee(world: World) -> None:
    async def register(channel: Channel, *, operator: bool = True) -> Channel:
        caller = world.operator if operator else world.caller(world.buyer)
        async with world.store.unit() as uow:
            return await world.escrow.register_channel(uow, caller, channel)

    channel = Channel("news", "News Daily", world.seller, SELLER_BC, "USD")
    with pytest.raises(PermissionDeniedError):
        await register(channel, operator=False)
    with pytest.raises(UnknownUserError):
        await register(Channel("news", "News Daily", "nobody", SELLER_BC, "USD"))
    world.store.person("gone", disabled=True)
    with pytest.raises(UnknownUserError):
        await register(Channel("news", "News Daily", "gone", SELLER_BC, "USD"))
    with pytest.raises(UnknownOwnerError):
        await register(Channel("news", "News Daily", world.seller, "bc-nowhere", "USD"))
    with pytest.raises(ChannelCurrencyError):
        await register(Channel("news", "News Daily", world.seller, SELLER_BC, "EUR"))
    assert await register(channel) == channel
    with pytest.raises(ChannelExistsError):
        await register(channel)
    assert world.store.state.channels["news"] == channel
