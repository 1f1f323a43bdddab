"""The order-escrow HTTP API: typed requests and answers, the caller's role from the bearer
token (buyer, seller, admin), one idempotency key per command (M5), a typed 4xx per rejection.

Auth, kept simple: a bearer token maps to a user (only its SHA-256 is stored). The platform
operator's token (`ADLEDGER_PLATFORM_TOKEN`) is an admin; admins create users (with the owners
they may buy for) and register channels (with their seller user and payee owner), and resolve
disputes. A user is an order's buyer when they placed it, its seller when they answer for its
channel."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from adledger_libs.api import AuthenticatedApi, Call, Endpoint, UnauthenticatedError
from adledger_libs.http import (
    AlreadyExists,
    ApiError,
    InvalidValue,
    NotFound,
    PermissionDenied,
    RejectionTable,
    rejection_handler,
)
from adledger_libs.money import CurrencyCode, PositiveMicros
from adledger_libs.outbox import OutboxRelay, UnitOfWork
from adledger_order_escrow.adapters import postgres as store
from adledger_order_escrow.core import AlreadyExistsError, Caller, OrderEscrow, PermissionDeniedError
from adledger_order_escrow.domain import orders as domain
from adledger_order_escrow.domain.orders import Order

# Requests and answers ----------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CreateUser(_Model):
    """A new user of the API (admins only)."""

    id: str = Field(min_length=1, max_length=128, description="The user's id.")
    name: str = Field(min_length=1, max_length=200, description="A name for people (the e-mail's USER_NAME).")
    buyer_owner_ids: list[str] = Field(default_factory=list, description="The Business Centers or ad accounts the user may buy for.")
    admin: bool = Field(default=False, description="An admin resolves disputes and registers users and channels.")


class UserCreated(_Model):
    id: str = Field(description="The user's id.")
    token: str = Field(description="The bearer token; shown once, only its hash is kept.")


class RegisterChannel(_Model):
    """A seller: a channel that takes orders (admins only)."""

    id: str = Field(min_length=1, max_length=128, description="The channel's id.")
    name: str = Field(min_length=1, max_length=200, description="A name for people (the e-mail's CHANNEL_NAME).")
    seller_user_id: str = Field(min_length=1, max_length=128, description="The user who accepts, declines and completes its orders.")
    owner_id: str = Field(min_length=1, max_length=128, description="The Business Center or ad account the seller is paid to.")
    currency: CurrencyCode


class ChannelAnswer(_Model):
    id: str
    name: str
    seller_user_id: str
    owner_id: str
    currency: str


class PlaceOrder(_Model):
    """O1: order from a channel; the price is held in escrow from the buyer owner's cash."""

    channel_id: str = Field(min_length=1, max_length=128, description="The seller's channel.")
    buyer_owner_id: str = Field(min_length=1, max_length=128, description="The Business Center or ad account that pays.")
    price_micros: PositiveMicros
    currency: CurrencyCode


class Decline(_Model):
    reason: str = Field(min_length=1, max_length=domain.DECLINE_REASON_MAX_CHARS, description="Why, in short (O2).")


class Dispute(_Model):
    reason: str | None = Field(default=None, max_length=2000, description="What the seller did not deliver (O5).")


class ResolveDispute(_Model):
    """O5: an admin ends a dispute."""

    outcome: Literal["release", "refund", "split"] = Field(description="All to the seller, all back to the buyer, or a split.")
    seller_micros: int | None = Field(default=None, description="For a split: the seller's part, positive.")
    buyer_micros: int | None = Field(default=None, description="For a split: the buyer's part, positive; the parts add up to the price.")


