"""The invoicing store in PostgreSQL (schema `invoicing`): subscriptions, owners and balances copied
from the wallet's topics, invoices with lines, provider notifications, funding sources, posted
spend; and the unit of work the core runs in (the library's, whose outbox holds the events).

Who holds which role is read from the identity replica the library keeps in the same schema
(`adledger_auth.replica`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime

import asyncpg
from adledger_auth import replica
from adledger_libs.events import Message
from adledger_libs.outbox import OutboxRelay, UnitOfWork, unit_of_work

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
from adledger_invoicing.domain.invoices import Invoice, InvoiceStatus, Line, Purpose
from adledger_invoicing.ports.unit_of_work import InvoicingWork


class PostgresInvoicingStore:
    """Implements `ports.store.InvoicingStore` on one transaction's connection."""

    def __init__(self, conn: asyncpg.Connection, *, lock_namespace: str) -> None:
        self._conn = conn
        self._lock_namespace = lock_namespace

    # Who may be billed (I4) and what the wallet tells ------------------------------------------

    async def set_subscription(
        self, owner_id: str, status: SubscriptionStatus, billing_email: str | None, changed_by: str, now: datetime
    ) -> Subscription:
        row = await self._conn.fetchrow(
            """insert into subscriptions (owner_id, status, billing_email, changed_at, changed_by)
               values ($1, $2, $3, $4, $5)
               on conflict (owner_id) do update set status = excluded.status,
                   billing_email = coalesce(excluded.billing_email, subscriptions.billing_email),
                   changed_at = excluded.changed_at, changed_by = excluded.changed_by
               returning owner_id, status, billing_email, changed_at""",
            owner_id,
            status,
            billing_email,
            now,
            changed_by,
        )
        assert row is not None
        return Subscription(row["owner_id"], row["status"], row["billing_email"], row["changed_at"])

    async def subscription(self, owner_id: str) -> Subscription | None:
        row = await self._conn.fetchrow(
            "select owner_id, status, billing_email, changed_at from subscriptions where owner_id = $1", owner_id
        )
        return Subscription(row["owner_id"], row["status"], row["billing_email"], row["changed_at"]) if row else None

    async def add_owner(self, owner: Owner, opened_at: datetime) -> None:
        await self._conn.execute(
            """insert into owners (owner_id, owner_kind, business_center_id, currency, billing_option, opened_at)
               values ($1, $2, $3, $4, $5, $6) on conflict (owner_id) do nothing""",
            owner.owner_id,
            owner.owner_kind,
            owner.business_center_id,
            owner.currency,
            owner.billing_option,
            opened_at,
        )

    async def owner(self, owner_id: str) -> Owner | None:
        row = await self._conn.fetchrow("select * from owners where owner_id = $1", owner_id)
        if row is None:
            return None
        return Owner(
            row["owner_id"], row["owner_kind"], row["business_center_id"], row["currency"], row["billing_option"]
        )

    async def owners_in(self, business_center_ids: Sequence[str]) -> list[str]:
        rows = await self._conn.fetch(
            "select owner_id from owners where business_center_id = any($1::text[]) order by owner_id",
            list(business_center_ids),
        )
        return [str(row["owner_id"]) for row in rows]

    async def keep_newest_balances(self, balances: Sequence[Balance]) -> None:
        # A compacted topic may replay older records: only a newer version replaces a balance.
        await self._conn.executemany(
            """insert into balances (owner_id, owner_kind, currency, real_micros, virtual_micros, available_micros,
                                     version, updated_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8)
               on conflict (owner_id) do update set owner_kind = excluded.owner_kind, currency = excluded.currency,
                   real_micros = excluded.real_micros, virtual_micros = excluded.virtual_micros,
                   available_micros = excluded.available_micros, version = excluded.version,
                   updated_at = excluded.updated_at
               where balances.version < excluded.version""",
            [
                (
                    b.owner_id,
                    b.owner_kind,
                    b.currency,
                    b.real_micros,
                    b.virtual_micros,
                    b.available_micros,
                    b.version,
                    b.updated_at,
                )
                for b in balances
            ],
        )

    async def balance(self, owner_id: str) -> Balance | None:
        row = await self._conn.fetchrow("select * from balances where owner_id = $1", owner_id)
        if row is None:
            return None
        return Balance(
            row["owner_id"],
            row["owner_kind"],
            row["currency"],
            row["real_micros"],
            row["virtual_micros"],
            row["available_micros"],
            row["version"],
            row["updated_at"],
        )

    async def finance_roles_set_up(self, business_center_id: str) -> bool:
        return await replica.finance_roles_set_up(self._conn, business_center_id)

    # Invoices --------------------------------------------------------------------------------

    async def next_invoice_number(self) -> int:
        return int(await self._conn.fetchval("select nextval('invoice_numbers')"))

    async def add_invoice(self, invoice: Invoice) -> bool:
        inserted = await self._conn.fetchval(
            """insert into invoices (id, number, payer_id, payer_kind, purpose, status, currency, amount_micros,
                   reference_id,
                   period_start, automatic_collection, recipient_user_id, recipient_address, issued_at, due_on, paid_at,
                   payment_id, version, updated_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $14)
               on conflict do nothing returning true""",
            invoice.id,
            invoice.number,
            invoice.payer_id,
            invoice.payer_kind,
            invoice.purpose.value,
            invoice.status.value,
            invoice.currency,
            invoice.amount_micros,
            invoice.reference_id,
            invoice.period_start,
            invoice.automatic_collection,
            invoice.recipient_user_id,
            invoice.recipient_address,
            invoice.issued_at,
            invoice.due_on,
            invoice.paid_at,
            invoice.payment_id,
            invoice.version,
        )
        if not inserted:
            return False
        await self._conn.executemany(
            "insert into invoice_lines (invoice_id, line_number, description, amount_micros) values ($1, $2, $3, $4)",
            [
                (invoice.id, number, line.description, line.amount_micros)
                for number, line in enumerate(invoice.lines, start=1)
            ],
        )
        return True

    async def save_invoice(self, invoice: Invoice, now: datetime) -> None:
        await self._conn.execute(
            "update invoices set status = $2, paid_at = $3, payment_id = $4, version = $5, updated_at = $6"
            " where id = $1",
            invoice.id,
            invoice.status.value,
            invoice.paid_at,
            invoice.payment_id,
            invoice.version,
            now,
        )

    async def invoice(self, invoice_id: str, *, for_update: bool = False) -> Invoice | None:
        row = await self._conn.fetchrow(
            "select * from invoices where id = $1" + (" for update" if for_update else ""), invoice_id
        )
        if row is None:
            return None
        return (await self._with_lines([row]))[0]

    async def invoices(
        self,
        *,
        payer_ids: Sequence[str] | None,
        statuses: Sequence[str] | None = None,
        purposes: Sequence[str] | None = None,
        limit: int = 200,
    ) -> list[Invoice]:
        rows = await self._conn.fetch(
            """select * from invoices
               where ($1::text[] is null or payer_id = any($1)) and ($2::text[] is null or status = any($2))
                 and ($3::text[] is null or purpose = any($3))
               order by number desc limit $4""",
            _listed(payer_ids),
            _listed(statuses),
            _listed(purposes),
            limit,
        )
        return await self._with_lines(list(rows))

    async def _with_lines(self, rows: list[asyncpg.Record]) -> list[Invoice]:
        lines = await self._conn.fetch(
            """select invoice_id, description, amount_micros from invoice_lines where invoice_id = any($1::text[])
               order by invoice_id, line_number""",
            [row["id"] for row in rows],
        )
        by_invoice: dict[str, list[Line]] = {}
        for line in lines:
            by_invoice.setdefault(line["invoice_id"], []).append(Line(line["description"], line["amount_micros"]))
        return [_invoice(row, by_invoice.get(row["id"], [])) for row in rows]

    async def monthly_invoice_id(self, ad_account_id: str, month: date) -> str | None:
        value = await self._conn.fetchval(
            "select id from invoices where purpose = 'monthly_spend' and payer_id = $1 and period_start = $2",
            ad_account_id,
            month,
        )
        return str(value) if value is not None else None

    async def open_day_close_invoices_micros(self, funding_source_id: str) -> int:
        return int(
            await self._conn.fetchval(
                """select coalesce(sum(amount_micros), 0) from invoices
                   where payer_id = $1 and purpose = 'funding_source_day_close'
                     and status in ('draft', 'open', 'uncollectible')""",
                funding_source_id,
            )
        )

    async def claim_collections(self, now: datetime, *, retry_before: datetime, limit: int = 100) -> list[Invoice]:
        # SKIP LOCKED: an invoice another transaction is claiming is left to it. A row claimed and
        # committed meanwhile is re-checked under its lock and no longer matches (its mark is new).
        rows = await self._conn.fetch(
            """update invoices set collection_requested_at = $1
               where id in (select id from invoices
                            where automatic_collection and status = 'open'
                              and (collection_requested_at is null or collection_requested_at < $2)
                            order by issued_at limit $3 for update skip locked)
               returning *""",
            now,
            retry_before,
            limit,
        )
        return sorted(await self._with_lines(list(rows)), key=lambda invoice: (invoice.issued_at, invoice.id))

    async def release_collection(self, invoice_id: str) -> None:
        await self._conn.execute(
            "update invoices set collection_requested_at = null where id = $1 and status = 'open'", invoice_id
        )

    # Provider notifications (I5) ---------------------------------------------------------------

    async def add_notification(self, notification: PaymentNotification, now: datetime) -> bool:
        inserted = await self._conn.fetchval(
            """insert into payment_notifications (provider_event_id, payment_id, invoice_id, outcome, amount_micros,
                   currency,
                   effect, received_at)
               values ($1, $2, $3, $4, $5, $6, 'pending', $7) on conflict do nothing returning true""",
            notification.provider_event_id,
            notification.payment_id,
            notification.invoice_id,
            notification.outcome.value,
            notification.amount_micros,
            notification.currency,
            now,
        )
        return bool(inserted)

    async def set_notification_effect(self, provider_event_id: str, effect: str) -> None:
        await self._conn.execute(
            "update payment_notifications set effect = $2 where provider_event_id = $1", provider_event_id, effect
        )

    async def payment_succeeded_before(self, payment_id: str, except_event_id: str) -> bool:
        return bool(
            await self._conn.fetchval(
                """select exists(select 1 from payment_notifications
                                 where payment_id = $1 and outcome = 'succeeded' and provider_event_id <> $2)""",
                payment_id,
                except_event_id,
            )
        )

    async def notifications_of(self, invoice_id: str) -> list[RecordedNotification]:
        rows = await self._conn.fetch(
            """select provider_event_id, payment_id, outcome, effect, received_at from payment_notifications
               where invoice_id = $1 order by received_at, provider_event_id""",
            invoice_id,
        )
        return [RecordedNotification(**dict(row)) for row in rows]

    # Funding sources (I6) ----------------------------------------------------------------------

    async def add_funding_source(self, source: FundingSource) -> bool:
        inserted = await self._conn.fetchval(
            """insert into funding_sources (id, name, kind, currency, low_balance_threshold_micros,
                   low_balance_contacts,
                   accounts_payable_contact, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8)
               on conflict (id) do nothing returning true""",
            source.id,
            source.name,
            source.kind,
            source.currency,
            source.low_balance_threshold_micros,
            list(source.low_balance_contacts),
            source.accounts_payable_contact,
            source.created_at,
        )
        return bool(inserted)

    async def funding_source(self, funding_source_id: str, *, for_update: bool = False) -> FundingSource | None:
        row = await self._conn.fetchrow(
            "select * from funding_sources where id = $1" + (" for update" if for_update else ""), funding_source_id
        )
        return _funding_source(row) if row is not None else None

    async def prepaid_sources_created_before(self, moment: datetime) -> list[FundingSource]:
        rows = await self._conn.fetch(
            "select * from funding_sources where kind = 'prepaid_invoice' and created_at < $1 order by id for update",
            moment,
        )
        return [_funding_source(row) for row in rows]

    async def first_funding_source_day(self) -> date | None:
        value = await self._conn.fetchval("select min(created_at) from funding_sources")
        return value.date() if value is not None else None

    async def add_charge(
        self, charge_id: str, funding_source_id: str, amount_micros: int, description: str, now: datetime
    ) -> bool:
        inserted = await self._conn.fetchval(
            """insert into funding_source_charges (charge_id, funding_source_id, amount_micros, description, charged_at)
               values ($1, $2, $3, $4, $5) on conflict do nothing returning true""",
            charge_id,
            funding_source_id,
            amount_micros,
            description,
            now,
        )
        return bool(inserted)

    async def set_charge_card_invoice(self, charge_id: str, invoice_id: str) -> None:
        await self._conn.execute(
            "update funding_source_charges set card_invoice_id = $2 where charge_id = $1", charge_id, invoice_id
        )

    # Closes (I6, I7, T1) and posted spend ------------------------------------------------------

    async def lock_day_closes(self) -> None:
        await self._conn.execute(
            "select pg_advisory_xact_lock(hashtext($1))", f"invoicing.day_close.{self._lock_namespace}"
        )

    async def last_closed_day(self) -> date | None:
        value: date | None = await self._conn.fetchval("select max(day) from funding_source_day_closes")
        return value

    async def close_day(self, day: date, now: datetime) -> None:
        await self._conn.execute(
            "insert into funding_source_day_closes (day, closed_at) values ($1, $2) on conflict do nothing", day, now
        )

    async def lock_month_closes(self) -> None:
        await self._conn.execute(
            "select pg_advisory_xact_lock(hashtext($1))", f"invoicing.month_close.{self._lock_namespace}"
        )

    async def last_closed_month(self) -> date | None:
        value: date | None = await self._conn.fetchval("select max(month) from month_closes")
        return value

    async def first_spend_month(self) -> date | None:
        value: date | None = await self._conn.fetchval("select min(month) from monthly_spend")
        return value

    async def close_month(self, month: date, now: datetime) -> None:
        await self._conn.execute(
            "insert into month_closes (month, closed_at) values ($1, $2) on conflict do nothing", month, now
        )

    async def add_monthly_spend(self, spends: Sequence[MonthlySpend]) -> None:
        await self._conn.executemany(
            """insert into monthly_spend (ad_account_id, month, campaign_id, currency, amount_micros, event_count)
               values ($1, $2, $3, $4, $5, $6)
               on conflict (ad_account_id, month, campaign_id) do update
               set amount_micros = monthly_spend.amount_micros + excluded.amount_micros,
                   event_count = monthly_spend.event_count + excluded.event_count""",
            [(s.ad_account_id, s.month, s.campaign_id, s.currency, s.amount_micros, s.event_count) for s in spends],
        )

    async def monthly_spend_of(self, month: date) -> list[MonthlySpend]:
        rows = await self._conn.fetch(
            """select s.* from monthly_spend s
               join owners o on o.owner_id = s.ad_account_id and o.billing_option = 'monthly_invoicing'
               where s.month = $1 order by s.ad_account_id, s.campaign_id""",
            month,
        )
        return [
            MonthlySpend(
                row["ad_account_id"],
                row["month"],
                row["campaign_id"],
                row["currency"],
                row["amount_micros"],
                row["event_count"],
            )
            for row in rows
        ]


