"""The invoicing service's Kafka inputs, all in one consumer group and one transaction per batch:

- `wallet.events.v1`: BusinessCenterOpened and AdAccountOpened (currency, billing option for I7,
  and the Business Center an ad account belongs to, whose roles decide who bills for it, W9),
  PrepaymentThresholdCrossed (W12: a prepayment invoice);
- `balances.v1`: the latest balance per owner, for top-ups to a target (I2);
- `invoicing.commands.v1`: IssueInvoice (C1: activation shortfall), ChargeFundingSource (the sends
  service's charges, refunds and added funds, I6, U3-U6);
- `spend.posted.v1`: SpendPosted, summed per ad account and month (I7);
- `identity.events.v1` (added by the runtime's `verify_callers`): who may call the API.

Records that do not decode are dead-lettered by the consumer library; an IssueInvoice the core
refuses (another currency than its owner's, M2; an id too long) is dead-lettered here with the
reason, and nothing is issued.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from adledger_contracts.external import BalanceChanged
from adledger_contracts.invoicing import IssueInvoice
from adledger_contracts.sends import ChargeFundingSource
from adledger_contracts.spending import SpendPosted
from adledger_contracts.wallet import AdAccountOpened, BusinessCenterOpened, PrepaymentThresholdCrossed
from adledger_ledger.domain import LedgerError
from adledger_libs.consumer import Inbound, Subscription, reject
from adledger_libs.outbox import UnitOfWork

from adledger_invoicing.core import Invoicing
from adledger_invoicing.domain.invoices import InvoicingError
from adledger_invoicing.ports.store import UnknownFundingSourceError
from adledger_invoicing.ports.unit_of_work import InvoicingWork

WALLET_EVENTS_TOPIC = "wallet.events.v1"
BALANCES_TOPIC = "balances.v1"
COMMANDS_TOPIC = "invoicing.commands.v1"
SPEND_POSTED_TOPIC = "spend.posted.v1"

Handler = Callable[[UnitOfWork, list[Inbound[Any]]], Awaitable[None]]


def subscriptions(
    invoicing: Invoicing,
    work_of: Callable[[UnitOfWork], InvoicingWork],
    *,
    wallet_events_topic: str = WALLET_EVENTS_TOPIC,
    balances_topic: str = BALANCES_TOPIC,
    commands_topic: str = COMMANDS_TOPIC,
    spend_posted_topic: str = SPEND_POSTED_TOPIC,
) -> list[Subscription]:
    def each(handler: Callable[[InvoicingWork, Any], Awaitable[object]]) -> Handler:
        async def handle(uow: UnitOfWork, batch: list[Inbound[Any]]) -> None:
            work = work_of(uow)
            for inbound in batch:
                await handler(work, inbound.message)

        return handle

    def all_at_once(handler: Callable[[InvoicingWork, Sequence[Any]], Awaitable[None]]) -> Handler:
        async def handle(uow: UnitOfWork, batch: list[Inbound[Any]]) -> None:
            await handler(work_of(uow), [inbound.message for inbound in batch])

        return handle

    async def issue_requested(uow: UnitOfWork, batch: list[Inbound[IssueInvoice]]) -> None:
        work = work_of(uow)
        for inbound in batch:
            try:
                async with uow.savepoint():
                    await invoicing.issue_requested(work, inbound.message)
            except InvoicingError as rejection:
                reject(uow, inbound, str(rejection))

    async def charge_requested(uow: UnitOfWork, batch: list[Inbound[ChargeFundingSource]]) -> None:
        work = work_of(uow)
        for inbound in batch:
            try:
                async with uow.savepoint():
                    await invoicing.charge_requested(work, inbound.message)
            except (InvoicingError, UnknownFundingSourceError, LedgerError) as rejection:
                reject(uow, inbound, str(rejection))

    # Handlers run in this order within a batch: owners first, then balances, then the signals.
    return [
        Subscription(topic=wallet_events_topic, model=BusinessCenterOpened, handler=each(invoicing.owner_opened)),
        Subscription(topic=wallet_events_topic, model=AdAccountOpened, handler=each(invoicing.owner_opened)),
        Subscription(
            topic=wallet_events_topic, model=PrepaymentThresholdCrossed, handler=each(invoicing.prepayment_needed)
        ),
        # Balances are upserted by version (newest wins), so a replay needs no event-id dedup.
        Subscription(
            topic=balances_topic,
            model=BalanceChanged,
            handler=all_at_once(invoicing.balances_changed),
            dedupe_by_event_id=False,
        ),
        Subscription(topic=commands_topic, model=IssueInvoice, handler=issue_requested),
        Subscription(topic=commands_topic, model=ChargeFundingSource, handler=charge_requested),
        Subscription(topic=spend_posted_topic, model=SpendPosted, handler=all_at_once(invoicing.spend_posted)),
    ]
