"""The invoicing HTTP API (FastAPI): typed requests and answers, the caller verified by the edge
guard (the platform's one identity), one idempotency key per command (M5), a typed 4xx per
refusal; the provider's signed webhook; the invoice document; and, in the local profile only, the
local payment provider's command.

The adapter translates and nothing else: who may do what is the core's (W9, the tenant fence),
and so is every rule.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from adledger_auth.http import CurrentCaller
from adledger_auth.roles import PermissionDeniedError
from adledger_contracts.types import EmailAddress, Identifier, Name, ResourceId, Text
from adledger_ledger.domain import LedgerError, OwnerIdTakenError
from adledger_libs.clock import Clock
from adledger_libs.money import CurrencyCode, Micros, NonNegativeMicros, PositiveMicros
from adledger_libs.outbox import UnitOfWork
from adledger_libs.web import (
    AUTHENTICATED_ERRORS,
    COMMAND_ERRORS,
    AlreadyExists,
    ApiError,
    CurrencyMismatch,
    Commands,
    IdempotencyKeyHeader,
    InvalidValue,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Refused,
    RejectionTable,
    responses,
)
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adledger_invoicing.adapters.document import render_html
from adledger_invoicing.adapters.local_provider import LocalPaymentProvider, Scenario
from adledger_invoicing.core import ChargeConflictError, FundingSourceExistsError, Invoicing
from adledger_invoicing.domain import invoices as domain
from adledger_invoicing.domain import signatures
from adledger_invoicing.domain.billing import FundingSource, PaymentNotification, Subscription
from adledger_invoicing.domain.invoices import Invoice, InvoiceStatus, PaymentOutcome, format_money
from adledger_invoicing.ports.payments import PaymentProviderUnavailableError
from adledger_invoicing.ports.store import UnknownFundingSourceError, UnknownInvoiceError, UnknownOwnerError
from adledger_invoicing.ports.unit_of_work import InvoicingWork

WEBHOOK_PATH = "/v1/payments/webhook"
PUBLIC_PATHS = (WEBHOOK_PATH,)
WorkOf = Callable[[UnitOfWork], InvoicingWork]

#: Ids derived from a funding source's and a charge's (`funding-source:<id>:charge:<charge>:<n>`
#: for an alert e-mail, `day-close-<id>-<day>` for an invoice) stay within the contract's limits.
FundingSourceId = Annotated[
    ResourceId,
    Field(max_length=48, description="1 to 48 letters, digits or `. _ - @ +`, starting with a letter or digit."),
]
ChargeId = Annotated[
    ResourceId,
    Field(max_length=48, description="1 to 48 letters, digits or `. _ - @ +`, starting with a letter or digit."),
]
#: Invoices are named by the service or by the service that asked for one (C1), so any id.
InvoiceId = Identifier


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Requests and answers ------------------------------------------------------------------------------


class SetSubscription(_Model):
    """I4: only an owner with an active subscription can hold a credit balance (platform operators)."""

    status: Literal["active", "inactive"]
    billing_email: EmailAddress | None = Field(
        default=None, description="Where the owner's invoices are e-mailed; unchanged when null."
    )


class SubscriptionAnswer(_Model):
    owner_id: str
    status: Literal["active", "inactive", "none"] = Field(description="none: never subscribed.")
    billing_email: str | None = None
    changed_at: datetime | None = None


class RequestTopUp(_Model):
    """I1, I2: an amount, or a target the balance should reach once the invoice is paid."""

    owner_id: ResourceId = Field(description="The Business Center or ad account to fund.")
    currency: CurrencyCode
    amount_micros: PositiveMicros | None = Field(default=None, description="Invoice exactly this (I1).")
    target_micros: NonNegativeMicros | None = Field(
        default=None, description="Invoice target − the current balance (I2)."
    )


class LineAnswer(_Model):
    description: str
    amount_micros: int
    amount: str = Field(description="For people, e.g. USD 12.50.")


class InvoiceAnswer(_Model):
    id: str
    number: str
    payer_id: str
    payer_kind: str
    purpose: str
    status: str = Field(description="draft, open, paid, void or uncollectible (I5).")
    amount_micros: int
    amount: str
    currency: str
    lines: list[LineAnswer]
    reference_id: str | None
    issued_at: datetime
    due_on: date
    paid_at: datetime | None
    payment_id: str | None
    version: int
    document_url: str


class TopUpAnswer(_Model):
    invoiced: bool = Field(
        description="False when a target was already reached (I2): no invoice, and `message` says so."
    )
    amount_micros: int = Field(description="The amount invoiced (0 when none).")
    invoice: InvoiceAnswer | None
    message: str | None = None


class BalanceAnswer(_Model):
    real_micros: int
    virtual_micros: int
    available_micros: int
    version: int
    updated_at: datetime


class BillingOverviewAnswer(_Model):
    """I1: the balance, and apart from it what is pending: top-ups not paid yet never count in it."""

    owner_id: str
    currency: str | None
    balance: BalanceAnswer | None = Field(
        description="The wallet's balance as last published on balances.v1; null when none arrived yet."
    )
    pending_top_ups_micros: int
    pending_top_ups: list[InvoiceAnswer]
    outstanding_invoices: list[InvoiceAnswer]


class RegisterFundingSource(_Model):
    """I6: a funding source (platform operators)."""

    id: FundingSourceId
    name: Name
    kind: Literal["prepaid_invoice", "credit_card"]
    currency: CurrencyCode
    low_balance_threshold_micros: NonNegativeMicros = Field(
        default=0, description="Below it, the low-balance contacts are e-mailed at once."
    )
    low_balance_contacts: list[EmailAddress] = Field(
        default_factory=list,
        max_length=20,
        description="E-mail addresses alerted at once when a charge leaves the balance low.",
    )
    accounts_payable_contact: EmailAddress | None = Field(
        default=None, description="Where the day-close invoice is sent."
    )


class FundingSourceAnswer(_Model):
    id: str
    name: str
    kind: str
    currency: str
    balance_micros: int = Field(description="From the ledger; a prepaid source may be negative.")
    low_balance_threshold_micros: int
    low_balance_contacts: list[str]
    accounts_payable_contact: str | None


class ChargeFundingSource(_Model):
    """An adjustment charge, refresh, rollover or initial budget charged to a source (I6, U5, U6)."""

    charge_id: ChargeId = Field(
        description="The caller's id of the charge: the same id twice is refused (charge_exists)."
    )
    amount_micros: PositiveMicros
    currency: CurrencyCode
    description: Annotated[
        Text, Field(min_length=1, max_length=300, description="What it is for: 1 to 300 characters.")
    ]


class ChargeAnswer(_Model):
    funding_source_id: str
    charge_id: str
    amount_micros: int
    currency: str
    balance_after_micros: int
    card_invoice_id: str | None


class TopUpFundingSource(_Model):
    amount_micros: PositiveMicros


class LocalPayment(_Model):
    """What the local provider should do with the invoice."""

    scenario: Scenario = "pay"


class WebhookDelivery(_Model):
    event_id: str
    outcome: str
    status_code: int
    answer: Any


class LocalPaymentAnswer(_Model):
    payment_id: str
    webhooks: list[WebhookDelivery]


class NotificationAnswer(_Model):
    provider_event_id: str
    payment_id: str
    outcome: str
    effect: str
    received_at: datetime


class WebhookAnswer(_Model):
    received: bool
    effect: str = Field(
        description="What the notification did: paid, already_paid, payment_failed, duplicate, ignored, ..."
    )


class ProviderNotification(BaseModel):
    """The provider's notification of one payment (I5). Unknown fields are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    id: Identifier = Field(description="The provider's event id: the same id twice is applied once.")
    type: Literal["payment.succeeded", "payment.failed"]
    payment_id: Identifier
    invoice_id: Identifier
    amount_micros: Micros = Field(description="What was paid; a wrong amount is recorded as amount_mismatch.")
    currency: CurrencyCode
    created: int | None = Field(default=None, description="When the provider made it (unix seconds); informative.")