def _listed(values: Sequence[str] | None) -> list[str] | None:
    return list(values) if values is not None else None


def _invoice(row: asyncpg.Record, lines: list[Line]) -> Invoice:
    return Invoice(
        id=row["id"],
        number=row["number"],
        payer_id=row["payer_id"],
        payer_kind=row["payer_kind"],
        purpose=Purpose(row["purpose"]),
        status=InvoiceStatus(row["status"]),
        currency=row["currency"],
        lines=tuple(lines),
        issued_at=row["issued_at"],
        due_on=row["due_on"],
        reference_id=row["reference_id"],
        period_start=row["period_start"],
        automatic_collection=row["automatic_collection"],
        recipient_user_id=row["recipient_user_id"],
        recipient_address=row["recipient_address"],
        paid_at=row["paid_at"],
        payment_id=row["payment_id"],
        version=row["version"],
    )


def _funding_source(row: asyncpg.Record) -> FundingSource:
    return FundingSource(
        row["id"],
        row["name"],
        row["kind"],
        row["currency"],
        row["low_balance_threshold_micros"],
        tuple(row["low_balance_contacts"]),
        row["accounts_payable_contact"],
        row["created_at"],
    )


class PostgresWork:
    """Implements `ports.unit_of_work.InvoicingWork` over the library's unit of work: the store
    and the ledger act on its connection, events go to its outbox."""

    def __init__(self, uow: UnitOfWork, *, lock_namespace: str) -> None:
        self._uow = uow
        self._store = PostgresInvoicingStore(uow.conn, lock_namespace=lock_namespace)

    @property
    def store(self) -> PostgresInvoicingStore:
        return self._store

    @property
    def ledger_session(self) -> asyncpg.Connection:
        return self._uow.conn

    def publish(self, message: Message, *, topic: str, key: str | None) -> object:
        return self._uow.publish(message, topic=topic, key=key)


def work_factory(lock_namespace: str) -> Callable[[UnitOfWork], InvoicingWork]:
    """How the adapters (HTTP, Kafka) turn the library's unit of work into the core's."""

    def work_of(uow: UnitOfWork) -> InvoicingWork:
        return PostgresWork(uow, lock_namespace=lock_namespace)

    return work_of


class PostgresTransactions:
    """Implements `ports.unit_of_work.Transactions`: one pooled connection and transaction each."""

    def __init__(
        self, pool: Callable[[], asyncpg.Pool], relay: Callable[[], OutboxRelay | None], *, lock_namespace: str
    ) -> None:
        self._pool = pool
        self._relay = relay
        self._lock_namespace = lock_namespace

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[InvoicingWork]:
        async with unit_of_work(self._pool(), self._relay()) as uow:
            yield PostgresWork(uow, lock_namespace=self._lock_namespace)


__all__: list[str] = ["PostgresInvoicingStore", "PostgresTransactions", "PostgresWork", "work_factory"]
