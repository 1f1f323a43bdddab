"""The payout gate (rule W14), pure.

A payout to a seller (an order's release, a publisher's commission) goes out only while the
payer's real balance covers it; otherwise it waits, outstanding, and goes out by itself once
funds arrive: the wallet releases the payer's outstanding payouts in the transaction that credits
the payer.

Decisions: "covers" means the real balance is at least the payout, so a payout may bring the
real balance to exactly zero but never below. Outstanding payouts of one payer go out oldest
first, and one that does not fit blocks those queued after it, so a large old payout is never
starved by a stream of small new ones. A payout's id is its idempotency key (M5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adledger_ledger.owners import OwnerKind


def payout_allowed(real_balance_micros: int, amount_micros: int) -> bool:
    """W14: a payout goes out only while the payer's real balance covers it."""
    if type(amount_micros) is not int or amount_micros <= 0:
        raise ValueError(f"a payout is a positive integer of micros, not {amount_micros!r} (rule M1)")
    return real_balance_micros >= amount_micros


def payouts_ready(real_balance_micros: int, outstanding_amounts_micros: Sequence[int]) -> int:
    """W14: how many outstanding payouts, oldest first, can go out now (a prefix of the queue)."""
    remaining_micros = real_balance_micros
    for released_count, amount_micros in enumerate(outstanding_amounts_micros):
        if not payout_allowed(remaining_micros, amount_micros):
            return released_count
        remaining_micros -= amount_micros
    return len(outstanding_amounts_micros)


@dataclass(frozen=True)
class Payout:
    id: str
    payer_kind: OwnerKind
    payer_id: str
    payee_account_id: str
    amount_micros: int
    currency: str
    code: str
