"""The identity's Kafka input: the wallet's `BusinessCenterOpened` (the Business Center exists,
and its first Admin gets the role, W9). Other events of `wallet.events.v1` are not read."""

from __future__ import annotations

from adledger_contracts.wallet import BusinessCenterOpened
from adledger_identity.core import Identity
from adledger_libs.consumer import Inbound, Subscription
from adledger_libs.outbox import UnitOfWork

WALLET_EVENTS_TOPIC = "wallet.events.v1"


def subscriptions(identity: Identity, *, wallet_topic: str = WALLET_EVENTS_TOPIC) -> list[Subscription]:
    async def opened(uow: UnitOfWork, batch: list[Inbound[BusinessCenterOpened]]) -> None:
        for inbound in batch:
            event = inbound.message
            await identity.business_center_opened(uow, event.business_center_id, event.admin_user_id, event.opened_at)

    return [Subscription(topic=wallet_topic, model=BusinessCenterOpened, handler=opened)]