class _NotificationType(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str


# Typed errors ------------------------------------------------------------------------------------------


class SubscriptionInactive(ApiError):
    status_code, code = 409, "subscription_inactive"


class BalanceUnknown(ApiError):
    status_code, code = 409, "balance_unknown"


class IllegalTransition(ApiError):
    status_code, code = 409, "illegal_transition"


class ChargeExists(ApiError):
    status_code, code = 409, "charge_exists"


class ProviderUnavailable(ApiError):
    status_code, code = 503, "provider_unavailable"


class SignatureMissing(ApiError):
    status_code, code = 400, "signature_missing"


class SignatureMalformed(ApiError):
    status_code, code = 400, "signature_malformed"


class SignatureInvalid(ApiError):
    status_code, code = 401, "signature_invalid"


class SignatureExpired(ApiError):
    status_code, code = 401, "signature_expired"


class InvalidNotification(ApiError):
    status_code, code = 400, "invalid_notification"


REJECTIONS: RejectionTable = [
    ((PermissionDeniedError,), PermissionDenied),
    ((UnknownInvoiceError, UnknownFundingSourceError, UnknownOwnerError), NotFound),
    ((FundingSourceExistsError, OwnerIdTakenError), AlreadyExists),
    ((ChargeConflictError,), ChargeExists),
    ((domain.SubscriptionInactiveError,), SubscriptionInactive),
    ((domain.CurrencyMismatchError,), CurrencyMismatch),
    ((domain.BalanceUnknownError,), BalanceUnknown),
    ((domain.IllegalTransitionError,), IllegalTransition),
    ((domain.InvalidAmountError, domain.InvalidInvoiceIdError), InvalidValue),
    # The ledger refuses what it cannot hold (a balance beyond 2^63 - 1 micros after a charge).
    ((LedgerError,), Refused),
    ((PaymentProviderUnavailableError,), ProviderUnavailable),
]


def invoice_answer(invoice: Invoice) -> InvoiceAnswer:
    return InvoiceAnswer(
        id=invoice.id,
        number=invoice.display_number,
        payer_id=invoice.payer_id,
        payer_kind=invoice.payer_kind,
        purpose=invoice.purpose.value,
        status=invoice.status.value,
        amount_micros=invoice.amount_micros,
        amount=format_money(invoice.amount_micros, invoice.currency),
        currency=invoice.currency,
        lines=[
            LineAnswer(
                description=line.description,
                amount_micros=line.amount_micros,
                amount=format_money(line.amount_micros, invoice.currency),
            )
            for line in invoice.lines
        ],
        reference_id=invoice.reference_id,
        issued_at=invoice.issued_at,
        due_on=invoice.due_on,
        paid_at=invoice.paid_at,
        payment_id=invoice.payment_id,
        version=invoice.version,
        document_url=f"/v1/invoices/{invoice.id}/document",
    )


def _subscription_answer(owner_id: str, found: Subscription | None) -> SubscriptionAnswer:
    if found is None:
        return SubscriptionAnswer(owner_id=owner_id, status="none")
    return SubscriptionAnswer(
        owner_id=found.owner_id, status=found.status, billing_email=found.billing_email, changed_at=found.changed_at
    )


def _source_answer(source: FundingSource, balance_micros: int) -> FundingSourceAnswer:
    return FundingSourceAnswer(
        id=source.id,
        name=source.name,
        kind=source.kind,
        currency=source.currency,
        balance_micros=balance_micros,
        low_balance_threshold_micros=source.low_balance_threshold_micros,
        low_balance_contacts=list(source.low_balance_contacts),
        accounts_payable_contact=source.accounts_payable_contact,
    )


def parse_notification(body: bytes) -> PaymentNotification | None:
    """The provider's JSON, strictly typed (M1: an integer amount); None for an event type this
    service does not act on. Raises `InvalidNotification` (400) for anything else."""
    try:
        kind = _NotificationType.model_validate_json(body).type
        if kind not in ("payment.succeeded", "payment.failed"):
            return None
        parsed = ProviderNotification.model_validate_json(body)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or '(body)'}: {issue['msg']}"
            for issue in error.errors()[:5]
        )
        raise InvalidNotification(f"the notification is not the provider's JSON: {problems}"[:500]) from None
    return PaymentNotification(
        provider_event_id=parsed.id,
        payment_id=parsed.payment_id,
        invoice_id=parsed.invoice_id,
        outcome=PaymentOutcome(parsed.type.removeprefix("payment.")),
        amount_micros=parsed.amount_micros,
        currency=parsed.currency,
    )


