"""Publishing owners' balances on `balances.v1`, from any service that changed them.

Called inside the unit of work that moved the money: the owners' versions grow by one in the
same transaction, and the new balances go to the outbox with it, so a balance event is never
published for a change that did not commit, nor lost for one that did.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adledger_contracts.external import BalanceBuckets, BalanceChanged
from adledger_ledger.owners import OwnerBalance, OwnerKind, owner_account_id, owner_balance, owner_buckets
from adledger_ledger.ports import Ledger
from adledger_libs.outbox import UnitOfWork

BALANCES_TOPIC = "balances.v1"


async def read_owner_balances(
    uow: UnitOfWork, ledger: Ledger[Any], owners: Sequence[tuple[OwnerKind, str]]
) -> list[OwnerBalance]:
    account_ids = [owner_account_id(kind, owner, bucket) for kind, owner in owners for bucket in owner_buckets(kind)]
    accounts = await ledger.balances(uow.conn, account_ids)
    return [owner_balance(kind, owner, accounts) for kind, owner in owners]


async def publish_balances(
    uow: UnitOfWork,
    ledger: Ledger[Any],
    owners: Sequence[tuple[OwnerKind, str]],
    now: datetime,
    *,
    topic: str = BALANCES_TOPIC,
) -> list[BalanceChanged]:
    """Bump each owner's version and record its new balance in the outbox.

    The version rows are locked (by the upsert) before the balances are read: a transaction that
    read first could be overtaken by another that moved money and took the next version, and its
    own newer version would then carry older figures. Under the lock, the read sees every change
    committed by a holder of an earlier version.
    """
    unique_owners = sorted(set(owners), key=lambda owner: owner[1])
    if not unique_owners:
        return []
    versions = await ledger.bump_balance_versions(uow.conn, unique_owners, now)
    balances = await read_owner_balances(uow, ledger, unique_owners)
    events = [balance_event(item, versions[item.owner_id], now) for item in balances]
    for event in events:
        uow.publish(event, topic=topic, key=event.owner_id)
    return events


def balance_event(item: OwnerBalance, version: int, now: datetime) -> BalanceChanged:
    return BalanceChanged(
        owner_id=item.owner_id,
        owner_kind=item.owner_kind,
        currency=item.currency,
        real_micros=item.real_micros,
        virtual_micros=item.virtual_micros,
        available_micros=item.available_micros,
        buckets=BalanceBuckets(
            cash=item.cash_micros + item.overspend_micros,
            credit_line=item.credit_line_micros,
            vouchers=item.vouchers_micros,
        ),
        version=version,
        updated_at=now,
    )
