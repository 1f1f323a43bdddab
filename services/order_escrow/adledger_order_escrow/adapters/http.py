"""The order escrow's HTTP API (FastAPI): typed requests and answers, the caller from the bearer
token of the platform's one identity, one idempotency key per command (M5), and a typed 4xx for
every refusal of the core. No business rule lives here: who may do what is the core's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal

from adledger_auth.http import CurrentCaller
from adledger_auth.roles import PermissionDeniedError
from adledger_contracts.types import Name, ResourceId, Text
from adledger_libs import outbox
from adledger_libs.money import CurrencyCode, PositiveMicros
from adledger_libs.web import (
    AUTHENTICATED_ERRORS,
    COMMAND_ERRORS,
    AlreadyExists,
    ApiError,
    Commands,
    IdempotencyKeyHeader,
    InvalidValue,
    NotFound,
    PermissionDenied,
    RejectionTable,
    responses,
)
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from adledger_order_escrow.domain import orders as domain
from adledger_order_escrow.domain.orders import Order
from adledger_order_escrow.domain.parties import Channel, ChannelCurrencyError, NotAPartyError
from adledger_order_escrow.ports.channels import ChannelExistsError, UnknownChannelError
from adledger_order_escrow.ports.inbound import OrderEscrowPort
from adledger_order_escrow.ports.orders import Settlement, UnknownOrderError
from adledger_order_escrow.ports.owners import UnknownOwnerError, UnknownUserError
from adledger_order_escrow.ports.unit_of_work import UnitOfWork

# Requests and answers ----------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegisterChannel(_Model):
    """A seller: a channel that takes orders (platform operators)."""

    id: ResourceId = Field(description="The channel's id.")
    name: Name = Field(description="A name for people (the e-mail's CHANNEL_NAME).")
    seller_user_id: ResourceId = Field(description="The platform user who accepts, declines and completes its orders.")
    owner_id: ResourceId = Field(description="The Business Center or ad account the seller is paid to.")
    currency: CurrencyCode = Field(description="What the channel sells in: its payee owner's currency (M2).")


class ChannelAnswer(_Model):
    id: str
    name: str
    seller_user_id: str
    owner_id: str
    currency: str


class PlaceOrder(_Model):
    """O1: order from a channel; the price is held in escrow from the buyer owner's money."""

    channel_id: ResourceId = Field(description="The seller's channel.")
    buyer_owner_id: ResourceId = Field(
        description="The Business Center or ad account that pays; the caller holds `place_order` in its "
        "Business Center (Admin or Finance Manager; only Admin without finance roles, W9)."
    )
    price_micros: PositiveMicros
    currency: CurrencyCode


class Decline(_Model):
    reason: Name = Field(description="Why, in short (O2).")


class Dispute(_Model):
    reason: Text | None = Field(default=None, description="What the seller did not deliver (O5).")


class ResolveDispute(_Model):
    """O5: a platform operator ends a dispute."""

    outcome: Literal["release", "refund", "split"] = Field(
        description="All to the seller, all back to the buyer, or a split."
    )
    seller_micros: PositiveMicros | None = Field(default=None, description="For a split: the seller's part.")
    buyer_micros: PositiveMicros | None = Field(
        default=None, description="For a split: the buyer's part; the two parts add up to the price."
    )


class OrderAnswer(_Model):
    id: str = Field(description="The order; also its hold's id in the wallet.")
    number: int = Field(description="The order number for people.")
    status: str = Field(
        description="awaiting_funds, awaiting_seller, accepted, ready, complete, disputed, released, ..."
    )
    buyer_user_id: str = Field(description="The user who placed the order: its buyer for good.")
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
    settled_at: datetime | None = Field(
        default=None, description="When the wallet confirmed the post or void of the hold."
    )
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


