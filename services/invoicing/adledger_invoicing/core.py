"""The invoicing use cases (rules I1-I8, W12, C1): top-ups that count only once paid, provider
payments, prepayment, activation-shortfall, monthly and day-close invoices, funding sources.

Money never moves here for Business Centers and ad accounts: a paid invoice is published as
`InvoicePaid` (through the outbox, in the transaction that marked it paid) and the wallet credits
it exactly once. A funding source (I6) is this service's own ledger account in the shared ledger
(`fs/<id>/balance`): its charges and payments are double-entry transfers (M3) made here.
Every change of an invoice is an `InvoiceStatusChanged` snapshot, and every e-mail an
`EmailRequested` for the e-mail adapter (I8), all on `invoicing.events.v1`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from adledger_contracts.external import BalanceChanged
from adledger_contracts.invoicing import FundingSourceCharged, InvoiceLine, InvoiceStatusChanged, IssueInvoice
from adledger_contracts.notifications import EmailRequested
from adledger_contracts.spending import SpendPosted
from adledger_contracts.wallet import AdAccountOpened, BusinessCenterOpened, InvoicePaid, PrepaymentThresholdCrossed
from adledger_invoicing.adapters import postgres as store
from adledger_invoicing.domain import invoices as domain
from adledger_invoicing.domain.invoices import Effect, Invoice, InvoiceStatus, Line, PaymentOutcome, Purpose
from adledger_invoicing.ports import PaymentProvider, PaymentProviderUnavailableError
from adledger_ledger.domain import Account, TransferRequest, balance, raise_first_error
from adledger_ledger.owners import system_account_id, system_accounts
from adledger_ledger.postgres import PostgresLedger
from adledger_libs.clock import Clock
from adledger_libs.logs import get_logger
from adledger_libs.outbox import OutboxRelay, UnitOfWork, unit_of_work

log = get_logger(__name__)

INVOICING_EVENTS_TOPIC = "invoicing.events.v1"


class PermissionDeniedError(Exception):
    """The caller may not bill for this owner, or is not an admin."""


class AlreadyExistsError(Exception):
    """A user or funding source with this id exists already."""


class ChargeConflictError(Exception):
    """A charge id was used before for another funding source or amount."""


@dataclass(frozen=True)
class Caller:
    user: store.User

    @property
    def id(self) -> str:
        return self.user.id


@dataclass(frozen=True)
class PaymentNotification:
    """A provider's notification, verified (signature and time) and parsed at the edge."""

    provider_event_id: str
    payment_id: str
    invoice_id: str
    outcome: PaymentOutcome
    amount_micros: int
    currency: str


@dataclass(frozen=True)
class TopUpResult:
    invoice: Invoice | None
    requested_micros: int
    message: str | None


def funding_source_account_id(funding_source_id: str) -> str:
    return f"fs/{funding_source_id}/balance"


