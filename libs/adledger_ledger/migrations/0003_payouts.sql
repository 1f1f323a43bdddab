-- Payouts waiting for the payer's real balance to cover them (rule W14). A payout is paid
-- once: its transfer's id is derived from the payout's id, and paid_at is set with it.
create table payouts (
    id                text        primary key,
    payer_kind        text        not null check (payer_kind in ('business_center', 'ad_account')),
    payer_id          text        not null,
    payee_account_id  text        not null references accounts (id),
    amount_micros     bigint      not null check (amount_micros > 0),
    currency          text        not null check (currency ~ '^[A-Z]{3}$'),
    code              text        not null,
    requested_at      timestamptz not null,
    paid_at           timestamptz
);
create index payouts_outstanding on payouts (payer_id, requested_at, id) where paid_at is null;
