-- Issue 13: the platform has one identity. Users, their tokens and Business Center roles are the
-- identity service's (the wallet verifies callers against its replica, adledger_libs/0003), so the
-- wallet's own copies go. The payouts queue (W14), a business table of the wallet that sat in the
-- shared ledger's schema, moves here (its rows are moved at start, adapters/postgres.py).
drop table memberships;
drop table users;

-- `queued` is the arrival order: payouts asked for in the same instant still go out in the order
-- they were asked for (oldest first, W14).
create table payouts (
    queued            bigserial   not null unique,
    id                text        primary key,
    payer_kind        text        not null check (payer_kind in ('business_center', 'ad_account')),
    payer_id          text        not null,
    payee_account_id  text        not null,
    amount_micros     bigint      not null check (amount_micros > 0),
    currency          text        not null check (currency ~ '^[A-Z]{3}$'),
    code              text        not null,
    requested_at      timestamptz not null,
    paid_at           timestamptz
);
create index payouts_outstanding on payouts (payer_id, queued) where paid_at is null;