class Invoicing:
    def __init__(self, clock: Clock, ledger: PostgresLedger, *, events_topic: str = INVOICING_EVENTS_TOPIC) -> None:
        self.clock = clock
        self.ledger = ledger
        self.events_topic = events_topic

    # Users and subscriptions (I4) ------------------------------------------------------------------

    async def create_user(self, uow: UnitOfWork, caller: Caller, user_id: str, name: str, owner_ids: list[str], admin: bool) -> str:
        self._require_admin(caller)
        token = secrets.token_urlsafe(32)
        if not await store.insert_user(uow.conn, user_id, name, token, admin=admin, owner_ids=owner_ids, now=self.clock.now()):
            raise AlreadyExistsError(f"user {user_id!r} exists already")
        return token

    async def set_subscription(self, uow: UnitOfWork, caller: Caller, owner_id: str, status: str, billing_email: str | None) -> store.Subscription:
        """I4: the platform operator activates or ends an owner's subscription."""
        self._require_admin(caller)
        return await store.set_subscription(uow.conn, owner_id, status, billing_email, caller.id, self.clock.now())

    async def read_subscription(self, uow: UnitOfWork, caller: Caller, owner_id: str) -> store.Subscription | None:
        await self._require_billing(uow, caller, owner_id)
        return await store.subscription(uow.conn, owner_id)

    # Top-ups (I1-I4) ---------------------------------------------------------------------------------

    async def top_up(
        self, uow: UnitOfWork, caller: Caller, owner_id: str, currency: str, amount_micros: int | None, target_micros: int | None
    ) -> TopUpResult:
        """I1: an invoice, never a balance change; I2: a target invoices target − balance, or
        nothing and says so; I3: open invoices are left as they are; I4: subscribers only."""
        await self._require_billing(uow, caller, owner_id)
        subscription = await store.subscription(uow.conn, owner_id)
        known_owner = await store.owner(uow.conn, owner_id)
        known_balance = await store.balance(uow.conn, owner_id)
        account_currency = known_owner.currency if known_owner else known_balance.currency if known_balance else None
        plan = domain.plan_top_up(
            owner_id=owner_id, subscription_active=subscription is not None and subscription.status == "active",
            account_currency=account_currency, currency=currency, amount_micros=amount_micros, target_micros=target_micros,
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
            uow, payer_id=owner_id, payer_kind="owner", purpose=Purpose.TOP_UP, currency=currency,
            lines=[Line(description, plan.amount_micros)], recipient_user_id=caller.id,
            recipient_address=subscription.billing_email if subscription else None,
        )
        assert invoice is not None
        return TopUpResult(invoice, plan.amount_micros, None)

    async def billing_overview(self, uow: UnitOfWork, caller: Caller, owner_id: str) -> tuple[store.Balance | None, list[Invoice], list[Invoice]]:
        """I1: the balance (the wallet's, from balances.v1) and, apart from it, the pending
        top-ups and the other invoices still to pay."""
        await self._require_billing(uow, caller, owner_id)
        payable = await store.list_invoices(uow.conn, payer_ids=[owner_id], statuses=["open", "uncollectible"])
        pending_top_ups = [invoice for invoice in payable if invoice.purpose is Purpose.TOP_UP]
        outstanding = [invoice for invoice in payable if invoice.purpose is not Purpose.TOP_UP]
        return await store.balance(uow.conn, owner_id), pending_top_ups, outstanding

    # Invoices asked for by other services and by the wallet (C1, W12) --------------------------------

    async def issue_requested(self, uow: UnitOfWork, command: IssueInvoice) -> Invoice | None:
        """C1: the campaign service's activation-shortfall invoice, once per `invoice_id`. Raises
        `CurrencyMismatchError` for an owner known in another currency (M2): dead-lettered."""
        if await store.find_invoice(uow.conn, command.invoice_id) is not None:
            return None
        owner = await store.owner(uow.conn, command.owner_id)
        if owner is not None and owner.currency != command.currency:
            raise domain.CurrencyMismatchError(owner.currency, command.currency)
        subscription = await store.subscription(uow.conn, command.owner_id)
        return await self._issue(
            uow, invoice_id=command.invoice_id, payer_id=command.owner_id, payer_kind="owner",
            purpose=Purpose(command.purpose), currency=command.currency,
            lines=[Line(command.description, command.amount_micros)], reference_id=command.reference_id,
            recipient_address=subscription.billing_email if subscription else None,
        )

    async def prepayment_needed(self, uow: UnitOfWork, signal: PrepaymentThresholdCrossed) -> Invoice | None:
        """W12: the virtual balance fell below the threshold: one prepayment invoice, unless one
        is open already (also a partial unique index)."""
        if await store.owner(uow.conn, signal.owner_id) is None:
            # Not a Business Center this service knows (it reads wallet.events.v1 from the start):
            # another environment's signal on a shared broker.
            log.info("prepayment_signal_for_unknown_owner", owner_id=signal.owner_id)
            return None
        open_ones = await store.list_invoices(uow.conn, payer_ids=[signal.owner_id], statuses=["draft", "open"], purposes=["prepayment"])
        if open_ones:
            log.info("prepayment_already_open", owner_id=signal.owner_id, invoice_id=open_ones[0].id)
            return None
        amount = domain.prepayment_amount(
            virtual_micros=signal.virtual_micros, last_payment_micros=signal.last_payment_micros, threshold_micros=signal.threshold_micros
        )
        if amount <= 0:
            return None
        subscription = await store.subscription(uow.conn, signal.owner_id)
        return await self._issue(
            uow, payer_id=signal.owner_id, payer_kind="owner", purpose=Purpose.PREPAYMENT, currency=signal.currency,
            lines=[Line(
                f"Prepayment: the virtual balance ({domain.format_money(signal.virtual_micros, signal.currency)}) fell below "
                f"the threshold ({domain.format_money(signal.threshold_micros, signal.currency)})", amount,
            )],
            reference_id=signal.event_id, recipient_address=subscription.billing_email if subscription else None,
        )

    # Reads and the operator's commands (I5) -------------------------------------------------------------

    async def read_invoice(self, uow: UnitOfWork, caller: Caller, invoice_id: str) -> Invoice:
        invoice = await store.load_invoice(uow.conn, invoice_id)
        await self._require_payer(uow, caller, invoice)
        return invoice

    async def list_invoices(self, uow: UnitOfWork, caller: Caller, owner_id: str | None, status: str | None) -> list[Invoice]:
        statuses = [status] if status else None
        if owner_id is not None:
            await self._require_billing(uow, caller, owner_id)
            return await store.list_invoices(uow.conn, payer_ids=[owner_id], statuses=statuses)
        if caller.user.admin:
            return await store.list_invoices(uow.conn, payer_ids=None, statuses=statuses)
        return await store.list_invoices(uow.conn, payer_ids=await store.billed_owners(uow.conn, caller.id), statuses=statuses)

    async def change_status(self, uow: UnitOfWork, caller: Caller, invoice_id: str, wanted: InvoiceStatus) -> Invoice:
        """I5: an admin voids an invoice or marks it uncollectible."""
        self._require_admin(caller)
        invoice = await store.load_invoice(uow.conn, invoice_id, for_update=True)
        return await self._apply(uow, invoice, domain.transition(invoice, wanted))

    # Payments (I5) -------------------------------------------------------------------------------------

    async def payment_notified(self, uow: UnitOfWork, notification: PaymentNotification) -> str:
        """Apply one verified provider notification; answers what it did (an `Effect`, or
        `duplicate` / `unknown_invoice`). Idempotent by the provider's event id, and safe in any
        order: only the first success of a payment pays an invoice; a failure never undoes it."""
        now = self.clock.now()
        new = await store.record_notification(
            uow.conn, provider_event_id=notification.provider_event_id, payment_id=notification.payment_id,
            invoice_id=notification.invoice_id, outcome=notification.outcome.value,
            amount_micros=notification.amount_micros, currency=notification.currency, now=now,
        )
        if not new:
            return "duplicate"
        invoice = await store.find_invoice(uow.conn, notification.invoice_id, for_update=True)
        if invoice is None:
            await store.set_notification_effect(uow.conn, notification.provider_event_id, "unknown_invoice")
            log.warning("payment_for_unknown_invoice", invoice_id=notification.invoice_id, payment_id=notification.payment_id)
            return "unknown_invoice"
        decision = domain.apply_payment_notification(
            invoice, payment_id=notification.payment_id, outcome=notification.outcome,
            amount_micros=notification.amount_micros, currency=notification.currency,
            payment_succeeded_before=await store.payment_succeeded_before(uow.conn, notification.payment_id, notification.provider_event_id),
            now=now,
        )
        await store.set_notification_effect(uow.conn, notification.provider_event_id, decision.effect.value)
        if decision.effect is Effect.PAID:
            await self._apply(uow, invoice, decision.invoice)
        elif decision.effect in (Effect.REFUND_DUE, Effect.AMOUNT_MISMATCH):
            log.warning("payment_needs_an_operator", invoice_id=invoice.id, payment_id=notification.payment_id, effect=decision.effect.value)
        log.info("payment_notified", invoice_id=invoice.id, payment_id=notification.payment_id, outcome=notification.outcome.value, effect=decision.effect.value)
        return decision.effect.value

    async def notifications_of(self, uow: UnitOfWork, caller: Caller, invoice_id: str) -> list[dict[str, object]]:
        await self.read_invoice(uow, caller, invoice_id)
        return await store.notifications_of(uow.conn, invoice_id)

    # Funding sources (I6) ---------------------------------------------------------------------------------

    async def register_funding_source(self, uow: UnitOfWork, caller: Caller, source: store.FundingSource) -> store.FundingSource:
        self._require_admin(caller)
        source = replace(source, created_at=self.clock.now())
        if not await store.insert_funding_source(uow.conn, source):
            raise AlreadyExistsError(f"funding source {source.id!r} exists already")
        await self.ledger.create_accounts(
            uow.conn,
            [*system_accounts(source.currency), Account(id=funding_source_account_id(source.id), currency=source.currency, code="funding_source", owner_id=source.id)],
        )
        return source

    async def funding_source_balance(self, uow: UnitOfWork, funding_source_id: str) -> int:
        accounts = await self.ledger.balances(uow.conn, [funding_source_account_id(funding_source_id)])
        return balance(accounts[funding_source_account_id(funding_source_id)])

    async def read_funding_source(self, uow: UnitOfWork, caller: Caller, funding_source_id: str) -> tuple[store.FundingSource, int]:
        self._require_admin(caller)
        source = await store.load_funding_source(uow.conn, funding_source_id)
        return source, await self.funding_source_balance(uow, funding_source_id)

    async def charge_funding_source(
        self, uow: UnitOfWork, caller: Caller, funding_source_id: str, charge_id: str, amount_micros: int, currency: str, description: str
    ) -> FundingSourceCharged:
        """I6 (U5, U6): a charge to a funding source. A prepaid source is debited even below
        zero, and its low-balance contacts are e-mailed at once; a credit-card source is debited
        and gets one card payment (an automatically collected invoice) for the charge."""
        self._require_admin(caller)
        source = await store.load_funding_source(uow.conn, funding_source_id, for_update=True)
        if currency != source.currency:
            raise domain.CurrencyMismatchError(source.currency, currency)
        if type(amount_micros) is not int or amount_micros <= 0:
            raise domain.InvalidAmountError("amount_micros must be a positive integer (M1)")
        now = self.clock.now()
        if not await store.insert_charge(uow.conn, charge_id, source.id, amount_micros, description, now):
            raise ChargeConflictError(f"charge {charge_id!r} exists already")
        results = await self.ledger.create_transfers(
            uow.conn,
            [TransferRequest(
                id=f"funding_source_charge:{charge_id}", debit_account_id=funding_source_account_id(source.id),
                credit_account_id=system_account_id("platform_revenue", source.currency), amount_micros=amount_micros,
                currency=source.currency, code="funding_source_charge",
            )],
            now,
        )
        raise_first_error(results)
        balance_after = await self.funding_source_balance(uow, source.id)
        card_invoice_id: str | None = None
        if source.kind == "credit_card":
            invoice = await self._issue(
                uow, invoice_id=f"card-{charge_id}", payer_id=source.id, payer_kind="funding_source", purpose=Purpose.CARD_CHARGE,
                currency=source.currency, lines=[Line(description, amount_micros)], reference_id=charge_id,
                automatic_collection=True, email=False,
            )
            assert invoice is not None
            card_invoice_id = invoice.id
            await store.set_charge_card_invoice(uow.conn, charge_id, invoice.id)
        else:
            template = domain.low_balance_alert(balance_micros=balance_after, threshold_micros=source.low_balance_threshold_micros)
            if template is not None:
                fields = (
                    {"funding_source_name": source.name, "balance": domain.format_money(balance_after, source.currency)}
                    if template == "prepaid_source_negative"
                    else {"owner_name": source.name, "balance": domain.format_money(balance_after, source.currency),
                          "threshold": domain.format_money(source.low_balance_threshold_micros, source.currency)}
                )
                for number, contact in enumerate(source.low_balance_contacts):
                    uow.publish(
                        EmailRequested(
                            email_id=f"funding-source:{source.id}:charge:{charge_id}:{number}", template=template,  # type: ignore[arg-type]
                            recipient_address=contact, subject_id=source.id, fields=fields, requested_at=now,
                        ),
                        topic=self.events_topic, key=source.id,
                    )
        event = FundingSourceCharged(
            funding_source_id=source.id, kind=source.kind, charge_id=charge_id, amount_micros=amount_micros,  # type: ignore[arg-type]
            currency=source.currency, description=description, balance_after_micros=balance_after,
            card_invoice_id=card_invoice_id, charged_at=now,
        )
        uow.publish(event, topic=self.events_topic, key=source.id)
        return event

    async def top_up_funding_source(self, uow: UnitOfWork, caller: Caller, funding_source_id: str, amount_micros: int) -> Invoice:
        """A prepaid source is funded in advance by an invoice; paid, it credits the source."""
        self._require_admin(caller)
        source = await store.load_funding_source(uow.conn, funding_source_id)
        invoice = await self._issue(
            uow, payer_id=source.id, payer_kind="funding_source", purpose=Purpose.FUNDING_SOURCE_TOP_UP, currency=source.currency,
            lines=[Line(f"Prepayment of the funding source {source.name}", amount_micros)],
            recipient_address=source.accounts_payable_contact,
        )
        assert invoice is not None
        return invoice

    async def close_funding_source_day(self, uow: UnitOfWork, day: date) -> list[Invoice]:
        """I6: at the UTC close of `day`, one invoice per prepaid source for its remaining negative
        balance, to its accounts-payable contact; then the day is recorded as closed."""
        day_end = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
        issued: list[Invoice] = []
        for source in await store.prepaid_sources_created_before(uow.conn, day_end):
            amount = domain.day_close_amount(
                balance_micros=await self.funding_source_balance(uow, source.id),
                open_day_close_invoices_micros=await store.open_day_close_invoices_micros(uow.conn, source.id),
            )
            if amount <= 0:
                continue
            invoice = await self._issue(
                uow, invoice_id=f"day-close-{source.id}-{day.isoformat()}", payer_id=source.id, payer_kind="funding_source",
                purpose=Purpose.FUNDING_SOURCE_DAY_CLOSE, currency=source.currency,
                lines=[Line(f"Negative balance of {source.name} at the close of {day.isoformat()} (UTC)", amount)],
                reference_id=day.isoformat(), period_start=day, recipient_address=source.accounts_payable_contact,
            )
            if invoice is not None:
                issued.append(invoice)
        await store.close_day(uow.conn, day, self.clock.now())
        return issued

    # Monthly invoicing (I7) and what the wallet tells (owners, balances) ----------------------------------

    async def spend_posted(self, uow: UnitOfWork, events: list[SpendPosted]) -> None:
        """I7: sum posted spend per ad account, calendar month of `posted_at` and campaign. Spend
        for a month already closed (a late event) goes into the current month's invoice."""
        # Months close in order, so every month up to the last closed one is closed.
        last_closed = await store.last_closed_month(uow.conn)
        current = domain.month_start(self.clock.now())
        rows: dict[tuple[str, date, str], list[object]] = {}
        for event in events:
            month = domain.month_start(event.posted_at)
            if last_closed is not None and month <= last_closed:
                month = max(current, domain.next_month(last_closed))
            key = (event.ad_account_id, month, event.campaign_id)
            row = rows.setdefault(key, [event.currency, 0, 0])
            row[1] = int(row[1]) + event.amount_micros  # type: ignore[call-overload]
            row[2] = int(row[2]) + event.spend_event_count  # type: ignore[call-overload]
        await store.add_monthly_spend(
            uow.conn, [(account, month, campaign, str(value[0]), int(value[1]), int(value[2])) for (account, month, campaign), value in rows.items()]  # type: ignore[call-overload]
        )

    async def close_month(self, uow: UnitOfWork, month: date) -> list[Invoice]:
        """I7: one invoice per ad account on monthly invoicing for the spend posted in `month`,
        one line per campaign; then the month is recorded as closed."""
        by_account: dict[str, list[asyncpg.Record]] = {}
        for row in await store.monthly_spend_of(uow.conn, month):
            by_account.setdefault(row["ad_account_id"], []).append(row)
        issued: list[Invoice] = []
        for ad_account_id, rows in by_account.items():
            total = sum(row["amount_micros"] for row in rows)
            if total <= 0 or await store.find_monthly_invoice(uow.conn, ad_account_id, month) is not None:
                continue
            subscription = await store.subscription(uow.conn, ad_account_id)
            invoice = await self._issue(
                uow, invoice_id=f"month-{ad_account_id}-{month.strftime('%Y-%m')}", payer_id=ad_account_id, payer_kind="owner",
                purpose=Purpose.MONTHLY_SPEND, currency=rows[0]["currency"],
                lines=[Line(f"Spend of campaign {row['campaign_id']} in {domain.month_label(month)} ({row['event_count']} events)", row["amount_micros"]) for row in rows if row["amount_micros"] != 0],
                reference_id=month.strftime("%Y-%m"), period_start=month,
                recipient_address=subscription.billing_email if subscription else None,
            )
            if invoice is not None:
                issued.append(invoice)
        await store.close_month(uow.conn, month, self.clock.now())
        return issued

    async def owner_opened(self, uow: UnitOfWork, event: BusinessCenterOpened | AdAccountOpened) -> None:
        if isinstance(event, BusinessCenterOpened):
            owner = store.Owner(event.business_center_id, "business_center", event.business_center_id, event.currency, None)
        else:
            owner = store.Owner(event.ad_account_id, "ad_account", event.business_center_id, event.currency, event.billing_option)
        await store.upsert_owner(uow.conn, owner, event.opened_at)

    async def balances_changed(self, uow: UnitOfWork, events: list[BalanceChanged]) -> None:
        newest: dict[str, BalanceChanged] = {}
        for event in events:
            if event.owner_id not in newest or newest[event.owner_id].version < event.version:
                newest[event.owner_id] = event
        await store.upsert_balances(
            uow.conn,
            [(e.owner_id, e.owner_kind, e.currency, e.real_micros, e.virtual_micros, e.available_micros, e.version, e.updated_at) for e in newest.values()],
        )

    # Helpers -------------------------------------------------------------------------------------------------

    async def _issue(
        self, uow: UnitOfWork, *, payer_id: str, payer_kind: str, purpose: Purpose, currency: str, lines: list[Line],
        invoice_id: str | None = None, reference_id: str | None = None, period_start: date | None = None,
        automatic_collection: bool = False, recipient_user_id: str | None = None, recipient_address: str | None = None,
        email: bool = True,
    ) -> Invoice | None:
        """Create and issue an invoice with its events; None when a unique index says it exists."""
        invoice = domain.new_invoice(
            invoice_id=invoice_id or str(uuid.uuid4()), number=await store.next_invoice_number(uow.conn), payer_id=payer_id,
            payer_kind=payer_kind, purpose=purpose, currency=currency, lines=lines, now=self.clock.now(),
            reference_id=reference_id, period_start=period_start, automatic_collection=automatic_collection,
            recipient_user_id=recipient_user_id, recipient_address=recipient_address,
        )
        if not await store.insert_invoice(uow.conn, invoice):
            return None
        self._publish_snapshot(uow, invoice, None)
        if email:
            self._email(uow, invoice, "invoice_issued", {
                "invoice_number": invoice.display_number, "amount": domain.format_money(invoice.amount_micros, invoice.currency),
                "due_on": invoice.due_on.isoformat(),
            })
        log.info("invoice_issued", invoice_id=invoice.id, number=invoice.display_number, purpose=purpose.value, amount_micros=invoice.amount_micros)
        return invoice

    async def _apply(self, uow: UnitOfWork, before: Invoice, after: Invoice) -> Invoice:
        """Save a changed invoice; a paid one is credited exactly once (the wallet through
        `InvoicePaid`, a funding source through the ledger), in this same transaction."""
        now = self.clock.now()
        await store.save_invoice(uow.conn, after, now)
        self._publish_snapshot(uow, after, before.status)
        if after.status is InvoiceStatus.PAID and before.status is not InvoiceStatus.PAID:
            assert after.paid_at is not None
            if after.credited_by_wallet:
                uow.publish(
                    InvoicePaid(
                        event_id=f"invoice:{after.id}:paid", invoice_id=after.id, owner_id=after.payer_id,
                        amount_micros=after.amount_micros, currency=after.currency, purpose=after.purpose.value, paid_at=after.paid_at,
                    ),
                    topic=self.events_topic, key=after.payer_id,
                )
            else:
                results = await self.ledger.create_transfers(
                    uow.conn,
                    [TransferRequest(
                        id=f"payment:{after.id}:funding_source", debit_account_id=system_account_id("world_payments", after.currency),
                        credit_account_id=funding_source_account_id(after.payer_id), amount_micros=after.amount_micros,
                        currency=after.currency, code="funding_source_payment",
                    )],
                    now,
                )
                raise_first_error(results)
            if not after.automatic_collection:
                self._email(uow, after, "invoice_paid", {
                    "invoice_number": after.display_number, "amount": domain.format_money(after.amount_micros, after.currency),
                })
        return after

    def _publish_snapshot(self, uow: UnitOfWork, invoice: Invoice, previous: InvoiceStatus | None) -> None:
        uow.publish(
            InvoiceStatusChanged(
                event_id=f"invoice:{invoice.id}:v{invoice.version}", invoice_id=invoice.id, number=invoice.display_number,
                payer_id=invoice.payer_id, payer_kind=invoice.payer_kind,  # type: ignore[arg-type]
                purpose=invoice.purpose.value, previous_status=previous.value if previous else None,  # type: ignore[arg-type]
                status=invoice.status.value, amount_micros=invoice.amount_micros, currency=invoice.currency,  # type: ignore[arg-type]
                lines=[InvoiceLine(description=line.description, amount_micros=line.amount_micros) for line in invoice.lines],
                reference_id=invoice.reference_id, issued_at=invoice.issued_at, due_on=invoice.due_on.isoformat(),
                paid_at=invoice.paid_at, payment_id=invoice.payment_id, version=invoice.version, changed_at=self.clock.now(),
            ),
            topic=self.events_topic, key=invoice.payer_id,
        )

    def _email(self, uow: UnitOfWork, invoice: Invoice, template: str, fields: dict[str, str]) -> None:
        """I8: an e-mail is an event; the e-mail adapter renders and sends it. Sent only when the
        invoice has someone to write to (a billing address, or the user who asked)."""
        if invoice.recipient_address is None and invoice.recipient_user_id is None:
            return
        uow.publish(
            EmailRequested(
                email_id=f"invoice:{invoice.id}:{template}", template=template,  # type: ignore[arg-type]
                recipient_user_id=invoice.recipient_user_id if invoice.recipient_address is None else None,
                recipient_address=invoice.recipient_address, subject_id=invoice.id, fields=fields, requested_at=self.clock.now(),
            ),
            topic=self.events_topic, key=invoice.payer_id,
        )

    async def _require_billing(self, uow: UnitOfWork, caller: Caller, owner_id: str) -> None:
        if caller.user.admin or await store.may_bill_for(uow.conn, caller.id, owner_id):
            return
        raise PermissionDeniedError(f"user {caller.id} may not bill for {owner_id}")

    async def _require_payer(self, uow: UnitOfWork, caller: Caller, invoice: Invoice) -> None:
        if invoice.payer_kind == "funding_source":
            self._require_admin(caller)
        else:
            await self._require_billing(uow, caller, invoice.payer_id)

    @staticmethod
    def _require_admin(caller: Caller) -> None:
        if not caller.user.admin:
            raise PermissionDeniedError("only an admin (the platform operator) may do this")


