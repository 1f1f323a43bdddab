"""The invoicing HTTP API: typed requests and answers, the caller from the bearer token, one
idempotency key per command (M5), a typed 4xx per rejection; the provider's signed webhook; the
invoice document; and the local provider's commands (for `make run` and tests).

Auth, kept simple (as in order escrow): a bearer token maps to a user (only its SHA-256 is
stored). The platform operator's token (`ADLEDGER_PLATFORM_TOKEN`) is an admin: it creates users
(with the owners each may bill for), sets subscriptions (I4), registers and charges funding
sources (I6) and voids invoices (I5). A billing user tops up and reads its owners' invoices.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from adledger_invoicing.adapters import postgres as store
from adledger_invoicing.adapters.document import render_html
from adledger_invoicing.adapters.local_provider import SCENARIOS, LocalPaymentProvider
from adledger_invoicing.core import (
    AlreadyExistsError,
    Caller,
    ChargeConflictError,
    Invoicing,
    PaymentNotification,
    PermissionDeniedError,
)
from adledger_invoicing.domain import invoices as domain
from adledger_invoicing.domain import signatures
from adledger_invoicing.domain.invoices import Invoice, InvoiceStatus, PaymentOutcome, format_money
from adledger_invoicing.ports import PaymentProviderUnavailableError
from adledger_libs.api import AuthenticatedApi, Call, Endpoint, UnauthenticatedError
from adledger_libs.clock import Clock
from adledger_libs.http import (
    AlreadyExists,
    ApiError,
    InvalidValue,
    NotFound,
    PermissionDenied,
    RejectionTable,
    rejection_handler,
)
from adledger_libs.money import CurrencyCode, Micros, PositiveMicros
from adledger_libs.outbox import OutboxRelay, UnitOfWork, unit_of_work

WEBHOOK_PATH = "/v1/payments/webhook"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Requests and answers ------------------------------------------------------------------------------


class CreateUser(_Model):
    """A user of the API (admins only)."""

    id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=200)
    owner_ids: list[str] = Field(default_factory=list, description="The Business Centers or ad accounts the user may top up and read invoices of.")
    admin: bool = Field(default=False)


class UserCreated(_Model):
    id: str
    token: str = Field(description="The bearer token; shown once, only its hash is kept.")


class SetSubscription(_Model):
    """I4: only an owner with an active subscription can hold a credit balance (admins only)."""

    status: Literal["active", "inactive"]
    billing_email: str | None = Field(default=None, max_length=320, description="Where the owner's invoices are e-mailed; unchanged when null.")


class SubscriptionAnswer(_Model):
    owner_id: str
    status: Literal["active", "inactive", "none"] = Field(description="none: never subscribed.")
    billing_email: str | None = None
    changed_at: datetime | None = None


class RequestTopUp(_Model):
    """I1, I2: an amount, or a target the balance should reach once the invoice is paid."""

    owner_id: str = Field(min_length=1, max_length=128, description="The Business Center or ad account to fund.")
    currency: CurrencyCode
    amount_micros: PositiveMicros | None = Field(default=None, description="Invoice exactly this (I1).")
    target_micros: Micros | None = Field(default=None, ge=0, description="Invoice target − the current balance (I2).")


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
    invoiced: bool = Field(description="False when a target was already reached (I2): no invoice, and `message` says so.")
    amount_micros: int = Field(description="The amount invoiced (0 when none).")
    invoice: InvoiceAnswer | None
    message: str | None = None


class BalanceAnswer(_Model):
    real_micros: int
    virtual_micros: int
    available_micros: int
    version: int
    updated_at: datetime


class BillingOverview(_Model):
    """I1: the balance, and apart from it what is pending: top-ups not paid yet never count in it."""

    owner_id: str
    currency: str | None
    balance: BalanceAnswer | None = Field(description="The wallet's balance as last published on balances.v1; null when none arrived yet.")
    pending_top_ups_micros: int
    pending_top_ups: list[InvoiceAnswer]
    outstanding_invoices: list[InvoiceAnswer]


class RegisterFundingSource(_Model):
    """I6: a funding source (admins only)."""

    id: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["prepaid_invoice", "credit_card"]
    currency: CurrencyCode
    low_balance_threshold_micros: Micros = Field(default=0, ge=0, description="Below it, the low-balance contacts are e-mailed at once.")
    low_balance_contacts: list[str] = Field(default_factory=list, description="E-mail addresses alerted at once when a charge leaves the balance low.")
    accounts_payable_contact: str | None = Field(default=None, description="Where the day-close invoice is sent.")


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

    charge_id: str = Field(min_length=1, max_length=100)
    amount_micros: PositiveMicros
    currency: CurrencyCode
    description: str = Field(min_length=1, max_length=300)


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

    scenario: Literal["pay", "fail", "pay_twice", "fail_after_success", "fail_then_pay"] = "pay"


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
    effect: str


# Typed errors ------------------------------------------------------------------------------------------


class SubscriptionInactive(ApiError):
    status_code, code = 409, "subscription_inactive"


class CurrencyMismatch(ApiError):
    status_code, code = 422, "currency_mismatch"


class BalanceUnknown(ApiError):
    status_code, code = 409, "balance_unknown"


class IllegalTransition(ApiError):
    status_code, code = 409, "illegal_transition"


class ChargeExists(ApiError):
    status_code, code = 409, "charge_exists"


class LocalProviderDisabled(ApiError):
    status_code, code = 404, "local_provider_disabled"


class ProviderUnavailable(ApiError):
    status_code, code = 503, "provider_unavailable"


class SignatureMissing(ApiError):
    status_code, code = 400, "signature_missing"


class SignatureInvalid(ApiError):
    status_code, code = 401, "signature_invalid"


class SignatureExpired(ApiError):
    status_code, code = 401, "signature_expired"


class InvalidNotification(ApiError):
    status_code, code = 400, "invalid_notification"


REJECTION_TABLE: RejectionTable = [
    ((PermissionDeniedError,), PermissionDenied),
    ((store.UnknownInvoiceError, store.UnknownFundingSourceError), NotFound),
    ((AlreadyExistsError,), AlreadyExists),
    ((ChargeConflictError,), ChargeExists),
    ((domain.SubscriptionInactiveError,), SubscriptionInactive),
    ((domain.CurrencyMismatchError,), CurrencyMismatch),
    ((domain.BalanceUnknownError,), BalanceUnknown),
    ((domain.IllegalTransitionError,), IllegalTransition),
    ((domain.InvalidAmountError,), InvalidValue),
    ((PaymentProviderUnavailableError,), ProviderUnavailable),
]
answer_rejection = rejection_handler(REJECTION_TABLE)
REJECTIONS: tuple[type[Exception], ...] = (domain.InvoicingError, PermissionDeniedError, AlreadyExistsError, ChargeConflictError, LookupError, PaymentProviderUnavailableError)


def invoice_answer(invoice: Invoice) -> InvoiceAnswer:
    return InvoiceAnswer(
        id=invoice.id, number=invoice.display_number, payer_id=invoice.payer_id, payer_kind=invoice.payer_kind,
        purpose=invoice.purpose.value, status=invoice.status.value, amount_micros=invoice.amount_micros,
        amount=format_money(invoice.amount_micros, invoice.currency), currency=invoice.currency,
        lines=[LineAnswer(description=line.description, amount_micros=line.amount_micros, amount=format_money(line.amount_micros, invoice.currency)) for line in invoice.lines],
        reference_id=invoice.reference_id, issued_at=invoice.issued_at, due_on=invoice.due_on, paid_at=invoice.paid_at,
        payment_id=invoice.payment_id, version=invoice.version, document_url=f"/v1/invoices/{invoice.id}/document",
    )


async def _caller(conn: asyncpg.Connection, token: str | None) -> Caller:
    found = await store.user_by_token(conn, token or "")
    if found is None:
        raise UnauthenticatedError("the bearer token is not known")
    return Caller(found)


class InvoicingApi(AuthenticatedApi[Caller]):
    def __init__(
        self, pool: Callable[[], asyncpg.Pool], relay: Callable[[], OutboxRelay], invoicing: Invoicing,
        local_provider: LocalPaymentProvider | None,
    ) -> None:
        super().__init__(pool, relay, service="invoicing")
        self._pool_of = pool
        self._invoicing = invoicing
        self._local_provider = local_provider

    async def caller(self, uow: UnitOfWork, call: Call) -> Caller:
        return await _caller(uow.conn, call.bearer_token)

    def endpoints(self) -> list[Endpoint]:
        invoicing = self._invoicing

        async def create_user(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: CreateUser = call.body
            token = await invoicing.create_user(uow, caller, body.id, body.name, list(body.owner_ids), body.admin)
            return 201, UserCreated(id=body.id, token=token)

        async def set_subscription(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: SetSubscription = call.body
            found = await invoicing.set_subscription(uow, caller, call.path["owner_id"], body.status, body.billing_email)
            return 200, SubscriptionAnswer(owner_id=found.owner_id, status=found.status, billing_email=found.billing_email, changed_at=found.changed_at)  # type: ignore[arg-type]

        async def read_subscription(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            owner_id = call.path["owner_id"]
            found = await invoicing.read_subscription(uow, caller, owner_id)
            if found is None:
                return 200, SubscriptionAnswer(owner_id=owner_id, status="none")
            return 200, SubscriptionAnswer(owner_id=owner_id, status=found.status, billing_email=found.billing_email, changed_at=found.changed_at)  # type: ignore[arg-type]

        async def top_up(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: RequestTopUp = call.body
            result = await invoicing.top_up(uow, caller, body.owner_id, body.currency, body.amount_micros, body.target_micros)
            if result.invoice is None:
                return 200, TopUpAnswer(invoiced=False, amount_micros=0, invoice=None, message=result.message)
            return 201, TopUpAnswer(invoiced=True, amount_micros=result.requested_micros, invoice=invoice_answer(result.invoice))

        async def overview(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            owner_id = call.path["owner_id"]
            found, pending, outstanding = await invoicing.billing_overview(uow, caller, owner_id)
            return 200, BillingOverview(
                owner_id=owner_id, currency=found.currency if found else None,
                balance=BalanceAnswer(real_micros=found.real_micros, virtual_micros=found.virtual_micros, available_micros=found.available_micros, version=found.version, updated_at=found.updated_at) if found else None,
                pending_top_ups_micros=sum(invoice.amount_micros for invoice in pending),
                pending_top_ups=[invoice_answer(invoice) for invoice in pending],
                outstanding_invoices=[invoice_answer(invoice) for invoice in outstanding],
            )

        async def list_invoices(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, Any]:
            status = call.query.get("status")
            if status is not None and status not in {s.value for s in InvoiceStatus}:
                raise InvalidValue(f"status must be one of {', '.join(s.value for s in InvoiceStatus)}")
            found = await invoicing.list_invoices(uow, caller, call.query.get("owner_id"), status)
            return 200, [invoice_answer(invoice) for invoice in found]

        async def read_invoice(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            return 200, invoice_answer(await invoicing.read_invoice(uow, caller, call.path["invoice_id"]))

        async def notifications(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, Any]:
            rows = await invoicing.notifications_of(uow, caller, call.path["invoice_id"])
            return 200, [NotificationAnswer(**row) for row in rows]  # type: ignore[arg-type]

        def status_change(wanted: InvoiceStatus) -> Any:
            async def change(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
                return 200, invoice_answer(await invoicing.change_status(uow, caller, call.path["invoice_id"], wanted))

            return change

        async def register_source(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: RegisterFundingSource = call.body
            source = await invoicing.register_funding_source(
                uow, caller,
                store.FundingSource(body.id, body.name, body.kind, body.currency, body.low_balance_threshold_micros,
                                    tuple(body.low_balance_contacts), body.accounts_payable_contact, datetime.min),
            )
            return 201, _source_answer(source, 0)

        async def read_source(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            source, balance_micros = await invoicing.read_funding_source(uow, caller, call.path["funding_source_id"])
            return 200, _source_answer(source, balance_micros)

        async def charge_source(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: ChargeFundingSource = call.body
            event = await invoicing.charge_funding_source(uow, caller, call.path["funding_source_id"], body.charge_id, body.amount_micros, body.currency, body.description)
            return 201, ChargeAnswer(
                funding_source_id=event.funding_source_id, charge_id=event.charge_id, amount_micros=event.amount_micros,
                currency=event.currency, balance_after_micros=event.balance_after_micros, card_invoice_id=event.card_invoice_id,
            )

        async def top_up_source(uow: UnitOfWork, caller: Caller, call: Call) -> tuple[int, BaseModel]:
            body: TopUpFundingSource = call.body
            return 201, invoice_answer(await invoicing.top_up_funding_source(uow, caller, call.path["funding_source_id"], body.amount_micros))

        async def local_payment(call: Call) -> tuple[int, Any]:
            if self._local_provider is None:
                raise LocalProviderDisabled("the local payment provider is off (ADLEDGER_LOCAL_PROVIDER_ENABLED)")
            async with unit_of_work(self._pool_of()) as uow:
                caller = await _caller(uow.conn, call.bearer_token)
                invoice = await invoicing.read_invoice(uow, caller, call.path["invoice_id"])
            # The webhooks are sent outside any transaction: the provider is another party.
            assert call.idempotency_key is not None
            payment_id, answers = await self._local_provider.pay(invoice, call.body.scenario, call.idempotency_key)
            return 200, LocalPaymentAnswer(payment_id=payment_id, webhooks=[WebhookDelivery(**answer) for answer in answers])

        user_errors = (PermissionDenied, NotFound)
        invoice_path = "/v1/invoices/{invoice_id}"
        source_path = "/v1/funding-sources/{funding_source_id}"
        return [
            Endpoint("POST", "/v1/users", "Create a user and get their bearer token (admins)", self.command("POST", "/v1/users", create_user), UserCreated, CreateUser, 201, (PermissionDenied, AlreadyExists), tags=("users",)),
            Endpoint("PUT", "/v1/subscriptions/{owner_id}", "Set an owner's subscription status (admins; I4)", self.command("PUT", "/v1/subscriptions/{owner_id}", set_subscription), SubscriptionAnswer, SetSubscription, errors=(PermissionDenied,), tags=("subscriptions",)),
            Endpoint("GET", "/v1/subscriptions/{owner_id}", "Read an owner's subscription status (I4)", self.query(read_subscription), SubscriptionAnswer, errors=(PermissionDenied,), tags=("subscriptions",)),
            Endpoint("POST", "/v1/top-ups", "Request a top-up: an invoice, the balance grows once it is paid (I1-I4)", self.command("POST", "/v1/top-ups", top_up), TopUpAnswer, RequestTopUp, 201, (PermissionDenied, SubscriptionInactive, CurrencyMismatch, BalanceUnknown, InvalidValue), tags=("top-ups",), description="201 with the invoice; 200 with invoiced=false when a target is at or below the balance (I2)."),
            Endpoint("GET", "/v1/owners/{owner_id}/billing", "The balance and, apart from it, pending top-ups and outstanding invoices (I1)", self.query(overview), BillingOverview, errors=(PermissionDenied,), tags=("top-ups",)),
            Endpoint("GET", "/v1/invoices", "List invoices (yours, or an owner's), newest first", self.query(list_invoices), InvoiceAnswer, errors=(PermissionDenied, InvalidValue), returns_list=True, query=("owner_id", "status"), tags=("invoices",)),
            Endpoint("GET", invoice_path, "Read an invoice with its lines", self.query(read_invoice), InvoiceAnswer, errors=user_errors, tags=("invoices",)),
            Endpoint("GET", invoice_path + "/payments", "The provider notifications of an invoice and what each did (I5)", self.query(notifications), NotificationAnswer, errors=user_errors, returns_list=True, tags=("invoices",)),
            Endpoint("POST", invoice_path + "/void", "Void an invoice (admins; I5)", self.command("POST", invoice_path + "/void", status_change(InvoiceStatus.VOID)), InvoiceAnswer, None, errors=(*user_errors, IllegalTransition), tags=("invoices",)),
            Endpoint("POST", invoice_path + "/uncollectible", "Mark an invoice uncollectible (admins; I5)", self.command("POST", invoice_path + "/uncollectible", status_change(InvoiceStatus.UNCOLLECTIBLE)), InvoiceAnswer, None, errors=(*user_errors, IllegalTransition), tags=("invoices",)),
            Endpoint("POST", "/v1/funding-sources", "Register a funding source: prepaid_invoice or credit_card (admins; I6)", self.command("POST", "/v1/funding-sources", register_source), FundingSourceAnswer, RegisterFundingSource, 201, (PermissionDenied, AlreadyExists), tags=("funding-sources",)),
            Endpoint("GET", source_path, "Read a funding source and its ledger balance (admins; I6)", self.query(read_source), FundingSourceAnswer, errors=user_errors, tags=("funding-sources",)),
            Endpoint("POST", source_path + "/charges", "Charge a funding source (admins; I6)", self.command("POST", source_path + "/charges", charge_source), ChargeAnswer, ChargeFundingSource, 201, (*user_errors, CurrencyMismatch, ChargeExists, InvalidValue), tags=("funding-sources",)),
            Endpoint("POST", source_path + "/top-ups", "Invoice a prepayment of a funding source (admins; I6)", self.command("POST", source_path + "/top-ups", top_up_source), InvoiceAnswer, TopUpFundingSource, 201, user_errors, tags=("funding-sources",)),
            Endpoint("POST", "/v1/local-provider/invoices/{invoice_id}/payments", "Local provider only: pay, fail, pay twice… an invoice; sends signed webhooks to this service (I5)", local_payment, LocalPaymentAnswer, LocalPayment, 200, (*user_errors, LocalProviderDisabled, ProviderUnavailable), tags=("local-provider",)),
        ]


def _source_answer(source: store.FundingSource, balance_micros: int) -> FundingSourceAnswer:
    return FundingSourceAnswer(
        id=source.id, name=source.name, kind=source.kind, currency=source.currency, balance_micros=balance_micros,
        low_balance_threshold_micros=source.low_balance_threshold_micros, low_balance_contacts=list(source.low_balance_contacts),
        accounts_payable_contact=source.accounts_payable_contact,
    )


# The provider's webhook and the document: plain routes (no bearer token / not JSON) -----------------


def webhook_route(pool: Callable[[], asyncpg.Pool], relay: Callable[[], OutboxRelay], invoicing: Invoicing, secret: str, tolerance_s: int, clock: Clock) -> Route:
    async def receive(request: Request) -> Response:
        body = await request.body()
        try:
            signatures.verify(secret, request.headers.get(signatures.SIGNATURE_HEADER), body, clock.now(), tolerance_s)
        except signatures.MissingSignatureError as error:
            raise SignatureMissing(str(error)) from None
        except signatures.StaleSignatureError as error:
            raise SignatureExpired(str(error)) from None
        except signatures.SignatureError as error:
            raise SignatureInvalid(str(error)) from None
        notification = parse_notification(body)
        if notification is None:
            return JSONResponse(WebhookAnswer(received=True, effect="ignored").model_dump())
        async with unit_of_work(pool(), relay()) as uow:
            effect = await invoicing.payment_notified(uow, notification)
        return JSONResponse(WebhookAnswer(received=True, effect=effect).model_dump())

    return Route(WEBHOOK_PATH, receive, methods=["POST"])


def parse_notification(body: bytes) -> PaymentNotification | None:
    """The provider's JSON; None for an event type this service does not act on."""
    try:
        data = json.loads(body)
        kind = data["type"]
        if kind not in ("payment.succeeded", "payment.failed"):
            return None
        fields = (data["id"], data["payment_id"], data["invoice_id"], data["currency"])
        amount = data["amount_micros"]
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidNotification(f"the notification is not valid JSON of the provider: {error!r}") from None
    if not all(isinstance(value, str) and 0 < len(value) <= 128 for value in fields) or type(amount) is not int:
        raise InvalidNotification("id, payment_id, invoice_id and currency are strings; amount_micros an integer (M1)")
    return PaymentNotification(
        provider_event_id=data["id"], payment_id=data["payment_id"], invoice_id=data["invoice_id"],
        outcome=PaymentOutcome(kind.removeprefix("payment.")), amount_micros=amount, currency=data["currency"],
    )


