"""The contracts between adledger and the outside world, and between its services.

Event payloads are frozen pydantic models with a description on every field; JSON Schemas in
`schemas/` are generated from them (`make schemas`) and a test fails when they drift. The
external names and fields are fixed by CONTRACT.md version 1: fields may be added, never
renamed, retyped or removed.
"""

from adledger_contracts.external import (
    BalanceBuckets,
    BalanceChanged,
    DeliveryDecided,
    DeliveryStateChanged,
    SpendReported,
)
from adledger_contracts.alerts import BalanceAlertRaised, EmailSent, LowBalanceThresholdSet
from adledger_contracts.campaigns import AdAccountBudgetCapChanged, CampaignChanged
from adledger_contracts.invoicing import FundingSourceCharged, InvoiceStatusChanged, IssueInvoice
from adledger_contracts.identity import ApiKeyChanged, MembershipChanged, SessionRevoked, SigningKeyPublished, UserChanged
from adledger_contracts.notifications import EmailRequested
from adledger_contracts.orders import OrderPlaced, OrderStatusChanged
from adledger_contracts.sends import ChargeFundingSource, SendChanged, UserBalanceFunded
from adledger_contracts.spending import SpendPosted
from adledger_contracts.topics import CATALOGUE, TopicSpec, dead_letter_topic, topic
from adledger_contracts.wallet import (
    AdAccountOpened,
    AutomaticBalanceAllocationEnabled,
    BusinessCenterOpened,
    FundsAllocated,
    FundsReceived,
    HoldPlaced,
    HoldRejected,
    HoldResolved,
    InvoicePaid,
    PayoutSettled,
    PlaceHold,
    PrepaymentThresholdCrossed,
    RequestPayout,
    ResizeHold,
    ResolveHold,
)

#: Every message type that has a schema in `schemas/`. A new event is added here.
ALL_MESSAGES = (
    SpendReported,
    DeliveryDecided,
    DeliveryStateChanged,
    BalanceChanged,
    BusinessCenterOpened,
    AdAccountOpened,
    AutomaticBalanceAllocationEnabled,
    FundsAllocated,
    FundsReceived,
    PrepaymentThresholdCrossed,
    InvoicePaid,
    PlaceHold,
    ResolveHold,
    RequestPayout,
    HoldPlaced,
    HoldRejected,
    HoldResolved,
    PayoutSettled,
    OrderPlaced,
    OrderStatusChanged,
    EmailRequested,
    ResizeHold,
    CampaignChanged,
    AdAccountBudgetCapChanged,
    IssueInvoice,
    SpendPosted,
    EmailSent,
    BalanceAlertRaised,
    LowBalanceThresholdSet,
    InvoiceStatusChanged,
    FundingSourceCharged,
    UserChanged,
    MembershipChanged,
    ApiKeyChanged,
    SessionRevoked,
    SigningKeyPublished,
    ChargeFundingSource,
    SendChanged,
    UserBalanceFunded,
)

__all__ = [
    "ALL_MESSAGES",
    "ChargeFundingSource",
    "SendChanged",
    "UserBalanceFunded",
    "ApiKeyChanged",
    "MembershipChanged",
    "SessionRevoked",
    "SigningKeyPublished",
    "UserChanged",
    "AdAccountBudgetCapChanged",
    "CampaignChanged",
    "IssueInvoice",
    "InvoiceStatusChanged",
    "FundingSourceCharged",
    "ResizeHold",
    "SpendPosted",
    "EmailSent",
    "BalanceAlertRaised",
    "LowBalanceThresholdSet",
    "AdAccountOpened",
    "AutomaticBalanceAllocationEnabled",
    "BusinessCenterOpened",
    "FundsAllocated",
    "FundsReceived",
    "InvoicePaid",
    "PrepaymentThresholdCrossed",
    "CATALOGUE",
    "BalanceBuckets",
    "BalanceChanged",
    "DeliveryDecided",
    "DeliveryStateChanged",
    "EmailRequested",
    "OrderPlaced",
    "OrderStatusChanged",
    "SpendReported",
    "TopicSpec",
    "dead_letter_topic",
    "topic",
]
