"""The invoicing use cases (rules I1-I8, W9, W12, C1): top-ups that count only once paid, provider
payments, prepayment, activation-shortfall, monthly and day-close invoices, funding sources.

Money never moves here for Business Centers and ad accounts: a paid invoice is published as
`InvoicePaid` (through the outbox, in the transaction that marked it paid) and the wallet credits
it exactly once. A funding source (I6) is this service's own ledger account in the shared ledger
(`fs/<id>/balance`): its charges and payments are double-entry transfers (M3) made here.
Every change of an invoice is an `InvoiceStatusChanged` snapshot, and every e-mail an
`EmailRequested` for the e-mail adapter (I8), all on `invoicing.events.v1`.

Who may do what: an owner (a Business Center or an ad account) is billed within its Business
Center's roles (W9): `read` to see its invoices and billing, `request_top_up` to top it up. A caller
with no role there is told the owner does not exist, exactly as for an owner that does not (the
tenants are fenced). Subscriptions, voids, funding sources and their money are the platform
operator's. API keys are limited by scope: `billing` for owners' billing, `funding_sources` for
funding sources. The core depends only on its ports (`ports/`), the ledger's port and the clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from adledger_auth.callers import Caller
from adledger_auth.roles import Action
from adledger_contracts.external import BalanceChanged
from adledger_contracts.invoicing import FundingSourceCharged, InvoiceLine, InvoiceStatusChanged, IssueInvoice
from adledger_contracts.notifications import EmailRequested, EmailTemplate
from adledger_contracts.sends import ChargeFundingSource
from adledger_contracts.spending import SpendPosted
from adledger_contracts.wallet import AdAccountOpened, BusinessCenterOpened, InvoicePaid, PrepaymentThresholdCrossed
from adledger_ledger.domain import Account, TransferRequest, balance, raise_first_error
from adledger_ledger.owners import system_account_id, system_accounts
from adledger_ledger.ports import Ledger
from adledger_libs.clock import Clock
from adledger_libs.logs import get_logger
from adledger_libs.refusals import Refusal

from adledger_invoicing.domain import invoices as domain
from adledger_invoicing.domain.billing import (
    Balance,
    FundingSource,
    MonthlySpend,
    Owner,
    PaymentNotification,
    RecordedNotification,
    Subscription,
    SubscriptionStatus,
)
from adledger_invoicing.domain.invoices import Effect, Invoice, InvoiceStatus, Line, PayerKind, Purpose
from adledger_invoicing.ports.payments import PaymentProvider, PaymentProviderUnavailableError
from adledger_invoicing.ports.store import UnknownFundingSourceError, UnknownInvoiceError, UnknownOwnerError
from adledger_invoicing.ports.unit_of_work import InvoicingWork, Transactions

log = get_logger(__name__)

INVOICING_EVENTS_TOPIC = "invoicing.events.v1"
#: What an API key must be allowed (`caller.require_scope`) to use each part of the API.
BILLING_SCOPE = "billing"
FUNDING_SOURCES_SCOPE = "funding_sources"


class FundingSourceExistsError(Refusal):
    """A funding source with this id exists already."""


class ChargeConflictError(Refusal):
    """A charge id was used before for another funding source or amount."""


@dataclass(frozen=True)
class TopUpResult:
    invoice: Invoice | None
    requested_micros: int
    message: str | None


@dataclass(frozen=True)
class BillingOverview:
    balance: Balance | None
    pending_top_ups: list[Invoice]
    outstanding: list[Invoice]


def funding_source_account_id(funding_source_id: str) -> str:
    return f"fs/{funding_source_id}/balance"


class Invoicing:
    def __init__(self, clock: Clock, ledger: Ledger[Any], *, events_topic: str = INVOICING_EVENTS_TOPIC) -> None:
        self.clock = clock
        self.ledger = ledger
        self.events_topic = events_topic

    # Who may do what (W9, the tenant fence) ------------------------------------------------------

    async def _owner_for(self, work: InvoicingWork, caller: Caller, owner_id: str, action: Action) -> Owner | None:
        """The owner, once the caller may take `action` for it in its Business Center (W9). A
        caller with no role there gets `UnknownOwnerError`, as for an owner that does not exist.
        A platform operator may act for any owner, also one this service has not seen opened."""
        caller.require_scope(BILLING_SCOPE)
        owner = await work.store.owner(owner_id)
        if caller.platform_operator:
            return owner
        if owner is None or not caller.is_member_of(owner.business_center_id):
            raise UnknownOwnerError(owner_id)
        center = owner.business_center_id
        caller.require(center, action, finance_roles_set_up=await work.store.finance_roles_set_up(center))
        return owner

    @staticmethod
    def _require_platform(caller: Caller, action: str, scope: str) -> None:
        caller.require_scope(scope)
        caller.require_platform(action)

    # Subscriptions (I4) --------------------------------------------------------------------------

    async def set_subscription(
        self, work: InvoicingWork, caller: Caller, owner_id: str, status: SubscriptionStatus, billing_email: str | None
    ) -> Subscription:
        """I4: the platform operator activates or ends an owner's subscription."""
        self._require_platform(caller, "set subscriptions", BILLING_SCOPE)
        return await work.store.set_subscription(owner_id, status, billing_email, caller.user_id, self.clock.now())

    async def read_subscription(self, work: InvoicingWork, caller: Caller, owner_id: str) -> Subscription | None:
        await self._owner_for(work, caller, owner_id, Action.READ)
        return await work.store.subscription(owner_id)

    # Top-ups (I1-I4) -------------------------------------------------------------------------------

    async def top_up(
        self,
        work: InvoicingWork,
        caller: Caller,
        owner_id: str,
        currency: str,
        amount_micros: int | None,
        target_micros: int | None,
    ) -> TopUpResult:
        """I1: an invoice, never a balance change; I2: a target invoices target − balance, or
        nothing and says so; I3: open invoices are left as they are; I4: subscribers only."""
        owner = await self._owner_for(work, caller, owner_id, Action.REQUEST_TOP_UP)
        store = work.store
        subscription = await store.subscription(owner_id)
        known_balance = await store.balance(owner_id)
        account_currency = owner.currency if owner else known_balance.currency if known_balance else None
        plan = domain.plan_top_up(
            owner_id=owner_id,
            subscription_active=subscription is not None and subscription.status == "active",
            account_currency=account_currency,
            currency=currency,
            amount_micros=amount_micros,
            target_micros=target_micros,
            balance_micros=known_balance.real_micros if known_balance else None,
        )
        if not plan.invoiced:
            return TopUpResult(None, 0, plan.reason)
        description = (
            f"Top-up of the credit balance to {domain.format_money(target_micros, currency)}"
            if target_micros is not None
            else "Top-up of the credit balance"
        )
        invoice = await self._issue(
            work,
            payer_id=owner_id,
            payer_kind="owner",
            purpose=Purpose.TOP_UP,
            currency=currency,
            lines=[Line(description, plan.amount_micros)],
            recipient_user_id=caller.user_id,
            recipient_address=subscription.billing_email if subscription else None,
        )
        assert invoice is not None
        return TopUpResult(invoice, plan.amount_micros, None)

    async def billing_overview(self, work: InvoicingWork, caller: Caller, owner_id: str) -> BillingOverview:
        """I1: the balance (the wallet's, from balances.v1) and, apart from it, the pending
        top-ups and the other invoices still to pay."""
        await self._owner_for(work, caller, owner_id, Action.READ)
        payable = await work.store.invoices(payer_ids=[owner_id], statuses=["open", "uncollectible"])
        return BillingOverview(
            balance=await work.store.balance(owner_id),
            pending_top_ups=[invoice for invoice in payable if invoice.purpose is Purpose.TOP_UP],
            outstanding=[invoice for invoice in payable if invoice.purpose is not Purpose.TOP_UP],
        )

    # Invoices asked for by other services and by the wallet (C1, W12) -----------------------------

    async def issue_requested(self, work: InvoicingWork, command: IssueInvoice) -> Invoice | None:
        """C1: the campaign service's activation-shortfall invoice, once per `invoice_id`. Raises
        `CurrencyMismatchError` for an owner known in another currency (M2): dead-lettered."""
        store = work.store
        if await store.invoice(command.invoice_id) is not None:
            return None
        owner = await store.owner(command.owner_id)
        if owner is not None and owner.currency != command.currency:
            raise domain.CurrencyMismatchError(owner.currency, command.currency)
        subscription = await store.subscription(command.owner_id)
        return await self._issue(
            work,
            invoice_id=command.invoice_id,
            payer_id=command.owner_id,
            payer_kind="owner",
            purpose=Purpose(command.purpose),
            currency=command.currency,
            lines=[Line(command.description, command.amount_micros)],
            reference_id=command.reference_id,
            recipient_address=subscription.billing_email if subscription else None,
        )

    async def prepayment_needed(self, work: InvoicingWork, signal: PrepaymentThresholdCrossed) -> Invoice | None:
        """W12: the virtual balance fell below the threshold: one prepayment invoice, unless one
        is open already (also a partial unique index)."""
        store = work.store
        if await store.owner(signal.owner_id) is None:
            # Not a Business Center this service knows (it reads wallet.events.v1 from the start):
            # another environment's signal on a shared broker.
            log.info("prepayment_signal_for_unknown_owner", owner_id=signal.owner_id)
            return None
        open_ones = await store.invoices(
            payer_ids=[signal.owner_id], statuses=["draft", "open"], purposes=["prepayment"]
        )
        if open_ones:
            log.info("prepayment_already_open", owner_id=signal.owner_id, invoice_id=open_ones[0].id)
            return None
        amount = domain.prepayment_amount(
            virtual_micros=signal.virtual_micros,
            last_payment_micros=signal.last_payment_micros,
            threshold_micros=signal.threshold_micros,
        )
        if amount <= 0:
            return None
        subscription = await store.subscription(signal.owner_id)
        virtual = domain.format_money(signal.virtual_micros, signal.currency)
        threshold = domain.format_money(signal.threshold_micros, signal.currency)
        return await self._issue(
            work,
            payer_id=signal.owner_id,
            payer_kind="owner",
            purpose=Purpose.PREPAYMENT,
            currency=signal.currency,
            lines=[Line(f"Prepayment: the virtual balance ({virtual}) fell below the threshold ({threshold})", amount)],
            reference_id=signal.event_id,
            recipient_address=subscription.billing_email if subscription else None,
        )

    # Reads and the operator's commands (I5) --------------------------------------------------------

    async def read_invoice(self, work: InvoicingWork, caller: Caller, invoice_id: str) -> Invoice:
        """An invoice the caller may read: its owner's `read` (W9), or a platform operator. A
        funding source's invoices are the operator's; anyone else is told they do not exist."""
        caller.require_scope(BILLING_SCOPE)
        invoice = await work.store.invoice(invoice_id)
        if invoice is None or (invoice.payer_kind == "funding_source" and not caller.platform_operator):
            raise UnknownInvoiceError(invoice_id)
        if invoice.payer_kind == "owner":
            try:
                await self._owner_for(work, caller, invoice.payer_id, Action.READ)
            except UnknownOwnerError:
                raise UnknownInvoiceError(invoice_id) from None
        return invoice

    async def list_invoices(
        self, work: InvoicingWork, caller: Caller, owner_id: str | None, status: InvoiceStatus | None
    ) -> list[Invoice]:
        """An owner's invoices, or (without an owner) every invoice the caller may read: all of
        them for a platform operator, else those of the Business Centers it holds a role in and
        of their ad accounts. Newest first, at most 200."""
        caller.require_scope(BILLING_SCOPE)
        statuses = [status.value] if status else None
        if owner_id is not None:
            await self._owner_for(work, caller, owner_id, Action.READ)
            return await work.store.invoices(payer_ids=[owner_id], statuses=statuses)
        if caller.platform_operator:
            return await work.store.invoices(payer_ids=None, statuses=statuses)
        payer_ids = await work.store.owners_in(sorted(caller.roles_by_business_center))
        return await work.store.invoices(payer_ids=payer_ids, statuses=statuses)

    async def change_status(
        self, work: InvoicingWork, caller: Caller, invoice_id: str, wanted: InvoiceStatus
    ) -> Invoice:
        """I5: the platform operator voids an invoice or marks it uncollectible."""
        self._require_platform(caller, f"mark invoices {wanted.value}", BILLING_SCOPE)
        invoice = await self._load_invoice(work, invoice_id, for_update=True)
        return await self._apply(work, invoice, domain.transition(invoice, wanted))

    # Payments (I5) --------------------------------------------------------------------------------

    async def payment_notified(self, work: InvoicingWork, notification: PaymentNotification) -> str:
        """Apply one verified provider notification; answers what it did (an `Effect`, or
        `duplicate` / `unknown_invoice`). Idempotent by the provider's event id, and safe in any
        order: only the first success of a payment pays an invoice; a failure never undoes it."""
        store = work.store
        now = self.clock.now()
        if not await store.add_notification(notification, now):
            return "duplicate"
        invoice = await store.invoice(notification.invoice_id, for_update=True)
        if invoice is None:
            await store.set_notification_effect(notification.provider_event_id, "unknown_invoice")
            log.warning(
                "payment_for_unknown_invoice", invoice_id=notification.invoice_id, payment_id=notification.payment_id
            )
            return "unknown_invoice"
        decision = domain.apply_payment_notification(
            invoice,
            payment_id=notification.payment_id,
            outcome=notification.outcome,
            amount_micros=notification.amount_micros,
            currency=notification.currency,
            payment_succeeded_before=await store.payment_succeeded_before(
                notification.payment_id, notification.provider_event_id
            ),
            now=now,
        )
        await store.set_notification_effect(notification.provider_event_id, decision.effect.value)
        if decision.effect is Effect.PAID:
            await self._apply(work, invoice, decision.invoice)
        elif decision.effect in (Effect.REFUND_DUE, Effect.AMOUNT_MISMATCH):
            log.warning(
                "payment_needs_an_operator",
                invoice_id=invoice.id,
                payment_id=notification.payment_id,
                effect=decision.effect.value,
            )
        log.info(
            "payment_notified",
            invoice_id=invoice.id,
            payment_id=notification.payment_id,
            outcome=notification.outcome.value,
            effect=decision.effect.value,
        )
        return decision.effect.value

    async def notifications_of(
        self, work: InvoicingWork, caller: Caller, invoice_id: str
    ) -> list[RecordedNotification]:
        await self.read_invoice(work, caller, invoice_id)
        return await work.store.notifications_of(invoice_id)

    async def payable_by_local_provider(self, work: InvoicingWork, caller: Caller, invoice_id: str) -> Invoice:
        """The invoice the local provider is asked to pay: a platform operator's tool only, or
        anyone who may read an invoice could mint money with it (issue 12)."""
        self._require_platform(caller, "drive the local payment provider", BILLING_SCOPE)
        return await self._load_invoice(work, invoice_id)

    # Funding sources (I6) ------------------------------------------------------------------------------

    async def register_funding_source(
        self, work: InvoicingWork, caller: Caller, source: FundingSource
    ) -> FundingSource:
        self._require_platform(caller, "register funding sources", FUNDING_SOURCES_SCOPE)
        source = replace(source, created_at=self.clock.now())
        if not await work.store.add_funding_source(source):
            raise FundingSourceExistsError(f"funding source {source.id!r} exists already")
        # Owner ids are unique across kinds (issue 12): a funding source cannot take the id of a
        # Business Center or an ad account, whose money would then be its (`OwnerIdTakenError`).
        await self.ledger.register_owner(work.ledger_session, source.id, "funding_source")
        account = Account(
            id=funding_source_account_id(source.id), currency=source.currency, code="funding_source", owner_id=source.id
        )
        await self.ledger.create_accounts(work.ledger_session, [*system_accounts(source.currency), account])
        return source

    async def funding_source_balance(self, work: InvoicingWork, funding_source_id: str) -> int:
        account_id = funding_source_account_id(funding_source_id)
        accounts = await self.ledger.balances(work.ledger_session, [account_id])
        return balance(accounts[account_id])

    async def read_funding_source(
        self, work: InvoicingWork, caller: Caller, funding_source_id: str
    ) -> tuple[FundingSource, int]:
        self._require_platform(caller, "read funding sources", FUNDING_SOURCES_SCOPE)
        source = await self._load_funding_source(work, funding_source_id)
        return source, await self.funding_source_balance(work, funding_source_id)

    async def charge_funding_source(
        self,
        work: InvoicingWork,
        caller: Caller,
        funding_source_id: str,
        charge_id: str,
        amount_micros: int,
        currency: str,
        description: str,
    ) -> FundingSourceCharged:
        """I6 (U5, U6): a charge to a funding source. A prepaid source is debited even below
        zero, and its low-balance contacts are e-mailed at once; a credit-card source is debited
        and gets one card payment (an automatically collected invoice) for the charge."""
        self._require_platform(caller, "charge funding sources", FUNDING_SOURCES_SCOPE)
        return await self._charge(work, funding_source_id, charge_id, amount_micros, currency, description)

    async def charge_requested(self, work: InvoicingWork, command: ChargeFundingSource) -> FundingSourceCharged | None:
        """A signed `ChargeFundingSource` of the sends service (U3-U6): the same charge as an
        operator's (I6), once per `charge_id` (a repeat of the same charge changes nothing). With
        `add_funds` (U3), a prepaid source that did not cover the charge gets an invoice for the
        shortfall. A refund (U5, a lower final cost) credits the source back."""
        if command.direction == "refund":
            await self._refund(work, command)
            return None
        source = await self._load_funding_source(work, command.funding_source_id)
        before = await self.funding_source_balance(work, source.id)
        try:
            event = await self._charge(
                work, command.funding_source_id, command.charge_id, command.amount_micros, command.currency,
                command.description,
            )
        except ChargeConflictError:
            return None  # the same command again (M5): applied once
        shortfall = command.amount_micros - max(before, 0)
        if command.add_funds and source.kind == "prepaid_invoice" and shortfall > 0:
            await self._issue(
                work,
                invoice_id=domain.derived_invoice_id("add-funds", command.charge_id),
                payer_id=source.id,
                payer_kind="funding_source",
                purpose=Purpose.FUNDING_SOURCE_TOP_UP,
                currency=source.currency,
                lines=[Line(f"Funds added for: {command.description}", shortfall)],
                reference_id=command.charge_id,
                recipient_address=source.accounts_payable_contact,
            )
        return event

    async def _refund(self, work: InvoicingWork, command: ChargeFundingSource) -> None:
        source = await self._load_funding_source(work, command.funding_source_id)
        if command.currency != source.currency:
            raise domain.CurrencyMismatchError(source.currency, command.currency)
        results = await self.ledger.create_transfers(
            work.ledger_session,
            [
                TransferRequest(
                    id=f"funding_source_refund:{command.charge_id}",
                    debit_account_id=system_account_id("platform_revenue", source.currency),
                    credit_account_id=funding_source_account_id(source.id),
                    amount_micros=command.amount_micros,
                    currency=source.currency,
                    code="funding_source_refund",
                )
            ],
            self.clock.now(),
        )
        raise_first_error(results)

    async def _charge(
        self, work: InvoicingWork, funding_source_id: str, charge_id: str, amount_micros: int, currency: str,
        description: str,
    ) -> FundingSourceCharged:
        source = await self._load_funding_source(work, funding_source_id, for_update=True)
        if currency != source.currency:
            raise domain.CurrencyMismatchError(source.currency, currency)
        if type(amount_micros) is not int or amount_micros <= 0:
            raise domain.InvalidAmountError("amount_micros must be a positive integer (M1)")
        now = self.clock.now()
        if not await work.store.add_charge(charge_id, source.id, amount_micros, description, now):
            raise ChargeConflictError(f"charge {charge_id!r} exists already")
        results = await self.ledger.create_transfers(
            work.ledger_session,
            [
                TransferRequest(
                    id=f"funding_source_charge:{charge_id}",
                    debit_account_id=funding_source_account_id(source.id),
                    credit_account_id=system_account_id("platform_revenue", source.currency),
                    amount_micros=amount_micros,
                    currency=source.currency,
                    code="funding_source_charge",
                )
            ],
            now,
        )
        raise_first_error(results)
        balance_after = await self.funding_source_balance(work, source.id)
        card_invoice_id: str | None = None
        if source.kind == "credit_card":
            invoice = await self._issue(
                work,
                invoice_id=domain.derived_invoice_id("card", charge_id),
                payer_id=source.id,
                payer_kind="funding_source",
                purpose=Purpose.CARD_CHARGE,
                currency=source.currency,
                lines=[Line(description, amount_micros)],
                reference_id=charge_id,
                automatic_collection=True,
                email=False,
            )
            assert invoice is not None
            card_invoice_id = invoice.id
            await work.store.set_charge_card_invoice(charge_id, invoice.id)
        else:
            self._alert_low_balance(work, source, charge_id, balance_after, now)
        event = FundingSourceCharged(
            funding_source_id=source.id,
            kind=source.kind,
            charge_id=charge_id,
            amount_micros=amount_micros,
            currency=source.currency,
            description=description,
            balance_after_micros=balance_after,
            card_invoice_id=card_invoice_id,
            charged_at=now,
        )
        work.publish(event, topic=self.events_topic, key=source.id)
        return event

    def _alert_low_balance(
        self, work: InvoicingWork, source: FundingSource, charge_id: str, balance_after: int, now: datetime
    ) -> None:
        """I6: a prepaid source's low-balance contacts are e-mailed at once, in the charge's transaction."""
        template = domain.low_balance_alert(
            balance_micros=balance_after, threshold_micros=source.low_balance_threshold_micros
        )
        if template is None:
            return
        shown = domain.format_money(balance_after, source.currency)
        fields = (
            {"funding_source_name": source.name, "balance": shown}
            if template == "prepaid_source_negative"
            else {
                "owner_name": source.name,
                "balance": shown,
                "threshold": domain.format_money(source.low_balance_threshold_micros, source.currency),
            }
        )
        for number, contact in enumerate(source.low_balance_contacts):
            work.publish(
                EmailRequested(
                    email_id=f"funding-source:{source.id}:charge:{charge_id}:{number}",
                    template=template,
                    recipient_address=contact,
                    subject_id=source.id,
                    fields=fields,
                    requested_at=now,
                ),
                topic=self.events_topic,
                key=source.id,
            )

    async def top_up_funding_source(
        self, work: InvoicingWork, caller: Caller, funding_source_id: str, amount_micros: int
    ) -> Invoice:
        """A prepaid source is funded in advance by an invoice; paid, it credits the source."""
        self._require_platform(caller, "top up funding sources", FUNDING_SOURCES_SCOPE)
        source = await self._load_funding_source(work, funding_source_id)
        invoice = await self._issue(
            work,
            payer_id=source.id,
            payer_kind="funding_source",
            purpose=Purpose.FUNDING_SOURCE_TOP_UP,
            currency=source.currency,
            lines=[Line(f"Prepayment of the funding source {source.name}", amount_micros)],
            recipient_address=source.accounts_payable_contact,
        )
        assert invoice is not None
        return invoice

    async def close_funding_source_day(self, work: InvoicingWork, day: date) -> list[Invoice]:
        """I6: at the UTC close of `day`, one invoice per prepaid source for its remaining negative
        balance, to its accounts-payable contact; then the day is recorded as closed."""
        store = work.store
        day_end = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
        issued: list[Invoice] = []
        for source in await store.prepaid_sources_created_before(day_end):
            amount = domain.day_close_amount(
                balance_micros=await self.funding_source_balance(work, source.id),
                open_day_close_invoices_micros=await store.open_day_close_invoices_micros(source.id),
            )
            if amount <= 0:
                continue
            invoice = await self._issue(
                work,
                invoice_id=domain.derived_invoice_id("day-close", source.id, day.isoformat()),
                payer_id=source.id,
                payer_kind="funding_source",
                purpose=Purpose.FUNDING_SOURCE_DAY_CLOSE,
                currency=source.currency,
                lines=[Line(f"Negative balance of {source.name} at the close of {day.isoformat()} (UTC)", amount)],
                reference_id=day.isoformat(),
                period_start=day,
                recipient_address=source.accounts_payable_contact,
            )
            if invoice is not None:
                issued.append(invoice)
        await store.close_day(day, self.clock.now())
        return issued

    # Monthly invoicing (I7) and what the wallet tells (owners, balances) -------------------------------

    async def spend_posted(self, work: InvoicingWork, events: Sequence[SpendPosted]) -> None:
        """I7: sum posted spend per ad account, calendar month of `posted_at` and campaign. Spend
        for a month already closed (a late event) goes into the current month's invoice."""
        # Months close in order, so every month up to the last closed one is closed.
        last_closed = await work.store.last_closed_month()
        current = domain.month_start(self.clock.now())
        sums: dict[tuple[str, date, str], MonthlySpend] = {}
        for event in events:
            month = domain.month_start(event.posted_at)
            if last_closed is not None and month <= last_closed:
                month = max(current, domain.next_month(last_closed))
            key = (event.ad_account_id, month, event.campaign_id)
            before = sums.get(key) or MonthlySpend(event.ad_account_id, month, event.campaign_id, event.currency, 0, 0)
            sums[key] = replace(
                before,
                amount_micros=before.amount_micros + event.amount_micros,
                event_count=before.event_count + event.spend_event_count,
            )
        await work.store.add_monthly_spend(list(sums.values()))

    async def close_month(self, work: InvoicingWork, month: date) -> list[Invoice]:
        """I7: one invoice per ad account on monthly invoicing for the spend posted in `month`,
        one line per campaign; then the month is recorded as closed."""
        store = work.store
        by_account: dict[str, list[MonthlySpend]] = {}
        for spend in await store.monthly_spend_of(month):
            by_account.setdefault(spend.ad_account_id, []).append(spend)
        issued: list[Invoice] = []
        for ad_account_id, spends in by_account.items():
            total = sum(spend.amount_micros for spend in spends)
            if total <= 0 or await store.monthly_invoice_id(ad_account_id, month) is not None:
                continue
            subscription = await store.subscription(ad_account_id)
            label = domain.month_label(month)
            invoice = await self._issue(
                work,
                invoice_id=domain.derived_invoice_id("month", ad_account_id, month.strftime("%Y-%m")),
                payer_id=ad_account_id,
                payer_kind="owner",
                purpose=Purpose.MONTHLY_SPEND,
                currency=spends[0].currency,
                lines=[
                    Line(
                        f"Spend of campaign {spend.campaign_id} in {label} ({spend.event_count} events)",
                        spend.amount_micros,
                    )
                    for spend in spends
                    if spend.amount_micros != 0
                ],
                reference_id=month.strftime("%Y-%m"),
                period_start=month,
                recipient_address=subscription.billing_email if subscription else None,
            )
            if invoice is not None:
                issued.append(invoice)
        await store.close_month(month, self.clock.now())
        return issued

    async def owner_opened(self, work: InvoicingWork, event: BusinessCenterOpened | AdAccountOpened) -> None:
        """Owners and their Business Center (whose roles decide who bills for them, W9)."""
        if isinstance(event, BusinessCenterOpened):
            owner = Owner(event.business_center_id, "business_center", event.business_center_id, event.currency, None)
        else:
            owner = Owner(
                event.ad_account_id, "ad_account", event.business_center_id, event.currency, event.billing_option
            )
        await work.store.add_owner(owner, event.opened_at)

    async def balances_changed(self, work: InvoicingWork, events: Sequence[BalanceChanged]) -> None:
        newest: dict[str, BalanceChanged] = {}
        for event in events:
            if event.owner_id not in newest or newest[event.owner_id].version < event.version:
                newest[event.owner_id] = event
        await work.store.keep_newest_balances(
            [
                Balance(
                    e.owner_id,
                    e.owner_kind,
                    e.currency,
                    e.real_micros,
                    e.virtual_micros,
                    e.available_micros,
                    e.version,
                    e.updated_at,
                )
                for e in newest.values()
            ]
        )

    # Helpers ---------------------------------------------------------------------------------------------

    @staticmethod
    async def _load_invoice(work: InvoicingWork, invoice_id: str, *, for_update: bool = False) -> Invoice:
        invoice = await work.store.invoice(invoice_id, for_update=for_update)
        if invoice is None:
            raise UnknownInvoiceError(invoice_id)
        return invoice

    @staticmethod
    async def _load_funding_source(
        work: InvoicingWork, funding_source_id: str, *, for_update: bool = False
    ) -> FundingSource:
        source = await work.store.funding_source(funding_source_id, for_update=for_update)
        if source is None:
            raise UnknownFundingSourceError(funding_source_id)
        return source

    async def _issue(
        self,
        work: InvoicingWork,
        *,
        payer_id: str,
        payer_kind: PayerKind,
        purpose: Purpose,
        currency: str,
        lines: list[Line],
        invoice_id: str | None = None,
        reference_id: str | None = None,
        period_start: date | None = None,
        automatic_collection: bool = False,
        recipient_user_id: str | None = None,
        recipient_address: str | None = None,
        email: bool = True,
    ) -> Invoice | None:
        """Create and issue an invoice with its events; None when the store says it exists."""
        invoice = domain.new_invoice(
            invoice_id=invoice_id or str(uuid.uuid4()),
            number=await work.store.next_invoice_number(),
            payer_id=payer_id,
            payer_kind=payer_kind,
            purpose=purpose,
            currency=currency,
            lines=lines,
            now=self.clock.now(),
            reference_id=reference_id,
            period_start=period_start,
            automatic_collection=automatic_collection,
            recipient_user_id=recipient_user_id,
            recipient_address=recipient_address,
        )
        if not await work.store.add_invoice(invoice):
            return None
        self._publish_snapshot(work, invoice, None)
        if email:
            self._email(
                work,
                invoice,
                "invoice_issued",
                {
                    "invoice_number": invoice.display_number,
                    "amount": domain.format_money(invoice.amount_micros, invoice.currency),
                    "due_on": invoice.due_on.isoformat(),
                },
            )
        log.info(
            "invoice_issued",
            invoice_id=invoice.id,
            number=invoice.display_number,
            purpose=purpose.value,
            amount_micros=invoice.amount_micros,
        )
        return invoice

    async def _apply(self, work: InvoicingWork, before: Invoice, after: Invoice) -> Invoice:
        """Save a changed invoice; a paid one is credited exactly once (the wallet through
        `InvoicePaid`, a funding source through the ledger), in this same transaction."""
        now = self.clock.now()
        await work.store.save_invoice(after, now)
        self._publish_snapshot(work, after, before.status)
        if after.status is InvoiceStatus.PAID and before.status is not InvoiceStatus.PAID:
            assert after.paid_at is not None
            if after.credited_by_wallet:
                work.publish(
                    InvoicePaid(
                        event_id=f"invoice:{after.id}:paid",
                        invoice_id=after.id,
                        owner_id=after.payer_id,
                        amount_micros=after.amount_micros,
                        currency=after.currency,
                        purpose=after.purpose.value,
                        paid_at=after.paid_at,
                    ),
                    topic=self.events_topic,
                    key=after.payer_id,
                )
            else:
                results = await self.ledger.create_transfers(
                    work.ledger_session,
                    [
                        TransferRequest(
                            id=f"payment:{after.id}:funding_source",
                            debit_account_id=system_account_id("world_payments", after.currency),
                            credit_account_id=funding_source_account_id(after.payer_id),
                            amount_micros=after.amount_micros,
                            currency=after.currency,
                            code="funding_source_payment",
                        )
                    ],
                    now,
                )
                raise_first_error(results)
            if not after.automatic_collection:
                self._email(
                    work,
                    after,
                    "invoice_paid",
                    {
                        "invoice_number": after.display_number,
                        "amount": domain.format_money(after.amount_micros, after.currency),
                    },
                )
        return after

    def _publish_snapshot(self, work: InvoicingWork, invoice: Invoice, previous: InvoiceStatus | None) -> None:
        work.publish(
            InvoiceStatusChanged(
                event_id=f"invoice:{invoice.id}:v{invoice.version}",
                invoice_id=invoice.id,
                number=invoice.display_number,
                payer_id=invoice.payer_id,
                payer_kind=invoice.payer_kind,
                purpose=invoice.purpose.value,
                previous_status=previous.value if previous else None,
                status=invoice.status.value,
                amount_micros=invoice.amount_micros,
                currency=invoice.currency,
                lines=[
                    InvoiceLine(description=line.description, amount_micros=line.amount_micros)
                    for line in invoice.lines
                ],
                reference_id=invoice.reference_id,
                issued_at=invoice.issued_at,
                due_on=invoice.due_on.isoformat(),
                paid_at=invoice.paid_at,
                payment_id=invoice.payment_id,
                version=invoice.version,
                changed_at=self.clock.now(),
            ),
            topic=self.events_topic,
            key=invoice.payer_id,
        )

    def _email(self, work: InvoicingWork, invoice: Invoice, template: EmailTemplate, fields: dict[str, str]) -> None:
        """I8: an e-mail is an event; the e-mail adapter renders and sends it. Sent only when the
        invoice has someone to write to (a billing address, or the user who asked)."""
        if invoice.recipient_address is None and invoice.recipient_user_id is None:
            return
        work.publish(
            EmailRequested(
                email_id=f"invoice:{invoice.id}:{template}",
                template=template,
                recipient_user_id=invoice.recipient_user_id if invoice.recipient_address is None else None,
                recipient_address=invoice.recipient_address,
                subject_id=invoice.id,
                fields=fields,
                requested_at=self.clock.now(),
            ),
            topic=self.events_topic,
            key=invoice.payer_id,
        )