def document_route(pool: Callable[[], asyncpg.Pool], invoicing: Invoicing) -> Route:
    async def document(request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
        if not token:
            raise UnauthenticatedError("a bearer token is required (Authorization: Bearer <token>)")
        async with unit_of_work(pool()) as uow:
            caller = await _caller(uow.conn, token)
            invoice = await invoicing.read_invoice(uow, caller, request.path_params["invoice_id"])
        return HTMLResponse(render_html(invoice))

    return Route("/v1/invoices/{invoice_id}/document", document, methods=["GET"])


def add_plain_routes_to(document: dict[str, Any]) -> dict[str, Any]:
    """The webhook and the document in the OpenAPI document (they are not JSON commands)."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    document["paths"][WEBHOOK_PATH] = {
        "post": {
            "summary": "The payment provider's signed notification (I5): payment.succeeded or payment.failed",
            "operationId": "post_v1_payments_webhook",
            "description": "Body: {id, type, payment_id, invoice_id, amount_micros, currency, created}. Header "
            "Adledger-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<raw body>' with the shared secret>. "
            "Idempotent by `id`; safe in any order; a failure after a success changes nothing.",
            "parameters": [{"name": signatures.SIGNATURE_HEADER, "in": "header", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookAnswer"}}}},
                "400": {"description": "invalid_notification, signature_missing", **error},
                "401": {"description": "signature_expired, signature_invalid", **error},
            },
            "tags": ["payments"],
        }
    }
    document["paths"]["/v1/invoices/{invoice_id}/document"] = {
        "get": {
            "summary": "The invoice as an HTML document for people (print to PDF from a browser)",
            "operationId": "get_v1_invoices_invoice_id_document",
            "parameters": [{"name": "invoice_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}},
                "401": {"description": "unauthenticated", **error},
                "403": {"description": "permission_denied", **error},
                "404": {"description": "not_found", **error},
            },
            "security": [{"bearer": []}],
            "tags": ["invoices"],
        }
    }
    document["components"]["schemas"]["WebhookAnswer"] = WebhookAnswer.model_json_schema()
    return document


__all__ = ["SCENARIOS", "InvoicingApi", "answer_rejection", "REJECTIONS", "webhook_route", "document_route"]
