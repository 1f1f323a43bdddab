"""The spend consumer's Kafka inputs, all in one consumer group so that one batch is one
transaction: the wallet's events (the ad accounts it may charge), the campaign service's
snapshots (budgets, caps, statuses), the spend itself, and the balances (to resume delivery
when funds return).

The subscriptions are listed in that order on purpose: the consumer runs the handlers of a
batch in the order of their topics, so an ad account opened, or a campaign changed, in the same
batch as a spend is known before the spend is taken, and a resume sees the balances after the
batch's spend. A malformed record is dead-lettered by the consumer itself (rule S5). Spend records are decoded
by a compiled msgspec decoder first (`adapters/records.py`); the pydantic model decides the rest.
"""

from __future__ import annotations

from adledger_contracts.campaigns import AdAccountBudgetCapChanged, CampaignChanged
from adledger_contracts.external import BalanceChanged, SpendReported
from adledger_contracts.wallet import AdAccountOpened, AutomaticBalanceAllocationEnabled, BusinessCenterOpened
from adledger_libs.consumer import Subscription

from adledger_spend_consumer.adapters.records import SpendRecord, decode_spend
from adledger_spend_consumer.config import Settings
from adledger_spend_consumer.core import SpendConsumer


def subscriptions(consumer: SpendConsumer, settings: Settings) -> list[Subscription]:
    return [
        Subscription(topic=settings.wallet_events_topic, model=BusinessCenterOpened, handler=consumer.apply_business_centers),
        Subscription(topic=settings.wallet_events_topic, model=AdAccountOpened, handler=consumer.apply_ad_accounts),
        Subscription(
            topic=settings.wallet_events_topic, model=AutomaticBalanceAllocationEnabled, handler=consumer.apply_aba_enabled
        ),
        Subscription(topic=settings.campaign_events_topic, model=CampaignChanged, handler=consumer.apply_campaigns),
        Subscription(topic=settings.campaign_events_topic, model=AdAccountBudgetCapChanged, handler=consumer.apply_caps),
        Subscription(
            topic=settings.spend_topic, model=SpendReported, handler=consumer.apply_spends,
            fast_decode=decode_spend, fast_type=SpendRecord, on_assigned=consumer.find_announced,
        ),
        Subscription(topic=settings.balances_topic, model=BalanceChanged, handler=consumer.apply_balances),
    ]
