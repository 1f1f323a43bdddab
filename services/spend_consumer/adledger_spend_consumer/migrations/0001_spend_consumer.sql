-- The spend consumer's own tables. Money itself is in the shared `ledger` schema
-- (adledger_ledger); these tables are what the consumer needs to decide how to take it and
-- when to pause delivery.

-- The ad accounts, kept from the wallet's events on `wallet.events.v1` (AdAccountOpened,
-- AutomaticBalanceAllocationEnabled). `draws_on_business_center` is true under ABA (rule W7).
create table ad_accounts (
    ad_account_id             text    primary key,
    business_center_id        text    not null,
    currency                  text    not null check (currency ~ '^[A-Z]{3}$'),
    draws_on_business_center  boolean not null
);
create index ad_accounts_aba_by_business_center on ad_accounts (business_center_id) where draws_on_business_center;

-- Business Centers seen on `wallet.events.v1`, with their currency.
create table business_centers (
    business_center_id  text primary key,
    currency            text not null check (currency ~ '^[A-Z]{3}$')
);

-- Rule S6: what each charge has taken so far, per bucket, so a final cost takes only the
-- difference and a lower final cost gives back from the buckets it was taken from.
create table charges (
    charge_id                    text   primary key,
    ad_account_id                text   not null,
    amount_micros                bigint not null check (amount_micros >= 0),
    account_vouchers_micros      bigint not null default 0,
    account_cash_micros          bigint not null default 0,
    center_vouchers_micros       bigint not null default 0,
    center_cash_micros           bigint not null default 0,
    center_credit_line_micros    bigint not null default 0,
    overspend_micros             bigint not null default 0
);

-- The latest serving state per ad account (key = ad_account_id) or campaign
-- (key = ad_account_id/campaign_id), as published on compacted `delivery.state.v1` (rule S4).
create table delivery_states (
    key            text        primary key,
    ad_account_id  text        not null,
    campaign_id    text,
    serving        boolean     not null,
    reason         text        not null,
    updated_at     timestamptz not null
);
create index delivery_states_paused on delivery_states (ad_account_id) where not serving;

-- Every pause for insufficient funds, with the overspend accrued while it lasted (rule S2).
create table pauses (
    id                bigint      generated always as identity primary key,
    ad_account_id     text        not null,
    campaign_id       text,
    reason            text        not null,
    paused_at         timestamptz not null,
    cause_event_id    text,
    overspend_micros  bigint      not null default 0 check (overspend_micros >= 0),
    resumed_at        timestamptz
);
create unique index pauses_open_per_account on pauses (ad_account_id) where resumed_at is null;

-- The seam for rule S3's budgets: campaign budgets and ad-account budget caps will be kept here
-- from the campaign service's events once that service publishes them. Both tables stay empty
-- until then, and nothing reads them yet.
create table campaign_budgets (
    campaign_id     text        primary key,
    ad_account_id   text        not null,
    budget_micros   bigint      check (budget_micros >= 0),
    spent_micros    bigint      not null default 0,
    updated_at      timestamptz not null
);
create table account_budget_caps (
    ad_account_id   text        primary key,
    cap_kind        text        not null check (cap_kind in ('monthly', 'daily', 'custom', 'unlimited')),
    cap_micros      bigint      check (cap_micros >= 0),
    period_starts_at timestamptz,
    period_ends_at   timestamptz,
    spent_micros    bigint      not null default 0,
    updated_at      timestamptz not null
);
