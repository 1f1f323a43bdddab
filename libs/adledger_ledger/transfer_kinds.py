"""Every kind of ledger transfer the platform makes, by its `code`, and whether it stays inside one
Business Center: the table the ledger's path past one PostgreSQL depends on (docs/scaling.md).

Distributed by Business Center (Citus), a transfer between accounts of one Business Center (its own and
its ad accounts') stays inside one shard. So does one between an owner and a platform system account
(`world_payments`, `platform_revenue`, ...), once each Business Center has its own sub-account of each
system account in its shard. A transfer between two Business Centers crosses shards, and has to be made
in two steps through the Business Centers' transit accounts, each step exactly once.

tests/unit/ledger/test_transfer_kinds.py reads the source of libs/ and services/ for every transfer code
the code can make and fails when one is missing here: a new crossing kind cannot slip in unnoticed.
"""

from __future__ import annotations

from enum import StrEnum


class TransferKind(StrEnum):
    #: Both accounts belong to one Business Center: its own buckets and those of its ad accounts.
    WITHIN_BUSINESS_CENTER = "within_business_center"
    #: One owner's account and a platform system account: money entering or leaving the platform.
    SYSTEM = "system"
    #: Accounts of two Business Centers (a buyer and a seller, a payer and a payee).
    CROSSING = "crossing"


TRANSFER_KINDS: dict[str, TransferKind] = {
    # Wallet: allocations between a Business Center and its ad account (W6, W9), ABA's cash moves (W4), and
    # the overspend an owner's own cash or its Business Center's covers (S2).
    "allocation_cash": TransferKind.WITHIN_BUSINESS_CENTER,
    "allocation_vouchers": TransferKind.WITHIN_BUSINESS_CENTER,
    "aba_cash_moved": TransferKind.WITHIN_BUSINESS_CENTER,
    "overspend_covered": TransferKind.WITHIN_BUSINESS_CENTER,
    # Wallet: paid invoices (I1, S2), credit lines and vouchers the platform grants (W1).
    "payment_received": TransferKind.SYSTEM,
    "payment_covered_overspend": TransferKind.SYSTEM,
    "credit_line_granted": TransferKind.SYSTEM,
    "credit_line_revoked": TransferKind.SYSTEM,
    "vouchers_granted": TransferKind.SYSTEM,
    # Spend consumer: spend taken in W7 order, the overspend after zero (S2), a lower final cost (S6).
    "spend": TransferKind.SYSTEM,
    "overspend": TransferKind.SYSTEM,
    "spend_refund": TransferKind.SYSTEM,
    # Holds, by the purpose of the wallet's PlaceHold (its post, void and resize keep the hold's code): a
    # campaign's booking is held for the platform's revenue (C1); an order's price for the seller (O1, O5).
    "campaign_booking": TransferKind.SYSTEM,
    "order_escrow": TransferKind.CROSSING,
    # Payouts to a seller or publisher wait for the payer's real balance (W14).
    "payout": TransferKind.CROSSING,
    # Invoicing: funding sources (I6) are their own owners, with the platform on the other side.
    "funding_source_charge": TransferKind.SYSTEM,
    "funding_source_payment": TransferKind.SYSTEM,
    "funding_source_refund": TransferKind.SYSTEM,
    # Sends (U1-U6): user balances funded by the platform (their source is charged by invoicing), sends
    # charged to them, and lower final costs given back.
    "user_balance_funded": TransferKind.SYSTEM,
    "user_balance_send": TransferKind.SYSTEM,
    "user_balance_refund": TransferKind.SYSTEM,
}


def kind_of(code: str) -> TransferKind:
    """The kind of a transfer code; an unclassified code is a `KeyError` that says where to add it."""
    try:
        return TRANSFER_KINDS[code]
    except KeyError:
        raise KeyError(f"transfer code {code!r} is not classified in adledger_ledger.transfer_kinds") from None
