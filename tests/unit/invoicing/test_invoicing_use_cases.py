"""The invoicing use cases on the core with fakes of its ports (W9, I1-I7, issue 12): who may bill
for whom, the tenant fence, the platform operator's commands, scopes, and card collection claimed
once. No database, no broker: the ledger is the library's in-memory one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from adledger_auth.callers import Caller
from adledger_auth.roles import PermissionDeniedError, Role
from adledger_contracts.invoicing import FundingSourceCharged, IssueInvoice
from adledger_contracts.notifications import EmailRequested
from adledger_contracts.spending import SpendPosted
from adledger_contracts.wallet import InvoicePaid
from adledger_invoicing.core import (
    ChargeConflictError,
    ClockJobs,
    FundingSourceExistsError,
    Invoicing,
    funding_source_account_id,
)
from adledger_invoicing.domain import invoices as domain
from adledger_invoicing.domain.billing import Balance, FundingSource, Owner, PaymentNotification, Subscription
from adledger_invoicing.domain.invoices import InvoiceStatus, PaymentOutcome
from adledger_invoicing.ports.store import UnknownFundingSourceError, UnknownInvoiceError, UnknownOwnerError
from adledger_ledger.domain import OwnerIdTakenError
from adledger_ledger.fake import InMemoryLedger
from adledger_libs.clock import ManualClock
from adledger_libs.money import MAXIMUM_MICROS

from .fakes import OPERATOR, FakeStore, FakeTransactions, FakeWork, RecordingProvider, integration, person

USD = 1_000_000
NOW = datetime(2026, 11, 21, 9, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def ledger() -> InMemoryLedger:
    return InMemoryLedger()


@pytest.fixture
def invoicing(clock: ManualClock, ledger: InMemoryLedger) -> Invoicing:
    return Invoicing(clock, ledger)


@pytest.fixture
def work() -> FakeWork:
    """Two Business Centers, `bc-a` (with the ad account `acc-a`) and `bc-b`, both subscribed."""
    store = FakeStore()
    for owner in (
        Owner("bc-a", "business_center", "bc-a", "USD", None),
        Owner("acc-a", "ad_account", "bc-a", "USD", "monthly_invoicing"),
        Owner("bc-b", "business_center", "bc-b", "USD", None),
    ):
        store.owners[owner.owner_id] = owner
    for owner_id in store.owners:
        store.subscriptions[owner_id] = Subscription(owner_id, "active", None, NOW)
    return FakeWork(store)


async def top_up(
    invoicing: Invoicing, work: FakeWork, caller: Caller, owner_id: str, amount_micros: int = USD
) -> domain.Invoice:
    result = await invoicing.top_up(work, caller, owner_id, "USD", amount_micros, None)
    assert result.invoice is not None
    return result.invoice


# W9 and the tenant fence ---------------------------------------------------------------------------------


async def test_w9_a_caller_without_a_role_in_the_owners_business_center_is_told_it_does_not_exist(
    invoicing: Invoicing, work: FakeWork
) -> None:
    stranger = person("bob", **{"bc-b": Role.ADMIN})
    invoice = await top_up(invoicing, work, OPERATOR, "bc-a")
    foreign: list[str] = []
    unknown: list[str] = []
    for owner_id, into in (("bc-a", foreign), ("nowhere", unknown)):
        for attempt in (
            invoicing.top_up(work, stranger, owner_id, "USD", USD, None),
            invoicing.billing_overview(work, stranger, owner_id),
            invoicing.read_subscription(work, stranger, owner_id),
            invoicing.list_invoices(work, stranger, owner_id, None),
        ):
            with pytest.raises(UnknownOwnerError) as raised:
                await attempt
            into.append(str(raised.value).replace(owner_id, "<id>"))
    assert foreign == unknown, "not yours is answered exactly as does not exist"
    with pytest.raises(UnknownInvoiceError) as foreign_invoice:
        await invoicing.read_invoice(work, stranger, invoice.id)
    with pytest.raises(UnknownInvoiceError) as unknown_invoice:
        await invoicing.read_invoice(work, stranger, "no-such-invoice")
    assert str(foreign_invoice.value).replace(invoice.id, "<id>") == str(unknown_invoice.value).replace(
        "no-such-invoice", "<id>"
    )
    assert await invoicing.list_invoices(work, stranger, None, None) == [], "nothing of bc-a in the stranger's own list"


async def test_w9_an_ad_account_is_billed_within_its_business_centers_roles(
    invoicing: Invoicing, work: FakeWork
) -> None:
    work.store.finance_managers_in.add("bc-a")
    manager = person("fiona", **{"bc-a": Role.FINANCE_MANAGER})
    invoice = await top_up(invoicing, work, manager, "acc-a", 3 * USD)
    assert (invoice.payer_id, invoice.amount_micros, invoice.recipient_user_id) == ("acc-a", 3 * USD, "fiona")
    assert [item.id for item in await invoicing.list_invoices(work, manager, None, None)] == [invoice.id]
    with pytest.raises(UnknownOwnerError):
        await invoicing.top_up(work, manager, "bc-b", "USD", USD, None)


async def test_w9_an_analyst_reads_billing_but_may_not_top_up_and_without_finance_roles_only_an_admin_may(
    invoicing: Invoicing, work: FakeWork
) -> None:
    analyst = person("andy", **{"bc-a": Role.ANALYST})
    operator_role = person("otto", **{"bc-a": Role.OPERATOR})
    invoice = await top_up(invoicing, work, person("ada", **{"bc-a": Role.ADMIN}), "bc-a")
    for caller in (analyst, operator_role):
        with pytest.raises(PermissionDeniedError):
            await invoicing.top_up(work, caller, "bc-a", "USD", USD, None)
        assert (await invoicing.read_invoice(work, caller, invoice.id)).id == invoice.id
        assert [item.id for item in (await invoicing.billing_overview(work, caller, "bc-a")).pending_top_ups] == [
            invoice.id
        ]


async def test_platform_operator_only_subscriptions_voids_and_funding_sources(
    invoicing: Invoicing, work: FakeWork
) -> None:
    admin = person("ada", **{"bc-a": Role.ADMIN})
    invoice = await top_up(invoicing, work, admin, "bc-a")
    source = FundingSource("fs-1", "Sales", "prepaid_invoice", "USD", 0, (), None, NOW)
    attempts = [
        invoicing.set_subscription(work, admin, "bc-a", "inactive", None),
        invoicing.change_status(work, admin, invoice.id, InvoiceStatus.VOID),
        invoicing.register_funding_source(work, admin, source),
        invoicing.read_funding_source(work, admin, "fs-1"),
        invoicing.charge_funding_source(work, admin, "fs-1", "c-1", USD, "USD", "x"),
        invoicing.top_up_funding_source(work, admin, "fs-1", USD),
        invoicing.payable_by_local_provider(work, admin, invoice.id),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDeniedError, match="only a platform operator"):
            await attempt
    assert work.store.funding_sources == {} and work.store.invoices_by_id[invoice.id].status is InvoiceStatus.OPEN
    assert (await invoicing.payable_by_local_provider(work, OPERATOR, invoice.id)).id == invoice.id
    with pytest.raises(UnknownInvoiceError):
        await invoicing.payable_by_local_provider(work, OPERATOR, "no-such-invoice")
    with pytest.raises(UnknownFundingSourceError):
        await invoicing.read_funding_source(work, OPERATOR, "fs-1")


async def test_api_keys_are_held_to_their_scopes(invoicing: Invoicing, work: FakeWork) -> None:
    sends = integration("sends-app", "sends", platform_operator=True)
    with pytest.raises(PermissionDeniedError, match="billing"):
        await invoicing.top_up(work, sends, "bc-a", "USD", USD, None)
    await invoicing.register_funding_source(
        work, OPERATOR, FundingSource("fs-1", "Sales", "prepaid_invoice", "USD", 0, (), None, NOW)
    )
    with pytest.raises(PermissionDeniedError, match="funding_sources"):
        await invoicing.charge_funding_source(work, sends, "fs-1", "c-1", USD, "USD", "x")
    charger = integration("charger", "funding_sources", platform_operator=True)
    charged = await invoicing.charge_funding_source(work, charger, "fs-1", "c-1", USD, "USD", "Send 7")
    assert charged.balance_after_micros == -USD
    billing_key = integration("billing-app", "billing", roles={"bc-a": Role.ADMIN})
    assert (await top_up(invoicing, work, billing_key, "bc-a")).payer_id == "bc-a"


# Top-ups and payments (I1, I2, I5) ------------------------------------------------------------------------


async def test_i2_m1_a_target_whose_invoice_would_pass_the_ledgers_bound_is_refused(
    invoicing: Invoicing, work: FakeWork
) -> None:
    work.store.balances["bc-a"] = Balance("bc-a", "business_center", "USD", -5 * USD, -5 * USD, 0, 3, NOW)
    with pytest.raises(domain.InvalidAmountError, match="at most"):
        await invoicing.top_up(work, OPERATOR, "bc-a", "USD", None, MAXIMUM_MICROS)
    result = await invoicing.top_up(work, OPERATOR, "bc-a", "USD", None, MAXIMUM_MICROS - 5 * USD)
    assert result.requested_micros == MAXIMUM_MICROS and work.store.invoices_by_id


async def test_i5_a_paid_top_up_is_published_once_for_the_wallet_to_credit(
    invoicing: Invoicing, work: FakeWork
) -> None:
    invoice = await top_up(invoicing, work, OPERATOR, "bc-a", 4 * USD)

    def notified(event_id: str) -> PaymentNotification:
        return PaymentNotification(event_id, "pay-1", invoice.id, PaymentOutcome.SUCCEEDED, 4 * USD, "USD")

    effects = [await invoicing.payment_notified(work, notified(event_id)) for event_id in ("evt-1", "evt-1", "evt-2")]
    assert effects == ["paid", "duplicate", "already_paid"]
    assert [(paid.invoice_id, paid.amount_micros) for paid in work.of_type(InvoicePaid)] == [(invoice.id, 4 * USD)]


async def test_c1_an_invoice_asked_for_with_an_id_too_long_for_its_derived_ids_is_refused(
    invoicing: Invoicing, work: FakeWork
) -> None:
    command = IssueInvoice(
        idempotency_key="k",
        invoice_id="i" * 128,
        owner_id="bc-a",
        amount_micros=USD,
        currency="USD",
        purpose="activation_shortfall",
        reference_id="campaign-1",
        description="x",
        requested_by="campaign",
    )
    with pytest.raises(domain.InvalidInvoiceIdError):
        await invoicing.issue_requested(work, command)
    assert work.store.invoices_by_id == {}


# Funding sources (I6) -----------------------------------------------------------------------------------


async def test_i6_a_prepaid_charge_below_zero_alerts_at_once_and_a_card_charge_opens_a_card_payment(
    invoicing: Invoicing, work: FakeWork, ledger: InMemoryLedger
) -> None:
    await invoicing.register_funding_source(
        work,
        OPERATOR,
        FundingSource("fs-pre", "Sales", "prepaid_invoice", "USD", 0, ("ops@acme.example",), "ap@acme.example", NOW),
    )
    await invoicing.register_funding_source(
        work, OPERATOR, FundingSource("fs-card", "Card", "credit_card", "USD", 0, (), None, NOW)
    )
    with pytest.raises(FundingSourceExistsError):
        await invoicing.register_funding_source(
            work, OPERATOR, FundingSource("fs-card", "Card", "credit_card", "USD", 0, (), None, NOW)
        )
    await ledger.register_owner(None, "bc-a", "business_center")
    with pytest.raises(OwnerIdTakenError):
        await invoicing.register_funding_source(
            work, OPERATOR, FundingSource("bc-a", "Taken", "prepaid_invoice", "USD", 0, (), None, NOW)
        )
    charged = await invoicing.charge_funding_source(work, OPERATOR, "fs-pre", "c-1", 2 * USD, "USD", "Adjustment")
    assert charged.balance_after_micros == -2 * USD
    assert [(email.template, email.recipient_address) for email in work.of_type(EmailRequested)] == [
        ("prepaid_source_negative", "ops@acme.example")
    ]
    with pytest.raises(ChargeConflictError):
        await invoicing.charge_funding_source(work, OPERATOR, "fs-pre", "c-1", 2 * USD, "USD", "Adjustment")
    card = await invoicing.charge_funding_source(work, OPERATOR, "fs-card", "c-2", 3 * USD, "USD", "Send 7")
    assert card.card_invoice_id == "card-c-2" and work.store.invoices_by_id["card-c-2"].automatic_collection
    assert [event.charge_id for event in work.of_type(FundingSourceCharged)] == ["c-1", "c-2"]
    paid = await invoicing.payment_notified(
        work, PaymentNotification("evt-card", "card_card-c-2", "card-c-2", PaymentOutcome.SUCCEEDED, 3 * USD, "USD")
    )
    assert paid == "paid" and await invoicing.funding_source_balance(work, "fs-card") == 0, "credited in the ledger"
    assert work.of_type(InvoicePaid) == [], "a funding source is credited here, not by the wallet"
    assert funding_source_account_id("fs-card") in await ledger.balances(None, [funding_source_account_id("fs-card")])


async def test_issue_12_card_collection_asks_the_provider_once_per_invoice_and_again_only_when_it_did_not_answer(
    invoicing: Invoicing, work: FakeWork, clock: ManualClock
) -> None:
    await invoicing.register_funding_source(
        work, OPERATOR, FundingSource("fs-card", "Card", "credit_card", "USD", 0, (), None, NOW)
    )
    await invoicing.charge_funding_source(work, OPERATOR, "fs-card", "c-1", USD, "USD", "Send 1")
    provider = RecordingProvider(down=True)
    jobs = ClockJobs(FakeTransactions(work.store), invoicing, provider, card_collection_retry_after_s=3600)
    assert await jobs.collect_card_payments() == 0, "the provider is down"
    provider.down = False
    assert await jobs.collect_card_payments() == 1, "a claim the provider did not answer was released: asked again"
    assert await jobs.collect_card_payments() == 0, "asked, and its webhook not come yet: not asked twice"
    clock.advance(timedelta(seconds=3599))
    assert await jobs.collect_card_payments() == 0
    clock.advance(timedelta(seconds=2))
    assert await jobs.collect_card_payments() == 1, (
        "no webhook after the retry time: asked again (idempotent by invoice id)"
    )
    assert provider.asked == ["card-c-1"] * 3


# Monthly invoices (I7) ----------------------------------------------------------------------------------


async def test_i7_a_monthly_invoice_of_an_ad_account_with_a_long_id_gets_an_id_its_events_can_carry(
    invoicing: Invoicing, work: FakeWork
) -> None:
    account = "a" * 128
    work.store.owners[account] = Owner(account, "ad_account", "bc-a", "USD", "monthly_invoicing")
    await invoicing.spend_posted(
        work,
        [
            SpendPosted(
                ad_account_id=account,
                campaign_id="c-1",
                business_center_id="bc-a",
                funding_mode="drawdown",
                amount_micros=USD,
                currency="USD",
                spend_event_count=2,
                first_occurred_at=NOW,
                last_occurred_at=NOW,
                posted_at=NOW,
            )
        ],
    )
    [invoice] = await invoicing.close_month(work, datetime(2026, 11, 1, tzinfo=UTC).date())
    assert len(invoice.id) <= domain.MAXIMUM_INVOICE_ID_LENGTH and invoice.id.startswith("month-")
    assert invoice.id == domain.derived_invoice_id("month", account, "2026-11"), "the same cause names the same invoice"
    assert domain.derived_invoice_id("month", "acc-1", "2026-11") == "month-acc-1-2026-11"


# The sends service's ChargeFundingSource (U3-U6, I6) -----------------------------------------------------


def _charge(source: str, charge: str, amount: int, **more: object) -> object:
    from adledger_contracts.sends import ChargeFundingSource

    return ChargeFundingSource(charge_id=charge, funding_source_id=source, amount_micros=amount, currency="USD",
                               description="Send 1", requested_by="sends", idempotency_key=f"k-{charge}",
                               **more)  # type: ignore[arg-type]


async def test_u3_u6_a_sends_charge_is_applied_once_and_add_funds_invoices_a_prepaid_shortfall(
    invoicing: Invoicing, work: FakeWork, ledger: InMemoryLedger
) -> None:
    source = FundingSource("fs-s", "Sales", "prepaid_invoice", "USD", 0, ("ops@x.example",), "ap@x.example", NOW)
    await invoicing.register_funding_source(work, OPERATOR, source)
    charged = await invoicing.charge_requested(work, _charge("fs-s", "c-1", 5 * USD))  # type: ignore[arg-type]
    assert charged is not None and charged.balance_after_micros == -5 * USD
    assert await invoicing.charge_requested(work, _charge("fs-s", "c-1", 5 * USD)) is None, "M5: once"  # type: ignore[arg-type]
    assert await invoicing.funding_source_balance(work, "fs-s") == -5 * USD
    await invoicing.charge_requested(work, _charge("fs-s", "c-2", 3 * USD, add_funds=True))  # type: ignore[arg-type]
    added = [i for i in work.store.invoices_by_id.values() if i.reference_id == "c-2"]
    assert [(i.purpose.value, i.amount_micros) for i in added] == [("funding_source_top_up", 3 * USD)]
    # U5: a refund credits the source back, once per charge id.
    for _ in range(2):
        await invoicing.charge_requested(work, _charge("fs-s", "r-1", 2 * USD, direction="refund"))  # type: ignore[arg-type]
    assert await invoicing.funding_source_balance(work, "fs-s") == -6 * USD