#: The core's refusals and their answers; the first matching row wins. Someone who is none of an
#: order's parties gets exactly the answer of an order that does not exist (`NotAPartyError`).
REJECTIONS: RejectionTable = [
    ((UnknownOrderError, NotAPartyError, UnknownChannelError, UnknownOwnerError, UnknownUserError), NotFound),
    ((PermissionDeniedError,), PermissionDenied),
    ((ChannelExistsError,), AlreadyExists),
    ((domain.IllegalTransitionError,), IllegalTransition),
    ((domain.AnswerWindowClosedError,), AnswerWindowClosed),
    ((domain.DisputeWindowClosedError,), DisputeWindowClosed),
    ((domain.InvalidSplitError,), InvalidSplit),
    ((domain.InvalidDeclineReasonError, domain.InvalidOrderError, ChannelCurrencyError), InvalidValue),
]

#: Every route needs a bearer token.
PUBLIC_PATHS: tuple[str, ...] = ()


# Routes ---------------------------------------------------------------------------------------------


def router(
    escrow: OrderEscrowPort, commands: Commands, unit_of: Callable[[outbox.UnitOfWork], UnitOfWork]
) -> APIRouter:
    api = APIRouter()
    order_path = "/v1/orders/{order_id}"
    command_errors = (*AUTHENTICATED_ERRORS, *COMMAND_ERRORS, PermissionDenied, NotFound)
    transition_errors = (*command_errors, IllegalTransition)

    async def answer(
        request: Request,
        caller_id: str,
        key: str,
        body: BaseModel | None,
        status: int,
        act: Callable[[UnitOfWork], Awaitable[Order]],
    ) -> JSONResponse:
        """Run one command of an order through `commands.run` and answer the order it leaves."""

        async def apply(uow: outbox.UnitOfWork) -> tuple[int, BaseModel]:
            return status, _order_answer(await act(unit_of(uow)))

        return await commands.run(request, caller_id=caller_id, key=key, body=body, apply=apply)

    @api.post(
        "/v1/channels",
        status_code=201,
        response_model=ChannelAnswer,
        tags=["channels"],
        summary="Register a seller's channel (platform operators)",
        responses=responses(*command_errors, AlreadyExists, InvalidValue),
    )
    async def register_channel(
        body: RegisterChannel, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request
    ) -> JSONResponse:
        async def apply(uow: outbox.UnitOfWork) -> tuple[int, BaseModel]:
            channel = Channel(body.id, body.name, body.seller_user_id, body.owner_id, body.currency)
            registered = await escrow.register_channel(unit_of(uow), caller, channel)
            return 201, ChannelAnswer(
                id=registered.id,
                name=registered.name,
                seller_user_id=registered.seller_user_id,
                owner_id=registered.owner_id,
                currency=registered.currency,
            )

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.post(
        "/v1/orders",
        status_code=201,
        response_model=OrderAnswer,
        tags=["orders"],
        summary="Place an order; its price is held in escrow (`place_order` in the owner's Business Center; O1, W9)",
        responses=responses(*command_errors, InvalidValue),
    )
    async def place_order(
        body: PlaceOrder, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request
    ) -> JSONResponse:
        return await answer(
            request,
            caller.user_id,
            key,
            body,
            201,
            lambda uow: escrow.place_order(
                uow, caller, body.channel_id, body.buyer_owner_id, body.price_micros, body.currency
            ),
        )

    @api.get(
        order_path,
        response_model=OrderAnswer,
        tags=["orders"],
        summary="Read an order (its buyer, its seller, platform operators)",
        responses=responses(*AUTHENTICATED_ERRORS, PermissionDenied, NotFound),
    )
    async def read_order(order_id: ResourceId, caller: CurrentCaller) -> OrderAnswer:
        order, settlement = await commands.read(lambda uow: escrow.read_order(unit_of(uow), caller, order_id))
        return _order_answer(order, settlement)

    @api.post(
        order_path + "/reorder",
        status_code=201,
        response_model=OrderAnswer,
        tags=["orders"],
        summary="Place a new order copying a past one: same owner, seller and price (its buyer)",
        responses=responses(*command_errors, InvalidValue),
    )
    async def reorder(
        order_id: ResourceId, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request
    ) -> JSONResponse:
        return await answer(request, caller.user_id, key, None, 201, lambda uow: escrow.reorder(uow, caller, order_id))

    @api.post(
        order_path + "/accept",
        response_model=OrderAnswer,
        tags=["orders"],
        summary="Accept within 48 hours (its seller; O2)",
        responses=responses(*transition_errors, AnswerWindowClosed),
    )
    async def accept(
        order_id: ResourceId, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request
    ) -> JSONResponse:
        return await answer(request, caller.user_id, key, None, 200, lambda uow: escrow.accept(uow, caller, order_id))

    @api.post(
        order_path + "/decline",
        response_model=OrderAnswer,
        tags=["orders"],
        summary="Decline within 48 hours with a short reason; the hold goes back (its seller; O2)",
        responses=responses(*transition_errors, AnswerWindowClosed, InvalidValue),
    )
    async def decline(
        order_id: ResourceId, body: Decline, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request
    ) -> JSONResponse:
        return await answer(
            request, caller.user_id, key, body, 200, lambda uow: escrow.decline(uow, caller, order_id, body.reason)
        )

    @api.post(
        order_path + "/ready",
        response_model=OrderAnswer,
        tags=["orders"],
        summary="Creatives approved (its seller; O3)",
        responses=responses(*transition_errors),
    )
    async def ready(
        order_id: ResourceId, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request
    ) -> JSONResponse:
        return await answer(
            request, caller.user_id, key, None, 200, lambda uow: escrow.mark_ready(uow, caller, order_id)
        )

    @api.post(
        order_path + "/complete",
        response_model=OrderAnswer,
        tags=["orders"],
        summary="Complete: the buyer is e-mailed, 48 hours to dispute start (its seller; O3-O5)",
        responses=responses(*transition_errors),
    )
    async def complete(
        order_id: ResourceId, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request
    ) -> JSONResponse:
        return await answer(request, caller.user_id, key, None, 200, lambda uow: escrow.complete(uow, caller, order_id))

    @api.post(
        order_path + "/dispute",
        response_model=OrderAnswer,
        tags=["orders"],
        summary="Dispute within 48 hours of Complete; the funds stay frozen (its buyer; O5)",
        responses=responses(*transition_errors, DisputeWindowClosed),
    )
    async def dispute(
        order_id: ResourceId, body: Dispute, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request
    ) -> JSONResponse:
        return await answer(
            request, caller.user_id, key, body, 200, lambda uow: escrow.dispute(uow, caller, order_id, body.reason)
        )

    @api.post(
        order_path + "/resolution",
        response_model=OrderAnswer,
        tags=["orders"],
        summary="Resolve a dispute: release, refund or split (platform operators; O5)",
        responses=responses(*transition_errors, InvalidSplit),
    )
    async def resolve(
        order_id: ResourceId, body: ResolveDispute, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request
    ) -> JSONResponse:
        return await answer(
            request,
            caller.user_id,
            key,
            body,
            200,
            lambda uow: escrow.resolve_dispute(
                uow, caller, order_id, body.outcome, body.seller_micros, body.buyer_micros
            ),
        )

    return api


def _order_answer(order: Order, settlement: Settlement | None = None) -> OrderAnswer:
    return OrderAnswer(
        id=order.id,
        number=order.number,
        status=order.status.value,
        buyer_user_id=order.buyer_user_id,
        buyer_owner_id=order.buyer_owner_id,
        channel_id=order.channel_id,
        seller_owner_id=order.seller_owner_id,
        price_micros=order.price_micros,
        currency=order.currency,
        placed_at=order.placed_at,
        answer_due_at=order.answer_due_at,
        completed_at=order.completed_at,
        release_due_at=order.release_due_at,
        decline_reason=order.decline_reason,
        dispute_reason=order.dispute_reason,
        seller_micros=order.seller_micros,
        buyer_micros=order.buyer_micros,
        reordered_from_order_id=order.reordered_from_order_id,
        settled_at=settlement.settled_at if settlement else None,
        settled_posted_micros=settlement.posted_micros if settlement else None,
        hold_error=settlement.hold_error if settlement else None,
    )