def verify_signature(secret: str, header: str | None, body: bytes, now: datetime, tolerance_s: int) -> None:
    """The provider's signature (I5) or the typed 4xx saying why not."""
    try:
        signatures.verify(secret, header, body, now, tolerance_s)
    except signatures.MissingSignatureError as error:
        raise SignatureMissing(str(error)) from None
    except signatures.MalformedSignatureError as error:
        raise SignatureMalformed(str(error)) from None
    except signatures.StaleSignatureError as error:
        raise SignatureExpired(str(error)) from None
    except signatures.SignatureError as error:
        raise SignatureInvalid(str(error)) from None


def router(
    invoicing: Invoicing,
    commands: Commands,
    work_of: WorkOf,
    *,
    webhook_secret: str,
    webhook_tolerance_s: int,
    clock: Clock,
) -> APIRouter:
    api = APIRouter()
    reads = responses(*AUTHENTICATED_ERRORS, PermissionDenied, NotFound)
    operator_command = (*AUTHENTICATED_ERRORS, *COMMAND_ERRORS, PermissionDenied)

    # Subscriptions (I4) --------------------------------------------------------------------------------

    @api.put(
        "/v1/subscriptions/{owner_id}",
        response_model=SubscriptionAnswer,
        tags=["subscriptions"],
        summary="Set an owner's subscription status (platform operators; I4)",
        responses=responses(*operator_command),
    )
    async def set_subscription(
        owner_id: ResourceId, body: SetSubscription, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request
    ) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            found = await invoicing.set_subscription(work_of(uow), caller, owner_id, body.status, body.billing_email)
            return 200, _subscription_answer(owner_id, found)

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.get(
        "/v1/subscriptions/{owner_id}",
        response_model=SubscriptionAnswer,
        tags=["subscriptions"],
        summary="Read an owner's subscription status (any role in its Business Center; I4)",
        responses=reads,
    )
    async def read_subscription(owner_id: ResourceId, caller: CurrentCaller) -> SubscriptionAnswer:
        found = await commands.read(lambda uow: invoicing.read_subscription(work_of(uow), caller, owner_id))
        return _subscription_answer(owner_id, found)

    # Top-ups (I1-I4) -------------------------------------------------------------------------------------

    @api.post(
        "/v1/top-ups",
        status_code=201,
        response_model=TopUpAnswer,
        tags=["top-ups"],
        summary="Request a top-up: an invoice, the balance grows once it is paid (Admins and Finance Managers; I1-I4)",
        description="201 with the invoice; 200 with invoiced=false when a target is at or below the balance (I2).",
        responses=responses(
            *AUTHENTICATED_ERRORS,
            *COMMAND_ERRORS,
            PermissionDenied,
            NotFound,
            SubscriptionInactive,
            CurrencyMismatch,
            BalanceUnknown,
            InvalidValue,
        ) | {200: {"model": TopUpAnswer, "description": "A target at or below the balance: nothing to invoice "
                                                           "(invoiced=false, I2)"}},
    )
    async def top_up(
        body: RequestTopUp, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request
    ) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            result = await invoicing.top_up(
                work_of(uow), caller, body.owner_id, body.currency, body.amount_micros, body.target_micros
            )
            if result.invoice is None:
                return 200, TopUpAnswer(invoiced=False, amount_micros=0, invoice=None, message=result.message)
            return 201, TopUpAnswer(
                invoiced=True, amount_micros=result.requested_micros, invoice=invoice_answer(result.invoice)
            )

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.get(
        "/v1/owners/{owner_id}/billing",
        response_model=BillingOverviewAnswer,
        tags=["top-ups"],
        summary="The balance and, apart from it, pending top-ups and outstanding invoices (any role; I1)",
        responses=reads,
    )
    async def billing_overview(owner_id: ResourceId, caller: CurrentCaller) -> BillingOverviewAnswer:
        found = await commands.read(lambda uow: invoicing.billing_overview(work_of(uow), caller, owner_id))
        balance = found.balance
        return BillingOverviewAnswer(
            owner_id=owner_id,
            currency=balance.currency if balance else None,
            balance=BalanceAnswer(
                real_micros=balance.real_micros,
                virtual_micros=balance.virtual_micros,
                available_micros=balance.available_micros,
                version=balance.version,
                updated_at=balance.updated_at,
            )
            if balance
            else None,
            pending_top_ups_micros=sum(invoice.amount_micros for invoice in found.pending_top_ups),
            pending_top_ups=[invoice_answer(invoice) for invoice in found.pending_top_ups],
            outstanding_invoices=[invoice_answer(invoice) for invoice in found.outstanding],
        )

    # Invoices (I5) --------------------------------------------------------------------------------------

    @api.get(
        "/v1/invoices",
        response_model=list[InvoiceAnswer],
        tags=["invoices"],
        summary="List invoices, newest first: an owner's, or every one you may read",
        responses=reads,
    )
    async def list_invoices(
        caller: CurrentCaller,
        owner_id: Annotated[
            ResourceId | None, Query(description="Only this Business Center's or ad account's.")
        ] = None,
        status: Annotated[InvoiceStatus | None, Query(description="Only invoices in this state (I5).")] = None,
    ) -> list[InvoiceAnswer]:
        found = await commands.read(lambda uow: invoicing.list_invoices(work_of(uow), caller, owner_id, status))
        return [invoice_answer(invoice) for invoice in found]

    @api.get(
        "/v1/invoices/{invoice_id}",
        response_model=InvoiceAnswer,
        tags=["invoices"],
        summary="Read an invoice with its lines",
        responses=reads,
    )
    async def read_invoice(invoice_id: InvoiceId, caller: CurrentCaller) -> InvoiceAnswer:
        return invoice_answer(await commands.read(lambda uow: invoicing.read_invoice(work_of(uow), caller, invoice_id)))

    @api.get(
        "/v1/invoices/{invoice_id}/payments",
        response_model=list[NotificationAnswer],
        tags=["invoices"],
        summary="The provider notifications of an invoice and what each did (I5)",
        responses=reads,
    )
    async def notifications(invoice_id: InvoiceId, caller: CurrentCaller) -> list[NotificationAnswer]:
        found = await commands.read(lambda uow: invoicing.notifications_of(work_of(uow), caller, invoice_id))
        return [
            NotificationAnswer(
                provider_event_id=item.provider_event_id,
                payment_id=item.payment_id,
                outcome=item.outcome,
                effect=item.effect,
                received_at=item.received_at,
            )
            for item in found
        ]

    @api.get(
        "/v1/invoices/{invoice_id}/document",
        response_class=HTMLResponse,
        tags=["invoices"],
        summary="The invoice as an HTML document for people (print to PDF from a browser)",
        responses={
            200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "The document."},
            # A refusal is the typed JSON error, not the route's HTML (found by the OpenAPI fuzz).
            **{
                status: {
                    "description": answer["description"],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                }
                for status, answer in reads.items()
            },
        },
    )
    async def document(invoice_id: InvoiceId, caller: CurrentCaller) -> HTMLResponse:
        invoice = await commands.read(lambda uow: invoicing.read_invoice(work_of(uow), caller, invoice_id))
        return HTMLResponse(render_html(invoice))

    def status_change(wanted: InvoiceStatus) -> Callable[..., Any]:
        async def change(
            invoice_id: InvoiceId, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request
        ) -> JSONResponse:
            async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
                return 200, invoice_answer(await invoicing.change_status(work_of(uow), caller, invoice_id, wanted))

            return await commands.run(request, caller_id=caller.user_id, key=key, body=None, apply=apply)

        return change

    transition_errors = responses(*operator_command, NotFound, IllegalTransition)
    api.post(
        "/v1/invoices/{invoice_id}/void",
        response_model=InvoiceAnswer,
        tags=["invoices"],
        name="void_invoice",
        summary="Void an invoice (platform operators; I5)",
        responses=transition_errors,
    )(status_change(InvoiceStatus.VOID))
    api.post(
        "/v1/invoices/{invoice_id}/uncollectible",
        response_model=InvoiceAnswer,
        tags=["invoices"],
        name="mark_invoice_uncollectible",
        summary="Mark an invoice uncollectible (platform operators; I5)",
        responses=transition_errors,
    )(status_change(InvoiceStatus.UNCOLLECTIBLE))

    # Funding sources (I6) -------------------------------------------------------------------------------

    @api.post(
        "/v1/funding-sources",
        status_code=201,
        response_model=FundingSourceAnswer,
        tags=["funding-sources"],
        summary="Register a funding source: prepaid_invoice or credit_card (platform operators; I6)",
        responses=responses(*operator_command, AlreadyExists),
    )
    async def register_funding_source(
        body: RegisterFundingSource, caller: CurrentCaller, key: IdempotencyKeyHeader, request: Request
    ) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            source = await invoicing.register_funding_source(
                work_of(uow),
                caller,
                FundingSource(
                    body.id,
                    body.name,
                    body.kind,
                    body.currency,
                    body.low_balance_threshold_micros,
                    tuple(body.low_balance_contacts),
                    body.accounts_payable_contact,
                    datetime.min,
                ),
            )
            return 201, _source_answer(source, 0)

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.get(
        "/v1/funding-sources/{funding_source_id}",
        response_model=FundingSourceAnswer,
        tags=["funding-sources"],
        summary="Read a funding source and its ledger balance (platform operators; I6)",
        responses=reads,
    )
    async def read_funding_source(funding_source_id: FundingSourceId, caller: CurrentCaller) -> FundingSourceAnswer:
        source, balance_micros = await commands.read(
            lambda uow: invoicing.read_funding_source(work_of(uow), caller, funding_source_id)
        )
        return _source_answer(source, balance_micros)

    @api.post(
        "/v1/funding-sources/{funding_source_id}/charges",
        status_code=201,
        response_model=ChargeAnswer,
        tags=["funding-sources"],
        summary="Charge a funding source (platform operators; I6)",
        responses=responses(*operator_command, NotFound, CurrencyMismatch, ChargeExists, InvalidValue, Refused),
    )
    async def charge_funding_source(
        funding_source_id: FundingSourceId,
        body: ChargeFundingSource,
        caller: CurrentCaller,
        key: IdempotencyKeyHeader,
        request: Request,
    ) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            event = await invoicing.charge_funding_source(
                work_of(uow),
                caller,
                funding_source_id,
                body.charge_id,
                body.amount_micros,
                body.currency,
                body.description,
            )
            return 201, ChargeAnswer(
                funding_source_id=event.funding_source_id,
                charge_id=event.charge_id,
                amount_micros=event.amount_micros,
                currency=event.currency,
                balance_after_micros=event.balance_after_micros,
                card_invoice_id=event.card_invoice_id,
            )

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    @api.post(
        "/v1/funding-sources/{funding_source_id}/top-ups",
        status_code=201,
        response_model=InvoiceAnswer,
        tags=["funding-sources"],
        summary="Invoice a prepayment of a funding source (platform operators; I6)",
        responses=responses(*operator_command, NotFound, InvalidValue),
    )
    async def top_up_funding_source(
        funding_source_id: FundingSourceId,
        body: TopUpFundingSource,
        caller: CurrentCaller,
        key: IdempotencyKeyHeader,
        request: Request,
    ) -> JSONResponse:
        async def apply(uow: UnitOfWork) -> tuple[int, BaseModel]:
            invoice = await invoicing.top_up_funding_source(work_of(uow), caller, funding_source_id, body.amount_micros)
            return 201, invoice_answer(invoice)

        return await commands.run(request, caller_id=caller.user_id, key=key, body=body, apply=apply)

    # The provider's webhook (I5): public, its HMAC is its authentication ---------------------------------

    @api.post(
        WEBHOOK_PATH,
        response_model=WebhookAnswer,
        tags=["payments"],
        summary="The payment provider's signed notification (I5): payment.succeeded or payment.failed",
        description="Header `Adledger-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<raw body>' with the "
        "shared secret>` (several v1 while the provider rolls its secret). Idempotent by `id`; safe in any order; a "
        "failure after a success changes nothing; other event types are answered `ignored`. No bearer token.",
        responses=responses(
            SignatureMissing,
            SignatureMalformed,
            SignatureInvalid,
            SignatureExpired,
            InvalidNotification,
            PayloadTooLarge,
        ),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": ProviderNotification.model_json_schema(ref_template="#/components/schemas/{model}")
                    }
                },
            }
        },
    )
    async def payment_webhook(
        request: Request,
        signature: Annotated[
            str | None, Header(alias=signatures.SIGNATURE_HEADER, description="The provider's signature.")
        ] = None,
    ) -> WebhookAnswer:
        # The signature covers the raw bytes, so the body is read as sent, never re-serialised.
        body = await request.body()
        verify_signature(webhook_secret, signature, body, clock.now(), webhook_tolerance_s)
        notification = parse_notification(body)
        if notification is None:
            return WebhookAnswer(received=True, effect="ignored")
        # Idempotent by the provider's event id, so no Idempotency-Key: one transaction, whose
        # outbox rows wake the relay through the outbox table's trigger.
        effect = await commands.read(lambda uow: invoicing.payment_notified(work_of(uow), notification))
        return WebhookAnswer(received=True, effect=effect)

    return api


