-- The identity service's own tables. Users, memberships, API keys, revoked sessions and signing
-- keys are the library's replica tables (adledger_libs/0003_identity_replica.sql): the identity
-- service writes them in the transaction that publishes their events, and reads callers from them
-- exactly as every other service does. These are what only the identity service has.

-- A person's password, as scrypt (adledger_auth.tokens); never published, never in clear.
create table credentials (
    user_id        text        primary key references identity_users (user_id),
    password_hash  text        not null,
    changed_at     timestamptz not null
);

-- Every session issued, so that ending a user revokes each of their live sessions.
create table sessions (
    session_id  text        primary key,
    user_id     text        not null references identity_users (user_id),
    issued_at   timestamptz not null,
    expires_at  timestamptz not null,
    revoked_at  timestamptz
);
create index sessions_live_by_user on sessions (user_id) where revoked_at is null;

-- Failed sign-ins, for the brute-force brake; old rows are deleted by the brake itself.
create table sign_in_failures (
    user_id    text        not null,
    failed_at  timestamptz not null
);
create index sign_in_failures_by_user on sign_in_failures (user_id, failed_at);

-- The Business Centers that exist (from the wallet's BusinessCenterOpened), so a role is only
-- ever given in a Business Center that is there.
create table business_centers (
    business_center_id  text        primary key,
    opened_at           timestamptz not null
);
