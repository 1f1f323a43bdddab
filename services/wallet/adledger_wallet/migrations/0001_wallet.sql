-- The wallet's own tables. Money itself is in the shared `ledger` schema (adledger_ledger);
-- these tables say who owns which balance, who may touch it, and what was snapshotted.

-- A user of the wallet's API. The bearer token is stored only as its SHA-256.
create table users (
    id                 text        primary key,
    name               text        not null,
    token_sha256       text        not null unique,
    platform_operator  boolean     not null default false,
    created_at         timestamptz not null
);

create table business_centers (
    id                           text        primary key,
    name                         text        not null,
    currency                     text        not null check (currency ~ '^[A-Z]{3}$'),
    aba_enabled_at               timestamptz,
    credit_limit_micros          bigint      not null default 0 check (credit_limit_micros >= 0),
    prepayment_threshold_micros  bigint      check (prepayment_threshold_micros >= 0),
    last_payment_micros          bigint      check (last_payment_micros >= 0),
    created_at                   timestamptz not null
);

-- Roles per Business Center (rule W9); a user may hold several.
create table memberships (
    business_center_id  text not null references business_centers (id),
    user_id             text not null references users (id),
    role                text not null check (role in ('admin', 'finance_manager', 'operator', 'analyst')),
    primary key (business_center_id, user_id, role)
);
create index memberships_by_user on memberships (user_id);

create table ad_accounts (
    id                  text        primary key,
    business_center_id  text        not null references business_centers (id),
    name                text        not null,
    type                text        not null check (type in ('auction', 'reservation')),
    billing_option      text        not null check (billing_option in ('monthly_invoicing', 'prepaid')),
    currency            text        not null check (currency ~ '^[A-Z]{3}$'),
    budget_kind         text        check (budget_kind in ('monthly', 'daily', 'custom', 'unlimited')),
    budget_micros       bigint      check (budget_micros >= 0),
    budget_starts_on    date,
    budget_ends_on      date,
    created_at          timestamptz not null
);
create index ad_accounts_by_business_center on ad_accounts (business_center_id);

-- Real and virtual balances at each UTC day close (rule W13), never rewritten.
create table balance_snapshots (
    owner_id        text        not null,
    owner_kind      text        not null,
    day             date        not null,
    currency        text        not null,
    real_micros     bigint      not null,
    virtual_micros  bigint      not null,
    taken_at        timestamptz not null,
    primary key (owner_id, day)
);

-- The last UTC day whose close has been snapshotted, so a restart catches up every missed day.
create table day_closes (
    day        date        primary key,
    closed_at  timestamptz not null
);

-- Whether each owner is below its prepayment threshold, so W12 fires once per crossing.
create table prepayment_threshold_states (
    owner_id      text        primary key,
    below         boolean     not null,
    changed_at    timestamptz not null
);
