"""The invoicing tables (schema `invoicing`): users, subscriptions, owners and balances copied from
the wallet's topics, invoices with lines, provider notifications, funding sources, posted spend."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from adledger_invoicing.domain.invoices import Invoice, InvoiceStatus, Line, Purpose


class UnknownInvoiceError(LookupError):
    def __init__(self, invoice_id: str) -> None:
        super().__init__(f"no invoice {invoice_id!r}")


class UnknownFundingSourceError(LookupError):
    def __init__(self, funding_source_id: str) -> None:
        super().__init__(f"no funding source {funding_source_id!r}")


@dataclass(frozen=True)
class User:
    id: str
    name: str
    admin: bool


@dataclass(frozen=True)
class Subscription:
    owner_id: str
    status: str
    billing_email: str | None
    changed_at: datetime


@dataclass(frozen=True)
class Owner:
    owner_id: str
    owner_kind: str
    business_center_id: str
    currency: str
    billing_option: str | None


@dataclass(frozen=True)
class Balance:
    owner_id: str
    currency: str
    real_micros: int
    virtual_micros: int
    available_micros: int
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class FundingSource:
    id: str
    name: str
    kind: str
    currency: str
    low_balance_threshold_micros: int
    low_balance_contacts: tuple[str, ...]
    accounts_payable_contact: str | None
    created_at: datetime


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Users ----------------------------------------------------------------------------------------------


async def insert_user(conn: asyncpg.Connection, user_id: str, name: str, token: str, *, admin: bool, owner_ids: list[str], now: datetime) -> bool:
    inserted = await conn.fetchval(
        "insert into users (id, name, token_sha256, admin, created_at) values ($1, $2, $3, $4, $5)"
        " on conflict (id) do nothing returning true",
        user_id, name, token_digest(token), admin, now,
    )
    if inserted:
        await conn.executemany(
            "insert into billing_owners (user_id, owner_id) values ($1, $2) on conflict do nothing",
            [(user_id, owner_id) for owner_id in owner_ids],
        )
    return bool(inserted)


async def user_by_token(conn: asyncpg.Connection, token: str) -> User | None:
    row = await conn.fetchrow("select id, name, admin from users where token_sha256 = $1", token_digest(token))
    return User(row["id"], row["name"], row["admin"]) if row is not None else None


async def may_bill_for(conn: asyncpg.Connection, user_id: str, owner_id: str) -> bool:
    return bool(await conn.fetchval("select exists(select 1 from billing_owners where user_id = $1 and owner_id = $2)", user_id, owner_id))


async def billed_owners(conn: asyncpg.Connection, user_id: str) -> list[str]:
    return [row["owner_id"] for row in await conn.fetch("select owner_id from billing_owners where user_id = $1 order by owner_id", user_id)]


# Subscriptions, owners, balances ----------------------------------------------------------------------


async def set_subscription(conn: asyncpg.Connection, owner_id: str, status: str, billing_email: str | None, by: str, now: datetime) -> Subscription:
    row = await conn.fetchrow(
        """insert into subscriptions (owner_id, status, billing_email, changed_at, changed_by) values ($1, $2, $3, $4, $5)
           on conflict (owner_id) do update set status = excluded.status,
               billing_email = coalesce(excluded.billing_email, subscriptions.billing_email),
               changed_at = excluded.changed_at, changed_by = excluded.changed_by
           returning owner_id, status, billing_email, changed_at""",
        owner_id, status, billing_email, now, by,
    )
    return Subscription(row["owner_id"], row["status"], row["billing_email"], row["changed_at"])


async def subscription(conn: asyncpg.Connection, owner_id: str) -> Subscription | None:
    row = await conn.fetchrow("select owner_id, status, billing_email, changed_at from subscriptions where owner_id = $1", owner_id)
    return Subscription(row["owner_id"], row["status"], row["billing_email"], row["changed_at"]) if row else None


async def upsert_owner(conn: asyncpg.Connection, owner: Owner, opened_at: datetime) -> None:
    await conn.execute(
        """insert into owners (owner_id, owner_kind, business_center_id, currency, billing_option, opened_at)
           values ($1, $2, $3, $4, $5, $6) on conflict (owner_id) do nothing""",
        owner.owner_id, owner.owner_kind, owner.business_center_id, owner.currency, owner.billing_option, opened_at,
    )


async def owner(conn: asyncpg.Connection, owner_id: str) -> Owner | None:
    row = await conn.fetchrow("select * from owners where owner_id = $1", owner_id)
    return Owner(row["owner_id"], row["owner_kind"], row["business_center_id"], row["currency"], row["billing_option"]) if row else None


async def upsert_balances(conn: asyncpg.Connection, rows: list[tuple[str, str, str, int, int, int, int, datetime]]) -> None:
    """Keep the newest version per owner (a compacted topic may replay older records)."""
    await conn.executemany(
        """insert into balances (owner_id, owner_kind, currency, real_micros, virtual_micros, available_micros, version, updated_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8)
           on conflict (owner_id) do update set owner_kind = excluded.owner_kind, currency = excluded.currency,
               real_micros = excluded.real_micros, virtual_micros = excluded.virtual_micros,
               available_micros = excluded.available_micros, version = excluded.version, updated_at = excluded.updated_at
           where balances.version < excluded.version""",
        rows,
    )


async def balance(conn: asyncpg.Connection, owner_id: str) -> Balance | None:
    row = await conn.fetchrow("select * from balances where owner_id = $1", owner_id)
    if row is None:
        return None
    return Balance(row["owner_id"], row["currency"], row["real_micros"], row["virtual_micros"], row["available_micros"], row["version"], row["updated_at"])


# Invoices ---------------------------------------------------------------------------------------------


async def next_invoice_number(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("select nextval('invoice_numbers')"))


async def insert_invoice(conn: asyncpg.Connection, invoice: Invoice) -> bool:
    """Store a new invoice with its lines; False when its id, or a partial unique index (one open
    prepayment, one monthly invoice, one day-close invoice), says it exists already."""
    inserted = await conn.fetchval(
        """insert into invoices (id, number, payer_id, payer_kind, purpose, status, currency, amount_micros, reference_id,
               period_start, automatic_collection, recipient_user_id, recipient_address, issued_at, due_on, paid_at,
               payment_id, version, updated_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $14)
           on conflict do nothing returning true""",
        invoice.id, invoice.number, invoice.payer_id, invoice.payer_kind, invoice.purpose.value, invoice.status.value,
        invoice.currency, invoice.amount_micros, invoice.reference_id, invoice.period_start, invoice.automatic_collection,
        invoice.recipient_user_id, invoice.recipient_address, invoice.issued_at, invoice.due_on, invoice.paid_at,
        invoice.payment_id, invoice.version,
    )
    if not inserted:
        return False
    await conn.executemany(
        "insert into invoice_lines (invoice_id, line_number, description, amount_micros) values ($1, $2, $3, $4)",
        [(invoice.id, number, line.description, line.amount_micros) for number, line in enumerate(invoice.lines, start=1)],
    )
    return True


async def save_invoice(conn: asyncpg.Connection, invoice: Invoice, now: datetime) -> None:
    await conn.execute(
        "update invoices set status = $2, paid_at = $3, payment_id = $4, version = $5, updated_at = $6 where id = $1",
        invoice.id, invoice.status.value, invoice.paid_at, invoice.payment_id, invoice.version, now,
    )


def _invoice(row: asyncpg.Record, lines: list[asyncpg.Record]) -> Invoice:
    return Invoice(
        id=row["id"], number=row["number"], payer_id=row["payer_id"], payer_kind=row["payer_kind"], purpose=Purpose(row["purpose"]),
        status=InvoiceStatus(row["status"]), currency=row["currency"],
        lines=tuple(Line(line["description"], line["amount_micros"]) for line in lines), issued_at=row["issued_at"],
        due_on=row["due_on"], reference_id=row["reference_id"], period_start=row["period_start"],
        automatic_collection=row["automatic_collection"], recipient_user_id=row["recipient_user_id"],
        recipient_address=row["recipient_address"], paid_at=row["paid_at"], payment_id=row["payment_id"], version=row["version"],
    )


async def find_invoice(conn: asyncpg.Connection, invoice_id: str, *, for_update: bool = False) -> Invoice | None:
    row = await conn.fetchrow("select * from invoices where id = $1" + (" for update" if for_update else ""), invoice_id)
    if row is None:
        return None
    lines = await conn.fetch("select description, amount_micros from invoice_lines where invoice_id = $1 order by line_number", invoice_id)
    return _invoice(row, list(lines))


async def load_invoice(conn: asyncpg.Connection, invoice_id: str, *, for_update: bool = False) -> Invoice:
    found = await find_invoice(conn, invoice_id, for_update=for_update)
    if found is None:
        raise UnknownInvoiceError(invoice_id)
    return found


async def list_invoices(
    conn: asyncpg.Connection, *, payer_ids: list[str] | None, statuses: list[str] | None, purposes: list[str] | None = None, limit: int = 200
) -> list[Invoice]:
    rows = await conn.fetch(
        """select * from invoices
           where ($1::text[] is null or payer_id = any($1)) and ($2::text[] is null or status = any($2))
             and ($3::text[] is null or purpose = any($3))
           order by number desc limit $4""",
        payer_ids, statuses, purposes, limit,
    )
    ids = [row["id"] for row in rows]
    lines = await conn.fetch(
        "select invoice_id, description, amount_micros from invoice_lines where invoice_id = any($1) order by invoice_id, line_number", ids
    )
    by_invoice: dict[str, list[asyncpg.Record]] = {}
    for line in lines:
        by_invoice.setdefault(line["invoice_id"], []).append(line)
    return [_invoice(row, by_invoice.get(row["id"], [])) for row in rows]


async def find_monthly_invoice(conn: asyncpg.Connection, ad_account_id: str, month: date) -> str | None:
    value = await conn.fetchval("select id from invoices where purpose = 'monthly_spend' and payer_id = $1 and period_start = $2", ad_account_id, month)
    return str(value) if value is not None else None


async def invoices_to_collect(conn: asyncpg.Connection, limit: int = 100) -> list[str]:
    rows = await conn.fetch(
        """select id from invoices where automatic_collection and status = 'open' and collection_requested_at is null
           order by issued_at limit $1 for update skip locked""",
        limit,
    )
    return [row["id"] for row in rows]


async def mark_collection_requested(conn: asyncpg.Connection, invoice_ids: list[str], now: datetime) -> None:
    await conn.execute("update invoices set collection_requested_at = $2 where id = any($1)", invoice_ids, now)


# Provider notifications ---------------------------------------------------------------------------------


async def record_notification(
    conn: asyncpg.Connection, *, provider_event_id: str, payment_id: str, invoice_id: str, outcome: str,
    amount_micros: int, currency: str, now: datetime,
) -> bool:
    """Record a notification by the provider's event id; False when it was recorded before."""
    inserted = await conn.fetchval(
        """insert into payment_notifications (provider_event_id, payment_id, invoice_id, outcome, amount_micros, currency, effect, received_at)
           values ($1, $2, $3, $4, $5, $6, 'pending', $7) on conflict do nothing returning true""",
        provider_event_id, payment_id, invoice_id, outcome, amount_micros, currency, now,
    )
    return bool(inserted)