def local_provider_router(
    invoicing: Invoicing, commands: Commands, work_of: WorkOf, provider: LocalPaymentProvider
) -> APIRouter:
    """The local provider's command: only wired in the local profile (never in production)."""
    api = APIRouter()

    @api.post(
        "/v1/local-provider/invoices/{invoice_id}/payments",
        response_model=LocalPaymentAnswer,
        tags=["local-provider"],
        summary="Local profile only: pay, fail, pay twice… an invoice; sends signed webhooks to this service "
        "(platform operators; I5)",
        description="Payment and event ids derive from the Idempotency-Key, so the same key re-sends the same "
        "provider events (answered `duplicate`).",
        responses=responses(*AUTHENTICATED_ERRORS, *COMMAND_ERRORS, PermissionDenied, NotFound, ProviderUnavailable),
    )
    async def local_payment(
        invoice_id: InvoiceId, body: LocalPayment, caller: CurrentCaller, key: IdempotencyKeyHeader
    ) -> LocalPaymentAnswer:
        invoice = await commands.read(lambda uow: invoicing.payable_by_local_provider(work_of(uow), caller, invoice_id))
        # The webhooks are sent outside any transaction: the provider is another party, and its
        # webhook handler locks the invoice in a transaction of its own.
        payment_id, answers = await provider.pay(invoice, body.scenario, key)
        return LocalPaymentAnswer(payment_id=payment_id, webhooks=[WebhookDelivery(**answer) for answer in answers])

    return api
