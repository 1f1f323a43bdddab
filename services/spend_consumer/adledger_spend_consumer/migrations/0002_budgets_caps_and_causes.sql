-- Rule S3: campaign budgets and ad-account budget caps, kept from the campaign service's
-- snapshots on `campaign.events.v1` (the newest version wins), with what the spend consumer
-- counted against them. They replace the empty seam tables of 0001.
drop table campaign_budgets;
drop table account_budget_caps;

-- A campaign as its last CampaignChanged described it, plus the spend counted against it.
-- `day_spent_micros` is the spend posted on `spend_day` (a UTC day of the clock); a reader on
-- another day counts it as 0. `from_booking_micros` is the part of a prepaid campaign's spend
-- delivered against its booking (C1: no money moved for it here, the wallet holds it).
create table campaigns (
    ad_account_id        text        not null,
    campaign_id          text        not null,
    business_center_id   text,
    funding_mode         text        not null check (funding_mode in ('drawdown', 'prepaid')),
    budget_kind          text        not null check (budget_kind in ('lifetime', 'daily')),
    budget_micros        bigint      not null check (budget_micros > 0),
    booked_micros        bigint      not null check (booked_micros >= 0),
    currency             text        not null check (currency ~ '^[A-Z]{3}$'),
    status               text        not null,
    pause_cause          text,
    version              integer     not null check (version >= 1),
    changed_at           timestamptz not null,
    spent_micros         bigint      not null default 0,
    spend_day            date,
    day_spent_micros     bigint      not null default 0,
    from_booking_micros  bigint      not null default 0,
    primary key (ad_account_id, campaign_id)
);

-- An ad account's budget cap as its last AdAccountBudgetCapChanged described it (W10).
create table account_caps (
    ad_account_id   text        primary key,
    kind            text        not null check (kind in ('monthly', 'daily', 'custom', 'unlimited')),
    amount_micros   bigint      check (amount_micros >= 0),
    starts_on       date,
    ends_on         date,
    currency        text        not null check (currency ~ '^[A-Z]{3}$'),
    version         integer     not null check (version >= 1),
    changed_at      timestamptz not null
);

-- Spend posted per ad account and UTC day (net of S6 adjustments), kept for every account, so
-- a cap set in the middle of its period counts the period's spend from its first day.
create table account_spend_days (
    ad_account_id  text   not null,
    day            date   not null,
    spent_micros   bigint not null,
    primary key (ad_account_id, day)
);

-- A key (an ad account, or ad_account_id/campaign_id) may be paused for several causes at once
-- (no funds and its cap reached, say); it serves again only when none is left.
alter table delivery_states add column causes text[] not null default '{}';
update delivery_states set causes = array[reason] where not serving;
create index delivery_states_budget_paused on delivery_states (key)
    where causes && array['campaign_budget_reached', 'account_budget_reached']::text[];

-- One open pause per key and cause (it was one per ad account while funds were the only cause).
drop index pauses_open_per_account;
create unique index pauses_open_per_cause on pauses (ad_account_id, coalesce(campaign_id, ''), reason)
    where resumed_at is null;

-- Rule S6 for prepaid campaigns: the part of a charge delivered against the booking.
alter table charges add column booking_micros bigint not null default 0 check (booking_micros >= 0);
