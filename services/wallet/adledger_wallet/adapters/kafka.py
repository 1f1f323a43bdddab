"""The wallet's Kafka inputs: paid invoices from invoicing, applied exactly once (rule I1),
commands from other services on `wallet.commands.v1` (holds M4 and their resize C2, payouts W14),
the budget caps the campaign service owns (`campaign.events.v1`, kept for Budget Sync W5), and
the balances on `balances.v1`, watched for the prepayment threshold (rule W12, `prepayment.py`).

A payment the wallet cannot apply (unknown owner, another currency) goes to the dead-letter
topic with the reason, no balance changes, and the rest of the batch is applied. A command or
payment that the ledger refuses in a way no answer event covers (a total it cannot hold) is a
record fault: the consumer isolates it and dead-letters it with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from adledger_contracts.external import BalanceChanged
from adledger_contracts.campaigns import AdAccountBudgetCapChanged
from adledger_contracts.wallet import InvoicePaid, PlaceHold, RequestPayout, ResizeHold, ResolveHold
from adledger_libs.consumer import Inbound, Subscription, reject
from adledger_libs.logs import get_logger
from adledger_libs.money import CurrencyMismatchError
from adledger_libs.outbox import UnitOfWork
from adledger_ledger.publishing import BALANCES_TOPIC
from adledger_wallet.core import UnknownOwnerError, Wallet
from adledger_wallet.prepayment import PrepaymentThresholds

log = get_logger(__name__)

INVOICING_EVENTS_TOPIC = "invoicing.events.v1"
COMMANDS_TOPIC = "wallet.commands.v1"
CAMPAIGN_EVENTS_TOPIC = "campaign.events.v1"


def subscriptions(
    wallet: Wallet, group_id: str, *, topic: str = INVOICING_EVENTS_TOPIC,
    thresholds: PrepaymentThresholds | None = None, balances_topic: str = BALANCES_TOPIC,
    commands_topic: str = COMMANDS_TOPIC, campaign_events_topic: str = CAMPAIGN_EVENTS_TOPIC,
) -> list[Subscription]:
    async def apply_payments(uow: UnitOfWork, batch: list[Inbound[Any]]) -> None:
        for inbound in batch:
            try:
                # The checks that refuse come before any write, so nothing needs undoing.
                await wallet.receive_payment(uow, inbound.message)
            except (UnknownOwnerError, CurrencyMismatchError) as rejection:
                reject(uow, inbound, str(rejection))
                log.warning("payment_dead_lettered", invoice_id=inbound.message.invoice_id, reason=str(rejection))

    def apply_each(command: Callable[[UnitOfWork, Any], Awaitable[object]]) -> Callable[[UnitOfWork, list[Inbound[Any]]], Awaitable[None]]:
        async def handle(uow: UnitOfWork, batch: list[Inbound[Any]]) -> None:
            for inbound in batch:
                # A refusal is an answer event, not an exception.
                await command(uow, inbound.message)

        return handle

    # The consumer applies the commands in the order they were sent on their partition (a hold is
    # placed before it is resized or resolved because it was asked for first), whatever their type.
    subscribed = [
        Subscription(topic=topic, model=InvoicePaid, handler=apply_payments),
        Subscription(topic=commands_topic, model=PlaceHold, handler=apply_each(wallet.place_hold)),
        Subscription(topic=commands_topic, model=ResizeHold, handler=apply_each(wallet.resize_hold)),
        Subscription(topic=commands_topic, model=ResolveHold, handler=apply_each(wallet.resolve_hold)),
        Subscription(topic=commands_topic, model=RequestPayout, handler=apply_each(wallet.request_payout)),
        # The campaign service owns caps (W9, W10); the wallet keeps a copy for Budget Sync (W5).
        Subscription(topic=campaign_events_topic, model=AdAccountBudgetCapChanged, handler=apply_each(wallet.copy_budget_cap)),
    ]
    if thresholds is not None:
        subscribed.append(Subscription(topic=balances_topic, model=BalanceChanged, handler=thresholds.apply))
    return subscribed
