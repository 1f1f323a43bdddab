-- The version of each owner's published balance (`balances.v1`): it grows by one with each
-- change, whichever service made it (the wallet or the spend consumer), because both bump it
-- here in the same transaction as the transfers that changed the balance.
create table owner_versions (
    owner_id    text        primary key,
    owner_kind  text        not null check (owner_kind in ('business_center', 'ad_account')),
    version     bigint      not null check (version >= 1),
    updated_at  timestamptz not null
);