async def set_notification_effect(conn: asyncpg.Connection, provider_event_id: str, effect: str) -> None:
    await conn.execute("update payment_notifications set effect = $2 where provider_event_id = $1", provider_event_id, effect)


async def notification_effect(conn: asyncpg.Connection, provider_event_id: str) -> str | None:
    value = await conn.fetchval("select effect from payment_notifications where provider_event_id = $1", provider_event_id)
    return str(value) if value is not None else None


async def payment_succeeded_before(conn: asyncpg.Connection, payment_id: str, except_event_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "select exists(select 1 from payment_notifications where payment_id = $1 and outcome = 'succeeded' and provider_event_id <> $2)",
            payment_id, except_event_id,
        )
    )


async def notifications_of(conn: asyncpg.Connection, invoice_id: str) -> list[dict[str, object]]:
    rows = await conn.fetch(
        "select provider_event_id, payment_id, outcome, effect, received_at from payment_notifications where invoice_id = $1 order by received_at, provider_event_id",
        invoice_id,
    )
    return [dict(row) for row in rows]


# Funding sources -------------------------------------------------------------------------------------------


async def insert_funding_source(conn: asyncpg.Connection, source: FundingSource) -> bool:
    inserted = await conn.fetchval(
        """insert into funding_sources (id, name, kind, currency, low_balance_threshold_micros, low_balance_contacts,
               accounts_payable_contact, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8)
           on conflict (id) do nothing returning true""",
        source.id, source.name, source.kind, source.currency, source.low_balance_threshold_micros,
        list(source.low_balance_contacts), source.accounts_payable_contact, source.created_at,
    )
    return bool(inserted)