class ClockJobs:
    """The clock-driven jobs (T1): UTC day closes of funding sources (I6), month closes (I7), and
    the collection of automatic card payments (I6). Each close runs in one transaction under the
    store's close lock with its `*_closes` row, so it happens once even with two instances or after
    downtime (then every missed close is run, oldest first). Tests move the ManualClock and call
    the methods directly."""

    def __init__(
        self,
        transactions: Transactions,
        invoicing: Invoicing,
        provider: PaymentProvider | None,
        *,
        card_collection_retry_after_s: int = 3600,
    ) -> None:
        self._transactions = transactions
        self._invoicing = invoicing
        self._provider = provider
        self._retry_after = timedelta(seconds=card_collection_retry_after_s)

    async def run_day_closes(self) -> list[Invoice]:
        issued: list[Invoice] = []
        while True:
            async with self._transactions.begin() as work:
                await work.store.lock_day_closes()
                first = await work.store.first_funding_source_day()
                if first is None:
                    return issued
                due = domain.due_days(
                    last_closed=await work.store.last_closed_day(), first_day=first, now=self._invoicing.clock.now()
                )
                if not due:
                    return issued
                issued += await self._invoicing.close_funding_source_day(work, due[0])
                log.info("funding_source_day_closed", day=due[0].isoformat())

    async def run_month_closes(self) -> list[Invoice]:
        issued: list[Invoice] = []
        while True:
            async with self._transactions.begin() as work:
                await work.store.lock_month_closes()
                first = await work.store.first_spend_month()
                if first is None:
                    return issued
                due = domain.due_months(
                    last_closed=await work.store.last_closed_month(), first_month=first, now=self._invoicing.clock.now()
                )
                if not due:
                    return issued
                issued += await self._invoicing.close_month(work, due[0])
                log.info("month_closed", month=due[0].isoformat())

    async def collect_card_payments(self) -> int:
        """Ask the provider to charge each open card-payment invoice; the provider's webhook pays it.

        Each invoice is claimed once: its "collection requested" mark is committed before the
        provider is asked, and claiming skips rows another instance is claiming, so two instances
        (or two rounds) never ask for the same invoice at once. A provider that is down gets the
        claim released and is asked again next round; a claim whose webhook never came (an
        instance stopped between the claim and the request) is taken again after
        `card_collection_retry_after_s`. The provider is asked idempotently by invoice id, so even
        that second request charges once."""
        provider = self._provider
        if provider is None:
            return 0
        now = self._invoicing.clock.now()
        async with self._transactions.begin() as work:
            claimed = await work.store.claim_collections(now, retry_before=now - self._retry_after)
        collected = 0
        for invoice in claimed:
            try:
                await provider.collect(invoice)
            except PaymentProviderUnavailableError as error:
                log.warning("card_collection_failed", invoice_id=invoice.id, error=str(error))
                async with self._transactions.begin() as work:
                    await work.store.release_collection(invoice.id)
                continue
            collected += 1
        return collected

    async def run(self) -> None:
        await self.run_day_closes()
        await self.run_month_closes()
        await self.collect_card_payments()
