"""The topic catalogue: every topic, its key, partitions, cleanup policy, producers, consumers.

Services create the catalogue's topics at start; `schemas/topics.json` is generated from here.
Every topic that a service consumes has a dead-letter topic `<name>.dlq` where a record that
fails validation goes, with the reason in the `dlq-reason` header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DEAD_LETTER_SUFFIX = ".dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    partitions: int
    cleanup_policy: Literal["delete", "compact"]
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    message_types: tuple[str, ...]
    description: str
    configs: dict[str, str] = field(default_factory=dict)
    #: Services that read the topic from the beginning without a consumer group into memory and write
    #: nothing (no dead letters, no offsets): the finance console's view of the serving states.
    viewers: tuple[str, ...] = ()

    def topic_configs(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, **self.configs}


def dead_letter_topic(name: str) -> str:
    return name + DEAD_LETTER_SUFFIX


_BASE: tuple[TopicSpec, ...] = (
    TopicSpec(
        name="ads.spend.v1",
        key="ad_account_id",
        partitions=12,
        cleanup_policy="delete",
        producers=("ad servers (external)",),
        consumers=("spend_consumer",),
        message_types=("SpendReported",),
        description="Spend of what ad servers served (CONTRACT.md). Partitioned by ad account.",
    ),
    TopicSpec(
        name="delivery.control.v1",
        key="ad_account_id",
        partitions=12,
        cleanup_policy="delete",
        producers=("spend_consumer",),
        consumers=("ad servers (external)", "campaign"),
        message_types=("DeliveryDecided",),
        description="Every pause and resume, with its reason (rule S4).",
    ),
    TopicSpec(
        name="delivery.state.v1",
        key="ad_account_id, or ad_account_id/campaign_id",
        partitions=12,
        cleanup_policy="compact",
        producers=("spend_consumer",),
        consumers=("ad servers (external)",),
        message_types=("DeliveryStateChanged",),
        description="The latest serving state per ad account and campaign; read from the beginning at a cold start.",
        viewers=("console",),
        configs={"min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"},
    ),
    TopicSpec(
        name="balances.v1",
        key="owner_id",
        partitions=6,
        cleanup_policy="compact",
        producers=("wallet", "spend_consumer"),
        consumers=("wallet", "spend_consumer", "invoicing", "subscribers (external)"),
        message_types=("BalanceChanged",),
        description="The latest balance per Business Center and ad account; `version` grows by one per change.",
        configs={"min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"},
    ),
    TopicSpec(
        name="wallet.events.v1",
        key="business_center_id, or the owner's id",
        partitions=6,
        cleanup_policy="delete",
        producers=("wallet",),
        consumers=("campaign", "invoicing", "spend_consumer", "order_escrow", "identity"),
        message_types=(
            "BusinessCenterOpened",
            "AdAccountOpened",
            "AutomaticBalanceAllocationEnabled",
            "FundsAllocated",
            "FundsReceived",
            "PrepaymentThresholdCrossed",
            "HoldPlaced",
            "HoldRejected",
            "HoldResolved",
            "PayoutSettled",
        ),
        description="What happened in the wallet: Business Centers and ad accounts opened, ABA enabled, "
        "funds allocated or received, prepayment threshold crossed (W12).",
    ),
    TopicSpec(
        name="identity.events.v1",
        key="user:<id>, membership:<business center>:<user>, api-key:<id>, session:<id>, signing-key:<id>",
        partitions=3,
        cleanup_policy="compact",
        producers=("identity",),
        consumers=("wallet", "campaign", "invoicing", "order_escrow", "sends"),
        message_types=("UserChanged", "MembershipChanged", "ApiKeyChanged", "SessionRevoked", "SigningKeyPublished"),
        description="The platform's one identity (issue 13): users, Business Center roles (W9), API keys (by "
        "SHA-256), revoked sessions and the public keys that sign session tokens, each the newest snapshot per "
        "key. Every service keeps a replica and verifies callers locally; read from the beginning at a cold start.",
        configs={"min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"},
    ),
    TopicSpec(
        name="wallet.commands.v1",
        key="owner_id (the payer's, for a payout)",
        partitions=6,
        cleanup_policy="delete",
        producers=("campaign", "order_escrow"),
        consumers=("wallet",),
        message_types=("PlaceHold", "ResolveHold", "ResizeHold", "RequestPayout"),
        description="Commands other services send the wallet (holds M4, payouts W14); each takes an "
        "idempotency key; the answers are events on wallet.events.v1 keyed like the command.",
    ),
    TopicSpec(
        name="orders.events.v1",
        key="order_id",
        partitions=6,
        cleanup_policy="delete",
        producers=("order_escrow",),
        consumers=("invoicing",),
        message_types=("OrderPlaced", "OrderStatusChanged", "EmailRequested"),
        description="Escrowed orders (O1-O6): every order placed and every change of its status, and the "
        "e-mails they ask for (O4), which the invoicing service's e-mail adapter renders and sends.",
    ),
    TopicSpec(
        name="invoicing.events.v1",
        key="owner_id",
        partitions=6,
        cleanup_policy="delete",
        producers=("invoicing",),
        consumers=("wallet", "invoicing"),
        message_types=("InvoicePaid", "InvoiceStatusChanged", "FundingSourceCharged", "EmailRequested", "EmailSent", "BalanceAlertRaised"),
        description="Invoices, payments, alerts and e-mails (I8); the wallet credits each paid invoice exactly once (I1).",
    ),
    TopicSpec(
        name="invoicing.alert-thresholds.v1",
        key="business_center_id",
        partitions=6,
        cleanup_policy="compact",
        producers=("operators (external)",),
        consumers=("invoicing",),
        message_types=("LowBalanceThresholdSet",),
        description="The low-balance alert threshold of each Business Center (I6); the newest per key wins. "
        "Without one, the threshold is 50% of the Business Center's last payment (as W12's default).",
        configs={"min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"},
    ),
    TopicSpec(
        name="invoicing.commands.v1",
        key="owner_id",
        partitions=6,
        cleanup_policy="delete",
        producers=("campaign", "sends"),
        consumers=("invoicing",),
        message_types=("IssueInvoice", "ChargeFundingSource"),
        description="Invoices other services ask for, e.g. an activation shortfall (C1), and funding-source charges "
        "of sends (I6, U3-U6); idempotent by invoice_id and charge_id.",
    ),
    TopicSpec(
        name="sends.events.v1",
        key="business_center_id",
        partitions=6,
        cleanup_policy="delete",
        producers=("sends",),
        consumers=("operators (external)",),
        message_types=("SendChanged", "UserBalanceFunded"),
        description="Every send's state as a versioned snapshot (U2-U5) and every user-balance initial budget, "
        "refresh and rollover (U1, U6).",
    ),
    TopicSpec(
        name="campaign.events.v1",
        key="ad_account_id",
        partitions=12,
        cleanup_policy="delete",
        producers=("campaign",),
        consumers=("spend_consumer", "wallet"),
        message_types=("CampaignChanged", "AdAccountBudgetCapChanged"),
        description="Every change of a campaign and of an ad account's budget cap, as versioned snapshots "
        "(C1-C5, W5, W10); the spend consumer keeps budgets and caps from them (S3).",
    ),
    TopicSpec(
        name="spend.posted.v1",
        key="ad_account_id",
        partitions=12,
        cleanup_policy="delete",
        producers=("spend_consumer",),
        consumers=("invoicing", "campaign"),
        message_types=("SpendPosted",),
        description="Spend the spend consumer took, summed per ad account and campaign per batch: monthly "
        "invoices (I7), delivered totals of prepaid campaigns (C3, C4), spend rates for runway alerts.",
    ),
)


def _with_dead_letters(specs: tuple[TopicSpec, ...]) -> tuple[TopicSpec, ...]:
    dead_letters = tuple(
        TopicSpec(
            name=dead_letter_topic(spec.name),
            key=spec.key,
            partitions=1,
            cleanup_policy="delete",
            producers=tuple(c for c in spec.consumers if "(external)" not in c),
            consumers=("operators (external)",),
            message_types=spec.message_types,
            description=f"Records of {spec.name} that could not be handled; headers dlq-reason, dlq-topic, "
            "dlq-partition, dlq-offset, dlq-consumer-group, dlq-failed-at say why and where from. Kept 30 days. "
            "`adledger dlq replay` sends one back to its origin with a dlq-replayed-from header naming it.",
            configs={"retention.ms": str(30 * 24 * 3600 * 1000)},
        )
        for spec in specs
        if any("(external)" not in consumer for consumer in spec.consumers)
    )
    return specs + dead_letters


CATALOGUE: tuple[TopicSpec, ...] = _with_dead_letters(_BASE)


def topic(name: str) -> TopicSpec:
    for spec in CATALOGUE:
        if spec.name == name:
            return spec
    raise KeyError(f"no topic {name!r} in the catalogue")
