-- A service's copy of the platform's one identity (identity.events.v1, adledger_auth.replica):
-- what it needs to verify callers locally. No credential is here in clear: API keys by SHA-256,
-- session tokens by the public keys that signed them. Each row keeps the newest version only.

create table identity_users (
    user_id            text        primary key,
    name               text        not null,
    kind               text        not null check (kind in ('person', 'integration')),
    platform_operator  boolean     not null,
    disabled           boolean     not null,
    version            bigint      not null,
    changed_at         timestamptz not null
);

create table identity_memberships (
    business_center_id  text        not null,
    user_id             text        not null,
    roles               text[]      not null,
    version             bigint      not null,
    changed_at          timestamptz not null,
    primary key (business_center_id, user_id)
);
create index identity_memberships_by_user on identity_memberships (user_id);

create table identity_api_keys (
    key_id        text        primary key,
    token_sha256  text        not null unique,
    user_id       text        not null,
    name          text        not null,
    scopes        text[]      not null,
    expires_at    timestamptz,
    revoked       boolean     not null,
    version       bigint      not null,
    changed_at    timestamptz not null
);

create table identity_revoked_sessions (
    session_id  text        primary key,
    user_id     text        not null,
    expires_at  timestamptz not null,
    revoked_at  timestamptz not null
);

create table identity_signing_keys (
    key_id        text        primary key,
    public_key    text        not null,
    retired       boolean     not null,
    version       bigint      not null,
    published_at  timestamptz not null
);
