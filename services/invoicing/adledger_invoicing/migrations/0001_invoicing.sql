-- The invoicing service's tables (schema `invoicing`). Money itself is never here: balances
-- are the ledger's; invoices say what is asked for and whether it was paid.

-- A user of the API; the bearer token is stored only as its SHA-256. An admin (the platform
-- operator) sets subscriptions, registers funding sources and voids invoices; a billing user
-- tops up and reads the invoices of the owners listed in `billing_owners`.
create table users (
    id            text        primary key,
    name          text        not null,
    token_sha256  text        not null unique,
    admin         boolean     not null default false,
    created_at    timestamptz not null
);

create table billing_owners (
    user_id   text not null references users (id),
    owner_id  text not null,
    primary key (user_id, owner_id)
);

-- I4: only an owner with an active subscription can hold a credit balance.
create table subscriptions (
    owner_id       text        primary key,
    status         text        not null check (status in ('active', 'inactive')),
    billing_email  text,
    changed_at     timestamptz not null,
    changed_by     text        not null
);

-- Business Centers and ad accounts from wallet.events.v1: currency (M2) and billing option (I7).
create table owners (
    owner_id            text        primary key,
    owner_kind          text        not null check (owner_kind in ('business_center', 'ad_account')),
    business_center_id  text        not null,
    currency            text        not null check (currency ~ '^[A-Z]{3}$'),
    billing_option      text,
    opened_at           timestamptz not null
);

-- The latest balance per owner from the compacted balances.v1 (newest version wins), for I2.
create table balances (
    owner_id         text        primary key,
    owner_kind       text        not null,
    currency         text        not null,
    real_micros      bigint      not null,
    virtual_micros   bigint      not null,
    available_micros bigint      not null,
    version          bigint      not null,
    updated_at       timestamptz not null
);

create sequence invoice_numbers start 1;

create table invoices (
    id                    text        primary key,
    number                bigint      not null unique,
    payer_id              text        not null,
    payer_kind            text        not null check (payer_kind in ('owner', 'funding_source')),
    purpose               text        not null,
    status                text        not null check (status in ('draft', 'open', 'paid', 'void', 'uncollectible')),
    currency              text        not null check (currency ~ '^[A-Z]{3}$'),
    amount_micros         bigint      not null check (amount_micros > 0),
    reference_id          text,
    period_start          date,
    automatic_collection  boolean     not null default false,
    collection_requested_at timestamptz,
    recipient_user_id     text,
    recipient_address     text,
    issued_at             timestamptz not null,
    due_on                date        not null,
    paid_at               timestamptz,
    payment_id            text,
    version               integer     not null,
    updated_at            timestamptz not null
);
create index invoices_by_payer on invoices (payer_id, issued_at);
-- W12: at most one prepayment invoice open at a time per owner.
create unique index one_open_prepayment on invoices (payer_id) where purpose = 'prepayment' and status in ('draft', 'open');
-- I7: one invoice per ad account per calendar month; I6: one day-close invoice per source per day.
create unique index one_monthly_invoice on invoices (payer_id, period_start) where purpose = 'monthly_spend';
create unique index one_day_close_invoice on invoices (payer_id, period_start) where purpose = 'funding_source_day_close';
create index invoices_to_collect on invoices (issued_at) where automatic_collection and status = 'open' and collection_requested_at is null;

create table invoice_lines (
    invoice_id     text   not null references invoices (id),
    line_number    int    not null,
    description    text   not null,
    amount_micros  bigint not null,
    primary key (invoice_id, line_number)
);

-- I5: every provider notification, deduplicated by the provider's event id, with what it did.
create table payment_notifications (
    provider_event_id  text        primary key,
    payment_id         text        not null,
    invoice_id         text        not null,
    outcome            text        not null check (outcome in ('succeeded', 'failed')),
    amount_micros      bigint      not null,
    currency           text        not null,
    effect             text        not null,
    received_at        timestamptz not null
);
create index payment_notifications_by_payment on payment_notifications (payment_id);

-- I6: funding sources. Their balance is a ledger account (`fs/<id>/balance`), never a copy here.
create table funding_sources (
    id                            text        primary key,
    name                          text        not null,
    kind                          text        not null check (kind in ('prepaid_invoice', 'credit_card')),
    currency                      text        not null check (currency ~ '^[A-Z]{3}$'),
    low_balance_threshold_micros  bigint      not null default 0,
    low_balance_contacts          text[]      not null default '{}',
    accounts_payable_contact      text,
    created_at                    timestamptz not null
);

create table funding_source_charges (
    charge_id          text        primary key,
    funding_source_id  text        not null references funding_sources (id),
    amount_micros      bigint      not null check (amount_micros > 0),
    description        text        not null,
    card_invoice_id    text,
    charged_at         timestamptz not null
);

-- I6, T1: the UTC days closed (one row per day, written with the day's invoices).
create table funding_source_day_closes (
    day        date        primary key,
    closed_at  timestamptz not null
);

-- I7: posted spend summed per ad account, calendar month (of posted_at) and campaign.
create table monthly_spend (
    ad_account_id  text   not null,
    month          date   not null,
    campaign_id    text   not null,
    currency       text   not null,
    amount_micros  bigint not null,
    event_count    bigint not null,
    primary key (ad_account_id, month, campaign_id)
);

create table month_closes (
    month      date        primary key,
    closed_at  timestamptz not null
);
