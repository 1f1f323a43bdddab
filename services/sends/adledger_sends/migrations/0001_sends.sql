-- The sends service (U1-U6): funding sources attached to accounts, teams, user balances and their
-- fundings, send campaigns, sends and the funding-source charges asked of the invoicing service.
create table funding_sources (
    id                  text        primary key,
    business_center_id  text        not null,
    kind                text        not null check (kind in ('prepaid_invoice', 'credit_card')),
    currency            text        not null check (currency ~ '^[A-Z]{3}$'),
    attached_at         timestamptz not null
);

create table default_funding_sources (
    business_center_id  text        primary key,
    funding_source_id   text        not null references funding_sources (id)
);

create table teams (
    id                  text        primary key,
    business_center_id  text        not null,
    name                text        not null,
    funding_source_id   text        not null references funding_sources (id),
    created_at          timestamptz not null
);

create table user_balances (
    business_center_id  text        not null,
    user_id             text        not null,
    team_id             text        references teams (id),
    currency            text        not null,
    budget_micros       bigint      not null check (budget_micros >= 0),
    mode                text        not null check (mode in ('refresh', 'rollover')),
    schedule            text        not null check (schedule in ('daily', 'weekly', 'monthly')),
    next_period_start   timestamptz not null,
    created_at          timestamptz not null,
    primary key (business_center_id, user_id)
);
create index user_balances_due on user_balances (next_period_start);

-- One row per user and period: a period is funded once (U6), whatever retries happen.
create table balance_fundings (
    business_center_id  text        not null,
    user_id             text        not null,
    period              text        not null,
    reason              text        not null,
    amount_micros       bigint      not null check (amount_micros >= 0),
    funding_source_id   text        not null,
    charge_id           text,
    funded_at           timestamptz not null,
    primary key (business_center_id, user_id, period)
);

create table send_campaigns (
    id                  text        primary key,
    business_center_id  text        not null,
    name                text        not null,
    charge_to           text        not null check (charge_to in ('user_balance', 'funding_source')),
    funding_source_id   text        references funding_sources (id),
    add_funds_allowed   boolean     not null,
    require_approval    boolean     not null,
    created_at          timestamptz not null,
    check ((charge_to = 'funding_source') = (funding_source_id is not null))
);

create table sends (
    id                  text        primary key,
    business_center_id  text        not null,
    campaign_id         text        not null references send_campaigns (id),
    sender_user_id      text        not null,
    via                 text        not null,
    item_kind           text        not null,
    description         text        not null,
    charged_to          text        not null,
    funding_source_id   text,
    add_funds           boolean     not null,
    price_micros        bigint      not null check (price_micros > 0),
    charged_micros      bigint      not null check (charged_micros >= 0),
    final_cost_micros   bigint,
    currency            text        not null,
    state               text        not null,
    version             integer     not null,
    created_at          timestamptz not null,
    updated_at          timestamptz not null
);

-- Charges asked of the invoicing service; `confirmed` once its ledger transfer is seen (what a
-- source can still cover counts the ones not yet applied).
create table charges (
    charge_id           text        primary key,
    funding_source_id   text        not null,
    direction           text        not null,
    amount_micros       bigint      not null check (amount_micros > 0),
    send_id             text,
    confirmed           boolean     not null default false,
    requested_at        timestamptz not null
);
create index charges_unconfirmed on charges (funding_source_id) where not confirmed;