class OrderAnswer(_Model):
    id: str = Field(description="The order; also its hold's id in the wallet.")
    number: int = Field(description="The order number for people.")
    status: str = Field(description="awaiting_funds, awaiting_seller, accepted, ready, complete, disputed, released, ...")
    buyer_user_id: str
    buyer_owner_id: str
    channel_id: str
    seller_owner_id: str
    price_micros: int
    currency: str
    placed_at: datetime
    answer_due_at: datetime | None = Field(description="The end of the seller's 48 hours (O2).")
    completed_at: datetime | None
    release_due_at: datetime | None = Field(description="The end of the buyer's 48 hours to dispute (O5).")
    decline_reason: str | None
    dispute_reason: str | None
    seller_micros: int | None = Field(description="Once decided: what goes to the seller.")
    buyer_micros: int | None = Field(description="Once decided: what goes back to the buyer.")
    reordered_from_order_id: str | None
    settled_at: datetime | None = Field(default=None, description="When the wallet confirmed the post or void of the hold.")
    settled_posted_micros: int | None = Field(default=None, description="What the wallet posted to the seller.")
    hold_error: str | None = Field(default=None, description="The wallet's refusal of a resolution, for an operator.")


# Typed errors ---------------------------------------------------------------------------------------


class IllegalTransition(ApiError):
    status_code, code = 409, "illegal_transition"


class AnswerWindowClosed(ApiError):
    status_code, code = 409, "answer_window_closed"


class DisputeWindowClosed(ApiError):
    status_code, code = 409, "dispute_window_closed"


class InvalidSplit(ApiError):
    status_code, code = 422, "invalid_split"


#: The core's rejections and their answers; the first matching row wins.
REJECTION_TABLE: RejectionTable = [
    ((PermissionDeniedError,), PermissionDenied),
    ((store.UnknownOrderError, store.UnknownChannelError, store.UnknownUserError), NotFound),
    ((AlreadyExistsError,), AlreadyExists),
    ((domain.IllegalTransitionError,), IllegalTransition),
    ((domain.AnswerWindowClosedError,), AnswerWindowClosed),
    ((domain.DisputeWindowClosedError,), DisputeWindowClosed),
    ((domain.InvalidSplitError,), InvalidSplit),
    ((domain.InvalidDeclineReasonError, domain.InvalidOrderError), InvalidValue),
]
answer_rejection = rejection_handler(REJECTION_TABLE)


REJECTIONS: tuple[type[Exception], ...] = (domain.OrderError, PermissionDeniedError, AlreadyExistsError, LookupError)


# Endpoints --------------------------------------------------------------------------------------------


