"""Who takes part in an escrowed order, and what each party may do (rules O1-O5, W9): pure.

An order has three parties:
- its **buyer**: the user who placed it. That stays so for the order's life, whatever roles the
  user holds later; whether a user may place an order for an owner at all is W9's
  `Action.PLACE_ORDER` in the owner's Business Center, checked when the order is placed.
- its **seller**: the user who answers for the order's channel (an identity user id).
- the **admin**: any platform operator (registers channels, resolves disputes, reads every order).

A user may be more than one party (a platform operator who placed an order is its buyer too).
Someone who is none of them is not told the order exists: `require_party` answers them exactly
as for an order that does not exist (tenants fenced), and only a party learns that it is not
the party who may do what it asked.

The owners whose money an order moves (the buyer's, and the seller's payee) are Business
Centers and ad accounts the wallet opened; the service learns them from `wallet.events.v1`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from adledger_auth.roles import PermissionDeniedError
from adledger_libs.refusals import Refusal

from adledger_order_escrow.domain.orders import Order


class Party(StrEnum):
    BUYER = "buyer"
    SELLER = "seller"
    #: A platform operator, the escrow's admin.
    ADMIN = "admin"


def unknown_order_reason(order_id: str) -> str:
    """The one reason given for an order that does not exist and for one the caller may not see."""
    return f"no order {order_id!r}"


class NotAPartyError(Refusal, LookupError):
    """The caller is none of the order's parties: answered exactly as an order that does not exist."""

    def __init__(self, order_id: str) -> None:
        super().__init__(unknown_order_reason(order_id))
        self.order_id = order_id


class PartyPermissionError(PermissionDeniedError):
    """A party asked for what another party does (the buyer accepting, the seller resolving)."""


def parties_of(order: Order, *, seller_user_id: str, user_id: str, platform_operator: bool) -> frozenset[Party]:
    """The parties `user_id` is of `order`, whose channel is answered for by `seller_user_id`."""
    held: set[Party] = set()
    if user_id == order.buyer_user_id:
        held.add(Party.BUYER)
    if user_id == seller_user_id:
        held.add(Party.SELLER)
    if platform_operator:
        held.add(Party.ADMIN)
    return frozenset(held)


def require_party(order: Order, held: Iterable[Party], *allowed: Party) -> None:
    """Raise unless one of the parties `held` is `allowed`.

    Raises:
        NotAPartyError: the caller holds no party at all (the same answer as an unknown order).
        PartyPermissionError: the caller is a party of the order, but not one that may do this.
    """
    held_parties = frozenset(held)
    if not held_parties:
        raise NotAPartyError(order.id)
    if held_parties.isdisjoint(allowed):
        needed = " or ".join(party.value for party in allowed)
        raise PartyPermissionError(f"only the order's {needed} may do this", action=needed)


OwnerKind = Literal["business_center", "ad_account"]


@dataclass(frozen=True)
class Owner:
    """A Business Center or an ad account: where an order's money is held from or paid to."""

    owner_id: str
    kind: OwnerKind
    #: The Business Center whose roles (W9) decide who may spend the owner's money: itself for a
    #: Business Center, the one that owns it for an ad account.
    business_center_id: str
    currency: str


class OwnerConflictError(Refusal):
    """An owner id the service already knows arrived again with other values (another kind,
    another Business Center, another currency). Owner ids are unique across kinds (issue 12), so
    the first one stays and the record is refused: it must never move an owner to another tenant."""


def learn_owner(known: Owner | None, opened: Owner) -> bool:
    """Whether `opened` (from the wallet's events) is new and must be recorded. The same owner
    again (a replay) is nothing new.

    Raises:
        OwnerConflictError: the id is known with other values.
    """
    if known is None:
        return True
    if known != opened:
        raise OwnerConflictError(
            f"owner {opened.owner_id!r} is known as a {known.kind} of {known.business_center_id} in {known.currency}; "
            f"refusing it as a {opened.kind} of {opened.business_center_id} in {opened.currency}"
        )
    return False


@dataclass(frozen=True)
class Channel:
    """A seller: a channel that takes orders, the user who answers them, and the owner it is paid to."""

    id: str
    name: str
    seller_user_id: str
    owner_id: str
    currency: str


class ChannelCurrencyError(Refusal):
    """A channel sells in the currency of the owner it is paid to (M2), or no payment could land."""


def check_channel(channel: Channel, payee: Owner) -> None:
    """Raises:
    ChannelCurrencyError: the channel's currency is not its payee owner's.
    """
    if channel.currency != payee.currency:
        raise ChannelCurrencyError(
            f"channel {channel.id!r} sells in {channel.currency}, but {payee.owner_id} holds {payee.currency} (M2)"
        )
