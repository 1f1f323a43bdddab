"""The use cases of the order escrow, as the adapters call them (HTTP, Kafka, the deadline job).

Every use case runs in the unit of work it is given and changes nothing when it raises. The
errors each may raise are listed with it; all of them are refusals (`adledger_libs.refusals`):
the caller's or the record's fault, answered with a 4xx or dead-lettered, never a bug.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from adledger_auth.roles import Action
from adledger_contracts.wallet import HoldPlaced, HoldRejected, HoldResolved

from adledger_order_escrow.domain.orders import Order
from adledger_order_escrow.domain.parties import Channel, Owner
from adledger_order_escrow.ports.orders import Settlement
from adledger_order_escrow.ports.unit_of_work import UnitOfWork

#: The API-key scope of everything the escrow does; a session may do everything its user may.
ORDERS_SCOPE = "orders"

DisputeOutcome = Literal["release", "refund", "split"]


class Caller(Protocol):
    """Who calls, as the core needs to know it (`adledger_auth.callers.Caller` is one)."""

    @property
    def user_id(self) -> str: ...

    @property
    def platform_operator(self) -> bool: ...

    def is_member_of(self, business_center_id: str) -> bool: ...

    def require(self, business_center_id: str, action: Action, *, finance_roles_set_up: bool) -> None:
        """W9: raises `PermissionDeniedError` unless the caller's roles there allow `action`."""
        ...

    def require_platform(self, action: str) -> None:
        """Raises `PermissionDeniedError` unless the caller is a platform operator."""
        ...

    def require_scope(self, scope: str) -> None:
        """Raises `PermissionDeniedError` when the caller's API key may not be used for `scope`."""
        ...


class OrderEscrowPort(Protocol):
    # Channels -----------------------------------------------------------------------------------

    async def register_channel(self, uow: UnitOfWork, caller: Caller, channel: Channel) -> Channel:
        """A platform operator registers a seller: a channel, who answers its orders, whom it pays.

        Raises:
            PermissionDeniedError: the caller is not a platform operator (or its key lacks the scope).
            UnknownUserError: the seller user is not known to the platform's identity, or disabled.
            UnknownOwnerError: the wallet opened no such payee owner.
            ChannelCurrencyError: the channel's currency is not its payee's (M2).
            ChannelExistsError: a channel with this id exists already.
        """
        ...

    # Orders -------------------------------------------------------------------------------------

    async def place_order(
        self, uow: UnitOfWork, caller: Caller, channel_id: str, buyer_owner_id: str, price_micros: int, currency: str
    ) -> Order:
        """O1: a buyer orders from a channel for an owner; the wallet is asked to hold the price.

        Raises:
            UnknownOwnerError: no such owner, or the caller has no role in its Business Center.
            PermissionDeniedError: W9, `Action.PLACE_ORDER` is not the caller's there.
            UnknownChannelError: no such channel.
            InvalidOrderError: the price or currency does not fit the channel or the owner (M1, M2).
        """
        ...

    async def reorder(self, uow: UnitOfWork, caller: Caller, past_order_id: str) -> Order:
        """A new order copying a past one (its buyer only, who must still hold `PLACE_ORDER`).

        Raises:
            UnknownOrderError, NotAPartyError: no such order, or the caller is none of its parties.
            PartyPermissionError: the caller is a party, but not the buyer.
            UnknownOwnerError, PermissionDeniedError, InvalidOrderError: as for `place_order`.
        """
        ...

    async def read_order(self, uow: UnitOfWork, caller: Caller, order_id: str) -> tuple[Order, Settlement]:
        """The order and its settlement, for its buyer, its seller and platform operators.

        Raises:
            UnknownOrderError, NotAPartyError: no such order, or the caller may not see it (one answer).
        """
        ...

    async def accept(self, uow: UnitOfWork, caller: Caller, order_id: str) -> Order:
        """O2: the seller accepts within 48 hours.

        Raises:
            UnknownOrderError, NotAPartyError, PartyPermissionError: as for `reorder`, the seller only.
            IllegalTransitionError: the order is not awaiting the seller.
            AnswerWindowClosedError: the 48 hours have passed.
        """
        ...

    async def decline(self, uow: UnitOfWork, caller: Caller, order_id: str, reason: str) -> Order:
        """O2: the seller declines within 48 hours with a short reason; the hold goes back.

        Raises:
            as `accept`, and InvalidDeclineReasonError: the reason is empty or too long.
        """
        ...

    async def mark_ready(self, uow: UnitOfWork, caller: Caller, order_id: str) -> Order:
        """O3: the seller approved the creatives.

        Raises:
            UnknownOrderError, NotAPartyError, PartyPermissionError, IllegalTransitionError.
        """
        ...

    async def complete(self, uow: UnitOfWork, caller: Caller, order_id: str) -> Order:
        """O3-O5: the seller completes; the buyer is e-mailed and has 48 hours to dispute.

        Raises:
            UnknownOrderError, NotAPartyError, PartyPermissionError, IllegalTransitionError.
        """
        ...

    async def dispute(self, uow: UnitOfWork, caller: Caller, order_id: str, reason: str | None) -> Order:
        """O5: the buyer disputes within 48 hours of Complete; the funds stay frozen.

        Raises:
            UnknownOrderError, NotAPartyError, PartyPermissionError (the buyer only),
            IllegalTransitionError, DisputeWindowClosedError.
        """
        ...

    async def resolve_dispute(
        self,
        uow: UnitOfWork,
        caller: Caller,
        order_id: str,
        outcome: DisputeOutcome,
        seller_micros: int | None,
        buyer_micros: int | None,
    ) -> Order:
        """O5: a platform operator ends a dispute: release, refund, or a split that adds up.

        Raises:
            UnknownOrderError, NotAPartyError, PartyPermissionError (platform operators only),
            IllegalTransitionError, InvalidSplitError.
        """
        ...

    # What the service learns from the wallet -----------------------------------------------------

    async def owner_opened(self, uow: UnitOfWork, owner: Owner, opened_at: datetime) -> None:
        """The wallet opened a Business Center or an ad account.

        Raises:
            OwnerConflictError: the id is known already with other values (the record is refused).
        """
        ...

    async def hold_placed(self, uow: UnitOfWork, event: HoldPlaced) -> None:
        """The wallet held an order's price: the seller's 48 hours start (O1, O2)."""
        ...

    async def hold_rejected(self, uow: UnitOfWork, event: HoldRejected) -> None:
        """The wallet refused a hold or its resolution (O1)."""
        ...

    async def hold_resolved(self, uow: UnitOfWork, event: HoldResolved) -> None:
        """The wallet posted or voided an order's hold: the order is settled."""
        ...

    # Deadlines (O6) -----------------------------------------------------------------------------

    async def act_on_next_due_deadline(self, uow: UnitOfWork) -> str | None:
        """Act on one due deadline and mark it done in the same unit of work; None when none is
        due, else its outcome: the order's new status, or `no_longer_due`."""
        ...