class OrderEscrowApi(AuthenticatedApi[Caller]):
    def __init__(self, pool: Callable[[], asyncpg.Pool], relay: Callable[[], OutboxRelay], escrow: OrderEscrow) -> None:
        super().__init__(pool, relay, service="order_escrow")
        self._escrow = escrow

    async def caller(self, uow: UnitOfWork, call: Call) -> Caller:
        found = await store.user_by_token(uow.conn, call.bearer_token or "")
        if found is None:
            raise UnauthenticatedError("the bearer token is not known")
        return Caller(found)

    def endpoints(self) -> list[Endpoint]:
        escrow = self._escrow

        async def create_user(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: CreateUser = call.body
            token = await escrow.create_user(uow, caller, body.id, body.name, list(body.buyer_owner_ids), body.admin)
            return 201, UserCreated(id=body.id, token=token)

        async def register_channel(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: RegisterChannel = call.body
            channel = await escrow.register_channel(
                uow, caller, store.Channel(body.id, body.name, body.seller_user_id, body.owner_id, body.currency)
            )
            return 201, ChannelAnswer(id=channel.id, name=channel.name, seller_user_id=channel.seller_user_id, owner_id=channel.owner_id, currency=channel.currency)

        async def place_order(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: PlaceOrder = call.body
            order = await escrow.place_order(uow, caller, body.channel_id, body.buyer_owner_id, body.price_micros, body.currency)
            return 201, _order_answer(order)

        async def reorder(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            return 201, _order_answer(await escrow.reorder(uow, caller, call.path["order_id"]))

        async def accept(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            return 200, _order_answer(await escrow.accept(uow, caller, call.path["order_id"]))

        async def decline(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            return 200, _order_answer(await escrow.decline(uow, caller, call.path["order_id"], call.body.reason))

        async def ready(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            return 200, _order_answer(await escrow.mark_ready(uow, caller, call.path["order_id"]))

        async def complete(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            return 200, _order_answer(await escrow.complete(uow, caller, call.path["order_id"]))

        async def dispute(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            return 200, _order_answer(await escrow.dispute(uow, caller, call.path["order_id"], call.body.reason))

        async def resolve(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: ResolveDispute = call.body
            order = await escrow.resolve_dispute(uow, caller, call.path["order_id"], body.outcome, body.seller_micros, body.buyer_micros)
            return 200, _order_answer(order)

        async def read_order(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, Any]:
            order, settlement = await escrow.read_order(uow, caller, call.path["order_id"])
            return 200, _order_answer(order, settlement)

        forbidden = (PermissionDenied, NotFound)
        transition = (*forbidden, IllegalTransition)
        order_path = "/v1/orders/{order_id}"
        return [
            Endpoint("POST", "/v1/users", "Create a user and get their bearer token (admins)", self.command("POST", "/v1/users", create_user), UserCreated, CreateUser, 201, (PermissionDenied, AlreadyExists), tags=("users",)),
            Endpoint("POST", "/v1/channels", "Register a seller's channel (admins)", self.command("POST", "/v1/channels", register_channel), ChannelAnswer, RegisterChannel, 201, (*forbidden, AlreadyExists), tags=("channels",)),
            Endpoint("POST", "/v1/orders", "Place an order; its price is held in escrow (buyer; O1)", self.command("POST", "/v1/orders", place_order), OrderAnswer, PlaceOrder, 201, (*forbidden, InvalidValue), tags=("orders",)),
            Endpoint("GET", order_path, "Read an order (its buyer, its seller, admins)", self.query(read_order), OrderAnswer, errors=forbidden, tags=("orders",)),
            Endpoint("POST", order_path + "/reorder", "Place a new order copying a past one: same seller and price (buyer)", self.command("POST", order_path + "/reorder", reorder), OrderAnswer, None, 201, (*forbidden, InvalidValue), tags=("orders",)),
            Endpoint("POST", order_path + "/accept", "Accept within 48 hours (seller; O2)", self.command("POST", order_path + "/accept", accept), OrderAnswer, None, errors=(*transition, AnswerWindowClosed), tags=("orders",)),
            Endpoint("POST", order_path + "/decline", "Decline within 48 hours with a short reason; the hold goes back (seller; O2)", self.command("POST", order_path + "/decline", decline), OrderAnswer, Decline, errors=(*transition, AnswerWindowClosed, InvalidValue), tags=("orders",)),
            Endpoint("POST", order_path + "/ready", "Creatives approved (seller; O3)", self.command("POST", order_path + "/ready", ready), OrderAnswer, None, errors=transition, tags=("orders",)),
            Endpoint("POST", order_path + "/complete", "Complete: the buyer is e-mailed, 48 hours to dispute start (seller; O3-O5)", self.command("POST", order_path + "/complete", complete), OrderAnswer, None, errors=transition, tags=("orders",)),
            Endpoint("POST", order_path + "/dispute", "Dispute within 48 hours of Complete; the funds stay frozen (buyer; O5)", self.command("POST", order_path + "/dispute", dispute), OrderAnswer, Dispute, errors=(*transition, DisputeWindowClosed), tags=("orders",)),
            Endpoint("POST", order_path + "/resolution", "Resolve a dispute: release, refund or split (admins; O5)", self.command("POST", order_path + "/resolution", resolve), OrderAnswer, ResolveDispute, errors=(*transition, InvalidSplit), tags=("orders",)),
        ]


def _order_answer(order: Order, settlement: store.Settlement | None = None) -> OrderAnswer:
    return OrderAnswer(
        id=order.id, number=order.number, status=order.status.value, buyer_user_id=order.buyer_user_id,
        buyer_owner_id=order.buyer_owner_id, channel_id=order.channel_id, seller_owner_id=order.seller_owner_id,
        price_micros=order.price_micros, currency=order.currency, placed_at=order.placed_at,
        answer_due_at=order.answer_due_at, completed_at=order.completed_at, release_due_at=order.release_due_at,
        decline_reason=order.decline_reason, dispute_reason=order.dispute_reason, seller_micros=order.seller_micros,
        buyer_micros=order.buyer_micros, reordered_from_order_id=order.reordered_from_order_id,
        settled_at=settlement.settled_at if settlement else None,
        settled_posted_micros=settlement.posted_micros if settlement else None,
        hold_error=settlement.hold_error if settlement else None,
    )
