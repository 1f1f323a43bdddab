-- The double-entry ledger (rules M1-M5), shared by every service that moves money.
-- The rules live in adledger_ledger/domain.py; the constraints here are the last line of
-- defence, so that no bug and no hand-written SQL can break the ledger's invariants.
-- Names are unqualified: the migration runner sets search_path to the target schema.

-- An account: one currency, four running totals in integer micros, at most one balance guard.
-- The totals only ever change together with the transfers that explain them.
create table accounts (
    id                              text        primary key check (length(id) between 1 and 256),
    currency                        text        not null check (currency ~ '^[A-Z]{3}$'),
    code                            text        not null check (length(code) between 1 and 256),
    owner_id                        text,
    debits_must_not_exceed_credits  boolean     not null default false,
    credits_must_not_exceed_debits  boolean     not null default false,
    debits_posted_micros            bigint      not null default 0 check (debits_posted_micros >= 0),
    credits_posted_micros           bigint      not null default 0 check (credits_posted_micros >= 0),
    debits_pending_micros           bigint      not null default 0 check (debits_pending_micros >= 0),
    credits_pending_micros          bigint      not null default 0 check (credits_pending_micros >= 0),
    created_at                      timestamptz not null default now(),
    constraint accounts_one_guard_at_most
        check (not (debits_must_not_exceed_credits and credits_must_not_exceed_debits)),
    -- Holds count as spent: a guarded account never promises more than it has.
    constraint accounts_debits_within_credits
        check (not debits_must_not_exceed_credits
               or debits_posted_micros + debits_pending_micros <= credits_posted_micros),
    constraint accounts_credits_within_debits
        check (not credits_must_not_exceed_debits
               or credits_posted_micros + credits_pending_micros <= debits_posted_micros)
);
create index accounts_by_owner on accounts (owner_id) where owner_id is not null;

-- A transfer, immutable (rule M3): its id is the caller's idempotency key (rule M5).
-- kind: single (posted at once), pending (a hold), post_pending or void_pending (resolve a hold).
create table transfers (
    id                 text        primary key check (length(id) between 1 and 256),
    debit_account_id   text        not null references accounts (id),
    credit_account_id  text        not null references accounts (id),
    amount_micros      bigint      not null check (amount_micros > 0),
    currency           text        not null check (currency ~ '^[A-Z]{3}$'),
    code               text        not null check (length(code) between 1 and 256),
    kind               text        not null check (kind in ('single', 'pending', 'post_pending', 'void_pending')),
    pending_id         text        references transfers (id),
    expires_at         timestamptz,
    user_data          jsonb       not null default '{}'::jsonb,
    created_at         timestamptz not null,
    constraint transfers_two_accounts check (debit_account_id <> credit_account_id),
    constraint transfers_pending_id_only_to_resolve
        check ((kind in ('post_pending', 'void_pending')) = (pending_id is not null)),
    constraint transfers_expiry_only_on_holds check (kind = 'pending' or expires_at is null)
);
-- An account's history (statements, reconciliation) reads transfers by account.
create index transfers_by_debit_account on transfers (debit_account_id, created_at);
create index transfers_by_credit_account on transfers (credit_account_id, created_at);
create index transfers_by_pending_id on transfers (pending_id) where pending_id is not null;

-- How each pending transfer ended. The primary key makes "a hold resolves at most once" true
-- in the database too, whatever races the application loses. An expiry has no transfer.
create table pending_resolutions (
    pending_id             text        primary key references transfers (id),
    kind                   text        not null check (kind in ('posted', 'voided', 'expired')),
    resolving_transfer_id  text        unique references transfers (id),
    resolved_at            timestamptz not null,
    constraint pending_resolutions_transfer_unless_expired
        check ((kind = 'expired') = (resolving_transfer_id is null))
);

-- The open holds that have a deadline: the expiry sweep's work queue, indexed by deadline.
-- A row leaves in the same database transaction that resolves its hold, so the sweep reads
-- only what is still open instead of every hold ever made.
create table pending_expiries (
    pending_id  text        primary key references transfers (id),
    expires_at  timestamptz not null
);
create index pending_expiries_due on pending_expiries (expires_at);

-- Transfers and resolutions are never updated or deleted: corrections are new transfers.
create function reject_ledger_change() returns trigger language plpgsql as $$
begin
    raise exception 'ledger.%: % is not allowed; transfers are immutable, correct with a new transfer (rule M3)',
        tg_table_name, tg_op
        using errcode = 'integrity_constraint_violation';
end;
$$;
create trigger transfers_are_immutable before update or delete on transfers
    for each row execute function reject_ledger_change();
create trigger transfers_are_never_truncated before truncate on transfers
    for each statement execute function reject_ledger_change();
create trigger pending_resolutions_are_immutable before update or delete on pending_resolutions
    for each row execute function reject_ledger_change();
create trigger pending_resolutions_are_never_truncated before truncate on pending_resolutions
    for each statement execute function reject_ledger_change();
