-- The campaign service's tables. Money itself is never here: a prepaid booking is a set of holds
-- in the wallet's ledger (C1); these tables say what is booked, delivered and due when.

-- A user of the API. The bearer token is stored only as its SHA-256. The platform operator
-- creates users and gives them roles per Business Center (W9); the roles live here because
-- services share no schemas (the wallet keeps its own).
create table users (
    id                 text        primary key,
    name               text        not null,
    token_sha256       text        not null unique,
    platform_operator  boolean     not null default false,
    created_at         timestamptz not null
);

-- What the wallet opened (wallet.events.v1): currencies, and which cash an account draws on.
create table business_centers (
    id        text        primary key,
    currency  text        not null check (currency ~ '^[A-Z]{3}$'),
    opened_at timestamptz not null
);

create table ad_accounts (
    id                        text        primary key,
    business_center_id        text        not null,
    currency                  text        not null check (currency ~ '^[A-Z]{3}$'),
    draws_on_business_center  boolean     not null,
    opened_at                 timestamptz not null
);
create index ad_accounts_by_business_center on ad_accounts (business_center_id);

-- Roles per Business Center (W9); a user may hold several.
create table memberships (
    business_center_id  text not null,
    user_id             text not null references users (id),
    role                text not null check (role in ('admin', 'finance_manager', 'operator', 'analyst')),
    primary key (business_center_id, user_id, role)
);

-- The current cap of each ad account (W10) and its version, published as a snapshot.
create table budget_caps (
    ad_account_id      text        primary key,
    kind               text        not null check (kind in ('monthly', 'daily', 'custom', 'unlimited')),
    amount_micros      bigint      check (amount_micros >= 0),
    starts_on          date,
    ends_on            date,
    source             text        not null check (source in ('user', 'budget_sync')),
    changed_by_user_id text,
    version            integer     not null,
    changed_at         timestamptz not null
);

-- Every counted change by a person (W10: at most 10 per ad account per UTC day).
create table cap_changes (
    ad_account_id  text        not null,
    utc_day        date        not null,
    changed_at     timestamptz not null,
    user_id        text        not null
);
create index cap_changes_by_day on cap_changes (ad_account_id, utc_day);

create table campaigns (
    id                    text        primary key,
    ad_account_id         text        not null references ad_accounts (id),
    business_center_id    text,
    name                  text        not null,
    funding_mode          text        not null check (funding_mode in ('drawdown', 'prepaid')),
    budget_kind           text        not null check (budget_kind in ('lifetime', 'daily')),
    budget_micros         bigint      not null check (budget_micros > 0),
    currency              text        not null check (currency ~ '^[A-Z]{3}$'),
    status                text        not null check (status in ('draft', 'awaiting_payment', 'active', 'paused', 'ended')),
    pause_cause           text        check (pause_cause in ('user', 'budget', 'funds')),
    starts_at             timestamptz,
    ends_at               timestamptz,
    version               integer     not null,
    payer_owner_id        text,
    activation_requested  boolean     not null default false,
    -- Spend posted for it (spend.posted.v1): delivered from the booking, and all of it.
    delivered_micros      bigint      not null default 0,
    spent_micros          bigint      not null default 0,
    open_invoice_id       text,
    invoice_count         integer     not null default 0,
    settled               boolean     not null default false,
    -- The last refusal of a wallet command that changed nothing (another environment's wallet on the
    -- shared topic, or a resolution refused), for an operator.
    hold_error            text,
    created_by_user_id    text        not null,
    created_at            timestamptz not null,
    updated_at            timestamptz not null
);
create index campaigns_by_ad_account on campaigns (ad_account_id);
create unique index campaigns_by_open_invoice on campaigns (open_invoice_id) where open_invoice_id is not null;

-- The wallet holds of a prepaid booking and where each is in its life (see domain/campaigns.py).
create table campaign_holds (
    hold_id        text    primary key,
    campaign_id    text    not null references campaigns (id),
    seq            integer not null,
    amount_micros  bigint  not null check (amount_micros >= 0),
    state          text    not null,
    posted_micros  bigint,
    unique (campaign_id, seq)
);

-- Every deadline (C3, C4, the scheduled end): the job takes due rows with FOR UPDATE SKIP
-- LOCKED, acts and sets done_at in one transaction with its outbox rows, so it acts once,
-- even after downtime (T1, like O6).
create table deadlines (
    campaign_id  text        not null references campaigns (id),
    kind         text        not null check (kind in ('end', 'settle')),
    due_at       timestamptz not null,
    done_at      timestamptz,
    outcome      text,
    primary key (campaign_id, kind)
);
create index deadlines_due on deadlines (due_at) where done_at is null;
