"""The console's pages (FastAPI + Jinja2 + htmx, served from this package: no CDN).

Every page and action calls the platform's public APIs with the signed-in user's own token, so
what a user sees and may do is exactly what the platform allows them (W9): an analyst's action is
refused by the API with its reason, shown in words; a Business Center the user has no role in is
answered by the wallet as not found, and the console shows nothing of it. Forms are protected by
a CSRF token bound to the session and carry an idempotency key made when the form was drawn, so a
double submit is one command (M5)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from jinja2 import Environment, FileSystemLoader, select_autoescape

from adledger_console import charts, overview
from adledger_console.amounts import AmountError, money, parse_micros
from adledger_console.apis import Apis, Refusal
from adledger_console.config import Settings
from adledger_console.delivery import DeliveryStates
from adledger_console.sessions import COOKIE, Session, Signer, new_session
from adledger_console.today import ConsoleTime
from adledger_libs.clock import Clock, SystemClock
from adledger_libs.logs import get_logger

log = get_logger(__name__)
MAX_FORM_BYTES = 8 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
#: Only the first error code of a refusal is a word for people; these read better.
ROLE_NAMES = {"admin": "Admin", "finance_manager": "Finance Manager", "operator": "Operator", "analyst": "Analyst"}


class FormError(Exception):
    """A form that cannot become a request (a missing or malformed field): said in words."""


def _secret(settings: Settings) -> str:
    settings.check_safe()
    return settings.console_session_secret or secrets.token_urlsafe(32)


def create_app(
    settings: Settings, *, clock: Clock | None = None, states: DeliveryStates | None = None, apis: Apis | None = None
) -> FastAPI:
    clock = clock or SystemClock()
    signer = Signer(_secret(settings))
    apis = apis or Apis(
        {
            "identity": settings.identity_url,
            "wallet": settings.wallet_url,
            "campaign": settings.campaign_url,
            "invoicing": settings.invoicing_url,
            "escrow": settings.escrow_url,
            "sends": settings.sends_url,
        },
        settings.api_timeout_s,
    )
    states = states or DeliveryStates(settings.kafka_connection(), settings.delivery_state_topic)
    time = ConsoleTime(clock, apis, sandbox=settings.clock == "sandbox")
    here = files("adledger_console")
    templates = Environment(loader=FileSystemLoader(str(here / "templates")), autoescape=select_autoescape(["html"]))
    templates.filters["money"] = money
    templates.globals["role_names"] = ROLE_NAMES

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reader = asyncio.ensure_future(states.run())
        try:
            yield
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await apis.close()

    app = FastAPI(title="adledger finance console", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.delivery_states = states
    app.mount("/static", StaticFiles(directory=str(here / "static")), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> HTMLResponse:
        """A bug of the console's own: logged, and a page that says so without its internals."""
        log.error("console_page_failed", path=request.url.path, error=repr(error))
        return HTMLResponse(
            "<!doctype html><title>Error</title><p>Something went wrong on this page. Reload it; if it "
            "stays, tell the platform team.</p>",
            status_code=500,
        )

    # Sessions -----------------------------------------------------------------------------------------

    def session_of(request: Request) -> Session | None:
        return signer.load(request.cookies.get(COOKIE))

    def keep(response: Response, session: Session) -> Response:
        response.set_cookie(
            COOKIE,
            signer.dump(session),
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
            path="/",
            max_age=12 * 3600,
        )
        return response

    def page(
        name: str, session: Session, status: int = 200, *, set_cookie: bool = False, **context: Any
    ) -> HTMLResponse:
        """`set_cookie` only where the session is new: a polled fragment must never bring back a
        cookie the user has just dropped (signed out)."""
        body = templates.get_template(name).render(
            csrf=session.csrf,
            user_id=session.user_id,
            signed_in=session.signed_in,
            key=_key,
            refresh_ms=settings.live_refresh_ms,
            local=settings.local,
            **context,
        )
        response = HTMLResponse(body, status_code=status)
        if set_cookie:
            keep(response, session)
        return response

    async def form_of(request: Request, session: Session) -> dict[str, str]:
        """The urlencoded form, bounded, with its CSRF token checked against the session's."""
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise FormError("the form is too large")
        fields = {
            name: values[0] for name, values in parse_qs(body.decode("utf-8", "replace"), max_num_fields=32).items()
        }
        if not secrets.compare_digest(fields.get("csrf", ""), session.csrf):
            raise FormError("the form has expired: reload the page and try again")
        return fields

    def outcome(
        session: Session,
        *,
        done: str | None = None,
        refusal: Refusal | None = None,
        error: str | None = None,
        form: str = "",
        status: int = 200,
    ) -> HTMLResponse:
        return page("_outcome.html", session, status=status, done=done, refusal=refusal, error=error, form=form)

    async def me(session: Session) -> dict[str, Any]:
        return dict(await apis.get("identity", "/v1/users/me", session.token))

    async def signed_in(request: Request) -> Session | Response:
        session = session_of(request)
        if session is None or not session.signed_in:
            return RedirectResponse("/sign-in", status_code=303)
        return session

    # Pages --------------------------------------------------------------------------------------------

    @app.get("/health", include_in_schema=False)
    async def health() -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "service": settings.service_name,
                "checks": {"delivery_states": "ok" if states.caught_up.is_set() else "catching up"},
            }
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/sign-in", response_class=HTMLResponse)
    async def sign_in_page(request: Request) -> Response:
        session = session_of(request) or new_session()
        if session.signed_in:
            return RedirectResponse("/", status_code=303)
        return page("sign_in.html", Session(csrf=session.csrf), set_cookie=True)

    @app.post("/sign-in", response_class=HTMLResponse)
    async def sign_in(request: Request) -> Response:
        session = session_of(request) or new_session()
        try:
            fields = await form_of(request, session)
            user_id, password = fields.get("user_id", "").strip(), fields.get("password", "")
            if not user_id or not password:
                raise FormError("enter your user id and password")
            answer = await apis.sign_in(user_id, password)
        except FormError as error:
            return page("sign_in.html", new_session(), status=400, error=str(error), set_cookie=True)
        except Refusal as refusal:
            return page(
                "sign_in.html", Session(csrf=session.csrf), status=refusal.status, refusal=refusal, set_cookie=True
            )
        # A new CSRF token with the new session (no fixation of the signed-out one).
        fresh = Session(csrf=secrets.token_urlsafe(24), token=str(answer["token"]), user_id=str(answer["user_id"]))
        return keep(RedirectResponse("/", status_code=303), fresh)

    @app.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        found = await signed_in(request)
        if isinstance(found, Response):
            return found
        try:
            await form_of(request, found)
            await apis.command("identity", "DELETE", "/v1/sessions/current", found.token, key=str(uuid.uuid4()))
        except (FormError, Refusal):
            pass
        return keep(RedirectResponse("/sign-in", status_code=303), new_session())

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        found = await signed_in(request)
        if isinstance(found, Response):
            return found
        try:
            user = await me(found)
        except Refusal as refusal:
            if refusal.status == 401:
                return keep(RedirectResponse("/sign-in", status_code=303), new_session())
            return page("error.html", found, status=refusal.status, refusal=refusal)
        roles: dict[str, list[str]] = user.get("roles") or {}
        if len(roles) == 1:
            return RedirectResponse(f"/bc/{quote(next(iter(roles)), safe='')}", status_code=303)
        return page("home.html", found, user=user, roles=roles)

    async def business_center_context(session: Session, business_center_id: str) -> dict[str, Any]:
        user = await me(session)
        roles = (user.get("roles") or {}).get(business_center_id, [])
        bc = await apis.get("wallet", f"/v1/business-centers/{quote(business_center_id, safe='')}", session.token)
        return {"user": user, "roles": roles, "bc": bc, "business_center_id": business_center_id}

    async def guarded(
        request: Request, business_center_id: str, render: Callable[[Session, dict[str, Any]], Awaitable[Response]]
    ) -> Response:
        found = await signed_in(request)
        if isinstance(found, Response):
            return found
        try:
            context = await business_center_context(found, business_center_id)
            return await render(found, context)
        except Refusal as refusal:
            if refusal.status == 401:
                return keep(RedirectResponse("/sign-in", status_code=303), new_session())
            return page("error.html", found, status=refusal.status, refusal=refusal)

    async def accounts_of(session: Session, business_center_id: str) -> list[dict[str, Any]]:
        bc_path = quote(business_center_id, safe="")
        accounts = await apis.get("wallet", f"/v1/business-centers/{bc_path}/ad-accounts", session.token)

        async def one(account: dict[str, Any]) -> dict[str, Any]:
            account_path = quote(account["id"], safe="")
            balance = await apis.get("wallet", f"/v1/balances/{account_path}", session.token)
            try:
                cap: dict[str, Any] | None = await apis.get(
                    "campaign", f"/v1/ad-accounts/{account_path}/budget-cap", session.token
                )
            except Refusal as refusal:
                if not refusal.not_found:
                    raise
                cap = None
            found = await apis.get("campaign", f"/v1/ad-accounts/{account_path}/campaigns", session.token)
            state = states.of(account["id"])
            return {
                **account,
                "balance": balance,
                "cap": cap,
                "state": state,
                "campaigns": found,
                "paused_campaigns": states.paused_campaigns(account["id"]),
            }

        return list(await asyncio.gather(*(one(account) for account in accounts)))

    @app.get("/bc/{business_center_id}", response_class=HTMLResponse)
    async def business_center(request: Request, business_center_id: str) -> Response:
        async def render(session: Session, context: dict[str, Any]) -> Response:
            path = quote(business_center_id, safe="")
            today = (await time.now()).date()
            since = (today - timedelta(days=30)).isoformat()
            balance = await apis.get("wallet", f"/v1/balances/{path}", session.token)
            billing = await apis.get("invoicing", f"/v1/owners/{path}/billing", session.token)
            accounts = await accounts_of(session, business_center_id)
            owners = [business_center_id, *(account["id"] for account in accounts)]
            histories = await asyncio.gather(
                *(
                    apis.get("wallet", f"/v1/balances/{quote(owner, safe='')}/history", session.token, {"from": since})
                    for owner in owners
                )
            )
            invoices: list[dict[str, Any]] = []
            for owner in owners:
                invoices += await apis.get("invoicing", "/v1/invoices", session.token, {"owner_id": owner})
            reals = [balance["real_micros"], *(account["balance"]["real_micros"] for account in accounts)]
            spend = overview.spend_per_day(histories, reals, invoices, today, today - timedelta(days=30))
            available = balance["available_micros"] + sum(
                account["balance"]["available_micros"] for account in accounts
            )
            currency = balance["currency"]
            return page(
                "business_center.html",
                session,
                **context,
                balance=balance,
                billing=billing,
                accounts=accounts,
                balance_chart=charts.line_chart(
                    "Balance at each day close", overview.balance_points(histories), currency
                ),
                spend_chart=charts.bar_chart("Spend per day", spend, currency),
                total_available=available,
                runway=overview.runway_days(available, spend, today),
                currency=currency,
                today=today,
                sandbox=time.sandbox,
            )

        return await guarded(request, business_center_id, render)

    @app.get("/bc/{business_center_id}/ad-accounts", response_class=HTMLResponse)
    async def ad_accounts(request: Request, business_center_id: str) -> Response:
        async def render(session: Session, context: dict[str, Any]) -> Response:
            accounts = await accounts_of(session, business_center_id)
            return page("_ad_accounts.html", session, **context, accounts=accounts)

        return await guarded(request, business_center_id, render)

    @app.get("/bc/{business_center_id}/invoices", response_class=HTMLResponse)
    async def invoices_page(request: Request, business_center_id: str) -> Response:
        async def render(session: Session, context: dict[str, Any]) -> Response:
            accounts = await apis.get(
                "wallet", f"/v1/business-centers/{quote(business_center_id, safe='')}/ad-accounts", session.token
            )
            found: list[dict[str, Any]] = []
            for owner in [business_center_id, *(account["id"] for account in accounts)]:
                found += await apis.get("invoicing", "/v1/invoices", session.token, {"owner_id": owner})
            found.sort(key=lambda item: str(item["issued_at"]), reverse=True)
            return page("invoices.html", session, **context, invoices=found, can_pay=bool(settings.provider_token))

        return await guarded(request, business_center_id, render)

    @app.get("/bc/{business_center_id}/invoices/{invoice_id}", response_class=HTMLResponse)
    async def invoice_document(request: Request, business_center_id: str, invoice_id: str) -> Response:
        async def render(session: Session, context: dict[str, Any]) -> Response:
            invoice = await apis.get("invoicing", f"/v1/invoices/{quote(invoice_id, safe='')}", session.token)
            return page("invoice.html", session, **context, invoice=invoice)

        return await guarded(request, business_center_id, render)

    @app.get("/bc/{business_center_id}/invoices/{invoice_id}/document", response_class=HTMLResponse)
    async def invoice_document_itself(request: Request, business_center_id: str, invoice_id: str) -> Response:
        async def render(session: Session, context: dict[str, Any]) -> Response:
            document = await apis.text(
                "invoicing", f"/v1/invoices/{quote(invoice_id, safe='')}/document", session.token
            )
            # The invoicing service's own document, framed by the invoice page only: no script runs in it.
            return HTMLResponse(
                document,
                headers={
                    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                    "frame-ancestors 'self'; sandbox",
                    "X-Frame-Options": "SAMEORIGIN",
                },
            )

        return await guarded(request, business_center_id, render)

    @app.get("/bc/{business_center_id}/summary", response_class=HTMLResponse)
    async def summary(request: Request, business_center_id: str) -> Response:
        async def render(session: Session, context: dict[str, Any]) -> Response:
            path = quote(business_center_id, safe="")
            balance = await apis.get("wallet", f"/v1/balances/{path}", session.token)
            billing = await apis.get("invoicing", f"/v1/owners/{path}/billing", session.token)
            return page("_summary.html", session, **context, balance=balance, billing=billing)

        return await guarded(request, business_center_id, render)

    @app.get("/bc/{business_center_id}/sends", response_class=HTMLResponse)
    async def sends_page(request: Request, business_center_id: str) -> Response:
        """Teams, user balances and sends awaiting approval (U1, U4, U6), from the sends service's lists."""

        async def render(session: Session, context: dict[str, Any]) -> Response:
            base = f"/v1/business-centers/{quote(business_center_id, safe='')}"
            teams = await apis.get("sends", f"{base}/teams", session.token)
            balances: list[dict[str, Any]] | None
            balances_refusal: Refusal | None = None
            try:
                balances = await apis.get("sends", f"{base}/user-balances", session.token)
            except Refusal as refusal:
                if refusal.status != 403:
                    raise
                # Other users' balances are the Admins' (W9): said so, the rest of the page still shown.
                balances, balances_refusal = None, refusal
            waiting = await apis.get("sends", f"{base}/sends", session.token, {"state": "awaiting_approval"})
            recent = await apis.get("sends", f"{base}/sends", session.token, {"limit": "20"})
            return page(
                "sends.html",
                session,
                **context,
                teams=teams,
                balances=balances,
                balances_refusal=balances_refusal,
                waiting=waiting,
                recent=[send for send in recent if send["state"] != "awaiting_approval"],
            )

        return await guarded(request, business_center_id, render)

    # Actions ------------------------------------------------------------------------------------------

    def action(path: str, describe: Callable[[Session, str, dict[str, str]], Awaitable[str]], form: str) -> None:
        async def handle(request: Request, business_center_id: str) -> Response:
            found = await signed_in(request)
            if isinstance(found, Response):
                return found
            try:
                fields = await form_of(request, found)
                key = fields.get("idempotency_key", "")
                if not 8 <= len(key) <= 64:
                    raise FormError("the form has no idempotency key: reload the page")
                done = await describe(found, business_center_id, fields)
            except FormError as error:
                return outcome(found, error=str(error), form=form, status=200)
            except AmountError as error:
                return outcome(found, error=str(error), form=form, status=200)
            except Refusal as refusal:
                return outcome(found, refusal=refusal, form=form, status=200)
            return outcome(found, done=done, form=form)

        app.post(f"/bc/{{business_center_id}}/{path}", response_class=HTMLResponse, name=f"action_{form}")(handle)

    def required(fields: dict[str, str], name: str, what: str) -> str:
        value = fields.get(name, "").strip()
        if not value:
            raise FormError(f"enter {what}")
        if len(value) > 128:
            raise FormError(f"{what} is too long")
        return value

    async def top_up(session: Session, bc: str, fields: dict[str, str]) -> str:
        owner = fields.get("owner_id", "").strip() or bc
        body: dict[str, Any] = {"owner_id": owner, "currency": required(fields, "currency", "the currency")}
        if fields.get("mode") == "target":
            body["target_micros"] = parse_micros(required(fields, "amount", "an amount"), allow_zero=True)
        else:
            body["amount_micros"] = parse_micros(required(fields, "amount", "an amount"))
        answer = await apis.command("invoicing", "POST", "/v1/top-ups", session.token, fields["idempotency_key"], body)
        if not answer["invoiced"]:
            return str(answer.get("message") or "Nothing to invoice: the balance is at the target already.")
        invoice = answer["invoice"]
        return (
            f"Top-up requested: invoice {invoice['number']} for {money(answer['amount_micros'], body['currency'])} "
            f"is open. The balance grows once it is paid (I1)."
        )

    async def enable_aba(session: Session, bc: str, fields: dict[str, str]) -> str:
        if fields.get("confirm") != "yes":
            raise FormError("tick the box to confirm: Automatic Balance Allocation cannot be switched off again")
        answer = await apis.command(
            "wallet", "POST", f"/v1/business-centers/{quote(bc, safe='')}/aba", session.token, fields["idempotency_key"]
        )
        return f"Automatic Balance Allocation is on for {len(answer['eligible_ad_account_ids'])} ad account(s)."

    async def allocate(session: Session, bc: str, fields: dict[str, str]) -> str:
        bucket = fields.get("bucket", "vouchers")
        direction = fields.get("direction", "to_ad_account")
        if bucket not in ("cash", "vouchers") or direction not in ("to_ad_account", "to_business_center"):
            raise FormError("choose what to move and which way")
        body = {
            "ad_account_id": required(fields, "ad_account_id", "an ad account"),
            "bucket": bucket,
            "direction": direction,
            "amount_micros": parse_micros(required(fields, "amount", "an amount")),
            "currency": required(fields, "currency", "the currency"),
        }
        answer = await apis.command(
            "wallet",
            "POST",
            f"/v1/business-centers/{quote(bc, safe='')}/allocations",
            session.token,
            fields["idempotency_key"],
            body,
        )
        return (
            f"Moved {money(body['amount_micros'], body['currency'])} of {bucket}; {answer['owner_id']} now has "
            f"{money(answer['available_micros'], body['currency'])} available."
        )

    async def set_cap(session: Session, bc: str, fields: dict[str, str]) -> str:
        account = required(fields, "ad_account_id", "an ad account")
        kind = fields.get("kind", "")
        if kind not in ("monthly", "daily", "unlimited"):
            raise FormError("choose the kind of cap")
        body: dict[str, Any] = {"kind": kind}
        if kind != "unlimited":
            body["amount_micros"] = parse_micros(required(fields, "amount", "an amount"), allow_zero=True)
        answer = await apis.command(
            "campaign",
            "PUT",
            f"/v1/ad-accounts/{quote(account, safe='')}/budget-cap",
            session.token,
            fields["idempotency_key"],
            body,
        )
        amount = "" if answer["amount_micros"] is None else " of " + money(answer["amount_micros"])
        return f"The cap of {account} is now {answer['kind']}{amount} (version {answer['version']})."

    async def create_campaign(session: Session, bc: str, fields: dict[str, str]) -> str:
        days = fields.get("days", "30").strip()
        if not days.isdigit() or not 1 <= int(days) <= 366:
            raise FormError("the campaign runs 1 to 366 days")
        body = {
            "ad_account_id": required(fields, "ad_account_id", "an ad account"),
            "name": required(fields, "name", "a name"),
            "funding_mode": "prepaid",
            "budget_kind": "lifetime",
            "budget_micros": parse_micros(required(fields, "amount", "a budget")),
            "ends_at": ((await time.now()) + timedelta(days=int(days))).isoformat(),
        }
        answer = await apis.command("campaign", "POST", "/v1/campaigns", session.token, fields["idempotency_key"], body)
        return f"Campaign {answer['id']} created as a draft with a budget of {money(answer['budget_micros'])}."

    async def campaign_command(session: Session, bc: str, fields: dict[str, str]) -> str:
        campaign = quote(required(fields, "campaign_id", "a campaign id"), safe="")
        what = fields.get("command", "")
        if what == "activate":
            answer = await apis.command(
                "campaign", "POST", f"/v1/campaigns/{campaign}/activate", session.token, fields["idempotency_key"]
            )
        elif what == "budget":
            body = {"budget_micros": parse_micros(required(fields, "amount", "the new budget"))}
            answer = await apis.command(
                "campaign", "PUT", f"/v1/campaigns/{campaign}/budget", session.token, fields["idempotency_key"], body
            )
        else:
            raise FormError("choose activate or change the budget")
        invoice = (
            f"; invoice {answer['open_invoice_id']} is open for the shortfall" if answer.get("open_invoice_id") else ""
        )
        requested = (
            " (activation requested: the wallet books the budget)"
            if answer.get("activation_requested") and answer["status"] == "draft"
            else ""
        )
        return (
            f"Campaign {answer['id']} is {answer['status'].replace('_', ' ')}{requested}: budget "
            f"{money(answer['budget_micros'])}, booked {money(answer['booked_micros'])}{invoice}."
        )

    async def order_command(session: Session, bc: str, fields: dict[str, str]) -> str:
        order = quote(required(fields, "order_id", "an order id"), safe="")
        what = fields.get("command", "")
        if what not in ("accept", "decline", "ready", "complete", "dispute"):
            raise FormError("choose accept, decline, creatives approved, complete or dispute")
        body: dict[str, Any] | None = None
        if what == "decline":
            body = {"reason": required(fields, "reason", "a reason")}
        elif what == "dispute":
            body = {"reason": fields.get("reason", "").strip()[:200] or None}
        answer = await apis.command(
            "escrow", "POST", f"/v1/orders/{order}/{what}", session.token, fields["idempotency_key"], body
        )
        return f"Order {answer.get('id', order)} is {str(answer.get('status', 'changed')).replace('_', ' ')}."

    async def pay(session: Session, bc: str, fields: dict[str, str]) -> str:
        if not settings.provider_token:
            raise FormError("the local payment provider exists only in the local profile")
        invoice = required(fields, "invoice_id", "an invoice")
        # Only an invoice the user may read is paid: read with their token first.
        await apis.get("invoicing", f"/v1/invoices/{quote(invoice, safe='')}", session.token)
        answer = await apis.command(
            "invoicing",
            "POST",
            f"/v1/local-provider/invoices/{quote(invoice, safe='')}/payments",
            settings.provider_token,
            fields["idempotency_key"],
            {"scenario": "pay"},
        )
        effects = ", ".join(
            str(hook.get("answer", {}).get("effect", hook.get("status_code"))) for hook in answer["webhooks"]
        )
        return f"The local provider paid the invoice ({effects})."

    async def create_team(session: Session, bc: str, fields: dict[str, str]) -> str:
        body = {
            "id": required(fields, "team_id", "a team id"),
            "business_center_id": bc,
            "name": required(fields, "name", "a name"),
            "funding_source_id": required(fields, "funding_source_id", "a funding source"),
        }
        answer = await apis.command("sends", "POST", "/v1/teams", session.token, fields["idempotency_key"], body)
        return f"Team {answer['name']} ({answer['id']}) created, funded from {answer['funding_source_id']}."

    async def set_user_balance(session: Session, bc: str, fields: dict[str, str]) -> str:
        user = required(fields, "user_id", "a user id")
        mode, schedule = fields.get("mode", ""), fields.get("schedule", "")
        if mode not in ("refresh", "rollover") or schedule not in ("daily", "weekly", "monthly"):
            raise FormError("choose refresh or rollover and a schedule")
        body = {
            "team_id": fields.get("team_id", "").strip() or None,
            "budget_micros": parse_micros(required(fields, "amount", "a budget"), allow_zero=True),
            "mode": mode,
            "schedule": schedule,
        }
        answer = await apis.command(
            "sends",
            "PUT",
            f"/v1/business-centers/{quote(bc, safe='')}/user-balances/{quote(user, safe='')}",
            session.token,
            fields["idempotency_key"],
            body,
        )
        return (
            f"The budget of {user} is {money(answer['budget_micros'], answer['currency'])} ({mode}, {schedule}); "
            f"{money(answer['balance_micros'], answer['currency'])} left to send."
        )

    async def decide_send(session: Session, bc: str, fields: dict[str, str]) -> str:
        send = required(fields, "send_id", "a send")
        what = fields.get("command", "")
        if what not in ("approve", "reject"):
            raise FormError("choose approve or reject")
        answer = await apis.command(
            "sends", "POST", f"/v1/sends/{quote(send, safe='')}/{what}", session.token, fields["idempotency_key"]
        )
        charged = (
            f": {money(answer['charged_micros'], answer['currency'])} charged to {answer['charged_to'].replace('_', ' ')}"
            if answer["state"] == "charged"
            else ""
        )
        return f"Send {answer['id']} is {answer['state'].replace('_', ' ')}{charged}."

    action("teams", create_team, "team")
    action("user-balances", set_user_balance, "user-balance")
    action("send-decisions", decide_send, "decide")
    action("top-ups", top_up, "top-up")
    action("aba", enable_aba, "aba")
    action("allocations", allocate, "allocate")
    action("cap", set_cap, "cap")
    action("campaigns", create_campaign, "campaign")
    action("campaign-commands", campaign_command, "campaign-command")
    action("orders", order_command, "order")
    action("payments", pay, "pay")
    return app


def _key() -> str:
    """A fresh idempotency key for a form drawn now."""
    return str(uuid.uuid4())