def _funding_source(row: asyncpg.Record) -> FundingSource:
    return FundingSource(
        row["id"], row["name"], row["kind"], row["currency"], row["low_balance_threshold_micros"],
        tuple(row["low_balance_contacts"]), row["accounts_payable_contact"], row["created_at"],
    )


async def load_funding_source(conn: asyncpg.Connection, funding_source_id: str, *, for_update: bool = False) -> FundingSource:
    row = await conn.fetchrow("select * from funding_sources where id = $1" + (" for update" if for_update else ""), funding_source_id)
    if row is None:
        raise UnknownFundingSourceError(funding_source_id)
    return _funding_source(row)


async def prepaid_sources_created_before(conn: asyncpg.Connection, moment: datetime) -> list[FundingSource]:
    rows = await conn.fetch(
        "select * from funding_sources where kind = 'prepaid_invoice' and created_at < $1 order by id for update", moment
    )
    return [_funding_source(row) for row in rows]


async def first_funding_source_day(conn: asyncpg.Connection) -> date | None:
    value = await conn.fetchval("select min(created_at) from funding_sources")
    return value.date() if value is not None else None


async def insert_charge(
    conn: asyncpg.Connection, charge_id: str, funding_source_id: str, amount_micros: int, description: str, now: datetime
) -> bool:
    inserted = await conn.fetchval(
        """insert into funding_source_charges (charge_id, funding_source_id, amount_micros, description, charged_at)
           values ($1, $2, $3, $4, $5) on conflict do nothing returning true""",
        charge_id, funding_source_id, amount_micros, description, now,
    )
    return bool(inserted)


