"""The payout gate (rule W14), a ledger operation any service can call.

A payout to a seller (an order's release, a publisher's commission) goes out only while the
payer's real balance covers it; otherwise it waits, outstanding, and goes out by itself once
funds arrive: whoever credits the payer (the wallet, on a paid invoice) calls
`release_ready_payouts` in the same transaction.

Decisions: "covers" means the real balance is at least the payout, so a payout may bring the
real balance to exactly zero but never below. Outstanding payouts of one payer go out oldest
first, and one that does not fit blocks those queued after it, so a large old payout is never
starved by a stream of small new ones. A payout's id is its idempotency key (M5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .domain import TransferRequest, raise_first_error
from .owners import OwnerKind, owner_account_id, owner_balance, owner_buckets
from .postgres import PostgresLedger


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


async def request_payout(conn: asyncpg.Connection, ledger: PostgresLedger, payout: Payout, now: datetime) -> bool:
    """Queue a payout (idempotently, by its id) and pay out what the payer covers now.

    Returns True when this payout has gone out (now or before), False while it is outstanding.
    Must run inside the caller's transaction, with no other ledger call after it in that
    transaction (the ledger locks accounts once per transaction).
    """
    payout_allowed(0, payout.amount_micros)  # rejects a float or non-positive amount before anything is written
    await conn.execute(
        f"""insert into {ledger.schema}.payouts
                (id, payer_kind, payer_id, payee_account_id, amount_micros, currency, code, requested_at)
            values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (id) do nothing""",
        payout.id,
        payout.payer_kind,
        payout.payer_id,
        payout.payee_account_id,
        payout.amount_micros,
        payout.currency,
        payout.code,
        now,
    )
    await release_ready_payouts(conn, ledger, payout.payer_kind, payout.payer_id, now)
    return bool(await conn.fetchval(f"select paid_at is not null from {ledger.schema}.payouts where id = $1", payout.id))


async def release_ready_payouts(
    conn: asyncpg.Connection, ledger: PostgresLedger, payer_kind: OwnerKind, payer_id: str, now: datetime
) -> list[str]:
    """Pay out the payer's outstanding payouts its real balance covers, oldest first."""
    rows = await conn.fetch(
        f"""select id, payee_account_id, amount_micros, currency, code from {ledger.schema}.payouts
            where payer_id = $1 and paid_at is null order by requested_at, id for update""",
        payer_id,
    )
    if not rows:
        return []
    accounts = await ledger.balances(conn, [owner_account_id(payer_kind, payer_id, bucket) for bucket in owner_buckets(payer_kind)])
    real_micros = owner_balance(payer_kind, payer_id, accounts).real_micros
    ready = rows[: payouts_ready(real_micros, [row["amount_micros"] for row in rows])]
    if not ready:
        return []
    payer_cash = owner_account_id(payer_kind, payer_id, "cash")
    requests = [
        TransferRequest(
            id=f"payout:{row['id']}",
            debit_account_id=payer_cash,
            credit_account_id=row["payee_account_id"],
            amount_micros=row["amount_micros"],
            currency=row["currency"],
            code=row["code"],
        )
        for row in ready
    ]
    raise_first_error(await ledger.create_transfers(conn, requests, now))
    paid_ids = [row["id"] for row in ready]
    await conn.execute(
        f"update {ledger.schema}.payouts set paid_at = $2 where id = any($1::text[])", paid_ids, now
    )
    return paid_ids