class ClockJobs:
    """The clock-driven jobs (T1): UTC day closes of funding sources (I6), month closes (I7), and
    the collection of automatic card payments (I6). Each close runs in one transaction under an
    advisory lock with its `*_closes` row, so it happens once even with two instances or after
    downtime (then every missed close is run, oldest first). Tests move the ManualClock and call
    the methods directly."""

    def __init__(
        self, pool: Callable[[], asyncpg.Pool], relay: Callable[[], OutboxRelay | None], invoicing: Invoicing,
        provider: Callable[[], PaymentProvider | None], schema: str,
    ) -> None:
        self._pool = pool
        self._relay = relay
        self._invoicing = invoicing
        self._provider = provider
        self._schema = schema

    async def run_day_closes(self) -> list[Invoice]:
        issued: list[Invoice] = []
        while True:
            async with unit_of_work(self._pool(), self._relay()) as uow:
                await uow.conn.execute("select pg_advisory_xact_lock(hashtext($1))", f"invoicing.day_close.{self._schema}")
                first = await store.first_funding_source_day(uow.conn)
                if first is None:
                    return issued
                due = domain.due_days(last_closed=await store.last_closed_day(uow.conn), first_day=first, now=self._invoicing.clock.now())
                if not due:
                    return issued
                issued += await self._invoicing.close_funding_source_day(uow, due[0])
                log.info("funding_source_day_closed", day=due[0].isoformat())

    async def run_month_closes(self) -> list[Invoice]:
        issued: list[Invoice] = []
        while True:
            async with unit_of_work(self._pool(), self._relay()) as uow:
                await uow.conn.execute("select pg_advisory_xact_lock(hashtext($1))", f"invoicing.month_close.{self._schema}")
                first = await store.first_spend_month(uow.conn)
                if first is None:
                    return issued
                due = domain.due_months(last_closed=await store.last_closed_month(uow.conn), first_month=first, now=self._invoicing.clock.now())
                if not due:
                    return issued
                issued += await self._invoicing.close_month(uow, due[0])
                log.info("month_closed", month=due[0].isoformat())

    async def collect_card_payments(self) -> int:
        """Ask the provider to charge each open card-payment invoice (idempotent by invoice id);
        the provider's webhook pays it. A provider that is down is asked again next round."""
        provider = self._provider()
        if provider is None:
            return 0
        async with unit_of_work(self._pool()) as uow:
            invoices = [await store.load_invoice(uow.conn, invoice_id) for invoice_id in await store.invoices_to_collect(uow.conn)]
        collected = 0
        for invoice in invoices:
            try:
                await provider.collect(invoice)
            except PaymentProviderUnavailableError as error:
                log.warning("card_collection_failed", invoice_id=invoice.id, error=str(error))
                continue
            async with unit_of_work(self._pool()) as uow:
                await store.mark_collection_requested(uow.conn, [invoice.id], self._invoicing.clock.now())
            collected += 1
        return collected

    async def run(self) -> None:
        await self.run_day_closes()
        await self.run_month_closes()
        await self.collect_card_payments()