async def set_charge_card_invoice(conn: asyncpg.Connection, charge_id: str, invoice_id: str) -> None:
    await conn.execute("update funding_source_charges set card_invoice_id = $2 where charge_id = $1", charge_id, invoice_id)


async def charge(conn: asyncpg.Connection, charge_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("select * from funding_source_charges where charge_id = $1", charge_id)


async def open_day_close_invoices_micros(conn: asyncpg.Connection, funding_source_id: str) -> int:
    return int(
        await conn.fetchval(
            """select coalesce(sum(amount_micros), 0) from invoices
               where payer_id = $1 and purpose = 'funding_source_day_close' and status in ('draft', 'open', 'uncollectible')""",
            funding_source_id,
        )
    )


async def last_closed_day(conn: asyncpg.Connection) -> date | None:
    value: date | None = await conn.fetchval("select max(day) from funding_source_day_closes")
    return value


async def close_day(conn: asyncpg.Connection, day: date, now: datetime) -> bool:
    return bool(await conn.fetchval("insert into funding_source_day_closes (day, closed_at) values ($1, $2) on conflict do nothing returning true", day, now))


# Posted spend (I7) ---------------------------------------------------------------------------------------------


async def add_monthly_spend(conn: asyncpg.Connection, rows: list[tuple[str, date, str, str, int, int]]) -> None:
    await conn.executemany(
        """insert into monthly_spend (ad_account_id, month, campaign_id, currency, amount_micros, event_count)
           values ($1, $2, $3, $4, $5, $6)
           on conflict (ad_account_id, month, campaign_id) do update
           set amount_micros = monthly_spend.amount_micros + excluded.amount_micros,
               event_count = monthly_spend.event_count + excluded.event_count""",
        rows,
    )


async def last_closed_month(conn: asyncpg.Connection) -> date | None:
    value: date | None = await conn.fetchval("select max(month) from month_closes")
    return value


async def first_spend_month(conn: asyncpg.Connection) -> date | None:
    value: date | None = await conn.fetchval("select min(month) from monthly_spend")
    return value


async def close_month(conn: asyncpg.Connection, month: date, now: datetime) -> bool:
    return bool(await conn.fetchval("insert into month_closes (month, closed_at) values ($1, $2) on conflict do nothing returning true", month, now))


async def monthly_spend_of(conn: asyncpg.Connection, month: date) -> list[asyncpg.Record]:
    """The month's spend of ad accounts on monthly invoicing, per account and campaign."""
    return list(
        await conn.fetch(
            """select s.ad_account_id, s.campaign_id, s.currency, s.amount_micros, s.event_count
               from monthly_spend s join owners o on o.owner_id = s.ad_account_id and o.billing_option = 'monthly_invoicing'
               where s.month = $1 order by s.ad_account_id, s.campaign_id""",
            month,
        )
    )
